//! Writing a bundle back out: PKCS#12 for moving it with its key, PEM for the certificates
//! (and, asked for explicitly, the key: encrypted PKCS#8 by default) for nginx and HAProxy.

use sha2::{Digest, Sha256};

use super::assemble::Bundle;
use super::key::Passphrase;
use super::record::BundleMaterial;

/// PBKDF2 iterations for modern PKCS#12 export (OWASP 2023 for PBKDF2-HMAC-SHA256).
pub const PKCS12_ITERATIONS: u64 = 600_000;
/// Iterations for `--legacy` export, OpenSSL's historical default.
pub const PKCS12_LEGACY_ITERATIONS: u64 = 2048;

/// Which PKCS#12 algorithms to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs12Profile {
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), HMAC-SHA256 MAC, 600,000 iterations.
    /// OpenSSL 3 reads it without `-legacy`.
    Modern,
    /// PBE-SHA1-3DES with a SHA-1 MAC, for old systems. Weak; warn the operator.
    Legacy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("a PKCS#12 export needs a non-empty passphrase; pass --passphrase-file FILE or set CERTRAFT_PASSPHRASE")]
    EmptyPassphrase,
    #[error("the passphrase has characters outside Unicode's Basic Multilingual Plane (emoji or rare scripts), which PKCS#12 cannot encode; choose a passphrase without them")]
    PassphraseOutsideBmp,
    #[error("PKCS#12 encoding failed: {detail}")]
    Pkcs12 { detail: String },
    #[error("encrypting the private key failed: {detail}")]
    KeyEncryption { detail: String },
}

impl ExportError {
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::EmptyPassphrase => "passphrase_required",
            ExportError::PassphraseOutsideBmp => "passphrase_unsupported",
            ExportError::Pkcs12 { .. } | ExportError::KeyEncryption { .. } => "export_failed",
        }
    }
}

/// The warning an operator sees for a PEM export with an unencrypted key.
pub const UNENCRYPTED_KEY_WARNING: &str = "the PEM file holds the private key unencrypted: anyone who can read the file can impersonate these hosts; keep it mode 0600 on the server that needs it and delete other copies";

/// The warning an operator sees for `--legacy`.
pub const LEGACY_WARNING: &str = "legacy PKCS#12 (3DES, SHA-1 MAC, 2048 iterations) is weak: use it only for systems that cannot read modern PKCS#12, and protect the file";

/// Key and certificates in export order, borrowed from a bundle or opened material.
pub struct ExportParts<'a> {
    pub key_pkcs8: &'a [u8],
    /// Leaf first, then the chain.
    pub certs: Vec<&'a [u8]>,
}

impl<'a> From<&'a Bundle> for ExportParts<'a> {
    fn from(b: &'a Bundle) -> Self {
        ExportParts {
            key_pkcs8: b.key().pkcs8_der(),
            certs: b.certs().map(|c| c.der.as_slice()).collect(),
        }
    }
}

impl<'a> From<&'a BundleMaterial> for ExportParts<'a> {
    fn from(m: &'a BundleMaterial) -> Self {
        ExportParts {
            key_pkcs8: m.key_pkcs8(),
            certs: m.certs().iter().map(Vec::as_slice).collect(),
        }
    }
}

/// Writes key + leaf + chain as PKCS#12 under `passphrase`, with `friendly_name` as the alias.
pub fn export_pkcs12(
    parts: &ExportParts<'_>,
    friendly_name: &str,
    passphrase: &Passphrase,
    profile: Pkcs12Profile,
) -> Result<Vec<u8>, ExportError> {
    if passphrase.is_empty() {
        return Err(ExportError::EmptyPassphrase);
    }
    // PKCS#12 derives its MAC key from the passphrase as a BMPString (UCS-2).
    if passphrase.expose().chars().any(|c| c as u32 > 0xFFFF) {
        return Err(ExportError::PassphraseOutsideBmp);
    }
    let err = |e: p12_keystore::error::Error| ExportError::Pkcs12 {
        detail: e.to_string(),
    };
    let mut chain = Vec::with_capacity(parts.certs.len());
    for der in &parts.certs {
        chain.push(p12_keystore::Certificate::from_der(der).map_err(err)?);
    }
    let leaf = parts.certs.first().copied().unwrap_or_default();
    let local_key_id = Sha256::digest(leaf)[..20].to_vec();
    let entry = p12_keystore::PrivateKeyChain::new(parts.key_pkcs8, local_key_id, chain);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        friendly_name,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(entry),
    );
    let writer = store.writer(passphrase.expose());
    let writer = match profile {
        Pkcs12Profile::Modern => writer
            .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .encryption_iterations(PKCS12_ITERATIONS)
            .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
            .mac_iterations(PKCS12_ITERATIONS),
        Pkcs12Profile::Legacy => writer
            .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .encryption_iterations(PKCS12_LEGACY_ITERATIONS)
            .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha1)
            .mac_iterations(PKCS12_LEGACY_ITERATIONS),
    };
    writer.write().map_err(err)
}

/// Certificates only (leaf then chain) as PEM. Never the key.
pub fn export_pem(parts: &ExportParts<'_>) -> String {
    let blocks: Vec<pem::Pem> = parts
        .certs
        .iter()
        .map(|der| pem::Pem::new("CERTIFICATE", der.to_vec()))
        .collect();
    pem::encode_many_config(
        &blocks,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// How a PEM export carries the private key.
pub enum PemKey<'a> {
    /// `ENCRYPTED PRIVATE KEY`: PKCS#8 under PBES2 (PBKDF2-HMAC-SHA256 with
    /// [`PKCS12_ITERATIONS`], AES-256-CBC), which nginx (`ssl_password_file`) and OpenSSL read.
    Encrypted(&'a Passphrase),
    /// `PRIVATE KEY`: plain PKCS#8, only when the operator insists (warn them).
    Plain,
}

/// Leaf, chain and then the private key as PEM: the one file nginx's `ssl_certificate` /
/// `ssl_certificate_key` and HAProxy's `crt` take.
pub fn export_pem_with_key(
    parts: &ExportParts<'_>,
    key: PemKey<'_>,
) -> Result<String, ExportError> {
    let mut out = export_pem(parts);
    let block = match key {
        PemKey::Plain => pem::Pem::new("PRIVATE KEY", parts.key_pkcs8.to_vec()),
        PemKey::Encrypted(passphrase) => {
            if passphrase.is_empty() {
                return Err(ExportError::EmptyPassphrase);
            }
            let failed = |detail: String| ExportError::KeyEncryption { detail };
            let mut salt = [0u8; 16];
            let mut iv = [0u8; 16];
            let rng = rustls::crypto::ring::default_provider().secure_random;
            rng.fill(&mut salt)
                .and_then(|()| rng.fill(&mut iv))
                .map_err(|_| failed("no randomness for the salt and IV".into()))?;
            let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
                PKCS12_ITERATIONS as u32,
                &salt,
                &iv,
            )
            .map_err(|e| failed(e.to_string()))?;
            let info = pkcs8::PrivateKeyInfo::try_from(parts.key_pkcs8)
                .map_err(|e| failed(e.to_string()))?;
            let doc = info
                .encrypt_with_params(params, passphrase.expose().as_bytes())
                .map_err(|e| failed(e.to_string()))?;
            pem::Pem::new("ENCRYPTED PRIVATE KEY", doc.as_bytes().to_vec())
        }
    };
    out.push_str(&pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ));
    Ok(out)
}
