//! Unit tests of `pkcs7.rs`: the real `.p7b`/`.p7c`/PEM files of OpenSSL and certtool, BER
//! versions of them, and malformed input.

use proptest::prelude::*;

use super::*;
use crate::bundle::assemble::{assemble, AssembleOptions};
use crate::bundle::formats::{parse_file, FileFormat};
use crate::bundle::key::KeyKind;

/// 2025-06-15: inside every tools leaf's validity (2024–2099).
const NOW: i64 = 1_750_000_000;

const OPENSSL_P256_P7B: &[u8] =
    include_bytes!("../../../../tests/fixtures/tools/openssl-p256-chain.p7b");

/// A file name, its bytes, its key's bytes, the detected format, the leaf's DNS name and
/// the key kind.
type Case = (
    &'static str,
    &'static [u8],
    &'static [u8],
    FileFormat,
    &'static str,
    KeyKind,
);

/// Each PKCS#7 file of the corpus with its key (the `extra` column of `expected.tsv`), the
/// format it must be detected as, the leaf's name and key kind.
fn corpus() -> Vec<Case> {
    let p256_key = &include_bytes!("../../../../tests/fixtures/tools/base-p256.key")[..];
    let p384_key = &include_bytes!("../../../../tests/fixtures/tools/base-p384.key")[..];
    let rsa_key = &include_bytes!("../../../../tests/fixtures/tools/base-rsa.key")[..];
    vec![
        (
            "openssl-p256-chain.p7.pem",
            include_bytes!("../../../../tests/fixtures/tools/openssl-p256-chain.p7.pem"),
            p256_key,
            FileFormat::Pem,
            "p256.tools.test",
            KeyKind::EcP256,
        ),
        (
            "openssl-p256-chain.p7b",
            OPENSSL_P256_P7B,
            p256_key,
            FileFormat::Pkcs7,
            "p256.tools.test",
            KeyKind::EcP256,
        ),
        (
            "openssl-rsa-chain.p7c",
            include_bytes!("../../../../tests/fixtures/tools/openssl-rsa-chain.p7c"),
            rsa_key,
            FileFormat::Pkcs7,
            "rsa.tools.test",
            KeyKind::Rsa { bits: 2048 },
        ),
        (
            "certtool-p384-chain.p7b",
            include_bytes!("../../../../tests/fixtures/tools/certtool-p384-chain.p7b"),
            p384_key,
            FileFormat::Pkcs7,
            "p384.tools.test",
            KeyKind::EcP384,
        ),
        (
            "certtool-p384-chain.p7.pem",
            include_bytes!("../../../../tests/fixtures/tools/certtool-p384-chain.p7.pem"),
            p384_key,
            FileFormat::Pem,
            "p384.tools.test",
            KeyKind::EcP384,
        ),
    ]
}

/// Every PKCS#7 file of the corpus gives its 3 certificates (OpenSSL's leaf first,
/// certtool's root first) and, with its key, a bundle of the expected leaf and 2 chain
/// certificates.
#[test]
fn pkcs7_files_from_openssl_and_certtool_assemble_with_their_key() {
    let mut failures = Vec::new();
    for (name, bytes, key, format, leaf, kind) in corpus() {
        let parsed = match parse_file(name, bytes, None) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if parsed.certs.len() != 3 || parsed.format != format || !parsed.keys.is_empty() {
            failures.push(format!(
                "{name}: {} certs, format {:?}",
                parsed.certs.len(),
                parsed.format
            ));
            continue;
        }
        let files = vec![parsed, parse_file("key.pem", key, None).unwrap()];
        match assemble(files, AssembleOptions::default(), NOW) {
            Ok(b) if b.leaf().dns_names == [leaf] && b.key().kind() == kind => {
                if b.chain().len() != 2 {
                    failures.push(format!("{name}: chain of {}", b.chain().len()));
                }
            }
            Ok(b) => failures.push(format!("{name}: leaf {:?}", b.leaf().dns_names)),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `der` re-encoded as BER: every constructed element with an indefinite length and
/// end-of-contents octets, down to (not into) the certificates.
fn to_ber(der: &[u8], depth: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (tlv, next) = Tlv::split(rest, 0).unwrap();
        // The certificates stay DER: a signature covers their encoding.
        if tlv.tag & CONSTRUCTED != 0 && depth < 4 {
            out.extend_from_slice(&[tlv.tag, 0x80]);
            out.extend(to_ber(tlv.body, depth + 1));
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(tlv.raw);
        }
        rest = next;
    }
    out
}

/// BER with indefinite lengths (as certtool, NSS and Windows write) reads like the DER, as a
/// whole file and as a PEM `CMS` block.
#[test]
fn ber_indefinite_lengths_are_read() {
    let ber = to_ber(OPENSSL_P256_P7B, 0);
    assert!(ber.starts_with(&[0x30, 0x80]) && ber.ends_with(&[0, 0]));
    assert!(ber.windows(3).any(|w| w == [CONTEXT_0, 0x80, SEQUENCE]));
    let der = parse_file("chain.p7b", OPENSSL_P256_P7B, None).unwrap();
    let parsed = parse_file("chain-ber.p7b", &ber, None).unwrap();
    assert_eq!(parsed.format, FileFormat::Pkcs7);
    let ders = |p: &ParsedFile| p.certs.iter().map(|c| c.der.clone()).collect::<Vec<_>>();
    assert_eq!(ders(&parsed), ders(&der));
    let pem = pem::encode(&pem::Pem::new("CMS", ber));
    let from_pem = parse_file("chain.pem", pem.as_bytes(), None).unwrap();
    assert_eq!(ders(&from_pem), ders(&der));
}

/// ContentInfo (signedData) around a SignedData with these fields after `version`.
fn signed_data(fields: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(body);
        out
    }
    let mut sd = vec![INTEGER, 1, 1];
    sd.extend_from_slice(fields);
    let mut ci = SIGNED_DATA_OID.to_vec();
    ci.extend(tlv(CONTEXT_0, &tlv(SEQUENCE, &sd)));
    tlv(SEQUENCE, &ci)
}

/// `digestAlgorithms` (empty SET) and `encapContentInfo` (id-data, no content).
const DIGESTS_AND_ENCAP: [u8; 15] = [
    0x31, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

/// The certificates of the OpenSSL `.p7b`, each as its whole DER.
fn corpus_certs() -> Vec<Vec<u8>> {
    parse_file("chain.p7b", OPENSSL_P256_P7B, None)
        .unwrap()
        .certs
        .into_iter()
        .map(|c| c.der)
        .collect()
}

/// Builds `[0] IMPLICIT SET OF` from these entries, then an empty `signerInfos`.
fn with_certificates(entries: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = entries.concat();
    let mut fields = DIGESTS_AND_ENCAP.to_vec();
    fields.push(CONTEXT_0);
    fields.extend_from_slice(&[
        0x83,
        (body.len() >> 16) as u8,
        (body.len() >> 8) as u8,
        body.len() as u8,
    ]);
    fields.extend(body);
    fields.extend_from_slice(&[SET, 0]);
    signed_data(&fields)
}

/// Faults are refused naming the construct (never the parser's internals), with the
/// conversion command; a signedData without certificates says so.
#[test]
fn malformed_pkcs7_is_refused_naming_the_construct() {
    let mut no_set = DIGESTS_AND_ENCAP.to_vec();
    no_set.extend_from_slice(&[0x80, 0x00, SET, 0x00]);
    let mut truncated = OPENSSL_P256_P7B.to_vec();
    truncated.truncate(700);
    let mut enveloped = OPENSSL_P256_P7B.to_vec();
    enveloped[14] = 0x03; // 1.2.840.113549.1.7.3, envelopedData
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "no certificates field",
            signed_data(&[&DIGESTS_AND_ENCAP[..], &[SET, 0]].concat()),
            "empty_pkcs7",
            "x.p7b: the PKCS#7 file holds no certificates",
        ),
        (
            "empty certificates field",
            with_certificates(&[]),
            "empty_pkcs7",
            "holds no certificates",
        ),
        (
            "certificates field primitive",
            signed_data(&no_set),
            "invalid_pkcs7",
            "x.p7b: the PKCS#7 file could not be read: its certificates field is not a SET (IMPLICIT [0]) (found tag 0x80); convert it with `openssl pkcs7 -inform DER -print_certs -in x.p7b -out chain.pem`",
        ),
        (
            "digestAlgorithms not a SET",
            signed_data(&[0x30, 0x00]),
            "invalid_pkcs7",
            "its SignedData digestAlgorithms is not a SET (found tag 0x30)",
        ),
        (
            "no encapContentInfo",
            signed_data(&[0x31, 0x00]),
            "invalid_pkcs7",
            "its SignedData encapContentInfo is missing",
        ),
        (
            "truncated",
            truncated,
            "invalid_pkcs7",
            "its ContentInfo is truncated or not valid DER/BER",
        ),
        (
            "enveloped",
            enveloped,
            "unrecognized_format",
            "",
        ),
        (
            "a certificate that is not one",
            with_certificates(&[vec![0x30, 0x03, 0x02, 0x01, 0x00]]),
            "invalid_pkcs7",
            "certificate 1 of its certificates field is not a valid X.509 certificate",
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, code, needle) in &cases {
        match parse_file("x.p7b", bytes, None) {
            Err(e) if e.code() == *code && e.to_string().contains(needle) => {}
            other => failures.push(format!("{name}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A PEM `PKCS7` block of another content type names the type it found.
#[test]
fn pem_pkcs7_of_another_type_names_it() {
    let mut enveloped = OPENSSL_P256_P7B.to_vec();
    enveloped[14] = 0x03;
    let pem = pem::encode(&pem::Pem::new("PKCS7", enveloped));
    let err = parse_file("x.pem", pem.as_bytes(), None).unwrap_err();
    assert_eq!(err.code(), "invalid_pkcs7");
    assert!(
        err.to_string()
            .contains("it is a PKCS#7 ContentInfo of type 1.2.840.113549.1.7.3, not signedData")
            && err
                .to_string()
                .contains("`openssl pkcs7 -print_certs -in x.pem"),
        "{err}"
    );
}

/// Attribute certificates and other `CertificateChoices` are skipped with a note; the
/// X.509 certificates around them are read in file order; CRLs are noted.
#[test]
fn other_certificate_choices_and_crls_are_noted() {
    let certs = corpus_certs();
    let parsed = parse_file("x.p7b", &with_certificates_and_crls(&certs), None).unwrap();
    assert_eq!(parsed.certs.len(), 2);
    assert_eq!(parsed.certs[0].der, certs[0]);
    assert_eq!(parsed.certs[1].der, certs[1]);
    assert_eq!(
        parsed.ignored,
        [
            "PKCS#7 certificates entry 2 (a version 2 attribute certificate: not an X.509 certificate)",
            "PKCS#7 CRLs (revocation lists are not part of a bundle)",
        ]
    );
}

/// Leaf, an attribute certificate, intermediate, then an empty `crls [1]`.
fn with_certificates_and_crls(certs: &[Vec<u8>]) -> Vec<u8> {
    let attribute_cert = vec![0xa2, 0x03, 0x02, 0x01, 0x00];
    let body: Vec<u8> = [certs[0].clone(), attribute_cert, certs[1].clone()].concat();
    let mut fields = DIGESTS_AND_ENCAP.to_vec();
    fields.push(CONTEXT_0);
    fields.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
    fields.extend(body);
    fields.extend_from_slice(&[CONTEXT_1, 0x00, SET, 0x00]);
    signed_data(&fields)
}

/// More certificates than a file may hold are refused before any is parsed.
#[test]
fn certificate_count_is_capped() {
    let certs = corpus_certs();
    let many: Vec<Vec<u8>> = (0..=MAX_CERTS_PER_FILE)
        .map(|i| certs[i % 3].clone())
        .collect();
    let err = parse_file("x.p7b", &with_certificates(&many), None).unwrap_err();
    assert_eq!(err.code(), "too_many_certificates", "{err}");
    let ok: Vec<Vec<u8>> = (0..MAX_CERTS_PER_FILE)
        .map(|i| certs[i % 3].clone())
        .collect();
    assert_eq!(
        parse_file("x.p7b", &with_certificates(&ok), None)
            .unwrap()
            .certs
            .len(),
        MAX_CERTS_PER_FILE
    );
}

/// Deeply nested indefinite lengths are refused, not followed down the stack.
#[test]
fn deep_nesting_is_refused_without_overflow() {
    let mut bomb = vec![0x30, 0x80];
    bomb.extend_from_slice(&SIGNED_DATA_OID);
    for _ in 0..100_000 {
        bomb.extend_from_slice(&[0xa0, 0x80]);
    }
    let err = parse_file("x.p7b", &bomb, None).unwrap_err();
    assert_eq!(err.code(), "invalid_pkcs7");
}

proptest! {
    /// Any bytes after a signedData header, and any truncation or single-byte change of a
    /// real file, give certificates or an error, never a panic.
    #[test]
    fn arbitrary_input_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..512),
        cut in 0usize..1396,
        at in 0usize..1396,
        byte in any::<u8>(),
    ) {
        let mut input = vec![0x30, 0x80];
        input.extend_from_slice(&SIGNED_DATA_OID);
        input.extend_from_slice(&tail);
        let _ = parse_file("x.p7b", &input, None);
        let _ = certificates(&tail);
        let _ = parse_file("x.p7b", &OPENSSL_P256_P7B[..cut.min(OPENSSL_P256_P7B.len())], None);
        let mut changed = OPENSSL_P256_P7B.to_vec();
        if let Some(b) = changed.get_mut(at) {
            *b = byte;
        }
        let _ = parse_file("x.p7b", &changed, None);
        let ber = to_ber(OPENSSL_P256_P7B, 0);
        let _ = parse_file("x.p7b", &ber[..cut.min(ber.len())], None);
    }
}
