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
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::bundle::crafted::{
        cert_bag, encrypted_pkcs8, named_cert, passphrase, pbes2_alg, pbkdf2_params, pem_of, pfx,
        pfx_with_container, pfx_with_encrypted_bags, pfx_with_mac, pkcs12_pbe_alg, real_key_bag,
        scrypt_params, secret_bag, shrouded_key_bag, BOMB_ITERATIONS, PBE_SHA1_3DES,
        PBE_SHA1_RC2_40,
    };
    use crate::bundle::limits::{
        KdfLimit, MAX_CERTS_PER_FILE, MAX_KDF_RUNS_PER_FILE, MAX_KEYS_PER_FILE, MAX_SCRYPT_MEMORY,
    };

    enum Want {
        Kdf(KdfSite, KdfLimit),
        Code(&'static str),
    }

    fn iterations(kdf: &'static str, iterations: u64) -> KdfLimit {
        KdfLimit::Iterations {
            kdf,
            iterations,
            max: MAX_KDF_ITERATIONS,
        }
    }

    fn tebibyte_scrypt() -> KdfLimit {
        KdfLimit::ScryptMemory {
            n: 1 << 30,
            r: 8,
            memory: 1 << 40,
            max: MAX_SCRYPT_MEMORY,
        }
    }

    /// The key derivation bombs, each refused with the site and the values found, in well
    /// under a second. Regression test for the security review's findings: a 300-byte scrypt
    /// PKCS#8 (N=2^30) made the importer allocate 1 TiB and abort; PBKDF2 and PKCS#12
    /// iteration counts of 2^31-1 froze it. Without the pre-flight each of these aborts the
    /// test process or runs for many minutes.
    #[test]
    fn kdf_bombs_are_refused_before_any_derivation() {
        let loop_leaf = named_cert("loop a", "loop b");
        let loop_other = named_cert("loop b", "loop a");
        let many_runs: Vec<Vec<u8>> = (0..=MAX_KDF_RUNS_PER_FILE)
            .map(|_| shrouded_key_bag(&pbes2_alg(pbkdf2_params(1)), &[0; 48]))
            .collect();
        let many_certs: Vec<Vec<u8>> = (0..=MAX_CERTS_PER_FILE)
            .map(|_| cert_bag(&loop_leaf.0, false))
            .collect();
        let pkcs8_der = KdfSite::EncryptedKey { der: true };
        let cases: Vec<(&str, Vec<u8>, Option<Passphrase>, Want)> = vec![
            (
                "PKCS#8 DER, scrypt N=2^30",
                encrypted_pkcs8(scrypt_params(1 << 30, 8, 1)),
                Some(passphrase()),
                Want::Kdf(pkcs8_der, tebibyte_scrypt()),
            ),
            (
                "PKCS#8 DER, scrypt N=2^30, no passphrase",
                encrypted_pkcs8(scrypt_params(1 << 30, 8, 1)),
                None,
                Want::Kdf(pkcs8_der, tebibyte_scrypt()),
            ),
            (
                "PKCS#8 PEM, scrypt N=2^30",
                pem_of(
                    "ENCRYPTED PRIVATE KEY",
                    &encrypted_pkcs8(scrypt_params(1 << 30, 8, 1)),
                ),
                Some(passphrase()),
                Want::Kdf(KdfSite::EncryptedKey { der: false }, tebibyte_scrypt()),
            ),
            (
                "PKCS#8 DER, scrypt p=17",
                encrypted_pkcs8(scrypt_params(1 << 14, 8, 17)),
                Some(passphrase()),
                Want::Kdf(pkcs8_der, KdfLimit::ScryptParallelism { p: 17, max: 16 }),
            ),
            (
                "PKCS#8 DER, PBKDF2 2^31-1",
                encrypted_pkcs8(pbkdf2_params(BOMB_ITERATIONS as u32)),
                Some(passphrase()),
                Want::Kdf(pkcs8_der, iterations("PBKDF2", BOMB_ITERATIONS)),
            ),
            (
                "PKCS#12 MAC 2^31-1",
                pfx_with_mac(BOMB_ITERATIONS),
                Some(passphrase()),
                Want::Kdf(
                    KdfSite::Pkcs12Mac,
                    iterations("the PKCS#12 KDF", BOMB_ITERATIONS),
                ),
            ),
            (
                "PKCS#12 MAC 2^64-1, no passphrase",
                pfx_with_mac(u64::MAX),
                None,
                Want::Kdf(KdfSite::Pkcs12Mac, iterations("the PKCS#12 KDF", u64::MAX)),
            ),
            (
                "PKCS#12 shrouded key bag, PBES2 PBKDF2 2^31-1",
                pfx(&[&shrouded_key_bag(
                    &pbes2_alg(pbkdf2_params(BOMB_ITERATIONS as u32)),
                    &[0; 48],
                )]),
                Some(passphrase()),
                Want::Kdf(KdfSite::Pkcs12Bag, iterations("PBKDF2", BOMB_ITERATIONS)),
            ),
            (
                "PKCS#12 shrouded key bag, PBES2 scrypt N=2^30",
                pfx(&[&shrouded_key_bag(
                    &pbes2_alg(scrypt_params(1 << 30, 8, 1)),
                    &[0; 48],
                )]),
                None,
                Want::Kdf(KdfSite::Pkcs12Bag, tebibyte_scrypt()),
            ),
            (
                "PKCS#12 shrouded key bag, 3DES 2^31-1",
                pfx(&[&shrouded_key_bag(
                    &pkcs12_pbe_alg(PBE_SHA1_3DES, BOMB_ITERATIONS),
                    &[0; 48],
                )]),
                Some(passphrase()),
                Want::Kdf(
                    KdfSite::Pkcs12Bag,
                    iterations("the PKCS#12 KDF", BOMB_ITERATIONS),
                ),
            ),
            (
                "PKCS#12 secret bag wrapping a key, PBKDF2 2^31-1",
                pfx(&[&secret_bag(&pbes2_alg(pbkdf2_params(
                    BOMB_ITERATIONS as u32,
                )))]),
                Some(passphrase()),
                Want::Kdf(KdfSite::Pkcs12Bag, iterations("PBKDF2", BOMB_ITERATIONS)),
            ),
            (
                "PKCS#12 encrypted container, RC2-40 2^31-1",
                pfx_with_container(&pkcs12_pbe_alg(PBE_SHA1_RC2_40, BOMB_ITERATIONS), &[0; 48]),
                Some(passphrase()),
                Want::Kdf(
                    KdfSite::Pkcs12Container,
                    iterations("the PKCS#12 KDF", BOMB_ITERATIONS),
                ),
            ),
            (
                "PKCS#12 scrypt bag inside an encrypted container",
                pfx_with_encrypted_bags(&[&shrouded_key_bag(
                    &pbes2_alg(scrypt_params(1 << 30, 8, 1)),
                    &[0; 48],
                )]),
                Some(passphrase()),
                Want::Kdf(KdfSite::Pkcs12NestedBag, tebibyte_scrypt()),
            ),
            (
                "PKCS#12 3DES bag inside an encrypted container",
                pfx_with_encrypted_bags(&[&shrouded_key_bag(
                    &pkcs12_pbe_alg(PBE_SHA1_3DES, BOMB_ITERATIONS),
                    &[0; 48],
                )]),
                Some(passphrase()),
                Want::Kdf(
                    KdfSite::Pkcs12NestedBag,
                    iterations("the PKCS#12 KDF", BOMB_ITERATIONS),
                ),
            ),
            (
                // The nested bomb cannot be seen without the passphrase, and is never run.
                "PKCS#12 scrypt bag inside an encrypted container, no passphrase",
                pfx_with_encrypted_bags(&[&shrouded_key_bag(
                    &pbes2_alg(scrypt_params(1 << 30, 8, 1)),
                    &[0; 48],
                )]),
                None,
                Want::Code("passphrase_required"),
            ),
            (
                "PKCS#12 with one key bag too many",
                pfx(&many_runs.iter().map(Vec::as_slice).collect::<Vec<_>>()),
                Some(passphrase()),
                Want::Kdf(
                    KdfSite::Pkcs12Bag,
                    KdfLimit::TooManyRuns {
                        runs: MAX_KDF_RUNS_PER_FILE + 1,
                        max: MAX_KDF_RUNS_PER_FILE,
                    },
                ),
            ),
            (
                "PKCS#12 with one certificate too many",
                pfx(&many_certs.iter().map(Vec::as_slice).collect::<Vec<_>>()),
                Some(passphrase()),
                Want::Code("too_many_certificates"),
            ),
            (
                // p12-keystore follows issuer names for ever and grows a vector until the
                // process runs out of memory.
                "PKCS#12 whose certificates are each other's issuer",
                pfx_with_encrypted_bags(&[
                    &real_key_bag(&loop_leaf.1),
                    &cert_bag(&loop_leaf.0, true),
                    &cert_bag(&loop_other.0, false),
                ]),
                Some(passphrase()),
                Want::Code("invalid_pkcs12"),
            ),
        ];
        let mut failures = Vec::new();
        for (name, bytes, pass, want) in &cases {
            let started = Instant::now();
            let got = parse_file("bomb", bytes, pass.as_ref());
            let elapsed = started.elapsed();
            let ok = match (want, &got) {
                (
                    Want::Kdf(site, limit),
                    Err(FormatError::KdfLimit {
                        site: s, limit: l, ..
                    }),
                ) => s == site && l == limit,
                (Want::Code(code), Err(e)) => e.code() == *code,
                _ => false,
            };
            if !ok {
                failures.push(format!("{name}: got {got:?}"));
            } else if elapsed > Duration::from_secs(2) {
                failures.push(format!("{name}: took {elapsed:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// A file over 1 MiB is refused unread; one of exactly 1 MiB is read.
    #[test]
    fn file_size_cap() {
        let cert = include_bytes!("../../../tests/fixtures/leaf-ec256.pem");
        let padded = |len: usize| {
            let mut v = cert.to_vec();
            v.resize(len, b'\n');
            v
        };
        assert!(parse_file("f.pem", &padded(MAX_FILE_BYTES), None).is_ok());
        let err = parse_file("f.pem", &padded(MAX_FILE_BYTES + 1), None).unwrap_err();
        assert_eq!(err.code(), "too_large");
        assert_eq!(
            err.to_string(),
            "f.pem: the file is 1048577 bytes; certraft reads at most 1048576 bytes from one \
             file (certificates, keys and PKCS#12 files are a few KiB); check that this is the \
             right file"
        );
    }

    /// PEM files: 64 certificates and 8 keys are read; one more of either is refused before
    /// any is parsed.
    #[test]
    fn pem_certificate_and_key_counts() {
        let cert = include_bytes!("../../../tests/fixtures/leaf-ec256.pem");
        let key = include_bytes!("../../../tests/fixtures/ec256.key");
        let repeat = |block: &[u8], n: usize| block.repeat(n);
        let cases = [
            (repeat(cert, MAX_CERTS_PER_FILE), None),
            (
                repeat(cert, MAX_CERTS_PER_FILE + 1),
                Some("too_many_certificates"),
            ),
            (repeat(key, MAX_KEYS_PER_FILE), None),
            (repeat(key, MAX_KEYS_PER_FILE + 1), Some("too_many_keys")),
        ];
        for (bytes, want) in cases {
            let got = parse_file("many.pem", &bytes, None);
            assert_eq!(got.as_ref().err().map(|e| e.code()), want, "{got:?}");
        }
    }

    /// The scrypt refusal says what was asked, what is allowed and what to run instead.
    #[test]
    fn kdf_refusal_names_the_values_and_the_next_step() {
        let der = encrypted_pkcs8(scrypt_params(1 << 30, 8, 1));
        let err = parse_file("key.p8", &der, Some(&passphrase())).unwrap_err();
        assert_eq!(err.code(), "kdf_limit");
        assert_eq!(
            err.to_string(),
            "key.p8: the encrypted private key asks for scrypt N=1073741824, r=8, which needs \
             1 TiB of memory; certraft accepts at most 256 MiB (128·N·r); re-encrypt it with \
             PBKDF2: `openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000 -inform DER -in key.p8 \
             -out key-pbkdf2.pem`"
        );
        let err = parse_file("site.p12", &pfx_with_mac(BOMB_ITERATIONS), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("site.p12: the PKCS#12 MAC asks for the PKCS#12 KDF with 2147483647")
                && msg.contains("at most 10000000")
                && msg.contains("openssl pkcs12 -in site.p12 -nodes -out bundle.pem"),
            "{msg}"
        );
        let nested = pfx_with_encrypted_bags(&[&shrouded_key_bag(
            &pbes2_alg(scrypt_params(1 << 30, 8, 1)),
            &[0; 48],
        )]);
        let msg = parse_file("site.p12", &nested, Some(&passphrase()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "site.p12: a PKCS#12 bag inside an encrypted container asks for scrypt \
                 N=1073741824, r=8, which needs 1 TiB of memory"
            ) && msg.contains("export it again with OpenSSL's defaults (PBKDF2, 2048 iterations)"),
            "{msg}"
        );
    }
}
