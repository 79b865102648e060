//! Cluster benchmark on loopback: three real `certraft-node` processes.
//!
//! 1. Import-acknowledged latency: sequential imports (each a fresh P-256 bundle) sent to the
//!    leader; p50/p99 of the time from sending the request to the 200 (fsynced on a majority,
//!    applied on the leader).
//! 2. Throughput: the same with 16 concurrent clients.
//! 3. Failover: `kill -9` of the leader, then imports to the survivors until one is
//!    acknowledged; the time from the kill to that acknowledgement, over `RUNS` runs (the
//!    killed node is restarted and caught up between runs).
//!
//! Run: `cargo bench -p certraft-node --bench cluster` (env `RUNS`, `N` override the counts).

// A measuring tool, like a test: it stops on anything unexpected.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use support::{ms, pct, readyz, wait_for, Cluster, Node};

/// A fresh, distinct P-256 bundle as an import request body.
fn bundle(i: usize) -> Value {
    let host = format!("b{i}-{}.bench.test", std::process::id());
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![host.clone()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let b64 = |s: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(s);
    json!({"name": host, "files": [
        {"name": "cert.der", "data": b64(cert.der().to_vec())},
        {"name": "key.der", "data": b64(key.serialize_der())},
    ]})
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let verbose = std::env::var("VERBOSE").is_ok();
    let cluster = Cluster::start(3, None).await;
    let c = cluster.client.clone();
    let auth = cluster.auth.clone();
    let mut nodes = cluster.nodes;
    println!(
        "3-node loopback cluster up ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let leader_of = |v: &Value| v["leader"].as_u64();
    let leader_url = |nodes: &[Node], id: u64| {
        nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.url())
            .expect("leader")
    };
    let leader = leader_of(&readyz(&c, &nodes[0]).await.expect("readyz")).expect("leader");
    let lurl = leader_url(&nodes, leader);

    // 1. Sequential ack latency.
    let bodies: Vec<Value> = (0..n).map(bundle).collect();
    let mut lat = Vec::with_capacity(n);
    for b in &bodies {
        let t0 = Instant::now();
        let r = c
            .post(format!("{lurl}/api/v1/certs"))
            .header("authorization", &auth)
            .json(b)
            .send()
            .await
            .expect("import");
        assert!(
            r.status().is_success(),
            "import failed: {}",
            r.text().await.unwrap_or_default()
        );
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "import ack latency (sequential, n={n}): p50 {}  p99 {}  max {}",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().expect("samples"))
    );

    // 2. Throughput with 16 concurrent clients.
    let bodies: Vec<Value> = (n..3 * n).map(bundle).collect();
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let chunks: Vec<Vec<Value>> = bodies
        .chunks(bodies.len().div_ceil(16))
        .map(|c| c.to_vec())
        .collect();
    for chunk in chunks {
        let c = c.clone();
        let auth = auth.clone();
        let lurl = lurl.clone();
        set.spawn(async move {
            let mut lat = Vec::new();
            for b in chunk {
                let t = Instant::now();
                let r = c
                    .post(format!("{lurl}/api/v1/certs"))
                    .header("authorization", &auth)
                    .json(&b)
                    .send()
                    .await
                    .expect("import");
                assert!(r.status().is_success());
                lat.push(t.elapsed());
            }
            lat
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = set.join_next().await {
        lat.extend(r.expect("client task"));
    }
    let elapsed = t0.elapsed();
    lat.sort();
    println!(
        "import throughput (16 clients, n={}): {:.0} acks/s  p50 {}  p99 {}",
        lat.len(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );

    // 3. Leader kill → next acknowledged write.
    let mut failover = Vec::with_capacity(runs);
    for run in 0..runs {
        let probe = nodes.iter().find(|n| n.is_running()).expect("a live node");
        let leader = leader_of(&readyz(&c, probe).await.expect("readyz")).expect("leader");
        let idx = nodes
            .iter()
            .position(|n| n.id == leader)
            .expect("leader node");
        let body = bundle(10_000 + run);
        let t0 = Instant::now();
        nodes[idx].kill9();
        let survivors: Vec<String> = nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.url())
            .collect();
        let mut k = 0;
        loop {
            let url = &survivors[k % survivors.len()];
            k += 1;
            let r = c
                .post(format!("{url}/api/v1/certs"))
                .header("authorization", &auth)
                .timeout(Duration::from_secs(5))
                .json(&body)
                .send()
                .await;
            let ok = match r {
                Ok(r) => {
                    let st = r.status();
                    if verbose && !st.is_success() {
                        eprintln!(
                            "  {:?} {url}: {st} {}",
                            t0.elapsed(),
                            r.text().await.unwrap_or_default()
                        );
                    }
                    st.is_success()
                }
                Err(e) => {
                    if verbose {
                        eprintln!("  {:?} {url}: {e}", t0.elapsed());
                    }
                    false
                }
            };
            if ok {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no ack within 30 s after the leader kill"
            );
        }
        failover.push(t0.elapsed());
        nodes[idx].start(None);
        let node = &nodes[idx];
        wait_for(
            "restarted node caught up",
            Duration::from_secs(30),
            || async {
                readyz(&c, node)
                    .await
                    .is_some_and(|v| v["voting"] == true && v["ready"] == true)
            },
        )
        .await;
        // The restarted node must hold everything before the next kill.
        let others: Vec<&Node> = nodes.iter().filter(|n| n.id != node.id).collect();
        wait_for(
            "restarted node matched the others",
            Duration::from_secs(30),
            || async {
                let mine = readyz(&c, node)
                    .await
                    .and_then(|v| v["last_applied"].as_u64());
                let mut theirs = None;
                for o in &others {
                    theirs =
                        theirs.max(readyz(&c, o).await.and_then(|v| v["last_applied"].as_u64()));
                }
                mine.is_some() && mine >= theirs
            },
        )
        .await;
    }
    failover.sort();
    println!(
        "leader kill -9 -> next ack (runs={runs}): median {}  p99 {}  max {}",
        ms(pct(&failover, 0.5)),
        ms(pct(&failover, 0.99)),
        ms(*failover.last().expect("runs"))
    );
    println!("goals: p99 ack < 50 ms; leader loss -> next ack < 2 s p99 (etcd's default election timeout is 1 s)");
}
