//! Reading one input file: detect its format from its content (never its name) and pull out
//! every certificate and private key in it.

use std::fmt;

use pkcs8::der::Decode;
use serde::Serialize;

use super::cert::{parse_cert, CertInfo};
use super::key::{EncryptedKeyError, KeyError, Passphrase, PrivateKey};

/// The container format a file was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    Pem,
    DerCertificate,
    DerPkcs8,
    DerEncryptedPkcs8,
    DerPkcs1,
    DerSec1,
    Pkcs12,
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Pem => "PEM",
            FileFormat::DerCertificate => "DER certificate",
            FileFormat::DerPkcs8 => "PKCS#8 DER key",
            FileFormat::DerEncryptedPkcs8 => "encrypted PKCS#8 DER key",
            FileFormat::DerPkcs1 => "PKCS#1 DER RSA key",
            FileFormat::DerSec1 => "SEC1 DER EC key",
            FileFormat::Pkcs12 => "PKCS#12",
        })
    }
}

/// What one file held.
#[derive(Debug)]
pub struct ParsedFile {
    pub name: String,
    pub format: FileFormat,
    pub certs: Vec<CertInfo>,
    pub keys: Vec<PrivateKey>,
    /// PEM blocks that were skipped because they are not part of a bundle.
    pub ignored: Vec<String>,
}

/// Why a file could not be read. Every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{file}: the file is empty; give a certificate, private key or PKCS#12 file")]
    Empty { file: String },
    #[error("{file}: not a certificate, private key or PKCS#12 file ({detail}); certraft reads PEM, DER, PKCS#8 and PKCS#12/PFX")]
    Unrecognized { file: String, detail: String },
    #[error("{file}: malformed PEM: {detail}; check that the file was copied whole, BEGIN and END lines included")]
    MalformedPem { file: String, detail: String },
    #[error("{file}: PEM block {index} ({label}) is not a valid {label}: {detail}")]
    BadPemBlock {
        file: String,
        index: usize,
        label: String,
        detail: String,
    },
    #[error("{file}: truncated or corrupt {what}: {detail}; copy the file again from its source")]
    Corrupt {
        file: String,
        what: &'static str,
        detail: String,
    },
    #[error("{file}: {what} is encrypted and no passphrase was given; pass --passphrase-file FILE or set CERTRAFT_PASSPHRASE")]
    PassphraseRequired { file: String, what: &'static str },
    #[error("{file}: wrong passphrase for {what}; check the passphrase you gave (--passphrase-file uses only the first line of the file; CERTRAFT_PASSPHRASE is used as is)")]
    WrongPassphrase { file: String, what: &'static str },
    #[error("{file}: the key uses legacy OpenSSL PEM encryption ({label} with Proc-Type); convert it with `openssl pkcs8 -topk8 -in {file} -out key.p8` and import that")]
    LegacyPemEncryption { file: String, label: String },
    #[error("{file}: {source}")]
    Key { file: String, source: KeyError },
    #[error("{file}: PKCS#12 could not be read: {detail}")]
    Pkcs12 { file: String, detail: String },
}

impl FormatError {
    /// A stable machine-readable code, as used in JSON output and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            FormatError::Empty { .. } => "empty_file",
            FormatError::Unrecognized { .. } => "unrecognized_format",
            FormatError::MalformedPem { .. } | FormatError::BadPemBlock { .. } => "malformed_pem",
            FormatError::Corrupt { .. } => "corrupt_file",
            FormatError::PassphraseRequired { .. } => "passphrase_required",
            FormatError::WrongPassphrase { .. } => "wrong_passphrase",
            FormatError::LegacyPemEncryption { .. } => "legacy_pem_encryption",
            FormatError::Key {
                source: KeyError::Unsupported { .. },
                ..
            } => "unsupported_key",
            FormatError::Key { .. } => "invalid_key",
            FormatError::Pkcs12 { .. } => "invalid_pkcs12",
        }
    }
}

/// Reads one file's bytes. `name` is used in messages only; the format comes from the content.
/// An encrypted part without a `passphrase` gives [`FormatError::PassphraseRequired`] (a
/// PKCS#12 with an empty passphrase opens without one).
pub fn parse_file(
    name: &str,
    bytes: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<ParsedFile, FormatError> {
    let mut parsed = ParsedFile {
        name: name.to_string(),
        format: FileFormat::Pem,
        certs: Vec::new(),
        keys: Vec::new(),
        ignored: Vec::new(),
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FormatError::Empty { file: name.into() });
    }
    if contains(bytes, b"-----BEGIN ") {
        parse_pem(&mut parsed, bytes, passphrase)?;
    } else {
        parse_der(&mut parsed, bytes, passphrase)?;
    }
    Ok(parsed)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

fn parse_pem(
    out: &mut ParsedFile,
    bytes: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<(), FormatError> {
    let file = out.name.clone();
    let blocks = pem::parse_many(bytes).map_err(|e| FormatError::MalformedPem {
        file: file.clone(),
        detail: e.to_string(),
    })?;
    let begins = count(bytes, b"-----BEGIN ");
    if blocks.len() != begins {
        return Err(FormatError::MalformedPem {
            file,
            detail: format!(
                "{begins} BEGIN line(s) but only {} complete block(s); a block is cut short or has no matching END line",
                blocks.len()
            ),
        });
    }
    for (i, block) in blocks.iter().enumerate() {
        let index = i + 1;
        let label = block.tag().to_string();
        let bad = |detail: String| FormatError::BadPemBlock {
            file: file.clone(),
            index,
            label: label.clone(),
            detail,
        };
        let encrypted_legacy = block
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"));
        let key_err = |source: KeyError| FormatError::Key {
            file: file.clone(),
            source,
        };
        match label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => {
                out.certs.push(parse_cert(block.contents()).map_err(bad)?)
            }
            "PRIVATE KEY" => out
                .keys
                .push(PrivateKey::from_pkcs8_der(block.contents()).map_err(key_err)?),
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" if encrypted_legacy => {
                return Err(FormatError::LegacyPemEncryption { file, label });
            }
            "RSA PRIVATE KEY" => out
                .keys
                .push(PrivateKey::from_pkcs1_der(block.contents()).map_err(key_err)?),
            "EC PRIVATE KEY" => out
                .keys
                .push(PrivateKey::from_sec1_der(block.contents()).map_err(key_err)?),
            "ENCRYPTED PRIVATE KEY" => {
                out.keys
                    .push(decrypt_pkcs8(&file, block.contents(), passphrase)?)
            }
            _ => out.ignored.push(format!("PEM block {index} ({label})")),
        }
    }
    Ok(())
}

fn decrypt_pkcs8(
    file: &str,
    der: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<PrivateKey, FormatError> {
    const WHAT: &str = "the private key";
    let Some(passphrase) = passphrase else {
        // Fail early on garbage rather than asking for a passphrase for it.
        pkcs8::EncryptedPrivateKeyInfo::from_der(der).map_err(|e| FormatError::Key {
            file: file.into(),
            source: KeyError::Invalid {
                encoding: "encrypted PKCS#8",
                detail: e.to_string(),
            },
        })?;
        return Err(FormatError::PassphraseRequired {
            file: file.into(),
            what: WHAT,
        });
    };
    PrivateKey::from_encrypted_pkcs8_der(der, passphrase).map_err(|e| match e {
        EncryptedKeyError::WrongPassphrase => FormatError::WrongPassphrase {
            file: file.into(),
            what: WHAT,
        },
        EncryptedKeyError::Key(source) => FormatError::Key {
            file: file.into(),
            source,
        },
    })
}

/// The DER length the outer header announces, when it is a definite-length SEQUENCE.
fn outer_sequence(bytes: &[u8]) -> Option<(usize, usize)> {
    if bytes.len() < 2 || bytes[0] != 0x30 {
        return None;
    }
    let first = bytes[1] as usize;
    if first < 0x80 {
        return Some((2, first));
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 || bytes.len() < 2 + n {
        return None;
    }
    let len = bytes[2..2 + n]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    Some((2 + n, len))
}

fn parse_der(
    out: &mut ParsedFile,
    bytes: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<(), FormatError> {
    let file = out.name.clone();
    let Some((header, len)) = outer_sequence(bytes) else {
        let detail = if bytes
            .iter()
            .take(512)
            .all(|b| b.is_ascii() && !b.is_ascii_control() || b.is_ascii_whitespace())
        {
            "plain text without a PEM BEGIN line".to_string()
        } else {
            "binary data that is not DER".to_string()
        };
        return Err(FormatError::Unrecognized { file, detail });
    };
    if header + len > bytes.len() {
        return Err(FormatError::Corrupt {
            file,
            what: "DER file",
            detail: format!(
                "its header announces {} bytes but the file has {}",
                header + len,
                bytes.len()
            ),
        });
    }
    let der = &bytes[..header + len];
    let body = &der[header..];
    // PKCS#12: SEQUENCE { INTEGER 3, ... }
    if body.starts_with(&[0x02, 0x01, 0x03]) {
        out.format = FileFormat::Pkcs12;
        return parse_pkcs12(out, der, passphrase);
    }
    if let Ok(cert) = parse_cert(der) {
        out.format = FileFormat::DerCertificate;
        out.certs.push(cert);
        return Ok(());
    }
    if pkcs8::EncryptedPrivateKeyInfo::from_der(der).is_ok() {
        out.format = FileFormat::DerEncryptedPkcs8;
        out.keys.push(decrypt_pkcs8(&file, der, passphrase)?);
        return Ok(());
    }
    // Plain keys: a structural probe, then the loader for that encoding.
    type Probe = fn(&[u8], &[u8]) -> bool;
    type Loader = fn(&[u8]) -> Result<PrivateKey, KeyError>;
    let plain: [(Probe, FileFormat, Loader); 3] = [
        (
            |der, _| pkcs8::PrivateKeyInfo::from_der(der).is_ok(),
            FileFormat::DerPkcs8,
            PrivateKey::from_pkcs8_der,
        ),
        (
            |der, _| sec1::EcPrivateKey::from_der(der).is_ok(),
            FileFormat::DerSec1,
            PrivateKey::from_sec1_der,
        ),
        // PKCS#1 RSAPrivateKey: SEQUENCE { INTEGER 0, INTEGER modulus, ... }
        (
            |_, body| body.starts_with(&[0x02, 0x01, 0x00, 0x02]),
            FileFormat::DerPkcs1,
            PrivateKey::from_pkcs1_der,
        ),
    ];
    if let Some((_, format, load)) = plain.iter().find(|(probe, _, _)| probe(der, body)) {
        out.format = *format;
        out.keys
            .push(load(der).map_err(|source| FormatError::Key { file, source })?);
        return Ok(());
    }
    let detail = parse_cert(der).err().unwrap_or_default();
    Err(FormatError::Unrecognized {
        file,
        detail: format!("DER data that is not a certificate ({detail}), a private key or PKCS#12"),
    })
}

fn parse_pkcs12(
    out: &mut ParsedFile,
    der: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<(), FormatError> {
    const WHAT: &str = "the PKCS#12 file";
    let file = out.name.clone();
    // Try the given passphrase, then the empty one (a common export default).
    let mut candidates: Vec<&str> = Vec::new();
    if let Some(p) = passphrase {
        candidates.push(p.expose());
    }
    if passphrase.is_none_or(|p| !p.is_empty()) {
        candidates.push("");
    }
    let mut wrong = false;
    for candidate in candidates {
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
