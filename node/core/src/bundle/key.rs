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

use super::cipher::CipherError;
use super::limits::{check_kdf, Kdf, KdfLimit};
use super::pbe::{Scheme, SchemeError};
use super::pkcs12::der::{Tlv, OCTET_STRING, SEQUENCE};

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
    ///
    /// An EC key is rebuilt in canonical form first (see `canonical_ec_pkcs8`): keys
    /// without their public key (Java keytool, `openssl ec -no_public`), without curve
    /// parameters inside, or with GnuTLS's 33-byte scalar all load, and a key whose embedded
    /// public key does not belong to its scalar is refused.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfo::from_der(der).map_err(|e| KeyError::Invalid {
            encoding: "PKCS#8",
            detail: e.to_string(),
        })?;
        let algorithm = describe_algorithm(&info.algorithm);
        match info.algorithm.oid {
            oid @ (OID_RSA | OID_ED25519) => {
                Self::load_canonical(Zeroizing::new(der.to_vec()), oid, algorithm, "PKCS#8")
            }
            OID_EC_PUBLIC_KEY => {
                let curve = match info.algorithm.parameters {
                    None => None,
                    Some(any) if any.is_null() => None,
                    Some(any) => Some(any.decode_as::<ObjectIdentifier>().map_err(|_| {
                        KeyError::Unsupported {
                            algorithm: algorithm.clone(),
                        }
                    })?),
                };
                let (canonical, curve) = canonical_ec_pkcs8(curve, info.private_key, "PKCS#8")?;
                let algorithm = curve.algorithm().to_string();
                Self::load_canonical(canonical, OID_EC_PUBLIC_KEY, algorithm, "PKCS#8")
            }
            _ => Err(KeyError::Unsupported { algorithm }),
        }
    }

    /// Loads a canonical PKCS#8 key into ring and derives its kind and public key.
    fn load_canonical(
        pkcs8: Zeroizing<Vec<u8>>,
        oid: ObjectIdentifier,
        algorithm: String,
        encoding: &'static str,
    ) -> Result<Self, KeyError> {
        let signing = load_signing_key(&pkcs8).map_err(|detail| {
            if oid == OID_RSA {
                KeyError::Unsupported {
                    algorithm: format!("{algorithm} (RSA keys must be 2048–8192 bits: {detail})"),
                }
            } else {
                KeyError::Invalid { encoding, detail }
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

    /// Loads a legacy `EC PRIVATE KEY` (SEC1) DER key: its curve comes from its own
    /// parameters, and it is rebuilt in canonical form like an EC PKCS#8 key.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        const SEC1: &str = "SEC1 EC";
        let (canonical, curve) = canonical_ec_pkcs8(None, der, SEC1)?;
        Self::load_canonical(canonical, OID_EC_PUBLIC_KEY, curve.algorithm().into(), SEC1)
    }

    /// Decrypts an `ENCRYPTED PRIVATE KEY` (PKCS#8 under PBES2 with PBKDF2 or scrypt, or
    /// under a PKCS#12 PBE cipher).
    ///
    /// The key derivation's parameters come from the file, so they are checked against
    /// [`limits`](super::limits) first: a derivation over the caps is refused
    /// ([`EncryptedKeyError::KdfLimit`]) before it runs or allocates anything.
    pub fn from_encrypted_pkcs8_der(
        der: &[u8],
        passphrase: &Passphrase,
    ) -> Result<Self, EncryptedKeyError> {
        let key = EncryptedKey::parse(der).map_err(EncryptedKeyError::Key)?;
        check_kdf(key.kdf()).map_err(EncryptedKeyError::KdfLimit)?;
        key.decrypt(passphrase)
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

/// An `ENCRYPTED PRIVATE KEY` (PKCS#8 `EncryptedPrivateKeyInfo`), read but not decrypted:
/// [`EncryptedKey::kdf`] says what derivation decrypting it would run, for the caps.
pub struct EncryptedKey<'a> {
    scheme: Scheme,
    data: &'a [u8],
}

impl<'a> EncryptedKey<'a> {
    /// Reads the structure and its encryption scheme; derives nothing.
    pub fn parse(der: &'a [u8]) -> Result<EncryptedKey<'a>, KeyError> {
        const ENCODING: &str = "encrypted PKCS#8";
        let invalid = |detail: String| KeyError::Invalid {
            encoding: ENCODING,
            detail,
        };
        let epki = Tlv::only(der, SEQUENCE, "EncryptedPrivateKeyInfo")
            .map_err(|_| invalid("not a single DER SEQUENCE".into()))?;
        let fields = epki
            .children("EncryptedPrivateKeyInfo")
            .map_err(|_| invalid("malformed EncryptedPrivateKeyInfo".into()))?;
        let [alg, data] = fields.as_slice() else {
            return Err(invalid(
                "an EncryptedPrivateKeyInfo holds an algorithm and the encrypted data".into(),
            ));
        };
        if data.tag != OCTET_STRING {
            return Err(invalid("the encrypted data is not an OCTET STRING".into()));
        }
        let scheme = Scheme::parse(alg).map_err(|e| match e {
            SchemeError::Malformed(what) => invalid(format!("malformed {what}")),
            SchemeError::Unsupported(what) => invalid(format!(
                "it is encrypted with {what}, which certraft does not read; decrypt it with `openssl pkcs8 -in KEY -out key.pem` (keep key.pem private) and import that"
            )),
        })?;
        Ok(EncryptedKey {
            scheme,
            data: data.body,
        })
    }

    /// The derivation decrypting it runs.
    pub fn kdf(&self) -> Kdf {
        self.scheme.kdf()
    }

    /// Derives the key from `passphrase` and decrypts. Bad padding, or plaintext that is not
    /// a key, is a wrong passphrase.
    pub fn decrypt(&self, passphrase: &Passphrase) -> Result<PrivateKey, EncryptedKeyError> {
        let plain = self
            .scheme
            .decrypt(passphrase.expose(), self.data)
            .map_err(|e| match e {
                CipherError::BadDecrypt => EncryptedKeyError::WrongPassphrase,
                other => EncryptedKeyError::Key(KeyError::Invalid {
                    encoding: "encrypted PKCS#8",
                    detail: other.to_string(),
                }),
            })?;
        PrivateKey::from_pkcs8_der(&plain).map_err(|e| match e {
            KeyError::Invalid { .. } => EncryptedKeyError::WrongPassphrase,
            other => EncryptedKeyError::Key(other),
        })
    }
}

fn relabel(e: KeyError, encoding: &'static str) -> KeyError {
    match e {
        KeyError::Invalid { detail, .. } => KeyError::Invalid { encoding, detail },
        other => other,
    }
}

/// The curves whose keys certraft rebuilds and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn of(oid: ObjectIdentifier) -> Option<Curve> {
        match oid {
            OID_P256 => Some(Curve::P256),
            OID_P384 => Some(Curve::P384),
            _ => None,
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    fn algorithm(self) -> &'static str {
        match self {
            Curve::P256 => "ECDSA P-256",
            Curve::P384 => "ECDSA P-384",
        }
    }

    /// Bytes of a scalar (and of each point coordinate).
    fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    /// The uncompressed public point of a `scalar_len`-byte scalar; `None` when the scalar
    /// is zero or not below the group order.
    fn public_point(self, scalar: &[u8]) -> Option<Vec<u8>> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        match self {
            Curve::P256 => p256::SecretKey::from_slice(scalar)
                .ok()
                .map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec()),
            Curve::P384 => p384::SecretKey::from_slice(scalar)
                .ok()
                .map(|k| k.public_key().to_encoded_point(false).as_bytes().to_vec()),
        }
    }

    /// A SEC1-encoded point (compressed or not) of this curve, uncompressed; `None` when
    /// the bytes are not a point of the curve.
    fn uncompressed(self, point: &[u8]) -> Option<Vec<u8>> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        match self {
            Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
                .ok()
                .map(|p| p.to_encoded_point(false).as_bytes().to_vec()),
            Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
                .ok()
                .map(|p| p.to_encoded_point(false).as_bytes().to_vec()),
        }
    }
}

/// Rebuilds an EC private key as the canonical PKCS#8 ring loads: the named curve in the
/// AlgorithmIdentifier, and inside it a SEC1 `ECPrivateKey` v1 with the scalar at its
/// curve's width, the curve parameters and the uncompressed public key.
///
/// `pkcs8_curve` is the curve the PKCS#8 AlgorithmIdentifier names (`None` for a bare SEC1
/// key or absent parameters); `sec1_der` is the `ECPrivateKey`. RFC 5915 lets the key leave
/// out its parameters and public key; GnuTLS writes the scalar as a 33-byte INTEGER-like
/// string with a leading zero. The public key is always derived from the scalar, and an
/// embedded one that differs is refused: such a key is corrupt.
fn canonical_ec_pkcs8(
    pkcs8_curve: Option<ObjectIdentifier>,
    sec1_der: &[u8],
    encoding: &'static str,
) -> Result<(Zeroizing<Vec<u8>>, Curve), KeyError> {
    let invalid = |detail: String| KeyError::Invalid { encoding, detail };
    let ec = sec1::EcPrivateKey::from_der(sec1_der)
        .map_err(|e| invalid(format!("its ECPrivateKey structure does not parse: {e}")))?;
    let sec1_curve = ec.parameters.and_then(|p| p.named_curve());
    let oid = match (pkcs8_curve, sec1_curve) {
        (Some(outer), Some(inner)) if outer != inner => {
            return Err(invalid(format!(
                "the PKCS#8 header names curve {} but the EC key inside names {}",
                curve_name(&outer),
                curve_name(&inner)
            )))
        }
        (Some(oid), _) | (None, Some(oid)) => oid,
        (None, None) => return Err(invalid("the key does not name its curve".into())),
    };
    let curve = Curve::of(oid).ok_or_else(|| KeyError::Unsupported {
        algorithm: format!("ECDSA on curve {}", curve_name(&oid)),
    })?;
    let width = curve.scalar_len();
    let significant = ec
        .private_key
        .iter()
        .position(|b| *b != 0)
        .and_then(|start| ec.private_key.get(start..))
        .ok_or_else(|| invalid("its private scalar is zero".into()))?;
    if significant.len() > width {
        return Err(invalid(format!(
            "its private scalar is {} bytes long; a {} scalar has at most {width}",
            significant.len(),
            curve.name()
        )));
    }
    let mut scalar = Zeroizing::new(vec![0u8; width - significant.len()]);
    scalar.extend_from_slice(significant);
    let derived = curve.public_point(&scalar).ok_or_else(|| {
        invalid(format!(
            "its private scalar is out of range (not below the {} group order)",
            curve.name()
        ))
    })?;
    if let Some(embedded) = ec.public_key {
        let embedded = curve.uncompressed(embedded).ok_or_else(|| {
            invalid(format!(
                "its embedded public key is not a point on {}; the key is corrupt, export it again from its source",
                curve.name()
            ))
        })?;
        if embedded != derived {
            return Err(invalid(
                "the key's public key does not match its private scalar; the key is corrupt, export it again from its source"
                    .into(),
            ));
        }
    }
    let encode = |e: pkcs8::der::Error| invalid(format!("the rebuilt key does not encode: {e}"));
    let sec1 = sec1::EcPrivateKey {
        private_key: &scalar,
        parameters: Some(sec1::EcParameters::NamedCurve(curve.oid())),
        public_key: Some(&derived),
    };
    let sec1_der = Zeroizing::new(sec1.to_der().map_err(encode)?);
    let curve_oid = curve.oid();
    let info = PrivateKeyInfo::new(
        AlgorithmIdentifierRef {
            oid: OID_EC_PUBLIC_KEY,
            parameters: Some(AnyRef::from(&curve_oid)),
        },
        &sec1_der,
    );
    Ok((Zeroizing::new(info.to_der().map_err(encode)?), curve))
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
        "1.2.840.10045.3.1.7" => "P-256".into(),
        "1.3.132.0.34" => "P-384".into(),
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

#[cfg(test)]
mod tests;
