//! Reading one input file: detect its format from its content (never its name) and pull out
//! every certificate and private key in it. PEM, DER and PKCS#8 are read here; PKCS#12 files
//! go to the private `pkcs12` module, which checks their key derivations before p12-keystore
//! reads them.

use std::fmt;

use pkcs8::der::Decode;
use serde::Serialize;

use super::cert::{parse_cert, CertInfo};
use super::key::{encrypted_pkcs8_kdf, EncryptedKeyError, KeyError, Passphrase, PrivateKey};
use super::limits::{
    KdfBudget, KdfLimit, MAX_CERTS_PER_FILE, MAX_FILE_BYTES, MAX_KDF_ITERATIONS, MAX_KEYS_PER_FILE,
};
use super::pkcs12;

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
    #[error("{file}: the file is {size} bytes; certraft reads at most {max} bytes from one file (certificates, keys and PKCS#12 files are a few KiB); check that this is the right file")]
    TooLarge {
        file: String,
        size: usize,
        max: usize,
    },
    #[error("{file}: the file holds {found} certificates; certraft reads at most {max} from one file; give only the leaf and its chain (a CA bundle is not needed)")]
    TooManyCertificates {
        file: String,
        found: usize,
        max: usize,
    },
    #[error("{file}: the file holds {found} private keys; certraft reads at most {max} from one file and a bundle takes exactly one; give only the key of this certificate")]
    TooManyKeys {
        file: String,
        found: usize,
        max: usize,
    },
    #[error("{file}: {site} asks for {limit}; {}", next_step(*.site, .limit, .file))]
    KdfLimit {
        file: String,
        site: KdfSite,
        limit: KdfLimit,
    },
    #[error("{file}: the PKCS#12 file's certificates name each other as issuers in a loop ({}); no chain can be built from it; convert it with `openssl pkcs12 -in {file} -nodes -out bundle.pem` (keep bundle.pem private), remove the certificates that are not in the chain and import that", .names.join(" → "))]
    Pkcs12IssuerLoop { file: String, names: Vec<String> },
}

/// Where in a file a password-based key derivation was asked for, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfSite {
    /// An encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`, PEM or DER).
    EncryptedKey { der: bool },
    /// The MAC over a whole PKCS#12 file.
    Pkcs12Mac,
    /// An encrypted container (`EncryptedData`) of a PKCS#12 file.
    Pkcs12Container,
    /// A bag (usually a shrouded key bag) in the plain part of a PKCS#12 file.
    Pkcs12Bag,
    /// A bag that only decrypting one of the PKCS#12 file's containers revealed.
    Pkcs12NestedBag,
}

impl fmt::Display for KdfSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KdfSite::EncryptedKey { .. } => "the encrypted private key",
            KdfSite::Pkcs12Mac => "the PKCS#12 MAC",
            KdfSite::Pkcs12Container => "an encrypted PKCS#12 container",
            KdfSite::Pkcs12Bag => "a PKCS#12 bag",
            KdfSite::Pkcs12NestedBag => "a PKCS#12 bag inside an encrypted container",
        })
    }
}

/// What the operator can do about a refused key derivation.
fn next_step(site: KdfSite, limit: &KdfLimit, file: &str) -> String {
    match (site, limit) {
        (KdfSite::EncryptedKey { .. }, KdfLimit::TooManyRuns { .. }) => {
            "give one key per file".into()
        }
        (KdfSite::EncryptedKey { der }, _) => format!(
            "re-encrypt it with PBKDF2: `openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000{} -in {file} -out key-pbkdf2.pem`",
            if der { " -inform DER" } else { "" }
        ),
        (_, limit) => {
            let export = match limit {
                KdfLimit::TooManyRuns { .. } => "export only this bundle's key and chain".into(),
                KdfLimit::Iterations { .. } => format!(
                    "export it again with at most {MAX_KDF_ITERATIONS} iterations (OpenSSL's default is 2048)"
                ),
                _ => "export it again with OpenSSL's defaults (PBKDF2, 2048 iterations)".into(),
            };
            format!(
                "{export}, or convert it with `openssl pkcs12 -in {file} -nodes -out bundle.pem` (keep bundle.pem private) and import that"
            )
        }
    }
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
            FormatError::Pkcs12 { .. } | FormatError::Pkcs12IssuerLoop { .. } => "invalid_pkcs12",
            FormatError::TooLarge { .. } => "too_large",
            FormatError::TooManyCertificates { .. } => "too_many_certificates",
            FormatError::TooManyKeys { .. } => "too_many_keys",
            FormatError::KdfLimit { .. } => "kdf_limit",
        }
    }
}

/// Reads one file's bytes. `name` is used in messages only; the format comes from the content.
/// An encrypted part without a `passphrase` gives [`FormatError::PassphraseRequired`] (a
/// PKCS#12 with an empty passphrase opens without one).
///
/// The caps of [`limits`](super::limits) are checked before the work they bound: the size
/// before parsing, the number of certificates and keys before any is loaded, and every key
/// derivation's parameters before it runs (also when no passphrase was given, so a file that
/// would be refused anyway is not worth a passphrase prompt).
pub fn parse_file(
    name: &str,
    bytes: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<ParsedFile, FormatError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(FormatError::TooLarge {
            file: name.into(),
            size: bytes.len(),
            max: MAX_FILE_BYTES,
        });
    }
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
    let labelled = |labels: &[&str]| blocks.iter().filter(|b| labels.contains(&b.tag())).count();
    let certs = labelled(&["CERTIFICATE", "X509 CERTIFICATE"]);
    if certs > MAX_CERTS_PER_FILE {
        return Err(FormatError::TooManyCertificates {
            file,
            found: certs,
            max: MAX_CERTS_PER_FILE,
        });
    }
    let keys = labelled(&[
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ]);
    if keys > MAX_KEYS_PER_FILE {
        return Err(FormatError::TooManyKeys {
            file,
            found: keys,
            max: MAX_KEYS_PER_FILE,
        });
    }
    let mut budget = KdfBudget::default();
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
            "ENCRYPTED PRIVATE KEY" => out.keys.push(decrypt_pkcs8(
                &file,
                block.contents(),
                passphrase,
                &mut budget,
                KdfSite::EncryptedKey { der: false },
            )?),
            _ => out.ignored.push(format!("PEM block {index} ({label})")),
        }
    }
    Ok(())
}

/// Decrypts one encrypted PKCS#8 key after charging its key derivation to the file's budget.
fn decrypt_pkcs8(
    file: &str,
    der: &[u8],
    passphrase: Option<&Passphrase>,
    budget: &mut KdfBudget,
    site: KdfSite,
) -> Result<PrivateKey, FormatError> {
    const WHAT: &str = "the private key";
    // Fail early on garbage rather than asking for a passphrase for it, and on a derivation
    // over the caps before anything derives a key.
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der).map_err(|e| FormatError::Key {
        file: file.into(),
        source: KeyError::Invalid {
            encoding: "encrypted PKCS#8",
            detail: e.to_string(),
        },
    })?;
    let kdf_limit = |limit| FormatError::KdfLimit {
        file: file.into(),
        site,
        limit,
    };
    if let Some(kdf) = encrypted_pkcs8_kdf(&info) {
        budget.charge(kdf).map_err(kdf_limit)?;
    }
    let Some(passphrase) = passphrase else {
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
        EncryptedKeyError::KdfLimit(limit) => kdf_limit(limit),
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
        return pkcs12::parse(out, der, passphrase);
    }
    if let Ok(cert) = parse_cert(der) {
        out.format = FileFormat::DerCertificate;
        out.certs.push(cert);
        return Ok(());
    }
    if pkcs8::EncryptedPrivateKeyInfo::from_der(der).is_ok() {
        out.format = FileFormat::DerEncryptedPkcs8;
        out.keys.push(decrypt_pkcs8(
            &file,
            der,
            passphrase,
            &mut KdfBudget::default(),
            KdfSite::EncryptedKey { der: true },
        )?);
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

#[cfg(test)]
mod tests;
