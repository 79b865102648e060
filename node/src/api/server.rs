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

use axum::middleware::{self};
use axum::routing::{get, post};
use axum::Router;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;

use super::auth::AuthFailures;
use super::backup::*;
use super::certs::*;
use super::cluster::*;
use super::error::AppError;
use super::forward::*;
use super::layers::*;
use super::ops::*;
use crate::bundle::Keyring;
use crate::clock::unix_now as now;
use crate::inventory::{Command, Inventory, Outcome, Request};
use crate::pki::ClusterCa;
use crate::raft::{NodeInfo, Raft, TypeConfig};
use crate::store::StateMachineStore;

pub(super) const FORWARDED: &str = "x-certraft-forwarded";

/// Everything the handlers share.
pub struct AppState {
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub keyring: Arc<Keyring>,
    pub ca: Arc<ClusterCa>,
    /// Seals what only a leader needs (the local issuer's key, webhook secrets); derived from
    /// the cluster CA key, so absent on a traffic node.
    pub core: Option<Arc<Keyring>>,
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
    /// Key generation (an RSA-4096 key takes seconds of CPU) and signing run on the
    /// blocking pool this many at a time, in a lane of their own, so a burst of issues or
    /// renewals never holds back the parsing of imports (and the reverse).
    pub keygen: tokio::sync::Semaphore,
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
/// How long a request that generates a key (`POST /api/v1/issue`, `POST /api/v1/csrs`)
/// may wait for its turn in the key-generation lane before it is answered 503 "busy".
pub const KEYGEN_QUEUE_WAIT: Duration = Duration::from_secs(110);
/// The forwarding deadline of those routes: the wait above, an RSA-4096 generation on a
/// slow core (up to ~20 s measured, BENCHMARKS.md) and the commit.
pub const KEYGEN_DEADLINE: Duration = Duration::from_secs(150);

/// Whether `path` (under `/api/v1`, or the full path) is a route that generates a key.
pub fn generates_keys(method: &axum::http::Method, path: &str) -> bool {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    method == axum::http::Method::POST && (path == "/issue" || path == "/csrs")
}

/// Files one import or rotation may upload.
pub const MAX_UPLOAD_FILES: usize = 16;
/// The largest request body the admin API reads (a backup to restore, base64 in JSON).
pub const MAX_BODY_BYTES: usize = 16 << 20;
/// Request bodies held at once, in KiB: four of the largest.
pub const BODY_BUDGET_KIB: usize = 4 * (MAX_BODY_BYTES >> 10);
/// To receive a whole request body once its head has arrived.
pub(super) const BODY_DEADLINE: Duration = Duration::from_secs(30);
/// The largest Raft entry the API proposes. openraft gives each AppendEntries one heartbeat
/// interval to be sent, fsynced and answered, so an entry stays far below a megabyte.
pub const MAX_ENTRY_BYTES: usize = 512 << 10;

pub(super) type S = Arc<AppState>;

/// What openraft answers a membership change.
pub(super) type MembershipChange =
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
        .route(
            "/console",
            get(super::console::get_console)
                .put(super::console::set_console)
                .delete(super::console::clear_console),
        )
        .route("/audit", get(audit))
        .route("/cluster", get(cluster_status))
        .route("/cluster/join-tokens", post(create_join_token))
        .route("/cluster/nodes/{id}", axum::routing::delete(remove_node))
        .route("/backup", post(backup))
        .route("/backup/restore", post(restore))
        .route(
            "/csrs",
            get(super::issuing::list_csrs).post(super::issuing::create_csr),
        )
        .route(
            "/csrs/{name}",
            get(super::issuing::show_csr).delete(super::issuing::remove_csr),
        )
        .route("/csrs/{name}/complete", post(super::issuing::complete_csr))
        .route("/issuers", get(super::acme::list_issuers))
        .route("/issuers/local", get(super::issuing::local_issuer))
        .route("/issuers/acme", post(super::acme::add_issuer))
        .route(
            "/issuers/{name}",
            get(super::acme::show_issuer).delete(super::acme::remove_issuer),
        )
        .route("/acme/{name}", get(super::acme::show))
        .route("/issue", post(super::issuing::issue))
        .route("/notify", get(super::notify::list).post(super::notify::add))
        .route(
            "/notify/{name}",
            axum::routing::delete(super::notify::remove),
        )
        .route("/notify/{name}/test", post(super::notify::test))
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
        .route("/api/v1/trust/issuers", get(super::issuing::trust_issuers))
        .nest("/api/v1", authed.merge(join))
        .nest("/ui", super::ui::router(state.clone()))
        .route(
            "/ui/",
            get(|| async { axum::response::Redirect::to("/ui") }),
        )
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

impl AppState {
    /// The name of the admin token whose secret hashes to `hash`. A follower whose inventory
    /// does not know it yet (a token created a moment ago) waits up to a second for its
    /// applied index to move before saying no, unless `may_wait` is false (a source that
    /// keeps failing gets its answer at once, and holds nothing for that second).
    pub(super) async fn token_name(&self, hash: &[u8; 32], may_wait: bool) -> Option<String> {
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
                    return Err(AppError::NoLeader(crate::raft::raft_stopped(
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

#[cfg(test)]
mod tests {
    use super::generates_keys;
    use axum::http::Method;

    /// Only the two key-generating writes get the long deadline, with or without the
    /// `/api/v1` prefix the forwarder sees.
    #[test]
    fn only_issue_and_csr_creation_generate_keys() {
        assert!(generates_keys(&Method::POST, "/api/v1/issue"));
        assert!(generates_keys(&Method::POST, "/csrs"));
        assert!(!generates_keys(&Method::GET, "/api/v1/csrs"));
        assert!(!generates_keys(&Method::POST, "/api/v1/csrs/www/complete"));
        assert!(!generates_keys(&Method::POST, "/api/v1/certs"));
    }
}
