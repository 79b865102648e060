//! Break-glass, offline: `recover --force-single-node` rewrites a stopped node's store into a
//! one-node cluster, and what it must know first (the last membership the store holds).

use std::fmt::Debug;
use std::path::Path;

use openraft::{AnyError, EntryPayload};
use redb::{Database, ReadableTable};

use crate::inventory::apply;
use crate::inventory::codec::encode_snapshot;
use crate::raft::{Entry, LogId, SnapshotMeta, StoredMembership, Vote};

use super::*;

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
pub(super) fn read_log(db: &Database) -> Result<Vec<Entry>, AnyError> {
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
