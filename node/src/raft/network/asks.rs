//! What a member may ask the leader over the cluster port besides Raft's RPCs, both sides:
//! an offline-made admin token (voters), a console reset (voters), and a summary of failed
//! sign-ins (any member, bounded). Each is checked on the leader as if from a stranger.

use super::*;

/// Why a member's proposal to the leader failed.
#[derive(Debug, thiserror::Error, Serialize, serde::Deserialize)]
pub enum ProposeError {
    #[error("node {0} is not the leader")]
    NotLeader(u64),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Failed(String),
}

/// The one thing a member may ask the leader to commit over the cluster port: an admin token
/// made offline by `certraft-node admin-token` on a voter (break-glass when every token is
/// lost). Only the name and the SHA-256 of the secret travel; the leader builds the entry,
/// with itself as the clock and the authenticated peer as the actor.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AdminTokenProposal {
    pub name: String,
    pub secret_sha256: [u8; 32],
}

/// A member's summary of the failed sign-ins on its admin port, for the leader to audit.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FailureReport {
    pub summary: String,
}

/// The longest failure summary the leader records (longer ones are cut).
pub const MAX_FAILURE_REPORT: usize = 2048;
/// How often the leader records a summary from one member.
pub const FAILURE_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(20);
/// How the leader clears the console certificate for a voter that ran `certraft-node
/// console-reset` (issue 16): given the asking node's id, it proposes `ClearConsole` through
/// the node's one propose path (the version gate, the audit). Supplied by the node's wiring,
/// which owns that path.
pub type ConsoleResetHook = Arc<
    dyn Fn(
            NodeId,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ProposeError>> + Send>>
        + Send
        + Sync,
>;

impl PeerClient {
    /// Hands the leader this node's summary of failed sign-ins (an audit record there).
    pub async fn report_failures(&self, report: &FailureReport) -> Result<(), ProposeError> {
        let failed = |e: String| ProposeError::Failed(e);
        let client = self.client.as_ref().map_err(|e| failed(e.clone()))?;
        let resp = client
            .post(format!("{}/failures", self.base))
            .header("content-type", CBOR)
            .timeout(std::time::Duration::from_secs(10))
            .body(to_cbor(report))
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "node {} answered {status}: {}",
                self.target,
                String::from_utf8_lossy(&body)
            )));
        }
        ciborium::from_reader::<Result<(), ProposeError>, _>(&body[..])
            .map_err(|e| failed(e.to_string()))?
    }

    /// Asks the leader to commit an offline-made admin token. `NotAllowed` is final; the
    /// other errors may clear on a retry.
    pub async fn propose_admin_token(
        &self,
        proposal: &AdminTokenProposal,
    ) -> Result<(), ProposeError> {
        self.propose("propose", proposal).await
    }

    /// Asks the leader to clear the console certificate (this node ran `certraft-node
    /// console-reset`). `NotAllowed` is final; the other errors may clear on a retry.
    pub async fn propose_console_reset(&self) -> Result<(), ProposeError> {
        self.propose("console-reset", &()).await
    }

    async fn propose<T: Serialize>(&self, route: &str, body: &T) -> Result<(), ProposeError> {
        let failed = |e: String| ProposeError::Failed(e);
        let client = self.client.as_ref().map_err(|e| failed(e.clone()))?;
        let resp = client
            .post(format!("{}/{route}", self.base))
            .header("content-type", CBOR)
            .timeout(std::time::Duration::from_secs(10))
            .body(to_cbor(body))
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
        let text = || String::from_utf8_lossy(&body).into_owned();
        if status == StatusCode::FORBIDDEN {
            return Err(ProposeError::NotAllowed(text()));
        }
        if !status.is_success() {
            return Err(failed(format!(
                "node {} answered {status}: {}",
                self.target,
                text()
            )));
        }
        ciborium::from_reader::<Result<(), ProposeError>, _>(&body[..])
            .map_err(|e| failed(e.to_string()))?
    }
}

/// On the leader: commits an admin token a voter made offline. A learner may not (a traffic
/// node must never mint credentials); a name already in use is refused, so no member can
/// replace an operator's token; the actor and time are the leader's, never the peer's.
pub(super) async fn propose(
    State(port): State<Port>,
    Extension(peer): Extension<PeerNode>,
    Cbor(p): Cbor<AdminTokenProposal>,
) -> Response {
    if !port.members.is_voter(peer.id) {
        return cbor_reply(&Err::<(), _>(ProposeError::NotAllowed(format!(
            "node {} is not a voter: run `certraft-node admin-token` on a voter's data dir",
            peer.id
        ))));
    }
    let req = crate::inventory::Request::new(
        format!("node {} (certraft-node admin-token)", peer.id),
        crate::clock::unix_now(),
        crate::inventory::Command::CreateAdminToken {
            token: crate::inventory::AdminToken {
                name: p.name,
                secret_sha256: p.secret_sha256,
                created_at: crate::clock::unix_now(),
                created_by: format!("node {}", peer.id),
            },
        },
    );
    let result = match port.raft.client_write(req).await {
        Ok(resp) => match resp.data {
            Some(Ok(_)) => Ok(()),
            Some(Err(refusal)) => Err(ProposeError::NotAllowed(refusal.to_string())),
            None => Err(ProposeError::Failed("the entry answered nothing".into())),
        },
        Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader(f.leader_id.unwrap_or(0)))
        }
        Err(e) => Err(ProposeError::Failed(e.to_string())),
    };
    cbor_reply(&result)
}

/// On the leader: a member's summary of failed sign-ins on its admin port becomes an audit
/// record, attributed to that member. Any member may report (a traffic node sees sign-ins
/// too); what it can write is bounded: one record per [`FAILURE_REPORT_EVERY`], at most
/// [`MAX_FAILURE_REPORT`] bytes, control characters escaped by `apply`, refused-class (the
/// first records to go when the log is full), and always prefixed with its node id.
pub(super) async fn record_failures(
    State(port): State<Port>,
    Extension(peer): Extension<PeerNode>,
    Cbor(report): Cbor<FailureReport>,
) -> Response {
    {
        let mut last = port.reports.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if last
            .get(&peer.id)
            .is_some_and(|t| now.duration_since(*t) < FAILURE_REPORT_EVERY)
        {
            return cbor_reply(&Err::<(), _>(ProposeError::NotAllowed(format!(
                "node {} reported failed sign-ins less than {} s ago",
                peer.id,
                FAILURE_REPORT_EVERY.as_secs()
            ))));
        }
        last.insert(peer.id, now);
    }
    let mut summary = report.summary;
    if summary.len() > MAX_FAILURE_REPORT {
        let mut cut = MAX_FAILURE_REPORT;
        while !summary.is_char_boundary(cut) {
            cut -= 1;
        }
        summary.truncate(cut);
        summary.push('…');
    }
    let req = crate::inventory::Request::new(
        "certraft-node",
        crate::clock::unix_now(),
        crate::inventory::Command::Record {
            what: format!("node {}: {summary}", peer.id),
            result: "refused".into(),
        },
    );
    let result = match port.raft.client_write(req).await {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader(f.leader_id.unwrap_or(0)))
        }
        Err(e) => Err(ProposeError::Failed(e.to_string())),
    };
    cbor_reply(&result)
}

/// On the leader: clears the console certificate for a voter whose operator ran
/// `certraft-node console-reset` on it (its marker stays until this commits). A learner may
/// not (a traffic node never changes the cluster); the entry goes through the node's propose
/// path, so the version gate and the audit apply as to any write.
pub(super) async fn clear_console(
    State(port): State<Port>,
    Extension(peer): Extension<PeerNode>,
) -> Response {
    if !port.members.is_voter(peer.id) {
        return cbor_reply(&Err::<(), _>(ProposeError::NotAllowed(format!(
            "node {} is not a voter, and a traffic node cannot change the cluster: clear the console certificate with `certraft console reset`",
            peer.id
        ))));
    }
    cbor_reply(&(port.console_reset)(peer.id).await)
}
