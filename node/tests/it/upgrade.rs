//! Mixed versions (issue 22): the previous build of `certraft-node` (`.ci/previous-release`,
//! built by `.ci/build-previous.sh`, path in `CERTRAFT_PREV_NODE_BIN`) and this one in one
//! cluster. The previous build applies request version 1 only and reports no
//! `apply_version`; this build's version-2 entry (`EnableFeature`) must wait until it is
//! upgraded, while everything else replicates to it as before.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::cluster::{Cluster, Options, PATIENCE};
use crate::support::uploads::TestCert;

const FEATURE: &str = "revoke_removed_members";

/// The previous build, or `None` (with the reason printed) outside CI when it is not built.
fn previous_build() -> Option<PathBuf> {
    match std::env::var_os("CERTRAFT_PREV_NODE_BIN") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but CERTRAFT_PREV_NODE_BIN is not set; .ci/run builds it with .ci/build-previous.sh")
        }
        None => {
            eprintln!("skipped: CERTRAFT_PREV_NODE_BIN is not set; run .ci/build-previous.sh and set it to the path it prints");
            None
        }
    }
}

fn has_feature(v: &Value) -> bool {
    v["features"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == FEATURE))
}

/// A cluster bootstrapped by the previous build, joined by two nodes of this build: after
/// leadership moves to this build, the feature is not enabled while the previous build is a
/// member (the leader logs which member holds it back), and the previous build keeps
/// applying every write and stays ready. Upgraded in place (same data dir), it reports
/// version 2, the leader enables the feature, every node applies it, and all three show one
/// state digest at one index; a removal then revokes the removed node's certificate.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_entry_version_waits_for_the_previous_build_and_follows_its_upgrade() {
    let Some(prev) = previous_build() else {
        return;
    };
    let mut c = Cluster::new(Options {
        binary: Some(prev),
        ..Options::default()
    });
    c.bootstrap().await;
    c.options.binary = None;
    c.join(0).await;
    c.join(0).await;
    c.wait_all_voting().await;

    // Leadership moves to this build: the previous build's node restarts.
    if c.leader().await == 0 {
        c.stop(&[0]).await;
        c.leader().await;
        c.restart(0).await;
    }
    let leader = c.leader().await;
    assert_ne!(leader, 0);
    let old_id = c.nodes[0].id;
    c.wait_for(
        "the leader to name what holds the feature back",
        PATIENCE,
        || {
            let log = c.nodes[leader].stdout() + &c.nodes[leader].stderr();
            async move {
                if log.contains("feature waits for every member to be upgraded")
                    && log.contains(&format!("node {old_id} applies up to version 1"))
                {
                    Ok(())
                } else {
                    Err(log)
                }
            }
        },
    )
    .await;
    let imported = c
        .api(leader)
        .post(
            "/api/v1/certs",
            &TestCert::new("mixed.example.test").import(None),
        )
        .await
        .ok("an import while the previous build is a member");
    assert_eq!(imported["outcome"], "imported", "{imported}");
    let status = c.api(leader).get("/api/v1/cluster").await.ok("status");
    let index = status["committed"].as_u64().unwrap();
    assert!(
        !has_feature(&status),
        "enabled beside the previous build: {status}"
    );
    c.wait_for(
        "the previous build to apply every write",
        PATIENCE,
        || async {
            let r = c.readyz(0).await?;
            match r.0["last_applied"].as_u64() {
                Some(a) if a >= index && r.0["ready"] == true => Ok(()),
                _ => Err(r.to_string()),
            }
        },
    )
    .await;

    // Upgraded in place: the gate opens and every node applies the feature.
    c.stop(&[0]).await;
    c.nodes[0].binary = None;
    c.restart(0).await;
    for i in 0..3 {
        let c = &c;
        c.wait_for("the feature on every node", PATIENCE, || async move {
            let r = c.readyz(i).await?;
            if has_feature(&r.0) {
                Ok(())
            } else {
                Err(r.to_string())
            }
        })
        .await;
    }
    c.assert_one_state().await;

    // And it works: a removal revokes the removed node's certificate.
    let leader = c.leader().await;
    let removed = (1..3).find(|&i| i != leader).unwrap();
    let id = c.nodes[removed].id;
    c.api(leader)
        .delete(&format!("/api/v1/cluster/nodes/{id}"))
        .await
        .ok("remove a node");
    let list = c.nodes[0]
        .data_dir
        .join(certraft::api::dto::REVOKED_NODES_FILE);
    c.wait_for("the removed node on the revoked list", PATIENCE, || {
        let text = std::fs::read_to_string(&list).unwrap_or_default();
        async move {
            if text.contains(&format!(" node-{id}")) {
                Ok(())
            } else {
                Err(text)
            }
        }
    })
    .await;
}
