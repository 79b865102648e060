//! The feature gate for new entry versions (issue 22). An entry is stamped with the lowest
//! request version that can apply its command ([`crate::inventory::Command::min_version`]);
//! one newer than 1 is proposed only once every member of the membership reports, in its
//! `/readyz` (`apply_version`), that it can apply it. A member that does not answer counts
//! as unable: proposing anyway would stop that member's apply until it is upgraded.
//! Once a [`crate::inventory::Feature`] vouching for the version is on (every member said
//! so, through Raft), the gate no longer asks: a member that is down then must not hold
//! back the leader's duties, and it can apply what it missed when it returns.

use std::time::Duration;

use super::error::AppError;
use super::server::AppState;
use crate::inventory::REQUEST_VERSION;

/// How long one member has to answer `/readyz`.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// `Ok` when every member can apply entries of version `needed`.
pub async fn check(st: &AppState, needed: u16) -> Result<(), AppError> {
    if needed <= 1 {
        return Ok(());
    }
    if vouched(&st.sm.inventory().features) >= needed {
        return Ok(());
    }
    let members: Vec<(u64, String)> = st
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, n)| (*id, n.admin_addr.clone()))
        .collect();
    let mut answers = Vec::with_capacity(members.len());
    for (id, addr) in members {
        let v = if id == st.node_id {
            Ok(REQUEST_VERSION)
        } else {
            ask(&st.peers, &addr).await
        };
        answers.push((id, v));
    }
    verdict(needed, &answers)
}

/// The highest request version an enabled feature vouches for (0: none).
pub fn vouched(features: &std::collections::BTreeSet<crate::inventory::Feature>) -> u16 {
    features.iter().map(|f| f.vouches_for()).max().unwrap_or(0)
}

/// Member `addr`'s `apply_version`; a node from before the field applies version 1.
async fn ask(peers: &reqwest::Client, addr: &str) -> Result<u16, String> {
    let r = peers
        .get(format!("https://{addr}/readyz"))
        .timeout(ASK_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    Ok(v["apply_version"]
        .as_u64()
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(1))
}

/// The gate's decision from each member's answer.
pub fn verdict(needed: u16, answers: &[(u64, Result<u16, String>)]) -> Result<(), AppError> {
    let not_yet: Vec<String> = answers
        .iter()
        .filter_map(|(id, v)| match v {
            Ok(v) if *v >= needed => None,
            Ok(v) => Some(format!("node {id} applies up to version {v}")),
            Err(e) => Some(format!(
                "node {id} did not say ({})",
                crate::inventory::escape_controls(e)
            )),
        })
        .collect();
    if not_yet.is_empty() {
        return Ok(());
    }
    Err(AppError::UpgradeRequired(format!(
        "this change is written as request version {needed}, which every member must be able to apply first; not yet: {}",
        not_yet.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the version-3 feature vouches, and only for versions up to 3.
    #[test]
    fn an_enabled_feature_vouches_for_its_version_only() {
        use crate::inventory::Feature;
        let mut on = std::collections::BTreeSet::from([Feature::RevokeRemovedMembers]);
        assert_eq!(vouched(&on), 0);
        on.insert(Feature::RequestVersion3);
        assert_eq!(vouched(&on), 3);
        assert!(vouched(&on) < crate::inventory::REQUEST_VERSION + 1);
    }

    /// Every member at or above the version passes; one behind or silent refuses, named.
    #[test]
    fn the_gate_opens_only_when_every_member_can_apply() {
        assert!(verdict(2, &[(1, Ok(2)), (2, Ok(3))]).is_ok());
        match verdict(2, &[(1, Ok(2)), (2, Ok(1)), (3, Err("timed out".into()))]) {
            Err(AppError::UpgradeRequired(m)) => {
                assert!(m.contains("node 2 applies up to version 1"), "{m}");
                assert!(m.contains("node 3 did not say (timed out)"), "{m}");
                assert!(!m.contains("node 1"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}
