//! Issue 15's commands on plain data: ACME issuers and accounts, one order per name, its
//! outcome, and the local fallback.

use crate::inventory::issuance_apply::tests::{code, nb, run, target};
use crate::inventory::*;

fn acme_issuer(name: &str) -> AcmeIssuer {
    AcmeIssuer {
        name: name.into(),
        directory: "https://ca.test/dir".into(),
        email: "ops@example.com".into(),
        account_url: "https://ca.test/acct/1".into(),
        sealed_credentials: vec![9; 4],
        ca_pem: None,
        ari: false,
        created_at: 1000,
        created_by: "admin".into(),
    }
}

fn acme_order(url: &str) -> AcmeOrder {
    AcmeOrder {
        issuer: "le".into(),
        url: url.into(),
        replaces: None,
        key_type: KeyType::EcP256,
        sealed_key: vec![1],
        challenges: vec![AcmeChallenge {
            kind: ChallengeKind::Http01,
            domain: "a.test".into(),
            token: format!("tok-{url}"),
            key_authorization: "tok.thumb".into(),
        }],
        opened_at: 1000,
    }
}

/// One order per name: a second open is refused while one is open; the certificate of an
/// order is taken once (a second finish, or one for another order, changes nothing); the
/// challenges are answered exactly while the order is open.
#[test]
fn an_acme_certificate_has_one_order_and_one_bundle_per_order() {
    let mut inv = Inventory::default();
    assert_eq!(
        code(run(
            &mut inv,
            Command::AddAcmeIssuer {
                issuer: acme_issuer("le")
            }
        )),
        "ok"
    );
    assert_eq!(
        code(run(
            &mut inv,
            Command::AddAcmeIssuer {
                issuer: acme_issuer("le")
            }
        )),
        "issuer_name_taken"
    );
    assert_eq!(
        code(run(
            &mut inv,
            Command::AddAcmeIssuer {
                issuer: acme_issuer("local")
            }
        )),
        "issuer_name_taken"
    );
    let m = Managed {
        issuer: "le".into(),
        sans: vec!["a.test".into()],
        challenge: Some(ChallengeKind::Http01),
        ..Default::default()
    };
    let manage = |name: &str, m: &Managed| Command::ManageAcme {
        name: name.into(),
        managed: m.clone(),
        make_default: true,
    };
    assert_eq!(code(run(&mut inv, manage("a", &m))), "ok");
    assert_eq!(code(run(&mut inv, manage("a", &m))), "name_taken");
    let mut unknown = m.clone();
    unknown.issuer = "nope".into();
    assert_eq!(
        code(run(&mut inv, manage("b", &unknown))),
        "issuer_not_found"
    );

    let open = |url: &str, expect: Option<String>| Command::OpenAcmeOrder {
        name: "a".into(),
        expect_id: expect,
        order: acme_order(url),
    };
    assert_eq!(
        code(run(&mut inv, open("o1", Some("ff".repeat(32))))),
        "already_renewed"
    );
    assert_eq!(code(run(&mut inv, open("o1", None))), "ok");
    assert_eq!(inv.issuance.challenges().len(), 1);
    assert_eq!(code(run(&mut inv, open("o2", None))), "order_open");
    let finish = |url: &str, id: u8| Command::FinishAcmeOrder {
        name: "a".into(),
        order_url: url.into(),
        new: nb("a", id, &["a.test"], 9000),
    };
    assert_eq!(code(run(&mut inv, finish("o2", 1))), "order_gone");
    assert_eq!(code(run(&mut inv, finish("o1", 1))), "ok");
    assert_eq!(code(run(&mut inv, finish("o1", 2))), "order_gone");
    assert!(inv.issuance.challenges().is_empty());
    assert_eq!(inv.bundles.get("a").map(|b| b.sealed.id), Some([1; 32]));
    assert_eq!(
        inv.default.as_deref(),
        Some("a"),
        "--default applies to the first bundle"
    );

    // A renewal's order names the bundle it replaces and rotates it.
    let id = Some(hex::encode([1u8; 32]));
    assert_eq!(code(run(&mut inv, open("o3", id))), "ok");
    assert_eq!(code(run(&mut inv, finish("o3", 3))), "ok");
    assert_eq!(inv.bundles.get("a").map(|b| b.sealed.id), Some([3; 32]));
    assert_eq!(inv.issuance.managed["a"].renewal.renewals, 1);

    assert_eq!(
        code(run(&mut inv, Command::RemoveIssuer { name: "le".into() })),
        "issuer_in_use"
    );
}

/// A failure records its backoff and drops the order only when asked; the fallback stands
/// in and an ACME certificate replaces it, each step noticed; a pending certificate can be
/// removed.
#[test]
fn acme_failures_back_off_and_the_fallback_is_replaced() {
    let mut inv = Inventory::default();
    run(
        &mut inv,
        Command::AddNotifyTarget {
            target: target("hook"),
        },
    )
    .expect("accepted");
    run(
        &mut inv,
        Command::AddAcmeIssuer {
            issuer: acme_issuer("le"),
        },
    )
    .expect("accepted");
    let m = Managed {
        issuer: "le".into(),
        sans: vec!["a.test".into()],
        fallback: Some("local".into()),
        ..Default::default()
    };
    run(
        &mut inv,
        Command::ManageAcme {
            name: "a".into(),
            managed: m,
            make_default: false,
        },
    )
    .expect("accepted");
    run(
        &mut inv,
        Command::OpenAcmeOrder {
            name: "a".into(),
            expect_id: None,
            order: acme_order("o1"),
        },
    )
    .expect("accepted");
    let failed = |drop_order: bool| Command::AcmeFailed {
        name: "a".into(),
        order_url: Some("o1".into()),
        drop_order,
        error: "connection refused".into(),
        retry_at: 2000,
    };
    assert_eq!(code(run(&mut inv, failed(false))), "ok");
    assert!(
        inv.issuance.managed["a"].order.is_some(),
        "kept for a transient failure"
    );
    assert_eq!(code(run(&mut inv, failed(true))), "ok");
    assert!(inv.issuance.managed["a"].order.is_none());
    assert_eq!(code(run(&mut inv, failed(true))), "order_gone");
    let r = &inv.issuance.managed["a"].renewal;
    assert_eq!((r.consecutive_failures, r.retry_at), (2, Some(2000)));

    let fallback = Command::ServeFallback {
        name: "a".into(),
        expect_id: None,
        new: nb("a", 5, &["a.test"], 9000),
    };
    assert_eq!(code(run(&mut inv, fallback)), "ok");
    assert!(inv.issuance.managed["a"].on_fallback);
    let id = Some(hex::encode([5u8; 32]));
    run(
        &mut inv,
        Command::OpenAcmeOrder {
            name: "a".into(),
            expect_id: id,
            order: acme_order("o2"),
        },
    )
    .expect("accepted");
    let done = Command::FinishAcmeOrder {
        name: "a".into(),
        order_url: "o2".into(),
        new: nb("a", 6, &["a.test"], 9000),
    };
    assert_eq!(code(run(&mut inv, done)), "ok");
    let m = &inv.issuance.managed["a"];
    assert!(!m.on_fallback);
    assert_eq!(m.renewal.consecutive_failures, 0);
    let kinds: Vec<&str> = inv
        .issuance
        .notices
        .values()
        .map(|n| n.event.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "renewal_failed",
            "renewal_failed",
            "fallback_served",
            "renewed"
        ]
    );

    run(
        &mut inv,
        Command::ManageAcme {
            name: "p".into(),
            managed: Managed {
                issuer: "le".into(),
                ..Default::default()
            },
            make_default: false,
        },
    )
    .expect("accepted");
    assert_eq!(
        code(run(
            &mut inv,
            Command::Remove {
                name: "p".into(),
                force: Force::No
            }
        )),
        "ok"
    );
    assert!(!inv.issuance.managed.contains_key("p"));
}

/// An account the CA forgot is registered again in place: the issuer keeps its name and
/// record, takes the new URL and credentials; a stale or unknown issuer is refused.
#[test]
fn an_account_registered_again_replaces_the_url_and_credentials_only() {
    let mut inv = Inventory::default();
    run(
        &mut inv,
        Command::AddAcmeIssuer {
            issuer: acme_issuer("le"),
        },
    )
    .expect("add");
    let again = |created_at: i64, name: &str| Command::AcmeAccountRegistered {
        name: name.into(),
        created_at,
        account_url: "https://ca.test/acct/2".into(),
        sealed_credentials: vec![7; 4],
    };
    let before = inv.issuance.clone();
    assert_eq!(code(run(&mut inv, again(999, "le"))), "issuer_not_found");
    assert_eq!(
        code(run(&mut inv, again(1000, "other"))),
        "issuer_not_found"
    );
    assert_eq!(
        inv.issuance, before,
        "refusals change nothing but the audit"
    );
    assert_eq!(code(run(&mut inv, again(1000, "le"))), "ok");
    let le = &inv.issuance.acme_issuers["le"];
    assert_eq!(le.account_url, "https://ca.test/acct/2");
    assert_eq!(le.sealed_credentials, vec![7; 4]);
    let mut expect = acme_issuer("le");
    expect.account_url = le.account_url.clone();
    expect.sealed_credentials = le.sealed_credentials.clone();
    assert_eq!(*le, expect, "nothing else changes");
    assert_eq!(again(1000, "le").min_version(), 4);
}
