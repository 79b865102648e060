//! Before the leader asks the CA to validate an order, every serving member must answer
//! its challenges: they confirm, in `/readyz`, that they applied the order's entry.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::api::server::AppState;
use crate::inventory::NodeRole;

/// How long the leader waits for every serving member to apply a challenge before it asks
/// the CA to validate anyway (a member that is down cannot answer either way).
const APPLIED_WAIT: Duration = Duration::from_secs(30);

/// Waits until every serving member reports it applied what this leader has applied (so it
/// answers the challenges just committed), at most [`APPLIED_WAIT`].
pub(super) async fn wait_applied(st: &AppState) {
    let (target, members) = {
        let m = st.raft.metrics();
        let m = m.borrow();
        let target = m.last_applied.map(|l| l.index).unwrap_or(0);
        let members: Vec<(u64, String)> = m
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, n)| **id != st.node_id && n.role != Some(NodeRole::Witness))
            .map(|(id, n)| (*id, n.admin_addr.clone()))
            .collect();
        (target, members)
    };
    let deadline = Instant::now() + APPLIED_WAIT;
    let mut waiting = members;
    loop {
        // Every member is asked at once: one slow or dead member costs its 2 s once.
        let mut probes = JoinSet::new();
        for (id, addr) in waiting {
            let peers = st.peers.clone();
            probes.spawn(async move {
                let applied = async {
                    let r = peers
                        .get(format!("https://{addr}/readyz"))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                        .ok()?;
                    let v: serde_json::Value = r.json().await.ok()?;
                    v["last_applied"].as_u64()
                }
                .await;
                (id, addr, applied)
            });
        }
        let mut still = Vec::new();
        while let Some(Ok((id, addr, applied))) = probes.join_next().await {
            if applied.is_none_or(|a| a < target) {
                still.push((id, addr));
            }
        }
        waiting = still;
        if waiting.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let ids: Vec<String> = waiting.iter().map(|(id, _)| id.to_string()).collect();
            tracing::warn!(nodes = %ids.join(", "), index = target, "these serving nodes did not confirm the challenge within 30 s; asking the CA to validate anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
