//! Cluster routes: status, join tokens, member removal (joining itself is `join.rs`).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use openraft::ChangeMembers;

use super::dto::*;
use super::error::AppError;
use super::server::*;
use crate::bundle::assemble::fmt_time;
use crate::clock::unix_now as now;
use crate::config::JoinToken as JoinTokenText;
use crate::datadir::{random_hex, token_hash};
use crate::inventory::{Command, JoinToken, NodeRole};

pub(super) fn role_text(role: Option<NodeRole>) -> String {
    match role {
        Some(NodeRole::Voter) | None => "voter",
        Some(NodeRole::Learner) => "learner",
        Some(NodeRole::Witness) => "witness",
    }
    .into()
}

pub(super) async fn cluster_status(State(st): State<S>) -> Result<Json<ClusterStatus>, AppError> {
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

pub(super) async fn create_join_token(
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

pub(super) async fn remove_node(
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
