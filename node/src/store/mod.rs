//! Durable Raft storage in redb: the log, the vote, the committed id, and the state machine's
//! snapshots. The state machine itself ([`Inventory`]) lives in memory and is rebuilt on start
//! from the latest snapshot plus the committed log after it.
//!
//! Durability: every write transaction commits with redb's default `Durability::Immediate`
//! (fsync) before openraft is told the entries are on disk, so an acknowledged write has been
//! fsynced by a majority.
//!
//! Layout: table `logs` (u64 index → entry), table `meta` (`vote`, `committed`,
//! `last_purged`, `snapshot`). Every value is a format byte followed by CBOR.
//!
//! Invariants: no hole in the log (append is contiguous, truncate and purge cut at one end);
//! `last_purged` is written in the same transaction that deletes the purged entries, and
//! never goes back; the log is never purged past the snapshot on disk ([`PurgeGate`]).
//! openraft 0.9 does not ensure the last one itself: a follower that receives a snapshot
//! purges its log as soon as the install is queued, while the snapshot is still being
//! written, and a crash in between left a node that could not restart (the loopback pair
//! suite hit it with `kill -9`). The store defers such a purge until the snapshot is
//! durable, and refuses to open a store whose log was purged past its snapshot.

use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use openraft::AnyError;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use crate::inventory::codec::decode_snapshot;
use crate::raft::LogId;

mod log;
mod recover;
mod sm;
mod snapshot;
#[cfg(test)]
mod tests;

pub use crate::inventory::ServingDelta;
pub use log::LogStore;
pub use recover::{force_single_node, last_membership, Recovered};
use sm::*;
pub use sm::{ServingSink, StateDigest, StateMachineStore};
use snapshot::*;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";
const KEY_SNAPSHOT: &str = "snapshot";

/// Format byte of every value this module writes.
pub const STORE_FORMAT_V1: u8 = 1;

fn any(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![STORE_FORMAT_V1];
    // Plain owned data into a Vec: cannot fail.
    ciborium::into_writer(value, &mut out).expect("CBOR encodes storage types into a Vec");
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AnyError> {
    match bytes.split_first() {
        Some((&STORE_FORMAT_V1, body)) => ciborium::from_reader(body).map_err(any),
        Some((v, _)) => Err(AnyError::error(format!(
            "stored value has format version {v}, which this build does not know; upgrade certraft-node"
        ))),
        None => Err(AnyError::error("stored value is empty")),
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    #[error("cannot open the Raft store {path}: {detail}; check that the data dir is writable and not used by another certraft-node")]
    Database { path: String, detail: String },
    #[error("the Raft store {path} holds an unreadable snapshot ({detail}); restore the data dir from a backup or rejoin the node")]
    Snapshot { path: String, detail: String },
    #[error("the Raft store {path} is inconsistent: its log was purged up to index {purged}, but its snapshot covers only up to index {snapshot}, so entries in between are gone (left by a crash while a snapshot from the leader was being written, which earlier builds allowed); this node cannot rejoin with this data: run `certraft cluster remove NODE` for it on a healthy member, move its data dir aside and join it again with a new token")]
    PurgedPastSnapshot {
        path: String,
        purged: u64,
        snapshot: u64,
    },
    #[error("the Raft store {path} holds no entries and no snapshot: there is nothing to recover, and nothing was changed; this node never finished joining or bootstrapping: start it normally, or join it with a new token")]
    NothingToRecover { path: String },
}

/// Opens (or creates) the store in `path`; returns the log store and the state machine.
pub fn open(path: &Path) -> Result<(LogStore, StateMachineStore), OpenStoreError> {
    let db_err = |e: &dyn std::fmt::Display| OpenStoreError::Database {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    // redb's page cache defaults to 1 GiB, and a restart reads the snapshot and the log tail
    // through it: with 100,000 bundles that cache alone was over 100 MiB of resident memory
    // that is never read again. The inventory lives in memory anyway; 16 MiB covers the log
    // tail that Raft re-reads.
    let db = redb::Builder::new()
        .set_cache_size(16 << 20)
        .create(path)
        .map_err(|e| db_err(&e))?;
    let tx = db.begin_write().map_err(|e| db_err(&e))?;
    {
        tx.open_table(LOGS).map_err(|e| db_err(&e))?;
        tx.open_table(META).map_err(|e| db_err(&e))?;
    }
    tx.commit().map_err(|e| db_err(&e))?;
    let db = Arc::new(db);
    let gate = Arc::new(Mutex::new(PurgeGate::default()));
    let log = LogStore {
        db: db.clone(),
        gate: gate.clone(),
    };
    let sm = StateMachineStore {
        state: Arc::new(RwLock::new(SmState::default())),
        snapshot_seq: Arc::new(AtomicU64::new(0)),
        disk: Arc::new(SnapshotDisk {
            path: snapshot_path(path),
            db,
            gate,
            written: Mutex::new(None),
        }),
        digest: Arc::new(Mutex::new(None)),
    };
    let snap_err = |e: &dyn std::fmt::Display| OpenStoreError::Snapshot {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut snapshot_last = None;
    if let Some(snap) = sm.load_snapshot().map_err(|e| snap_err(&e))? {
        let inventory = decode_snapshot(&snap.data).map_err(|e| snap_err(&e))?;
        let mut st = sm.state.write().expect("state lock poisoned");
        st.last_applied = snap.meta.last_log_id;
        st.last_membership = snap.meta.last_membership.clone();
        st.inventory = Arc::new(inventory);
        snapshot_last = snap.meta.last_log_id;
    }
    // Entries purged but in no snapshot: the state machine would silently miss them.
    let purged: Option<LogId> = meta_get(&sm.disk.db, KEY_LAST_PURGED).map_err(|e| db_err(&e))?;
    if let Some(purged) = purged {
        let snapshot = snapshot_last.map(|l| l.index);
        if snapshot.is_none_or(|s| purged.index > s) {
            return Err(OpenStoreError::PurgedPastSnapshot {
                path: path.display().to_string(),
                purged: purged.index,
                snapshot: snapshot.unwrap_or(0),
            });
        }
    }
    sm.disk.gate.lock().expect("purge gate poisoned").durable = snapshot_last;
    *sm.disk.written.lock().expect("snapshot lock poisoned") = snapshot_last;
    Ok((log, sm))
}

/// How far the log may be purged: up to the snapshot on disk, never past it. Shared by the
/// log store (which purges) and the state machine (which makes snapshots durable).
#[derive(Default)]
struct PurgeGate {
    /// The last log id of the snapshot on disk.
    durable: Option<LogId>,
    /// A purge openraft asked for past `durable`, done once a snapshot covers it.
    pending: Option<LogId>,
}

impl PurgeGate {
    /// What may be purged now of a purge up to `upto`; the rest is kept pending.
    fn admit(&mut self, upto: LogId) -> Option<LogId> {
        match self.durable {
            Some(d) if d.index >= upto.index => Some(upto),
            durable => {
                self.pending = self.pending.max(Some(upto));
                durable
            }
        }
    }

    /// A snapshot up to `last` is on disk: what of the pending purge may be done now (never
    /// more than openraft asked for).
    fn snapshot_durable(&mut self, last: Option<LogId>) -> Option<LogId> {
        self.durable = self.durable.max(last);
        let pending = self.pending?;
        let durable = self.durable?;
        if pending.index <= durable.index {
            self.pending = None;
            Some(pending)
        } else {
            Some(durable)
        }
    }
}

/// Deletes the log up to `upto` (inclusive) and records it as purged, in one transaction;
/// does nothing when the log is already purged that far (`last_purged` never goes back).
fn purge_log(db: &Database, upto: LogId) -> Result<(), AnyError> {
    let tx = db.begin_write().map_err(any)?;
    {
        let mut meta = tx.open_table(META).map_err(any)?;
        let before: Option<LogId> = match meta.get(KEY_LAST_PURGED).map_err(any)? {
            Some(v) => decode(v.value())?,
            None => None,
        };
        if before.is_some_and(|b| b.index >= upto.index) {
            return Ok(());
        }
        meta.insert(KEY_LAST_PURGED, encode(&Some(upto)).as_slice())
            .map_err(any)?;
        let mut table = tx.open_table(LOGS).map_err(any)?;
        table.retain_in(..=upto.index, |_, _| false).map_err(any)?;
    }
    tx.commit().map_err(any)
}

fn meta_get<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, AnyError> {
    let tx = db.begin_read().map_err(any)?;
    let table = tx.open_table(META).map_err(any)?;
    let value = table.get(key).map_err(any)?;
    value.map(|v| decode(v.value())).transpose()
}

fn meta_put<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), AnyError> {
    let tx = db.begin_write().map_err(any)?;
    {
        let mut table = tx.open_table(META).map_err(any)?;
        table.insert(key, encode(value).as_slice()).map_err(any)?;
    }
    tx.commit().map_err(any)
}
