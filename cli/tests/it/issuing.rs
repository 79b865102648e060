//! Certificates born in the cluster, through the binary: `csr` (with `openssl` as the CA, for
//! every key type), `cert issue` and its renewal block, `issuer local`, and `notify` webhooks
//! (a scripted TLS receiver checks the signature), against real `certraft-node` processes
//! (`support::node`); plus what the CLI sends and refuses on its own (`support::admin`).
//!
//! Every wait is on a condition: each command here returns once the cluster has committed.

use std::path::{Path, PathBuf};
use std::process::Command;

use certraft::api::dto::{CsrInfo, ImportOutcome, ImportResponse};
use certraft::inventory::KeyType;
use certraft_cluster_tests::ports::free_port;
use serde_json::Value;

use crate::support::admin::{answer, ok_json, MockAdmin};
use crate::support::node::{Cluster, DataDir};
use crate::support::*;

// ---------------------------------------------------------------------------------------
// Helpers: openssl as the CA
// ---------------------------------------------------------------------------------------

/// Runs `openssl ARGS…` in `dir`; panics unless it exits 0; its stdout and stderr.
#[track_caller]
fn openssl<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: impl IntoIterator<Item = S>) -> String {
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "openssl {args:?} exited {}\n{text}",
        out.status
    );
    text
}

/// A throwaway CA made by `openssl req -x509` (P-256) in `dir`, set up for both
/// `openssl x509 -req` and `openssl ca`.
struct OpensslCa {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl OpensslCa {
    fn new(dir: &Path) -> OpensslCa {
        let dir = dir.join("openssl-ca");
        std::fs::create_dir_all(dir.join("newcerts")).expect("CA dir");
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        openssl(
            &dir,
            [
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=certraft test openssl CA",
                "-days",
                "60",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        std::fs::write(dir.join("index.txt"), "").expect("index.txt");
        std::fs::write(dir.join("serial"), "1000\n").expect("serial");
        let config = format!(
            "[ca]\ndefault_ca = test_ca\n\
             [test_ca]\ndir = {dir}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\n\
             serial = $dir/serial\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n\
             default_md = sha256\ndefault_days = 30\npolicy = policy_any\n\
             copy_extensions = copy\nunique_subject = no\nx509_extensions = leaf\n\
             [policy_any]\ncommonName = supplied\n\
             [leaf]\nbasicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("ca.cnf"), config).expect("ca.cnf");
        OpensslCa { dir, cert, key }
    }

    /// `openssl x509 -req … -copy_extensions copy`: the SANs come from the CSR.
    fn sign_x509(&self, csr: &Path, out: &Path) {
        openssl(
            &self.dir,
            [
                "x509".as_ref(),
                "-req".as_ref(),
                "-in".as_ref(),
                csr.as_os_str(),
                "-CA".as_ref(),
                self.cert.as_os_str(),
                "-CAkey".as_ref(),
                self.key.as_os_str(),
                "-CAcreateserial".as_ref(),
                "-copy_extensions".as_ref(),
                "copy".as_ref(),
                "-days".as_ref(),
                "30".as_ref(),
                "-out".as_ref(),
                out.as_os_str(),
            ],
        );
    }

    /// `openssl ca -batch` with a minimal config (index, serial, `copy_extensions = copy`).
    fn sign_ca(&self, csr: &Path, out: &Path) {
        openssl(
            &self.dir,
            [
                "ca".as_ref(),
                "-batch".as_ref(),
                "-notext".as_ref(),
                "-config".as_ref(),
                self.dir.join("ca.cnf").as_os_str(),
                "-in".as_ref(),
                csr.as_os_str(),
                "-out".as_ref(),
                out.as_os_str(),
            ],
        );
    }
}

/// A key and CSR made by openssl itself (not the cluster), for `names`.
fn openssl_csr(dir: &Path, stem: &str, names: &[&str]) -> PathBuf {
    let csr = dir.join(format!("{stem}.csr"));
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    openssl(
        dir,
        [
            "req".as_ref(),
            "-new".as_ref(),
            "-newkey".as_ref(),
            "ec".as_ref(),
            "-pkeyopt".as_ref(),
            "ec_paramgen_curve:P-256".as_ref(),
            "-nodes".as_ref(),
            "-keyout".as_ref(),
            dir.join(format!("{stem}.key")).as_os_str(),
            "-out".as_ref(),
            csr.as_os_str(),
            "-subj".as_ref(),
            format!("/CN={}", names[0]).as_ref(),
            "-addext".as_ref(),
            format!("subjectAltName={san}").as_ref(),
        ],
    );
    csr
}

/// `ARGS --json` through node 0; panics unless it exits 0.
#[track_caller]
fn json(c: &Cluster, args: &[&str]) -> Value {
    let run = c.cli(0).args(args).arg("--json").run();
    run.exits(0);
    run.json()
}

/// The names in a `csr list --json`, `cert list --json` (`certs`) or `notify list --json`
/// (`targets`) answer.
fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {v}"))
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect()
}

/// Everything an operator could see change: pending CSRs, bundles, webhooks, issuer count.
fn state(c: &Cluster) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        names(&json(c, &["csr", "list"]), "csrs"),
        names(&json(c, &["cert", "list"]), "certs"),
        names(&json(c, &["notify", "list"]), "targets"),
    )
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. CSRs, with openssl as the CA
// ---------------------------------------------------------------------------------------

/// For every key type: `csr create` makes a CSR that `openssl req -verify` accepts and that
/// names the CN and SANs asked for; an openssl CA signs it (`openssl ca` for RSA-2048,
/// `openssl x509 -req -copy_extensions copy` for the others); `csr complete` turns the key
/// and the CA's answer into a complete bundle of that name, with the SANs and key type;
/// and the CSR is no longer pending.
#[test]
fn csr_round_trip_through_openssl_as_the_ca_for_every_key_type() {
    if !have_openssl() {
        return;
    }
    let c = Cluster::single(DataDir::Flag);
    let dir = c.scratch();
    let ca = OpensslCa::new(&dir);
    for key in KeyType::ALL {
        let name = format!("csr-{}", key.name());
        let (host, alt) = (format!("{name}.test"), format!("alt.{name}.test"));
        let csr = dir.join(format!("{name}.csr"));
        let run = c
            .cli(0)
            .args(["csr", "create", "--name", &name, "--cn", &host])
            .args(["--san", &format!("{host},{alt}"), "--key", key.name()])
            .arg("--out")
            .arg(&csr)
            .args(["--timeout", "300"])
            .run();
        run.exits(0);
        assert!(
            run.stdout.contains(&format!("wrote {}", csr.display())),
            "{run}"
        );
        assert!(
            run.stdout.contains(&format!(
                "then `certraft csr complete {name} CERT [CHAIN...]`"
            )),
            "says what to do next: {run}"
        );

        let checked = openssl(
            &dir,
            [
                "req".as_ref(),
                "-in".as_ref(),
                csr.as_os_str(),
                "-verify".as_ref(),
                "-noout".as_ref(),
                "-text".as_ref(),
            ],
        );
        assert!(checked.contains("verify OK"), "{key}: {checked}");
        for needle in [
            format!("CN = {host}"),
            format!("DNS:{host}"),
            format!("DNS:{alt}"),
        ] {
            assert!(
                checked.contains(&needle),
                "{key}: {needle} not in\n{checked}"
            );
        }

        // The PEM shown again is the one written.
        let shown = c.cli(0).args(["csr", "show", &name]).run();
        shown.exits(0);
        assert_eq!(
            shown.stdout.trim(),
            std::fs::read_to_string(&csr).expect("csr").trim(),
            "{shown}"
        );
        let listed = c.cli(0).args(["csr", "list"]).run();
        listed.exits(0);
        assert!(
            listed
                .stdout
                .lines()
                .any(|l| l.starts_with(&name) && l.contains(key.name())),
            "{listed}"
        );

        let leaf = dir.join(format!("{name}.crt"));
        if key == KeyType::Rsa2048 {
            ca.sign_ca(&csr, &leaf);
        } else {
            ca.sign_x509(&csr, &leaf);
        }
        let run = c
            .cli(0)
            .args(["csr", "complete", &name])
            .arg(&leaf)
            .arg(&ca.cert)
            .arg("--json")
            .run();
        run.exits(0);
        let done = run.json();
        assert_eq!(done["outcome"], "imported", "{run}");
        assert_eq!(done["name"], name.as_str(), "{run}");
        assert_eq!(done["completeness"], "complete", "{run}");
        assert!(is_hex64(done["id"].as_str().unwrap_or("")), "{run}");

        let show = json(&c, &["cert", "show", &name]);
        let mut hosts = strs(&show["hostnames"]);
        hosts.sort();
        let mut want = vec![alt.clone(), host.clone()];
        want.sort();
        assert_eq!(hosts, want, "{key}: {show}");
        assert_eq!(show["key"], key.name(), "{key}: {show}");
        assert_eq!(show["completeness"], "complete", "{show}");
        assert!(
            !names(&json(&c, &["csr", "list"]), "csrs").contains(&name),
            "{name} is still pending after completion"
        );
        let gone = c.cli(0).args(["csr", "show", &name, "--json"]).run();
        gone.exits(1);
        assert_eq!(gone.json_error().0, "csr_not_found", "{gone}");
    }
    assert_eq!(
        names(&json(&c, &["cert", "list"]), "certs").len(),
        KeyType::ALL.len()
    );
}

/// Completing a CSR with a certificate for another key (an openssl-made CSR for the same
/// names, signed by the same CA) is refused, exit 1, naming the CSR and its key; nothing
/// changes: the CSR is still pending and no bundle of its name exists. The right
/// certificate then completes it, and a second CSR completed under the same bundle name
/// (`--name`) rotates it, the old bundle kept as retired.
#[test]
fn completing_a_csr_with_a_certificate_for_another_key_is_refused_and_changes_nothing() {
    if !have_openssl() {
        return;
    }
    let c = Cluster::single(DataDir::Flag);
    let dir = c.scratch();
    let ca = OpensslCa::new(&dir);
    let csr = dir.join("shop.csr");
    c.cli(0)
        .args(["csr", "create", "--name", "shop", "--cn", "shop.test"])
        .args(["--san", "shop.test", "--out"])
        .arg(&csr)
        .run()
        .exits(0);
    let before = state(&c);

    let foreign = openssl_csr(&dir, "foreign", &["shop.test"]);
    let wrong = dir.join("foreign.crt");
    ca.sign_x509(&foreign, &wrong);
    let run = c
        .cli(0)
        .args(["csr", "complete", "shop"])
        .arg(&wrong)
        .arg(&ca.cert)
        .run();
    run.exits(1);
    assert!(run.stderr.contains("csr shop"), "names the CSR: {run}");
    assert!(run.stderr.contains("key"), "says it is the key: {run}");
    let json_run = c
        .cli(0)
        .args(["csr", "complete", "shop"])
        .arg(&wrong)
        .arg(&ca.cert)
        .arg("--json")
        .run();
    json_run.exits(1);
    assert_eq!(json_run.json_error_hint().0, "key_mismatch", "{json_run}");

    assert_eq!(state(&c), before, "a refused completion changed something");
    assert!(before.0.contains(&"shop".to_string()));
    let show = c.cli(0).args(["cert", "show", "shop"]).run();
    show.exits(1);

    let right = dir.join("shop.crt");
    ca.sign_x509(&csr, &right);
    let run = c
        .cli(0)
        .args(["csr", "complete", "shop"])
        .arg(&right)
        .arg(&ca.cert)
        .run();
    run.exits(0);
    assert!(
        run.stdout.contains("completed csr shop: imported shop"),
        "{run}"
    );
    assert_eq!(
        state(&c),
        (vec![], vec!["shop".to_string()], vec![]),
        "completed: no CSR pending, one bundle"
    );

    // A CSR completed into an existing bundle's name rotates it; the old one is retired.
    let csr2 = dir.join("shop2.csr");
    c.cli(0)
        .args(["csr", "create", "--name", "shop2", "--cn", "shop.test"])
        .args(["--san", "shop.test", "--key", "ed25519", "--out"])
        .arg(&csr2)
        .run()
        .exits(0);
    let next = dir.join("shop2.crt");
    ca.sign_x509(&csr2, &next);
    let run = c
        .cli(0)
        .args(["csr", "complete", "shop2", "--name", "shop"])
        .arg(&next)
        .arg(&ca.cert)
        .arg("--json")
        .run();
    run.exits(0);
    let done = run.json();
    assert_eq!(done["outcome"], "rotated", "{run}");
    let retired = done["retired_as"].as_str().expect("retired_as").to_string();
    assert!(retired.starts_with("shop~"), "{run}");
    assert_eq!(
        state(&c),
        (vec![], vec!["shop".to_string(), retired], vec![]),
        "rotated: the new bundle serves, the old one is kept retired"
    );
    assert_eq!(json(&c, &["cert", "show", "shop"])["key"], "ed25519");
}

// ---------------------------------------------------------------------------------------
// 2. Bad input
// ---------------------------------------------------------------------------------------

/// A table of bad input — an unknown key type, a SAN that is not a DNS name, a CSR name
/// already pending, an unknown CSR, a plain-http webhook, an out-of-range renewal share or
/// lifetime, conflicting lifetime flags, an unknown issuer, a short webhook secret — each
/// refused with its exit code and a message that says what is wrong, and each leaving the
/// CSRs, bundles and webhooks exactly as they were.
#[test]
fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let c = Cluster::single(DataDir::Flag);
    let dir = c.scratch();
    c.cli(0)
        .args(["csr", "create", "--name", "dup", "--cn", "dup.test"])
        .args(["--san", "dup.test"])
        .run()
        .exits(0);
    let cert = dir.join("any.crt");
    std::fs::copy(fixture("leaf-ec256.pem"), &cert).expect("copy a certificate");
    let short_secret = dir.join("short.secret");
    std::fs::write(&short_secret, "tooshort\n").expect("secret");
    let before = state(&c);
    assert_eq!(before.0, ["dup"]);

    let cert = cert.display().to_string();
    let short_secret = short_secret.display().to_string();
    let create = ["csr", "create", "--name", "x", "--cn", "x.test"];
    let issue = ["cert", "issue", "web", "--san", "web.test"];
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            [&create[..], &["--san", "x.test", "--key", "dsa-1024"]].concat(),
            2,
            "unknown key type \"dsa-1024\"; use one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519",
        ),
        (
            [&create[..], &["--san", "bad name!"]].concat(),
            1,
            "\"bad name!\" is not a DNS name",
        ),
        (
            vec!["csr", "create", "--name", "dup", "--cn", "dup.test", "--san", "dup.test"],
            1,
            "a CSR named dup is already pending",
        ),
        (
            vec!["csr", "complete", "nosuch", &cert],
            1,
            "no pending CSR named nosuch",
        ),
        (vec!["csr", "remove", "nosuch"], 1, "no pending CSR named nosuch"),
        (
            vec!["notify", "add", "--name", "hook", "--url", "http://hooks.test/x"],
            2,
            "is not an https:// URL",
        ),
        (
            vec![
                "notify", "add", "--name", "hook", "--url", "https://hooks.test/x",
                "--secret-file", &short_secret,
            ],
            1,
            "the secret has 8 bytes",
        ),
        (vec!["notify", "remove", "nosuch"], 1, "no notify target named nosuch"),
        ([&issue[..], &["--renew-at", "5"]].concat(), 2, "--renew-at"),
        ([&issue[..], &["--days", "400"]].concat(), 2, "--days"),
        ([&issue[..], &["--lifetime", "30s"]].concat(), 2, "outside 60s to 398d"),
        (
            [&issue[..], &["--days", "3", "--lifetime", "10m"]].concat(),
            2,
            "cannot be used with",
        ),
        (
            [&issue[..], &["--issuer", "letsencrypt"]].concat(),
            1,
            "no issuer named \"letsencrypt\"",
        ),
        (
            vec!["cert", "issue", "web", "--san", "bad name!"],
            1,
            "\"bad name!\" is not a DNS name",
        ),
    ];
    for (args, exit, message) in &cases {
        let run = c.cli(0).args(args).run();
        run.exits(*exit);
        assert!(run.stderr.contains(message), "expected {message:?}: {run}");
        let run = c.cli(0).args(args).arg("--json").run();
        run.exits(*exit);
        let (_, text, _) = run.json_error_hint();
        assert!(!text.is_empty(), "{run}");
        assert_eq!(state(&c), before, "changed by {args:?}");
    }
}

// ---------------------------------------------------------------------------------------
// 3. cert issue and the local issuer
// ---------------------------------------------------------------------------------------

/// `cert issue` makes a certificate whose key is born in the cluster: the output says it
/// renews at about two thirds of its lifetime; `cert show` has the renewal block (issuer,
/// key, next attempt, no attempt yet, no failures, no renewals); `--renew-at 50` is sent as
/// 500‰; the issuer counts them; and `openssl verify` accepts the exported leaf against the
/// issuer certificate `issuer local --pem` prints, with the SANs asked for.
#[test]
fn issued_certificates_show_their_renewal_and_verify_against_the_local_issuer() {
    let c = Cluster::single(DataDir::Flag);
    let dir = c.scratch();
    let run = c
        .cli(0)
        .args(["cert", "issue", "web", "--san", "web.test,www.web.test"])
        .run();
    run.exits(0);
    assert!(run.stdout.starts_with("issued web (id "), "{run}");
    assert!(
        run.stdout
            .contains("renews automatically at about two thirds of its lifetime"),
        "{run}"
    );

    let show = c.cli(0).args(["cert", "show", "web"]).run();
    show.exits(0);
    let block = show
        .stdout
        .split_once("renewal:\n")
        .unwrap_or_else(|| panic!("no renewal block: {show}"))
        .1;
    for needle in [
        "issuer:        local",
        "key:           ec-p256",
        "lifetime:      90d, renewed at 66.7% of it",
        "next attempt:  ",
        "last attempt:  none yet",
        "failures:      0 in a row",
        "renewals:      0",
    ] {
        assert!(block.contains(needle), "{needle:?} missing: {show}");
    }

    let run = c
        .cli(0)
        .args([
            "cert", "issue", "api", "--san", "api.test", "--key", "rsa-2048",
        ])
        .args(["--lifetime", "10m", "--renew-at", "50", "--json"])
        .run();
    run.exits(0);
    let detail = json(&c, &["cert", "show", "api"]);
    assert_eq!(detail["renewal"]["renew_at_permille"], 500, "{detail}");
    assert_eq!(detail["renewal"]["lifetime_secs"], 600, "{detail}");
    assert_eq!(detail["renewal"]["key"], "rsa-2048", "{detail}");
    assert_eq!(detail["key"], "rsa-2048", "{detail}");
    let plain = json(&c, &["cert", "show", "web"]);
    assert_eq!(plain["renewal"]["renew_at_permille"], 667, "{plain}");

    let issuer = c.cli(0).args(["issuer", "local"]).run();
    issuer.exits(0);
    assert!(
        issuer.stdout.contains("managed:    2 certificates"),
        "{issuer}"
    );
    let listed = c.cli(0).args(["issuer", "list"]).run();
    listed.exits(0);
    assert!(
        listed
            .stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("local")),
        "{listed}"
    );

    if !have_openssl() {
        return;
    }
    let pem = c.cli(0).args(["issuer", "local", "--pem"]).run();
    pem.exits(0);
    assert!(
        pem.stdout.starts_with("-----BEGIN CERTIFICATE-----"),
        "{pem}"
    );
    let issuer_pem = dir.join("issuer.pem");
    std::fs::write(&issuer_pem, &pem.stdout).expect("issuer.pem");
    let leaf = dir.join("web.pem");
    c.cli(0)
        .args(["cert", "export", "web", "--format", "pem", "--out"])
        .arg(&leaf)
        .run()
        .exits(0);
    let verified = openssl(
        &dir,
        [
            "verify".as_ref(),
            "-CAfile".as_ref(),
            issuer_pem.as_os_str(),
            leaf.as_os_str(),
        ],
    );
    assert!(verified.contains(": OK"), "{verified}");
    let sans = openssl(
        &dir,
        [
            "x509".as_ref(),
            "-in".as_ref(),
            leaf.as_os_str(),
            "-noout".as_ref(),
            "-ext".as_ref(),
            "subjectAltName".as_ref(),
        ],
    );
    assert!(
        sans.contains("DNS:web.test") && sans.contains("DNS:www.web.test"),
        "{sans}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. notify
// ---------------------------------------------------------------------------------------

/// HMAC-SHA256 (RFC 2104) over SHA-256, hex: what a receiver computes.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// A webhook added with a secret file and its own CA receives `notify test` as a POST whose
/// `x-certraft-signature` is `t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")`; `notify list`
/// shows its thresholds; a webhook added without a secret gets one made by the cluster,
/// printed once with how to verify and never listed; a receiver that is down makes
/// `notify test` exit 1 with the cluster's reason; `notify remove` removes it.
#[test]
fn webhooks_receive_signed_notices_and_a_made_secret_is_shown_once() {
    let c = Cluster::single(DataDir::Flag);
    let dir = c.scratch();
    let receiver = MockAdmin::serve(vec![answer(200, "{}")]);
    let secret = "0123456789abcdef-receiver-secret";
    let secret_file = dir.join("hook.secret");
    std::fs::write(&secret_file, format!("{secret}\nnot this line\n")).expect("secret");

    let url = format!("{}/hook", receiver.url);
    let run = c
        .cli(0)
        .args(["notify", "add", "--name", "hook", "--url", &url])
        .arg("--secret-file")
        .arg(&secret_file)
        .arg("--receiver-ca-file")
        .arg(&receiver.ca_file)
        .args(["--before", "14d,1d"])
        .run();
    run.exits(0);
    assert!(
        !run.prints(secret),
        "the given secret is never printed: {run}"
    );
    let listed = c.cli(0).args(["notify", "list"]).run();
    listed.exits(0);
    let row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with("hook"))
        .unwrap_or_else(|| panic!("hook not listed: {listed}"));
    assert!(row.contains(&url) && row.contains("14d/1d"), "{listed}");

    let tested = c.cli(0).args(["notify", "test", "hook"]).run();
    tested.exits(0);
    assert!(
        tested
            .stdout
            .contains("answered the test notice with HTTP 200 in "),
        "{tested}"
    );
    let post = receiver.request();
    assert_eq!(
        (post.method.as_str(), post.target.as_str()),
        ("POST", "/hook")
    );
    let signature = post
        .header("x-certraft-signature")
        .unwrap_or_else(|| panic!("no signature header: {post:?}"));
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature is not t=…,v1=…: {signature}"));
    let signed = [t.as_bytes(), b".", &post.body].concat();
    assert_eq!(
        v1,
        hmac_sha256_hex(secret.as_bytes(), &signed),
        "{signature}"
    );

    let made = c
        .cli(0)
        .args([
            "notify",
            "add",
            "--name",
            "ops",
            "--url",
            "https://ops.test/in",
        ])
        .run();
    made.exits(0);
    let line = made
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no secret shown: {made}"));
    assert!(line.len() >= 32, "{made}");
    assert!(made.stdout.contains("shown only now"), "{made}");
    assert!(
        made.stdout
            .contains("x-certraft-signature: t=<unix>,v1=<hex>"),
        "{made}"
    );
    let listed = c.cli(0).args(["notify", "list", "--json"]).run();
    listed.exits(0);
    assert!(!listed.prints(line), "a secret is never listed: {listed}");

    let down = format!("https://127.0.0.1:{}/hook", free_port());
    c.cli(0)
        .args(["notify", "add", "--name", "down", "--url", &down])
        .run()
        .exits(0);
    let failed = c.cli(0).args(["notify", "test", "down"]).run();
    failed.exits(1);
    assert!(
        failed
            .stderr
            .contains(&format!("the test notice to {down} failed")),
        "{failed}"
    );

    for name in ["hook", "ops", "down"] {
        c.cli(0).args(["notify", "remove", name]).run().exits(0);
    }
    assert_eq!(
        names(&json(&c, &["notify", "list"]), "targets"),
        Vec::<String>::new()
    );
}

// ---------------------------------------------------------------------------------------
// 5. The CLI alone (a scripted endpoint): what it sends, its help
// ---------------------------------------------------------------------------------------

/// What the CLI sends: `--san` repeated and comma-separated, the key type by name;
/// `--renew-at 66` as 660‰ and `--lifetime 10m` as 600 s; `--days 30` in seconds; `-q`
/// answers with the PEM or the id.
#[test]
fn issuing_commands_send_what_was_asked() {
    let csr = CsrInfo {
        name: "www".into(),
        key: KeyType::Rsa4096,
        common_name: "www.test".into(),
        sans: vec!["www.test".into(), "a.test".into(), "b.test".into()],
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n"
            .into(),
        spki_sha256: "ab".repeat(32),
        created_at: "2025-01-01T00:00:00Z".into(),
        created_by: "admin".into(),
        index: Some(3),
    };
    let issued = ImportResponse {
        outcome: ImportOutcome::Imported,
        name: "web".into(),
        id: "cd".repeat(32),
        hostnames: vec!["web.test".into()],
        not_after: "2099-01-01T00:00:00Z".into(),
        completeness: "complete".into(),
        warnings: vec![],
        index: Some(4),
    };
    let mock = MockAdmin::serve(vec![ok_json(&csr), ok_json(&issued), ok_json(&issued)]);

    let run = mock
        .certraft(["csr", "create", "--name", "www", "--cn", "www.test"])
        .args([
            "--san",
            "www.test",
            "--san",
            "a.test,b.test",
            "--key",
            "RSA-4096",
            "-q",
        ])
        .run();
    run.exits(0);
    assert_eq!(run.stdout, csr.csr_pem, "{run}");
    let sent = mock.request();
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("POST", "/api/v1/csrs")
    );
    let body = sent.json();
    assert_eq!(
        body["sans"],
        serde_json::json!(["www.test", "a.test", "b.test"])
    );
    assert_eq!(body["key"], "rsa-4096");
    assert_eq!(body["common_name"], "www.test");

    let run = mock
        .certraft([
            "cert",
            "issue",
            "web",
            "--san",
            "web.test",
            "--renew-at",
            "66",
        ])
        .args(["--lifetime", "10m", "--default", "-q"])
        .run();
    run.exits(0);
    assert_eq!(run.stdout.trim(), issued.id, "{run}");
    let body = mock.request().json();
    assert_eq!(body["renew_at_permille"], 660, "{body}");
    assert_eq!(body["lifetime_secs"], 600, "{body}");
    assert_eq!(body["make_default"], true, "{body}");
    assert_eq!(body["key"], "ec-p256", "{body}");

    let run = mock
        .certraft(["cert", "issue", "web", "--san", "web.test", "--days", "30"])
        .run();
    run.exits(0);
    assert!(
        run.stdout
            .contains("renews automatically at about two thirds"),
        "{run}"
    );
    let body = mock.request().json();
    assert_eq!(body["lifetime_secs"], 30 * 86_400, "{body}");
    assert!(body.get("renew_at_permille").is_none(), "{body}");
    mock.no_request();
}

/// Usage errors of the new commands exit 2 before anything is sent, and every new command's
/// --help teaches: a purpose, examples of itself, the usage line.
#[test]
fn issuing_commands_have_help_and_refuse_bad_usage_before_sending() {
    let mock = MockAdmin::serve(vec![]);
    let usage: &[&[&str]] = &[
        &["csr", "create", "--name", "x", "--cn", "x"],
        &[
            "csr", "create", "--name", "x", "--cn", "x", "--san", "x", "--key", "dsa",
        ],
        &["csr", "complete", "x"],
        &["cert", "issue", "x"],
        &["cert", "issue", "x", "--san", "x", "--renew-at", "96"],
        &["cert", "issue", "x", "--san", "x", "--days", "0"],
        &["cert", "issue", "x", "--san", "x", "--lifetime", "soon"],
        &["notify", "add", "--name", "x", "--url", "ftp://x"],
        &[
            "notify",
            "add",
            "--name",
            "x",
            "--url",
            "https://x",
            "--before",
            "0s",
        ],
    ];
    for args in usage {
        let run = mock.certraft(*args).run();
        run.exits(2);
        assert!(run.stderr.contains("error:"), "{run}");
    }
    mock.no_request();

    let commands: &[&[&str]] = &[
        &["csr"],
        &["csr", "create"],
        &["csr", "list"],
        &["csr", "show"],
        &["csr", "complete"],
        &["csr", "remove"],
        &["issuer"],
        &["issuer", "local"],
        &["issuer", "list"],
        &["cert", "issue"],
        &["notify"],
        &["notify", "add"],
        &["notify", "list"],
        &["notify", "remove"],
        &["notify", "test"],
    ];
    for command in commands {
        let run = certraft(*command).arg("--help").run();
        run.exits(0);
        assert!(run.stdout.contains("Examples:"), "no examples: {run}");
        let example = format!("certraft {}", command.join(" "));
        assert!(run.stdout.contains(&example), "no example of itself: {run}");
        assert!(run.stdout.contains("Usage:"), "{run}");
    }
}

/// ACME through the binary against a real CA (pebble): `issuer acme add` registers the
/// account (its CA file given as `--directory-ca-file`, the global `--ca-file` staying the
/// cluster's), `cert issue --issuer` waits and prints each step until the node's HTTP port
/// has answered the challenge and the certificate is served, `cert show` says so, and the
/// issuer cannot be removed while it is used. Half an EAB pair is a usage error.
#[test]
fn an_acme_certificate_is_obtained_and_shown_through_the_cli() {
    use certraft_cluster_tests::pebble::{Pebble, PebbleOptions};
    let c = Cluster::single(DataDir::Flag);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(ca) = rt.block_on(Pebble::start(PebbleOptions {
        http_port: c.nodes[0].http,
        ..Default::default()
    })) else {
        return;
    };
    let dir = c.scratch();
    let ca_file = dir.join("pebble-https.pem");
    std::fs::write(&ca_file, ca.ca_pem()).expect("write CA");
    let directory = ca.directory_url();

    let half = c
        .cli(0)
        .args(["issuer", "acme", "add", "lab", "--directory", &directory])
        .args(["--email", "ops@example.com", "--eab-kid", "kid"])
        .run();
    half.exits(2);

    let added = c
        .cli(0)
        .args(["issuer", "acme", "add", "lab", "--directory", &directory])
        .args(["--email", "ops@example.com", "--directory-ca-file"])
        .arg(&ca_file)
        .run();
    added.exits(0);
    assert!(
        added
            .stdout
            .contains("registered ACME account for issuer lab"),
        "{added}"
    );
    assert!(
        added.stdout.contains("account:    https://127.0.0.1:"),
        "{added}"
    );

    let issued = c
        .cli(0)
        .args([
            "cert",
            "issue",
            "www",
            "--san",
            "www.acme.test",
            "--issuer",
            "lab",
        ])
        .run();
    issued.exits(0);
    assert!(
        issued
            .stdout
            .starts_with("issued www from ACME issuer lab, ec-p256 key, by http-01"),
        "{issued}"
    );
    assert!(
        issued.stderr.contains("www: "),
        "progress on stderr: {issued}"
    );
    assert_eq!(ca.issued_count(), 1, "{}", ca.log());

    let show = c.cli(0).args(["cert", "show", "www"]).run();
    show.exits(0);
    assert!(
        show.stdout.contains("acme:          issued by http-01"),
        "{show}"
    );
    let listed = c.cli(0).args(["issuer", "list"]).run();
    listed.exits(0);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("lab") && l.contains("acme")),
        "{listed}"
    );
    let removed = c.cli(0).args(["issuer", "remove", "lab"]).run();
    removed.exits(1);
    assert!(
        removed.stderr.contains("issuer lab still issues www"),
        "{removed}"
    );
}
