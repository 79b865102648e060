//! Serving-plane benchmark (issue 4), side by side with Debian's nginx and HAProxy.
//! `CERTRAFT_NODE_BIN=/path/to/certraft-node` measures another build of the node (the same
//! load generator), for before/after comparisons.
//!
//! Parts (env `PARTS`, default all three):
//!
//! - `throughput`: a single `certraft-node`, nginx (one `server` block per certificate,
//!   one worker) and HAProxy (`crt-list`, one thread) serve the same `SIZES` (default
//!   1,000 and 10,000) ECDSA P-256 certificates with a leaf + intermediate chain. Each server
//!   is pinned to CPU 0, this load generator to CPU 1. Per request: a new TCP connection, a
//!   full TLS 1.3 handshake (X25519, no resumption) with the SNI cycling over all names,
//!   `GET /`, the answer read to the end; the served leaf is checked byte for byte. Reports
//!   requests/s, requests per server-CPU-second (from /proc utime+stime of the server's
//!   processes) and both sides' CPU use. Then the same with session resumption.
//! - `cold`: certraft with `COLD` (default 10,000 and 100,000) bundles in its Raft store:
//!   SIGTERM, restart, time until it serves the last-imported name's certificate; RSS then,
//!   and after a pass over every name (every key opened). nginx and HAProxy at the
//!   throughput sizes: time from start to serving the last name.
//! - `commit`: a 3-node cluster with `COMMIT_N` (default 10,000) bundles (restored into the
//!   first node, which the other two then join); `COMMITS` (100)
//!   imports through the leader, each polled on every node's serve port (back-to-back
//!   handshakes) until it serves the new certificate: time from the 200 and from the
//!   request to served on all three.
//!
//! Run: `cargo bench -p certraft-node --bench serve` (env `SECS`, `RUNS`, `CONC` too).

// A measuring tool, like a test: it stops on anything unexpected.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use certraft_cluster_tests::ports::free_port;
use serde_json::json;
use support::*;

fn main() {
    // The load generator runs on CPU 1, the servers on CPU 0.
    pin_to_cpu1();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let parts: String = env_or("PARTS", "throughput,cold,commit".to_string());
    if parts.contains("throughput") {
        throughput().await;
    }
    if parts.contains("cold") {
        cold().await;
    }
    if parts.contains("commit") {
        commit().await;
    }
}

fn sizes(var: &str, default: &str) -> Vec<usize> {
    env_or(var, default.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// A server under test: its port and the processes whose CPU counts.
struct Target {
    label: &'static str,
    port: u16,
    pids: Vec<u32>,
}

#[derive(Clone, Copy, Default)]
struct Stats {
    per_sec: f64,
    per_cpu_sec: f64,
    server_util: f64,
    gen_util: f64,
    failed: u64,
    mismatched: u64,
    resumed_share: f64,
}

/// Drives `target` with `conc` connections at a time over `names` for `secs` seconds (after
/// one warm-up pass over every name).
async fn measure(
    target: &Target,
    names: &Arc<Vec<(String, Vec<u8>)>>,
    resume: bool,
    conc: usize,
    secs: f64,
) -> Stats {
    // rustls sizes its cache in tickets, 8 per server name: room for every name.
    let config = load_client(resume.then(|| names.len() * 8 + 64));
    let connector = tokio_rustls::TlsConnector::from(config);

    let next = Arc::new(AtomicUsize::new(0));
    let (ok, failed, mismatched, resumed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let drive = |until: Option<Instant>, limit: Option<usize>| {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..conc {
            let (connector, names, next) = (connector.clone(), names.clone(), next.clone());
            let (ok, failed, mismatched, resumed) = (
                ok.clone(),
                failed.clone(),
                mismatched.clone(),
                resumed.clone(),
            );
            let port = target.port;
            set.spawn(async move {
                let mut last_error = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if limit.is_some_and(|l| i >= l) || until.is_some_and(|u| Instant::now() >= u) {
                        break;
                    }
                    let (sni, want) = &names[i % names.len()];
                    match request(&connector, port, sni, want).await {
                        Outcome::Ok {
                            resumed: r,
                            leaf_matches,
                        } => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if r {
                                resumed.fetch_add(1, Ordering::Relaxed);
                            }
                            if !leaf_matches {
                                mismatched.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Outcome::Failed(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            last_error = Some(e);
                        }
                    }
                }
                last_error
            });
        }
        set
    };
    // Warm-up: every name once (opens lazily loaded keys, fills the session cache).
    let mut set = drive(None, Some(names.len()));
    while set.join_next().await.is_some() {}
    for c in [&ok, &failed, &mismatched, &resumed] {
        c.store(0, Ordering::Relaxed);
    }
    let me = std::process::id();
    let server_cpu = |pids: &[u32]| pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    let (s0, g0, t0) = (server_cpu(&target.pids), cpu_seconds(me), Instant::now());
    let mut set = drive(Some(t0 + Duration::from_secs_f64(secs)), None);
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Some(e)) = r {
            errors.push(e);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (s1, g1) = (server_cpu(&target.pids), cpu_seconds(me));
    let n = ok.load(Ordering::Relaxed) as f64;
    if let Some(e) = errors.first() {
        println!("    {}: e.g. {e}", target.label);
    }
    Stats {
        per_sec: n / wall,
        per_cpu_sec: n / (s1 - s0).max(0.01),
        server_util: (s1 - s0) / wall,
        gen_util: (g1 - g0) / wall,
        failed: failed.load(Ordering::Relaxed),
        mismatched: mismatched.load(Ordering::Relaxed),
        resumed_share: resumed.load(Ordering::Relaxed) as f64 / n.max(1.0),
    }
}

/// Writes `leaf + intermediate` PEMs, keys and HAProxy's combined files for `pki`.
fn write_files(dir: &Path, pki: &Pki) {
    std::fs::create_dir_all(dir).expect("cert dir");
    let chain = pem_of("CERTIFICATE", &pki.intermediate_der);
    for l in &pki.leaves {
        let crt = format!("{}{chain}", pem_of("CERTIFICATE", &l.der));
        let key = pem_of("PRIVATE KEY", &l.key_pkcs8);
        std::fs::write(dir.join(format!("{}.crt", l.name)), &crt).expect("crt");
        std::fs::write(dir.join(format!("{}.key", l.name)), &key).expect("key");
        std::fs::write(dir.join(format!("{}.pem", l.name)), format!("{crt}{key}")).expect("pem");
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn pinned(cmd: &str) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg("0").arg(cmd);
    c
}

/// nginx with one `server` block per certificate, one worker, pinned to CPU 0.
fn start_nginx(dir: &Path, certs: &Path, pki: &Pki, n: usize, port: u16) -> Child {
    std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
    let mut conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\n\
         events {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  \
         server_names_hash_bucket_size 128;\n  server_names_hash_max_size 262144;\n  \
         client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3;\n  \
         uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;\n  ssl_protocols TLSv1.2 TLSv1.3;\n",
        d = dir.display()
    );
    for (i, l) in pki.leaves[..n].iter().enumerate() {
        conf.push_str(&format!(
            "  server {{ listen 127.0.0.1:{port} ssl{}; server_name {name}; \
             ssl_certificate {c}/{name}.crt; ssl_certificate_key {c}/{name}.key; \
             return 200 \"ok\\n\"; }}\n",
            if i == 0 { " default_server" } else { "" },
            name = l.name,
            c = certs.display()
        ));
    }
    conf.push_str("}\n");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("nginx.conf");
    pinned("nginx")
        .arg("-e")
        .arg(dir.join("logs/error.log"))
        .arg("-c")
        .arg(&path)
        .arg("-g")
        .arg("daemon off;")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nginx")
}

/// HAProxy with a `crt-list` of every certificate, one thread, pinned to CPU 0.
fn start_haproxy(dir: &Path, certs: &Path, pki: &Pki, n: usize, port: u16) -> Child {
    std::fs::create_dir_all(dir).expect("haproxy dir");
    let list: String = pki.leaves[..n]
        .iter()
        .map(|l| format!("{}/{}.pem\n", certs.display(), l.name))
        .collect();
    std::fs::write(dir.join("crt-list"), list).expect("crt-list");
    let conf = format!(
        "global\n  nbthread 1\n  maxconn 4096\n\ndefaults\n  mode http\n  timeout connect 5s\n  \
         timeout client 30s\n  timeout server 30s\n\nfrontend fe\n  \
         bind 127.0.0.1:{port} ssl crt-list {d}/crt-list prefer-client-ciphers\n  \
         http-request return status 200 content-type text/plain string \"ok\"\n",
        d = dir.display()
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).expect("haproxy.cfg");
    pinned("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn haproxy")
}

/// Polls until `port` presents `want` for `sni`; the time from `since`.
async fn until_serving(
    port: u16,
    sni: &str,
    want: &[u8],
    since: Instant,
    limit: Duration,
) -> Duration {
    loop {
        if let Ok(der) = served_leaf(port, sni).await {
            if der == want {
                return since.elapsed();
            }
        }
        assert!(
            since.elapsed() < limit,
            "port {port} did not serve {sni} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn row(label: &str, n: usize, s: &Stats) {
    println!(
        "  {label:<9} {n:>6}  {:>8.0}/s  {:>8.0}/CPU-s  server CPU {:>4.0}%  loadgen CPU {:>4.0}%  resumed {:>4.0}%  failed {}  wrong leaf {}",
        s.per_sec,
        s.per_cpu_sec,
        s.server_util * 100.0,
        s.gen_util * 100.0,
        s.resumed_share * 100.0,
        s.failed,
        s.mismatched
    );
}

fn median_by(v: &mut [Stats], key: fn(&Stats) -> f64) -> Stats {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    v[v.len() / 2]
}

async fn throughput() {
    let sizes = sizes("SIZES", "1000,10000");
    let secs: f64 = env_or("SECS", 5.0);
    let runs: usize = env_or("RUNS", 3);
    let conc: usize = env_or("CONC", 32);
    let max = *sizes.iter().max().expect("a size");
    let tmp = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    let pki = Pki::generate(max, "bench.test");
    let certs = tmp.path().join("certs");
    write_files(&certs, &pki);
    println!(
        "throughput: {max} P-256 leaves + intermediate generated in {:.1} s; {runs} runs of {secs} s, {conc} connections in flight",
        t.elapsed().as_secs_f64()
    );
    let peers: Vec<&str> = ["nginx", "haproxy"]
        .into_iter()
        .filter(|p| {
            let ok = have(p);
            if !ok {
                println!("  {p} not installed (apt-get install {p}): skipped");
            }
            ok
        })
        .collect();
    let cluster = Cluster::start(1, Some("0")).await;
    let mut loaded = 0;
    for &n in &sizes {
        let took = cluster.restore(&pki, loaded..n).await;
        loaded = n;
        let names: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
            pki.leaves[..n]
                .iter()
                .map(|l| (l.name.clone(), l.der.clone()))
                .collect(),
        );
        let last = &names[n - 1];
        let node = &cluster.nodes[0];
        until_serving(
            node.serve,
            &last.0,
            &last.1,
            Instant::now(),
            Duration::from_secs(60),
        )
        .await;
        println!(
            "\n{n} certificates (certraft loaded through restore in {:.1} s)",
            took.as_secs_f64()
        );
        let mut targets = vec![Target {
            label: "certraft",
            port: node.serve,
            pids: vec![node.pid()],
        }];
        let mut children = Vec::new();
        for &p in &peers {
            let port = free_port();
            let dir = tmp.path().join(format!("{p}-{n}"));
            let t0 = Instant::now();
            let mut child = if p == "nginx" {
                start_nginx(&dir, &certs, &pki, n, port)
            } else {
                start_haproxy(&dir, &certs, &pki, n, port)
            };
            let took = loop {
                if let Ok(der) = served_leaf(port, &last.0).await {
                    if der == last.1 {
                        break t0.elapsed();
                    }
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{p} exited ({status}) before serving; its config and logs are in {}",
                        dir.display()
                    );
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(300),
                    "{p} did not serve within 300 s"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let pids = process_tree(child.id());
            let rss: f64 = pids.iter().map(|&p| rss_mib(p).0).sum();
            println!(
                "  {p}: start to serving the last name {:.2} s, RSS {rss:.0} MiB",
                took.as_secs_f64()
            );
            if child.try_wait().ok().flatten().is_some() {
                panic!("{p} exited");
            }
            targets.push(Target {
                label: if p == "nginx" { "nginx" } else { "haproxy" },
                port,
                pids,
            });
            children.push(child);
        }
        for t in &targets {
            if let Ok((_, suite)) = probe(t.port, &last.0).await {
                println!("  {}: negotiates {suite}", t.label);
            }
        }
        for resume in [false, true] {
            println!(
                "  {}",
                if resume {
                    "resumed TLS 1.3 handshakes (tickets):"
                } else {
                    "full TLS 1.3 handshakes:"
                }
            );
            let mut all: HashMap<&str, Vec<Stats>> = HashMap::new();
            for run in 0..runs {
                for t in &targets {
                    let s = measure(t, &names, resume, conc, secs).await;
                    if std::env::var_os("VERBOSE").is_some() {
                        row(&format!("{}#{run}", t.label), n, &s);
                    }
                    all.entry(t.label).or_default().push(s);
                }
            }
            let mut medians = Vec::new();
            for t in &targets {
                let m = median_by(all.get_mut(t.label).expect("runs"), |s| s.per_cpu_sec);
                row(t.label, n, &m);
                medians.push((t.label, m));
            }
            let ours = medians[0].1;
            for (label, m) in &medians[1..] {
                println!(
                    "  certraft / {label}: {:.2}x per server-CPU-second, {:.2}x per second",
                    ours.per_cpu_sec / m.per_cpu_sec,
                    ours.per_sec / m.per_sec
                );
            }
        }
        for mut c in children {
            kill(&mut c);
        }
    }
}

async fn cold() {
    let sizes = sizes("COLD", "10000,100000");
    let runs: usize = env_or("RUNS", 3);
    let max = *sizes.iter().max().expect("a size");
    let t = Instant::now();
    let pki = Pki::generate(max, "cold.test");
    println!(
        "\ncold start: {max} leaves generated in {:.1} s; certraft pinned to CPU 0, {runs} restarts per size",
        t.elapsed().as_secs_f64()
    );
    let mut cluster = Cluster::start(1, Some("0")).await;
    let mut loaded = 0;
    for &n in &sizes {
        let took = cluster.restore(&pki, loaded..n).await;
        loaded = n;
        let last = &pki.leaves[n - 1];
        let mut times = Vec::new();
        let mut rss = (0.0, 0.0);
        for _ in 0..runs {
            let node = &mut cluster.nodes[0];
            node.stop();
            let t0 = Instant::now();
            node.start(None);
            times.push(
                until_serving(
                    node.serve,
                    &last.name,
                    &last.der,
                    t0,
                    Duration::from_secs(120),
                )
                .await,
            );
            rss = rss_mib(node.pid());
        }
        times.sort();
        // Every name once: every key opened.
        let node = &cluster.nodes[0];
        let names: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
            pki.leaves[..n]
                .iter()
                .map(|l| (l.name.clone(), l.der.clone()))
                .collect(),
        );
        let target = Target {
            label: "certraft",
            port: node.serve,
            pids: vec![node.pid()],
        };
        let _ = measure(&target, &names, false, 32, 0.0).await;
        let warm = rss_mib(node.pid());
        println!(
            "  {n:>6} bundles (loaded in {:.1} s): restart to serving the last name median {} (min {}, max {}); RSS {:.0} MiB at first answer (peak {:.0}), {:.0} MiB with every key opened (peak {:.0})",
            took.as_secs_f64(),
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(*times.last().expect("runs")),
            rss.0,
            rss.1,
            warm.0,
            warm.1
        );
    }
}

async fn commit() {
    let n: usize = env_or("COMMIT_N", 10_000);
    let commits: usize = env_or("COMMITS", 100);
    let pki = Pki::generate(n + commits, "commit.test");
    // Loaded on one node, then two voters join and catch up from its snapshot: restoring
    // 100,000 bundles through three nodes sharing this host's two cores crawls.
    let mut cluster = Cluster::start(1, None).await;
    let took = cluster.restore(&pki, 0..n).await;
    let t_join = Instant::now();
    cluster.grow(3, None, Duration::from_secs(600)).await;
    println!(
        "  two voters joined and caught up in {:.1} s",
        t_join.elapsed().as_secs_f64()
    );
    let leader = cluster.leader_url().await;
    let last = &pki.leaves[n - 1];
    for node in &cluster.nodes {
        until_serving(
            node.serve,
            &last.name,
            &last.der,
            Instant::now(),
            Duration::from_secs(60),
        )
        .await;
    }
    println!(
        "\ncommit -> served: 3-node loopback cluster with {n} bundles (loaded in {:.1} s), {commits} imports through the leader",
        took.as_secs_f64()
    );
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let (mut from_ack, mut from_send, mut ack) = (Vec::new(), Vec::new(), Vec::new());
    for l in &pki.leaves[n..n + commits] {
        let body = json!({"name": l.name, "files": [
            {"name": "leaf.der", "data": b64(&l.der)},
            {"name": "chain.der", "data": b64(&pki.intermediate_der)},
            {"name": "key.der", "data": b64(&l.key_pkcs8)},
        ]});
        let t0 = Instant::now();
        cluster.post(&format!("{leader}/api/v1/certs"), &body).await;
        let acked = t0.elapsed();
        let poll = |i: usize| {
            until_serving(
                cluster.nodes[i].serve,
                &l.name,
                &l.der,
                t0,
                Duration::from_secs(10),
            )
        };
        let (a, b, c) = tokio::join!(poll(0), poll(1), poll(2));
        let served = a.max(b).max(c);
        if std::env::var_os("VERBOSE").is_some() && served > acked + Duration::from_millis(50) {
            println!(
                "    {}: ack {} served on nodes 1/2/3 after {} / {} / {}",
                l.name,
                ms(acked),
                ms(a),
                ms(b),
                ms(c)
            );
        }
        ack.push(acked);
        from_send.push(served);
        from_ack.push(served.saturating_sub(acked));
    }
    for v in [&mut ack, &mut from_send, &mut from_ack] {
        v.sort();
    }
    let line = |what: &str, v: &[Duration]| {
        println!(
            "  {what:<34} p50 {}  p99 {}  max {}",
            ms(pct(v, 0.5)),
            ms(pct(v, 0.99)),
            ms(*v.last().expect("samples"))
        )
    };
    line("import acknowledged", &ack);
    line("acknowledged -> served on all 3", &from_ack);
    line("sent -> served on all 3", &from_send);
}
