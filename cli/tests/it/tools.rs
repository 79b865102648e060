//! The tools corpus, `node/tests/fixtures/tools/expected.tsv`: files made by Java keytool,
//! GnuTLS certtool, NSS pk12util, Python cryptography, OpenSSL's many options and RFC 9579,
//! each read by `certraft inspect` and imported by `certraft cert import` into a real node
//! exactly as the manifest says (leaf, key type, chain length, or the error code).
//!
//! `node/tests/fixtures/tools/generate.sh` makes the files with the tools themselves.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::node::{Cluster, DataDir};
use crate::support::*;

/// What a row expects.
#[derive(Debug, Clone)]
enum Expect {
    /// Read as a bundle: key type (`ec-p256`, `rsa-2048`), a leaf host name, chain
    /// certificates after the leaf.
    Bundle {
        key: String,
        host: String,
        chain: usize,
    },
    /// Refused with this error code.
    Refused(String),
}

/// One line of the manifest.
#[derive(Debug, Clone)]
struct Row {
    files: Vec<String>,
    passphrase: Option<String>,
    tool: String,
    construct: String,
    expect: Expect,
}

impl Row {
    fn describe(&self) -> String {
        format!(
            "{} ({}, {})",
            self.files.join(" + "),
            self.tool,
            self.construct
        )
    }

    /// `certraft ARGS FILES [--passphrase-file F]`.
    fn command(&self, args: Certraft) -> Certraft {
        let mut cmd = args.fixtures(&self.files.iter().map(String::as_str).collect::<Vec<_>>());
        if let Some(p) = &self.passphrase {
            cmd = cmd.passphrase_fixture(p);
        }
        cmd
    }
}

fn rows() -> Vec<Row> {
    let path = PathBuf::from(FIXTURES).join("tools/expected.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run its generate.sh", path.display()));
    let rows: Vec<Row> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let [file, extra, pass, tool, construct, expect] = cols[..] else {
                panic!("manifest line with {} columns: {line:?}", cols.len());
            };
            let mut files = vec![format!("tools/{file}")];
            if extra != "-" {
                files.extend(extra.split(',').map(|e| format!("tools/{e}")));
            }
            let expect = match expect.split(':').collect::<Vec<_>>()[..] {
                ["ok", key, host, chain] => Expect::Bundle {
                    key: match key {
                        "rsa2048" => "rsa-2048".into(),
                        other => other.into(),
                    },
                    host: host.into(),
                    chain: chain.parse().expect("chain count"),
                },
                ["err", code] => Expect::Refused(code.into()),
                _ => panic!("bad expectation {expect:?}"),
            };
            Row {
                files,
                passphrase: (pass != "-").then(|| format!("tools/{pass}")),
                tool: tool.into(),
                construct: construct.into(),
                expect,
            }
        })
        .collect();
    assert!(
        rows.len() >= 90,
        "only {} rows in {}",
        rows.len(),
        path.display()
    );
    rows
}

/// What is wrong with an `inspect --json` answer for `row`, if anything.
fn check_report(row: &Row, run: &Run) -> Option<String> {
    let v: Value = match serde_json::from_str(&run.stdout) {
        Ok(v) => v,
        Err(e) => return Some(format!("stdout is not JSON ({e}): {run}")),
    };
    match &row.expect {
        Expect::Bundle { key, host, chain } => {
            let got = (
                run.code,
                key_text(&v["key"]),
                v["chain"].as_array().map_or(0, Vec::len),
                v["hostnames"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|h| h == host.as_str())),
            );
            let want = (Some(0), key.clone(), chain + 1, true);
            (got != want).then(|| {
                format!("(exit, key, chain with leaf, names {host}): expected {want:?}, got {got:?}: {run}")
            })
        }
        Expect::Refused(code) => {
            let got = (run.code, v["error"]["code"].as_str().unwrap_or("?"));
            (got != (Some(1), code.as_str()))
                .then(|| format!("(exit, code): expected (1, {code:?}), got {got:?}: {run}"))
        }
    }
}

/// Runs `check` over every row on two threads; fails listing every row that did not match.
fn every_row(check: impl Fn(&Row) -> Option<String> + Sync) {
    let rows = rows();
    let half = rows.len() / 2;
    let failures: Vec<String> = std::thread::scope(|s| {
        let parts: Vec<_> = [&rows[..half], &rows[half..]]
            .into_iter()
            .map(|part| {
                let check = &check;
                s.spawn(move || {
                    part.iter()
                        .filter_map(|row| check(row).map(|p| format!("{}: {p}", row.describe())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("checker thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// `certraft inspect --json` reads every file of the corpus as the manifest says.
#[test]
fn every_tools_file_inspects_as_the_manifest_says() {
    every_row(|row| {
        let run = row.command(certraft(["inspect", "--json"])).run();
        check_report(row, &run)
    });
}

/// `certraft cert import` takes every file the manifest accepts into a running node (the
/// node parses the files again, itself) and refuses the others with the manifest's code,
/// changing nothing.
#[test]
fn every_tools_file_imports_into_a_running_node() {
    let c = Cluster::single(DataDir::Flag);
    every_row(|row| {
        let run = row
            .command(c.cli(0).args(["cert", "import", "--json"]))
            .run();
        let v: Value = match serde_json::from_str(&run.stdout) {
            Ok(v) => v,
            Err(e) => return Some(format!("stdout is not JSON ({e}): {run}")),
        };
        match &row.expect {
            Expect::Bundle { host, .. } => {
                let outcome = v["outcome"].as_str().unwrap_or("?");
                let ok = run.code == Some(0)
                    && matches!(outcome, "imported" | "already_present")
                    && v["name"] == host.as_str();
                (!ok).then(|| format!("expected an import named {host}: {run}"))
            }
            Expect::Refused(code) => {
                let got = (run.code, v["error"]["code"].as_str().unwrap_or("?"));
                (got != (Some(1), code.as_str()))
                    .then(|| format!("(exit, code): expected (1, {code:?}), got {got:?}: {run}"))
            }
        }
    });
}

/// A reader of PKCS#12 files other than certraft: its name, the program, and the arguments
/// that make it read `FILE` with the passphrase in `PASSFILE` (or `PASS`) and list what it
/// holds.
struct Reader {
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    /// What its output must contain when it read the key and the leaf.
    shows: &'static [&'static str],
}

const READERS: &[Reader] = &[
    Reader {
        name: "OpenSSL 3 (no -legacy)",
        program: "openssl",
        args: &["pkcs12", "-in", "FILE", "-passin", "file:PASSFILE", "-nodes"],
        shows: &["PRIVATE KEY", "subject=CN", "p256.tools.test"],
    },
    Reader {
        name: "Java keytool",
        program: "keytool",
        args: &["-list", "-v", "-storetype", "PKCS12", "-keystore", "FILE", "-storepass:file", "PASSFILE"],
        shows: &["PrivateKeyEntry", "Certificate chain length: 3", "p256.tools.test"],
    },
    Reader {
        name: "GnuTLS certtool",
        program: "certtool",
        args: &["--p12-info", "--inder", "--infile", "FILE", "--password", "PASS"],
        shows: &["PKCS #8 Encrypted key", "BEGIN CERTIFICATE"],
    },
    Reader {
        name: "NSS pk12util",
        program: "pk12util",
        args: &["-l", "FILE", "-w", "PASSFILE"],
        shows: &["Certificate(has private key)", "p256.tools.test"],
    },
    Reader {
        name: "Python cryptography",
        program: "python3",
        args: &[
            "-c",
            "import sys\nfrom cryptography.hazmat.primitives.serialization import pkcs12\n\
             k, c, extra = pkcs12.load_key_and_certificates(open(sys.argv[1], 'rb').read(), sys.argv[2].encode())\n\
             print('key' if k else 'no key', c.subject.rfc4514_string(), len(extra))",
            "FILE",
            "PASS",
        ],
        shows: &["key CN=p256.tools.test 2"],
    },
];

/// Whether `program` runs at all; under `CI=true` it must (`.ci/run` installs it).
fn installed(program: &str) -> bool {
    let probe = if program == "python3" {
        std::process::Command::new(program)
            .args(["-c", "import cryptography"])
            .output()
    } else {
        std::process::Command::new(program).arg("--help").output()
    };
    let ok = probe.is_ok_and(|o| o.status.code().is_some());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "{program} is required under CI=true (.ci/run installs it)"
        );
        eprintln!("skipping the {program} reader: it is not installed");
    }
    ok
}

/// certraft's modern and `--legacy` PKCS#12 exports are read, key and full chain, by every
/// other implementation operators use: OpenSSL 3, Java keytool, GnuTLS certtool, NSS
/// pk12util and Python cryptography.
#[test]
fn exports_are_read_by_every_other_tool() {
    let c = Cluster::single(DataDir::Flag);
    let import = c
        .cli(0)
        .args(["cert", "import"])
        .fixtures(&["tools/base-p256-fullchain.pem", "tools/base-p256.key"])
        .run();
    import.exits(0);
    let pass_file = fixture("tools/pass.txt");
    let pass = std::fs::read_to_string(&pass_file)
        .unwrap()
        .trim()
        .to_string();
    let mut failures = Vec::new();
    for legacy in [false, true] {
        let out = c
            .scratch()
            .join(if legacy { "legacy.p12" } else { "modern.p12" });
        let mut export = c
            .cli(0)
            .args(["cert", "export", "p256.tools.test", "--out"])
            .arg(&out)
            .arg("--passphrase-file")
            .arg(&pass_file);
        if legacy {
            export = export.arg("--legacy");
        }
        export.run().exits(0);
        for r in READERS.iter().filter(|r| installed(r.program)) {
            let args: Vec<String> = r
                .args
                .iter()
                .map(|a| {
                    a.replace("PASSFILE", &pass_file.display().to_string())
                        .replace("FILE", &out.display().to_string())
                        .replace("PASS", &pass)
                })
                .collect();
            // NSS reads from a database directory; an empty one in the scratch dir.
            let nss_db = c.scratch().join("nssdb");
            let mut cmd = std::process::Command::new(r.program);
            cmd.args(&args);
            if r.program == "pk12util" {
                std::fs::create_dir_all(&nss_db).unwrap();
                cmd.arg("-d").arg(format!("sql:{}", nss_db.display()));
            }
            let output = cmd.output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let missing: Vec<&&str> = r.shows.iter().filter(|s| !text.contains(**s)).collect();
            if !output.status.success() || !missing.is_empty() {
                failures.push(format!(
                    "{} could not read the {} export ({}; missing {missing:?}):\n{text}",
                    r.name,
                    if legacy { "--legacy" } else { "modern" },
                    output.status
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `--format pem --with-key` writes leaf, chain and the key as encrypted PKCS#8 (what nginx
/// and HAProxy take); certraft reads it back to the same bundle with the passphrase and not
/// without, OpenSSL decrypts the key; `--unencrypted-key` writes a plain key and warns;
/// `--with-key` without `--format pem` is a usage error.
#[test]
fn a_pem_export_carries_the_key_only_when_asked() {
    let c = Cluster::single(DataDir::Flag);
    let id = c
        .cli(0)
        .args(["cert", "import", "-q"])
        .fixtures(&["tools/base-rsa-fullchain.pem", "tools/base-rsa.key"])
        .run();
    id.exits(0);
    let id = id.stdout.trim().to_string();
    let pass_file = fixture("tools/pass.txt");
    let export = |out: &str, extra: &[&str]| {
        c.cli(0)
            .args([
                "cert",
                "export",
                "rsa.tools.test",
                "--format",
                "pem",
                "--out",
                out,
            ])
            .args(extra)
            .arg("--passphrase-file")
            .arg(&pass_file)
            .run()
    };

    export("with-key.pem", &["--with-key"]).exits(0);
    let path = c.scratch().join("with-key.pem");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 3, "{text}");
    assert_eq!(
        text.matches("BEGIN ENCRYPTED PRIVATE KEY").count(),
        1,
        "{text}"
    );
    let back = certraft(["inspect", "-q"])
        .arg(&path)
        .arg("--passphrase-file")
        .arg(&pass_file)
        .run();
    assert_eq!(
        back.exits(0).stdout.trim(),
        id,
        "the export reads back as the same bundle"
    );
    let (code, _) = certraft(["inspect", "--json"])
        .arg(&path)
        .run()
        .json_error();
    assert_eq!(code, "passphrase_required");
    if installed("openssl") {
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(&path)
            .arg("-passin")
            .arg(format!("file:{}", pass_file.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl pkey: {out:?}");
    }

    let run = export("plain.pem", &["--with-key", "--unencrypted-key"]);
    run.exits(0);
    assert!(run.stderr.contains("unencrypted"), "a warning: {run}");
    let text = std::fs::read_to_string(c.scratch().join("plain.pem")).unwrap();
    assert!(
        text.contains("BEGIN PRIVATE KEY") && !text.contains("ENCRYPTED"),
        "{text}"
    );

    let run = c
        .cli(0)
        .args([
            "cert",
            "export",
            "rsa.tools.test",
            "--with-key",
            "--out",
            "x.p12",
        ])
        .run();
    run.exits(2);
    assert!(
        !c.scratch().join("x.p12").exists(),
        "nothing written on a usage error"
    );
}

/// `cert import -` reads the bundle from standard input (a container without a shell or a
/// writable /tmp takes files this way), also a PKCS#12 with its passphrase; `-` twice is a
/// usage error.
#[test]
fn cert_import_reads_standard_input() {
    let c = Cluster::single(DataDir::Flag);
    // One PEM with the key, leaf and chain, as an operator pipes it in.
    let bundle = c.scratch().join("bundle.pem");
    let mut text = std::fs::read_to_string(fixture("tools/base-p384-fullchain.pem")).unwrap();
    text.push_str(&std::fs::read_to_string(fixture("tools/base-p384.key")).unwrap());
    std::fs::write(&bundle, text).unwrap();
    let run = c
        .cli(0)
        .args(["cert", "import", "--json", "-"])
        .stdin_file(&bundle)
        .run();
    assert_eq!(run.exits(0).json()["name"], "p384.tools.test", "{run}");

    let run = c
        .cli(0)
        .args(["cert", "import", "--json", "-", "--passphrase-file"])
        .arg(fixture("tools/pass.txt"))
        .stdin_file(&fixture("tools/openssl-p256.p12"))
        .run();
    assert_eq!(run.exits(0).json()["name"], "p256.tools.test", "{run}");

    let run = c
        .cli(0)
        .args(["cert", "import", "-", "-"])
        .stdin_file(&bundle)
        .run();
    run.exits(2);
}
