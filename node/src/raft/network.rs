//! Raft RPC over HTTPS with mutual TLS on the cluster port.
//!
//! Three routes, `POST /raft/{append,vote,snapshot}`, each a CBOR body in and a CBOR
//! `Result<response, RaftError>` out. Snapshots go in chunks (openraft's `Chunked` transport,
//! `snapshot_max_chunk_size` bytes each), so a large inventory never needs one huge request.
//! Only the server's Raft handler is behind these routes; the peer's node id was checked
//! against the membership during the handshake (see [`super::tls`]).

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::tls::{cluster_client_config, NodeIdentity};
use super::{NodeId, NodeInfo, Raft, TypeConfig};

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

/// Why a member's proposal to the leader failed.
#[derive(Debug, thiserror::Error, Serialize, serde::Deserialize)]
pub enum ProposeError {
    #[error("node {0} is not the leader")]
    NotLeader(u64),
    #[error("only admin tokens may be proposed over the cluster port")]
    NotAllowed,
    #[error("{0}")]
    Failed(String),
}

impl PeerClient {
    /// Asks the leader to commit `req` (only `CreateAdminToken` is accepted: the offline
    /// `admin-token` of a follower).
    pub async fn propose(&self, req: &crate::inventory::Request) -> Result<(), String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let resp = client
            .post(format!("{}/propose", self.base))
            .header("content-type", CBOR)
            .timeout(std::time::Duration::from_secs(10))
            .body(to_cbor(req))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        let result: Result<(), ProposeError> =
            ciborium::from_reader(&body[..]).map_err(|e| e.to_string())?;
        result.map_err(|e| e.to_string())
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

/// The cluster port's router: Raft's three RPCs, handed to the local Raft.
pub fn router(raft: Raft) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/propose", post(propose))
        .with_state(raft)
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
    State(raft): State<Raft>,
    Cbor(req): Cbor<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    cbor_reply(&raft.append_entries(req).await)
}

async fn vote(State(raft): State<Raft>, Cbor(req): Cbor<VoteRequest<NodeId>>) -> Response {
    cbor_reply(&raft.vote(req).await)
}

async fn snapshot(
    State(raft): State<Raft>,
    Cbor(req): Cbor<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    cbor_reply(&raft.install_snapshot(req).await)
}

async fn propose(State(raft): State<Raft>, Cbor(req): Cbor<crate::inventory::Request>) -> Response {
    if !matches!(
        req.command,
        crate::inventory::Command::CreateAdminToken { .. }
    ) {
        return cbor_reply(&Err::<(), _>(ProposeError::NotAllowed));
    }
    let result = match raft.client_write(req).await {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader(f.leader_id.unwrap_or(0)))
        }
        Err(e) => Err(ProposeError::Failed(e.to_string())),
    };
    cbor_reply(&result)
}
