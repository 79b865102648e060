//! Raft wiring: the openraft type configuration and what a member is.
//!
//! - [`tls`]: mutual TLS on the cluster port, admitting only current members' certificates.
//! - [`network`]: Raft RPC over that TLS (client and server side).

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod network;
pub mod tls;

use crate::inventory::{NodeRole, Request, Response};

/// How to reach a member, carried in the Raft membership config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `host:port` of the cluster (Raft RPC, mutual TLS) listener.
    pub cluster_addr: String,
    /// `host:port` of the admin HTTPS listener.
    pub admin_addr: String,
    /// What the node joined as; witnesses vote but serve no TLS.
    pub role: Option<NodeRole>,
    /// SHA-256 (hex) of the node certificate the cluster issued to this member: the cluster
    /// port admits exactly that certificate, so a certificate issued earlier for the same id
    /// (or forged with a CA key) is refused. Absent only in memberships written before it
    /// existed, where the id alone is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster {} admin {}", self.cluster_addr, self.admin_addr)
    }
}

/// What applying one log entry returned: the inventory's response for a command entry,
/// `None` for Raft's own blank and membership entries.
pub type Applied = Option<Response>;

openraft::declare_raft_types!(
    /// certraft's Raft types: inventory requests in, `apply` responses out.
    pub TypeConfig:
        D = Request,
        R = Applied,
        NodeId = u64,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;

/// The leader's commit index: the highest log index that a majority of every voter
/// configuration (two of them during a joint change) holds, from each voter's matched index
/// (`matched`, the leader's own last log index included). `None` when no majority holds any.
pub fn committed_index(
    configs: &[std::collections::BTreeSet<NodeId>],
    matched: impl Fn(NodeId) -> Option<u64>,
) -> Option<u64> {
    configs
        .iter()
        .map(|voters| {
            let mut held: Vec<Option<u64>> = voters.iter().map(|v| matched(*v)).collect();
            // Descending: the majority-th highest is held by a majority.
            held.sort_by(|a, b| b.cmp(a));
            held.get(voters.len() / 2).copied().flatten()
        })
        .min()
        .flatten()
}

/// What an operator reads when this node's Raft core has stopped: the cause (openraft's
/// fatal error, e.g. a storage write that failed with "No space left on device") and what
/// to do. The node keeps serving the certificates it had; it takes no part in the cluster
/// until restarted.
pub fn raft_stopped(node_id: u64, fatal: &openraft::error::Fatal<u64>) -> String {
    format!(
        "the Raft core of node {node_id} stopped: {}; this node keeps serving the certificates it had but takes no writes and no part in the cluster. Fix the cause (free space in the data dir if the disk is full), then restart the node: it catches up from the others",
        describe_fatal(fatal)
    )
}

/// openraft's fatal error without its debug dump of the snapshot or log id involved: the
/// operation ("Write Snapshot", "Write Logs") and the cause from the OS.
fn describe_fatal(fatal: &openraft::error::Fatal<u64>) -> String {
    let openraft::error::Fatal::StorageError(e) = fatal else {
        return fatal.to_string();
    };
    let Some(io) = e.clone().into_io() else {
        return e.to_string();
    };
    let text = io.to_string();
    let operation = text
        .strip_prefix("when ")
        .and_then(|t| t.split(['(', ':']).next())
        .map(str::trim)
        .unwrap_or("an operation");
    match std::error::Error::source(&io) {
        Some(cause) => format!("storage failed ({operation}): {cause}"),
        None => format!("storage failed: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{committed_index, raft_stopped};
    use openraft::{AnyError, StorageIOError};

    /// Regression (issue 22): `cluster status` showed the leader's last applied index as the
    /// commit index. The commit index is what a majority of each voter configuration holds.
    #[test]
    fn the_commit_index_is_what_a_majority_holds() {
        let set = |ids: &[u64]| ids.iter().copied().collect::<BTreeSet<u64>>();
        for (configs, matched, want) in [
            (vec![set(&[1])], vec![(1, 7)], Some(7)),
            (vec![set(&[1, 2, 3])], vec![(1, 9), (2, 5), (3, 3)], Some(5)),
            (vec![set(&[1, 2, 3])], vec![(1, 9)], None),
            (vec![set(&[1, 2])], vec![(1, 9), (2, 4)], Some(4)),
            (
                vec![set(&[1, 2, 3, 4, 5])],
                vec![(1, 9), (2, 8), (3, 2), (4, 1)],
                Some(2),
            ),
            // Joint: the old config has it at 8, the new one only at 6.
            (
                vec![set(&[1, 2, 3]), set(&[1, 4, 5])],
                vec![(1, 9), (2, 8), (3, 8), (4, 6)],
                Some(6),
            ),
        ] {
            let m: BTreeMap<u64, u64> = matched.iter().copied().collect();
            assert_eq!(
                committed_index(&configs, |id| m.get(&id).copied()),
                want,
                "{configs:?} {matched:?}"
            );
        }
    }

    #[test]
    fn a_full_disk_is_reported_by_operation_and_os_error_without_debug_dumps() {
        let enospc = std::io::Error::from_raw_os_error(28);
        let signature = openraft::storage::SnapshotSignature {
            last_log_id: None,
            last_membership_log_id: None,
            snapshot_id: "T4-N3-850-16".into(),
        };
        let fatal = openraft::error::Fatal::StorageError(
            StorageIOError::write_snapshot(Some(signature), AnyError::new(&enospc)).into(),
        );
        let text = raft_stopped(2, &fatal);
        assert!(
            text.starts_with("the Raft core of node 2 stopped: storage failed (Write Snapshot): "),
            "{text}"
        );
        assert!(
            text.contains("No space left on device (os error 28)"),
            "{text}"
        );
        assert!(!text.contains("SnapshotSignature"), "{text}");
        assert!(text.contains("restart the node"), "{text}");

        let logs = openraft::error::Fatal::StorageError(
            StorageIOError::write_logs(AnyError::new(&enospc)).into(),
        );
        assert!(
            raft_stopped(1, &logs).contains("storage failed (Write Logs): "),
            "{}",
            raft_stopped(1, &logs)
        );
    }
}
