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
