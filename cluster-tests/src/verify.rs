//! After the faults: every node caught up, a final read of every register (recorded, so a
//! lost acknowledged write fails the linearizability check), and every serving node
//! presenting the same certificate for every register's host name; then every node's state
//! digest at one applied index, which must be equal (issue 22's divergence check).

use std::time::{Duration, Instant};

use crate::checker::{Call, Outcome};
use crate::cluster::Cluster;
use crate::fixtures;
use crate::history::History;
use crate::workload::{operate, Versions};

/// Waits until every running node has applied the leader's commit index; the time taken.
pub async fn converged(c: &Cluster, limit: Duration) -> Duration {
    let t0 = Instant::now();
    c.wait_for(
        "every node to apply the leader's commit index",
        limit,
        || async {
            let leader = c.leader().await.ok_or("no leader")?;
            let status = c
                .admin()
                .get(&c.nodes[leader].admin_url(), "/api/v1/cluster")
                .await
                .map_err(|e| e.to_string())?;
            let committed = status.body["committed"].as_u64().ok_or("no commit index")?;
            for (i, n) in c.nodes.iter().enumerate() {
                let v = c.readyz(i).await.map_err(|e| format!("{}: {e}", n.label))?;
                let applied = v["last_applied"].as_u64().unwrap_or(0);
                if applied < committed {
                    return Err(format!("{} applied {applied} < {committed}", n.label));
                }
                let serving = v["serving_applied"].as_u64().unwrap_or(0);
                if n.role.serves() && serving < committed {
                    return Err(format!("{} serves index {serving} < {committed}", n.label));
                }
            }
            Ok(())
        },
    )
    .await;
    t0.elapsed()
}

/// Reads every register through the leader (recorded in `history`), then checks that every
/// serving node presents the register's certificate for its host name, or the cluster
/// default ([`fixtures::default_body`]) where the register is absent.
pub async fn same_everywhere(c: &Cluster, history: &History, versions: &Versions) {
    let leader = c.leader().await.expect("a leader after healing");
    let base = c.nodes[leader].admin_url();
    let prober = crate::client::Prober::default();
    for k in 0..fixtures::KEYS {
        let held = operate(
            c.admin(),
            &base,
            history,
            versions,
            usize::MAX - 1,
            k,
            Call::Read,
        )
        .await
        .unwrap_or_else(|e| panic!("final read of {}: {e}", fixtures::name(k)));
        let mut first: Option<(String, Vec<u8>)> = None;
        for n in c.nodes.iter().filter(|n| n.role.serves()) {
            let leaf = prober
                .leaf(&n.serve_addr(), &fixtures::host(k), Duration::from_secs(5))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", n.label));
            match held {
                Outcome::Holds(v) => assert!(
                    leaf == fixtures::leaf(k, v),
                    "{} does not serve version {v} of {} for {}",
                    n.label,
                    fixtures::name(k),
                    fixtures::host(k)
                ),
                _ => assert!(
                    leaf == fixtures::default_leaf(),
                    "{} does not serve the cluster default for {} ({} is absent)",
                    n.label,
                    fixtures::host(k),
                    fixtures::name(k)
                ),
            }
            match &first {
                None => first = Some((n.label.clone(), leaf)),
                Some((label, other)) => assert!(
                    *other == leaf,
                    "{} and {label} serve different certificates for {}",
                    n.label,
                    fixtures::host(k)
                ),
            }
        }
    }
}

/// Waits until every node reports its state digest at the same applied index, then fails if
/// any two differ: the replicas diverged, whatever they serve.
pub async fn same_state(c: &Cluster, limit: Duration) {
    let digests = c
        .wait_for(
            "every node to report its state digest at one applied index",
            limit,
            || async {
                let mut seen = Vec::new();
                for (i, n) in c.nodes.iter().enumerate() {
                    let v = c.readyz(i).await.map_err(|e| format!("{}: {e}", n.label))?;
                    let index = v["digest_index"].as_u64();
                    let digest = v["state_digest"]
                        .as_str()
                        .ok_or_else(|| format!("{}: no state digest in {v}", n.label))?
                        .to_string();
                    seen.push((n.label.clone(), index, digest));
                }
                if seen.windows(2).all(|w| w[0].1 == w[1].1) {
                    Ok(seen)
                } else {
                    Err(format!("{seen:?}"))
                }
            },
        )
        .await;
    let (label, index, digest) = &digests[0];
    for (other, _, d) in &digests[1..] {
        assert!(
            d == digest,
            "replicas diverged: at applied index {index:?} {label} has state digest {digest} and {other} has {d}"
        );
    }
}
