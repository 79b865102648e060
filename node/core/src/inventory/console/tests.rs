//! The console certificate's rules on plain data: what `SetConsole` accepts, the remove and
//! rotate guards, `uses_of`, and the encodings.

use super::*;
use crate::bundle::assemble::Completeness;
use crate::bundle::{KeyKind, SealedBundle};
use crate::inventory::{apply, codec};

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

fn run(inv: &mut Inventory, command: Command) -> Response {
    apply(inv, &Request::new("admin", 1_700_000_000, command))
}

fn code(r: Response) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn set(name: &str, hosts: &[&str]) -> Command {
    Command::SetConsole {
        name: name.into(),
        hostnames: hosts.iter().map(|h| h.to_string()).collect(),
    }
}

/// An inventory with `site` (console.example.test, www.example.test), `wild`
/// (*.example.test) and `other` (other.test).
fn inventory() -> Inventory {
    let mut inv = Inventory::default();
    for b in [
        nb("site", 1, &["console.example.test", "www.example.test"]),
        nb("wild", 2, &["*.example.test"]),
        nb("other", 3, &["other.test"]),
    ] {
        run(
            &mut inv,
            Command::Import {
                bundle: b,
                make_default: false,
            },
        )
        .expect("imported");
    }
    inv
}

/// `SetConsole` takes an active bundle that covers every hostname (a wildcard over one
/// label too); everything else is refused, by code, and changes nothing.
#[test]
fn set_console_accepts_only_an_active_bundle_covering_valid_hostnames() {
    let many: Vec<String> = (0..=MAX_CONSOLE_HOSTNAMES)
        .map(|i| format!("c{i}.example.test"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let table: &[(&str, &[&str], &str)] = &[
        ("site", &["console.example.test"], "ok"),
        ("site", &["CONSOLE.example.test."], "ok"),
        (
            "wild",
            &["console.example.test", "admin.example.test"],
            "ok",
        ),
        ("wild", &["a.b.example.test"], "console_not_covered"),
        ("wild", &["example.test"], "console_not_covered"),
        ("other", &["console.example.test"], "console_not_covered"),
        ("missing", &["console.example.test"], "not_found"),
        ("site", &[], "console_hostname_count"),
        ("wild", &many, "console_hostname_count"),
        ("wild", &["*.example.test"], "invalid_console_hostname"),
        ("site", &["192.0.2.1"], "invalid_console_hostname"),
        (
            "site",
            &["console.example.test:9443"],
            "invalid_console_hostname",
        ),
        (
            "site",
            &["has space.example.test"],
            "invalid_console_hostname",
        ),
        ("site", &["localhost"], "invalid_console_hostname"),
        ("site", &[""], "invalid_console_hostname"),
    ];
    for (name, hosts, want) in table {
        let mut inv = inventory();
        let before = inv.console.clone();
        let got = code(run(&mut inv, set(name, hosts)));
        assert_eq!(got, *want, "{name} for {hosts:?}");
        if *want != "ok" {
            assert_eq!(
                inv.console, before,
                "a refusal changes nothing: {name} {hosts:?}"
            );
        }
    }
}

/// Hostnames are kept lowercase, without a trailing dot and without repeats; the answer
/// names them.
#[test]
fn console_hostnames_are_normalised() {
    let mut inv = inventory();
    let out = run(
        &mut inv,
        set(
            "wild",
            &[
                "Console.Example.Test.",
                "console.example.test",
                "b.example.test",
            ],
        ),
    )
    .expect("set");
    let want = vec!["console.example.test".to_string(), "b.example.test".into()];
    assert_eq!(
        out,
        Outcome::ConsoleSet {
            name: "wild".into(),
            hostnames: want.clone()
        }
    );
    assert_eq!(
        inv.console,
        Some(ConsoleCert {
            name: "wild".into(),
            hostnames: want
        })
    );
}

/// A retired bundle cannot take the role.
#[test]
fn a_retired_bundle_cannot_be_the_console_certificate() {
    let mut inv = inventory();
    run(
        &mut inv,
        Command::Rotate {
            old: "site".into(),
            new: nb("site", 9, &["console.example.test", "www.example.test"]),
            force: Force::No,
        },
    )
    .expect("rotated");
    let retired = inv
        .bundles
        .values()
        .find(|b| b.status == BundleStatus::Retired)
        .expect("the old one is retired")
        .name
        .clone();
    assert_eq!(
        code(run(&mut inv, set(&retired, &["console.example.test"]))),
        "console_retired"
    );
}

/// The console's bundle is never removed, `--force` or not; the refusal names the hostnames
/// and both ways out. Once the console points elsewhere, it goes like any other.
#[test]
fn removing_the_console_bundle_is_refused_even_with_force() {
    let mut inv = inventory();
    run(&mut inv, set("site", &["console.example.test"])).expect("set");
    for force in [Force::No, Force::Yes] {
        let r = run(
            &mut inv,
            Command::Remove {
                name: "site".into(),
                force,
            },
        );
        let err = r.expect_err("refused");
        assert_eq!(err.code(), "is_console");
        let text = err.to_string();
        for needle in [
            "console.example.test",
            "even with --force",
            "certraft console reset",
            "certraft console cert OTHER --hostname console.example.test",
        ] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        assert!(inv.bundles.contains_key("site"));
    }
    run(&mut inv, Command::ClearConsole).expect("cleared");
    let r = run(
        &mut inv,
        Command::Remove {
            name: "site".into(),
            force: Force::Yes,
        },
    );
    assert_eq!(code(r), "ok");
}

/// A rotation hands the console to the new bundle, as it hands over the default, whether
/// the name changes or not.
#[test]
fn rotation_moves_the_console_to_the_new_bundle() {
    let mut inv = inventory();
    run(&mut inv, set("site", &["console.example.test"])).expect("set");
    run(
        &mut inv,
        Command::Rotate {
            old: "site".into(),
            new: nb(
                "site-2025",
                7,
                &["console.example.test", "www.example.test"],
            ),
            force: Force::No,
        },
    )
    .expect("rotated");
    assert_eq!(
        inv.console.as_ref().map(|c| c.name.as_str()),
        Some("site-2025")
    );
    let before = inv.console_key().expect("set").1;
    run(
        &mut inv,
        Command::Rotate {
            old: "site-2025".into(),
            new: nb("site-2025", 8, &["*.example.test"]),
            force: Force::Yes,
        },
    )
    .expect("rotated under the same name");
    let (c, id) = inv.console_key().expect("still set");
    assert_eq!(c.name, "site-2025");
    assert_ne!(id, before, "the admin port sees the new bundle");
    assert_eq!(id, [8; 32]);
}

/// A rotation to a bundle that does not cover a console hostname is refused, naming it;
/// forced, the console keeps the hostnames still covered, and none left means the node
/// certificate.
#[test]
fn rotation_that_loses_a_console_hostname_is_refused_unless_forced() {
    let mut inv = inventory();
    run(
        &mut inv,
        set("wild", &["console.example.test", "admin.example.test"]),
    )
    .expect("set");
    let rotate = |name: &str, id: u8, hosts: &[&str], force| Command::Rotate {
        old: "wild".into(),
        new: nb(name, id, hosts),
        force,
    };
    let err = run(
        &mut inv,
        rotate("narrow", 5, &["console.example.test"], Force::No),
    )
    .expect_err("refused");
    assert_eq!(err.code(), "rotation_loses_console");
    assert!(err.to_string().contains("admin.example.test"), "{err}");
    assert_eq!(inv.console.as_ref().map(|c| c.name.as_str()), Some("wild"));

    run(
        &mut inv,
        rotate("narrow", 5, &["console.example.test"], Force::Yes),
    )
    .expect("forced");
    assert_eq!(
        inv.console,
        Some(ConsoleCert {
            name: "narrow".into(),
            hostnames: vec!["console.example.test".into()]
        })
    );
    run(
        &mut inv,
        Command::Rotate {
            old: "narrow".into(),
            new: nb("elsewhere", 6, &["elsewhere.test"]),
            force: Force::Yes,
        },
    )
    .expect("forced");
    assert_eq!(inv.console, None, "nothing covered: the node certificate");
}

/// `ClearConsole` is idempotent and says what it cleared; both commands are version 5 and
/// audited with the names involved.
#[test]
fn clear_is_idempotent_and_both_commands_are_audited() {
    let mut inv = inventory();
    run(&mut inv, set("site", &["console.example.test"])).expect("set");
    assert_eq!(
        run(&mut inv, Command::ClearConsole),
        Ok(Outcome::ConsoleCleared {
            was: Some("site".into())
        })
    );
    assert_eq!(
        run(&mut inv, Command::ClearConsole),
        Ok(Outcome::ConsoleCleared { was: None })
    );
    assert_eq!(set("site", &[]).min_version(), 5);
    assert_eq!(Command::ClearConsole.min_version(), 5);
    let audit: Vec<&str> = inv.audit.iter().map(|a| a.what.as_str()).collect();
    assert!(
        audit.contains(&"console certificate site for console.example.test"),
        "{audit:?}"
    );
    assert!(
        audit.contains(&"console certificate reset to the node certificate"),
        "{audit:?}"
    );
}

/// `uses_of` lists every use: the hostnames a bundle serves now, the default, the console.
#[test]
fn uses_of_lists_serving_default_and_console() {
    let mut inv = inventory();
    let now = 1_700_000_000;
    assert_eq!(
        inv.uses_of("wild", now),
        vec![BundleUse::Serving(vec!["*.example.test".into()])]
    );
    run(
        &mut inv,
        Command::SetDefault {
            name: "wild".into(),
        },
    )
    .expect("default");
    run(&mut inv, set("wild", &["console.example.test"])).expect("set");
    assert_eq!(
        inv.uses_of("wild", now),
        vec![
            BundleUse::Serving(vec!["*.example.test".into()]),
            BundleUse::Default,
            BundleUse::Console(vec!["console.example.test".into()]),
        ]
    );
    assert_eq!(
        inv.uses_of("site", now),
        vec![BundleUse::Serving(vec![
            "console.example.test".into(),
            "www.example.test".into()
        ])]
    );
    assert_eq!(inv.uses_of("missing", now), vec![]);
    run(
        &mut inv,
        Command::Import {
            bundle: nb("zz-shadowed", 4, &["www.example.test"]),
            make_default: false,
        },
    )
    .expect("imported");
    // `site` (first name, same validity) keeps www.example.test: nothing uses `zz-shadowed`.
    assert_eq!(inv.uses_of("zz-shadowed", now), vec![]);
}

/// Without a console setting the snapshot is byte for byte what older builds wrote (the
/// field is left out), so digests agree during an upgrade; with one it round-trips, as do
/// both entries.
#[test]
fn the_setting_is_left_out_of_the_snapshot_while_none_and_round_trips() {
    let mut inv = inventory();
    let without = codec::encode_snapshot(&inv);
    assert!(
        !without.windows(8).any(|w| w == b"\x67console"),
        "no console field while none"
    );
    run(&mut inv, set("site", &["console.example.test"])).expect("set");
    let with = codec::encode_snapshot(&inv);
    assert_eq!(codec::decode_snapshot(&with).expect("decodes"), inv);
    run(&mut inv, Command::ClearConsole).expect("cleared");
    let mut before = codec::decode_snapshot(&without).expect("decodes");
    before.audit = inv.audit.clone();
    assert_eq!(
        codec::encode_snapshot(&before),
        codec::encode_snapshot(&inv),
        "cleared encodes as never set"
    );
    for command in [
        set("site", &["console.example.test"]),
        Command::ClearConsole,
    ] {
        let r = Request::new("admin", 1, command);
        assert_eq!(r.version, 5);
        let bytes = codec::encode_request(&r);
        assert_eq!(codec::decode_request(&bytes).expect("decodes"), r);
    }
}

/// What the admin port is handed: the hostnames and the sealed bundle, as applied.
#[test]
fn console_served_names_the_bundle_as_applied() {
    let mut inv = inventory();
    assert_eq!(inv.console_served(), None);
    run(&mut inv, set("wild", &["console.example.test"])).expect("set");
    let served = inv.console_served().expect("set");
    assert_eq!(served.hostnames, ["console.example.test"]);
    assert_eq!(served.bundle.name, "wild");
    assert_eq!(served.bundle.sealed.id, [2; 32]);
    let full = super::super::ServingDelta::full(&inv);
    assert_eq!(full.console, Some(Some(served)));
}
