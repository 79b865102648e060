//! Finishing `certraft-node console-reset` (issue 16): a node started with the marker
//! `DATA/console-reset` presents only its node certificate on the admin port (so it is
//! reachable by node address whatever the console setting, even with its peers down), and
//! clears the console certificate cluster-wide as soon as it can: on the leader it proposes
//! `ClearConsole` itself, on a voter it asks the leader over the cluster port
//! (`POST /raft/console-reset`); both go through [`AppState::propose`], so the version gate
//! and the audit apply. The marker is removed, and the setting honoured again, once that
//! entry is committed. A traffic node (learner) proposes nothing: it keeps the marker until
//! the cluster's setting is empty (an operator ran `certraft console reset`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::error::AppError;
use crate::api::server::AppState;
use crate::datadir::DataDir;
use crate::inventory::{Command, NodeRole};
use crate::raft::network::{ConsoleResetHook, Network, ProposeError};
use crate::tls::console::AdminCerts;

/// How often an unfinished reset is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How long a committed reset may take to be applied here before the reset is lifted.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// The leader's side of `POST /raft/console-reset`: `ClearConsole` on behalf of node `by`.
pub(super) fn hook(state: Arc<AppState>) -> ConsoleResetHook {
    Arc::new(move |by| {
        let state = state.clone();
        Box::pin(async move { clear(&state, by).await })
    })
}

/// Proposes `ClearConsole` here (the leader) for node `by`'s `console-reset`.
async fn clear(state: &AppState, by: u64) -> Result<(), ProposeError> {
    let actor = format!("node {by} (certraft-node console-reset)");
    match state.propose(&actor, Command::ClearConsole).await {
        Ok(_) => Ok(()),
        Err(AppError::Refused(r)) => Err(ProposeError::NotAllowed(r.to_string())),
        Err(e) => Err(ProposeError::Failed(format!("{e:?}"))),
    }
}

/// Runs until the reset is finished (or the node stops); returns at once without a marker.
pub(super) async fn finish(
    state: Arc<AppState>,
    admin: Arc<AdminCerts>,
    dd: DataDir,
    network: Network,
    role: NodeRole,
    cancel: CancellationToken,
) {
    if !admin.reset_pending() {
        return;
    }
    tracing::warn!(
        marker = %dd.path(crate::datadir::CONSOLE_RESET).display(),
        "console reset (certraft-node console-reset): the admin port presents only this node's certificate; clearing the console certificate cluster-wide"
    );
    let mut warned = false;
    loop {
        let result = attempt(&state, &network, role).await;
        match result {
            Ok(()) => {
                // Committed; wait (bounded) until this node has applied it, so lifting the
                // reset never shows the old setting for a moment.
                let deadline = tokio::time::Instant::now() + APPLY_WAIT;
                while state.sm.inventory().console.is_some()
                    && tokio::time::Instant::now() < deadline
                    && !cancel.is_cancelled()
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if let Err(e) = dd.clear_console_reset() {
                    tracing::error!(error = %e, "the console certificate is cleared, but the reset marker stays; remove it by hand");
                }
                admin.end_reset();
                tracing::info!("console reset finished: the console certificate is cleared cluster-wide; every client gets the node certificate until `certraft console cert NAME --hostname H` sets one again");
                return;
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "console reset not finished yet; retrying (the admin port keeps presenting the node certificate)");
            }
            Err(e) => tracing::debug!(error = %e, "console reset not finished yet"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// One try: `Ok` once the cluster's console setting is committed empty.
async fn attempt(state: &AppState, network: &Network, role: NodeRole) -> Result<(), String> {
    let m = state.raft.metrics().borrow().clone();
    let Some(leader) = m.current_leader else {
        return Err("no leader known yet".into());
    };
    if role == NodeRole::Learner {
        // A traffic node changes nothing: it waits for the setting to be empty.
        return match state.sm.inventory().console.as_ref() {
            None => Ok(()),
            Some(c) => Err(format!(
                "a traffic node cannot clear the console certificate ({} for {}); run `certraft console reset`",
                c.name,
                c.hostnames.join(", ")
            )),
        };
    }
    if leader == state.node_id {
        return clear(state, state.node_id).await.map_err(|e| e.to_string());
    }
    let info = m
        .membership_config
        .membership()
        .get_node(&leader)
        .ok_or_else(|| format!("leader {leader} has no known address yet"))?;
    let client =
        openraft::network::RaftNetworkFactory::new_client(&mut network.clone(), leader, info).await;
    match client.propose_console_reset().await {
        Ok(()) => Ok(()),
        // Final for this node's role (it was demoted): wait for the setting as a learner does.
        Err(ProposeError::NotAllowed(why)) if state.sm.inventory().console.is_some() => Err(why),
        Err(ProposeError::NotAllowed(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
