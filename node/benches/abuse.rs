//! What abuse costs the service (issue 19): one node's serve-port handshake rate and
//! `/healthz` latency, at rest and while
//! - 50 clients keep sending worst-case key files to the import route (an encrypted PKCS#8
//!   key at the PBKDF2 iteration cap, dry runs: no Raft entry, only the KDF), and
//! - 10,000 idle TCP connections from 200 source addresses sit on the admin port (each
//!   source keeps reopening what is closed).
//!
//! Run: `cargo bench -p certraft-node --bench abuse`. `CERTRAFT_NODE_BIN=/path/to/old/
//! certraft-node` measures another build the same way (the numbers "before" in
//! BENCHMARKS.md come from the commit before the fix). `PHASE_SECS` (default 8);
//! `NODE_NOFILE=1024` runs the node under that open-files limit (a common default). The node
//! is pinned to CPU 0; the load runs on the other core.

// A measuring tool, like a test: it stops on anything unexpected.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use support::*;

fn main() {
    block_on(run());
}

/// The PBKDF2 iteration count of the worst key file the node accepts.
const KDF_ITERATIONS: u32 = 10_000_000;

struct Phase {
    name: &'static str,
    handshakes_per_s: f64,
    handshake_failures: u64,
    healthz: Vec<Duration>,
    healthz_failures: u64,
}

async fn run() {
    let secs: u64 = env_or("PHASE_SECS", 8);
    let bin = node_bin();
    println!(
        "abuse bench: {bin}, {secs} s per phase, node pinned to CPU 0, open-files limit {}",
        std::env::var("NODE_NOFILE").unwrap_or_else(|_| "inherited".into())
    );
    let pki = Pki::generate(1, "abuse.test");
    let leaf = &pki.leaves[0];
    let c = Cluster::start_with(1, Some("0"), &bin).await;
    let node = &c.nodes[0];
    let url = node.url();
    let files = |key_pem: &str| {
        json!({"files": [
            {"name": "leaf.pem", "data": base64::engine::general_purpose::STANDARD.encode(pem_of("CERTIFICATE", &leaf.der))},
            {"name": "key.pem", "data": base64::engine::general_purpose::STANDARD.encode(key_pem)},
            {"name": "chain.pem", "data": base64::engine::general_purpose::STANDARD.encode(pem_of("CERTIFICATE", &pki.intermediate_der))},
        ]})
    };
    let mut body = files(&pem_of("PRIVATE KEY", &leaf.key_pkcs8));
    body["make_default"] = json!(true);
    c.post(&format!("{url}/api/v1/certs"), &body).await;
    let started = Instant::now();
    let bomb = capped_key(&leaf.key_pkcs8, "bench passphrase");
    println!(
        "made the worst-case key file ({KDF_ITERATIONS} PBKDF2 iterations) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut upload = files(&bomb);
    upload["passphrase"] = json!("bench passphrase");
    upload["dry_run"] = json!(true);

    let mut phases = Vec::new();
    phases.push(measure("at rest", node, &c.ca_pem, &leaf.der, secs).await);

    // 50 uploaders of the worst-case key.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, auth, url, upload) = (
            c.client.clone(),
            c.auth.clone(),
            format!("{url}/api/v1/certs"),
            upload.clone(),
        );
        let (stop, answered) = (stop.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(&url)
                    .header("authorization", &auth)
                    .timeout(Duration::from_secs(60))
                    .json(&upload)
                    .send()
                    .await;
                if r.is_ok() {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    phases.push(
        measure(
            "50 worst-case key uploads",
            node,
            &c.ca_pem,
            &leaf.der,
            secs,
        )
        .await,
    );
    stop_all(&stop, tasks);
    println!(
        "  uploads answered during the phase: {}",
        answered.load(Ordering::Relaxed)
    );
    // Let the uploads in flight drain before the next phase.
    tokio::time::sleep(Duration::from_secs(15)).await;

    // 10,000 idle connections from 200 sources.
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for source in 0..200u32 {
        let ip = IpAddr::from([127, 0, (2 + source / 250) as u8, (2 + source % 250) as u8]);
        let (stop, held, port) = (stop.clone(), held.clone(), node.admin);
        tasks.push(tokio::spawn(async move {
            let mut open: Vec<tokio::net::TcpStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                open.retain(|s| s.peer_addr().is_ok() && !closed(s));
                while open.len() < 50 {
                    match connect_from(ip, port).await {
                        Ok(s) => open.push(s),
                        Err(_) => break,
                    }
                }
                held.store(
                    held.load(Ordering::Relaxed).max(open.len() as u64),
                    Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    phases.push(
        measure(
            "10,000 idle admin connections",
            node,
            &c.ca_pem,
            &leaf.der,
            secs,
        )
        .await,
    );
    stop_all(&stop, tasks);

    println!();
    println!("| phase | handshakes/s | vs at rest | failed handshakes | /healthz p50 | p99 | max | /healthz failed |");
    println!("|---|---|---|---|---|---|---|---|");
    let base = phases[0].handshakes_per_s;
    for p in &mut phases {
        p.healthz.sort();
        let (p50, p99, max) = if p.healthz.is_empty() {
            ("-".into(), "-".into(), "-".into())
        } else {
            (
                ms(pct(&p.healthz, 0.5)),
                ms(pct(&p.healthz, 0.99)),
                ms(*p.healthz.last().unwrap()),
            )
        };
        println!(
            "| {} | {:.0} | {:.2} | {} | {p50} | {p99} | {max} | {} |",
            p.name,
            p.handshakes_per_s,
            p.handshakes_per_s / base,
            p.handshake_failures,
            p.healthz_failures
        );
    }
}

/// An encrypted PKCS#8 PEM of `key` with PBKDF2-HMAC-SHA256 at [`KDF_ITERATIONS`].
fn capped_key(key_pkcs8: &[u8], passphrase: &str) -> String {
    use pkcs8::der::pem::LineEnding;
    let info = pkcs8::PrivateKeyInfo::try_from(key_pkcs8).expect("PKCS#8");
    let params =
        pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(KDF_ITERATIONS, &[7; 16], &[9; 16])
            .expect("PBES2 parameters");
    let doc = info
        .encrypt_with_params(params, passphrase)
        .expect("encrypt");
    doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .expect("PEM")
        .to_string()
}

/// Ends a phase's load: tells the tasks to stop and aborts any still waiting on a request.
fn stop_all(stop: &AtomicBool, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
}

fn closed(s: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(s.try_read(&mut buf), Ok(0))
}

async fn connect_from(ip: IpAddr, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    tokio::time::timeout(
        Duration::from_secs(1),
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await
    .map_err(|_| std::io::Error::other("connect timed out"))?
}

/// `secs` of a 16-connection handshake loop on the serve port, and a `/healthz` probe on a
/// fresh connection every 100 ms.
async fn measure(name: &'static str, node: &Node, ca_pem: &[u8], want: &[u8], secs: u64) -> Phase {
    let end = Instant::now() + Duration::from_secs(secs);
    let connector = tokio_rustls::TlsConnector::from(load_client(None));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for _ in 0..16 {
        let (connector, done, failed, want, port) = (
            connector.clone(),
            done.clone(),
            failed.clone(),
            want.to_vec(),
            node.serve,
        );
        loops.push(tokio::spawn(async move {
            while Instant::now() < end {
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    request(&connector, port, "h0.abuse.test", &want),
                )
                .await
                {
                    Ok(Outcome::Ok { .. }) => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let fresh = reqwest::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates({
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(
                        pem::parse(ca_pem)
                            .expect("CA PEM")
                            .contents()
                            .to_vec()
                            .into(),
                    )
                    .expect("CA");
                roots
            })
            .with_no_client_auth(),
        )
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut healthz = Vec::new();
    let mut healthz_failures = 0;
    let started = Instant::now();
    while Instant::now() < end {
        let t = Instant::now();
        match fresh.get(format!("{}/healthz", node.url())).send().await {
            Ok(r) if r.status() == 200 => healthz.push(t.elapsed()),
            _ => healthz_failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(t.elapsed())).await;
    }
    for l in loops {
        let _ = l.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let phase = Phase {
        name,
        handshakes_per_s: done.load(Ordering::Relaxed) as f64 / elapsed,
        handshake_failures: failed.load(Ordering::Relaxed),
        healthz,
        healthz_failures,
    };
    println!(
        "{name}: {:.0} handshakes/s, {} failed; /healthz {} answered, {} failed",
        phase.handshakes_per_s,
        phase.handshake_failures,
        phase.healthz.len(),
        phase.healthz_failures
    );
    phase
}
