//! End to end: the real `certraft` binary against real `certraft-node` processes
//! (`support::node`), each test with its own nodes on free loopback ports in a temp dir, so
//! the tests run in parallel. Every wait is on a condition, with a timeout.
//!
//! Every `certraft` run has stdin null and no `CERTRAFT_*` variable; the nodes are reached
//! with `--server` and the first node's `ca.pem` and `admin.token`, as an operator would.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::node::{Cluster, DataDir};
use crate::support::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// One certificate as `cert list --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    id: String,
    status: String,
}

/// `cert list --json` through one node: the certificates by name, and the default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inventory {
    certs: BTreeMap<String, Listed>,
    default: Option<String>,
}

impl Inventory {
    fn names(&self) -> Vec<&str> {
        self.certs.keys().map(String::as_str).collect()
    }

    #[track_caller]
    fn id(&self, name: &str) -> &str {
        match self.certs.get(name) {
            Some(l) => &l.id,
            None => panic!("{name} is not listed: {self:?}"),
        }
    }
}

/// `cert list --json` through node `i`; `Err` with the run when it fails.
fn try_inventory(c: &Cluster, i: usize) -> Result<Inventory, String> {
    let run = c.cli(i).args(["cert", "list", "--json"]).run();
    if run.code != Some(0) {
        return Err(run.to_string());
    }
    let v: Value = serde_json::from_str(&run.stdout)
        .map_err(|e| format!("stdout is not JSON ({e}): {run}"))?;
    let text = |v: &Value, key: &str| -> Result<String, String> {
        v[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no string {key:?} in {v}: {run}"))
    };
    let mut certs = BTreeMap::new();
    for cert in v["certs"]
        .as_array()
        .ok_or_else(|| format!("no certs array: {run}"))?
    {
        let listed = Listed {
            id: text(cert, "id")?,
            status: text(cert, "status")?,
        };
        certs.insert(text(cert, "name")?, listed);
    }
    Ok(Inventory {
        certs,
        default: v["default"].as_str().map(str::to_string),
    })
}

/// `cert list --json` through node `i`.
#[track_caller]
fn inventory(c: &Cluster, i: usize) -> Inventory {
    try_inventory(c, i).unwrap_or_else(|e| panic!("cert list failed: {e}"))
}

/// `cert import FIXTURES... --passphrase-file pass.txt -q` through node `i`; the bundle id.
#[track_caller]
fn import(c: &Cluster, i: usize, fixtures: &[&str]) -> String {
    let run = c
        .cli(i)
        .args(["cert", "import"])
        .fixtures(fixtures)
        .passphrase_fixture("pass.txt")
        .arg("-q")
        .run();
    run.exits(0);
    let id = run.stdout.trim().to_string();
    assert!(is_hex64(&id), "-q prints the bundle id only: {run}");
    id
}

/// The permission bits of `path`.
#[cfg(unix)]
#[track_caller]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[track_caller]
fn assert_private(path: &Path) {
    #[cfg(unix)]
    assert_eq!(mode(path), 0o600, "{} is not owner-only", path.display());
}

/// Runs `openssl ARGS...`; panics unless it exits 0; its stdout.
#[track_caller]
fn openssl(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} exited {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------
// 1. The appliance
// ---------------------------------------------------------------------------------------

/// SPEC §2: `certraft-node run` given only its ports, in an empty directory, is a working
/// appliance, and on it `certraft cert list` needs nothing but `--server`: with no
/// `--token-file`, no `--ca-file` and no `CERTRAFT_*` variable, the CLI finds
/// `./certraft-data/admin.token` and `ca.pem`, verifies the node and is answered. The same
/// command from another directory has no CA to verify against (exit 2), so the data dir is
/// what made it work.
#[test]
fn cli_on_the_appliance_finds_token_and_ca_in_the_default_data_dir() {
    let c = Cluster::single(DataDir::WorkingDir);
    let node = &c.nodes[0];
    assert_eq!(node.data_dir, node.cwd.join("certraft-data"));

    let run = certraft(["--server", &node.admin_url(), "cert", "list"])
        .current_dir(&node.cwd)
        .run();
    run.exits(0);
    assert!(run.stdout.contains("no certificates yet"), "{run}");

    let run = certraft(["--server", &node.admin_url(), "cert", "list"])
        .current_dir(c.scratch())
        .run();
    run.exits(2);
    assert!(run.stderr.contains("--ca-file"), "{run}");
}

// ---------------------------------------------------------------------------------------
// 2. Import and the certificate lifecycle
// ---------------------------------------------------------------------------------------

/// `cert import` through a node takes every container OpenSSL makes: legacy PKCS#12
/// (RC2-40/3DES, SHA-1 MAC), OpenSSL 3 PKCS#12, a DER leaf with a scrypt-encrypted PKCS#8
/// key and a PEM chain (the same bundle each time: one id, `already_present`), and an RSA PEM
/// leaf with its PKCS#8 key. `--json` answers with name and id, `-q` prints only the id.
/// `--dry-run` is answered with the name it would get and changes nothing; an expired leaf
/// (refused by the local pre-flight) and a taken name (refused by the cluster) exit 1 with
/// the reason and change nothing.
#[test]
fn cert_import_takes_every_format_and_refusals_change_nothing() {
    let c = Cluster::single(DataDir::Flag);
    let import_cmd = |files: &[&str]| {
        c.cli(0)
            .args(["cert", "import"])
            .fixtures(files)
            .passphrase_fixture("pass.txt")
    };

    let run = import_cmd(&["ec256-legacy.p12"]).arg("--json").run();
    let v = run.exits(0).json();
    assert_eq!(v["outcome"], "imported", "{run}");
    assert_eq!(v["name"], "ec256.example.test", "{run}");
    let ec_id = v["id"].as_str().unwrap_or_default().to_string();
    assert!(is_hex64(&ec_id), "{run}");

    let run = import_cmd(&["ec256.p12"]).arg("-q").run();
    run.exits(0);
    assert_eq!(run.stdout.trim(), ec_id, "same key, leaf and chain: {run}");

    let run = import_cmd(&["leaf-ec256.der", "ec256.enc-scrypt.pem", "chain.pem"])
        .arg("--json")
        .run();
    let v = run.exits(0).json();
    assert_eq!(v["outcome"], "already_present", "{run}");
    assert_eq!(v["id"], ec_id.as_str(), "{run}");

    let rsa_id = import(&c, 0, &["leaf-rsa2048.pem", "rsa2048.key", "chain.pem"]);
    assert_ne!(rsa_id, ec_id);

    let before = inventory(&c, 0);
    assert_eq!(
        before.names(),
        ["ec256.example.test", "rsa2048.example.test"]
    );
    assert_eq!(before.id("ec256.example.test"), ec_id);
    assert_eq!(before.id("rsa2048.example.test"), rsa_id);

    // A dry run is checked by the cluster and named, and writes nothing.
    let run = import_cmd(&["ed25519.p12"])
        .args(["--dry-run", "--json"])
        .run();
    let v = run.exits(0).json();
    assert_eq!(v["outcome"], "dry_run", "{run}");
    assert_eq!(v["name"], "ed25519.example.test", "{run}");
    assert_eq!(inventory(&c, 0), before, "a dry run changed the inventory");

    // Refused before anything is sent: the leaf expired.
    let expired = || {
        c.cli(0)
            .args(["cert", "import"])
            .fixtures(&["leaf-expired.pem", "expired.key"])
    };
    let run = expired().run();
    run.exits(1);
    assert!(
        run.stderr.contains("expired") && run.stderr.contains("--allow-expired"),
        "the reason and the way out: {run}"
    );
    let (code, _) = expired().arg("--json").run().exits(1).json_error();
    assert_eq!(code, "expired");

    // Refused by the cluster: the name belongs to another bundle.
    let run = import_cmd(&["ed25519.p12"])
        .args(["--name", "rsa2048.example.test"])
        .run();
    run.exits(1);
    assert!(run.stderr.contains("rsa2048.example.test"), "{run}");

    assert_eq!(
        inventory(&c, 0),
        before,
        "a refused import changed something"
    );
}

/// `cert show` prints a bundle's details and the hostnames it serves; `cert default NAME`
/// sets the cluster-wide default and `cert default` prints it; `cert remove` of the default
/// exits 1 (`is_default`, pointing at `--force`) and changes nothing, and with `--force`
/// removes it (and the default); `cert rotate OLD FILES...` gives OLD's name and default role
/// to the new bundle and keeps OLD listed as retired, as `OLD~` and the first 12 hex digits of
/// its id. (Regression: `cert rotate --help` said OLD would be renamed `OLD.retired-DATE`.)
#[test]
fn cert_show_default_remove_and_rotate_manage_the_inventory() {
    let c = Cluster::single(DataDir::Flag);
    let ec_id = import(&c, 0, &["ec256.p12"]);
    import(&c, 0, &["leaf-rsa2048.pem", "rsa2048.key", "chain.pem"]);

    let run = c.cli(0).args(["cert", "show", "ec256.example.test"]).run();
    run.exits(0);
    for line in [
        "name:          ec256.example.test".to_string(),
        format!("id:            {ec_id}"),
        "serving now:   ec256.example.test, www.ec256.example.test".to_string(),
        "CN=certraft test intermediate".to_string(),
    ] {
        assert!(run.stdout.contains(&line), "no {line:?}: {run}");
    }
    let run = c
        .cli(0)
        .args(["cert", "show", "ec256.example.test", "--json"])
        .run();
    let v = run.exits(0).json();
    assert_eq!(v["name"], "ec256.example.test", "{run}");
    assert_eq!(v["chain"].as_array().map(Vec::len), Some(3), "{run}");

    // The default: none yet, then set, then shown.
    let run = c.cli(0).args(["cert", "default"]).run();
    run.exits(0);
    assert!(run.stdout.contains("no cluster-wide default"), "{run}");
    let run = c
        .cli(0)
        .args(["cert", "default", "rsa2048.example.test"])
        .run();
    run.exits(0);
    let run = c.cli(0).args(["cert", "default"]).run();
    run.exits(0);
    assert_eq!(run.stdout, "default: rsa2048.example.test\n", "{run}");
    let run = c.cli(0).args(["cert", "default", "-q"]).run();
    assert_eq!(run.exits(0).stdout.trim(), "rsa2048.example.test", "{run}");

    // Removing the default is refused without --force.
    let before = inventory(&c, 0);
    let run = c
        .cli(0)
        .args(["cert", "remove", "rsa2048.example.test"])
        .run();
    run.exits(1);
    assert!(run.stderr.contains("--force"), "{run}");
    let (code, _, _) = c
        .cli(0)
        .args(["cert", "remove", "rsa2048.example.test", "--json"])
        .run()
        .exits(1)
        .json_error_hint();
    assert_eq!(code, "is_default");
    assert_eq!(
        inventory(&c, 0),
        before,
        "a refused removal changed something"
    );

    let run = c
        .cli(0)
        .args(["cert", "remove", "rsa2048.example.test", "--force"])
        .run();
    run.exits(0);
    let after = inventory(&c, 0);
    assert_eq!(after.names(), ["ec256.example.test"]);
    assert_eq!(after.default, None);

    // Rotate: the new bundle (same key and leaf, chain without the root) takes the name and
    // the default; the old one stays, retired.
    c.cli(0)
        .args(["cert", "default", "ec256.example.test"])
        .run()
        .exits(0);
    let run = c
        .cli(0)
        .args(["cert", "rotate", "ec256.example.test"])
        .fixtures(&["leaf-ec256.pem", "ec256.key", "inter.pem"])
        .arg("--json")
        .run();
    let v = run.exits(0).json();
    assert_eq!(v["old"], "ec256.example.test", "{run}");
    assert_eq!(v["new"], "ec256.example.test", "{run}");
    let new_id = v["id"].as_str().unwrap_or_default().to_string();
    assert!(is_hex64(&new_id) && new_id != ec_id, "{run}");
    // The name `cert rotate --help` promises (it used to promise `OLD.retired-DATE`).
    let retired_as = format!("ec256.example.test~{}", &ec_id[..12]);
    assert_eq!(v["retired_as"], retired_as.as_str(), "{run}");

    let rotated = inventory(&c, 0);
    let listed = |name: &str| rotated.certs.get(name).cloned();
    assert_eq!(
        listed("ec256.example.test"),
        Some(Listed {
            id: new_id,
            status: "active".into()
        }),
        "{rotated:?}"
    );
    assert_eq!(
        listed(&retired_as),
        Some(Listed {
            id: ec_id,
            status: "retired".into()
        }),
        "{rotated:?}"
    );
    assert_eq!(rotated.certs.len(), 2, "{rotated:?}");
    assert_eq!(rotated.default.as_deref(), Some("ec256.example.test"));
}

// ---------------------------------------------------------------------------------------
// 3. Export
// ---------------------------------------------------------------------------------------

/// `cert export` writes a PKCS#12 file, mode 0600, that the real `openssl pkcs12` reads
/// without `-legacy` with the export passphrase (leaf subject and chain, and the key);
/// `--format pem` writes the three certificates and no private key; an existing `--out` is
/// refused (nonzero exit, pointing at `--force`) and left byte for byte as it was, and
/// `--force` replaces it and makes it 0600.
#[test]
fn cert_export_writes_private_files_openssl_reads_and_never_clobbers() {
    let c = Cluster::single(DataDir::Flag);
    import(&c, 0, &["ec256.p12"]);
    let pass = fixture("pass.txt");
    let export = |out: &Path| {
        c.cli(0)
            .args(["cert", "export", "ec256.example.test", "--out"])
            .arg(out)
    };

    let p12 = c.scratch().join("site.p12");
    export(&p12).passphrase_fixture("pass.txt").run().exits(0);
    assert_private(&p12);
    if have_openssl() {
        let passin = format!("file:{}", pass.display());
        let base = [
            "pkcs12".as_ref(),
            "-in".as_ref(),
            p12.as_os_str(),
            "-passin".as_ref(),
            passin.as_ref(),
        ];
        let certs = openssl(&[&base[..], &["-nokeys".as_ref()]].concat());
        let subjects: Vec<&str> = certs
            .lines()
            .filter(|l| l.starts_with("subject="))
            .collect();
        assert_eq!(subjects.len(), 3, "leaf, intermediate, root:\n{certs}");
        assert!(
            subjects[0].contains("ec256.example.test"),
            "the leaf comes first:\n{certs}"
        );
        let keys = openssl(&[&base[..], &["-nocerts".as_ref(), "-nodes".as_ref()]].concat());
        assert!(keys.contains("PRIVATE KEY"), "no key in the export");
    }

    let pem = c.scratch().join("site.pem");
    export(&pem).args(["--format", "pem"]).run().exits(0);
    assert_private(&pem);
    let text = std::fs::read_to_string(&pem).expect("read the PEM export");
    assert_eq!(
        text.matches("-----BEGIN CERTIFICATE-----").count(),
        3,
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "the PEM export holds a key");

    let existing = c.scratch().join("existing.p12");
    std::fs::write(&existing, b"precious\n").expect("write a file to protect");
    let run = export(&existing).passphrase_fixture("pass.txt").run();
    assert_ne!(run.code, Some(0), "an existing --out was accepted: {run}");
    assert!(run.stderr.contains("--force"), "{run}");
    assert_eq!(
        std::fs::read(&existing).expect("read the protected file"),
        b"precious\n",
        "the existing file was changed"
    );

    export(&existing)
        .passphrase_fixture("pass.txt")
        .arg("--force")
        .run()
        .exits(0);
    assert_ne!(
        std::fs::read(&existing).expect("read the replaced file"),
        b"precious\n"
    );
    assert_private(&existing);
}

// ---------------------------------------------------------------------------------------
// 4. Exit codes
// ---------------------------------------------------------------------------------------

/// SPEC §2 exit codes from a real node: 4 for a token the cluster does not know (naming the
/// file it came from, never echoing it), 1 for an unknown certificate name, 2 for a usage
/// error, and 3 once the node at `--server` has been stopped with SIGTERM.
#[test]
fn exit_codes_follow_the_spec_against_a_real_node() {
    let mut c = Cluster::single(DataDir::Flag);
    c.cli(0).args(["cert", "list"]).run().exits(0);

    let garbage = c.scratch().join("garbage.token");
    let not_a_token = "cra1_this-is-not-a-token-of-this-cluster";
    std::fs::write(&garbage, format!("{not_a_token}\n")).expect("write the token file");
    let run = c
        .cli_bare(0)
        .arg("--ca-file")
        .arg(c.ca_file())
        .arg("--token-file")
        .arg(&garbage)
        .args(["cert", "list"])
        .run();
    run.exits(4);
    assert!(run.stderr.contains(&garbage.display().to_string()), "{run}");
    assert!(!run.prints(not_a_token), "the token was echoed: {run}");

    let run = c.cli(0).args(["cert", "show", "no-such-cert"]).run();
    run.exits(1);
    assert!(run.stderr.contains("no-such-cert"), "{run}");
    let (code, _, _) = c
        .cli(0)
        .args(["cert", "show", "no-such-cert", "--json"])
        .run()
        .exits(1)
        .json_error_hint();
    assert_eq!(code, "not_found");

    for args in [&["cert", "show"][..], &["cert", "frobnicate"]] {
        let run = c.cli(0).args(args).run();
        run.exits(2);
        assert!(run.stderr.contains("error:"), "{run}");
    }

    c.stop(0);
    let run = c.cli(0).args(["cert", "list"]).run();
    run.exits(3);
    assert!(run.stderr.contains(&c.nodes[0].admin_url()), "{run}");
}

// ---------------------------------------------------------------------------------------
// 5. A cluster
// ---------------------------------------------------------------------------------------

/// A cluster grown and shrunk with the CLI alone: two nodes started with `certraft-node run
/// --join` and tokens from `certraft cluster join-token` become voters (`cluster status
/// --json` shows three voting members); an import sent to the third node's admin URL (with
/// the first node's CA and token) is acknowledged and listed through the second node; and
/// `cluster remove` of the third node's id leaves two members.
#[test]
fn cluster_grows_with_join_tokens_replicates_and_shrinks_through_the_cli() {
    let mut c = Cluster::single(DataDir::Flag);
    let join_token = |c: &Cluster| {
        let run = c.cli(0).args(["cluster", "join-token", "-q"]).run();
        run.exits(0);
        let token = run.stdout.trim().to_string();
        assert!(
            !token.is_empty() && !token.contains(char::is_whitespace),
            "{run}"
        );
        token
    };
    let (t2, t3) = (join_token(&c), join_token(&c));
    assert_ne!(t2, t3, "join tokens are single-use");
    let n2 = c.join(0, &t2);
    let n3 = c.join(0, &t3);
    c.await_answering(n2);
    c.await_answering(n3);

    let members = |s: &Value| -> Vec<(u64, String, bool)> {
        s["members"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    m["id"].as_u64().unwrap_or_default(),
                    m["admin_addr"].as_str().unwrap_or_default().to_string(),
                    m["voting"] == true,
                )
            })
            .collect()
    };
    let status = c.wait_for("`cluster status` to show 3 voting members", || {
        let s = c.status(0)?;
        let m = members(&s);
        if s["leader"].is_u64() && m.len() == 3 && m.iter().all(|(_, _, voting)| *voting) {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    let id_of = |node: usize| -> u64 {
        let addr = c.nodes[node].admin_addr();
        members(&status)
            .into_iter()
            .find(|(_, a, _)| *a == addr)
            .unwrap_or_else(|| panic!("no member has admin address {addr}: {status}"))
            .0
    };
    let (id1, id2, id3) = (id_of(0), id_of(n2), id_of(n3));

    let id = import(&c, n3, &["ec256.p12"]);
    c.wait_for("node 2 to list the import made through node 3", || {
        let inv = try_inventory(&c, n2)?;
        match inv.certs.get("ec256.example.test") {
            Some(l) if l.id == id => Ok(()),
            _ => Err(format!("{inv:?}")),
        }
    });

    // The leader turns on revocation once every member can apply it.
    c.wait_for("the revoke_removed_members feature", || {
        let s = c.status(0)?;
        if s["features"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "revoke_removed_members"))
        {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    // Once removed, node 3 may stop on its own.
    c.may_exit(n3);
    c.cli(0)
        .args(["cluster", "remove", &id3.to_string()])
        .run()
        .exits(0);
    c.wait_for("`cluster status` to show 2 members", || {
        let s = c.status(0)?;
        let mut ids: Vec<u64> = members(&s).iter().map(|m| m.0).collect();
        ids.sort_unstable();
        let mut want = vec![id1, id2];
        want.sort_unstable();
        if ids == want {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    // Every remaining node lists the removed node's certificate beside its ca.pem, where
    // the CLI reads it and refuses that certificate from then on (issue 19).
    let pem = std::fs::read(c.nodes[n3].data_dir.join("node.pem")).expect("node 3's node.pem");
    let der = pem::parse(&pem).expect("node.pem is PEM").into_contents();
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let line = format!("{sha} node-{id3}");
    for node in [0, n2] {
        let path = c.nodes[node]
            .data_dir
            .join(certraft::api::dto::REVOKED_NODES_FILE);
        c.wait_for("the removed node's certificate on the revoked list", || {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            if text.lines().any(|l| l == line) {
                Ok(())
            } else {
                Err(text)
            }
        });
    }
    let run = c
        .cli_bare(0)
        .args(["--json", "cluster", "status", "--ca-file"])
        .arg(c.ca_file())
        .arg("--token-file")
        .arg(c.token_file())
        .run();
    run.exits(0);
}

// ---------------------------------------------------------------------------------------
// 6. Backup
// ---------------------------------------------------------------------------------------

/// `backup create` writes the whole inventory to a passphrase-sealed file, mode 0600; after a
/// certificate is removed, `backup restore` with the wrong passphrase exits 1 saying so and
/// changes nothing, and with the right one brings the certificate back, listed under its name
/// and id as before.
#[test]
fn backup_restore_brings_back_a_removed_certificate() {
    let c = Cluster::single(DataDir::Flag);
    import(&c, 0, &["ec256.p12"]);
    import(&c, 0, &["leaf-rsa2048.pem", "rsa2048.key", "chain.pem"]);
    let before = inventory(&c, 0);

    let backup = c.scratch().join("site.backup");
    let run = c
        .cli(0)
        .args(["backup", "create", "--out"])
        .arg(&backup)
        .passphrase_fixture("pass.txt")
        .arg("--json")
        .run();
    assert_eq!(run.exits(0).json()["bundles"], 2, "{run}");
    assert_private(&backup);

    c.cli(0)
        .args(["cert", "remove", "ec256.example.test", "--force"])
        .run()
        .exits(0);
    let removed = inventory(&c, 0);
    assert_eq!(removed.names(), ["rsa2048.example.test"]);

    let restore = || c.cli(0).args(["backup", "restore"]).arg(&backup);
    let run = restore().passphrase_fixture("wrong-pass.txt").run();
    run.exits(1);
    assert!(run.stderr.contains("passphrase"), "{run}");
    assert_eq!(
        inventory(&c, 0),
        removed,
        "a refused restore changed something"
    );

    let run = restore().passphrase_fixture("pass.txt").arg("--json").run();
    let v = run.exits(0).json();
    assert_eq!(
        v["restored"],
        serde_json::json!(["ec256.example.test"]),
        "{run}"
    );
    assert_eq!(inventory(&c, 0), before);
}
