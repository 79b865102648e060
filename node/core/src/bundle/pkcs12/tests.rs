//! Unit tests of the PKCS#12 reader: the caps on crafted files (nothing over a cap runs), and
//! every PKCS#12 file of the tools corpus (`node/tests/fixtures/tools`, made by OpenSSL,
//! keytool, certtool, pk12util, Python cryptography and RFC 9579) read as `expected.tsv` says.

use super::*;
use crate::bundle::crafted::{
    pbes2_alg, pbkdf2_params, pfx, pfx_with_container, pfx_with_encrypted_bags, pfx_with_mac,
    pkcs12_pbe_alg, real_key_bag, scrypt_params, shrouded_key_bag, PASS, PBE_SHA1_3DES,
    PBE_SHA1_RC2_40,
};
use crate::bundle::formats::FileFormat;
use crate::bundle::limits::MAX_KDF_ITERATIONS;

fn read(der: &[u8], passphrase: Option<&str>) -> Result<ParsedFile, FormatError> {
    let mut out = ParsedFile {
        name: "site.p12".into(),
        format: FileFormat::Pkcs12,
        certs: Vec::new(),
        keys: Vec::new(),
        ignored: Vec::new(),
    };
    let pass = passphrase.map(Passphrase::new);
    parse(&mut out, der, pass.as_ref()).map(|()| out)
}

/// A derivation over a cap is refused before it runs, naming where in the file it is.
#[test]
fn derivations_over_the_caps_are_refused_before_they_run() {
    let over = MAX_KDF_ITERATIONS + 1;
    let cases: Vec<(&str, Vec<u8>, KdfSite)> = vec![
        ("MAC", pfx_with_mac(over), KdfSite::Pkcs12Mac),
        (
            "3DES bag",
            pfx(&[&shrouded_key_bag(
                &pkcs12_pbe_alg(PBE_SHA1_3DES, over),
                &[0; 8],
            )]),
            KdfSite::Pkcs12Bag,
        ),
        (
            "PBES2 bag",
            pfx(&[&shrouded_key_bag(
                &pbes2_alg(pbkdf2_params(over as u32)),
                &[0; 16],
            )]),
            KdfSite::Pkcs12Bag,
        ),
        (
            "scrypt bag at 512 MiB",
            pfx(&[&shrouded_key_bag(
                &pbes2_alg(scrypt_params(1 << 19, 8, 1)),
                &[0; 16],
            )]),
            KdfSite::Pkcs12Bag,
        ),
        (
            "RC2 container",
            pfx_with_container(&pkcs12_pbe_alg(PBE_SHA1_RC2_40, over), &[0; 8]),
            KdfSite::Pkcs12Container,
        ),
        (
            "3DES bag inside an encrypted container",
            pfx_with_encrypted_bags(&[&shrouded_key_bag(
                &pkcs12_pbe_alg(PBE_SHA1_3DES, over),
                &[0; 8],
            )]),
            KdfSite::Pkcs12NestedBag,
        ),
    ];
    for (name, der, want) in cases {
        match read(&der, Some(PASS)) {
            Err(FormatError::KdfLimit { site, .. }) => assert_eq!(site, want, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// More derivations than one file may ask for: refused at the ninth, before it runs.
#[test]
fn a_file_asking_for_too_many_derivations_is_refused() {
    let (_, key) = crate::bundle::crafted::named_cert("leaf", "ca");
    let bag = real_key_bag(&key);
    let bags: Vec<&[u8]> = (0..9).map(|_| bag.as_slice()).collect();
    let err = read(&pfx(&bags), Some(PASS)).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::KdfLimit {
                limit: KdfLimit::TooManyRuns { runs: 9, .. },
                ..
            }
        ),
        "{err:?}"
    );
}

/// A crafted container really encrypted with `PASS` opens with it; the wrong passphrase and
/// no passphrase are told apart.
#[test]
fn an_encrypted_container_opens_only_with_its_passphrase() {
    let (cert, key) = crate::bundle::crafted::named_cert("leaf", "ca");
    let der = pfx_with_encrypted_bags(&[
        &real_key_bag(&key),
        &crate::bundle::crafted::cert_bag(&cert, true),
    ]);
    let got = read(&der, Some(PASS)).unwrap();
    assert_eq!((got.keys.len(), got.certs.len()), (1, 1));
    assert!(matches!(
        read(&der, Some("wrong")),
        Err(FormatError::WrongPassphrase { .. })
    ));
    assert!(matches!(
        read(&der, None),
        Err(FormatError::PassphraseRequired { .. })
    ));
}

/// Garbage and truncations are refused as malformed, never a panic.
#[test]
fn malformed_files_are_refused() {
    let good = include_bytes!("../../../../tests/fixtures/ec256.p12");
    for len in [0, 1, 2, 10, good.len() / 2, good.len() - 1] {
        let err = read(&good[..len], Some(PASS)).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Pkcs12 { .. } | FormatError::WrongPassphrase { .. }
            ),
            "{len}: {err:?}"
        );
    }
    // Indefinite length on a primitive, a nesting bomb.
    assert!(read(&[0x30, 0x80, 0x04, 0x80, 0, 0], None).is_err());
    let deep: Vec<u8> = std::iter::repeat_n([0x30, 0x80], 200).flatten().collect();
    assert!(read(&deep, None).is_err());
}

/// Every PKCS#12 row of the tools corpus: the keys and certificates expected.
#[test]
fn every_pkcs12_file_of_the_tools_corpus_reads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tools");
    let manifest = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, _extra, pass, tool, construct, expect] = cols[..] else {
            panic!("bad manifest line {line:?}");
        };
        if !file.ends_with(".p12") {
            continue;
        }
        let der = std::fs::read(dir.join(file)).unwrap();
        let passphrase = match pass {
            "-" => None,
            f => Some(
                Passphrase::from_file_contents(&std::fs::read(dir.join(f)).unwrap())
                    .unwrap()
                    .expose()
                    .to_string(),
            ),
        };
        let got = read(&der, passphrase.as_deref());
        let ok = match (expect.split(':').next(), &got) {
            (Some("ok"), Ok(p)) => !p.certs.is_empty(),
            (Some("err"), Err(FormatError::WrongPassphrase { .. })) => {
                expect == "err:wrong_passphrase"
            }
            (Some("err"), Err(FormatError::Pkcs12 { .. })) => expect == "err:invalid_pkcs12",
            // A well-formed file whose certificate is expired: the reader reads it, the
            // assembler refuses it.
            (Some("err"), Ok(_)) => expect == "err:expired",
            _ => false,
        };
        checked += 1;
        if !ok {
            failures.push(format!(
                "{file} ({tool}, {construct}): expected {expect}, got {got:?}"
            ));
        }
    }
    assert!(checked >= 60, "only {checked} PKCS#12 rows");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
