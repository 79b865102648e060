//! Unit tests of `assemble.rs` (kept beside it so the module itself stays readable).

use super::*;
use crate::bundle::formats::parse_file;

fn files() -> Vec<ParsedFile> {
    let chain = include_bytes!("../../../../tests/fixtures/fullchain-ec256.pem");
    let key = include_bytes!("../../../../tests/fixtures/ec256.key");
    vec![
        parse_file("fullchain.pem", chain, None).unwrap(),
        parse_file("ec256.key", key, None).unwrap(),
    ]
}

fn not_after() -> i64 {
    files()[0].certs[0].not_after
}

/// The validity window is inclusive at both ends; one second past not-after is expired.
#[test]
fn validity_window_boundaries() {
    let end = not_after();
    assert!(assemble(files(), AssembleOptions::default(), end).is_ok());
    let err = assemble(files(), AssembleOptions::default(), end + 1).unwrap_err();
    assert_eq!(err.code(), "expired");
    let start = files()[0].certs[0].not_before;
    assert!(assemble(files(), AssembleOptions::default(), start).is_ok());
    assert_eq!(
        assemble(files(), AssembleOptions::default(), start - 1)
            .unwrap_err()
            .code(),
        "not_yet_valid"
    );
}

/// Under 30 days before expiry the bundle is accepted with an `expiring_soon` warning.
#[test]
fn expiring_soon_is_a_warning() {
    let codes = |now| {
        let b = assemble(files(), AssembleOptions::default(), now).unwrap();
        b.warnings().iter().map(|w| w.code).collect::<Vec<_>>()
    };
    assert!(codes(not_after() - 10 * 86_400).contains(&"expiring_soon"));
    assert!(!codes(not_after() - 40 * 86_400).contains(&"expiring_soon"));
}

/// A self-signed leaf for `big.example.test` with `sans` DNS names and an opaque extension
/// of `padding` bytes, and its key, as parsed files.
fn generated(sans: usize, padding: usize) -> Vec<ParsedFile> {
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, cert) = generated_cert(sans, padding, "big.example.test", None, &key);
    vec![
        parse_file("leaf.der", &cert, None).unwrap(),
        parse_file("leaf.key", &key.serialize_der(), None).unwrap(),
    ]
}

fn generated_cert(
    sans: usize,
    padding: usize,
    cn: &str,
    issuer: Option<&rcgen::Issuer<'_, &rcgen::KeyPair>>,
    key: &rcgen::KeyPair,
) -> (rcgen::CertificateParams, Vec<u8>) {
    let names: Vec<String> = (0..sans).map(|i| format!("h{i}.{cn}")).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if padding > 0 {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 55555, 1],
                vec![0x5a; padding],
            ));
    }
    let cert = match issuer {
        Some(issuer) => params.signed_by(key, issuer).unwrap(),
        None => params.self_signed(key).unwrap(),
    };
    (params, cert.der().to_vec())
}

/// The bundle caps at their boundaries: 1,000 names are served, 1,001 refused; 64
/// certificates are taken (duplicates included), 65 refused; a certificate bigger than a
/// whole bundle may be is refused before the chain is ordered. Regression test for the
/// security review's 9.4 MB certificate with 520,000 SANs, which was accepted.
#[test]
fn bundle_caps() {
    let with_copies = |extra: usize| {
        let mut f = files();
        let leaf = f[0].certs[0].clone();
        f[0].certs.extend(std::iter::repeat_n(leaf, extra));
        f
    };
    let in_range = files()[0].certs[0].not_before + 1;
    let cases: Vec<(&str, Vec<ParsedFile>, Option<&str>)> = vec![
        ("1,000 names", generated(1000, 0), None),
        ("1,001 names", generated(1001, 0), Some("too_many_names")),
        ("64 certificates", with_copies(64 - 3), None),
        (
            "65 certificates",
            with_copies(65 - 3),
            Some("too_many_certificates"),
        ),
        ("a 200 KiB certificate", generated(1, 200 << 10), None),
        (
            "a 300 KiB certificate",
            generated(1, 300 << 10),
            Some("too_large"),
        ),
    ];
    for (name, files, want) in cases {
        let got = assemble(files, AssembleOptions::default(), in_range);
        assert_eq!(
            got.as_ref().err().map(|e| e.code()),
            want,
            "{name}: {got:?}"
        );
    }
}

/// Leaf and chain together over 256 KiB are refused after ordering, though each
/// certificate alone is under the cap; the message names the sizes and the cap.
#[test]
fn bundle_der_cap_counts_leaf_and_chain_together() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let (ca_params, ca) = generated_cert(0, 150 << 10, "big ca", None, &ca_key);
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, leaf) = generated_cert(1, 150 << 10, "big.example.test", Some(&issuer), &key);
    let files = vec![
        parse_file("leaf.der", &leaf, None).unwrap(),
        parse_file("ca.der", &ca, None).unwrap(),
        parse_file("leaf.key", &key.serialize_der(), None).unwrap(),
    ];
    let now = files[0].certs[0].not_before + 1;
    let err = assemble(files, AssembleOptions::default(), now).unwrap_err();
    assert_eq!(err.code(), "too_large");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "the leaf CN=big.example.test and its chain of 1 certificate(s) together is "
        ) && msg.contains("at most 262144 bytes"),
        "{msg}"
    );
}

/// The too-many-names refusal names the certificate, its file, the count and the cap.
#[test]
fn too_many_names_names_the_certificate() {
    let files = generated(1001, 0);
    let now = files[0].certs[0].not_before + 1;
    let err = assemble(files, AssembleOptions::default(), now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the certificate CN=big.example.test in leaf.der has 1001 subject alternative \
         names; certraft serves at most 1000 per certificate; split the names over several \
         certificates"
    );
}

/// `--allow-expired` turns the refusal into a warning.
#[test]
fn allow_expired_waives_and_warns() {
    let options = AssembleOptions {
        allow_expired: true,
        ..AssembleOptions::default()
    };
    let b = assemble(files(), options, not_after() + 1).unwrap();
    assert!(b.warnings().iter().any(|w| w.code == "expired"));
}
