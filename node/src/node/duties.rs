//! The background duties, each a task on the node's tracker that stops with its token:
//! keeping the cluster port's allow-list and the revoked list current, and, on the leader
//! only ([`while_leading`]), promoting caught-up voters, enabling features, rotating
//! session-ticket keys and auditing failed sign-ins. A duty's effects go through Raft, so a
//! new leader resumes where the old one stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use tokio_util::sync::CancellationToken;

use crate::api::server::AppState;
use crate::bundle::Keyring;
use crate::clock::unix_now as now;
use crate::datadir::DataDir;
use crate::inventory::{AdminToken, Command, NodeRole, Request};
use crate::raft::network::Network;
use crate::raft::tls::{self, Members};
use crate::raft::{raft_stopped, NodeInfo, Raft};

/// Logs, once, that the Raft core stopped and why (see [`raft_stopped`]).
pub(super) async fn watch_raft(
    raft: Raft,
    node_id: u64,
    data_dir: std::path::PathBuf,
    cancel: CancellationToken,
) {
    let mut rx = raft.metrics();
    loop {
        // openraft records the fatal error in the metrics, then drops their sender: look
        // once more after the channel closes.
        let closed = tokio::select! {
            changed = rx.changed() => changed.is_err(),
            _ = cancel.cancelled() => return,
        };
        if let Err(fatal) = &rx.borrow_and_update().running_state {
            tracing::error!(data_dir = %data_dir.display(), "{}", raft_stopped(node_id, fatal));
            return;
        }
        if closed {
            return;
        }
    }
}

/// Keeps the cluster port's allow-list equal to the Raft membership. A joining node keeps
/// the grant's members until it has received a membership of its own.
pub(super) async fn track_membership(
    raft: Raft,
    members: Members,
    have_own: bool,
    cancel: CancellationToken,
) {
    let mut rx = raft.metrics();
    let mut seen_own = have_own;
    loop {
        {
            let m = rx.borrow_and_update();
            let ids: Vec<u64> = m
                .membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect();
            if ids.contains(&m.id) {
                seen_own = true;
            }
            if seen_own && !ids.is_empty() {
                let mut allowed = tls::members_of(m.membership_config.membership());
                allowed.entry(m.id).or_insert(tls::Member {
                    cert_sha256: None,
                    voter: false,
                });
                members.set(allowed);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

/// Keeps `DATA/revoked-nodes.txt` equal to the replicated list of removed members'
/// certificates (one SHA-256 hex per line), so the CLI next to `ca.pem` refuses a removed
/// node's certificate before it sends a token (issue 19), and gives the cluster port the
/// list, so a removed node is told why it is refused (issue 22). Checked after every apply.
pub(super) async fn publish_revoked(
    raft: Raft,
    sm: crate::store::StateMachineStore,
    members: Members,
    path: std::path::PathBuf,
    cancel: CancellationToken,
) {
    let mut rx = raft.metrics();
    let (mut written, mut given) = (None, None);
    loop {
        let inv = sm.inventory();
        let now = (inv.revoked_node_certs.clone(), inv.epoch);
        if given.as_ref() != Some(&now) {
            members.set_revoked(&now.0, now.1);
            given = Some(now);
        }
        let revoked = &inv.revoked_node_certs;
        if written.as_ref() != Some(revoked) {
            let mut text = String::from(
                "# certraft: certificates of removed cluster members (SHA-256). Kept current by\n# certraft-node; the certraft CLI refuses a server presenting one. Copy it beside\n# ca.pem wherever the CLI runs.\n",
            );
            for (sha, node) in revoked {
                text.push_str(&format!("{sha} node-{node}\n"));
            }
            match crate::datadir::write_atomic(&path, text.as_bytes(), 0o644) {
                Ok(()) => written = Some(revoked.clone()),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the revoked-certificate list; retrying on the next change")
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

/// On the leader: learners that joined as voters or witnesses become voters once their
/// replicated log is within a few entries of the leader's. Also records this node's own
/// addresses in the membership when they changed (a restart with new flags, or `recover`,
/// which does not know them).
pub(super) async fn promote_caught_up(raft: Raft, self_info: NodeInfo, cancel: CancellationToken) {
    const MAX_LAG: u64 = 16;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        let m = raft.metrics().borrow().clone();
        if m.current_leader != Some(m.id) {
            continue;
        }
        let membership = m.membership_config.membership();
        if membership.get_node(&m.id).is_some_and(|n| n != &self_info) {
            let change = ChangeMembers::SetNodes(BTreeMap::from([(m.id, self_info.clone())]));
            match raft.change_membership(change, true).await {
                Ok(_) => tracing::info!(info = %self_info, "recorded this node's addresses"),
                Err(e) => tracing::warn!(error = %e, "could not record this node's addresses"),
            }
            continue;
        }
        let Some(repl) = &m.replication else { continue };
        let last = m.last_log_index.unwrap_or(0);
        let voters: Vec<u64> = membership.voter_ids().collect();
        let ready: std::collections::BTreeSet<u64> = membership
            .nodes()
            .filter(|(id, info)| {
                !voters.contains(id)
                    && matches!(info.role, Some(NodeRole::Voter) | Some(NodeRole::Witness))
                    && repl
                        .get(id)
                        .cloned()
                        .flatten()
                        .is_some_and(|l| last.saturating_sub(l.index) <= MAX_LAG)
            })
            .map(|(id, _)| *id)
            .collect();
        if ready.is_empty() {
            continue;
        }
        match raft
            .change_membership(ChangeMembers::AddVoterIds(ready.clone()), true)
            .await
        {
            Ok(_) => {
                tracing::info!(nodes = ?ready, "promoted caught-up nodes to voters");
                // Who votes is security-relevant: each promotion is audited (issue 19).
                for id in &ready {
                    let req = Request::new(
                        "certraft-node",
                        now(),
                        Command::Record {
                            what: format!("promote node {id} to voter"),
                            result: "ok".into(),
                        },
                    );
                    match tokio::time::timeout(Duration::from_secs(10), raft.client_write(req))
                        .await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(node = id, error = %e, "promotion not audited")
                        }
                        Err(_) => tracing::warn!(
                            node = id,
                            "promotion not audited: no commit within 10 s"
                        ),
                    }
                }
            }
            Err(e) => tracing::warn!(nodes = ?ready, error = %e, "promotion failed; retrying"),
        }
    }
}

/// Replicates the admin token made at bootstrap or by `certraft-node admin-token`, once a
/// leader can commit it; then forgets the pending file. A follower hands it to the leader
/// over the cluster port, which accepts it only from a voter and only under a new name.
pub(super) async fn replicate_pending_token(
    state: Arc<AppState>,
    dd: DataDir,
    network: Network,
    cancel: CancellationToken,
) {
    let Some((name, hash)) = dd.pending_admin_token() else {
        return;
    };
    let proposal = crate::raft::network::AdminTokenProposal {
        name: name.clone(),
        secret_sha256: hash,
    };
    let mut warned = false;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let m = state.raft.metrics().borrow().clone();
        use crate::raft::network::ProposeError;
        let result: Result<(), ProposeError> = match m.current_leader {
            Some(leader) if leader == m.id => {
                let req = Request::new(
                    "certraft-node",
                    now(),
                    Command::CreateAdminToken {
                        token: AdminToken {
                            name: name.clone(),
                            secret_sha256: hash,
                            created_at: now(),
                            created_by: format!("node {} (certraft-node)", m.id),
                        },
                    },
                );
                match tokio::time::timeout(Duration::from_secs(10), state.raft.client_write(req))
                    .await
                {
                    Ok(Ok(resp)) => match resp.data {
                        Some(Err(refusal)) => Err(ProposeError::NotAllowed(refusal.to_string())),
                        _ => Ok(()),
                    },
                    Ok(Err(e)) => Err(ProposeError::Failed(e.to_string())),
                    Err(_) => Err(ProposeError::Failed("no commit within 10 s".into())),
                }
            }
            // A follower hands it to the leader over the cluster port (mutual TLS).
            Some(leader) => match leader_client(&network, &m, leader).await {
                Ok(client) => client.propose_admin_token(&proposal).await,
                Err(e) => Err(ProposeError::Failed(e)),
            },
            None => Err(ProposeError::Failed("no leader known yet".into())),
        };
        match result {
            Ok(()) => {
                dd.clear_pending_admin_token();
                tracing::info!(token = %name, "admin token replicated");
                return;
            }
            Err(e @ ProposeError::NotAllowed(_)) => {
                tracing::error!(token = %name, "the admin token made offline was refused: {e}");
                dd.clear_pending_admin_token();
                return;
            }
            Err(e) if !warned && m.current_leader.is_some() => {
                warned = true;
                tracing::warn!(token = %name, error = %e, "admin token not replicated yet; retrying");
            }
            Err(e) => tracing::debug!(token = %name, error = %e, "admin token not replicated yet"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// A client of the leader's cluster port (mutual TLS), from the membership's address for it.
async fn leader_client(
    network: &Network,
    m: &openraft::RaftMetrics<u64, crate::raft::NodeInfo>,
    leader: u64,
) -> Result<crate::raft::network::PeerClient, String> {
    let info = m
        .membership_config
        .membership()
        .get_node(&leader)
        .ok_or_else(|| format!("leader {leader} has no known address yet"))?;
    Ok(openraft::network::RaftNetworkFactory::new_client(&mut network.clone(), leader, info).await)
}

/// Once a minute: the failed sign-ins this node saw become one audit record through Raft:
/// proposed here on the leader, handed to the leader over the cluster port elsewhere (which
/// records it as this node's); a log line when neither works. Never one entry per attempt.
pub(super) async fn audit_failed_sign_ins(
    state: Arc<AppState>,
    network: Network,
    cancel: CancellationToken,
) {
    // Tests shorten the interval; operators have no reason to.
    let every = std::env::var("CERTRAFT_FAILURE_AUDIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
        }
        let Some(summary) = state.failures.take_summary() else {
            continue;
        };
        let m = state.raft.metrics().borrow().clone();
        let recorded = match m.current_leader {
            Some(leader) if leader == state.node_id => {
                let record = Command::Record {
                    what: format!("node {}: {summary}", state.node_id),
                    result: "refused".into(),
                };
                state
                    .propose("certraft-node", record)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            }
            Some(leader) => match leader_client(&network, &m, leader).await {
                Ok(client) => {
                    let report = crate::raft::network::FailureReport {
                        summary: summary.clone(),
                    };
                    client
                        .report_failures(&report)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e),
            },
            None => Err("no leader known".into()),
        };
        if let Err(e) = recorded {
            tracing::warn!(%summary, error = %e, "failed sign-ins on this node's admin port in the last minute (not audited)");
        }
    }
}

/// On the leader: proposes each [`crate::inventory::Feature`] not yet on; the gate in
/// `AppState::propose` lets it through only once every member reports it can apply it, and
/// answers `upgrade_required` (logged once a minute) until then.
pub(super) async fn enable_features(state: Arc<AppState>, cancel: CancellationToken) {
    let waiting = crate::log_limit::RateLimitedLog::new(Duration::from_secs(60));
    let (raft, me) = (state.raft.clone(), state.node_id);
    while_leading(raft, me, Duration::from_secs(1), cancel, || async {
        let on = state.sm.inventory().features.clone();
        for feature in crate::inventory::Feature::ALL {
            if on.contains(&feature) {
                continue;
            }
            match state
                .propose("certraft-node", Command::EnableFeature { feature })
                .await
            {
                Ok(_) => tracing::info!(
                    feature = feature.name(),
                    "every member can apply it: feature enabled"
                ),
                Err(crate::api::error::AppError::UpgradeRequired(why)) => {
                    if waiting.admit(std::time::Instant::now()).is_some() {
                        tracing::info!(feature = feature.name(), %why, "feature waits for every member to be upgraded");
                    }
                }
                Err(e) => {
                    tracing::debug!(feature = feature.name(), error = ?e, "feature not enabled yet")
                }
            }
        }
    })
    .await;
}

/// How often the leader adds a new session-ticket key (three are kept).
pub(super) const TICKET_KEY_ROTATION_SECS: i64 = 12 * 3600;

/// On the leader: adds a session-ticket key when there is none or the newest is older than
/// [`TICKET_KEY_ROTATION_SECS`].
pub(super) async fn rotate_ticket_keys(
    raft: Raft,
    me: u64,
    sm: crate::store::StateMachineStore,
    keyring: Arc<Keyring>,
    cancel: CancellationToken,
) {
    let write = raft.clone();
    while_leading(raft, me, Duration::from_millis(500), cancel, || async {
        let inv = sm.inventory();
        let newest = inv.ticket_keys.last();
        if newest.is_some_and(|k| now() - k.created_at < TICKET_KEY_ROTATION_SECS) {
            return;
        }
        let id = newest.map(|k| k.id + 1).unwrap_or(1);
        let req = Request::new(
            "certraft-node",
            now(),
            Command::AddTicketKey {
                key: crate::tls::tickets::new_key(id, &keyring, now()),
            },
        );
        match tokio::time::timeout(Duration::from_secs(10), write.client_write(req)).await {
            Ok(Ok(_)) => tracing::info!(key = id, "rotated the session-ticket key"),
            Ok(Err(e)) => tracing::debug!(error = %e, "session-ticket key rotation deferred"),
            Err(_) => tracing::debug!("session-ticket key rotation timed out"),
        }
    })
    .await;
}

/// The shape of every leader-only duty (renewals and ACME orders will use it too): every
/// `every`, while this node leads, runs `tick`; a tick is dropped the moment this node
/// loses office (its effects are Raft entries, so the new leader's duty resumes from the
/// replicated state), and the loop ends when `cancel` fires.
pub(super) async fn while_leading<F, Fut>(
    raft: Raft,
    me: u64,
    every: Duration,
    cancel: CancellationToken,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut rx = raft.metrics();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if rx.borrow_and_update().current_leader != Some(me) {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick() => {}
            _ = rx.wait_for(|m| m.current_leader != Some(me)) => {
                tracing::debug!("lost office during a leader duty; its tick is dropped");
            }
        }
    }
}
