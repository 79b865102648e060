//! Bundle engine against real OpenSSL-made files (`tests/fixtures/generate.sh`).

use crate::support::*;
use certraft::bundle::{
    export_pem, export_pkcs12, parse_file, AssembleOptions, Completeness, DataKey, ExportParts,
    KeyKind, Keyring, Pkcs12Profile,
};

use certraft_cluster_tests::cases::{Expect, Pass, Waive, CASES};

/// The key kind as the JSON report writes it (`ec-p256`, `rsa-2048`).
fn key_text(k: KeyKind) -> String {
    match k {
        KeyKind::EcP256 => "ec-p256".into(),
        KeyKind::EcP384 => "ec-p384".into(),
        KeyKind::Ed25519 => "ed25519".into(),
        KeyKind::Rsa { bits } => format!("rsa-{bits}"),
    }
}

/// Every fixture class is read or refused as SPEC §3 says, with the stated error code.
#[test]
fn every_fixture_class_is_read_or_refused_as_specified() {
    let right = passphrase();
    let wrong = wrong_passphrase();
    let mut failures = Vec::new();
    for case in CASES {
        let (files, pass, expect) = (case.files, case.pass, case.expect);
        let p = match pass {
            Pass::None => None,
            Pass::Right => Some(&right),
            Pass::Wrong => Some(&wrong),
        };
        let d = AssembleOptions::default();
        let options = match case.waive {
            Waive::None => d,
            Waive::Incomplete => AssembleOptions {
                allow_incomplete: true,
                ..d
            },
            Waive::Expired => AssembleOptions {
                allow_expired: true,
                ..d
            },
        };
        let got = bundle_of(files, p, options);
        let ok = match (&expect, &got) {
            (
                Expect::Accept {
                    completeness,
                    key,
                    certs,
                    host,
                },
                Ok(b),
            ) => {
                serde_json::to_value(b.completeness())
                    .ok()
                    .as_ref()
                    .and_then(|v| v.as_str())
                    == Some(*completeness)
                    && key_text(b.key().kind()) == *key
                    && b.certs().count() == *certs
                    && b.hostnames().iter().any(|h| h == host)
            }
            (Expect::Refuse(code), Err(got)) => code == got,
            _ => false,
        };
        if !ok {
            let got = got.map(|b| {
                format!(
                    "{} {:?} {} certs {:?}",
                    b.completeness(),
                    b.key().kind(),
                    b.certs().count(),
                    b.hostnames()
                )
            });
            failures.push(format!(
                "{files:?} {pass:?}: expected {expect:?}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The same certificates in any format and order make the same bundle id.
#[test]
fn identical_bundles_have_identical_ids() {
    let pass = passphrase();
    let id = |files: &[&str]| {
        bundle_of(files, Some(&pass), AssembleOptions::default())
            .unwrap()
            .id()
    };
    let reference = id(&["fullchain-ec256.pem", "ec256.key"]);
    for files in [
        &["mixed-ec256.pem"][..],
        &["ec256.p12"],
        &["ec256-legacy.p12"],
        &["reversed-ec256.pem", "ec256.enc-scrypt.pem"],
        &["leaf-ec256.der", "ec256.sec1.der", "chain.pem"],
    ] {
        assert_eq!(id(files), reference, "{files:?}");
    }
    assert_ne!(
        id(&["leaf-ec256.pem", "ec256.key", "inter.pem"]),
        reference,
        "a different chain is a different bundle"
    );
}

/// The chain comes out leaf → intermediate(s) → root whatever order the input had.
#[test]
fn chain_is_ordered_by_signature() {
    let b = bundle_of(
        &["deepchain.pem", "deep.key", "leaf-deep.pem"],
        None,
        AssembleOptions::default(),
    )
    .unwrap();
    let subjects: Vec<_> = b.certs().map(|c| c.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "CN=deep.example.test",
            "CN=certraft test intermediate 2",
            "CN=certraft test intermediate",
            "CN=certraft test root"
        ]
    );
}

/// Duplicates and unrelated certificates are reported as warnings.
#[test]
fn duplicates_and_unrelated_certificates_are_reported() {
    let b = bundle_of(
        &["dup-ec256.pem", "ec256.key", "root.pem", "other-root.pem"],
        None,
        AssembleOptions::default(),
    )
    .unwrap();
    let codes: Vec<_> = b.warnings().iter().map(|w| w.code).collect();
    assert!(codes.contains(&"duplicate_certificate"), "{codes:?}");
    assert!(codes.contains(&"unrelated_certificate"), "{codes:?}");
    assert_eq!(b.completeness(), Completeness::Complete);
}

/// Errors name the file and the values involved, and say what to do next.
#[test]
fn errors_name_the_file_and_the_next_step() {
    let files = parse_all(&["fullchain-ec256.pem", "ec384.key"], None).unwrap();
    let err = certraft::bundle::assemble(files, AssembleOptions::default(), now()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ec384.key")
            && msg.contains("P-384")
            && msg.contains("add the certificate issued for this key"),
        "{msg}"
    );

    let err = parse_file("site.p12", &fixture("ec256.p12"), Some(&wrong_passphrase())).unwrap_err();
    assert!(
        err.to_string().contains("site.p12") && err.to_string().contains("passphrase"),
        "{err}"
    );

    let err = parse_file("cut.der", &fixture("truncated.der"), None).unwrap_err();
    assert!(
        err.to_string().contains("cut.der") && err.to_string().contains("bytes"),
        "{err}"
    );
}

/// Seal → open gives back the same key and certificates, and the serving form loads (without
/// the chain's trust anchor).
#[test]
fn sealed_bundle_opens_into_the_same_bundle_and_serves() {
    let keyring = Keyring::new(DataKey::generate(1));
    for files in [
        &["fullchain-ec256.pem", "ec256.key"][..],
        &["leaf-rsa2048.pem", "rsa2048.key", "chain.pem"],
        &["leaf-ed25519.pem", "ed25519.key"],
        &["leaf-ec384.pem", "ec384.key"],
    ] {
        let b = bundle_of(files, None, AssembleOptions::default()).unwrap();
        let sealed = b.seal(&keyring);
        let opened = sealed.open(&keyring).unwrap();
        assert_eq!(opened.id, b.id());
        assert_eq!(opened.key_pkcs8(), b.key().pkcs8_der());
        let ck = opened.certified_key().unwrap();
        ck.keys_match().expect("opened key matches its leaf");
        // What a handshake sends: every certificate but a trust anchor at the end (issue 17).
        let anchor = b
            .chain()
            .last()
            .is_some_and(|c| c.is_ca && c.is_self_issued());
        assert_eq!(ck.cert.len(), b.certs().count() - usize::from(anchor));
        assert_eq!(ck.cert[0].as_ref(), b.leaf().der.as_slice());
        // No key bytes in the sealed blob or its Debug.
        let key = b.key().pkcs8_der();
        assert!(
            !sealed
                .blob
                .windows(16)
                .any(|w| key.windows(16).any(|k| k == w)),
            "plaintext key bytes in the sealed blob"
        );
        assert!(
            !format!("{sealed:?}{opened:?}{b:?}").contains(&hex::encode(&key[key.len() - 16..]))
        );
    }
}

/// A flipped bit in a stored bundle is refused with "tampered or wrong key".
#[test]
fn tampered_sealed_bundle_is_refused() {
    let keyring = Keyring::new(DataKey::generate(1));
    let mut sealed = ec256_bundle().seal(&keyring);
    let mut blob = sealed.blob.to_vec();
    let mid = blob.len() / 2;
    blob[mid] ^= 0x01;
    sealed.blob = blob.into();
    let err = sealed.open(&keyring).unwrap_err();
    assert_eq!(err.code(), "sealed_tampered");
    assert!(err.to_string().contains("tampered"), "{err}");
}

/// PEM export holds the certificates only, never the key, and re-imports to the same chain.
#[test]
fn pem_export_is_certificates_only() {
    let b = ec256_bundle();
    let pem = export_pem(&ExportParts::from(&b));
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 3);
    assert!(!pem.contains("PRIVATE KEY"));
    let again = bundle_of_bytes(&[
        ("out.pem", pem.as_bytes()),
        ("ec256.key", &fixture("ec256.key")),
    ]);
    assert_eq!(again.id(), b.id());
}

fn bundle_of_bytes(files: &[(&str, &[u8])]) -> certraft::bundle::Bundle {
    let parsed = files
        .iter()
        .map(|(n, b)| parse_file(n, b, Some(&passphrase())).unwrap())
        .collect();
    certraft::bundle::assemble(parsed, AssembleOptions::default(), now()).unwrap()
}

/// Modern PKCS#12 export re-imports to the same bundle and is read by OpenSSL 3 without
/// `-legacy`, with PBES2/PBKDF2/AES-256-CBC/HMAC-SHA256 and 600,000 iterations.
#[test]
fn pkcs12_export_round_trips_and_openssl_reads_it() {
    let b = ec256_bundle();
    let pass = passphrase();
    let p12 = export_pkcs12(
        &ExportParts::from(&b),
        "ec256",
        &pass,
        Pkcs12Profile::Modern,
    )
    .unwrap();
    let again = bundle_of_bytes(&[("out.p12", &p12)]);
    assert_eq!(again.id(), b.id());
    assert_eq!(again.key().pkcs8_der(), b.key().pkcs8_der());

    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.p12");
    std::fs::write(&path, &p12).unwrap();
    let passfile = crate::support::fixtures_dir().join("pass.txt");
    let info = std::process::Command::new("openssl")
        .args(["pkcs12", "-info", "-nodes", "-in"])
        .arg(&path)
        .arg("-passin")
        .arg(format!("file:{}", passfile.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&info.stderr);
    assert!(
        info.status.success(),
        "openssl pkcs12 -info failed: {stderr}"
    );
    for needle in [
        "MAC: sha256, Iteration 600000",
        "PBES2, PBKDF2, AES-256-CBC, Iteration 600000, PRF hmacWithSHA256",
    ] {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in openssl's report:\n{stderr}"
        );
    }
    // What OpenSSL extracted is the same key, leaf and chain.
    let stdout = info.stdout;
    let from_openssl = bundle_of_bytes(&[("openssl-out.pem", &stdout)]);
    assert_eq!(from_openssl.id(), b.id());
    assert_eq!(from_openssl.key().spki(), b.key().spki());
}

/// `--legacy` export (3DES, SHA-1 MAC) also round-trips.
#[test]
fn legacy_pkcs12_export_round_trips() {
    let b = bundle_of(
        &["leaf-rsa2048.pem", "rsa2048.key", "chain.pem"],
        None,
        AssembleOptions::default(),
    )
    .unwrap();
    let p12 = export_pkcs12(
        &ExportParts::from(&b),
        "rsa",
        &passphrase(),
        Pkcs12Profile::Legacy,
    )
    .unwrap();
    assert_eq!(bundle_of_bytes(&[("legacy.p12", &p12)]).id(), b.id());
}

/// PKCS#12 export refuses an empty passphrase.
#[test]
fn pkcs12_export_needs_a_passphrase() {
    let b = ec256_bundle();
    let err = export_pkcs12(
        &ExportParts::from(&b),
        "x",
        &certraft::bundle::Passphrase::new(""),
        Pkcs12Profile::Modern,
    )
    .unwrap_err();
    assert_eq!(err.code(), "passphrase_required");
}

/// A CN that is not a DNS name (a CA's "certraft test root") does not stand in for missing
/// SANs: the bundle has no hostnames and says so.
#[test]
fn cn_that_is_not_a_dns_name_gives_no_hostnames() {
    let b = bundle_of(&["root.pem", "root.key"], None, AssembleOptions::default()).unwrap();
    assert!(b.hostnames().is_empty(), "{:?}", b.hostnames());
    let codes: Vec<_> = b.warnings().iter().map(|w| w.code).collect();
    assert!(
        codes.contains(&"no_hostnames") && codes.contains(&"leaf_is_ca"),
        "{codes:?}"
    );
}

/// Refusals name the files involved: no key lists the inputs, expiry names the leaf's file.
#[test]
fn refusals_name_the_files_involved() {
    let files = parse_all(&["fullchain-ec256.pem", "inter.pem"], None).unwrap();
    let msg = certraft::bundle::assemble(files, AssembleOptions::default(), now())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("fullchain-ec256.pem, inter.pem") && msg.contains("4 certificate(s)"),
        "{msg}"
    );
    let files = parse_all(&["leaf-expired.pem", "expired.key"], None).unwrap();
    let msg = certraft::bundle::assemble(files, AssembleOptions::default(), now())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("leaf-expired.pem")
            && msg.contains("2021-01-01")
            && msg.contains("--allow-expired"),
        "{msg}"
    );
}

/// Regression test for the security review: a 144-byte scrypt PKCS#8 (N=2^30, 1 TiB) made the
/// importer abort, and PBKDF2/PKCS#12 iteration counts of 2^31-1 froze it. Each bomb fixture
/// is refused in well under a second, and the message names the value found and the cap.
#[test]
fn key_derivation_bombs_are_refused_at_once_naming_the_cap() {
    let pass = passphrase();
    for (name, needles) in [
        (
            "bomb-scrypt.p8",
            &["N=1073741824, r=8", "1 TiB", "at most 256 MiB"][..],
        ),
        (
            "bomb-scrypt.pem",
            &["N=1073741824, r=8", "1 TiB", "at most 256 MiB"],
        ),
        (
            "bomb-pbkdf2.p8",
            &["PBKDF2 with 2147483647 iterations", "at most 10000000"],
        ),
        (
            "bomb-mac.p12",
            &[
                "the PKCS#12 MAC",
                "2147483647 iterations",
                "at most 10000000",
            ],
        ),
        (
            "bomb-keybag.p12",
            &["a PKCS#12 bag", "2147483647 iterations", "at most 10000000"],
        ),
        (
            "bomb-nested.p12",
            &["inside an encrypted container", "1 TiB", "at most 256 MiB"],
        ),
    ] {
        let started = std::time::Instant::now();
        let err = parse_file(name, &fixture(name), Some(&pass)).unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed < std::time::Duration::from_secs(2),
            "{name}: took {elapsed:?}"
        );
        assert_eq!(err.code(), "kdf_limit", "{name}: {err}");
        let msg = err.to_string();
        for needle in needles {
            assert!(msg.contains(needle), "{name}: {needle:?} not in {msg}");
        }
        assert!(msg.starts_with(&format!("{name}: ")), "{msg}");
    }
}

/// A certificate with 1,001 names (cap 1,000) is refused by assembly, naming the count, the
/// cap and the file.
#[test]
fn certificate_with_too_many_names_is_refused() {
    let files = parse_all(&["leaf-manynames.pem", "manynames.key"], None).unwrap();
    let err = certraft::bundle::assemble(files, AssembleOptions::default(), now()).unwrap_err();
    assert_eq!(err.code(), "too_many_names");
    let msg = err.to_string();
    assert!(
        msg.contains("leaf-manynames.pem") && msg.contains("1001") && msg.contains("at most 1000"),
        "{msg}"
    );
}
