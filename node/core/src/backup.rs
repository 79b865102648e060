//! The backup file: the whole inventory's bundles, sealed with an operator's passphrase so it
//! can be restored into this or another cluster (primary site → backup site).
//!
//! Format (version 1): `CRBK` magic, version byte 1, PBKDF2 iterations (u32 BE), 16-byte
//! salt, then one AES-256-GCM record (random 96-bit nonce; the header is the AAD) over CBOR
//! of [`Contents`]. Key: PBKDF2-HMAC-SHA256(passphrase, salt, iterations). Restoring
//! re-assembles and re-validates every bundle and re-seals it under the target cluster's
//! data key; nothing is trusted just because it decrypted.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::bundle::{assemble, parse_file, AssembleOptions, Keyring, Passphrase};
use crate::inventory::{BundleMeta, BundleStatus, Inventory, NewBundle};

const MAGIC: &[u8; 4] = b"CRBK";
const VERSION: u8 = 1;
pub const ITERATIONS: u32 = 600_000;
const HEADER_LEN: usize = 4 + 1 + 4 + 16;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup needs a non-empty passphrase; pass --passphrase-file F or set CERTRAFT_PASSPHRASE")]
    EmptyPassphrase,
    #[error("bundle {name} could not be opened for the backup: {detail}")]
    Open { name: String, detail: String },
    #[error("this is not a certraft backup file (no CRBK header); pass the file `certraft backup create` wrote")]
    NotABackup,
    #[error("the backup has format version {0}, which this build does not know; upgrade certraft")]
    UnknownVersion(u8),
    #[error("the backup did not decrypt: wrong passphrase, or the file is damaged")]
    WrongPassphrase,
    #[error("the backup's contents are unreadable: {0}")]
    Corrupt(String),
    #[error("bundle {name} in the backup is not valid: {detail}")]
    Invalid { name: String, detail: String },
}

impl BackupError {
    pub fn code(&self) -> &'static str {
        match self {
            BackupError::EmptyPassphrase => "passphrase_required",
            BackupError::Open { .. } => "sealed_open_failed",
            BackupError::NotABackup => "not_a_backup",
            BackupError::UnknownVersion(_) => "unknown_version",
            BackupError::WrongPassphrase => "wrong_passphrase",
            BackupError::Corrupt(_) => "corrupt_file",
            BackupError::Invalid { .. } => "invalid_bundle",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    retired: bool,
    #[serde(with = "serde_bytes")]
    key_pkcs8: Vec<u8>,
    certs: Vec<serde_bytes::ByteBuf>,
}

#[derive(Serialize, Deserialize)]
struct Contents {
    bundles: Vec<Entry>,
    default: Option<String>,
}

fn derive(passphrase: &Passphrase, salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        passphrase.expose().as_bytes(),
        salt,
        iterations,
        key.as_mut(),
    );
    key
}

/// One bundle as a backup carries it.
pub struct BackupBundle {
    pub name: String,
    pub retired: bool,
    /// PKCS#8 DER.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// DER, leaf first, then the chain in issuing order.
    pub certs: Vec<Vec<u8>>,
}

/// Seals every bundle of `inv` (opened with `keyring`) under `passphrase`.
pub fn create(
    inv: &Inventory,
    keyring: &Keyring,
    passphrase: &Passphrase,
) -> Result<Vec<u8>, BackupError> {
    if passphrase.is_empty() {
        return Err(BackupError::EmptyPassphrase);
    }
    let mut bundles = Vec::with_capacity(inv.bundles.len());
    for b in inv.bundles.values() {
        let m = b.sealed.open(keyring).map_err(|e| BackupError::Open {
            name: b.name.clone(),
            detail: e.to_string(),
        })?;
        bundles.push(BackupBundle {
            name: b.name.clone(),
            retired: b.status == BundleStatus::Retired,
            key_pkcs8: Zeroizing::new(m.key_pkcs8().to_vec()),
            certs: m.certs().to_vec(),
        });
    }
    write(bundles, inv.default.clone(), passphrase)
}

/// Seals `bundles` (and the name of the default) into a backup file under `passphrase`:
/// what [`create`] writes for a live inventory, and what migration tools and benchmarks
/// write for bundles from elsewhere.
pub fn write(
    bundles: Vec<BackupBundle>,
    default: Option<String>,
    passphrase: &Passphrase,
) -> Result<Vec<u8>, BackupError> {
    if passphrase.is_empty() {
        return Err(BackupError::EmptyPassphrase);
    }
    let contents = Contents {
        bundles: bundles
            .into_iter()
            .map(|mut b| Entry {
                // Moved, not copied: zeroized below once serialised.
                key_pkcs8: std::mem::take(&mut *b.key_pkcs8),
                name: b.name,
                retired: b.retired,
                certs: b
                    .certs
                    .into_iter()
                    .map(serde_bytes::ByteBuf::from)
                    .collect(),
            })
            .collect(),
        default,
    };
    let mut plain = Zeroizing::new(Vec::new());
    ciborium::into_writer(&contents, &mut *plain)
        .map_err(|e| BackupError::Corrupt(e.to_string()))?;
    for e in contents.bundles {
        drop(Zeroizing::new(e.key_pkcs8));
    }
    let mut salt = [0u8; 16];
    aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut salt);
    let mut out = Vec::with_capacity(HEADER_LEN + 12 + plain.len() + 16);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&ITERATIONS.to_be_bytes());
    out.extend_from_slice(&salt);
    let key = derive(passphrase, &salt, ITERATIONS);
    let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key");
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &plain,
                aad: &out[..HEADER_LEN],
            },
        )
        .map_err(|_| BackupError::Corrupt("encryption failed".into()))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts a backup, re-validates every bundle and re-seals it under `keyring`.
/// Retired bundles are restored as active ones only if nothing else is lost: they are skipped.
pub fn open(
    data: &[u8],
    passphrase: &Passphrase,
    keyring: &Keyring,
    now: i64,
) -> Result<(Vec<NewBundle>, Option<String>), BackupError> {
    if data.len() < HEADER_LEN + 12 + 16 || &data[..4] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    if data[4] != VERSION {
        return Err(BackupError::UnknownVersion(data[4]));
    }
    let iterations = u32::from_be_bytes([data[5], data[6], data[7], data[8]]);
    if !(1..=10_000_000).contains(&iterations) {
        return Err(BackupError::Corrupt(format!(
            "iteration count {iterations}"
        )));
    }
    let salt = &data[9..HEADER_LEN];
    let key = derive(passphrase, salt, iterations);
    let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key");
    let nonce = Nonce::from_slice(&data[HEADER_LEN..HEADER_LEN + 12]);
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &data[HEADER_LEN + 12..],
                    aad: &data[..HEADER_LEN],
                },
            )
            .map_err(|_| BackupError::WrongPassphrase)?,
    );
    let contents: Contents =
        ciborium::from_reader(&plain[..]).map_err(|e| BackupError::Corrupt(e.to_string()))?;
    let mut out = Vec::new();
    for e in contents.bundles.into_iter().filter(|e| !e.retired) {
        let key = Zeroizing::new(e.key_pkcs8);
        let invalid = |detail: String| BackupError::Invalid {
            name: e.name.clone(),
            detail,
        };
        let mut files = vec![parse_file("key", &key, None).map_err(|x| invalid(x.to_string()))?];
        for (i, c) in e.certs.iter().enumerate() {
            files.push(
                parse_file(&format!("cert{i}"), c, None).map_err(|x| invalid(x.to_string()))?,
            );
        }
        let options = AssembleOptions {
            allow_incomplete: true,
            allow_expired: true,
        };
        let bundle = assemble(files, options, now).map_err(|x| invalid(x.to_string()))?;
        out.push(NewBundle {
            name: e.name.clone(),
            sealed: bundle.seal(keyring),
            meta: BundleMeta::of(&bundle),
        });
    }
    Ok((out, contents.default))
}
