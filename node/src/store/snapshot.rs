//! The snapshot file beside redb: written whole (temp file, fsync, rename, fsync of the
//! dir) on a blocking thread, one write at a time, never an older one over a newer one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::AnyError;
use redb::Database;
use serde::{Deserialize, Serialize};

use crate::raft::{LogId, SnapshotMeta};

use super::*;

/// The snapshot file beside the redb file (`raft.redb` → `raft.snapshot`).
///
/// Snapshots live outside redb: redb admits one write transaction at a time, and writing a
/// snapshot of 100,000 bundles (~150 MB) held that lock for seconds, during which no log
/// entry could be appended: heartbeats timed out, elections followed, and a follower could
/// not catch up while each snapshot was written.
pub(super) fn snapshot_path(db_path: &Path) -> PathBuf {
    db_path.with_extension("snapshot")
}

/// Writes `stored` to `path` atomically and durably: a temp file, fsync, rename, fsync dir.
pub(super) fn write_snapshot_file(path: &Path, stored: &StoredSnapshot) -> Result<(), AnyError> {
    use std::io::Write;
    let tmp = path.with_extension("snapshot.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(any)?;
    f.write_all(&encode(stored)).map_err(any)?;
    f.sync_all().map_err(any)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(any)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(any)?;
    }
    Ok(())
}

/// The snapshot file, else (data dirs from before the file existed) the one in redb.
pub(super) fn read_snapshot(
    path: &Path,
    db: &Database,
) -> Result<Option<StoredSnapshot>, AnyError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => meta_get(db, KEY_SNAPSHOT),
        Err(e) => Err(AnyError::error(format!("{}: {e}", path.display()))),
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredSnapshot {
    pub(super) meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    pub(super) data: Vec<u8>,
}

/// The snapshot on disk, and what its writes allow the log to purge.
pub(super) struct SnapshotDisk {
    pub(super) path: PathBuf,
    pub(super) db: Arc<Database>,
    pub(super) gate: Arc<Mutex<PurgeGate>>,
    /// The last log id of the snapshot file, held while it is written: one write at a
    /// time, since openraft builds snapshots in a task of their own, so a build can run
    /// while a snapshot from the leader is installed.
    pub(super) written: Mutex<Option<LogId>>,
}

impl SnapshotDisk {
    /// Makes `stored` the snapshot on disk, unless the one there is at least as new (a
    /// build that began before an install must not replace it), then carries out what of a
    /// deferred purge it allows. Blocking: file I/O and fsync.
    pub(super) fn persist(&self, stored: &StoredSnapshot) -> Result<(), AnyError> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let last = stored.meta.last_log_id;
        if written.is_some() && *written >= last {
            return Ok(());
        }
        write_snapshot_file(&self.path, stored)?;
        *written = last;
        let now = self
            .gate
            .lock()
            .expect("purge gate poisoned")
            .snapshot_durable(last);
        match now {
            Some(upto) => purge_log(&self.db, upto),
            None => Ok(()),
        }
    }
}
