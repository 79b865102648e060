//! `certraft console …` against a real node (issue 16, the console's own certificate): the
//! admin port presents the chosen bundle (OpenSSL-made fixtures) to `openssl s_client
//! -servername HOST` and the node certificate to the CLI, which keeps working; `cert show`
//! lists the use; `cert remove` is refused, even with `--force`; `console reset` undoes it;
//! the help teaches what it does and how to undo it. (The cluster side — every node, a
//! rotation, the offline `certraft-node console-reset` — is `node/tests/it/console.rs`.)

use std::path::Path;

use crate::support::node::{Cluster, DataDir};
use crate::support::*;

/// The name the ec256 fixture's leaf carries beside `ec256.example.test`.
const CONSOLE: &str = "www.ec256.example.test";

/// The leaf the admin port at `port` presents to `openssl s_client` sending `sni` (none:
/// `-noservername`), as DER.
#[track_caller]
fn admin_leaf(port: u16, sni: Option<&str>) -> Vec<u8> {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let begin = stdout
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| {
            panic!(
                "no certificate from {port} for {sni:?}:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    pem::parse(&stdout[begin..])
        .expect("the leaf is PEM")
        .contents()
        .to_vec()
}

/// The DER of the first certificate in a PEM file.
fn pem_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pem::parse(text).expect("PEM").contents().to_vec()
}

/// The console certificate through the CLI: set for its hostname, presented to `openssl
/// -servername` while the CLI (by address, no SNI) keeps the node certificate and keeps
/// working; listed by `cert show`; not removable; reset to the node certificate.
#[test]
fn console_cert_serves_browsers_its_bundle_and_the_cli_the_node_certificate() {
    let c = Cluster::single(DataDir::Flag);
    let port = c.nodes[0].admin;
    let node_der = pem_der(&c.nodes[0].data_dir.join("node.pem"));
    let leaf_der = pem_der(&fixture("leaf-ec256.pem"));

    let run = c.cli(0).args(["console", "show"]).run();
    assert!(
        run.exits(0).stdout.contains("no console certificate"),
        "{run}"
    );
    c.cli(0)
        .args(["cert", "import"])
        .fixtures(&["fullchain-ec256.pem", "ec256.key"])
        .run()
        .exits(0);

    // Refusals: no --hostname (usage), a name the bundle does not cover (the server's rule).
    c.cli(0)
        .args(["console", "cert", "ec256.example.test"])
        .run()
        .exits(2);
    let run = c
        .cli(0)
        .args(["console", "cert", "ec256.example.test"])
        .args(["--hostname", "console.other.test", "--json"])
        .run();
    let (code, message) = run.exits(1).json_error();
    assert_eq!(code, "console_not_covered", "{run}");
    assert!(message.contains("console.other.test"), "{run}");

    let run = c
        .cli(0)
        .args([
            "console",
            "cert",
            "ec256.example.test",
            "--hostname",
            CONSOLE,
        ])
        .run();
    run.exits(0);
    assert!(
        run.stdout.contains(&format!(
            "presents ec256.example.test to clients asking for {CONSOLE}"
        )),
        "{run}"
    );
    if have_openssl() {
        assert!(
            admin_leaf(port, Some(CONSOLE)) == leaf_der,
            "the bundle for {CONSOLE}"
        );
        assert!(
            admin_leaf(port, None) == node_der,
            "the node certificate without SNI"
        );
        assert!(
            admin_leaf(port, Some("ec256.example.test")) == node_der,
            "the node certificate for another name the bundle covers"
        );
    }
    // The CLI connects by address and verifies the node certificate: it keeps working.
    c.cli(0).args(["cert", "list"]).run().exits(0);
    let run = c.cli(0).args(["console", "show", "--json"]).run();
    let v = run.exits(0).json();
    assert_eq!(v["name"], "ec256.example.test", "{run}");
    assert_eq!(v["hostnames"][0], CONSOLE, "{run}");

    let run = c.cli(0).args(["cert", "show", "ec256.example.test"]).run();
    run.exits(0);
    for line in [
        "used by:",
        "serve port: the certificate chosen for ec256.example.test, www.ec256.example.test",
        &format!("admin port: the console certificate for {CONSOLE}"),
    ] {
        assert!(run.stdout.contains(line), "no {line:?}: {run}");
    }

    for force in [&[][..], &["--force"][..]] {
        let run = c
            .cli(0)
            .args(["cert", "remove", "ec256.example.test"])
            .args(force)
            .run();
        run.exits(1);
        assert!(
            run.stderr.contains("is the console certificate")
                && run.stderr.contains("certraft console reset"),
            "{run}"
        );
    }

    let run = c.cli(0).args(["console", "reset"]).run();
    assert!(
        run.exits(0)
            .stdout
            .contains("no longer presents ec256.example.test"),
        "{run}"
    );
    let run = c.cli(0).args(["console", "show"]).run();
    assert!(
        run.exits(0).stdout.contains("no console certificate"),
        "{run}"
    );
    if have_openssl() {
        assert!(
            admin_leaf(port, Some(CONSOLE)) == node_der,
            "reset: the node certificate"
        );
    }
    c.cli(0)
        .args(["cert", "remove", "ec256.example.test", "--force"])
        .run()
        .exits(0);
}

/// The help says what the command does, what browsers and the CLI see, and how to undo it.
#[test]
fn console_help_teaches_what_browsers_see_and_how_to_undo() {
    let run = certraft(["console", "cert", "--help"]).run();
    run.exits(0);
    for needle in [
        "browsers",
        "node certificate",
        "--hostname",
        "certraft console reset",
        "certraft-node console-reset",
        "cannot be removed",
    ] {
        assert!(run.stdout.contains(needle), "no {needle:?}: {run}");
    }
    let run = certraft(["console", "reset", "--help"]).run();
    run.exits(0);
    assert!(run.stdout.contains("cluster-wide"), "{run}");
    assert!(
        run.stdout
            .contains("certraft console cert NAME --hostname H"),
        "{run}"
    );
}
