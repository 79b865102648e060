//! The data dir: everything a node keeps besides the Raft store, and how it is sealed.
//!
//! | file                 | what                                                        |
//! |----------------------|-------------------------------------------------------------|
//! | `unseal.key`         | 32 random bytes, 0600 (absent when `--unseal-key-file` is used) |
//! | `keyring.sealed`     | the cluster data keyring, sealed by the unseal key          |
//! | `ca.pem`             | the cluster CA certificate (public)                         |
//! | `revoked-nodes.txt`  | removed members' certificates (SHA-256), which the CLI refuses |
//! | `ca.key.sealed`      | the CA private key, sealed by the keyring (not on learners) |
//! | `node.pem`           | this node's certificate                                     |
//! | `node.key.sealed`    | this node's private key, sealed by the keyring              |
//! | `node.json`          | identity: cluster id, node id, role (public)                |
//! | `admin.token`        | the first admin token, 0600 (bootstrap, `admin-token`)      |
//! | `pending-admin-token`| name and SHA-256 of an offline-made token, until replicated |
//! | `bootstrap.pending`  | from a bootstrap's first write until Raft is initialized    |
//! | `raft.redb`          | Raft log, vote, committed id                                |
//! | `raft.snapshot`      | the latest state-machine snapshot (sealed bundles only)     |
//!
//! Invariant: no private key, data key or token is written here in plaintext except
//! `unseal.key` (the root of the seal, like a TPM-less appliance's key file) and
//! `admin.token` (the operator's credential, which SPEC asks for, mode 0600). Every write is
//! to a temporary file, fsynced, then renamed into place.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::bundle::{DataKey, Keyring};
use crate::inventory::NodeRole;
use crate::pki::ClusterCa;

const UNSEAL_RECORD: &[u8] = b"certraft-keyring";
const CA_KEY_RECORD: &[u8] = b"certraft-cluster-ca-key";
const NODE_KEY_RECORD: &[u8] = b"certraft-node-key";

/// Who this node is. Public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: u64,
    pub role: NodeRole,
}

/// What the node needs to run, unsealed in memory.
pub struct Secrets {
    pub keyring: Keyring,
    pub ca: ClusterCa,
    pub node_cert_der: Vec<u8>,
    pub node_key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot {action} {path}: {detail}; check the data dir's path and permissions")]
    Io {
        action: &'static str,
        path: String,
        detail: String,
    },
    #[error("the unseal key {path} can be read by other users (mode {mode:03o}); run `chmod 600 {path}` and keep it owned by the node's user")]
    UnsealKeyExposed { path: String, mode: u32 },
    #[error("the unseal key {path} is {len} bytes, neither 32 raw bytes nor 64 hex digits; pass the right --unseal-key-file (make a new one with `openssl rand -hex 32 > FILE`, only for a new node)")]
    BadUnsealKey { path: String, len: usize },
    #[error("cannot read the unseal key {path}: {detail}; it must be readable by the node's user (uid {uid}): `chown {uid} {path}` and `chmod 600 {path}`")]
    UnsealKeyUnreadable {
        path: String,
        detail: String,
        uid: u32,
    },
    #[error("the unseal key {path} belongs to uid {owner}, not to the node's user (uid {uid}) or root; `chown {uid} {path}`")]
    UnsealKeyOwner { path: String, owner: u32, uid: u32 },
    #[error("{path} does not open with this unseal key ({detail}); pass the --unseal-key-file this node was created with")]
    WrongUnsealKey { path: String, detail: String },
    #[error("{path} is damaged: {detail}; restore the data dir from a backup or rejoin the node")]
    Damaged { path: String, detail: String },
}

/// An unseal key file's 32 bytes: raw, or as 64 hex digits (with surrounding whitespace, as
/// `openssl rand -hex 32` writes it).
fn parse_unseal_key(bytes: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Some(Zeroizing::new(raw));
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text, out.as_mut_slice()).ok()?;
    Some(out)
}

/// A data dir on disk.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

fn io_err(action: &'static str, path: &Path, e: std::io::Error) -> DataDirError {
    DataDirError::Io {
        action,
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DataDirError> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(&tmp).map_err(|e| io_err("write", &tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err("write", &tmp, e))?;
    f.sync_all().map_err(|e| io_err("fsync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io_err("rename into", path, e))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A fresh random secret, hex-encoded (tokens).
pub fn random_hex(bytes: usize) -> Zeroizing<String> {
    use aes_gcm::aead::rand_core::RngCore;
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    aes_gcm::aead::OsRng.fill_bytes(&mut buf);
    Zeroizing::new(hex::encode(&buf[..]))
}

/// SHA-256 of a token's text: what the inventory keeps.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// A new admin token's text.
pub fn new_admin_token() -> Zeroizing<String> {
    Zeroizing::new(format!("cra1_{}", random_hex(32).as_str()))
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Has this dir been bootstrapped or joined (is there a node identity)?
    pub fn is_initialized(&self) -> bool {
        self.path("node.json").exists()
    }

    pub fn raft_path(&self) -> PathBuf {
        self.path("raft.redb")
    }

    pub fn create(&self) -> Result<(), DataDirError> {
        fs::create_dir_all(&self.root).map_err(|e| io_err("create", &self.root, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_err("set permissions on", &self.root, e))?;
        }
        Ok(())
    }

    /// The unseal key from `file`, or from `DATA/unseal.key`, generating that (and returning
    /// `generated = true`, for the caller's warning) when `create` and it is absent.
    pub fn unseal_key(
        &self,
        file: Option<&Path>,
        create: bool,
    ) -> Result<(Keyring, bool), DataDirError> {
        let path = file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.path("unseal.key"));
        // A new node makes its key where it is told to keep it: in the data dir by default,
        // or at --unseal-key-file (a separate volume or a mounted secret directory).
        if !path.exists() && create {
            let key = DataKey::generate(0);
            write_atomic(&path, key.expose_bytes(), 0o600)?;
            return Ok((Keyring::new(key), file.is_none()));
        }
        let uid = rustix::process::geteuid().as_raw();
        let shown = path.display().to_string();
        let meta = fs::metadata(&path).map_err(|e| io_err("read", &path, e))?;
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(DataDirError::UnsealKeyExposed { path: shown, mode });
            }
            if meta.uid() != uid && meta.uid() != 0 {
                return Err(DataDirError::UnsealKeyOwner {
                    path: shown,
                    owner: meta.uid(),
                    uid,
                });
            }
        }
        let bytes =
            Zeroizing::new(
                fs::read(&path).map_err(|e| DataDirError::UnsealKeyUnreadable {
                    path: shown.clone(),
                    detail: e.to_string(),
                    uid,
                })?,
            );
        let raw = parse_unseal_key(&bytes).ok_or(DataDirError::BadUnsealKey {
            path: shown,
            len: bytes.len(),
        })?;
        Ok((Keyring::new(DataKey::from_bytes(0, *raw)), false))
    }

    /// Moves `DATA/unseal.key` to `to` (mode 0600; `to` must not exist), after checking that
    /// the key opens this node's secrets from there; then removes it from the data dir. The
    /// node must be stopped and started with `--unseal-key-file to` afterwards.
    pub fn move_unseal_key(&self, to: &Path) -> Result<(), DataDirError> {
        let from = self.path("unseal.key");
        if !from.exists() {
            return Err(DataDirError::Io {
                action: "move",
                path: from.display().to_string(),
                detail: "there is no unseal key in the data dir (is it kept elsewhere already, with --unseal-key-file?)".into(),
            });
        }
        if to.exists() {
            return Err(DataDirError::Io {
                action: "write",
                path: to.display().to_string(),
                detail: "the file exists; give a new path (nothing was changed)".into(),
            });
        }
        let (unseal, _) = self.unseal_key(None, false)?;
        self.load_secrets(&unseal)?;
        let bytes = Zeroizing::new(fs::read(&from).map_err(|e| io_err("read", &from, e))?);
        write_atomic(to, &bytes, 0o600)?;
        // Read back from its new place before the old copy goes.
        let (moved, _) = self.unseal_key(Some(to), false)?;
        self.load_secrets(&moved)?;
        fs::remove_file(&from).map_err(|e| io_err("remove", &from, e))?;
        if let Ok(dir) = fs::File::open(&self.root) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Writes a new node's identity and sealed secrets.
    pub fn write_node(
        &self,
        identity: &Identity,
        secrets: &Secrets,
        unseal: &Keyring,
    ) -> Result<(), DataDirError> {
        let keyring = secrets.keyring.export_secret();
        write_atomic(
            &self.path("keyring.sealed"),
            &unseal.seal(UNSEAL_RECORD, &keyring),
            0o600,
        )?;
        let ca_pem = pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            secrets.ca.cert_der().to_vec(),
        ));
        write_atomic(&self.path("ca.pem"), ca_pem.as_bytes(), 0o644)?;
        // A traffic node (learner) is never given the CA key: it has none to write.
        if let Some(ca_key) = secrets.ca.key_pkcs8() {
            write_atomic(
                &self.path("ca.key.sealed"),
                &secrets.keyring.seal(CA_KEY_RECORD, ca_key),
                0o600,
            )?;
        }
        let node_pem = pem::encode(&pem::Pem::new("CERTIFICATE", secrets.node_cert_der.clone()));
        write_atomic(&self.path("node.pem"), node_pem.as_bytes(), 0o644)?;
        write_atomic(
            &self.path("node.key.sealed"),
            &secrets
                .keyring
                .seal(NODE_KEY_RECORD, &secrets.node_key_pkcs8),
            0o600,
        )?;
        // Identity last: its presence marks the dir as complete.
        let json = serde_json::to_vec_pretty(identity).map_err(|e| DataDirError::Damaged {
            path: "node.json".into(),
            detail: e.to_string(),
        })?;
        write_atomic(&self.path("node.json"), &json, 0o644)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, DataDirError> {
        let path = self.path(name);
        fs::read(&path).map_err(|e| io_err("read", &path, e))
    }

    fn damaged(&self, name: &str, detail: impl std::fmt::Display) -> DataDirError {
        DataDirError::Damaged {
            path: self.path(name).display().to_string(),
            detail: detail.to_string(),
        }
    }

    pub fn identity(&self) -> Result<Identity, DataDirError> {
        serde_json::from_slice(&self.read("node.json")?).map_err(|e| self.damaged("node.json", e))
    }

    pub fn pem_cert(&self, name: &str) -> Result<Vec<u8>, DataDirError> {
        let p = pem::parse(self.read(name)?).map_err(|e| self.damaged(name, e))?;
        Ok(p.contents().to_vec())
    }

    /// Unseals the keyring, CA key and node key.
    pub fn load_secrets(&self, unseal: &Keyring) -> Result<Secrets, DataDirError> {
        let sealed = self.read("keyring.sealed")?;
        let keyring_bytes =
            unseal
                .open(UNSEAL_RECORD, &sealed)
                .map_err(|e| DataDirError::WrongUnsealKey {
                    path: self.path("keyring.sealed").display().to_string(),
                    detail: e.code().into(),
                })?;
        let keyring = Keyring::import_secret(&keyring_bytes)
            .map_err(|e| self.damaged("keyring.sealed", e))?;
        let identity = self.identity()?;
        let ca_der = self.pem_cert("ca.pem")?;
        // Voters and witnesses hold the CA key (they may lead, and the leader signs joining
        // nodes' certificates); a traffic node's data dir has none.
        let ca = if identity.role == NodeRole::Learner && !self.path("ca.key.sealed").exists() {
            ClusterCa::public(ca_der)
        } else {
            let ca_key = keyring
                .open(CA_KEY_RECORD, &self.read("ca.key.sealed")?)
                .map_err(|e| self.damaged("ca.key.sealed", e))?;
            ClusterCa::load(&identity.cluster_id, ca_der, ca_key)
                .map_err(|e| self.damaged("ca.key.sealed", e))?
        };
        let node_cert_der = self.pem_cert("node.pem")?;
        let node_key_pkcs8 = keyring
            .open(NODE_KEY_RECORD, &self.read("node.key.sealed")?)
            .map_err(|e| self.damaged("node.key.sealed", e))?;
        Ok(Secrets {
            keyring,
            ca,
            node_cert_der,
            node_key_pkcs8,
        })
    }

    /// Writes `DATA/admin.token` (0600).
    pub fn write_admin_token(&self, token: &str) -> Result<PathBuf, DataDirError> {
        let path = self.path("admin.token");
        write_atomic(&path, format!("{token}\n").as_bytes(), 0o600)?;
        Ok(path)
    }

    /// Records an offline-made token (name, hash) for the node to replicate on its next start.
    pub fn write_pending_admin_token(
        &self,
        name: &str,
        hash: &[u8; 32],
    ) -> Result<(), DataDirError> {
        let line = format!("{name} {}\n", hex::encode(hash));
        write_atomic(&self.path("pending-admin-token"), line.as_bytes(), 0o600)
    }

    pub fn pending_admin_token(&self) -> Option<(String, [u8; 32])> {
        let text = fs::read_to_string(self.path("pending-admin-token")).ok()?;
        let (name, hash) = text.trim().split_once(' ')?;
        let hash: [u8; 32] = hex::decode(hash).ok()?.try_into().ok()?;
        Some((name.to_string(), hash))
    }

    pub fn clear_pending_admin_token(&self) {
        let _ = fs::remove_file(self.path("pending-admin-token"));
    }

    /// `certraft-node console-reset`: until [`DataDir::clear_console_reset`], the node's
    /// admin port presents only its node certificate, and the node clears the console
    /// certificate cluster-wide once it can (`node/console_reset.rs`).
    pub fn write_console_reset(&self) -> Result<PathBuf, DataDirError> {
        let path = self.path(CONSOLE_RESET);
        let note = "written by `certraft-node console-reset`: the admin port presents only the node certificate until the console certificate is cleared cluster-wide; then this file is removed\n";
        write_atomic(&path, note.as_bytes(), 0o600)?;
        Ok(path)
    }

    pub fn console_reset_pending(&self) -> bool {
        self.path(CONSOLE_RESET).exists()
    }

    pub fn clear_console_reset(&self) -> Result<(), DataDirError> {
        match fs::remove_file(self.path(CONSOLE_RESET)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataDirError::Io {
                action: "remove",
                path: self.path(CONSOLE_RESET).display().to_string(),
                detail: e.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// The marker `certraft-node console-reset` leaves in the data dir.
pub const CONSOLE_RESET: &str = "console-reset";

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (security review, item 11): an unseal key file other users can read is
    /// refused, naming its mode and the `chmod` that fixes it.
    #[test]
    fn an_unseal_key_readable_by_others_is_refused_with_the_mode_and_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("data"));
        dd.create().unwrap();
        let key = dir.path().join("unseal.key");
        std::fs::write(&key, [7u8; 32]).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = dd.unseal_key(Some(&key), false).unwrap_err().to_string();
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(dd.unseal_key(Some(&key), false).is_ok());
    }

    /// An unseal key is 32 raw bytes or 64 hex digits (`openssl rand -hex 32`, newline and
    /// all), both the same key; anything else is refused with its length; a new node makes
    /// its key at `--unseal-key-file` when that is absent.
    #[test]
    fn unseal_keys_are_raw_or_hex_and_made_where_they_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("data"));
        dd.create().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let raw = write("raw.key", &[0xab; 32]);
        let hex = write("hex.key", format!("{}\n", "ab".repeat(32)).as_bytes());
        let record = dd
            .unseal_key(Some(&raw), false)
            .unwrap()
            .0
            .seal(b"t", b"secret");
        let (from_hex, _) = dd.unseal_key(Some(&hex), false).unwrap();
        assert_eq!(&*from_hex.open(b"t", &record).unwrap(), b"secret");
        for (name, bytes) in [("short.key", &b"ab"[..]), ("65.key", &[b'a'; 65][..])] {
            let p = write(name, bytes);
            let err = dd.unseal_key(Some(&p), false).unwrap_err().to_string();
            assert!(err.contains(&format!("is {} bytes", bytes.len())), "{err}");
        }
        let made = dir.path().join("elsewhere.key");
        let (_, in_data_dir) = dd.unseal_key(Some(&made), true).unwrap();
        assert!(!in_data_dir && made.exists() && !dd.path("unseal.key").exists());
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(dd
            .unseal_key(Some(&dir.path().join("absent.key")), false)
            .is_err());
    }

    /// Moving the unseal key out of the data dir: the secrets open from the new place, the
    /// data dir no longer holds it, and neither an existing target nor a second move is done.
    #[test]
    fn the_unseal_key_moves_out_of_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("data"));
        dd.create().unwrap();
        let (unseal, _) = dd.unseal_key(None, true).unwrap();
        let ca = ClusterCa::generate("c1").unwrap();
        let node = ca.issue_node_cert(1, &["127.0.0.1".into()]).unwrap();
        let secrets = Secrets {
            keyring: Keyring::new(DataKey::generate(1)),
            ca,
            node_cert_der: node.cert_der.clone(),
            node_key_pkcs8: node.key_pkcs8.clone(),
        };
        let identity = Identity {
            cluster_id: "c1".into(),
            node_id: 1,
            role: NodeRole::Voter,
        };
        dd.write_node(&identity, &secrets, &unseal).unwrap();
        let taken = dir.path().join("taken.key");
        std::fs::write(&taken, b"x").unwrap();
        assert!(dd.move_unseal_key(&taken).is_err());
        assert!(
            dd.path("unseal.key").exists(),
            "nothing changed on a refused move"
        );
        let to = dir.path().join("elsewhere/unseal.key");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        dd.move_unseal_key(&to).unwrap();
        assert!(!dd.path("unseal.key").exists());
        let (moved, _) = dd.unseal_key(Some(&to), false).unwrap();
        assert!(dd.load_secrets(&moved).is_ok());
        let again = dd
            .move_unseal_key(&dir.path().join("third.key"))
            .unwrap_err();
        assert!(again.to_string().contains("kept elsewhere"), "{again}");
    }

    /// A node written to a data dir reloads with the same keyring, CA and node key; a
    /// different unseal key is refused with a message naming the file.
    #[test]
    fn node_secrets_round_trip_and_need_the_unseal_key() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("data"));
        dd.create().unwrap();
        let (unseal, generated) = dd.unseal_key(None, true).unwrap();
        assert!(generated);
        let ca = ClusterCa::generate("c1").unwrap();
        let node = ca.issue_node_cert(1, &["127.0.0.1".into()]).unwrap();
        let keyring = Keyring::new(DataKey::generate(1));
        let probe = keyring.seal(b"r", b"x");
        let secrets = Secrets {
            keyring,
            ca,
            node_cert_der: node.cert_der.clone(),
            node_key_pkcs8: node.key_pkcs8.clone(),
        };
        let identity = Identity {
            cluster_id: "c1".into(),
            node_id: 1,
            role: NodeRole::Voter,
        };
        dd.write_node(&identity, &secrets, &unseal).unwrap();
        assert!(dd.is_initialized());
        let (unseal2, generated) = dd.unseal_key(None, true).unwrap();
        assert!(!generated);
        let back = dd.load_secrets(&unseal2).unwrap();
        assert_eq!(dd.identity().unwrap(), identity);
        assert_eq!(&back.keyring.open(b"r", &probe).unwrap()[..], b"x");
        assert_eq!(back.node_key_pkcs8, node.key_pkcs8);
        assert_eq!(back.ca.fingerprint(), secrets.ca.fingerprint());
        let wrong = Keyring::new(DataKey::generate(0));
        let err = dd.load_secrets(&wrong).unwrap_err().to_string();
        assert!(err.contains("keyring.sealed"), "{err}");
        // Nothing secret in the clear: the node key's bytes appear in no file but unseal.key.
        for entry in fs::read_dir(dd.root()).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes
                .windows(node.key_pkcs8.len())
                .any(|w| w == &node.key_pkcs8[..]));
        }
    }
}
