//! The admin API router (SPEC §5) and its handlers.
//!
//! Every `/api/v1` route except `GET /trust` and `POST /cluster/join` needs a bearer token.
//! A node that is not the leader checks that a token is present, then proxies the request to
//! the leader's admin port (marked `x-certraft-forwarded`, so a request hops at most once);
//! handlers therefore always run on the leader: writes go straight to `client_write`, reads
//! first pass `ensure_linearizable`. The token itself is checked on the leader against the
//! replicated token hashes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::ChangeMembers;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::auth::{bearer, AuthFailures, FailureKind};
use super::dto::*;
use super::error::AppError;
use crate::bundle::assemble::fmt_time;
use crate::bundle::{
    assemble, export_pem, export_pkcs12, AssembleOptions, Bundle, Keyring, ParsedFile, Passphrase,
    Pkcs12Profile,
};
use crate::clock::unix_now as now;
use crate::config::JoinToken as JoinTokenText;
use crate::datadir::{random_hex, token_hash};
use crate::http::ClientAddr;
use crate::inventory::{
    BundleMeta, BundleStatus, Command, Inventory, JoinToken, NewBundle, NodeRole, Outcome, Request,
    StoredBundle,
};
use crate::pki::ClusterCa;
use crate::raft::{NodeInfo, Raft, TypeConfig};
use crate::store::StateMachineStore;

const FORWARDED: &str = "x-certraft-forwarded";

/// Everything the handlers share.
pub struct AppState {
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub keyring: Arc<Keyring>,
    pub ca: Arc<ClusterCa>,
    pub cluster_id: String,
    pub node_id: u64,
    /// A client of other nodes' admin ports, trusting only the cluster CA.
    pub peers: reqwest::Client,
    /// How long a request may wait for a leader or a commit.
    pub timeout: Duration,
    /// This node's serving plane (none on a witness), for `/metrics`.
    pub serving: Option<Arc<crate::tls::Serving>>,
    /// Failed sign-ins on this node: counted, rate-limited, summarised into the audit log.
    pub failures: AuthFailures,
    /// Bundle parsing and password KDFs run on the blocking pool, this many at a time, so
    /// imports never hold the async workers that serve TLS, `/healthz` and Raft heartbeats.
    pub parsing: tokio::sync::Semaphore,
    /// Request bodies held in memory at once, in KiB.
    pub body_budget: tokio::sync::Semaphore,
}

/// How many imports parse at once (each may run a password KDF for up to a few seconds):
/// half the CPUs this process may use, at least one, so parsing never takes every core from
/// the serve port and the Raft heartbeats.
pub fn parse_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}
/// Files one import or rotation may upload.
pub const MAX_UPLOAD_FILES: usize = 16;
/// The largest request body the admin API reads (a backup to restore, base64 in JSON).
pub const MAX_BODY_BYTES: usize = 16 << 20;
/// Request bodies held at once, in KiB: four of the largest.
pub const BODY_BUDGET_KIB: usize = 4 * (MAX_BODY_BYTES >> 10);
/// To receive a whole request body once its head has arrived.
const BODY_DEADLINE: Duration = Duration::from_secs(30);
/// The largest Raft entry the API proposes. openraft gives each AppendEntries one heartbeat
/// interval to be sent, fsynced and answered, so an entry stays far below a megabyte.
pub const MAX_ENTRY_BYTES: usize = 512 << 10;

type S = Arc<AppState>;

/// What openraft answers a membership change.
type MembershipChange =
    Result<ClientWriteResponse<TypeConfig>, RaftError<u64, ClientWriteError<u64, NodeInfo>>>;

/// Who made a request: the admin token's name.
#[derive(Debug, Clone)]
pub(super) struct Actor(pub(super) String);

pub fn router(state: S) -> Router {
    // Layers run outermost first: the bearer must be present and its source not limited,
    // then the token is checked on this node (a follower never reads the body of, or
    // forwards, a request whose token it does not know), then the body is read within its
    // deadline and byte budget, then the request runs on the leader.
    let authed = Router::new()
        .route("/certs", get(list_certs).post(import))
        .route("/certs/{name}", get(show_cert).delete(remove_cert))
        .route("/certs/{name}/export", post(export))
        .route("/certs/{name}/rotate", post(rotate))
        .route("/default", get(get_default).put(set_default))
        .route("/audit", get(audit))
        .route("/cluster", get(cluster_status))
        .route("/cluster/join-tokens", post(create_join_token))
        .route("/cluster/nodes/{id}", axum::routing::delete(remove_node))
        .route("/backup", post(backup))
        .route("/backup/restore", post(restore))
        .route_layer(middleware::from_fn_with_state(state.clone(), on_leader))
        .route_layer(middleware::from_fn_with_state(state.clone(), read_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), check_token))
        .route_layer(middleware::from_fn(require_bearer));
    let join = Router::new()
        .route("/cluster/join", post(super::join::join))
        .route_layer(middleware::from_fn_with_state(state.clone(), on_leader))
        .route_layer(middleware::from_fn_with_state(state.clone(), read_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), not_limited));
    // Node-local, so not forwarded to the leader; the token is checked here.
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), check_token))
        .route_layer(middleware::from_fn(require_bearer));
    Router::new()
        .merge(metrics)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/trust", get(trust))
        .nest("/api/v1", authed.merge(join))
        .fallback(|| async {
            AppError::NotFound {
                code: "no_such_route",
                message: "no such API route".into(),
                hint: Some("the routes are listed in api/dto.rs and `certraft --help`".into()),
            }
        })
        .layer(middleware::from_fn(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Every error answer is SPEC §5's JSON, including those axum writes itself (a body that is
/// not JSON, a path that does not parse, a method the route does not take).
async fn json_errors(req: axum::extract::Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "no_such_route",
        405 => "method_not_allowed",
        408 => "body_timeout",
        413 => "too_large",
        415 => "unsupported_media_type",
        422 => "invalid_body",
        _ if status.is_server_error() => "internal",
        _ => "refused",
    };
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        message
    };
    let mut out = (
        status,
        Json(ErrorBody {
            error: ApiError {
                code: code.into(),
                message,
                hint: None,
            },
        }),
    )
        .into_response();
    for (name, value) in parts.headers.iter() {
        if name != "content-type" && name != "content-length" {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

fn client_ip(req: &axum::extract::Request) -> std::net::IpAddr {
    req.extensions()
        .get::<ClientAddr>()
        .map(|a| a.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// 429 for a source that failed to sign in too often lately, before anything is checked.
async fn not_limited(State(st): State<S>, req: axum::extract::Request, next: Next) -> Response {
    let ip = client_ip(&req);
    if st.failures.limited(ip, std::time::Instant::now()) {
        return AppError::TooManyFailures(format!(
            "too many failed sign-ins from {ip} in the last {} s; wait, then use a valid token",
            super::auth::WINDOW.as_secs()
        ))
        .into_response();
    }
    next.run(req).await
}

async fn require_bearer(req: axum::extract::Request, next: Next) -> Response {
    if bearer(req.headers()).is_none() {
        return AppError::Unauthorized(
            "this route needs `Authorization: Bearer <admin token>`".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Reads the whole body within [`BODY_DEADLINE`], holding its size from the node's
/// [`BODY_BUDGET_KIB`], so neither a trickled upload nor many large ones can pin memory.
async fn read_body(State(st): State<S>, req: axum::extract::Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY_BYTES) {
        return AppError::TooLarge(format!(
            "the request body is {n} bytes; the admin API reads at most {MAX_BODY_BYTES}"
        ))
        .into_response();
    }
    let kib = declared.unwrap_or(MAX_BODY_BYTES).div_ceil(1024).max(1);
    let permits = u32::try_from(kib).unwrap_or(u32::MAX);
    let Ok(Ok(_held)) = tokio::time::timeout(
        Duration::from_secs(10),
        st.body_budget.acquire_many(permits),
    )
    .await
    else {
        return AppError::NoLeader(
            "this node is busy receiving other large requests; retry shortly".into(),
        )
        .into_response();
    };
    let (parts, body) = req.into_parts();
    let bytes =
        match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_BODY_BYTES)).await
        {
            Err(_) => {
                return AppError::BodyTimeout(format!(
                    "the request body did not arrive within {} s",
                    BODY_DEADLINE.as_secs()
                ))
                .into_response()
            }
            Ok(Err(e)) => return AppError::TooLarge(e.to_string()).into_response(),
            Ok(Ok(b)) => b,
        };
    next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn check_token(State(st): State<S>, mut req: axum::extract::Request, next: Next) -> Response {
    let Some(hash) = bearer(req.headers()).map(token_hash) else {
        return AppError::Unauthorized(
            "this route needs `Authorization: Bearer <admin token>`".into(),
        )
        .into_response();
    };
    let may_wait = !st
        .failures
        .over_limit(client_ip(&req), std::time::Instant::now());
    match st.token_name(&hash, may_wait).await {
        Some(name) => {
            req.extensions_mut().insert(Actor(name));
            next.run(req).await
        }
        // A valid token always passes; a source that keeps failing is told to wait (and
        // costs nothing more: no body is read, nothing is forwarded).
        None if st
            .failures
            .limited(client_ip(&req), std::time::Instant::now()) =>
        {
            AppError::TooManyFailures(format!(
                "too many failed sign-ins from {} in the last {} s; wait, then use a valid token",
                client_ip(&req),
                super::auth::WINDOW.as_secs()
            ))
            .into_response()
        }
        None => {
            st.failures.record(
                FailureKind::AdminToken,
                client_ip(&req),
                std::time::Instant::now(),
            );
            AppError::Unauthorized("the admin token is not valid for this cluster".into())
                .into_response()
        }
    }
}

impl AppState {
    /// The name of the admin token whose secret hashes to `hash`. A follower whose inventory
    /// does not know it yet (a token created a moment ago) waits up to a second for its
    /// applied index to move before saying no, unless `may_wait` is false (a source that
    /// keeps failing gets its answer at once, and holds nothing for that second).
    async fn token_name(&self, hash: &[u8; 32], may_wait: bool) -> Option<String> {
        let lookup = |st: &AppState| {
            // The inventory is released before the handler runs: a reader holding it across
            // the request would make the next apply copy the whole inventory.
            st.sm.inventory().admin_token(hash).map(|t| t.name.clone())
        };
        if let Some(name) = lookup(self) {
            return Some(name);
        }
        let mut rx = self.raft.metrics();
        if !may_wait || rx.borrow().current_leader == Some(self.node_id) {
            return None;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_ok_and(|r| r.is_ok())
        {
            if let Some(name) = lookup(self) {
                return Some(name);
            }
        }
        None
    }

    /// The leader's id and admin address, waiting up to the deadline for one to be known.
    pub(super) async fn leader(
        &self,
        deadline: Instant,
    ) -> Result<(u64, Option<NodeInfo>), AppError> {
        let mut rx = self.raft.metrics();
        loop {
            {
                let m = rx.borrow_and_update();
                if let Err(fatal) = &m.running_state {
                    return Err(AppError::NoLeader(crate::node::raft_stopped(
                        self.node_id,
                        fatal,
                    )));
                }
                if let Some(id) = m.current_leader {
                    let node = m.membership_config.membership().get_node(&id).cloned();
                    return Ok((id, node));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, rx.changed()).await.is_err() || left.is_zero() {
                return Err(AppError::NoLeader(format!(
                    "node {} knows no leader after {:?}",
                    self.node_id, self.timeout
                )));
            }
        }
    }

    /// Commits one request on the leader and returns what `apply` answered.
    pub async fn propose(&self, actor: &str, command: Command) -> Result<(Outcome, u64), AppError> {
        let req = Request::new(actor, now(), command);
        super::gate::check(self, req.version).await?;
        let size = crate::inventory::codec::encoded_len(&req);
        if size > MAX_ENTRY_BYTES {
            return Err(AppError::TooLarge(format!(
                "this change encodes to {size} bytes; one Raft entry holds at most {MAX_ENTRY_BYTES}"
            )));
        }
        let write = tokio::time::timeout(self.timeout, self.raft.client_write(req)).await;
        let resp = match write {
            Err(_) => {
                return Err(AppError::Indeterminate(format!(
                    "no majority acknowledged the change within {:?}",
                    self.timeout
                )))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                return Err(AppError::Indeterminate(format!(
                    "leadership moved to {:?} during the request",
                    f.leader_id
                )))
            }
            Ok(Err(e)) => return Err(AppError::NoLeader(e.to_string())),
            Ok(Ok(resp)) => resp,
        };
        match resp.data {
            Some(Ok(outcome)) => Ok((outcome, resp.log_id.index)),
            Some(Err(refusal)) => Err(AppError::Refused(refusal)),
            None => Err(AppError::Internal(
                "a command entry answered nothing".into(),
            )),
        }
    }

    /// Commits a membership change, waiting while another one (a join, the promotion of a
    /// caught-up voter) is still in flight: openraft refuses concurrent changes with
    /// `InProgress`, and failing then would burn a join token already consumed.
    pub(super) async fn change_membership<F, Fut>(
        &self,
        what: &str,
        mut change: F,
    ) -> Result<ClientWriteResponse<TypeConfig>, AppError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = MembershipChange>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, change()).await {
                Err(_) => return Err(AppError::Timeout(format!("{what} did not commit in time"))),
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                )))) if Instant::now() + Duration::from_millis(50) < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(e)) => return Err(AppError::NoLeader(e.to_string())),
            }
        }
    }

    /// Linearizable read: confirms leadership with a quorum and waits until applied.
    pub(super) async fn read_barrier(&self) -> Result<Arc<Inventory>, AppError> {
        match tokio::time::timeout(self.timeout, self.raft.ensure_linearizable()).await {
            Err(_) => Err(AppError::Timeout(format!(
                "a majority did not confirm the leader within {:?}",
                self.timeout
            ))),
            Ok(Err(e)) => Err(AppError::NoLeader(e.to_string())),
            Ok(Ok(_)) => Ok(self.sm.inventory()),
        }
    }
}

/// Runs the route here on the leader, or proxies it to the leader.
async fn on_leader(State(st): State<S>, req: axum::extract::Request, next: Next) -> Response {
    let deadline = Instant::now() + st.timeout;
    let me = st.node_id;
    let (leader, node) = match st.leader(deadline).await {
        Ok(l) => l,
        Err(e) => return not_proposed(e.into_response()),
    };
    if leader == me {
        return next.run(req).await;
    }
    if req.headers().contains_key(FORWARDED) {
        return not_proposed(
            AppError::NoLeader(format!(
                "node {me} is not the leader (node {leader} is); the forwarding node retries"
            ))
            .into_response(),
        );
    }
    // Inside the nested `/api/v1` router the URI has lost its prefix; forward the original.
    let original = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.clone())
        .unwrap_or_else(|| req.uri().clone());
    // `read_body` has already read the body (within its deadline and budget).
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return AppError::TooLarge(e.to_string()).into_response(),
    };
    let path = original
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut target = node;
    let mut leading = leader;
    // The address whose last connect failed: the next try waits until it accepts one, or
    // until another node leads, whichever comes first.
    let mut unreachable: Option<String> = None;
    loop {
        // A node that has just joined knows the leader's id before the membership naming its
        // address has reached it: wait for that within the deadline, as for a 503.
        match target.clone() {
            None if Instant::now() >= deadline => {
                return AppError::NoLeader(format!("leader {leading} has no known address"))
                    .into_response()
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
            Some(info)
                if unreachable.as_deref() == Some(info.admin_addr.as_str())
                    && !reachable_while_leading(&st, leading, &info.admin_addr).await => {}
            // Retried only when the request certainly did nothing: it never reached the
            // leader, or the leader refused it before proposing (a read is always safe).
            Some(info) => match forward(
                &st,
                &parts.method,
                &parts.headers,
                &info.admin_addr,
                &path,
                body.clone(),
            )
            .await
            {
                Ok(resp)
                    if resp.status() == StatusCode::SERVICE_UNAVAILABLE
                        && (resp.headers().contains_key(NOT_PROPOSED)
                            || parts.method == Method::GET)
                        && Instant::now() < deadline =>
                {
                    unreachable = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(resp) => return resp,
                Err(Forward::NotSent(_)) if Instant::now() < deadline => {
                    unreachable = Some(info.admin_addr.clone());
                }
                Err(Forward::Unanswered(_))
                    if parts.method == Method::GET && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(Forward::NotSent(e)) => return e.into_response(),
                Err(Forward::Unanswered(e)) => return e.into_response(),
            },
        }
        if Instant::now() >= deadline {
            return AppError::NoLeader(format!(
                "the leader (node {leading}) could not be reached within {:?}",
                st.timeout
            ))
            .into_response();
        }
        match st.leader(deadline).await {
            // Elected while forwarding: run the request here.
            Ok((id, _)) if id == me => {
                return next
                    .run(axum::extract::Request::from_parts(parts, Body::from(body)))
                    .await
            }
            Ok((id, n)) => {
                leading = id;
                target = n;
            }
            Err(e) => return e.into_response(),
        }
    }
}

/// After a connect to the leader's `addr` failed: whether it accepts a TCP connection now
/// (within the peers' connect timeout; a refusal is answered after up to 100 ms, so the
/// caller does not spin). Gives up at once, answering false, when another
/// node becomes leader meanwhile, so a dead leader's successor is used the moment it is
/// known. Sends nothing: the request is only ever written by [`forward`].
async fn reachable_while_leading(st: &AppState, leader: u64, addr: &str) -> bool {
    let mut rx = st.raft.metrics();
    let connect = tokio::time::timeout(PEER_CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr));
    let reached = tokio::select! {
        r = connect => matches!(r, Ok(Ok(_))),
        _ = rx.wait_for(|m| m.current_leader != Some(leader)) => return false,
    };
    if !reached {
        // Refused at once (a stopped process on a live host): ask again shortly.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = rx.wait_for(|m| m.current_leader != Some(leader)) => {}
        }
    }
    reached
}

/// How long a forwarding node tries to connect to the leader. A dead leader's address often
/// answers nothing at all (no RST from a host that is gone).
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Marks a refusal given before anything was proposed: the forwarding node may retry it.
const NOT_PROPOSED: &str = "x-certraft-not-proposed";

fn not_proposed(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(NOT_PROPOSED, HeaderValue::from_static("1"));
    resp
}

/// How forwarding to the leader failed.
enum Forward {
    /// No connection: the leader never saw the request.
    NotSent(AppError),
    /// Sent, but no (complete) answer: it may have been carried out.
    Unanswered(AppError),
}

async fn forward(
    st: &AppState,
    method: &Method,
    headers: &HeaderMap,
    admin_addr: &str,
    path: &str,
    body: Bytes,
) -> Result<Response, Forward> {
    let url = format!("https://{admin_addr}{path}");
    let mut req = st
        .peers
        .request(method.clone(), &url)
        .header(FORWARDED, st.node_id.to_string())
        .timeout(st.timeout)
        .body(body);
    for name in ["authorization", "content-type", "accept"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    let unanswered = |e: reqwest::Error| {
        Forward::Unanswered(AppError::Indeterminate(format!(
            "the leader at {admin_addr} did not answer: {e}"
        )))
    };
    let resp = req.send().await.map_err(|e| {
        if e.is_connect() {
            Forward::NotSent(AppError::NoLeader(format!(
                "cannot reach the leader at {admin_addr}: {e}"
            )))
        } else {
            unanswered(e)
        }
    })?;
    let status = resp.status();
    let content_type = resp.headers().get("content-type").cloned();
    let refused_early = resp.headers().contains_key(NOT_PROPOSED);
    let bytes = resp.bytes().await.map_err(unanswered)?;
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    if let Some(ct) = content_type {
        out.headers_mut().insert("content-type", ct);
    }
    if refused_early {
        out = not_proposed(out);
    }
    Ok(out)
}

/// Prometheus text format, this node's view: handshakes by outcome, the serving index's
/// generation and size, each served certificate's not-after, Raft progress.
async fn metrics(State(st): State<S>) -> Response {
    use std::fmt::Write as _;
    let m = st.raft.metrics().borrow().clone();
    let mut out = String::new();
    let node = st.node_id;
    let _ = writeln!(
        out,
        "# HELP certraft_raft_term Current Raft term.\n# TYPE certraft_raft_term gauge"
    );
    let _ = writeln!(
        out,
        "certraft_raft_term{{node=\"{node}\"}} {}",
        m.current_term
    );
    let _ = writeln!(out, "# HELP certraft_raft_last_applied Last log index applied to the inventory.\n# TYPE certraft_raft_last_applied gauge");
    let _ = writeln!(
        out,
        "certraft_raft_last_applied{{node=\"{node}\"}} {}",
        m.last_applied.map(|l| l.index).unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "# HELP certraft_raft_running 0 once the Raft core stopped (a storage error: see the log).\n# TYPE certraft_raft_running gauge"
    );
    let _ = writeln!(
        out,
        "certraft_raft_running{{node=\"{node}\"}} {}",
        u8::from(m.running_state.is_ok())
    );
    let _ = writeln!(
        out,
        "# HELP certraft_raft_is_leader 1 on the leader.\n# TYPE certraft_raft_is_leader gauge"
    );
    let _ = writeln!(
        out,
        "certraft_raft_is_leader{{node=\"{node}\"}} {}",
        u8::from(m.current_leader == Some(node))
    );
    let _ = writeln!(
        out,
        "# HELP certraft_auth_failures_total Failed sign-ins on this node's admin port, by what was tried.\n# TYPE certraft_auth_failures_total counter"
    );
    for kind in [FailureKind::AdminToken, FailureKind::JoinToken] {
        let v = match kind {
            FailureKind::AdminToken => &st.failures.admin_token,
            FailureKind::JoinToken => &st.failures.join_token,
        };
        let _ = writeln!(
            out,
            "certraft_auth_failures_total{{node=\"{node}\",kind=\"{}\"}} {}",
            kind.label(),
            v.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP certraft_auth_rate_limited_total Requests answered 429 because their source failed to sign in too often.\n# TYPE certraft_auth_rate_limited_total counter"
    );
    let _ = writeln!(
        out,
        "certraft_auth_rate_limited_total{{node=\"{node}\"}} {}",
        st.failures
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(serving) = &st.serving {
        let c = &serving.counters;
        let _ = writeln!(out, "# HELP certraft_handshakes_total TLS handshakes on the serve port by outcome.\n# TYPE certraft_handshakes_total counter");
        for (outcome, v) in [
            ("exact", &c.exact),
            ("wildcard", &c.wildcard),
            ("default", &c.default),
            ("node_certificate", &c.node_cert),
            ("rejected", &c.rejected),
            ("failed", &c.failed),
            ("over_limit", &c.over_limit),
            ("evicted", &c.evicted),
        ] {
            let _ = writeln!(
                out,
                "certraft_handshakes_total{{node=\"{node}\",outcome=\"{outcome}\"}} {}",
                v.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        let ix = serving.index();
        let _ = writeln!(out, "# HELP certraft_index_generation Serving index generation on this node.\n# TYPE certraft_index_generation gauge");
        let _ = writeln!(
            out,
            "certraft_index_generation{{node=\"{node}\"}} {}",
            ix.generation
        );
        let _ = writeln!(out, "# HELP certraft_index_certificates Certificates in the serving index.\n# TYPE certraft_index_certificates gauge");
        let _ = writeln!(
            out,
            "certraft_index_certificates{{node=\"{node}\"}} {}",
            ix.len()
        );
        let _ = writeln!(
            out,
            "# HELP certraft_index_applied_index Raft log index the serving index reflects.\n# TYPE certraft_index_applied_index gauge"
        );
        let _ = writeln!(
            out,
            "certraft_index_applied_index{{node=\"{node}\"}} {}",
            serving.applied.load(std::sync::atomic::Ordering::Acquire)
        );
    }
    let inv = st.sm.inventory();
    let _ = writeln!(out, "# HELP certraft_certificate_not_after_seconds Not-after of each certificate (Unix seconds).\n# TYPE certraft_certificate_not_after_seconds gauge");
    for b in inv.bundles.values() {
        let name = b.name.replace('\\', "\\\\").replace('"', "\\\"");
        let status = match b.status {
            BundleStatus::Active => "active",
            BundleStatus::Retired => "retired",
        };
        let _ = writeln!(
            out,
            "certraft_certificate_not_after_seconds{{name=\"{name}\",status=\"{status}\"}} {}",
            b.meta.not_after
        );
    }
    (
        [(
            "content-type",
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        out,
    )
        .into_response()
}

/// Node-local state, unauthenticated (no names, no secrets): 200 once a leader is known.
async fn readyz(State(st): State<S>) -> Response {
    // The divergence check (issue 22): the state digest at the applied index, computed once
    // per index off the async workers.
    let sm = st.sm.clone();
    let (digest_index, digest) = tokio::task::spawn_blocking(move || sm.digest())
        .await
        .map(|(i, d)| (i, Some(hex::encode(d))))
        .unwrap_or((None, None));
    let m = st.raft.metrics().borrow().clone();
    // A Raft core stopped by a storage error (a full disk) keeps its last metrics: the
    // leader it names is stale, so the node is not ready whatever it says.
    let raft_error = m
        .running_state
        .as_ref()
        .err()
        .map(|fatal| crate::node::raft_stopped(st.node_id, fatal));
    let ready = m.current_leader.is_some() && raft_error.is_none();
    let body = serde_json::json!({
        "ready": ready,
        "raft_error": raft_error,
        "node_id": st.node_id,
        "leader": m.current_leader,
        "term": m.current_term,
        "state": format!("{:?}", m.state).to_lowercase(),
        "last_log_index": m.last_log_index,
        "last_applied": m.last_applied.map(|l| l.index),
        "snapshot_index": m.snapshot.map(|l| l.index),
        "purged_index": m.purged.map(|l| l.index),
        // The newest entry version this build applies (the feature gate reads it), and the
        // features the cluster has enabled, as this node has applied them.
        "apply_version": crate::inventory::REQUEST_VERSION,
        "features": st.sm.inventory().features.iter().map(|f| f.name()).collect::<Vec<_>>(),
        // SHA-256 of the applied state at `digest_index`: equal on every replica at the same
        // index, whatever mix of log and snapshots brought it there.
        "state_digest": digest,
        "digest_index": digest_index,
        "voting": m.membership_config.membership().voter_ids().any(|id| id == st.node_id),
        // The log index of the last serving change (certificate, default, ticket key) the
        // serve port has swapped in; none on a witness.
        "serving_applied": st
            .serving
            .as_ref()
            .map(|s| s.applied.load(std::sync::atomic::Ordering::Acquire)),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn trust(State(st): State<S>) -> Response {
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE", st.ca.cert_der().to_vec()));
    (
        [(
            "content-type",
            HeaderValue::from_static("application/x-pem-file"),
        )],
        pem,
    )
        .into_response()
}

// ---- certificates ----------------------------------------------------------------------

fn status_of(b: &StoredBundle, now: i64) -> &'static str {
    match b.status {
        BundleStatus::Retired => "retired",
        BundleStatus::Active if b.meta.not_after < now => "expired",
        BundleStatus::Active if b.meta.not_before > now => "not-yet-valid",
        BundleStatus::Active => "active",
    }
}

fn key_text(meta: &BundleMeta) -> String {
    serde_json::to_value(meta.key)
        .ok()
        .and_then(|v| {
            let alg = v.get("algorithm")?.as_str()?.to_string();
            Some(match v.get("bits").and_then(|b| b.as_u64()) {
                Some(bits) => format!("{alg}-{bits}"),
                None => alg,
            })
        })
        .unwrap_or_default()
}

fn summary(inv: &Inventory, b: &StoredBundle, now: i64) -> CertSummary {
    CertSummary {
        name: b.name.clone(),
        id: hex::encode(b.id()),
        hostnames: b.meta.hostnames.clone(),
        subject: b.meta.subject.clone(),
        issuer: b.meta.issuer.clone(),
        not_before: fmt_time(b.meta.not_before),
        not_after: fmt_time(b.meta.not_after),
        not_after_unix: b.meta.not_after,
        status: status_of(b, now).into(),
        is_default: inv.default.as_deref() == Some(b.name.as_str()),
        key: key_text(&b.meta),
        completeness: serde_json::to_value(b.meta.completeness)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        imported_at: fmt_time(b.imported_at),
        imported_by: b.imported_by.clone(),
    }
}

async fn list_certs(State(st): State<S>) -> Result<Json<CertList>, AppError> {
    let inv = st.read_barrier().await?;
    let now = now();
    Ok(Json(CertList {
        certs: inv
            .bundles
            .values()
            .map(|b| summary(&inv, b, now))
            .collect(),
        default: inv.default.clone(),
    }))
}

fn find<'a>(inv: &'a Inventory, name: &str) -> Result<&'a StoredBundle, AppError> {
    inv.bundles.get(name).ok_or_else(|| {
        AppError::Refused(crate::inventory::Refusal::NotFound {
            name: name.to_string(),
        })
    })
}

async fn show_cert(
    State(st): State<S>,
    Path(name): Path<String>,
) -> Result<Json<CertDetail>, AppError> {
    let inv = st.read_barrier().await?;
    let b = find(&inv, &name)?;
    let now = now();
    let material = b.sealed.open(&st.keyring)?;
    let mut chain = Vec::new();
    let mut warnings = Vec::new();
    for der in material.certs() {
        if let Ok(c) = crate::bundle::cert::parse_cert(der) {
            chain.push(ChainCert {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                not_after: fmt_time(c.not_after),
                sha256: c.sha256.clone(),
            });
        }
    }
    if b.meta.not_after < now + 30 * 86_400 && b.meta.not_after >= now {
        warnings.push(format!("expires {}", fmt_time(b.meta.not_after)));
    }
    let serving = b
        .meta
        .hostnames
        .iter()
        .filter(|h| inv.serving(h, now) == Some(b.name.as_str()))
        .cloned()
        .collect();
    Ok(Json(CertDetail {
        summary: summary(&inv, b, now),
        chain,
        serving,
        warnings,
    }))
}

/// Parses and assembles uploaded files exactly as `certraft inspect` does, on the blocking
/// pool and at most [`parse_concurrency`] at a time: parsing runs password KDFs (capped, but
/// seconds at the cap), which must never hold the async workers that answer `/healthz`,
/// serve TLS and send Raft heartbeats. Waiting for a turn is bounded by the node's timeout.
async fn assemble_uploaded(st: &AppState, src: BundleSource) -> Result<Bundle, AppError> {
    let _turn = tokio::time::timeout(st.timeout, st.parsing.acquire())
        .await
        .map_err(|_| {
            AppError::NoLeader(format!(
                "this node is busy parsing other uploads ({} at a time); retry shortly",
                parse_concurrency()
            ))
        })?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || assemble_source(&src))
        .await
        .map_err(|e| AppError::Internal(format!("parsing the upload failed: {e}")))?
}

fn assemble_source(src: &BundleSource) -> Result<Bundle, AppError> {
    if src.files.is_empty() {
        return Err(AppError::bad_request(
            "no_files",
            "no files were uploaded; pass the certificate and key files",
        ));
    }
    // The per-file caps (size, KDF work) would multiply with the file count.
    if src.files.len() > MAX_UPLOAD_FILES {
        return Err(AppError::TooLarge(format!(
            "{} files were uploaded; a bundle is made from at most {MAX_UPLOAD_FILES} (a certificate, a key and a chain usually take one to three)",
            src.files.len()
        )));
    }
    let passphrase = src.passphrase.as_ref().map(|p| Passphrase::new(p.as_str()));
    let mut parsed: Vec<ParsedFile> = Vec::with_capacity(src.files.len());
    for f in &src.files {
        parsed.push(crate::bundle::parse_file(
            &f.name,
            &f.data,
            passphrase.as_ref(),
        )?);
    }
    let options = AssembleOptions {
        allow_incomplete: src.allow_incomplete,
        allow_expired: src.allow_expired,
    };
    Ok(assemble(parsed, options, now())?)
}

fn default_name(b: &Bundle) -> String {
    let id = b.id().to_hex();
    b.hostnames()
        .into_iter()
        .find(|h| crate::inventory::valid_name(h))
        .unwrap_or_else(|| format!("bundle-{}", &id[..12]))
}

fn new_bundle(st: &AppState, bundle: &Bundle, name: String) -> NewBundle {
    NewBundle {
        name,
        sealed: bundle.seal(&st.keyring),
        meta: BundleMeta::of(bundle),
    }
}

async fn import(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<ImportRequest>,
) -> Result<Json<ImportResponse>, AppError> {
    let bundle = assemble_uploaded(&st, body.source.clone()).await?;
    let name = body.name.clone().unwrap_or_else(|| default_name(&bundle));
    let warnings: Vec<String> = bundle
        .warnings()
        .iter()
        .map(|w| w.message.clone())
        .collect();
    let mut resp = ImportResponse {
        outcome: ImportOutcome::DryRun,
        name: name.clone(),
        id: bundle.id().to_hex(),
        hostnames: bundle.hostnames(),
        not_after: fmt_time(bundle.leaf().not_after),
        completeness: serde_json::to_value(bundle.completeness())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        warnings,
        index: None,
    };
    if body.dry_run {
        let inv = st.read_barrier().await?;
        if let Some(existing) = inv.by_id(&bundle.id().0) {
            resp.name = existing.name.clone();
            resp.outcome = ImportOutcome::AlreadyPresent;
        } else if let Some(existing) = inv.bundles.get(&name) {
            return Err(AppError::Refused(crate::inventory::Refusal::NameTaken {
                name,
                existing: hex::encode(&existing.id()[..6]),
            }));
        } else if !crate::inventory::valid_name(&name) {
            return Err(AppError::Refused(crate::inventory::Refusal::InvalidName {
                name,
            }));
        }
        return Ok(Json(resp));
    }
    let nb = new_bundle(&st, &bundle, name);
    let (outcome, index) = st
        .propose(
            &actor.0,
            Command::Import {
                bundle: nb,
                make_default: body.make_default,
            },
        )
        .await?;
    resp.index = Some(index);
    match outcome {
        Outcome::Imported { name, .. } => {
            resp.outcome = ImportOutcome::Imported;
            resp.name = name;
        }
        Outcome::AlreadyPresent { name, .. } => {
            resp.outcome = ImportOutcome::AlreadyPresent;
            resp.name = name;
        }
        other => return Err(AppError::Internal(format!("import answered {other:?}"))),
    }
    Ok(Json(resp))
}

async fn rotate(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(old): Path<String>,
    Json(body): Json<RotateRequest>,
) -> Result<Json<RotateResponse>, AppError> {
    let bundle = assemble_uploaded(&st, body.source.clone()).await?;
    let name = body.name.clone().unwrap_or_else(|| old.clone());
    let warnings = bundle
        .warnings()
        .iter()
        .map(|w| w.message.clone())
        .collect();
    let id = bundle.id().to_hex();
    let nb = new_bundle(&st, &bundle, name);
    let force = if body.force {
        crate::inventory::Force::Yes
    } else {
        crate::inventory::Force::No
    };
    let (outcome, index) = st
        .propose(
            &actor.0,
            Command::Rotate {
                old,
                new: nb,
                force,
            },
        )
        .await?;
    match outcome {
        Outcome::Rotated {
            old,
            retired_as,
            new,
        } => Ok(Json(RotateResponse {
            old,
            retired_as,
            new,
            id,
            warnings,
            index: Some(index),
        })),
        Outcome::AlreadyPresent { name, .. } => Err(AppError::BadRequest {
            code: "already_present",
            message: format!("this bundle is already in the inventory as {name}; nothing was rotated"),
            hint: Some(format!("to serve it instead of the old one, `certraft cert default {name}` or remove the old bundle")),
        }),
        other => Err(AppError::Internal(format!("rotate answered {other:?}"))),
    }
}

#[derive(Deserialize)]
struct ForceQuery {
    #[serde(default)]
    force: bool,
}

async fn remove_cert(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Query(q): Query<ForceQuery>,
) -> Result<Json<Done>, AppError> {
    let force = if q.force {
        crate::inventory::Force::Yes
    } else {
        crate::inventory::Force::No
    };
    let (_, index) = st
        .propose(
            &actor.0,
            Command::Remove {
                name: name.clone(),
                force,
            },
        )
        .await?;
    Ok(Json(Done {
        message: format!("removed {name}"),
        index: Some(index),
    }))
}

/// Refuses a passphrase too short to protect keys that leave the cluster, unless asked.
fn check_strength(passphrase: &str, allow_weak: bool, what: &str) -> Result<(), AppError> {
    if allow_weak || strong_enough(passphrase) {
        return Ok(());
    }
    Err(AppError::BadRequest {
        code: "weak_passphrase",
        message: format!(
            "the {what} passphrase has {} characters; at least {MIN_PASSPHRASE_CHARS} are required, because it alone protects the private keys once the file leaves the cluster",
            passphrase.chars().count()
        ),
        hint: Some("use a longer passphrase (a few random words), or pass --allow-weak-passphrase if the receiving system cannot take one".into()),
    })
}

impl AppState {
    /// Commits an audit-only record of something that changed no inventory state. The
    /// operation it records has already happened, so a record that cannot be committed is
    /// logged, not turned into a failure of that operation.
    pub(super) async fn record(&self, actor: &str, what: String) {
        let record = self.propose(
            actor,
            Command::Record {
                what: what.clone(),
                result: "ok".into(),
            },
        );
        // Bounded: a leader that has just removed itself can no longer commit anything (the
        // remaining voters refuse its entries), and the answer must not wait for that.
        match tokio::time::timeout(RECORD_WAIT, record).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(%what, error = ?e, "could not add the audit record"),
            Err(_) => {
                tracing::warn!(%what, "the audit record did not commit within {RECORD_WAIT:?}")
            }
        }
    }
}

/// How long an operation's answer waits for its audit-only record to commit.
const RECORD_WAIT: Duration = Duration::from_secs(2);

async fn export(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Json(body): Json<ExportRequest>,
) -> Result<Json<ExportResponse>, AppError> {
    if let (ExportFormat::P12, Some(p)) = (body.format, body.passphrase.as_ref()) {
        check_strength(p, body.allow_weak_passphrase, "export")?;
    }
    let inv = st.read_barrier().await?;
    let b = find(&inv, &name)?;
    let material = b.sealed.open(&st.keyring)?;
    let parts = crate::bundle::ExportParts::from(&material);
    let mut warnings = Vec::new();
    let data = match body.format {
        ExportFormat::Pem => export_pem(&parts).into_bytes(),
        ExportFormat::P12 => {
            let Some(p) = body.passphrase.as_ref() else {
                return Err(AppError::BadRequest {
                    code: "passphrase_required",
                    message: "PKCS#12 export needs a passphrase".into(),
                    hint: Some("pass --passphrase-file F or set CERTRAFT_PASSPHRASE".into()),
                });
            };
            let passphrase = Passphrase::new(p.as_str());
            let profile = if body.legacy {
                warnings.push(crate::bundle::export::LEGACY_WARNING.to_string());
                Pkcs12Profile::Legacy
            } else {
                Pkcs12Profile::Modern
            };
            // PBKDF2 at 600,000 iterations is CPU work: keep it off the async workers.
            let parts_owned = (material.key_pkcs8().to_vec(), material.certs().to_vec());
            let name2 = name.clone();
            tokio::task::spawn_blocking(move || {
                let key = Zeroizing::new(parts_owned.0);
                let parts = crate::bundle::ExportParts {
                    key_pkcs8: &key,
                    certs: parts_owned.1.iter().map(Vec::as_slice).collect(),
                };
                export_pkcs12(&parts, &name2, &passphrase, profile)
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??
        }
    };
    let what = match body.format {
        ExportFormat::Pem => format!("export {name} (certificates only, PEM)"),
        ExportFormat::P12 if body.legacy => format!("export {name} with its key (legacy PKCS#12)"),
        ExportFormat::P12 => format!("export {name} with its key (PKCS#12)"),
    };
    st.record(&actor.0, what).await;
    Ok(Json(ExportResponse {
        format: body.format,
        data,
        warnings,
    }))
}

async fn get_default(State(st): State<S>) -> Result<Json<DefaultCert>, AppError> {
    let inv = st.read_barrier().await?;
    Ok(Json(DefaultCert {
        default: inv.default.clone(),
    }))
}

async fn set_default(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<SetDefault>,
) -> Result<Json<DefaultCert>, AppError> {
    st.propose(
        &actor.0,
        Command::SetDefault {
            name: body.name.clone(),
        },
    )
    .await?;
    Ok(Json(DefaultCert {
        default: Some(body.name),
    }))
}

#[derive(Deserialize)]
struct AuditQuery {
    /// The most recent `limit` records (all when absent).
    limit: Option<usize>,
}

async fn audit(
    State(st): State<S>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditList>, AppError> {
    let inv = st.read_barrier().await?;
    let skip = q
        .limit
        .map(|l| inv.audit.len().saturating_sub(l))
        .unwrap_or(0);
    Ok(Json(AuditList {
        records: inv.audit[skip..].to_vec(),
    }))
}

// ---- cluster ---------------------------------------------------------------------------

pub(super) fn role_text(role: Option<NodeRole>) -> String {
    match role {
        Some(NodeRole::Voter) | None => "voter",
        Some(NodeRole::Learner) => "learner",
        Some(NodeRole::Witness) => "witness",
    }
    .into()
}

async fn cluster_status(State(st): State<S>) -> Result<Json<ClusterStatus>, AppError> {
    let m = st.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let last = m.last_log_index.unwrap_or(0);
    let members = membership
        .nodes()
        .map(|(id, info)| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned())
                .flatten()
                .map(|l| l.index);
            let health = if Some(*id) == m.current_leader {
                "leader"
            } else {
                match (&m.replication, matched) {
                    (None, _) => "unknown",
                    (Some(_), None) => "unreachable",
                    (Some(_), Some(i)) if last.saturating_sub(i) > 100 => "lagging",
                    (Some(_), Some(_)) => "ok",
                }
            };
            Member {
                id: *id,
                role: role_text(info.role),
                voting: voters.contains(id),
                cluster_addr: info.cluster_addr.clone(),
                admin_addr: info.admin_addr.clone(),
                matched,
                health: health.into(),
            }
        })
        .collect();
    Ok(Json(ClusterStatus {
        cluster_id: st.cluster_id.clone(),
        node_id: st.node_id,
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        last_applied: m.last_applied.map(|l| l.index),
        // The leader's view (this handler runs on the leader): what a majority holds.
        committed: crate::raft::committed_index(membership.get_joint_config(), |id| {
            if id == m.id {
                m.last_log_index
            } else {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map(|l| l.index)
            }
        }),
        members,
        ca_fingerprint: st.ca.fingerprint_hex(),
        features: st
            .sm
            .inventory()
            .features
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
    }))
}

async fn create_join_token(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<JoinTokenRequest>,
) -> Result<Json<JoinTokenResponse>, AppError> {
    let ttl = body.ttl_secs.unwrap_or(3600);
    if ttl == 0 || ttl > 7 * 86_400 {
        return Err(AppError::bad_request(
            "bad_ttl",
            format!("--ttl {ttl}s is out of range: use 1s to 7d"),
        ));
    }
    let secret = random_hex(24);
    let expires_at = now() + ttl as i64;
    st.propose(
        &actor.0,
        Command::CreateJoinToken {
            token: JoinToken {
                secret_sha256: token_hash(&secret),
                role: body.role,
                expires_at,
                created_by: actor.0.clone(),
                used_by: None,
            },
        },
    )
    .await?;
    Ok(Json(JoinTokenResponse {
        token: JoinTokenText::format(&secret, &st.ca.fingerprint()),
        role: body.role,
        expires_at: fmt_time(expires_at),
    }))
}

async fn remove_node(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<u64>,
) -> Result<Json<Done>, AppError> {
    let m = st.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return Err(AppError::BadRequest {
            code: "not_a_member",
            message: format!("node {id} is not a member of this cluster"),
            hint: Some("`certraft cluster status` lists the members".into()),
        });
    }
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    if voters.contains(&id) && voters.len() == 1 {
        return Err(AppError::bad_request(
            "last_voter",
            format!("node {id} is the only voter; removing it would leave no cluster"),
        ));
    }
    let change = if voters.contains(&id) {
        ChangeMembers::RemoveVoters([id].into())
    } else {
        ChangeMembers::RemoveNodes([id].into())
    };
    let resp = st
        .change_membership(&format!("removing node {id}"), || {
            st.raft.change_membership(change.clone(), false)
        })
        .await?;
    tracing::info!(node = id, by = %actor.0, "removed node from the cluster");
    st.record(
        &actor.0,
        format!("remove node {id}; its certificate is refused from now on"),
    )
    .await;
    Ok(Json(Done {
        message: format!("removed node {id}; its node certificate is no longer accepted"),
        index: Some(resp.log_id.index),
    }))
}

// ---- backup ----------------------------------------------------------------------------

async fn backup(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<BackupRequest>,
) -> Result<Json<BackupResponse>, AppError> {
    check_strength(&body.passphrase, body.allow_weak_passphrase, "backup")?;
    let inv = st.read_barrier().await?;
    let passphrase = Passphrase::new(body.passphrase.as_str());
    let keyring = st.keyring.clone();
    let count = inv.bundles.len();
    let data =
        tokio::task::spawn_blocking(move || crate::backup::create(&inv, &keyring, &passphrase))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::bad_request(e.code(), e.to_string()))?;
    tracing::info!(by = %actor.0, bundles = count, "backup created");
    st.record(
        &actor.0,
        format!("backup of {count} bundles with their keys"),
    )
    .await;
    Ok(Json(BackupResponse {
        data,
        bundles: count,
    }))
}

/// Bundles per Raft entry when restoring a backup (about 40 KiB per entry for P-256).
const RESTORE_ENTRY_BUNDLES: usize = 32;

/// A restore's bundles cut into entries of at most [`RESTORE_ENTRY_BUNDLES`] bundles and
/// half of [`MAX_ENTRY_BYTES`] of sealed records each (large RSA chains fill an entry sooner).
fn restore_entries(bundles: &[NewBundle]) -> Vec<&[NewBundle]> {
    let budget = MAX_ENTRY_BYTES / 2;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, b) in bundles.iter().enumerate() {
        let size = b.sealed.blob.len() + 512;
        if i > start && (i - start >= RESTORE_ENTRY_BUNDLES || bytes + size > budget) {
            out.push(&bundles[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < bundles.len() {
        out.push(&bundles[start..]);
    }
    out
}

async fn restore(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<RestoreRequest>,
) -> Result<Json<RestoreResponse>, AppError> {
    let passphrase = Passphrase::new(body.passphrase.as_str());
    let keyring = st.keyring.clone();
    let _turn = tokio::time::timeout(st.timeout, st.parsing.acquire())
        .await
        .map_err(|_| {
            AppError::NoLeader("this node is busy parsing other uploads; retry shortly".into())
        })?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let (bundles, default) = tokio::task::spawn_blocking(move || {
        crate::backup::open(&body.data, &passphrase, &keyring, now())
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(|e| AppError::bad_request(e.code(), e.to_string()))?;
    drop(_turn);
    // Refuse a name clash before anything commits (apply checks again, per entry).
    {
        let inv = st.sm.inventory();
        for b in &bundles {
            if inv.by_id(&b.sealed.id).is_some() {
                continue;
            }
            if let Some(existing) = inv.bundles.get(&b.name) {
                return Err(AppError::from(crate::inventory::Refusal::NameTaken {
                    name: b.name.clone(),
                    existing: hex::encode(&existing.id()[..6]),
                }));
            }
        }
    }
    // Many small entries rather than one large one: openraft gives each AppendEntries one
    // heartbeat interval (100 ms) to be sent, fsynced and answered, and a multi-megabyte
    // entry misses that on every retry, stalling replication. Each entry is idempotent by
    // bundle id, so a restore cut short by a failover is finished by running it again.
    let (mut restored, mut already_present) = (Vec::new(), Vec::new());
    for chunk in restore_entries(&bundles) {
        let (outcome, _) = st
            .propose(
                &actor.0,
                Command::Restore {
                    bundles: chunk.to_vec(),
                    default: default.clone(),
                },
            )
            .await?;
        let Outcome::Restored {
            restored: r,
            already_present: a,
        } = outcome
        else {
            return Err(AppError::Internal(format!("restore answered {outcome:?}")));
        };
        restored.extend(r);
        already_present.extend(a);
    }
    let inv = st.sm.inventory();
    Ok(Json(RestoreResponse {
        restored,
        already_present,
        default: inv.default.clone(),
    }))
}
