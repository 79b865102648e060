//! Raft RPC over HTTPS with mutual TLS on the cluster port.
//!
//! Three routes, `POST /raft/{append,vote,snapshot}`, each a CBOR body in and a CBOR
//! `Result<response, RaftError>` out. Snapshots go in chunks (openraft's `Chunked` transport,
//! `snapshot_max_chunk_size` bytes each), so a large inventory never needs one huge request.
//! Only the server's Raft handler is behind these routes; the peer's node id was checked
//! against the membership during the handshake (see [`super::tls`]). Two more carry what a
//! voter may ask the leader to commit for its operator: `POST /raft/propose` (an admin token
//! made offline) and `POST /raft/console-reset` (`certraft-node console-reset`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::tls::{cluster_client_config, Members, NodeIdentity};
use super::{NodeId, NodeInfo, Raft, TypeConfig};
use crate::http::PeerNode;

mod asks;

use asks::{clear_console, propose, record_failures};
pub use asks::{
    AdminTokenProposal, ConsoleResetHook, FailureReport, ProposeError, FAILURE_REPORT_EVERY,
    MAX_FAILURE_REPORT,
};

const CBOR: &str = "application/cbor";

fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing owned Raft messages into a Vec cannot fail.
    ciborium::into_writer(value, &mut out).expect("CBOR encodes Raft messages into a Vec");
    out
}

#[derive(Debug)]
struct Msg(String);
impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Msg {}

/// Creates one client per peer; openraft keeps it for the replication stream.
#[derive(Clone)]
pub struct Network {
    ca_der: Arc<Vec<u8>>,
    me: Arc<NodeIdentity>,
}

impl Network {
    pub fn new(ca_der: Arc<Vec<u8>>, me: Arc<NodeIdentity>) -> Self {
        Network { ca_der, me }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        let client = cluster_client_config(&self.ca_der, &self.me, target)
            .map_err(|e| e.to_string())
            .and_then(|tls| {
                reqwest::Client::builder()
                    .use_preconfigured_tls(tls)
                    .tcp_nodelay(true)
                    .pool_max_idle_per_host(4)
                    .build()
                    .map_err(|e| e.to_string())
            });
        PeerClient {
            target,
            base: format!("https://{}/raft", node.cluster_addr),
            client,
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    base: String,
    client: Result<reqwest::Client, String>,
}

/// A member that cannot be reached (starting, stopped, cut off) is logged at WARN, once in 30
/// seconds at most: openraft's own per-retry ERROR lines are filtered out of the default log
/// (`openraft::replication=off` in `certraft-node`'s default filter), so a normal join, whose
/// new member is not listening yet for a moment, logs no ERROR.
static UNREACHABLE_LOG: crate::log_limit::RateLimitedLog =
    crate::log_limit::RateLimitedLog::new(std::time::Duration::from_secs(30));

/// Refusals by members are logged once a minute at most (a refused node retries often).
static REFUSED_LOG: crate::log_limit::RateLimitedLog =
    crate::log_limit::RateLimitedLog::new(std::time::Duration::from_secs(60));

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        route: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self
            .client
            .as_ref()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&Msg(e.clone()))))?;
        let url = format!("{}/{route}", self.base);
        let resp = client
            .post(&url)
            .header("content-type", CBOR)
            .timeout(option.hard_ttl())
            .body(to_cbor(req))
            .send()
            .await
            .map_err(|e| {
                // reqwest's own text is "error sending request"; the cause is in the chain.
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                let msg = Msg(format!("node {} at {url}: {text}", self.target));
                if let Some(suppressed) = UNREACHABLE_LOG.admit(std::time::Instant::now()) {
                    tracing::warn!(
                        peer = self.target,
                        suppressed,
                        "cannot reach node {} at {url}: {text}; retrying (it may be starting, stopped or cut off)",
                        self.target
                    );
                }
                if e.is_connect() || e.is_timeout() {
                    RPCError::Unreachable(Unreachable::new(&msg))
                } else {
                    RPCError::Network(NetworkError::new(&msg))
                }
            })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body).into_owned();
            if status == StatusCode::FORBIDDEN {
                // A member refusing this node is what an operator must see (a removed
                // node restarted with its old data dir is told here how to rejoin).
                if let Some(suppressed) = REFUSED_LOG.admit(std::time::Instant::now()) {
                    tracing::error!(
                        peer = self.target,
                        suppressed,
                        "node {} refuses this node: {}",
                        self.target,
                        crate::inventory::escape_controls(&text)
                    );
                }
            }
            return Err(RPCError::Network(NetworkError::new(&Msg(format!(
                "node {} answered {status}: {text}",
                self.target
            )))));
        }
        let result: Result<Resp, RaftError<NodeId, E>> = ciborium::from_reader(&body[..])
            .map_err(|e| RPCError::Network(NetworkError::new(&Msg(e.to_string()))))?;
        result.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

/// What the cluster port's handlers share.
#[derive(Clone)]
struct Port {
    raft: Raft,
    members: Members,
    console_reset: ConsoleResetHook,
    /// Bytes received so far per snapshot being installed (its id): a chunk must continue
    /// what arrived, so a peer cannot make this node allocate up to an offset it names.
    snapshots: Arc<Mutex<HashMap<String, u64>>>,
    /// When each member's last failure report was recorded ([`FAILURE_REPORT_EVERY`]).
    reports: Arc<Mutex<HashMap<u64, std::time::Instant>>>,
}

/// The largest snapshot this node receives (100,000 bundles are about 150 MB).
const MAX_SNAPSHOT_BYTES: u64 = 2 << 30;

/// The cluster port's router: Raft's three RPCs, handed to the local Raft, and the leader's
/// `propose` for offline-made admin tokens. Every request is authorised on its own, not
/// only at the handshake: the peer must be a current member presenting the certificate the
/// membership pins ([`authorize`]); Raft RPCs must come from a voter speaking for itself.
pub fn router(raft: Raft, members: Members, console_reset: ConsoleResetHook) -> Router {
    let port = Port {
        raft,
        members,
        console_reset,
        snapshots: Arc::default(),
        reports: Arc::default(),
    };
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/propose", post(propose))
        .route("/raft/failures", post(record_failures))
        .route("/raft/console-reset", post(clear_console))
        .route_layer(axum::middleware::from_fn_with_state(
            port.clone(),
            authorize,
        ))
        .with_state(port)
}

fn forbidden(text: String) -> Response {
    (StatusCode::FORBIDDEN, text).into_response()
}

/// Every request: the connection's certificate must still belong to a current member.
async fn authorize(
    State(port): State<Port>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match req.extensions().get::<PeerNode>().copied() {
        Some(p) if port.members.admits_sha256(p.id, &p.cert_sha256) => next.run(req).await,
        Some(p) if port.members.revocation(&p.cert_sha256).is_some() => {
            forbidden(port.members.revocation(&p.cert_sha256).unwrap_or_default())
        }
        Some(p) => forbidden(format!(
            "node {} is not a current member of this cluster (or this is not the certificate it was issued)",
            p.id
        )),
        None => forbidden("the client certificate names no certraft node".into()),
    }
}

/// A Raft RPC must come from a voter, on its own behalf: a learner (a traffic node, often in
/// a less trusted site) never sends one, and no member speaks for another.
fn check_sender(
    port: &Port,
    peer: PeerNode,
    claimed: Option<NodeId>,
    what: &str,
) -> Option<Response> {
    if !port.members.is_voter(peer.id) {
        return Some(forbidden(format!(
            "node {} is not a voter; only voters send {what}",
            peer.id
        )));
    }
    if claimed != Some(peer.id) {
        return Some(forbidden(format!(
            "node {} sent {what} on behalf of node {claimed:?}",
            peer.id
        )));
    }
    None
}

/// The request body as a Raft message, or the 400 answer naming why it is not one.
struct Cbor<T>(T);

impl<T: DeserializeOwned, St: Send + Sync> axum::extract::FromRequest<St> for Cbor<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &St) -> Result<Self, Response> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        ciborium::from_reader(&body[..]).map(Cbor).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("undecodable Raft message: {e}"),
            )
                .into_response()
        })
    }
}

fn cbor_reply<T: Serialize>(value: &T) -> Response {
    ([("content-type", CBOR)], to_cbor(value)).into_response()
}

async fn append(
    State(port): State<Port>,
    Extension(peer): Extension<PeerNode>,
    Cbor(req): Cbor<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    if let Some(refused) = check_sender(&port, peer, req.vote.leader_id().voted_for(), "entries") {
        return refused;
    }
    cbor_reply(&port.raft.append_entries(req).await)
}

async fn vote(
    State(port): State<Port>,
    Extension(peer): Extension<PeerNode>,
    Cbor(req): Cbor<VoteRequest<NodeId>>,
) -> Response {
    if let Some(refused) = check_sender(
        &port,
        peer,
        req.vote.leader_id().voted_for(),
        "vote requests",
    ) {
        return refused;
    }
    cbor_reply(&port.raft.vote(req).await)
}

async fn snapshot(
    State(port): State<Port>,
    Extension(peer): Extension<PeerNode>,
    Cbor(req): Cbor<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    if let Some(refused) = check_sender(&port, peer, req.vote.leader_id().voted_for(), "snapshots")
    {
        return refused;
    }
    let id = req.meta.snapshot_id.clone();
    let end = req.offset.saturating_add(req.data.len() as u64);
    {
        // Held for a map update only.
        let mut received = port.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        let have = if req.offset == 0 {
            0
        } else {
            received.get(&id).copied().unwrap_or(0)
        };
        if req.offset > have || end > MAX_SNAPSHOT_BYTES {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "snapshot {id}: a chunk at offset {} (+{} bytes) does not continue the {have} bytes received (at most {MAX_SNAPSHOT_BYTES})",
                    req.offset,
                    req.data.len()
                ),
            )
                .into_response();
        }
        if req.offset == 0 {
            // One install at a time: a new snapshot replaces what was being received.
            received.clear();
        }
        if req.done {
            received.remove(&id);
        } else {
            received.insert(id, have.max(end));
        }
    }
    cbor_reply(&port.raft.install_snapshot(req).await)
}
