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
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
use openraft::{AnyError, EntryPayload, RaftLogReader, RaftSnapshotBuilder, StorageIOError};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::inventory::codec::{decode_snapshot, encode_snapshot};
use crate::inventory::{apply, Inventory};
use crate::raft::{
    Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote,
};

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

/// The snapshot file beside the redb file (`raft.redb` → `raft.snapshot`).
///
/// Snapshots live outside redb: redb admits one write transaction at a time, and writing a
/// snapshot of 100,000 bundles (~150 MB) held that lock for seconds, during which no log
/// entry could be appended: heartbeats timed out, elections followed, and a follower could
/// not catch up while each snapshot was written.
fn snapshot_path(db_path: &Path) -> PathBuf {
    db_path.with_extension("snapshot")
}

/// Writes `stored` to `path` atomically and durably: a temp file, fsync, rename, fsync dir.
fn write_snapshot_file(path: &Path, stored: &StoredSnapshot) -> Result<(), AnyError> {
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
fn read_snapshot(path: &Path, db: &Database) -> Result<Option<StoredSnapshot>, AnyError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => meta_get(db, KEY_SNAPSHOT),
        Err(e) => Err(AnyError::error(format!("{}: {e}", path.display()))),
    }
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

/// The Raft log, vote and committed id.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    gate: Arc<Mutex<PurgeGate>>,
}

impl LogStore {
    fn last_log_id(&self) -> Result<Option<LogId>, AnyError> {
        let tx = self.db.begin_read().map_err(any)?;
        let table = tx.open_table(LOGS).map_err(any)?;
        let last = table.last().map_err(any)?;
        match last {
            Some((_, v)) => Ok(Some(decode::<Entry>(v.value())?.log_id)),
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let read = || -> Result<Vec<Entry>, AnyError> {
            let tx = self.db.begin_read().map_err(any)?;
            let table = tx.open_table(LOGS).map_err(any)?;
            let mut out = Vec::new();
            for item in table.range(range.clone()).map_err(any)? {
                let (_, v) = item.map_err(any)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        };
        Ok(read().map_err(StorageIOError::read_logs)?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> =
            meta_get(&self.db, KEY_LAST_PURGED).map_err(StorageIOError::read_logs)?;
        let last = self
            .last_log_id()
            .map_err(StorageIOError::read_logs)?
            .or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        Ok(meta_put(&self.db, KEY_VOTE, vote).map_err(StorageIOError::write_vote)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(meta_get(&self.db, KEY_VOTE).map_err(StorageIOError::read_vote)?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        Ok(meta_put(&self.db, KEY_COMMITTED, &committed).map_err(StorageIOError::write)?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(meta_get::<Option<LogId>>(&self.db, KEY_COMMITTED)
            .map_err(StorageIOError::read)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let write = || -> Result<(), AnyError> {
            let tx = self.db.begin_write().map_err(any)?;
            {
                let mut table = tx.open_table(LOGS).map_err(any)?;
                for entry in entries {
                    table
                        .insert(entry.log_id.index, encode(&entry).as_slice())
                        .map_err(any)?;
                }
            }
            tx.commit().map_err(any)
        };
        match write() {
            Ok(()) => {
                // Committed with Durability::Immediate: fsynced.
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = || -> Result<(), AnyError> {
            let tx = self.db.begin_write().map_err(any)?;
            {
                let mut table = tx.open_table(LOGS).map_err(any)?;
                table.retain_in(log_id.index.., |_, _| false).map_err(any)?;
            }
            tx.commit().map_err(any)
        };
        Ok(write().map_err(StorageIOError::write_logs)?)
    }

    /// Purges up to `log_id`, or, past the snapshot on disk, only up to that snapshot: the
    /// rest once a snapshot covers it (see [`PurgeGate`]). Entries kept longer are
    /// committed ones the snapshot being installed also holds; openraft reads nothing at or
    /// below the purge point it asked for.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let now = self.gate.lock().expect("purge gate poisoned").admit(log_id);
        if now != Some(log_id) {
            tracing::debug!(
                upto = log_id.index,
                now = ?now.map(|l| l.index),
                "log purge deferred until the snapshot covering it is on disk"
            );
        }
        match now {
            Some(upto) => Ok(purge_log(&self.db, upto).map_err(StorageIOError::write_logs)?),
            None => Ok(()),
        }
    }
}

#[derive(Default)]
struct SmState {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    inventory: Arc<Inventory>,
    /// Where applied changes go for the serving index: called inside `apply`, under the
    /// state lock, so "applied" implies "served".
    serving: Option<ServingSink>,
}

/// Receives each applied batch's [`ServingDelta`] synchronously.
pub type ServingSink = Box<dyn Fn(ServingDelta) + Send + Sync>;

/// What one applied batch changed for serving: the new state of every touched bundle (only
/// those), and the default. `full` after a snapshot install: every bundle is listed.
#[derive(Debug, Default)]
pub struct ServingDelta {
    /// Active bundles to serve (as they are now).
    pub upserts: Vec<crate::inventory::StoredBundle>,
    /// Names to stop serving (removed or retired).
    pub removes: Vec<String>,
    pub default: Option<String>,
    pub full: bool,
    /// The log index this delta brings the index to.
    pub applied: Option<u64>,
    /// The session-ticket keys, when they changed (always in a full delta).
    pub ticket_keys: Option<Vec<crate::inventory::TicketKey>>,
}

impl ServingDelta {
    fn of_names<'a>(inv: &Inventory, names: impl IntoIterator<Item = &'a String>) -> Self {
        let mut d = ServingDelta {
            default: inv.default.clone(),
            ..Default::default()
        };
        for name in names {
            match inv.bundles.get(name) {
                Some(b) if b.status == crate::inventory::BundleStatus::Active => {
                    d.upserts.push(b.clone())
                }
                _ => d.removes.push(name.clone()),
            }
        }
        d
    }

    fn full(inv: &Inventory) -> Self {
        let mut d = Self::of_names(inv, inv.bundles.keys());
        d.full = true;
        d.ticket_keys = Some(inv.ticket_keys.clone());
        d
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// An applied index and the digest of the state at it.
pub type StateDigest = (Option<u64>, [u8; 32]);

/// The state machine: the inventory in memory, snapshots in a file beside redb.
#[derive(Clone)]
pub struct StateMachineStore {
    state: Arc<RwLock<SmState>>,
    snapshot_seq: Arc<AtomicU64>,
    disk: Arc<SnapshotDisk>,
    /// The last digest computed, with the applied index it is for.
    digest: Arc<Mutex<Option<StateDigest>>>,
}

/// The snapshot on disk, and what its writes allow the log to purge.
struct SnapshotDisk {
    path: PathBuf,
    db: Arc<Database>,
    gate: Arc<Mutex<PurgeGate>>,
    /// The last log id of the snapshot file, held while it is written: one write at a
    /// time, since openraft builds snapshots in a task of their own, so a build can run
    /// while a snapshot from the leader is installed.
    written: Mutex<Option<LogId>>,
}

impl SnapshotDisk {
    /// Makes `stored` the snapshot on disk, unless the one there is at least as new (a
    /// build that began before an install must not replace it), then carries out what of a
    /// deferred purge it allows. Blocking: file I/O and fsync.
    fn persist(&self, stored: &StoredSnapshot) -> Result<(), AnyError> {
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

impl StateMachineStore {
    /// The current inventory (cheap: shared, copy-on-write on the next apply).
    pub fn inventory(&self) -> Arc<Inventory> {
        self.state
            .read()
            .expect("state lock poisoned")
            .inventory
            .clone()
    }

    pub fn last_applied(&self) -> Option<LogId> {
        self.state.read().expect("state lock poisoned").last_applied
    }

    /// The applied index and the digest of the state at it ([`crate::inventory::codec::digest`]):
    /// replicas at the same index must agree (issue 22). Computed once per applied index;
    /// call it off the async workers, it encodes the whole inventory.
    pub fn digest(&self) -> StateDigest {
        let (index, inventory) = {
            let st = self.state.read().expect("state lock poisoned");
            (st.last_applied.map(|l| l.index), st.inventory.clone())
        };
        // Held for the whole computation: concurrent callers wait for one result.
        let mut cached = self.digest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, d)) = *cached {
            if at == index {
                return (at, d);
            }
        }
        let d = crate::inventory::codec::digest(&inventory);
        *cached = Some((index, d));
        (index, d)
    }

    /// Attaches the serving index: `sink` gets the whole current inventory now, then one
    /// delta per applied batch (empty but for `applied` when the batch changed nothing it
    /// serves), inside `apply` before it returns. Replaces any earlier sink.
    pub fn attach_serving(&self, sink: ServingSink) {
        let mut st = self.state.write().expect("state lock poisoned");
        let mut first = ServingDelta::full(&st.inventory);
        first.applied = st.last_applied.map(|l| l.index);
        sink(first);
        st.serving = Some(sink);
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>, AnyError> {
        read_snapshot(&self.disk.path, &self.disk.db)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (last_applied, last_membership, inventory) = {
            let st = self.state.read().expect("state lock poisoned");
            (
                st.last_applied,
                st.last_membership.clone(),
                st.inventory.clone(),
            )
        };
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("--{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        // Encoding and writing 100k bundles takes seconds: off the runtime's workers, which
        // must keep answering heartbeats meanwhile (a blocked worker cost elections).
        let disk = self.disk.clone();
        let signature = meta.signature();
        let stored = tokio::task::spawn_blocking(move || {
            let stored = StoredSnapshot {
                meta,
                data: encode_snapshot(&inventory),
            };
            disk.persist(&stored).map(|()| stored)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(signature.clone()), AnyError::error(e)))?
        .map_err(|e| StorageIOError::write_snapshot(Some(signature), e))?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = self.state.read().expect("state lock poisoned");
        Ok((st.last_applied, st.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut st = self.state.write().expect("state lock poisoned");
        let mut out = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        let mut default_before = st.inventory.default.clone();
        let mut default_changed = false;
        let mut tickets_changed = false;
        for entry in entries {
            // An entry written by a newer certraft-node stops this node: applying it as a
            // refusal (or skipping it) would leave this replica different from the others
            // (issue 22). The core stops with this text in `/readyz`; after an upgrade
            // the node replays from here.
            if let EntryPayload::Normal(ref req) = entry.payload {
                if req.version > crate::inventory::REQUEST_VERSION {
                    return Err(StorageIOError::apply(
                        entry.log_id,
                        AnyError::error(format!(
                            "log entry {} was written by a newer certraft-node (request version {}, this build knows up to {}); upgrade certraft-node on this node",
                            entry.log_id.index,
                            req.version,
                            crate::inventory::REQUEST_VERSION
                        )),
                    )
                    .into());
                }
            }
            st.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(None),
                EntryPayload::Normal(ref req) => {
                    let inv = Arc::make_mut(&mut st.inventory);
                    let resp = apply(inv, req);
                    touched.extend(crate::inventory::touched(&req.command, &resp));
                    tickets_changed |=
                        matches!(req.command, crate::inventory::Command::AddTicketKey { .. });
                    if inv.default != default_before {
                        default_changed = true;
                        default_before = inv.default.clone();
                    }
                    out.push(Some(resp));
                }
                EntryPayload::Membership(ref m) => {
                    // A member this entry drops keeps its certificate nowhere: it goes on
                    // the revoked list every replica holds (issue 19).
                    // Only once every member agreed to it (an older build would not).
                    let before = member_certs(st.last_membership.membership());
                    let after = member_certs(m);
                    let on = st
                        .inventory
                        .features
                        .contains(&crate::inventory::Feature::RevokeRemovedMembers);
                    if on && before.iter().any(|b| !after.contains(b)) {
                        let inv = Arc::make_mut(&mut st.inventory);
                        crate::inventory::revoke_removed(inv, &before, &after);
                    }
                    st.last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    out.push(None);
                }
            }
        }
        if let Some(sink) = &st.serving {
            let mut delta = if !touched.is_empty() || default_changed || tickets_changed {
                touched.sort();
                touched.dedup();
                ServingDelta::of_names(&st.inventory, &touched)
            } else {
                ServingDelta {
                    default: st.inventory.default.clone(),
                    ..Default::default()
                }
            };
            delta.applied = st.last_applied.map(|l| l.index);
            if tickets_changed {
                delta.ticket_keys = Some(st.inventory.ticket_keys.clone());
            }
            sink(delta);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let inventory = decode_snapshot(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), any(e)))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        // The purge openraft asked for when it queued this install (before the snapshot
        // was written) happens in `persist`, before openraft hears that the install is done.
        let disk = self.disk.clone();
        tokio::task::spawn_blocking(move || disk.persist(&stored))
            .await
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e))
            })?
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?;
        let mut st = self.state.write().expect("state lock poisoned");
        st.last_applied = meta.last_log_id;
        st.last_membership = meta.last_membership.clone();
        st.inventory = Arc::new(inventory);
        if let Some(sink) = &st.serving {
            let mut delta = ServingDelta::full(&st.inventory);
            delta.applied = st.last_applied.map(|l| l.index);
            sink(delta);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let stored = self
            .load_snapshot()
            .map_err(|e| StorageIOError::read_snapshot(None, e))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// What `recover --force-single-node` did.
#[derive(Debug)]
pub struct Recovered {
    pub last_index: Option<u64>,
    /// The commit index this node had learned before: entries after it were kept though
    /// they may never have been committed by the old cluster.
    pub committed_before: Option<u64>,
    pub bundles: usize,
}

/// The newest membership a stopped node's store holds (its log's last membership entry, else
/// the applied one): whom `recover` must check for before it makes this node a cluster alone.
pub fn last_membership(
    path: &Path,
) -> Result<openraft::Membership<u64, crate::raft::NodeInfo>, OpenStoreError> {
    let (_log, sm) = open(path)?;
    let mut membership = sm
        .state
        .read()
        .expect("state lock poisoned")
        .last_membership
        .membership()
        .clone();
    for entry in read_log(&sm.disk.db).map_err(|e| OpenStoreError::Database {
        path: path.display().to_string(),
        detail: e.to_string(),
    })? {
        if let EntryPayload::Membership(m) = entry.payload {
            membership = m;
        }
    }
    Ok(membership)
}

/// Every entry in the log, in order.
fn read_log(db: &Database) -> Result<Vec<Entry>, AnyError> {
    let tx = db.begin_read().map_err(any)?;
    let table = tx.open_table(LOGS).map_err(any)?;
    let mut out = Vec::new();
    for item in table.iter().map_err(any)? {
        let (_, v) = item.map_err(any)?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Break-glass: rewrites the store so this node is the only voter, keeping every entry it
/// holds. Entries in its log are treated as committed (as a newly elected leader would);
/// the inventory is rebuilt from the snapshot plus the log, written as a new snapshot whose
/// membership is `{node_id}`, and the log is emptied behind it. The node must not be running.
pub fn force_single_node(
    path: &Path,
    node_id: u64,
    info: crate::raft::NodeInfo,
) -> Result<Recovered, OpenStoreError> {
    let fail = |e: &dyn std::fmt::Display| OpenStoreError::Database {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let (_log, sm) = open(path)?;
    let db = sm.disk.db.clone();
    let (mut last, mut inventory, mut members) = {
        let st = sm.state.read().expect("state lock poisoned");
        (
            st.last_applied,
            (*st.inventory).clone(),
            member_certs(st.last_membership.membership()),
        )
    };
    let entries = read_log(&db).map_err(|e| fail(&e))?;
    let committed_before: Option<LogId> = meta_get::<Option<LogId>>(&db, KEY_COMMITTED)
        .map_err(|e| fail(&e))?
        .flatten();
    for entry in entries {
        if last.is_some_and(|l| entry.log_id.index <= l.index) {
            continue;
        }
        match entry.payload {
            EntryPayload::Normal(ref req) => {
                let _refusal_is_audited = apply(&mut inventory, req);
            }
            EntryPayload::Membership(ref m) => {
                let after = member_certs(m);
                if inventory
                    .features
                    .contains(&crate::inventory::Feature::RevokeRemovedMembers)
                {
                    crate::inventory::revoke_removed(&mut inventory, &members, &after);
                }
                members = after;
            }
            EntryPayload::Blank => {}
        }
        last = Some(entry.log_id);
    }
    // Regression (issue 22): an empty store used to be "recovered" into a snapshot of
    // nothing with a last-purged id that `open` could not read back.
    if last.is_none() {
        return Err(OpenStoreError::NothingToRecover {
            path: path.display().to_string(),
        });
    }
    let vote: Option<Vote> = meta_get(&db, KEY_VOTE).map_err(|e| fail(&e))?;
    let term = vote
        .map(|v| v.leader_id().term)
        .unwrap_or(0)
        .max(last.map(|l| l.leader_id.term).unwrap_or(0));
    let membership = openraft::Membership::new(
        vec![[node_id].into_iter().collect()],
        std::collections::BTreeMap::from([(node_id, info)]),
    );
    // Every other member is dropped here: their certificates are revoked like any removal
    // (this node's own is pinned again from its certificate when it starts).
    let kept: Vec<(u64, String)> = members
        .iter()
        .filter(|(id, _)| *id == node_id)
        .cloned()
        .collect();
    // This node alone is the cluster now, so every member runs this build: the feature is
    // on from here.
    inventory
        .features
        .insert(crate::inventory::Feature::RevokeRemovedMembers);
    crate::inventory::revoke_removed(&mut inventory, &members, &kept);
    inventory.epoch += 1;
    let meta = SnapshotMeta {
        last_log_id: last,
        last_membership: StoredMembership::new(last, membership),
        snapshot_id: format!("recovered-{}", last.map(|l| l.index).unwrap_or(0)),
    };
    let stored = StoredSnapshot {
        meta,
        data: encode_snapshot(&inventory),
    };
    // The snapshot first: until the log is emptied below, the log still agrees with it.
    write_snapshot_file(&sm.disk.path, &stored).map_err(|e| fail(&e))?;
    let tx = db.begin_write().map_err(|e| fail(&e))?;
    {
        let mut table = tx.open_table(LOGS).map_err(|e| fail(&e))?;
        table.retain(|_, _| false).map_err(|e| fail(&e))?;
        let mut m = tx.open_table(META).map_err(|e| fail(&e))?;
        m.remove(KEY_SNAPSHOT).map_err(|e| fail(&e))?;
        m.insert(KEY_LAST_PURGED, encode(&last).as_slice())
            .map_err(|e| fail(&e))?;
        m.insert(KEY_COMMITTED, encode(&last).as_slice())
            .map_err(|e| fail(&e))?;
        m.insert(KEY_VOTE, encode(&Vote::new(term, node_id)).as_slice())
            .map_err(|e| fail(&e))?;
    }
    tx.commit().map_err(|e| fail(&e))?;
    Ok(Recovered {
        last_index: last.map(|l| l.index),
        committed_before: committed_before.map(|l| l.index),
        bundles: inventory.bundles.len(),
    })
}

/// `(node id, certificate SHA-256)` of each member of `m` whose certificate is pinned.
fn member_certs(m: &openraft::Membership<u64, crate::raft::NodeInfo>) -> Vec<(u64, String)> {
    m.nodes()
        .filter_map(|(id, n)| n.cert_sha256.clone().map(|sha| (*id, sha)))
        .collect()
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::*;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().expect("temp dir");
            let (log, sm) = open(&dir.path().join("raft.redb")).expect("open store");
            // The suite purges logs with no snapshot at all: it checks openraft's log
            // contract, so the gate admits every purge here (it is tested below).
            sm.disk.gate.lock().unwrap().durable = Some(log_id(u64::MAX, u64::MAX));
            Ok((dir, log, sm))
        }
    }

    /// A temp dir with the store's path in it, and a runtime to drive the store.
    fn store_dir() -> (tempfile::TempDir, PathBuf, tokio::runtime::Runtime) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        (dir, path, rt)
    }

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(term, 1), index)
    }

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Blank,
        }
    }

    /// A store with entries 1..=10 in its log, 1..=5 applied and in a snapshot on disk, and
    /// 8 saved as committed: a follower that is behind when a snapshot up to 20 arrives.
    async fn follower_behind(path: &Path) -> (LogStore, StateMachineStore) {
        let (mut log, mut sm) = open(path).unwrap();
        for i in 1..=10 {
            append_one(&log, blank(i));
        }
        sm.apply((1..=5).map(blank)).await.unwrap();
        sm.build_snapshot().await.unwrap();
        log.purge(log_id(1, 5)).await.unwrap();
        log.save_committed(Some(log_id(1, 8))).await.unwrap();
        (log, sm)
    }

    /// Appends as `append` does (openraft's flush callback cannot be made outside it).
    fn append_one(log: &LogStore, entry: Entry) {
        let write = || -> Result<(), AnyError> {
            let tx = log.db.begin_write().map_err(any)?;
            {
                let mut table = tx.open_table(LOGS).map_err(any)?;
                table
                    .insert(entry.log_id.index, encode(&entry).as_slice())
                    .map_err(any)?;
            }
            tx.commit().map_err(any)
        };
        write().unwrap();
    }

    async fn purged(log: &mut LogStore) -> Option<u64> {
        log.get_log_state()
            .await
            .unwrap()
            .last_purged_log_id
            .map(|l| l.index)
    }

    /// Regression: openraft 0.9 purges a follower's log up to a received snapshot as soon
    /// as the install is queued, before the snapshot is written. A `kill -9` in between
    /// (the loopback pair suite hit it) left the log purged to 20 with the snapshot at 5 on
    /// disk, and the node failed to start: "Failed to get log entries, expected index: [6,
    /// 9)". The purge now waits for the snapshot, and the restart finds what it re-applies.
    #[test]
    fn a_purge_past_the_snapshot_on_disk_waits_for_it_so_a_crash_mid_install_restarts() {
        let (_dir, path, rt) = store_dir();
        rt.block_on(async {
            let (mut log, sm) = follower_behind(&path).await;
            // openraft's order on a received snapshot: install queued, then purge.
            log.purge(log_id(1, 20)).await.unwrap();
            assert_eq!(
                purged(&mut log).await,
                Some(5),
                "purged only to the snapshot"
            );
            drop((log, sm)); // the crash, before the install wrote anything

            let (mut log, mut sm) = open(&path).unwrap();
            openraft::StorageHelper::new(&mut log, &mut sm)
                .get_initial_state()
                .await
                .expect("the node restarts: entries 6..=8 are re-applied");
            assert_eq!(sm.last_applied().map(|l| l.index), Some(8));
        });
    }

    /// Once the snapshot is on disk, the purge openraft asked for is carried out, before
    /// the install returns (so new entries never leave a hole behind kept ones).
    #[test]
    fn a_deferred_purge_is_done_when_the_installed_snapshot_is_on_disk() {
        let (_dir, path, rt) = store_dir();
        rt.block_on(async {
            let (mut log, mut sm) = follower_behind(&path).await;
            log.purge(log_id(1, 20)).await.unwrap();
            let meta = SnapshotMeta {
                last_log_id: Some(log_id(1, 20)),
                last_membership: StoredMembership::default(),
                snapshot_id: "t-20".into(),
            };
            let data = encode_snapshot(&Inventory::default());
            sm.install_snapshot(&meta, Box::new(Cursor::new(data)))
                .await
                .unwrap();
            assert_eq!(purged(&mut log).await, Some(20));
            assert!(
                log.try_get_log_entries(0..=20).await.unwrap().is_empty(),
                "every entry the snapshot covers is gone"
            );
            drop((log, sm));
            let (mut log, sm) = open(&path).unwrap();
            assert_eq!(sm.last_applied().map(|l| l.index), Some(20));
            assert_eq!(purged(&mut log).await, Some(20));
        });
    }

    /// A snapshot build that read the state before an install and finishes after it does
    /// not put its older snapshot on disk over the installed one (openraft runs builds in a
    /// task of their own, beside the install).
    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one_on_disk() {
        let (_dir, path, rt) = store_dir();
        rt.block_on(async {
            let (_log, mut sm) = follower_behind(&path).await;
            let snapshot = |index| StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: Some(log_id(1, index)),
                    last_membership: StoredMembership::default(),
                    snapshot_id: format!("t-{index}"),
                },
                data: encode_snapshot(&Inventory::default()),
            };
            let installed = snapshot(20);
            sm.install_snapshot(&installed.meta, Box::new(Cursor::new(installed.data)))
                .await
                .unwrap();
            sm.disk.persist(&snapshot(12)).unwrap();
            let on_disk = sm.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(on_disk.meta.last_log_id.map(|l| l.index), Some(20));
        });
    }

    /// A data dir left by the old behaviour (log purged past its snapshot) is refused at
    /// open with the indexes and what to do, instead of starting a state machine that
    /// would silently miss the entries in between.
    #[test]
    fn a_store_purged_past_its_snapshot_is_refused_with_the_next_step() {
        let (_dir, path, rt) = store_dir();
        rt.block_on(async {
            let (log, sm) = follower_behind(&path).await;
            purge_log(&log.db, log_id(1, 20)).unwrap(); // past the gate, as before
            drop((log, sm));
        });
        let err = open(&path).err().expect("refused");
        assert!(
            matches!(
                err,
                OpenStoreError::PurgedPastSnapshot {
                    purged: 20,
                    snapshot: 5,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("certraft cluster remove") && text.contains("join it again"),
            "{text}"
        );
    }

    /// Regression (issue 22, third reproduction): an entry whose request version this build
    /// does not know stops the state machine with an error that says to upgrade, instead of
    /// being applied as a refusal (a no-op here, a change on upgraded nodes: divergence).
    #[test]
    fn a_newer_entry_version_stops_apply_instead_of_being_skipped() {
        let (_dir, path, rt) = store_dir();
        rt.block_on(async {
            let (_log, mut sm) = open(&path).unwrap();
            sm.apply([blank(1)]).await.unwrap();
            let newer = Entry {
                log_id: log_id(1, 2),
                payload: EntryPayload::Normal(crate::inventory::Request {
                    version: crate::inventory::REQUEST_VERSION + 1,
                    actor: "admin".into(),
                    at: 0,
                    command: crate::inventory::Command::SetDefault { name: "x".into() },
                }),
            };
            let err = sm.apply([newer]).await.unwrap_err().to_string();
            assert!(err.contains("upgrade certraft-node"), "{err}");
            let st = sm.state.read().unwrap();
            assert_eq!(
                st.last_applied,
                Some(log_id(1, 1)),
                "the entry counts as applied"
            );
            assert!(
                st.inventory.audit.is_empty(),
                "the entry was applied as a refusal"
            );
        });
    }

    /// Regression (issue 22): `recover --force-single-node` on a store that holds nothing
    /// says so and leaves the store as it was (it used to write an unreadable `last_purged`).
    #[test]
    fn recovering_an_empty_store_changes_nothing() {
        let (_dir, path, _rt) = store_dir();
        drop(open(&path).unwrap());
        let err = force_single_node(&path, 1, crate::raft::NodeInfo::default()).unwrap_err();
        assert!(
            matches!(err, OpenStoreError::NothingToRecover { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("nothing to recover"));
        assert!(!snapshot_path(&path).exists(), "a snapshot was written");
        let (log, sm) = open(&path).expect("the store still opens");
        assert!(sm.state.read().unwrap().last_applied.is_none());
        drop((log, sm));
    }

    /// openraft's own storage conformance suite passes against the redb store.
    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(Builder).expect("openraft storage suite");
    }

    /// State survives a reopen: the snapshot is loaded back, the vote and log are kept.
    #[test]
    fn reopen_keeps_snapshot_vote_and_log() {
        use crate::inventory::{Command, Request, REQUEST_VERSION};
        let (_dir, path, rt) = store_dir();
        rt.block_on(async {
            let (mut log, mut sm) = open(&path).unwrap();
            let vote = Vote::new(3, 1);
            log.save_vote(&vote).await.unwrap();
            let req = Request {
                version: REQUEST_VERSION,
                actor: "t".into(),
                at: 1,
                command: Command::SetDefault { name: "x".into() },
            };
            let entry = Entry {
                log_id: LogId::new(openraft::CommittedLeaderId::new(3, 1), 1),
                payload: EntryPayload::Normal(req),
            };
            sm.apply([entry.clone()]).await.unwrap();
            let built = sm.build_snapshot().await.unwrap();
            drop((log, sm));

            let (mut log, sm) = open(&path).unwrap();
            assert_eq!(log.read_vote().await.unwrap(), Some(vote));
            assert_eq!(sm.last_applied(), Some(entry.log_id));
            assert_eq!(
                sm.inventory().audit.len(),
                1,
                "inventory restored from the snapshot"
            );
            assert_eq!(built.meta.last_log_id, Some(entry.log_id));
        });
    }
}
