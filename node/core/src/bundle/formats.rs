//! Reading one input file: detect its format from its content (never its name) and pull out
//! every certificate and private key in it. PEM, DER and PKCS#8 are read here; PKCS#12 files
//! go to the private `pkcs12` module, PKCS#7/CMS certificate files to `pkcs7`, and keys with
//! traditional OpenSSL PEM encryption (`Proc-Type: 4,ENCRYPTED`) to `legacy_pem`.
//!
//! PEM text is read as operators paste it: a UTF-8 byte-order mark, CRLF line ends, blanks
//! after lines and prose before, between and after the blocks (`Bag Attributes`, `subject=`,
//! certtool's `Public Key Info:` dump) are all accepted; every BEGIN line must still give a
//! whole block, so no block is ever skipped silently.

use std::fmt;

use pkcs8::der::Decode;
use serde::Serialize;

use super::cert::{parse_cert, CertInfo};
use super::key::{EncryptedKey, EncryptedKeyError, KeyError, Passphrase, PrivateKey};
use super::legacy_pem::{self, EncryptedBlock};
use super::limits::{
    KdfBudget, KdfLimit, MAX_CERTS_PER_FILE, MAX_FILE_BYTES, MAX_KDF_ITERATIONS, MAX_KEYS_PER_FILE,
};
use super::pkcs12;
use super::pkcs7;

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
    /// PKCS#7 / CMS certificates (`.p7b`, `.p7c`) in DER or BER.
    Pkcs7,
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
            FileFormat::Pkcs7 => "PKCS#7 certificates",
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
    /// PEM blocks and PKCS#7 entries that were skipped because they are not part of a bundle.
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
    #[error("{file}: the key is encrypted with {cipher} (its DEK-Info header), which certraft does not decrypt (it reads AES-128/192/256-CBC, DES-EDE3-CBC and DES-CBC); convert it with `openssl pkey -in {file} -out key.pem` (keep key.pem private) and import that")]
    UnsupportedPemCipher { file: String, cipher: String },
    #[error("{file}: the PKCS#7 file could not be read: {detail}; convert it with `openssl pkcs7{} -print_certs -in {file} -out chain.pem` and import that", if *.der { " -inform DER" } else { "" })]
    Pkcs7 {
        file: String,
        detail: String,
        der: bool,
    },
    #[error("{file}: the PKCS#7 file holds no certificates; give the certificate and its chain (PEM, or a .p7b made with `openssl crl2pkcs7 -nocrl -certfile fullchain.pem -out chain.p7b`)")]
    Pkcs7NoCertificates { file: String },
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
            FormatError::UnsupportedPemCipher { .. } => "unsupported_pem_cipher",
            FormatError::Pkcs7 { .. } => "invalid_pkcs7",
            FormatError::Pkcs7NoCertificates { .. } => "empty_pkcs7",
            FormatError::Key {
                source: KeyError::Unsupported { .. },
                ..
            } => "unsupported_key",
            FormatError::Key { .. } => "invalid_key",
            FormatError::Pkcs12 { .. } => "invalid_pkcs12",
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
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
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

/// The UTF-8 byte-order mark some Windows editors put before the first line.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// PEM text as the `pem` crate reads it best: no byte-order mark, `\n` line ends (CRLF and
/// lone CR both become `\n`), and no spaces or tabs at the end of a line. Only whitespace
/// changes, so no block can be lost or altered; without this, blanks after the headers of an
/// encrypted key hide the blank line that ends them.
fn normalize_pem(bytes: &[u8]) -> Vec<u8> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .unwrap_or(rest.len());
        let (line, tail) = rest.split_at(end);
        let kept = line
            .iter()
            .rposition(|b| *b != b' ' && *b != b'\t')
            .map_or(0, |last| last + 1);
        out.extend_from_slice(line.get(..kept).unwrap_or(line));
        rest = match tail {
            [b'\r', b'\n', after @ ..] | [b'\r' | b'\n', after @ ..] => {
                out.push(b'\n');
                after
            }
            _ => &[],
        };
    }
    out
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
    let text = normalize_pem(bytes);
    let bytes = text.as_slice();
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
        let encrypted_legacy = legacy_pem::is_encrypted(block.headers().get("Proc-Type"));
        let key_err = |source: KeyError| FormatError::Key {
            file: file.clone(),
            source,
        };
        match label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => {
                out.certs.push(parse_cert(block.contents()).map_err(bad)?)
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" if encrypted_legacy => {
                let encrypted = EncryptedBlock {
                    file: &file,
                    index,
                    label: &label,
                    dek_info: block.headers().get("DEK-Info"),
                    ciphertext: block.contents(),
                };
                out.keys
                    .push(legacy_pem::read_key(&encrypted, passphrase, &mut budget)?);
            }
            "PRIVATE KEY" => out
                .keys
                .push(PrivateKey::from_pkcs8_der(block.contents()).map_err(key_err)?),
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
            "PKCS7" | "CMS" | "PKCS #7 SIGNED DATA" => {
                pkcs7::parse(out, block.contents(), pkcs7::Source::Pem)?
            }
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
    let key = EncryptedKey::parse(der).map_err(|source| FormatError::Key {
        file: file.into(),
        source,
    })?;
    let kdf_limit = |limit| FormatError::KdfLimit {
        file: file.into(),
        site,
        limit,
    };
    budget.charge(key.kdf()).map_err(kdf_limit)?;
    let Some(passphrase) = passphrase else {
        return Err(FormatError::PassphraseRequired {
            file: file.into(),
            what: WHAT,
        });
    };
    key.decrypt(passphrase).map_err(|e| match e {
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
    // PKCS#7 and PKCS#12 may be BER with indefinite lengths (certtool, NSS, Windows), which
    // `outer_sequence` does not read: their readers take the whole input.
    if pkcs7::is_pkcs7(bytes) {
        out.format = FileFormat::Pkcs7;
        return pkcs7::parse(out, bytes, pkcs7::Source::Der);
    }
    if bytes.starts_with(&[0x30, 0x80, 0x02, 0x01, 0x03]) {
        out.format = FileFormat::Pkcs12;
        return pkcs12::parse(out, bytes, passphrase);
    }
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
