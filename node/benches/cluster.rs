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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_certraft-node");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Node {
    id: u64,
    dir: PathBuf,
    admin: u16,
    cluster: u16,
    serve: u16,
    child: Option<Child>,
}

impl Node {
    fn new(root: &Path, id: u64) -> Node {
        Node {
            id,
            dir: root.join(format!("n{id}")),
            admin: free_port(),
            cluster: free_port(),
            serve: free_port(),
            child: None,
        }
    }

    fn start(&mut self, join: Option<(&str, &str)>) {
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--admin")
            .arg(format!("127.0.0.1:{}", self.admin))
            .arg("--cluster")
            .arg(format!("127.0.0.1:{}", self.cluster))
            .arg("--serve")
            .arg(format!("127.0.0.1:{}", self.serve))
            .env("CERTRAFT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((url, token)) = join {
            cmd.arg("--join").arg(url).arg("--join-token").arg(token);
        }
        self.child = Some(cmd.spawn().expect("spawn certraft-node"));
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.admin)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client(ca_pem: &[u8]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    let der = pem::parse(ca_pem).expect("ca.pem").into_contents();
    roots.add(der.into()).expect("CA as root");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz(c: &reqwest::Client, n: &Node) -> Option<Value> {
    let r = c.get(format!("{}/readyz", n.url())).send().await.ok()?;
    r.json().await.ok()
}

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

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
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
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::new(tmp.path(), id)).collect();
    nodes[0].start(None);
    let token_path = nodes[0].dir.join("admin.token");
    wait_for("bootstrap", Duration::from_secs(20), || {
        let p = token_path.clone();
        async move { p.exists() && p.with_file_name("ca.pem").exists() }
    })
    .await;
    let token = std::fs::read_to_string(&token_path).expect("token");
    let token = token.trim().to_string();
    let c = client(&std::fs::read(nodes[0].dir.join("ca.pem")).expect("ca"));
    let auth = format!("Bearer {token}");
    wait_for("node 1 ready", Duration::from_secs(20), || async {
        readyz(&c, &nodes[0])
            .await
            .is_some_and(|v| v["ready"] == true)
    })
    .await;
    for i in 1..3 {
        let t: Value = c
            .post(format!("{}/api/v1/cluster/join-tokens", nodes[0].url()))
            .header("authorization", &auth)
            .json(&json!({"role": "voter"}))
            .send()
            .await
            .expect("join token")
            .json()
            .await
            .expect("join token json");
        let url = nodes[0].url();
        nodes[i].start(Some((&url, t["token"].as_str().expect("token"))));
        let node = &nodes[i];
        wait_for("joiner voting", Duration::from_secs(30), || async {
            readyz(&c, node).await.is_some_and(|v| v["voting"] == true)
        })
        .await;
    }
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
        let probe = nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node");
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
            .filter(|n| n.child.is_some())
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
