//! Unit tests of `key.rs`: EC keys in every shape the tools write, rebuilt into canonical
//! PKCS#8, against the real files of `node/tests/fixtures/tools/`.

use pkcs8::der::asn1::{AnyRef, ObjectIdentifier};
use pkcs8::der::{Decode, Encode};
use pkcs8::{AlgorithmIdentifierRef, PrivateKeyInfo};

use super::*;
use crate::bundle::cert::parse_cert;

/// The DER of the first PEM block of `text` with this label.
fn pem_block(text: &[u8], label: &str) -> Vec<u8> {
    pem::parse_many(text)
        .unwrap()
        .into_iter()
        .find(|b| b.tag() == label)
        .unwrap_or_else(|| panic!("no {label} block"))
        .into_contents()
}

/// The SPKI of the first certificate (the leaf) of a PEM file.
fn leaf_spki(pem_text: &[u8]) -> Vec<u8> {
    parse_cert(&pem_block(pem_text, "CERTIFICATE"))
        .unwrap()
        .spki
}

const P256_LEAF: &[u8] = include_bytes!("../../../../tests/fixtures/tools/base-p256.pem");
const P384_LEAF: &[u8] = include_bytes!("../../../../tests/fixtures/tools/base-p384.pem");
const CERTTOOL_EC_CHAIN: &[u8] =
    include_bytes!("../../../../tests/fixtures/tools/certtool-ec-fullchain.pem");

/// The inner `ECPrivateKey` of a canonical key: 32/48-byte scalar, named curve, public key.
fn assert_canonical(key: &PrivateKey, curve: ObjectIdentifier, width: usize) {
    let info = PrivateKeyInfo::from_der(key.pkcs8_der()).unwrap();
    assert_eq!(info.algorithm.oid, OID_EC_PUBLIC_KEY);
    assert_eq!(info.algorithm.parameters_oid().unwrap(), curve);
    let ec = sec1::EcPrivateKey::from_der(info.private_key).unwrap();
    assert_eq!(ec.private_key.len(), width);
    assert_eq!(ec.parameters.and_then(|p| p.named_curve()), Some(curve));
    assert_eq!(ec.public_key.map(<[u8]>::len), Some(2 * width + 1));
}

/// Keys without their public key (`openssl ec -no_public` SEC1; its PKCS#8 form, which has
/// neither parameters nor public key inside, as Java writes) and GnuTLS's 33-byte scalars
/// load, and the derived public key is exactly the one in the key's certificate.
#[test]
fn ec_keys_without_public_key_or_with_padded_scalar_match_their_certificate() {
    type Loader = fn(&[u8]) -> Result<PrivateKey, KeyError>;
    let sec1: Loader = PrivateKey::from_sec1_der;
    let pkcs8: Loader = PrivateKey::from_pkcs8_der;
    /// File name, its bytes, the PEM label, the loader, its leaf, the key kind.
    type Case = (
        &'static str,
        &'static [u8],
        &'static str,
        Loader,
        &'static [u8],
        KeyKind,
    );
    let cases: [Case; 6] = [
        (
            "openssl-p256-nopub.sec1.pem",
            include_bytes!("../../../../tests/fixtures/tools/openssl-p256-nopub.sec1.pem"),
            "EC PRIVATE KEY",
            sec1,
            P256_LEAF,
            KeyKind::EcP256,
        ),
        (
            "openssl-p256-nopub.p8.pem",
            include_bytes!("../../../../tests/fixtures/tools/openssl-p256-nopub.p8.pem"),
            "PRIVATE KEY",
            pkcs8,
            P256_LEAF,
            KeyKind::EcP256,
        ),
        (
            "openssl-p384-nopub.sec1.pem",
            include_bytes!("../../../../tests/fixtures/tools/openssl-p384-nopub.sec1.pem"),
            "EC PRIVATE KEY",
            sec1,
            P384_LEAF,
            KeyKind::EcP384,
        ),
        (
            "openssl-p384-nopub.p8.pem",
            include_bytes!("../../../../tests/fixtures/tools/openssl-p384-nopub.p8.pem"),
            "PRIVATE KEY",
            pkcs8,
            P384_LEAF,
            KeyKind::EcP384,
        ),
        (
            "certtool-ec.key",
            include_bytes!("../../../../tests/fixtures/tools/certtool-ec.key"),
            "EC PRIVATE KEY",
            sec1,
            CERTTOOL_EC_CHAIN,
            KeyKind::EcP256,
        ),
        (
            "certtool-ec-pkcs8.key",
            include_bytes!("../../../../tests/fixtures/tools/certtool-ec-pkcs8.key"),
            "PRIVATE KEY",
            pkcs8,
            CERTTOOL_EC_CHAIN,
            KeyKind::EcP256,
        ),
    ];
    for (name, text, label, load, leaf, kind) in cases {
        let der = pem_block(text, label);
        let key = load(&der).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(key.kind(), kind, "{name}");
        assert_eq!(
            key.spki(),
            leaf_spki(leaf),
            "{name}: SPKI differs from the leaf's"
        );
        let (curve, width) = match kind {
            KeyKind::EcP256 => (OID_P256, 32),
            _ => (OID_P384, 48),
        };
        assert_canonical(&key, curve, width);
        // Canonical is a fixed point: loading it again gives the same bytes.
        let again = PrivateKey::from_pkcs8_der(key.pkcs8_der()).unwrap();
        assert_eq!(again.pkcs8_der(), key.pkcs8_der(), "{name}");
    }
}

/// The fields of an `ECPrivateKey`, owned, for editing.
struct Parts {
    scalar: Vec<u8>,
    curve: Option<ObjectIdentifier>,
    public_key: Option<Vec<u8>>,
}

/// Re-encodes `base-p256.key`'s inner `ECPrivateKey` with `edit` applied, wrapped in a
/// PKCS#8 whose AlgorithmIdentifier names `outer` (or has no parameters).
fn edited_base_p256(outer: Option<ObjectIdentifier>, edit: impl FnOnce(&mut Parts)) -> Vec<u8> {
    let der = pem_block(
        include_bytes!("../../../../tests/fixtures/tools/base-p256.key"),
        "PRIVATE KEY",
    );
    let info = PrivateKeyInfo::from_der(&der).unwrap();
    let ec = sec1::EcPrivateKey::from_der(info.private_key).unwrap();
    let mut parts = Parts {
        scalar: ec.private_key.to_vec(),
        curve: ec
            .parameters
            .and_then(|p| p.named_curve())
            .or(Some(OID_P256)),
        public_key: ec.public_key.map(<[u8]>::to_vec),
    };
    edit(&mut parts);
    let inner = sec1::EcPrivateKey {
        private_key: &parts.scalar,
        parameters: parts.curve.map(sec1::EcParameters::NamedCurve),
        public_key: parts.public_key.as_deref(),
    }
    .to_der()
    .unwrap();
    PrivateKeyInfo::new(
        AlgorithmIdentifierRef {
            oid: OID_EC_PUBLIC_KEY,
            parameters: outer.as_ref().map(AnyRef::from),
        },
        &inner,
    )
    .to_der()
    .unwrap()
}

/// `base-p256.key` made "no public" the way Java writes it (no parameters, no public key)
/// derives the public key of `base-p256.pem`, and the public key it carries when whole is
/// checked against the scalar.
#[test]
fn base_p256_key_without_public_key_derives_the_leafs_spki() {
    let whole = edited_base_p256(Some(OID_P256), |_| {});
    let stripped = edited_base_p256(Some(OID_P256), |ec| {
        ec.public_key = None;
        ec.curve = None;
    });
    let spki = leaf_spki(P256_LEAF);
    for der in [&whole, &stripped] {
        let key = PrivateKey::from_pkcs8_der(der).unwrap();
        assert_eq!(key.spki(), spki);
        assert_canonical(&key, OID_P256, 32);
    }
    assert_eq!(
        PrivateKey::from_pkcs8_der(&whole).unwrap().pkcs8_der(),
        PrivateKey::from_pkcs8_der(&stripped).unwrap().pkcs8_der()
    );
}

/// Corrupt and unusable EC keys are refused with what is wrong, never loaded.
#[test]
fn corrupt_ec_keys_are_refused_naming_the_fault() {
    // A valid P-256 point that is not this key's: certtool's key's public key.
    let other = PrivateKey::from_sec1_der(&pem_block(
        include_bytes!("../../../../tests/fixtures/tools/certtool-ec.key"),
        "EC PRIVATE KEY",
    ))
    .unwrap();
    let other_info = PrivateKeyInfo::from_der(other.pkcs8_der()).unwrap();
    let other_point = sec1::EcPrivateKey::from_der(other_info.private_key)
        .unwrap()
        .public_key
        .unwrap()
        .to_vec();
    let zero = [0u8; 32];
    let high = [0xffu8; 32];
    let long = [0x01u8; 33];
    let garbage_point = [0x04u8; 65];
    let secp256k1 = ObjectIdentifier::new_unwrap("1.3.132.0.10");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "foreign public key",
            edited_base_p256(Some(OID_P256), |ec| {
                ec.public_key = Some(other_point.clone())
            }),
            "the key's public key does not match its private scalar",
        ),
        (
            "public key not on the curve",
            edited_base_p256(Some(OID_P256), |ec| {
                ec.public_key = Some(garbage_point.to_vec())
            }),
            "not a point on P-256",
        ),
        (
            "zero scalar",
            edited_base_p256(Some(OID_P256), |ec| {
                ec.scalar = zero.to_vec();
                ec.public_key = None;
            }),
            "private scalar is zero",
        ),
        (
            "scalar above the order",
            edited_base_p256(Some(OID_P256), |ec| {
                ec.scalar = high.to_vec();
                ec.public_key = None;
            }),
            "out of range",
        ),
        (
            "33 significant bytes",
            edited_base_p256(Some(OID_P256), |ec| {
                ec.scalar = long.to_vec();
                ec.public_key = None;
            }),
            "33 bytes long; a P-256 scalar has at most 32",
        ),
        (
            "curves disagree",
            edited_base_p256(Some(OID_P384), |_| {}),
            "names curve P-384 but the EC key inside names P-256",
        ),
        (
            "no curve anywhere",
            edited_base_p256(None, |ec| ec.curve = None),
            "does not name its curve",
        ),
        (
            "unsupported curve",
            edited_base_p256(Some(secp256k1), |ec| ec.curve = None),
            "unsupported key algorithm ECDSA on curve secp256k1",
        ),
    ];
    let mut failures = Vec::new();
    for (name, der, want) in cases {
        match PrivateKey::from_pkcs8_der(&der) {
            Ok(_) => failures.push(format!("{name}: loaded")),
            Err(e) if e.to_string().contains(want) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A key's `Debug` never shows key material.
#[test]
fn debug_of_a_rebuilt_key_shows_no_key_bytes() {
    let key = PrivateKey::from_pkcs8_der(&edited_base_p256(Some(OID_P256), |ec| {
        ec.public_key = None;
    }))
    .unwrap();
    let shown = format!("{key:?}");
    let der = key.pkcs8_der();
    assert!(!shown.contains(&hex::encode(&der[der.len() - 16..])));
    assert!(shown.contains("<redacted>"), "{shown}");
}
