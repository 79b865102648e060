//! Private keys: every accepted encoding normalised to PKCS#8 DER, and the passphrase type.
//!
//! A [`PrivateKey`] never prints its bytes: `Debug` shows only the kind and where it came from,
//! and the DER is zeroized on drop.

use std::fmt;
use std::sync::Arc;

use pkcs8::der::asn1::{AnyRef, ObjectIdentifier};
use pkcs8::der::{Decode, Encode};
use pkcs8::{AlgorithmIdentifierRef, PrivateKeyInfo};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::SigningKey;
use serde::Serialize;
use zeroize::Zeroizing;

use super::limits::{check_kdf, Kdf, KdfLimit};

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A passphrase for PKCS#12 files and encrypted keys. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    pub fn new(s: impl Into<String>) -> Self {
        Passphrase(Zeroizing::new(s.into()))
    }

    /// Reads a passphrase file: the first line, without its line ending.
    pub fn from_file_contents(bytes: &[u8]) -> Result<Self, std::str::Utf8Error> {
        let text = std::str::from_utf8(bytes)?;
        let line = text.split('\n').next().unwrap_or("");
        Ok(Passphrase::new(line.strip_suffix('\r').unwrap_or(line)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// The algorithm and size of a key, as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "algorithm", rename_all = "kebab-case")]
pub enum KeyKind {
    Rsa { bits: u32 },
    EcP256,
    EcP384,
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::EcP256 => f.write_str("P-256"),
            KeyKind::EcP384 => f.write_str("P-384"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Why a key could not be used. The file name is added by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a valid {encoding} private key ({detail})")]
    Invalid {
        encoding: &'static str,
        detail: String,
    },
    #[error("unsupported key algorithm {algorithm}; certraft serves RSA 2048–8192, ECDSA P-256/P-384 and Ed25519 keys")]
    Unsupported { algorithm: String },
}

/// A private key in canonical PKCS#8 DER with its derived public key.
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    kind: KeyKind,
    spki: Vec<u8>,
    signing: Arc<dyn SigningKey>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind)
            .field("pkcs8", &"<redacted>")
            .finish()
    }
}

impl PrivateKey {
    /// Loads a PKCS#8 (`PRIVATE KEY`) DER key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfo::from_der(der).map_err(|e| KeyError::Invalid {
            encoding: "PKCS#8",
            detail: e.to_string(),
        })?;
        let algorithm = describe_algorithm(&info.algorithm);
        let supported = match info.algorithm.oid {
            OID_RSA | OID_ED25519 => true,
            OID_EC_PUBLIC_KEY => {
                matches!(info.algorithm.parameters_oid(), Ok(OID_P256) | Ok(OID_P384))
            }
            _ => false,
        };
        if !supported {
            return Err(KeyError::Unsupported { algorithm });
        }
        let pkcs8 = Zeroizing::new(der.to_vec());
        let signing = load_signing_key(&pkcs8).map_err(|detail| {
            if info.algorithm.oid == OID_RSA {
                KeyError::Unsupported {
                    algorithm: format!("{algorithm} (RSA keys must be 2048–8192 bits: {detail})"),
                }
            } else {
                KeyError::Invalid {
                    encoding: "PKCS#8",
                    detail,
                }
            }
        })?;
        let spki = signing
            .public_key()
            .map(|s| s.as_ref().to_vec())
            .ok_or_else(|| KeyError::Unsupported {
                algorithm: algorithm.clone(),
            })?;
        let kind = kind_from_spki(&spki).ok_or(KeyError::Unsupported { algorithm })?;
        Ok(PrivateKey {
            pkcs8,
            kind,
            spki,
            signing,
        })
    }

    /// Loads a legacy `RSA PRIVATE KEY` (PKCS#1) DER key.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let invalid = |e: pkcs8::der::Error| KeyError::Invalid {
            encoding: "PKCS#1 RSA",
            detail: e.to_string(),
        };
        // Check that it is at least a DER sequence before wrapping it.
        pkcs8::der::asn1::AnyRef::from_der(der).map_err(invalid)?;
        let null = AnyRef::from(pkcs8::der::asn1::Null);
        let info = PrivateKeyInfo::new(
            AlgorithmIdentifierRef {
                oid: OID_RSA,
                parameters: Some(null),
            },
            der,
        );
        let wrapped = Zeroizing::new(info.to_der().map_err(invalid)?);
        Self::from_pkcs8_der(&wrapped).map_err(|e| relabel(e, "PKCS#1 RSA"))
    }

    /// Loads a legacy `EC PRIVATE KEY` (SEC1) DER key.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        let invalid = |detail: String| KeyError::Invalid {
            encoding: "SEC1 EC",
            detail,
        };
        let ec = sec1::EcPrivateKey::from_der(der).map_err(|e| invalid(e.to_string()))?;
        let curve = ec
            .parameters
            .and_then(|p| p.named_curve())
            .ok_or_else(|| invalid("the key does not name its curve".into()))?;
        let info = PrivateKeyInfo::new(
            AlgorithmIdentifierRef {
                oid: OID_EC_PUBLIC_KEY,
                parameters: Some(AnyRef::from(&curve)),
            },
            der,
        );
        let wrapped = Zeroizing::new(info.to_der().map_err(|e| invalid(e.to_string()))?);
        Self::from_pkcs8_der(&wrapped).map_err(|e| relabel(e, "SEC1 EC"))
    }

    /// Decrypts an `ENCRYPTED PRIVATE KEY` (PKCS#8 PBES2 with PBKDF2 or scrypt).
    ///
    /// The key derivation's parameters come from the file, so they are checked against
    /// [`limits`](super::limits) first: a derivation over the caps is refused
    /// ([`EncryptedKeyError::KdfLimit`]) before it runs or allocates anything.
    pub fn from_encrypted_pkcs8_der(
        der: &[u8],
        passphrase: &Passphrase,
    ) -> Result<Self, EncryptedKeyError> {
        let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der).map_err(|e| {
            EncryptedKeyError::Key(KeyError::Invalid {
                encoding: "encrypted PKCS#8",
                detail: e.to_string(),
            })
        })?;
        if let Some(kdf) = encrypted_pkcs8_kdf(&info) {
            check_kdf(kdf).map_err(EncryptedKeyError::KdfLimit)?;
        }
        let doc = info
            .decrypt(passphrase.expose().as_bytes())
            .map_err(|e| match e {
                // pkcs5 0.7 reports bad padding on decryption as `EncryptFailed`.
                pkcs8::Error::EncryptedPrivateKey(
                    pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed,
                ) => EncryptedKeyError::WrongPassphrase,
                // A wrong passphrase usually shows up as bad padding, or as garbage that is
                // not DER; both are reported as a wrong passphrase.
                pkcs8::Error::Asn1(_) => EncryptedKeyError::WrongPassphrase,
                other => EncryptedKeyError::Key(KeyError::Invalid {
                    encoding: "encrypted PKCS#8",
                    detail: other.to_string(),
                }),
            })?;
        Self::from_pkcs8_der(doc.as_bytes()).map_err(|e| match e {
            KeyError::Invalid { .. } => EncryptedKeyError::WrongPassphrase,
            other => EncryptedKeyError::Key(other),
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// DER SubjectPublicKeyInfo of the matching public key.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The canonical PKCS#8 DER. Secret: seal or encrypt it before it leaves memory.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The rustls signing key, ready to serve.
    pub fn signing_key(&self) -> Arc<dyn SigningKey> {
        self.signing.clone()
    }
}

/// Decrypting an encrypted key can fail for the passphrase, for the key itself, or because
/// its key derivation asks for more than certraft allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptedKeyError {
    WrongPassphrase,
    Key(KeyError),
    KdfLimit(KdfLimit),
}

/// The key derivation an encrypted PKCS#8 key asks for, read without running it. `None` for
/// PBES1, which certraft (pkcs5 0.7) cannot decrypt, so no derivation ever runs for it.
pub fn encrypted_pkcs8_kdf(info: &pkcs8::EncryptedPrivateKeyInfo<'_>) -> Option<Kdf> {
    info.encryption_algorithm
        .pbes2()
        .map(|params| Kdf::of_pbes2(&params.kdf))
}

fn relabel(e: KeyError, encoding: &'static str) -> KeyError {
    match e {
        KeyError::Invalid { detail, .. } => KeyError::Invalid { encoding, detail },
        other => other,
    }
}

/// Loads a PKCS#8 key into a rustls signing key (ring provider).
pub(crate) fn load_signing_key(pkcs8: &[u8]) -> Result<Arc<dyn SigningKey>, String> {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())
}

fn describe_algorithm(alg: &AlgorithmIdentifierRef<'_>) -> String {
    match alg.oid {
        OID_RSA => "RSA".into(),
        OID_ED25519 => "Ed25519".into(),
        OID_EC_PUBLIC_KEY => match alg.parameters_oid() {
            Ok(OID_P256) => "ECDSA P-256".into(),
            Ok(OID_P384) => "ECDSA P-384".into(),
            Ok(oid) => format!("ECDSA on curve {}", curve_name(&oid)),
            Err(_) => "ECDSA with explicit curve parameters".into(),
        },
        oid => format!("OID {oid}"),
    }
}

fn curve_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        other => other.into(),
    }
}

/// Key kind and size from a DER SubjectPublicKeyInfo.
pub(crate) fn kind_from_spki(spki: &[u8]) -> Option<KeyKind> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
    match info.parsed().ok()? {
        PublicKey::RSA(rsa) => Some(KeyKind::Rsa {
            bits: rsa.key_size() as u32,
        }),
        PublicKey::EC(point) => match point.key_size() {
            256 => Some(KeyKind::EcP256),
            384 => Some(KeyKind::EcP384),
            _ => None,
        },
        _ if info.algorithm.algorithm.to_id_string() == "1.3.101.112" => Some(KeyKind::Ed25519),
        _ => None,
    }
}
