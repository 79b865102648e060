//! The Raft log, vote and committed id in redb (`LogStore`): every write fsynced before
//! openraft hears of it; purges never past the snapshot on disk (`PurgeGate`).

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, RaftLogReader, StorageIOError};
use redb::{Database, ReadableTable};

use crate::raft::{Entry, LogId, StorageError, TypeConfig, Vote};

use super::*;

/// The Raft log, vote and committed id.
#[derive(Clone)]
pub struct LogStore {
    pub(super) db: Arc<Database>,
    pub(super) gate: Arc<Mutex<PurgeGate>>,
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
