//! `apply` and every guard, on plain data: no runtime, no sockets, no clock.

use super::*;
use crate::bundle::assemble::Completeness;
use crate::bundle::{KeyKind, SealedBundle};

fn nb(name: &str, id: u8, hosts: &[&str]) -> NewBundle {
    NewBundle {
        name: name.into(),
        sealed: SealedBundle {
            id: [id; 32],
            blob: vec![id; 8].into(),
        },
        meta: BundleMeta {
            hostnames: hosts.iter().map(|h| h.to_string()).collect(),
            subject: format!("CN={name}"),
            issuer: "CN=ca".into(),
            serial: format!("{id:02x}"),
            not_before: 0,
            not_after: 4_000_000_000,
            key: KeyKind::EcP256,
            completeness: Completeness::NoRoot,
        },
    }
}

fn req(command: Command) -> Request {
    Request {
        version: REQUEST_VERSION,
        actor: "admin".into(),
        at: 1_700_000_000,
        command,
    }
}

fn import(inv: &mut Inventory, name: &str, id: u8, hosts: &[&str]) -> Response {
    apply(
        inv,
        &req(Command::Import {
            bundle: nb(name, id, hosts),
            make_default: false,
        }),
    )
}

fn code(r: Response) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// Import adds an active bundle; the same bundle again is idempotent, not a duplicate.
#[test]
fn import_is_idempotent_by_bundle_id() {
    let mut inv = Inventory::default();
    assert!(matches!(
        import(&mut inv, "a", 1, &["a.test"]),
        Ok(Outcome::Imported { .. })
    ));
    let again = import(&mut inv, "other-name", 1, &["a.test"]).unwrap();
    assert_eq!(
        again,
        Outcome::AlreadyPresent {
            name: "a".into(),
            id: hex::encode([1u8; 32])
        }
    );
    assert_eq!(inv.bundles.len(), 1);
}

/// Names are unique: a different bundle under a taken name is refused and changes nothing.
#[test]
fn import_refuses_a_taken_name() {
    let mut inv = Inventory::default();
    import(&mut inv, "a", 1, &["a.test"]).unwrap();
    let before = inv.bundles.clone();
    assert_eq!(code(import(&mut inv, "a", 2, &["b.test"])), "name_taken");
    assert_eq!(inv.bundles, before);
}

/// Invalid names are refused.
#[test]
fn import_refuses_invalid_names() {
    let mut inv = Inventory::default();
    for name in ["", "has space", "semi;colon", &"x".repeat(65)] {
        assert_eq!(
            code(import(&mut inv, name, 1, &[])),
            "invalid_name",
            "{name:?}"
        );
    }
    assert!(inv.bundles.is_empty());
}

/// Remove guards: the default and the only server of a hostname are refused unless forced.
#[test]
fn remove_guards_default_and_only_server() {
    let mut inv = Inventory::default();
    import(&mut inv, "a", 1, &["a.test", "shared.test"]).unwrap();
    import(&mut inv, "b", 2, &["shared.test"]).unwrap();
    apply(&mut inv, &req(Command::SetDefault { name: "b".into() })).unwrap();

    let remove = |name: &str, force| {
        req(Command::Remove {
            name: name.into(),
            force,
        })
    };
    assert_eq!(code(apply(&mut inv, &remove("b", Force::No))), "is_default");
    match apply(&mut inv, &remove("a", Force::No)) {
        Err(Refusal::OnlyServer { hostnames, .. }) => assert_eq!(hostnames, ["a.test"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(inv.bundles.len(), 2, "refusals change nothing");
    assert_eq!(code(apply(&mut inv, &remove("a", Force::Yes))), "ok");
    assert_eq!(code(apply(&mut inv, &remove("b", Force::Yes))), "ok");
    assert_eq!(inv.default, None, "removing the default clears it");
    assert_eq!(
        code(apply(&mut inv, &remove("zzz", Force::Yes))),
        "not_found"
    );
}

/// A hostname served by another bundle (also by wildcard) may lose this one.
#[test]
fn remove_allowed_when_another_bundle_covers_every_hostname() {
    let mut inv = Inventory::default();
    import(&mut inv, "one", 1, &["www.x.test"]).unwrap();
    import(&mut inv, "wild", 2, &["*.x.test"]).unwrap();
    assert_eq!(
        code(apply(
            &mut inv,
            &req(Command::Remove {
                name: "one".into(),
                force: Force::No
            })
        )),
        "ok"
    );
}

/// Rotate is one step: NEW takes OLD's name and default role; OLD is kept retired.
#[test]
fn rotate_takes_over_name_and_default_atomically() {
    let mut inv = Inventory::default();
    import(&mut inv, "site", 1, &["site.test"]).unwrap();
    apply(
        &mut inv,
        &req(Command::SetDefault {
            name: "site".into(),
        }),
    )
    .unwrap();
    let out = apply(
        &mut inv,
        &req(Command::Rotate {
            old: "site".into(),
            new: nb("site", 2, &["site.test", "www.site.test"]),
            force: Force::No,
        }),
    )
    .unwrap();
    let Outcome::Rotated {
        retired_as, new, ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(new, "site");
    assert_eq!(inv.default.as_deref(), Some("site"));
    assert_eq!(inv.bundles["site"].sealed.id, [2; 32]);
    assert_eq!(inv.bundles["site"].status, BundleStatus::Active);
    assert_eq!(inv.bundles[&retired_as].status, BundleStatus::Retired);
    assert_eq!(inv.bundles[&retired_as].sealed.id, [1; 32]);
    // The retired bundle serves nothing: it does not count as a server, nor can it be default.
    assert_eq!(inv.servers_of("site.test", "site"), 0);
    assert_eq!(
        code(apply(
            &mut inv,
            &req(Command::SetDefault { name: retired_as })
        )),
        "retired"
    );
}

/// Rotating to a certificate that drops a hostname is refused unless forced.
#[test]
fn rotate_refuses_to_lose_hostnames() {
    let mut inv = Inventory::default();
    import(&mut inv, "site", 1, &["site.test", "api.site.test"]).unwrap();
    let rotate = |force| {
        req(Command::Rotate {
            old: "site".into(),
            new: nb("site", 2, &["site.test"]),
            force,
        })
    };
    match apply(&mut inv, &rotate(Force::No)) {
        Err(Refusal::RotationLosesHostnames { missing, .. }) => {
            assert_eq!(missing, ["api.site.test"])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(inv.bundles.len(), 1);
    assert_eq!(code(apply(&mut inv, &rotate(Force::Yes))), "ok");
    assert_eq!(inv.bundles.len(), 2);
}

/// A wildcard in the new certificate covers one-label names of the old one.
#[test]
fn rotate_to_a_wildcard_covers_one_label_names() {
    let mut inv = Inventory::default();
    import(&mut inv, "site", 1, &["a.x.test", "b.x.test"]).unwrap();
    let r = req(Command::Rotate {
        old: "site".into(),
        new: nb("site", 2, &["*.x.test"]),
        force: Force::No,
    });
    assert_eq!(code(apply(&mut inv, &r)), "ok");
}

/// Join tokens are single-use and expire.
#[test]
fn join_tokens_are_single_use_and_expire() {
    let mut inv = Inventory::default();
    let token = |secret: u8, expires_at| JoinToken {
        secret_sha256: [secret; 32],
        role: NodeRole::Learner,
        expires_at,
        created_by: "admin".into(),
        used_by: None,
    };
    apply(
        &mut inv,
        &req(Command::CreateJoinToken {
            token: token(1, 1_700_000_100),
        }),
    )
    .unwrap();
    apply(
        &mut inv,
        &req(Command::CreateJoinToken {
            token: token(2, 1_600_000_000),
        }),
    )
    .unwrap();
    let consume = |secret, requested: u64| {
        req(Command::ConsumeJoinToken {
            secret_sha256: [secret; 32],
            requested: Some(requested),
            floor: 1,
        })
    };
    assert_eq!(
        apply(&mut inv, &consume(1, 4)),
        Ok(Outcome::JoinTokenConsumed {
            role: NodeRole::Learner,
            node_id: 4
        })
    );
    assert_eq!(
        code(apply(&mut inv, &consume(1, 5))),
        "join_token_invalid",
        "second use"
    );
    assert_eq!(
        code(apply(&mut inv, &consume(2, 5))),
        "join_token_invalid",
        "expired"
    );
    assert_eq!(
        code(apply(&mut inv, &consume(9, 5))),
        "join_token_invalid",
        "unknown"
    );
}

/// Every request, accepted or refused, leaves one audit record with who, when, what, result;
/// the audit never holds secret material (join token secrets are hashed before they get here).
#[test]
fn every_request_is_audited() {
    let mut inv = Inventory::default();
    import(&mut inv, "a", 1, &["a.test"]).unwrap();
    let _ = import(&mut inv, "a", 2, &["a.test"]);
    let _ = apply(
        &mut inv,
        &Request {
            version: 99,
            ..req(Command::SetDefault { name: "a".into() })
        },
    );
    let results: Vec<_> = inv.audit.iter().map(|a| a.result.as_str()).collect();
    assert_eq!(results, ["ok", "name_taken", "unknown_version"]);
    assert!(inv
        .audit
        .iter()
        .all(|a| a.actor == "admin" && a.at == 1_700_000_000));
    assert!(inv.audit[0].what.starts_with("import a ("));
}

/// The audit log is bounded; the oldest records go first.
#[test]
fn audit_log_is_bounded() {
    let mut inv = Inventory::default();
    for i in 0..AUDIT_CAPACITY + 5 {
        let _ = apply(
            &mut inv,
            &Request {
                at: i as i64,
                ..req(Command::SetDefault { name: "x".into() })
            },
        );
    }
    assert_eq!(inv.audit.len(), AUDIT_CAPACITY);
    assert_eq!(inv.audit[0].at, 5);
}

/// SPEC §4 hostname matching, as a table.
#[test]
fn hostname_matching_rules() {
    for (pattern, host, ok) in [
        ("a.test", "a.test", true),
        ("a.test", "A.TEST.", true),
        ("*.x.test", "a.x.test", true),
        ("*.x.test", "x.test", false),
        ("*.x.test", "a.b.x.test", false),
        ("*.x.test", ".x.test", false),
        ("a.test", "b.test", false),
    ] {
        assert_eq!(hostname_matches(pattern, host), ok, "{pattern} vs {host}");
    }
}

/// Same log, same state: applying one sequence twice from empty gives equal inventories.
#[test]
fn apply_is_deterministic() {
    let log = [
        req(Command::Import {
            bundle: nb("a", 1, &["a.test"]),
            make_default: true,
        }),
        req(Command::Import {
            bundle: nb("b", 2, &["b.test"]),
            make_default: false,
        }),
        req(Command::Rotate {
            old: "a".into(),
            new: nb("a", 3, &["a.test"]),
            force: Force::No,
        }),
        req(Command::Remove {
            name: "b".into(),
            force: Force::No,
        }),
    ];
    let run = || {
        let mut inv = Inventory::default();
        let results: Vec<_> = log.iter().map(|r| apply(&mut inv, r)).collect();
        (inv, results)
    };
    assert_eq!(run(), run());
}

/// Entries and snapshots round-trip through their versioned encodings; unknown versions and
/// garbage are refused, never a panic.
#[test]
fn entry_and_snapshot_formats_round_trip() {
    use super::codec::*;
    let mut inv = Inventory::default();
    let r = req(Command::Import {
        bundle: nb("a", 1, &["a.test"]),
        make_default: true,
    });
    let bytes = encode_request(&r);
    assert_eq!(bytes[0], ENTRY_FORMAT_V1);
    assert_eq!(decode_request(&bytes).unwrap(), r);
    apply(&mut inv, &r).unwrap();
    let snap = encode_snapshot(&inv);
    assert_eq!(decode_snapshot(&snap).unwrap(), inv);
    // Sealed blobs stay compact bytes: the snapshot is not much larger than its contents.
    assert!(snap.len() < 480, "{} bytes", snap.len());

    let mut future = bytes.clone();
    future[0] = 9;
    assert!(matches!(
        decode_request(&future),
        Err(CodecError::UnknownVersion { version: 9, .. })
    ));
    assert!(matches!(decode_request(&[]), Err(CodecError::Empty { .. })));
    for n in 1..bytes.len() {
        assert!(decode_request(&bytes[..n]).is_err(), "truncated at {n}");
    }
}

/// Join tokens hand out distinct node ids above every member the proposer knows and every
/// id handed out before, even when two joins race with the same `floor`.
#[test]
fn join_tokens_allocate_distinct_node_ids() {
    let mut inv = Inventory::default();
    let token = |secret: u8, expires_at| JoinToken {
        secret_sha256: [secret; 32],
        role: NodeRole::Voter,
        expires_at,
        created_by: "admin".into(),
        used_by: None,
    };
    for secret in [1u8, 2, 3] {
        apply(
            &mut inv,
            &req(Command::CreateJoinToken {
                token: token(secret, 1_700_000_100),
            }),
        )
        .unwrap();
    }
    let consume = |secret| {
        req(Command::ConsumeJoinToken {
            secret_sha256: [secret; 32],
            requested: None,
            floor: 3,
        })
    };
    let id = |r: Response| match r {
        Ok(Outcome::JoinTokenConsumed { node_id, .. }) => node_id,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(id(apply(&mut inv, &consume(1))), 4);
    assert_eq!(id(apply(&mut inv, &consume(2))), 5);
    assert_eq!(inv.highest_node_id, 5);
}

/// Admin tokens are found by the hash of their secret; a token under a name already taken
/// is refused (regression, security review item 2: a member relaying an offline-made token
/// could overwrite the token named `admin`); an invalid name is refused.
#[test]
fn admin_tokens_are_kept_by_hash_and_never_replaced() {
    let mut inv = Inventory::default();
    let tok = |name: &str, secret: u8| {
        req(Command::CreateAdminToken {
            token: AdminToken {
                name: name.into(),
                secret_sha256: [secret; 32],
                created_at: 1,
                created_by: "bootstrap".into(),
            },
        })
    };
    apply(&mut inv, &tok("admin", 1)).unwrap();
    assert_eq!(inv.admin_token(&[1; 32]).unwrap().name, "admin");
    assert_eq!(code(apply(&mut inv, &tok("admin", 2))), "token_name_taken");
    assert!(inv.admin_token(&[1; 32]).is_some(), "kept");
    assert!(inv.admin_token(&[2; 32]).is_none());
    assert_eq!(code(apply(&mut inv, &tok("bad name", 3))), "invalid_name");
    apply(&mut inv, &tok("rescue", 4)).unwrap();
    assert_eq!(inv.admin_tokens.len(), 2);
}

/// Regression (security review item 5): node ids are never reused. A requested id at or
/// below the highest handed out (or the highest member) is refused and uses no token; the
/// allocation never wraps.
#[test]
fn node_ids_are_never_reused_and_never_wrap() {
    let mut inv = Inventory::default();
    for secret in [1u8, 2, 3, 4] {
        apply(
            &mut inv,
            &req(Command::CreateJoinToken {
                token: JoinToken {
                    secret_sha256: [secret; 32],
                    role: NodeRole::Voter,
                    expires_at: 1_700_000_100,
                    created_by: "admin".into(),
                    used_by: None,
                },
            }),
        )
        .unwrap();
    }
    let consume = |secret, requested: Option<u64>, floor| {
        req(Command::ConsumeJoinToken {
            secret_sha256: [secret; 32],
            requested,
            floor,
        })
    };
    assert!(apply(&mut inv, &consume(1, Some(7), 3)).is_ok());
    for (requested, floor) in [(7, 3), (5, 3), (3, 3), (1, 1)] {
        assert_eq!(
            code(apply(&mut inv, &consume(2, Some(requested), floor))),
            "node_id_used",
            "{requested}"
        );
    }
    // The refusals used nothing: token 2 still admits node 8.
    assert_eq!(
        apply(&mut inv, &consume(2, None, 3)),
        Ok(Outcome::JoinTokenConsumed {
            role: NodeRole::Voter,
            node_id: 8
        })
    );
    assert_eq!(
        code(apply(&mut inv, &consume(3, None, u64::MAX))),
        "node_id_used",
        "no id above u64::MAX"
    );
    assert!(inv
        .join_tokens
        .iter()
        .any(|t| t.secret_sha256 == [3; 32] && t.used_by.is_none()));
}

/// Regression (security review item 1): no volume of refused requests pushes an accepted
/// change out of the audit log; refused records go first when it is full.
#[test]
fn refused_requests_never_evict_the_record_of_a_change() {
    let mut inv = Inventory::default();
    import(&mut inv, "a", 1, &["a.test"]).unwrap();
    apply(
        &mut inv,
        &req(Command::Record {
            what: "backup of 1 bundles".into(),
            result: "ok".into(),
        }),
    )
    .unwrap();
    for i in 0..AUDIT_CAPACITY + 50 {
        let _ = apply(
            &mut inv,
            &Request {
                at: i as i64,
                ..req(Command::Remove {
                    name: "missing".into(),
                    force: Force::No,
                })
            },
        );
    }
    assert_eq!(inv.audit.len(), AUDIT_CAPACITY);
    assert!(
        inv.audit[0].what.starts_with("import a ("),
        "{:?}",
        inv.audit[0]
    );
    assert_eq!(inv.audit[1].what, "backup of 1 bundles");
    assert!(inv.audit[2..].iter().all(|a| a.refused));
}

/// Regression (security review item 11): control characters in a refused name (a forged
/// line, a terminal escape) are stored escaped, never raw.
#[test]
fn control_characters_are_escaped_in_the_audit_log() {
    let mut inv = Inventory::default();
    let name = "x\n2026-01-01 admin ok remove everything\u{1b}[2J";
    let _ = apply(
        &mut inv,
        &req(Command::Remove {
            name: name.into(),
            force: Force::No,
        }),
    );
    let what = &inv.audit[0].what;
    assert!(!what.chars().any(char::is_control), "{what:?}");
    assert!(
        what.contains("\\u{a}") && what.contains("\\u{1b}"),
        "{what:?}"
    );
}

/// Names start with a letter or a digit (a wildcard hostname aside): `.`, `..` and `-x`
/// could not be managed from a shell or a URL.
#[test]
fn names_start_with_a_letter_or_a_digit() {
    for (name, ok) in [
        ("www.example.com", true),
        ("1st", true),
        ("*.example.com", true),
        (".", false),
        ("..", false),
        ("-x", false),
        ("_x", false),
        ("*x", false),
        ("*.", false),
    ] {
        assert_eq!(valid_name(name), ok, "{name:?}");
    }
}

/// Regression (issue 22's first reproduction, the restore half): one restore entry holding
/// the same bundle under two names restores it once, under its first name, on every replica.
#[test]
fn a_restore_with_one_bundle_under_two_names_keeps_the_first() {
    let mut inv = Inventory::default();
    let b = |name: &str| nb(name, 9, &["dup.test"]);
    let out = apply(
        &mut inv,
        &req(Command::Restore {
            bundles: vec![b("alpha"), b("zeta")],
            default: Some("zeta".into()),
        }),
    )
    .unwrap();
    assert_eq!(
        out,
        Outcome::Restored {
            restored: vec!["alpha".into()],
            already_present: vec!["alpha".into()],
        }
    );
    assert_eq!(inv.bundles.keys().cloned().collect::<Vec<_>>(), ["alpha"]);
    assert_eq!(inv.by_id(&[9; 32]).map(|b| b.name.as_str()), Some("alpha"));
}

/// Regression: on a not-after tie, `serving` (the API's "serving" list) named the last bundle
/// by name while the serve port's index serves the first; both now pick the first name.
#[test]
fn serving_breaks_a_not_after_tie_by_the_first_name_like_the_index() {
    let mut inv = Inventory::default();
    import(&mut inv, "tie-b", 1, &["tie.test"]).unwrap();
    import(&mut inv, "tie-a", 2, &["tie.test"]).unwrap();
    import(&mut inv, "tie-c", 3, &["*.test"]).unwrap();
    assert_eq!(inv.serving("tie.test", 1_700_000_000), Some("tie-a"));
    assert_eq!(inv.serving("TIE.test.", 1_700_000_000), Some("tie-a"));
}

/// Ticket keys: the newest three are kept, oldest dropped first, ordered by id.
#[test]
fn ticket_keys_keep_the_newest_three() {
    let mut inv = Inventory::default();
    for id in 1..=5u32 {
        let r = apply(
            &mut inv,
            &req(Command::AddTicketKey {
                key: TicketKey {
                    id,
                    sealed: vec![id as u8; 4],
                    created_at: id as i64,
                },
            }),
        );
        assert_eq!(r, Ok(Outcome::TicketKeyAdded { id }));
    }
    let ids: Vec<u32> = inv.ticket_keys.iter().map(|k| k.id).collect();
    assert_eq!(ids, vec![3, 4, 5]);
}

/// The id index beside the bundles follows import, rotate (the retired bundle keeps its id
/// under its new name), remove, and a snapshot round trip (where it is rebuilt, not stored).
#[test]
fn bundle_id_index_follows_every_change_and_decode() {
    let mut inv = Inventory::default();
    import(&mut inv, "site", 1, &["a.test"]).unwrap();
    import(&mut inv, "other", 2, &["b.test"]).unwrap();
    assert_eq!(inv.by_id(&[1; 32]).map(|b| b.name.as_str()), Some("site"));
    apply(
        &mut inv,
        &req(Command::Rotate {
            old: "site".into(),
            new: nb("site", 3, &["a.test"]),
            force: Force::No,
        }),
    )
    .unwrap();
    let retired = inv.by_id(&[1; 32]).expect("the retired bundle by its id");
    assert_ne!(retired.name, "site");
    assert_eq!(retired.status, BundleStatus::Retired);
    assert_eq!(inv.by_id(&[3; 32]).map(|b| b.name.as_str()), Some("site"));
    apply(
        &mut inv,
        &req(Command::Remove {
            name: "other".into(),
            force: Force::Yes,
        }),
    )
    .unwrap();
    assert!(inv.by_id(&[2; 32]).is_none());
    let back = codec::decode_snapshot(&codec::encode_snapshot(&inv)).unwrap();
    assert_eq!(back, inv);
    for id in [[1u8; 32], [3; 32]] {
        assert_eq!(
            back.by_id(&id).map(|b| &b.name),
            inv.by_id(&id).map(|b| &b.name)
        );
    }
    assert!(back.by_id(&[2; 32]).is_none());
}

fn stored(name: &str, id: u8) -> StoredBundle {
    let b = nb(name, id, &["dup.test"]);
    StoredBundle {
        name: b.name,
        sealed: b.sealed,
        meta: b.meta,
        status: BundleStatus::Active,
        imported_at: 0,
        imported_by: "admin".into(),
    }
}

/// Regression (issue 22, first reproduction): one bundle id under two names. The id index
/// answered the name inserted last on a replica that applied the log and the greatest name
/// on one that decoded a snapshot, so the same later `Import { make_default }` set the
/// default to `alpha` on one and `zeta` on the other. Now the index is a function of the
/// map: the least name, however the names arrived, and removing one name keeps the other.
#[test]
fn the_id_index_answers_alike_however_the_names_arrived() {
    let mut applied = Inventory::default();
    applied.bundles.insert("zeta".into(), stored("zeta", 9));
    applied.bundles.insert("alpha".into(), stored("alpha", 9));
    let mut other_order = Inventory::default();
    other_order
        .bundles
        .insert("alpha".into(), stored("alpha", 9));
    other_order.bundles.insert("zeta".into(), stored("zeta", 9));
    let decoded = codec::decode_snapshot(&codec::encode_snapshot(&applied)).unwrap();
    for inv in [&applied, &other_order, &decoded] {
        assert_eq!(inv.by_id(&[9; 32]).map(|b| b.name.as_str()), Some("alpha"));
    }
    let again = |inv: &Inventory| {
        let mut inv = inv.clone();
        apply(
            &mut inv,
            &req(Command::Import {
                bundle: nb("new-name", 9, &["dup.test"]),
                make_default: true,
            }),
        )
        .unwrap();
        inv.default.clone()
    };
    assert_eq!(again(&applied), Some("alpha".into()));
    assert_eq!(again(&decoded), again(&applied));
    // Removing the name the index answered keeps the id findable under the other.
    applied.bundles.remove("alpha");
    assert_eq!(
        applied.by_id(&[9; 32]).map(|b| b.name.as_str()),
        Some("zeta")
    );
    applied.bundles.remove("zeta");
    assert!(applied.by_id(&[9; 32]).is_none());
}

/// A membership change that drops a member puts its certificate on the revoked list for
/// good: a later membership naming the same certificate again does not take it off.
#[test]
fn removed_members_certificates_are_revoked_for_good() {
    let mut inv = Inventory::default();
    let m = |list: &[(u64, &str)]| -> Vec<(u64, String)> {
        list.iter().map(|(id, s)| (*id, s.to_string())).collect()
    };
    let three = m(&[(1, "aa"), (2, "bb"), (3, "cc")]);
    revoke_removed(&mut inv, &three, &three);
    assert!(inv.revoked_node_certs.is_empty());
    revoke_removed(&mut inv, &three, &m(&[(1, "aa"), (2, "bb")]));
    assert_eq!(
        inv.revoked_node_certs.iter().collect::<Vec<_>>(),
        vec![(&"cc".to_string(), &3)]
    );
    revoke_removed(&mut inv, &m(&[(1, "aa"), (2, "bb")]), &three);
    revoke_removed(&mut inv, &three, &m(&[(1, "aa"), (3, "cc")]));
    assert_eq!(inv.revoked_node_certs.len(), 2);
    assert_eq!(inv.revoked_node_certs.get("cc"), Some(&3));
    assert_eq!(inv.revoked_node_certs.get("bb"), Some(&2));
}

proptest::proptest! {
    /// Any sequence of inserts (names and ids from small pools, so they collide) and removes
    /// leaves an id index equal to the one rebuilt from the map alone, as a snapshot decode
    /// builds it.
    #[test]
    fn the_id_index_is_a_function_of_the_map(ops in proptest::collection::vec((0u8..6, 0u8..3, proptest::bool::ANY), 0..60)) {
        let names = ["a", "b", "c", "d", "e", "f"];
        let mut bundles = Bundles::default();
        for (name, id, remove) in ops {
            let name = names[usize::from(name)];
            if remove {
                bundles.remove(name);
            } else {
                bundles.insert(name.into(), stored(name, id));
            }
        }
        let rebuilt: Bundles = bundles.iter().map(|(n, b)| (n.clone(), b.clone())).collect();
        for id in 0u8..3 {
            proptest::prop_assert_eq!(
                bundles.by_id(&[id; 32]).map(|b| b.name.clone()),
                rebuilt.by_id(&[id; 32]).map(|b| b.name.clone())
            );
        }
    }

    /// Issue 22's divergence check on plain data: random command sequences applied to one
    /// replica straight through and to another that goes through snapshot round trips at
    /// random points give the same answers, equal states and equal digests at every step.
    #[test]
    fn snapshot_round_trips_never_change_answers_or_digests(ops in proptest::collection::vec((0u8..9, 0u8..4, 0u8..4, 0u8..4, proptest::bool::ANY), 1..40)) {
        let names = ["a", "b", "c", "d"];
        let hosts = [&["a.test"][..], &["b.test"], &["a.test", "b.test"], &["*.test"]];
        let mut straight = Inventory::default();
        let mut restored = Inventory::default();
        for (kind, n, id, h, flag) in ops {
            let name = names[usize::from(n)];
            let other = names[usize::from((n + 1) % 4)];
            let bundle = |name: &str| nb(name, id, hosts[usize::from(h)]);
            let force = if flag { Force::Yes } else { Force::No };
            let command = match kind {
                0 => Command::Import { bundle: bundle(name), make_default: flag },
                1 => Command::Remove { name: name.into(), force },
                2 => Command::SetDefault { name: name.into() },
                3 => Command::Rotate { old: name.into(), new: bundle(other), force },
                // The same id under two names, as a backup of such a source holds.
                4 => Command::Restore {
                    bundles: vec![bundle(name), bundle(other)],
                    default: flag.then(|| other.to_string()),
                },
                5 => Command::Record { what: format!("export {name}"), result: "ok".into() },
                6 => Command::SetConsole { name: name.into(), hostnames: vec![["a.test", "b.test", "c.test", "x.test"][usize::from(h)].into()] },
                7 => Command::ClearConsole,
                _ => {
                    restored = codec::decode_snapshot(&codec::encode_snapshot(&restored)).unwrap();
                    continue;
                }
            };
            let r = req(command);
            proptest::prop_assert_eq!(apply(&mut straight, &r), apply(&mut restored, &r));
            proptest::prop_assert_eq!(&straight, &restored);
            proptest::prop_assert_eq!(codec::digest(&straight), codec::digest(&restored));
            // The console invariant: it names an active bundle covering its hostnames.
            if let Some(c) = &straight.console {
                let b = straight.bundles.get(&c.name);
                proptest::prop_assert!(
                    b.is_some_and(|b| b.status == BundleStatus::Active
                        && c.hostnames.iter().all(|h| b.meta.covers(h))),
                    "{c:?}"
                );
            }
        }
    }
}
