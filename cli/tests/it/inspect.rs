//! `certraft inspect`, the binary, against the node crate's OpenSSL-made fixtures.
//!
//! Every test runs the real executable with stdin null and no `CERTRAFT_PASSPHRASE`
//! (unless the test sets it), so no terminal prompt can happen.

use crate::support::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// 1. The fixture table (the one in certraft-cluster-tests, which the library test runs too).
// ---------------------------------------------------------------------------------------

use certraft_cluster_tests::cases::{Case, Expect, Pass, Waive, CASES};
use Expect::*;

fn check(c: &Case) -> Option<String> {
    let flags: &[&str] = match c.waive {
        Waive::None => &[],
        Waive::Incomplete => &["--allow-incomplete"],
        Waive::Expired => &["--allow-expired"],
    };
    let mut cmd = certraft(["inspect", "--json"])
        .args(flags)
        .fixtures(c.files);
    cmd = match c.pass {
        Pass::None => cmd,
        Pass::Right => cmd.passphrase_fixture("pass.txt"),
        Pass::Wrong => cmd.passphrase_fixture("wrong-pass.txt"),
    };
    let run = cmd.run();
    let v: Value = match serde_json::from_str(&run.stdout) {
        Ok(v) => v,
        Err(e) => return Some(format!("stdout is not JSON ({e}): {run}")),
    };
    if !run.stderr.is_empty() {
        return Some(format!("--json printed on stderr: {run}"));
    }
    let problem = match &c.expect {
        Accept {
            completeness,
            key,
            certs,
            host,
        } => {
            let got = (
                run.code,
                v["completeness"].as_str().unwrap_or("?"),
                key_text(&v["key"]),
                v["chain"].as_array().map_or(0, Vec::len),
                v["hostnames"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h == host)),
                v["files"].as_array().map_or(0, Vec::len),
                v["chain"][0]["role"].as_str().unwrap_or("?"),
            );
            let want = (
                Some(0),
                *completeness,
                key.to_string(),
                *certs,
                true,
                c.files.len(),
                "leaf",
            );
            (got != want).then(|| {
                format!(
                    "(exit, completeness, key, chain entries, has {host:?}, files, \
                     chain[0].role): expected {want:?}, got {got:?}"
                )
            })
        }
        Refuse(code) => {
            let got = (run.code, v["error"]["code"].as_str().unwrap_or("?"));
            let message_ok = v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty());
            if got != (Some(1), *code) {
                Some(format!("(exit, code): expected (1, {code:?}), got {got:?}"))
            } else if !message_ok || v.as_object().map_or(0, |o| o.len()) != 1 {
                Some("not exactly {\"error\":{\"code\",\"message\"}}".to_string())
            } else {
                None
            }
        }
    };
    problem.map(|p| format!("{:?} {:?} {:?}: {p}\n{run}", c.files, c.pass, c.waive))
}

/// Every fixture class the library's table covers (each format, each PKCS#12 variant,
/// each bad file, each refusal and each waiver) is accepted or refused by the binary the
/// same way, with the same completeness, key, chain length, hostname or error code, and
/// exit status 0 or 1.
#[test]
fn every_fixture_class_is_accepted_or_refused_as_the_library_says() {
    let cases = CASES;
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases.iter().map(|c| s.spawn(move || check(c))).collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("case thread panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------
// 2. Human output.
// ---------------------------------------------------------------------------------------

/// Without `--json`, an accepted bundle is described on stdout: leaf subject, every
/// hostname, "complete", and the chain reordered leaf → intermediate → root with its roles.
#[test]
fn human_report_shows_leaf_hostnames_completeness_and_chain_roles() {
    let run = inspect_fixtures(&["reversed-ec256.pem", "ec256.key"]).run();
    run.exits(0);
    assert_eq!(run.stderr, "", "{run}");
    let out = &run.stdout;
    let lines: Vec<&str> = out.lines().collect();
    let line = |prefix: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {run}"))
    };
    assert!(line("leaf:").ends_with("CN=ec256.example.test"), "{run}");
    let hosts = line("hostnames:");
    assert!(
        hosts.contains("ec256.example.test") && hosts.contains("www.ec256.example.test"),
        "{run}"
    );
    assert!(line("completeness:").contains("complete"), "{run}");
    assert!(!line("completeness:").contains("no-root"), "{run}");
    assert!(line("key:").contains("P-256"), "{run}");

    let pos = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing: {run}"))
    };
    let leaf = pos("[leaf] CN=ec256.example.test");
    let inter = pos("[intermediate] CN=certraft test intermediate");
    let root = pos("[root] CN=certraft test root");
    assert!(
        leaf < inter && inter < root,
        "chain not leaf → intermediate → root: {run}"
    );
    assert_eq!(
        out.matches("] CN=").count(),
        3,
        "three chain entries: {run}"
    );
}

/// Without `--json`, a refusal prints nothing on stdout, exits 1, and stderr starts with
/// "error: " and names the offending file.
#[test]
fn human_refusal_is_an_error_line_on_stderr_naming_the_file() {
    for (files, culprit) in [
        (&["truncated.der"][..], "truncated.der"),
        (&["empty.pem"], "empty.pem"),
        (
            &["leaf-ec256.pem", "ec256.enc-pbkdf2.pem"],
            "ec256.enc-pbkdf2.pem",
        ),
        (&["fullchain-ec256.pem", "ec384.key"], "ec384.key"),
        (&["ec256.key"], "ec256.key"),
    ] {
        let run = inspect_fixtures(files).run();
        run.exits(1);
        assert_eq!(run.stdout, "", "refusals print nothing on stdout: {run}");
        assert!(run.stderr.starts_with("error: "), "{run}");
        assert!(run.stderr.contains(&fixture_str(culprit)), "{run}");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run}");
    }
}

// ---------------------------------------------------------------------------------------
// 3. -q: the bundle id only.
// ---------------------------------------------------------------------------------------

/// `-q` prints only the 64-hex bundle id (and a newline), and the id depends on the
/// certificates, not the files: PEM + key, one mixed PEM and a PKCS#12 give the same id,
/// which is the `id` of the JSON report; a different chain gives a different id.
#[test]
fn quiet_prints_only_the_bundle_id_and_it_is_the_same_in_every_format() {
    let quiet = |files: &[&str], pass: bool| {
        let mut cmd = certraft(["inspect", "-q"]).fixtures(files);
        if pass {
            cmd = cmd.passphrase_fixture("pass.txt");
        }
        let run = cmd.run();
        run.exits(0);
        assert_eq!(run.stderr, "", "{run}");
        let id = run
            .stdout
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("no trailing newline: {run}"));
        assert!(is_hex64(id), "not a 64-hex id: {run}");
        id.to_string()
    };
    let reference = quiet(&["fullchain-ec256.pem", "ec256.key"], false);
    assert_eq!(quiet(&["mixed-ec256.pem"], false), reference);
    assert_eq!(quiet(&["ec256.p12"], true), reference);

    let json = inspect_fixtures(&["fullchain-ec256.pem", "ec256.key"])
        .arg("--json")
        .run();
    assert_eq!(json.exits(0).json()["id"], reference.as_str());

    assert_ne!(
        quiet(&["leaf-ec256.pem", "ec256.key", "inter.pem"], false),
        reference,
        "a different chain is a different bundle"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Passphrases.
// ---------------------------------------------------------------------------------------

/// With no `--passphrase-file`, `CERTRAFT_PASSPHRASE` decrypts PKCS#12 files and encrypted
/// keys.
#[test]
fn passphrase_from_the_environment_is_used() {
    for files in [
        &["ec256.p12"][..],
        &["leaf-ec256.pem", "ec256.enc-scrypt.pem", "chain.pem"],
    ] {
        let run = certraft(["inspect", "--json"])
            .fixtures(files)
            .env(ENV_PASSPHRASE, passphrase())
            .run();
        let v = run.exits(0).json();
        assert_eq!(v["completeness"], "complete", "{run}");
        assert_eq!(v["key"]["algorithm"], "ec-p256", "{run}");
    }
}

/// A `CERTRAFT_PASSPHRASE` that is not UTF-8 is refused by name, not silently ignored.
#[test]
fn non_utf8_passphrase_env_is_refused_by_name() {
    use std::os::unix::ffi::OsStrExt;
    let run = certraft(["inspect", "--json"])
        .fixtures(&["ec256.p12"])
        .env(ENV_PASSPHRASE, std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .run();
    let (code, message) = run.exits(1).json_error();
    assert_eq!(code, "passphrase_env_not_utf8", "{run}");
    assert!(message.contains(ENV_PASSPHRASE), "{run}");
}

/// `--passphrase-file` wins over `CERTRAFT_PASSPHRASE`: a right file with a wrong
/// environment is accepted, a wrong file with a right environment is refused.
#[test]
fn passphrase_file_wins_over_the_environment() {
    let run = inspect_fixtures(&["ec256.p12"])
        .arg("--json")
        .passphrase_fixture("pass.txt")
        .env(ENV_PASSPHRASE, wrong_passphrase())
        .run();
    assert_eq!(run.exits(0).json()["completeness"], "complete", "{run}");

    let run = inspect_fixtures(&["ec256.p12"])
        .arg("--json")
        .passphrase_fixture("wrong-pass.txt")
        .env(ENV_PASSPHRASE, passphrase())
        .run();
    assert_eq!(run.exits(1).json_error().0, "wrong_passphrase");
}

/// An encrypted file with no passphrase anywhere and stdin not a terminal is refused at
/// once (no prompt, no hang) with `passphrase_required`, and the message names the file
/// and tells the operator about `--passphrase-file`.
#[test]
fn encrypted_input_without_a_passphrase_and_no_tty_is_refused() {
    for (files, culprit) in [
        (&["ec256.p12"][..], "ec256.p12"),
        (
            &["leaf-ec256.pem", "ec256.enc-pbkdf2.pem"],
            "ec256.enc-pbkdf2.pem",
        ),
    ] {
        let run = inspect_fixtures(files).arg("--json").run();
        let (code, message) = run.exits(1).json_error();
        assert_eq!(code, "passphrase_required", "{run}");
        assert!(message.contains("--passphrase-file"), "{run}");
        assert!(message.contains(&fixture_str(culprit)), "{run}");

        let human = inspect_fixtures(files).run();
        human.exits(1);
        assert!(human.stderr.contains("--passphrase-file"), "{human}");
        assert!(
            !human.stderr.to_lowercase().contains("passphrase for "),
            "prompted although stdin is not a terminal: {human}"
        );
    }
}

/// Neither the right nor the wrong passphrase is ever printed, whether it comes from a
/// file or the environment, in JSON, human or quiet output, accepted or refused.
#[test]
fn passphrase_text_never_appears_in_the_output() {
    let (right, wrong) = (passphrase(), wrong_passphrase());
    let mut runs = Vec::new();
    for mode in [&["--json"][..], &[], &["-q"]] {
        for files in [
            &["ec256.p12"][..],
            &["leaf-ec256.pem", "ec256.enc-scrypt.pem"],
        ] {
            for pass_file in ["pass.txt", "wrong-pass.txt"] {
                runs.push(
                    certraft(["inspect"])
                        .args(mode)
                        .fixtures(files)
                        .passphrase_fixture(pass_file)
                        .run(),
                );
            }
            for env in [&right, &wrong] {
                runs.push(
                    certraft(["inspect"])
                        .args(mode)
                        .fixtures(files)
                        .env(ENV_PASSPHRASE, env)
                        .run(),
                );
            }
        }
    }
    let accepted = runs.iter().filter(|r| r.code == Some(0)).count();
    let refused = runs.iter().filter(|r| r.code == Some(1)).count();
    assert_eq!((accepted, refused), (12, 12), "half right, half wrong");
    for run in &runs {
        assert!(
            !run.prints(&right) && !run.prints(&wrong),
            "passphrase printed: {run}"
        );
    }
}

/// Only the first line of the passphrase file is the passphrase: a trailing LF or CRLF
/// and further lines are ignored, and a file holding the wrong first line is refused.
#[test]
fn passphrase_file_uses_only_its_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let right = passphrase();
    for (name, contents, accepted) in [
        ("lf.txt", format!("{right}\n"), true),
        ("crlf.txt", format!("{right}\r\nsecond line\r\n"), true),
        ("second.txt", format!("something else\n{right}\n"), false),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let run = inspect_fixtures(&["ec256.p12"])
            .arg("--json")
            .arg("--passphrase-file")
            .arg(&path)
            .run();
        if accepted {
            assert_eq!(run.exits(0).json()["completeness"], "complete", "{run}");
        } else {
            assert_eq!(run.exits(1).json_error().0, "wrong_passphrase", "{run}");
        }
    }
}

/// A passphrase file that cannot be read, or is not UTF-8, is refused with its own code
/// naming that file, before any input is read.
#[test]
fn unusable_passphrase_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-pass.txt");
    let binary = dir.path().join("binary-pass.txt");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    for (path, want) in [
        (&missing, "passphrase_file_unreadable"),
        (&binary, "passphrase_file_not_utf8"),
    ] {
        let run = inspect_fixtures(&["ec256.p12"])
            .arg("--json")
            .arg("--passphrase-file")
            .arg(path)
            .run();
        let (code, message) = run.exits(1).json_error();
        assert_eq!(code, want, "{run}");
        assert!(message.contains(&path.display().to_string()), "{run}");
    }
}

// ---------------------------------------------------------------------------------------
// 5. Usage errors.
// ---------------------------------------------------------------------------------------

/// `certraft inspect` with no files is a usage error: exit 2, usage on stderr, nothing on
/// stdout; with `--json`, the error is JSON on stdout with code `usage`.
#[test]
fn no_files_is_a_usage_error() {
    for args in [&["inspect"][..], &[]] {
        let run = certraft(args).run();
        run.exits(2);
        assert_eq!(run.stdout, "", "{run}");
        assert!(run.stderr.contains("Usage:"), "{run}");
    }
    let run = certraft(["inspect", "--json"]).run();
    let (code, message) = run.exits(2).json_error();
    assert_eq!(code, "usage", "{run}");
    assert!(message.contains("FILE"), "{run}");
}

/// An unknown flag is a usage error: exit 2, and the flag is named.
#[test]
fn unknown_flag_is_a_usage_error() {
    let run = certraft(["inspect", "--frobnicate"])
        .fixtures(&["mixed-ec256.pem"])
        .run();
    run.exits(2);
    assert_eq!(run.stdout, "", "{run}");
    assert!(run.stderr.contains("--frobnicate"), "{run}");
}

/// A passphrase cannot be given on the command line: `--passphrase X` and
/// `--passphrase=X` are usage errors (exit 2), even when the passphrase is right, and the
/// value is not echoed back.
#[test]
fn passphrase_on_the_command_line_is_not_accepted() {
    let right = passphrase();
    for args in [
        vec!["--passphrase".to_string(), right.clone()],
        vec![format!("--passphrase={right}")],
    ] {
        let run = certraft(["inspect"])
            .args(&args)
            .fixtures(&["ec256.p12"])
            .run();
        run.exits(2);
        assert_eq!(run.stdout, "", "{run}");
        assert!(!run.prints(&right), "passphrase echoed: {run}");
    }
}

// ---------------------------------------------------------------------------------------
// 6. Missing files.
// ---------------------------------------------------------------------------------------

/// A file that does not exist is refused (exit 1) with `file_unreadable`, naming the path,
/// in JSON and in the human error line, even when the other files are good.
#[test]
fn missing_file_is_refused_as_unreadable_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-cert.pem");
    let name = missing.display().to_string();

    let run = inspect_fixtures(&["mixed-ec256.pem"])
        .arg("--json")
        .arg(&missing)
        .run();
    let (code, message) = run.exits(1).json_error();
    assert_eq!(code, "file_unreadable", "{run}");
    assert!(message.contains(&name), "{run}");

    let human = inspect_fixtures(&["mixed-ec256.pem"]).arg(&missing).run();
    human.exits(1);
    assert_eq!(human.stdout, "", "{human}");
    assert!(
        human.stderr.starts_with("error: ") && human.stderr.contains(&name),
        "{human}"
    );
}

// ---------------------------------------------------------------------------------------
// 7. JSON report shape.
// ---------------------------------------------------------------------------------------

/// The JSON report parses, has `report_version` 1, a 64-hex `id`, the leaf's dates, a
/// chain whose entries all have role/subject/issuer/sha256, `warnings` as an array of
/// `{code, message}`, and `files` listing each input by the name it was given.
#[test]
fn json_report_has_the_documented_shape() {
    let files = ["dup-ec256.pem", "ec256.key", "root.pem", "other-root.pem"];
    let run = inspect_fixtures(&files).arg("--json").run();
    run.exits(0);
    assert_eq!(run.stderr, "", "{run}");
    let v = run.json();

    assert_eq!(v["report_version"], 1, "{run}");
    assert!(v["id"].as_str().is_some_and(is_hex64), "{run}");
    assert_eq!(v["not_after"], "2099-12-31T23:59:59Z", "{run}");
    assert_eq!(v["not_before"], "2024-01-01T00:00:00Z", "{run}");
    assert!(
        v["ip_addresses"].as_array().is_some_and(Vec::is_empty),
        "{run}"
    );

    let chain = v["chain"].as_array().expect("chain is an array");
    let roles: Vec<_> = chain.iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["leaf", "intermediate", "root"], "{run}");
    for c in chain {
        for field in ["subject", "issuer", "serial", "signature_algorithm"] {
            assert!(
                c[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field}: {run}"
            );
        }
        assert!(c["sha256"].as_str().is_some_and(is_hex64), "{run}");
    }
    assert_eq!(chain[0]["subject"], "CN=ec256.example.test", "{run}");
    assert_eq!(chain[2]["subject"], chain[2]["issuer"], "{run}");

    let warnings = v["warnings"].as_array().expect("warnings is an array");
    for w in warnings {
        let obj = w.as_object().expect("a warning is an object");
        assert_eq!(obj.len(), 2, "{w}");
        assert!(w["code"].as_str().is_some_and(|s| !s.is_empty()), "{w}");
        assert!(w["message"].as_str().is_some_and(|s| !s.is_empty()), "{w}");
    }
    let codes: Vec<_> = warnings
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"duplicate_certificate"), "{codes:?}");
    assert!(codes.contains(&"unrelated_certificate"), "{codes:?}");

    let listed: Vec<_> = v["files"]
        .as_array()
        .expect("files is an array")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["format"].as_str().unwrap().to_string(),
                f["certificates"].as_u64().unwrap(),
                f["keys"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<_> = [
        ("dup-ec256.pem", 3, 0),
        ("ec256.key", 0, 1),
        ("root.pem", 1, 0),
        ("other-root.pem", 1, 0),
    ]
    .iter()
    .map(|(n, c, k)| (fixture_str(n), "pem".to_string(), *c, *k))
    .collect();
    assert_eq!(listed, want, "{run}");
}

/// `files[].format` names the container each input was recognised as, for every format:
/// pem, der-certificate, der-pkcs8, der-encrypted-pkcs8, der-pkcs1, der-sec1, pkcs12.
#[test]
fn json_files_name_the_format_of_each_input() {
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["leaf-ec256.der", "ec256.key.der", "chain.pem"],
            &["der-certificate", "der-pkcs8", "pem"],
        ),
        (
            &["leaf-ec256.der", "ec256.sec1.der"],
            &["der-certificate", "der-sec1"],
        ),
        (
            &["leaf-ec256.der", "ec256.enc-pbkdf2.der"],
            &["der-certificate", "der-encrypted-pkcs8"],
        ),
        (
            &["leaf-rsa2048.pem", "rsa2048.pkcs1.der"],
            &["pem", "der-pkcs1"],
        ),
        (&["ec256.p12", "inter.pem"], &["pkcs12", "pem"]),
    ];
    for (files, formats) in cases {
        let run = inspect_fixtures(files)
            .arg("--json")
            .passphrase_fixture("pass.txt")
            .run();
        let v = run.exits(0).json();
        let got: Vec<_> = v["files"]
            .as_array()
            .expect("files is an array")
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f["format"].clone()))
            .collect();
        let want: Vec<_> = files
            .iter()
            .zip(formats)
            .map(|(n, f)| (fixture_str(n), Value::from(*f)))
            .collect();
        assert_eq!(got, want, "{run}");
    }
    // The PKCS#12 file holds the key and all three certificates.
    let run = inspect_fixtures(&["ec256.p12"])
        .arg("--json")
        .passphrase_fixture("pass.txt")
        .run();
    let v = run.exits(0).json();
    assert_eq!(v["files"][0]["certificates"], 3, "{run}");
    assert_eq!(v["files"][0]["keys"], 1, "{run}");
}

/// A leaf with its key and no chain is accepted as `leaf-only` with a `leaf_only`
/// warning; a complete chain has no such warning.
#[test]
fn leaf_only_input_warns_leaf_only() {
    let codes = |files: &[&str]| {
        let run = inspect_fixtures(files).arg("--json").run();
        let v = run.exits(0).json();
        let codes: Vec<String> = v["warnings"]
            .as_array()
            .unwrap_or_else(|| panic!("warnings is not an array: {run}"))
            .iter()
            .map(|w| w["code"].as_str().unwrap().to_string())
            .collect();
        (v["completeness"].as_str().unwrap().to_string(), codes)
    };
    let (completeness, warnings) = codes(&["leaf-ec256.pem", "ec256.key"]);
    assert_eq!(completeness, "leaf-only");
    assert!(warnings.iter().any(|c| c == "leaf_only"), "{warnings:?}");

    let (completeness, warnings) = codes(&["fullchain-ec256.pem", "ec256.key"]);
    assert_eq!(completeness, "complete");
    assert!(warnings.is_empty(), "{warnings:?}");
}

// ---------------------------------------------------------------------------------------
// 8. Help.
// ---------------------------------------------------------------------------------------

/// `certraft --help` exits 0 and lists the exit codes; `certraft inspect --help` exits 0
/// and documents `--passphrase-file`, `CERTRAFT_PASSPHRASE` and the refusal exit status.
#[test]
fn help_documents_the_passphrase_file_and_exit_codes() {
    let top = certraft(["--help"]).run();
    top.exits(0);
    for needle in ["Exit codes", "0 done", "1 refused", "2 usage", "inspect"] {
        assert!(top.stdout.contains(needle), "{needle:?} missing: {top}");
    }

    let sub = certraft(["inspect", "--help"]).run();
    sub.exits(0);
    for needle in [
        "--passphrase-file",
        "CERTRAFT_PASSPHRASE",
        "--allow-expired",
        "--allow-incomplete",
        "Exits 1",
    ] {
        assert!(sub.stdout.contains(needle), "{needle:?} missing: {sub}");
    }
}

/// What the brief asks of both help pages: each mentions `passphrase-file` and the exit
/// codes. Today `certraft --help` never mentions `--passphrase-file` and `certraft inspect
/// --help` says only "Exits 1" (not 0, not 2 for usage).
#[test]
fn both_help_pages_mention_passphrase_file_and_exit_codes() {
    for args in [&["--help"][..], &["inspect", "--help"]] {
        let run = certraft(args).run();
        run.exits(0);
        for needle in ["passphrase-file", "Exit codes", "2 usage"] {
            assert!(run.stdout.contains(needle), "{needle:?} missing: {run}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 9. Caps (node/src/bundle/limits.rs).
// ---------------------------------------------------------------------------------------

/// Regression test for the security review: `certraft inspect` on a 144-byte encrypted
/// PKCS#8 whose scrypt asks for N=2^30 (1 TiB) aborted the process, and PKCS#12 iteration
/// counts of 2^31-1 froze it for many minutes. Now each bomb, given the right passphrase,
/// exits 1 within seconds: the cap is named on stderr (human) and the code is `kdf_limit`
/// (`--json`).
#[test]
fn key_derivation_bombs_exit_1_at_once_naming_the_cap() {
    for (bomb, cap) in [
        ("bomb-scrypt.p8", "at most 256 MiB (128·N·r)"),
        ("bomb-pbkdf2.p8", "at most 10000000"),
        ("bomb-mac.p12", "at most 10000000"),
        ("bomb-nested.p12", "at most 256 MiB (128·N·r)"),
    ] {
        let started = std::time::Instant::now();
        let human = inspect_fixtures(&[bomb])
            .passphrase_fixture("pass.txt")
            .run();
        let elapsed = started.elapsed();
        human.exits(1);
        assert!(
            elapsed < std::time::Duration::from_secs(5),
            "took {elapsed:?}: {human}"
        );
        assert!(human.stderr.starts_with("error: "), "{human}");
        assert!(human.stderr.contains(cap), "{cap:?} not named: {human}");
        assert!(human.stderr.contains(&fixture_str(bomb)), "{human}");

        let json = inspect_fixtures(&[bomb])
            .arg("--json")
            .passphrase_fixture("pass.txt")
            .run();
        let (code, message) = json.exits(1).json_error();
        assert_eq!(code, "kdf_limit", "{json}");
        assert!(message.contains(cap), "{json}");
    }
}

/// A certificate with 1,001 DNS names is refused with `too_many_names`, naming the cap.
#[test]
fn certificate_with_too_many_names_is_refused() {
    let run = inspect_fixtures(&["leaf-manynames.pem", "manynames.key"])
        .arg("--json")
        .run();
    let (code, message) = run.exits(1).json_error();
    assert_eq!(code, "too_many_names", "{run}");
    assert!(
        message.contains("1001") && message.contains("at most 1000"),
        "{run}"
    );
}

/// Regression test: `inspect` (and so `cert import` and `cert rotate`, which run its check)
/// read every file whole before its size was checked, so a 10 GB file took 10 GB of memory
/// only to be refused. Now the size comes first: a sparse 16 GiB file (nothing allocated on
/// disk; reading it whole would take 16 GiB of memory) is refused at once with `too_large`,
/// naming its real size, exit 1; a file of exactly the cap is still read, and one byte more
/// is refused naming that size.
#[test]
fn oversized_file_is_refused_before_it_is_read() {
    use certraft::bundle::limits::MAX_FILE_BYTES;

    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.pem");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(16 << 30).unwrap();
    drop(file);
    let started = std::time::Instant::now();
    let run = certraft(["inspect", "--json"]).arg(&huge).run();
    let elapsed = started.elapsed();
    let (code, message) = run.exits(1).json_error();
    assert_eq!(code, "too_large", "{run}");
    assert!(
        message.starts_with(&format!(
            "{}: the file is 17179869184 bytes; certraft reads at most {MAX_FILE_BYTES} bytes",
            huge.display()
        )),
        "{run}"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "took {elapsed:?}: {run}"
    );

    let fullchain = std::fs::read(fixture("fullchain-ec256.pem")).unwrap();
    for (size, accepted) in [(MAX_FILE_BYTES, true), (MAX_FILE_BYTES + 1, false)] {
        let padded = dir.path().join(format!("padded-{size}.pem"));
        let mut bytes = fullchain.clone();
        bytes.resize(size, b'\n');
        std::fs::write(&padded, bytes).unwrap();
        let run = certraft(["inspect", "--json"])
            .arg(&padded)
            .fixtures(&["ec256.key"])
            .run();
        if accepted {
            assert_eq!(run.exits(0).json()["completeness"], "complete", "{run}");
        } else {
            let (code, message) = run.exits(1).json_error();
            assert_eq!(code, "too_large", "{run}");
            assert!(message.contains(&format!("is {size} bytes")), "{run}");
        }
    }
}
