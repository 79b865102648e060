//! Issue 14's commands on plain data: CSRs, issue, renew (exactly once), notices.

use crate::bundle::assemble::Completeness;
use crate::bundle::{KeyKind, SealedBundle};
use crate::inventory::*;

pub(crate) fn nb(name: &str, id: u8, hosts: &[&str], not_after: i64) -> NewBundle {
    NewBundle {
        name: name.into(),
        sealed: SealedBundle {
            id: [id; 32],
            blob: vec![id; 8].into(),
        },
        meta: BundleMeta {
            hostnames: hosts.iter().map(|h| h.to_string()).collect(),
            subject: format!("CN={name}"),
            issuer: "CN=local".into(),
            serial: format!("{id:02x}"),
            not_before: 0,
            not_after,
            key: KeyKind::EcP256,
            completeness: Completeness::Complete,
        },
    }
}

fn at(at: i64, command: Command) -> Request {
    Request::new("admin", at, command)
}

pub(crate) fn run(inv: &mut Inventory, command: Command) -> Response {
    apply(inv, &at(1000, command))
}

pub(crate) fn code(r: Response) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn csr(name: &str) -> PendingCsr {
    PendingCsr {
        name: name.into(),
        key_type: KeyType::EcP256,
        common_name: "www.test".into(),
        sans: vec!["www.test".into()],
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----".into(),
        spki_sha256: "00".into(),
        sealed_key: vec![1, 2, 3],
        created_at: 1000,
        created_by: "admin".into(),
    }
}

fn managed() -> Managed {
    Managed {
        issuer: LOCAL_ISSUER.into(),
        sans: vec!["a.test".into()],
        key_type: KeyType::EcP256,
        lifetime_secs: 3000,
        renew_at_permille: 667,
        renewal: RenewalState::default(),
        ..Default::default()
    }
}

pub(crate) fn target(name: &str) -> NotifyTarget {
    NotifyTarget {
        name: name.into(),
        url: "https://hooks.test/x".into(),
        sealed_secret: vec![9; 40],
        ca_pem: None,
        before_secs: vec![300, 100],
        created_at: 1000,
        created_by: "admin".into(),
    }
}

/// A CSR name is unique while pending; removing it or completing an unknown one is refused
/// by name, and every refusal leaves the state as it was.
#[test]
fn csrs_are_unique_and_refusals_change_nothing() {
    let mut inv = Inventory::default();
    assert_eq!(
        code(run(&mut inv, Command::CreateCsr { csr: csr("web") })),
        "ok"
    );
    let before = inv.issuance.clone();
    assert_eq!(
        code(run(&mut inv, Command::CreateCsr { csr: csr("web") })),
        "csr_name_taken"
    );
    assert_eq!(
        code(run(
            &mut inv,
            Command::CreateCsr {
                csr: csr("bad name")
            }
        )),
        "invalid_name"
    );
    assert_eq!(
        code(run(
            &mut inv,
            Command::CompleteCsr {
                csr: "nope".into(),
                bundle: nb("nope", 1, &["www.test"], 5000),
                make_default: false,
                force: Force::No,
            }
        )),
        "csr_not_found"
    );
    assert_eq!(
        code(run(
            &mut inv,
            Command::RemoveCsr {
                name: "nope".into()
            }
        )),
        "csr_not_found"
    );
    assert_eq!(inv.issuance, before);
    assert!(inv.bundles.is_empty());
}

/// Completing imports the bundle and forgets the CSR; completing onto an existing name is a
/// rotation (renewal with a new key): the old bundle is retired, the default follows.
#[test]
fn completing_imports_or_rotates_onto_the_name() {
    let mut inv = Inventory::default();
    run(&mut inv, Command::CreateCsr { csr: csr("web") }).unwrap();
    let out = run(
        &mut inv,
        Command::CompleteCsr {
            csr: "web".into(),
            bundle: nb("web", 1, &["www.test"], 5000),
            make_default: true,
            force: Force::No,
        },
    )
    .unwrap();
    assert!(matches!(out, Outcome::Imported { .. }), "{out:?}");
    assert!(inv.issuance.csrs.is_empty());
    run(&mut inv, Command::CreateCsr { csr: csr("web") }).unwrap();
    let out = run(
        &mut inv,
        Command::CompleteCsr {
            csr: "web".into(),
            bundle: nb("web", 2, &["www.test"], 9000),
            make_default: false,
            force: Force::No,
        },
    )
    .unwrap();
    let Outcome::Rotated { retired_as, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(inv.bundles["web"].sealed.id, [2; 32]);
    assert_eq!(inv.bundles[&retired_as].status, BundleStatus::Retired);
    assert_eq!(inv.default.as_deref(), Some("web"));
}

/// The first local issuer stays: a second proposal (two leaders racing) changes nothing.
#[test]
fn the_first_local_issuer_is_kept() {
    let mut inv = Inventory::default();
    let issuer = |n: u8| LocalIssuer {
        cert_der: vec![n],
        sealed_key: vec![n],
        subject: format!("issuer {n}"),
        not_after: 10_000,
        created_at: 1000,
    };
    assert_eq!(
        run(&mut inv, Command::SetLocalIssuer { issuer: issuer(1) }),
        Ok(Outcome::LocalIssuerSet { created: true })
    );
    assert_eq!(
        run(&mut inv, Command::SetLocalIssuer { issuer: issuer(2) }),
        Ok(Outcome::LocalIssuerSet { created: false })
    );
    assert_eq!(inv.issuance.local_issuer, Some(issuer(1)));
}

/// A renewal proposed twice (the old leader's, then the new leader's, both built against
/// bundle 1) results in exactly one new bundle: the second is refused as already renewed.
#[test]
fn a_renewal_proposed_twice_renews_once() {
    let mut inv = Inventory::default();
    run(
        &mut inv,
        Command::Issue {
            bundle: nb("a", 1, &["a.test"], 3000),
            managed: managed(),
            make_default: false,
        },
    )
    .unwrap();
    run(
        &mut inv,
        Command::AddNotifyTarget {
            target: target("hook"),
        },
    )
    .unwrap();
    let renew = |id: u8| Command::Renew {
        name: "a".into(),
        expect_id: [1; 32],
        new: nb("a", id, &["a.test"], 6000),
    };
    assert!(matches!(
        run(&mut inv, renew(2)),
        Ok(Outcome::Rotated { .. })
    ));
    assert_eq!(code(run(&mut inv, renew(3))), "already_renewed");
    let active: Vec<_> = inv
        .bundles
        .values()
        .filter(|b| b.status == BundleStatus::Active)
        .map(|b| b.sealed.id[0])
        .collect();
    assert_eq!(active, vec![2]);
    let m = &inv.issuance.managed["a"];
    assert_eq!((m.renewal.renewals, m.renewal.consecutive_failures), (1, 0));
    // One "renewed" notice for the one target.
    let kinds: Vec<_> = inv
        .issuance
        .notices
        .values()
        .map(|n| n.event.kind())
        .collect();
    assert_eq!(kinds, vec!["renewed"]);
    // A failure recorded against the old bundle is stale too.
    assert_eq!(
        code(run(
            &mut inv,
            Command::RenewalFailed {
                name: "a".into(),
                expect_id: [1; 32],
                error: "x".into(),
                retry_at: 2000,
            }
        )),
        "already_renewed"
    );
}

/// A failure counts, sets the retry time and queues a notice; the next success resets it.
/// Expired retired bundles of earlier renewals are dropped, the newest retired one kept.
#[test]
fn failures_back_off_and_old_renewals_are_pruned() {
    let mut inv = Inventory::default();
    run(
        &mut inv,
        Command::Issue {
            bundle: nb("a", 1, &["a.test"], 3000),
            managed: managed(),
            make_default: false,
        },
    )
    .unwrap();
    run(
        &mut inv,
        Command::AddNotifyTarget {
            target: target("hook"),
        },
    )
    .unwrap();
    apply(
        &mut inv,
        &at(
            2100,
            Command::RenewalFailed {
                name: "a".into(),
                expect_id: [1; 32],
                error: "issuer unreachable".into(),
                retry_at: 2130,
            },
        ),
    )
    .unwrap();
    let r = &inv.issuance.managed["a"].renewal;
    assert_eq!((r.consecutive_failures, r.retry_at), (1, Some(2130)));
    assert_eq!(
        renewal_step(2000, r, 2120),
        RenewalStep::WaitUntil(2130),
        "backing off"
    );
    for (id, when) in [(2u8, 2200), (3, 5000), (4, 9000)] {
        apply(
            &mut inv,
            &at(
                when,
                Command::Renew {
                    name: "a".into(),
                    expect_id: [id - 1; 32],
                    new: nb("a", id, &["a.test"], when + 3000),
                },
            ),
        )
        .unwrap();
    }
    assert_eq!(inv.issuance.managed["a"].renewal.consecutive_failures, 0);
    // Bundles 1 and 2 expired (3000, 5200) before the last renewal at 9000; 3 (8000) too,
    // but it is the one just retired.
    let names: Vec<_> = inv.bundles.keys().cloned().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(inv.bundles["a"].sealed.id, [4; 32]);
    let kinds: Vec<_> = inv
        .issuance
        .notices
        .values()
        .map(|n| n.event.kind())
        .collect();
    assert_eq!(
        kinds,
        vec!["renewal_failed", "renewed", "renewed", "renewed"]
    );
}

/// Expiry thresholds are queued once per target and bundle: the same finding proposed again
/// (by a new leader) queues nothing; delivery removes notices; removing the target drops its.
#[test]
fn expiry_notices_queue_once_and_leave_when_delivered() {
    let mut inv = Inventory::default();
    run(
        &mut inv,
        Command::Import {
            bundle: nb("a", 1, &["a.test"], 3000),
            make_default: false,
        },
    )
    .unwrap();
    run(
        &mut inv,
        Command::AddNotifyTarget {
            target: target("hook"),
        },
    )
    .unwrap();
    let found = ExpiryNotice {
        target: "hook".into(),
        bundle_id: hex::encode([1u8; 32]),
        event: NoticeEvent::Expiring {
            name: "a".into(),
            id: hex::encode([1u8; 32]),
            hostnames: vec!["a.test".into()],
            not_after: 3000,
            threshold_secs: 300,
        },
        thresholds: vec![300],
    };
    let queue = Command::QueueExpiryNotices {
        notices: vec![found.clone()],
    };
    assert_eq!(
        run(&mut inv, queue.clone()),
        Ok(Outcome::NoticesQueued { queued: 1 })
    );
    assert_eq!(
        run(&mut inv, queue),
        Ok(Outcome::NoticesQueued { queued: 0 })
    );
    assert_eq!(
        crossed_thresholds(
            &[300, 100],
            3000,
            2750,
            &inv.issuance.expiry_noticed["hook"][&found.bundle_id]
        ),
        None
    );
    let ids: Vec<u64> = inv.issuance.notices.keys().copied().collect();
    assert_eq!(
        run(&mut inv, Command::NoticesDelivered { ids: ids.clone() }),
        Ok(Outcome::NoticesDelivered { removed: 1 })
    );
    assert_eq!(
        run(&mut inv, Command::NoticesDelivered { ids }),
        Ok(Outcome::NoticesDelivered { removed: 0 })
    );
    // A notice for a target that is gone is dropped.
    run(
        &mut inv,
        Command::RemoveNotifyTarget {
            name: "hook".into(),
        },
    )
    .unwrap();
    assert!(inv.issuance.expiry_noticed.is_empty());
    assert_eq!(
        code(run(
            &mut inv,
            Command::RemoveNotifyTarget {
                name: "hook".into()
            }
        )),
        "notify_not_found"
    );
}

/// Removing a managed certificate ends its renewal; an operator's rotation onto its name
/// takes it over (the cluster no longer renews it).
#[test]
fn remove_and_manual_rotation_end_management() {
    let mut inv = Inventory::default();
    for (name, id) in [("a", 1u8), ("b", 2)] {
        run(
            &mut inv,
            Command::Issue {
                bundle: nb(name, id, &[&format!("{name}.test")], 3000),
                managed: managed(),
                make_default: false,
            },
        )
        .unwrap();
    }
    run(
        &mut inv,
        Command::Remove {
            name: "a".into(),
            force: Force::Yes,
        },
    )
    .unwrap();
    run(
        &mut inv,
        Command::Rotate {
            old: "b".into(),
            new: nb("b", 3, &["b.test"], 9000),
            force: Force::No,
        },
    )
    .unwrap();
    assert!(inv.issuance.managed.is_empty());
    assert_eq!(
        code(run(
            &mut inv,
            Command::Renew {
                name: "b".into(),
                expect_id: [3; 32],
                new: nb("b", 4, &["b.test"], 9000),
            }
        )),
        "not_managed"
    );
}

/// Every issue-14 command is version 3, and survives the entry and snapshot codecs.
#[test]
fn issuance_commands_are_version_3_and_round_trip() {
    let cmds = [
        Command::CreateCsr { csr: csr("web") },
        Command::AddNotifyTarget {
            target: target("hook"),
        },
        Command::Issue {
            bundle: nb("a", 1, &["a.test"], 3000),
            managed: managed(),
            make_default: true,
        },
    ];
    let mut inv = Inventory::default();
    for c in cmds {
        assert_eq!(c.min_version(), 3);
        let r = Request::new("admin", 1000, c);
        assert_eq!(
            codec::decode_request(&codec::encode_request(&r)).unwrap(),
            r
        );
        apply(&mut inv, &r).unwrap();
    }
    let back = codec::decode_snapshot(&codec::encode_snapshot(&inv)).unwrap();
    assert_eq!(back, inv);
    assert_eq!(codec::digest(&back), codec::digest(&inv));
}
