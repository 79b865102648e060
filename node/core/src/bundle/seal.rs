//! Sealing at rest and in flight: AES-256-GCM under a versioned data key.
//!
//! Sealed record, format version 1:
//!
//! ```text
//! [0]      format version (1)
//! [1..5]   data key version, u32 big-endian
//! [5..17]  random 96-bit nonce
//! [17..]   ciphertext || 16-byte GCM tag
//! AAD      "certraft-sealed-v1" || format version || key version || record id
//! ```
//!
//! Opening runs no password KDF: it is one AES-GCM decryption.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::{Zeroize, Zeroizing};

pub const SEAL_FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 12;
const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"certraft-sealed-v1";

/// Why a sealed record did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed record {record} is {len} bytes, shorter than any sealed record ({min}); it is truncated")]
    Truncated {
        record: String,
        len: usize,
        min: usize,
    },
    #[error("sealed record {record} has format version {version}, which this build does not know; upgrade certraft-node")]
    UnknownFormat { record: String, version: u8 },
    #[error("sealed record {record} needs data key version {version}, which this node's keyring lacks (it has {known:?}); rejoin the node so it receives the current keyring")]
    UnknownKey {
        record: String,
        version: u32,
        known: Vec<u32>,
    },
    #[error("sealed record {record} failed authentication: it was tampered with or sealed under another key; restore it from a healthy node or a backup")]
    Tampered { record: String },
    #[error("{record} is not a valid keyring encoding; restore the data dir from a backup or rejoin the node")]
    Malformed { record: String },
}

impl SealError {
    pub fn code(&self) -> &'static str {
        match self {
            SealError::Truncated { .. } => "sealed_truncated",
            SealError::UnknownFormat { .. } => "sealed_unknown_format",
            SealError::UnknownKey { .. } => "sealed_unknown_key",
            SealError::Tampered { .. } => "sealed_tampered",
            SealError::Malformed { .. } => "sealed_malformed",
        }
    }
}

/// One 256-bit data key and its version. Never printed; zeroized on drop.
pub struct DataKey {
    version: u32,
    bytes: Zeroizing<[u8; 32]>,
    cipher: Aes256Gcm,
}

impl DataKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate(version: u32) -> Self {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&key);
        Self::from_bytes(version, *bytes)
    }

    pub fn from_bytes(version: u32, bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let cipher =
            Aes256Gcm::new_from_slice(bytes.as_ref()).expect("32-byte key is the AES-256 key size");
        DataKey {
            version,
            bytes,
            cipher,
        }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The raw key, for sealing it under another key. Never log or print it.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey(v{}, <redacted>)", self.version)
    }
}

/// All data keys a node knows; new records are sealed under the active one.
#[derive(Debug)]
pub struct Keyring {
    active: u32,
    keys: BTreeMap<u32, DataKey>,
}

impl Keyring {
    pub fn new(active: DataKey) -> Self {
        let version = active.version;
        let mut keys = BTreeMap::new();
        keys.insert(version, active);
        Keyring {
            active: version,
            keys,
        }
    }

    /// Adds a key; with `make_active`, new records are sealed under it.
    pub fn insert(&mut self, key: DataKey, activation: Activation) {
        let version = key.version;
        self.keys.insert(version, key);
        if activation == Activation::Activate {
            self.active = version;
        }
    }

    pub fn active_version(&self) -> u32 {
        self.active
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Every key, for sealing the keyring under a node's unseal key or handing it to a
    /// joining node over the authenticated join channel. Secret: never log or store it
    /// unsealed. Format: version byte 1, active version, count, then (version, key) pairs,
    /// integers big-endian.
    pub fn export_secret(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(9 + self.keys.len() * 36));
        out.push(KEYRING_FORMAT_V1);
        out.extend_from_slice(&self.active.to_be_bytes());
        out.extend_from_slice(&(self.keys.len() as u32).to_be_bytes());
        for (version, key) in &self.keys {
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(key.expose_bytes());
        }
        out
    }

    /// The inverse of [`Keyring::export_secret`].
    pub fn import_secret(bytes: &[u8]) -> Result<Keyring, SealError> {
        let bad = || SealError::Malformed {
            record: "keyring".into(),
        };
        let (&format, rest) = bytes.split_first().ok_or_else(bad)?;
        if format != KEYRING_FORMAT_V1 || rest.len() < 8 {
            return Err(bad());
        }
        let u32_at = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let active = u32_at(&rest[0..4]);
        let count = u32_at(&rest[4..8]) as usize;
        let body = &rest[8..];
        if count == 0 || body.len() != count * 36 {
            return Err(bad());
        }
        let mut keys = BTreeMap::new();
        for chunk in body.chunks_exact(36) {
            let mut key = [0u8; 32];
            key.copy_from_slice(&chunk[4..]);
            let version = u32_at(&chunk[..4]);
            keys.insert(version, DataKey::from_bytes(version, key));
            key.zeroize();
        }
        if !keys.contains_key(&active) {
            return Err(bad());
        }
        Ok(Keyring { active, keys })
    }

    /// Seals `plaintext` under the active key, bound to `record_id`.
    pub fn seal(&self, record_id: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let key = &self.keys[&self.active];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(SEAL_FORMAT_V1);
        out.extend_from_slice(&key.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        let aad = aad(key.version, record_id);
        let ct = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption cannot fail for inputs under 64 GiB");
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a sealed record; any flipped bit, wrong key or wrong record id is refused.
    pub fn open(&self, record_id: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let record = || hex::encode(record_id);
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(SealError::Truncated {
                record: record(),
                len: sealed.len(),
                min: HEADER_LEN + TAG_LEN,
            });
        }
        if sealed[0] != SEAL_FORMAT_V1 {
            return Err(SealError::UnknownFormat {
                record: record(),
                version: sealed[0],
            });
        }
        let version = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let key = self
            .keys
            .get(&version)
            .ok_or_else(|| SealError::UnknownKey {
                record: record(),
                version,
                known: self.versions(),
            })?;
        let nonce = Nonce::from_slice(&sealed[5..HEADER_LEN]);
        let aad = aad(version, record_id);
        key.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Tampered { record: record() })
    }
}

/// Whether a key added to a keyring becomes the one new records are sealed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Activate,
    KeepCurrent,
}

fn aad(version: u32, record_id: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 5 + record_id.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.push(SEAL_FORMAT_V1);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(record_id);
    aad
}

const KEYRING_FORMAT_V1: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyring exported and imported seals and opens the same records; garbage is refused.
    #[test]
    fn keyring_secret_round_trips() {
        let mut k = ring();
        k.insert(DataKey::generate(2), Activation::Activate);
        let sealed = k.seal(b"id", b"payload");
        let back = Keyring::import_secret(&k.export_secret()).unwrap();
        assert_eq!(back.active_version(), 2);
        assert_eq!(back.versions(), vec![1, 2]);
        assert_eq!(&back.open(b"id", &sealed).unwrap()[..], b"payload");
        assert!(Keyring::import_secret(&[1, 0, 0]).is_err());
        let mut bad = k.export_secret().to_vec();
        bad.pop();
        assert!(Keyring::import_secret(&bad).is_err());
    }

    fn ring() -> Keyring {
        Keyring::new(DataKey::generate(1))
    }

    /// Seal then open gives the plaintext back, and two seals differ (random nonces).
    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let k = ring();
        let a = k.seal(b"id", b"secret bytes");
        let b = k.seal(b"id", b"secret bytes");
        assert_ne!(a, b);
        assert_eq!(k.open(b"id", &a).unwrap().as_slice(), b"secret bytes");
    }

    /// Every single flipped bit anywhere in a sealed record is detected.
    #[test]
    fn every_flipped_bit_is_refused() {
        let k = ring();
        let sealed = k.seal(b"record-7", b"payload that matters");
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let err = k.open(b"record-7", &bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    SealError::Tampered { .. }
                        | SealError::UnknownFormat { .. }
                        | SealError::UnknownKey { .. }
                ),
                "bit {i}: {err:?}"
            );
        }
    }

    /// The record id is bound: a record moved under another id does not open.
    #[test]
    fn record_id_is_bound_as_aad() {
        let k = ring();
        let sealed = k.seal(b"a", b"x");
        assert!(matches!(
            k.open(b"b", &sealed),
            Err(SealError::Tampered { .. })
        ));
    }

    /// A different key of the same version is "tampered or wrong key"; an unknown version says so.
    #[test]
    fn wrong_or_unknown_key_is_refused() {
        let sealed = ring().seal(b"a", b"x");
        assert!(matches!(
            ring().open(b"a", &sealed),
            Err(SealError::Tampered { .. })
        ));
        let other = Keyring::new(DataKey::generate(2));
        let err = other.open(b"a", &sealed).unwrap_err();
        assert!(
            matches!(err, SealError::UnknownKey { version: 1, .. }),
            "{err}"
        );
    }

    /// Rotation: old records still open after a new key becomes active.
    #[test]
    fn rotated_keyring_opens_old_records() {
        let mut k = ring();
        let old = k.seal(b"a", b"old");
        k.insert(DataKey::generate(2), Activation::Activate);
        let new = k.seal(b"a", b"new");
        assert_eq!(new[1..5], 2u32.to_be_bytes());
        assert_eq!(k.open(b"a", &old).unwrap().as_slice(), b"old");
        assert_eq!(k.open(b"a", &new).unwrap().as_slice(), b"new");
    }

    /// Truncated input is an error, never a panic.
    #[test]
    fn truncated_records_are_refused() {
        let k = ring();
        let sealed = k.seal(b"a", b"x");
        for n in 0..sealed.len() {
            assert!(k.open(b"a", &sealed[..n]).is_err());
        }
    }

    /// Debug never shows key bytes.
    #[test]
    fn debug_redacts_key_material() {
        let key = DataKey::from_bytes(3, [0xAB; 32]);
        let shown = format!(
            "{key:?} {:?}",
            Keyring::new(DataKey::from_bytes(4, [0xAB; 32]))
        );
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }
}
