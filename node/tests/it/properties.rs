//! Property tests: round-trips keep the bundle id; no input makes a parser panic.

use certraft::bundle::{
    assemble, export_pkcs12, parse_file, AssembleOptions, DataKey, ExportParts, Keyring,
    Passphrase, Pkcs12Profile, SealedBundle,
};
use proptest::prelude::*;

use crate::support::*;

/// Fixture bundles to round-trip: each key type, with and without a chain.
fn fixture_bundles() -> Vec<&'static [&'static str]> {
    vec![
        &["fullchain-ec256.pem", "ec256.key"],
        &["leaf-ec384.pem", "ec384.key", "inter.pem"],
        &["leaf-rsa2048.pem", "rsa2048.key"],
        &["leaf-ed25519.pem", "ed25519.key", "chain.pem"],
        &["leaf-deep.pem", "deep.key", "deepchain.pem"],
    ]
}

/// Real files to mutate: every container format.
const MUTATION_SEEDS: &[&str] = &[
    "leaf-ec256.der",
    "ec256.key.der",
    "ec256.sec1.der",
    "rsa2048.pkcs1.der",
    "ec256.enc-pbkdf2.der",
    "mixed-ec256.pem",
    "ec256.enc-scrypt.pem",
    "ec256-nopass.p12",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// seal → open gives back the same id, key and certificates, under any key version and key.
    #[test]
    fn seal_then_open_keeps_the_bundle(which in 0usize..5, version in any::<u32>(), key in any::<[u8; 32]>()) {
        let files = fixture_bundles()[which];
        let bundle = bundle_of(files, None, AssembleOptions::default()).unwrap();
        let keyring = Keyring::new(DataKey::from_bytes(version, key));
        let sealed = bundle.seal(&keyring);
        let opened = sealed.open(&keyring).unwrap();
        prop_assert_eq!(opened.id, bundle.id());
        prop_assert_eq!(opened.key_pkcs8(), bundle.key().pkcs8_der());
        let certs: Vec<&[u8]> = bundle.certs().map(|c| c.der.as_slice()).collect();
        prop_assert_eq!(opened.certs().iter().map(Vec::as_slice).collect::<Vec<_>>(), certs);
        // And the opened material re-assembles to the same bundle id.
        let p12 = export_pkcs12(&ExportParts::from(&opened), "x", &Passphrase::new("p"), Pkcs12Profile::Legacy).unwrap();
        let again = assemble(vec![parse_file("x.p12", &p12, Some(&Passphrase::new("p"))).unwrap()], AssembleOptions::default(), now()).unwrap();
        prop_assert_eq!(again.id(), bundle.id());
    }

    /// Any plaintext and record id round-trip through the keyring.
    #[test]
    fn keyring_round_trips_any_bytes(id in proptest::collection::vec(any::<u8>(), 0..64), data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let keyring = Keyring::new(DataKey::generate(7));
        let sealed = keyring.seal(&id, &data);
        let opened = keyring.open(&id, &sealed).unwrap();
        prop_assert_eq!(opened.as_slice(), data.as_slice());
    }

    /// export (legacy, fast KDF) → import gives the same bundle id for any passphrase PKCS#12
    /// can encode; one it cannot (outside the BMP) is refused with a clear code, not mangled.
    #[test]
    fn legacy_export_then_import_keeps_the_id(which in 0usize..5, pass in "[ -~]{1,40}|[\\p{L}\\p{N}\\p{So}]{1,20}") {
        let bundle = bundle_of(fixture_bundles()[which], None, AssembleOptions::default()).unwrap();
        let outside_bmp = pass.chars().any(|c| c as u32 > 0xFFFF);
        let pass = Passphrase::new(pass);
        let exported = export_pkcs12(&ExportParts::from(&bundle), "x", &pass, Pkcs12Profile::Legacy);
        if outside_bmp {
            prop_assert_eq!(exported.unwrap_err().code(), "passphrase_unsupported");
            return Ok(());
        }
        let p12 = exported.unwrap();
        let parsed = parse_file("x.p12", &p12, Some(&pass)).unwrap();
        let again = assemble(vec![parsed], AssembleOptions::default(), now()).unwrap();
        prop_assert_eq!(again.id(), bundle.id());
    }

    /// Arbitrary bytes never panic the file parser, with or without a passphrase.
    #[test]
    fn parse_file_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048), with_pass in any::<bool>()) {
        let pass = Passphrase::new("x");
        let pass = if with_pass { Some(&pass) } else { None };
        let _ = parse_file("fuzz", &bytes, pass);
    }

    /// Arbitrary bodies inside PEM armour, and DER-looking headers, never panic.
    #[test]
    fn parse_file_never_panics_on_armoured_garbage(
        label in prop::sample::select(vec!["CERTIFICATE", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "X"]),
        body in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let pem = pem::encode(&pem::Pem::new(label, body.clone()));
        let _ = parse_file("fuzz.pem", pem.as_bytes(), Some(&Passphrase::new("x")));
        let mut der = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        der.extend_from_slice(&body);
        let _ = parse_file("fuzz.der", &der, Some(&Passphrase::new("x")));
        let mut p12ish = vec![0x30, 0x82, ((body.len() + 3) >> 8) as u8, (body.len() + 3) as u8, 0x02, 0x01, 0x03];
        p12ish.extend_from_slice(&body);
        let _ = parse_file("fuzz.p12", &p12ish, None);
    }

    /// Real files with bytes flipped, cut or spliced never panic the parser.
    #[test]
    fn parse_file_never_panics_on_mutated_real_files(
        which in 0usize..MUTATION_SEEDS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = fixture(MUTATION_SEEDS[which]);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = parse_file("mutated", &bytes, Some(&passphrase()));
        let keep = cut.index(bytes.len());
        let _ = parse_file("cut", &bytes[..keep], Some(&passphrase()));
    }

    /// Arbitrary sealed blobs never panic opening; they are refused.
    #[test]
    fn open_never_panics_on_arbitrary_blobs(blob in proptest::collection::vec(any::<u8>(), 0..512), id in any::<[u8; 32]>()) {
        let keyring = Keyring::new(DataKey::generate(1));
        let sealed = SealedBundle { id, blob: blob.into() };
        prop_assert!(sealed.open(&keyring).is_err());
    }
}

/// Modern export (600,000 iterations, so few cases) → import gives the same id.
#[test]
fn modern_export_then_import_keeps_the_id() {
    for files in fixture_bundles().into_iter().take(3) {
        let bundle = bundle_of(files, None, AssembleOptions::default()).unwrap();
        let pass = Passphrase::new("päss wörd ✓");
        let p12 = export_pkcs12(
            &ExportParts::from(&bundle),
            "x",
            &pass,
            Pkcs12Profile::Modern,
        )
        .unwrap();
        let again = assemble(
            vec![parse_file("x.p12", &p12, Some(&pass)).unwrap()],
            AssembleOptions::default(),
            now(),
        )
        .unwrap();
        assert_eq!(again.id(), bundle.id(), "{files:?}");
    }
}
