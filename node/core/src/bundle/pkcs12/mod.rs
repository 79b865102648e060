//! Reading a PKCS#12 file: p12-keystore does the reading, after a pre-flight here has checked
//! every key derivation it would run, before anything derives a key.
//!
//! - [`parse`]: the entry point [`formats`](super::formats) calls; the candidate passphrases,
//!   the pre-flight, then p12-keystore.
//! - [`preflight`]: the walk over the DER that finds every derivation and certificate.
//! - [`open_container`]: the decrypt step that lets the walk see inside encrypted containers.
//! - [`der`]: a small DER reader (for the walk) and writer (for the decrypt step's probe).
//!
//! p12-keystore 0.2 has no hook between parsing and deriving: `KeyStore::from_pkcs12` derives
//! the MAC key, then decrypts each encrypted container of the authenticated safe, then each
//! shrouded key bag (and each secret bag's wrapped key) it finds, all with parameters taken
//! from the file, in one call. So certraft walks the DER itself first, with no new dependency
//! (a small TLV reader in [`der`], `pkcs5` for PBES2 parameters, `x509-parser` for names).
//!
//! **Reachable without decryption**, checked by [`preflight::read`] before any derivation:
//! - the MAC's iteration count (`MacData`);
//! - the algorithm identifier of each encrypted container (`EncryptedData`);
//! - every PBES2 or `pkcs-12PbeIds` algorithm identifier anywhere in the plain (`data`)
//!   containers: shrouded key bags, secret bags wrapping an encrypted key, and anything else,
//!   found by a scan that descends into every constructed element and every OCTET STRING that
//!   holds DER (a superset of what p12-keystore decodes, so nothing it would use is missed).
//!
//! **Reachable only after decryption**: the bags inside an encrypted container. p12-keystore
//! would decrypt the container and at once derive a key for every shrouded key bag inside,
//! with parameters no one has seen. So [`open_container`] decrypts each container first,
//! *through p12-keystore itself*: the container's (already checked) algorithm identifier and
//! ciphertext become the one shrouded key bag of a synthetic, MAC-less PKCS#12 beside a dummy
//! certificate, and the "key" p12-keystore hands back is the container's plaintext. The
//! decryption is exactly p12-keystore's, PBES1 (RC2-40, 3DES) and PBES2 alike, and runs only
//! the derivation already checked. The plaintext is walked like a plain container
//! ([`preflight::Seen::walk_nested`]) before the real parse runs. The price: each container's
//! derivation runs twice.
//!
//! **What remains**: nothing p12-keystore derives a key for goes unchecked. Decrypted key bags
//! are PKCS#8 keys and decrypted secret bags `PrivateKeyInfo`s, which p12-keystore does not
//! decrypt further. Bags nested in `safeContentsBag`s are ignored by p12-keystore, and scanned
//! here anyway.
//!
//! The walk also collects every certificate bag, plain or decrypted, to count them and to
//! refuse issuer loops: p12-keystore builds each key's chain by following issuer names until a
//! self-issued certificate, so two certificates that name each other as issuer make it loop
//! for ever, pushing to a vector until the process runs out of memory.

pub(super) mod der;
mod preflight;

use std::fmt;

use pkcs8::der::asn1::ObjectIdentifier;
use zeroize::Zeroizing;

use self::der::{
    cert_bag, oid, pfx, shrouded_key_bag, tlv, BIT_STRING, CONTEXT_0, INTEGER, SEQUENCE, SET,
    UTC_TIME, UTF8_STRING,
};
use self::preflight::Container;
use super::cert::{parse_cert, CertInfo};
use super::formats::{FormatError, ParsedFile};
use super::key::{Passphrase, PrivateKey};

const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Reads a PKCS#12 file into `out` with p12-keystore, after [`preflight`] has checked every
/// key derivation the reader would run (see the module doc for how, and for why that takes
/// decrypting each container first).
pub(super) fn parse(
    out: &mut ParsedFile,
    der: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<(), FormatError> {
    const WHAT: &str = "the PKCS#12 file";
    let file = out.name.clone();
    let refused = |r: preflight::Refusal| r.into_format_error(&file);
    let plan = preflight::read(der).map_err(refused)?;
    // Try the given passphrase, then the empty one (a common export default).
    let mut candidates: Vec<&str> = Vec::new();
    if let Some(p) = passphrase {
        candidates.push(p.expose());
    }
    if passphrase.is_none_or(|p| !p.is_empty()) {
        candidates.push("");
    }
    let mut wrong = false;
    'candidates: for candidate in candidates {
        // Look inside every encrypted container before p12-keystore derives a key for what is
        // in there. A container that does not decrypt, or decrypts to garbage, means a wrong
        // passphrase, as it would in p12-keystore.
        let mut seen = plan.seen.clone();
        for container in &plan.containers {
            let plain = match open_container(container, candidate) {
                Ok(plain) => plain,
                Err(OpenFailure::Reader(e)) if is_password_error(&e) => {
                    wrong = true;
                    continue 'candidates;
                }
                Err(failure) => {
                    return Err(FormatError::Pkcs12 {
                        file,
                        detail: failure.to_string(),
                    })
                }
            };
            match seen.walk_nested(&plain) {
                Err(preflight::Refusal::Malformed(_)) => {
                    wrong = true;
                    continue 'candidates;
                }
                other => other.map_err(refused)?,
            }
        }
        seen.check_issuers().map_err(refused)?;

        // The PKCS#12 parser is third-party code fed untrusted input: a panic in it must not
        // take the process down, so it is contained and reported as a corrupt file.
        let attempt =
            std::panic::catch_unwind(|| p12_keystore::KeyStore::from_pkcs12(der, candidate));
        let store = match attempt {
            Err(_) => {
                return Err(FormatError::Pkcs12 {
                    file,
                    detail: "the file is malformed".into(),
                })
            }
            Ok(Err(e)) if is_password_error(&e) => {
                wrong = true;
                continue;
            }
            Ok(Err(e)) => {
                return Err(FormatError::Pkcs12 {
                    file,
                    detail: e.to_string(),
                })
            }
            Ok(Ok(store)) => store,
        };
        for (_, entry) in store.entries() {
            match entry {
                p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                    let key = PrivateKey::from_pkcs8_der(chain.key()).map_err(|source| {
                        FormatError::Key {
                            file: file.clone(),
                            source,
                        }
                    })?;
                    out.keys.push(key);
                    for cert in chain.chain() {
                        out.certs.push(parse_p12_cert(&file, cert.as_der())?);
                    }
                }
                p12_keystore::KeyStoreEntry::Certificate(cert) => {
                    out.certs.push(parse_p12_cert(&file, cert.as_der())?)
                }
                p12_keystore::KeyStoreEntry::Secret(_) => {
                    out.ignored.push("a PKCS#12 secret bag".into())
                }
            }
        }
        return Ok(());
    }
    debug_assert!(wrong);
    if passphrase.is_none() {
        Err(FormatError::PassphraseRequired { file, what: WHAT })
    } else {
        Err(FormatError::WrongPassphrase { file, what: WHAT })
    }
}

fn parse_p12_cert(file: &str, der: &[u8]) -> Result<CertInfo, FormatError> {
    parse_cert(der).map_err(|detail| FormatError::Pkcs12 {
        file: file.into(),
        detail: format!("it holds an unreadable certificate: {detail}"),
    })
}

fn is_password_error(e: &p12_keystore::error::Error) -> bool {
    use p12_keystore::error::Error as E;
    // A wrong passphrase fails the MAC; without a MAC it shows up as bad padding or as
    // garbage where the decrypted DER should be.
    matches!(e, E::MacError(_) | E::UnpadError | E::Pkcs5Error(_))
}

/// Why a container could not be opened.
#[derive(Debug)]
enum OpenFailure {
    /// p12-keystore's own error (a wrong passphrase among them).
    Reader(p12_keystore::error::Error),
    /// p12-keystore panicked on the container.
    Panicked,
}

impl fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenFailure::Reader(e) => write!(f, "{e}"),
            OpenFailure::Panicked => f.write_str("the file is malformed"),
        }
    }
}

/// Decrypts one container with p12-keystore's own decryption (see the module doc) and
/// returns its plaintext, a `SafeContents` if the passphrase was right. Runs exactly the
/// container's derivation, which [`preflight::read`] has checked.
fn open_container(
    container: &Container<'_>,
    passphrase: &str,
) -> Result<Zeroizing<Vec<u8>>, OpenFailure> {
    let pfx = synthetic_pfx(container.algorithm, container.ciphertext);
    let attempt =
        std::panic::catch_unwind(|| p12_keystore::KeyStore::from_pkcs12(&pfx, passphrase));
    let store = match attempt {
        Err(_) => return Err(OpenFailure::Panicked),
        Ok(Err(e)) => return Err(OpenFailure::Reader(e)),
        Ok(Ok(store)) => store,
    };
    store
        .entries()
        .find_map(|(_, entry)| match entry {
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                Some(Zeroizing::new(chain.key().to_vec()))
            }
            _ => None,
        })
        .ok_or(OpenFailure::Panicked)
}

/// The probe: a PFX without a MAC holding the container's algorithm and ciphertext as a
/// shrouded key bag, and a dummy certificate with the same local key id, so p12-keystore
/// returns the decrypted bytes as that key's (it does not parse them).
fn synthetic_pfx(algorithm: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    pfx(&[
        &shrouded_key_bag(algorithm, ciphertext),
        &cert_bag(&probe_certificate(), true),
    ])
}

/// A self-issued Ed25519 certificate named `CN=certraft pkcs12 probe` with a zero key and
/// signature: structurally valid, so p12-keystore parses it, and it signs nothing.
fn probe_certificate() -> Vec<u8> {
    let algorithm = tlv(SEQUENCE, &[&oid(ED25519)]);
    let name = tlv(
        SEQUENCE,
        &[&tlv(
            SET,
            &[&tlv(
                SEQUENCE,
                &[
                    &oid(COMMON_NAME),
                    &tlv(UTF8_STRING, &[b"certraft pkcs12 probe"]),
                ],
            )],
        )],
    );
    let validity = tlv(
        SEQUENCE,
        &[
            &tlv(UTC_TIME, &[b"250101000000Z"]),
            &tlv(UTC_TIME, &[b"250102000000Z"]),
        ],
    );
    let spki = tlv(SEQUENCE, &[&algorithm, &tlv(BIT_STRING, &[&[0; 33]])]);
    let tbs = tlv(
        SEQUENCE,
        &[
            &tlv(CONTEXT_0, &[&tlv(INTEGER, &[&[2]])]),
            &tlv(INTEGER, &[&[1]]),
            &algorithm,
            &name,
            &validity,
            &name,
            &spki,
        ],
    );
    tlv(SEQUENCE, &[&tbs, &algorithm, &tlv(BIT_STRING, &[&[0; 65]])])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::crafted::{
        pbes2_alg, pbkdf2_params, pfx, pfx_with_container, pfx_with_mac, pkcs12_pbe_alg,
        scrypt_params, shrouded_key_bag, PASS, PBE_SHA1_3DES, PBE_SHA1_RC2_40,
    };
    use crate::bundle::limits::MAX_KDF_ITERATIONS;

    /// Only the walk runs here (it derives nothing), so the caps cost nothing to test.
    #[test]
    fn pkcs12_preflight_boundaries() {
        let max = MAX_KDF_ITERATIONS;
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("MAC at the cap", pfx_with_mac(max), true),
            ("MAC over the cap", pfx_with_mac(max + 1), false),
            ("MAC of OpenSSL's default", pfx_with_mac(2048), true),
            (
                "3DES bag at the cap",
                pfx(&[&shrouded_key_bag(
                    &pkcs12_pbe_alg(PBE_SHA1_3DES, max),
                    &[0; 8],
                )]),
                true,
            ),
            (
                "3DES bag over the cap",
                pfx(&[&shrouded_key_bag(
                    &pkcs12_pbe_alg(PBE_SHA1_3DES, max + 1),
                    &[0; 8],
                )]),
                false,
            ),
            (
                "PBES2 bag at the cap",
                pfx(&[&shrouded_key_bag(
                    &pbes2_alg(pbkdf2_params(max as u32)),
                    &[0; 8],
                )]),
                true,
            ),
            (
                "PBES2 bag over the cap",
                pfx(&[&shrouded_key_bag(
                    &pbes2_alg(pbkdf2_params(max as u32 + 1)),
                    &[0; 8],
                )]),
                false,
            ),
            (
                "scrypt bag at 256 MiB",
                pfx(&[&shrouded_key_bag(
                    &pbes2_alg(scrypt_params(1 << 18, 8, 16)),
                    &[0; 8],
                )]),
                true,
            ),
            (
                "scrypt bag at 512 MiB",
                pfx(&[&shrouded_key_bag(
                    &pbes2_alg(scrypt_params(1 << 19, 8, 1)),
                    &[0; 8],
                )]),
                false,
            ),
            (
                "RC2 container at the cap",
                pfx_with_container(&pkcs12_pbe_alg(PBE_SHA1_RC2_40, max), &[0; 8]),
                true,
            ),
            (
                "RC2 container over the cap",
                pfx_with_container(&pkcs12_pbe_alg(PBE_SHA1_RC2_40, max + 1), &[0; 8]),
                false,
            ),
        ];
        for (name, der, accepted) in cases {
            let got = preflight::read(&der);
            assert_eq!(got.is_ok(), accepted, "{name}: {got:?}");
        }
    }

    /// A real OpenSSL 3 PKCS#12 is read as it is: the MAC, one encrypted container (the
    /// certificates) and one plain shrouded key bag; opening the container with the
    /// passphrase shows the three certificates, and the empty passphrase does not open it.
    #[test]
    fn preflight_reads_an_openssl_pkcs12() {
        let der = include_bytes!("../../../../tests/fixtures/ec256.p12");
        let plan = preflight::read(der).unwrap();
        assert_eq!(plan.containers.len(), 1);
        let mut seen = plan.seen.clone();
        let plain = open_container(&plan.containers[0], PASS).unwrap();
        seen.walk_nested(&plain).unwrap();
        seen.check_issuers().unwrap();
        let debug = format!("{seen:?}");
        assert!(
            debug.contains("runs: 3"),
            "MAC, container, key bag: {debug}"
        );
        assert!(open_container(&plan.containers[0], "").is_err());
    }
}
