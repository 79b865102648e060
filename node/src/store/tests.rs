//! The store against openraft's conformance suite, and its own regressions.

use openraft::testing::{StoreBuilder, Suite};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{AnyError, EntryPayload, RaftLogReader, RaftSnapshotBuilder};

use crate::inventory::codec::encode_snapshot;
use crate::inventory::Inventory;
use crate::raft::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, Vote};

use super::sm::*;
use super::snapshot::*;
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
