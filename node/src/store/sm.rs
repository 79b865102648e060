//! The state machine (`StateMachineStore`): the inventory in memory, `apply` of each
//! committed entry, the serving plane's deltas, snapshots built and installed, and the
//! state digest.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};

use crate::inventory::codec::{decode_snapshot, encode_snapshot};
use crate::inventory::{apply, Inventory};
use crate::raft::{
    Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

use super::*;

#[derive(Default)]
pub(super) struct SmState {
    pub(super) last_applied: Option<LogId>,
    pub(super) last_membership: StoredMembership,
    pub(super) inventory: Arc<Inventory>,
    /// Where applied changes go for the serving index: called inside `apply`, under the
    /// state lock, so "applied" implies "served".
    pub(super) serving: Option<ServingSink>,
}

/// Receives each applied batch's [`ServingDelta`] synchronously.
pub type ServingSink = Box<dyn Fn(ServingDelta) + Send + Sync>;

/// An applied index and the digest of the state at it.
pub type StateDigest = (Option<u64>, [u8; 32]);

/// The state machine: the inventory in memory, snapshots in a file beside redb.
#[derive(Clone)]
pub struct StateMachineStore {
    pub(super) state: Arc<RwLock<SmState>>,
    pub(super) snapshot_seq: Arc<AtomicU64>,
    pub(super) disk: Arc<SnapshotDisk>,
    /// The last digest computed, with the applied index it is for.
    pub(super) digest: Arc<Mutex<Option<StateDigest>>>,
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

    pub(super) fn load_snapshot(&self) -> Result<Option<StoredSnapshot>, AnyError> {
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
        let mut challenges_changed = false;
        // What the admin port presents: compared once per batch (a setting, a bundle id).
        let console_before = st.inventory.console_key();
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
                    challenges_changed |= resp.is_ok() && req.command.changes_challenges();
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
            if challenges_changed {
                delta.challenges = Some(st.inventory.issuance.challenges());
            }
            if st.inventory.console_key() != console_before {
                delta.console = Some(st.inventory.console_served());
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

/// `(node id, certificate SHA-256)` of each member of `m` whose certificate is pinned.
pub(super) fn member_certs(
    m: &openraft::Membership<u64, crate::raft::NodeInfo>,
) -> Vec<(u64, String)> {
    m.nodes()
        .filter_map(|(id, n)| n.cert_sha256.clone().map(|sha| (*id, sha)))
        .collect()
}
