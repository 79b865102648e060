//! What the benches share: real `certraft-node` processes on loopback, the admin client,
//! a P-256 PKI (root → intermediate → leaves), loading bundles through a backup restore, and
//! a TLS probe that reports the leaf a serve port answers with.

#![allow(dead_code)] // each bench uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use certraft_cluster_tests::process::{poll, NodeCommand, NodeProcess, Output, Ports};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_certraft-node");

/// The `certraft-node` to measure: `$CERTRAFT_NODE_BIN` (another build, side by side), else
/// this build's.
pub(crate) fn node_bin() -> String {
    std::env::var("CERTRAFT_NODE_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// Re-runs this bench pinned to CPU 1 (the servers it starts go on CPU 0) when `taskset` is
/// there (this returns only in the pinned run); answers whether the CPUs are split.
pub(crate) fn pin_to_cpu1() -> bool {
    let have_taskset = Command::new("taskset").arg("-V").output().is_ok();
    if have_taskset && std::env::var_os("CERTRAFT_BENCH_PINNED").is_none() {
        let me = std::env::current_exe().expect("own path");
        let status = Command::new("taskset")
            .arg("-c")
            .arg("1")
            .arg(me)
            .args(std::env::args_os().skip(1))
            .env("CERTRAFT_BENCH_PINNED", "1")
            .status()
            .expect("re-run pinned to CPU 1");
        std::process::exit(status.code().unwrap_or(1));
    }
    if !have_taskset {
        println!("taskset not found: servers and load generator are not pinned");
    }
    have_taskset
}

/// Runs a bench's `run` on a 2-worker runtime (the benches' client side).
pub(crate) fn block_on<F: std::future::Future>(run: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run)
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64
}

pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `certraft-node` process (optionally pinned to CPUs with `taskset`), started through
/// the harness every suite shares ([`NodeCommand`]).
pub(crate) struct Node {
    pub id: u64,
    pub dir: PathBuf,
    pub admin: u16,
    pub cluster: u16,
    pub serve: u16,
    /// `--http` (ACME HTTP-01), on a free port of its own.
    pub http: u16,
    pub process: Option<NodeProcess>,
    /// `taskset -c` list, e.g. "0".
    pub cpus: Option<String>,
    /// The `certraft-node` binary ([`BIN`] unless a bench measures another build).
    pub bin: String,
}

impl Node {
    pub(crate) fn new(root: &Path, id: u64) -> Node {
        let ports = Ports::free();
        Node {
            id,
            dir: root.join(format!("n{id}")),
            admin: ports.admin,
            cluster: ports.cluster,
            serve: ports.serve,
            http: certraft_cluster_tests::ports::free_port(),
            process: None,
            cpus: None,
            bin: node_bin(),
        }
    }

    pub(crate) fn start(&mut self, join: Option<(&str, &str)>) {
        let ports = Ports {
            admin: self.admin,
            cluster: self.cluster,
            serve: self.serve,
            // A build measured beside this one may predate `--http`.
            http: (self.bin == node_bin()).then_some(self.http),
        };
        let mut cmd = NodeCommand::new(&self.bin, ports)
            .data_dir(&self.dir)
            .env("CERTRAFT_LOG", "warn");
        if let Some(cpus) = &self.cpus {
            cmd = cmd.wrapped_in(&["taskset", "-c", cpus]);
        }
        // NODE_NOFILE=N runs the node under an open-files limit of N (`prlimit`).
        if let Some(n) = std::env::var("NODE_NOFILE").ok().filter(|n| !n.is_empty()) {
            cmd = cmd.wrapped_in(&["prlimit", &format!("--nofile={n}:{n}")]);
        }
        // NODE_LOGS=DIR keeps each node's log as DIR/n<id>.log.
        if let Some(dir) = std::env::var_os("NODE_LOGS") {
            cmd = cmd.output(Output::Append(
                Path::new(&dir).join(format!("n{}.log", self.id)),
            ));
        }
        if let Some((url, token)) = join {
            cmd = cmd.join(url, token);
        }
        self.process = Some(cmd.spawn());
    }

    pub(crate) fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .and_then(NodeProcess::pid)
            .expect("running")
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(p) = self.process.take() {
            p.kill9();
        }
    }

    /// SIGTERM and wait for the exit (a clean shutdown).
    pub(crate) fn stop(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.stop(Duration::from_secs(60));
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.admin)
    }
}

pub(crate) fn client(ca_pem: &[u8]) -> reqwest::Client {
    client_with(ca_pem, reqwest::redirect::Policy::default())
}

/// As [`client`], with its own redirect policy (`none` to see a sign-in's cookie).
pub(crate) fn client_with(ca_pem: &[u8], redirects: reqwest::redirect::Policy) -> reqwest::Client {
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
        .redirect(redirects)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

pub(crate) async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let probe = || {
        let answer = f();
        async move { answer.await.then_some(()).ok_or(String::new()) }
    };
    if poll(timeout, Duration::from_millis(20), probe)
        .await
        .is_err()
    {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

pub(crate) async fn readyz(c: &reqwest::Client, n: &Node) -> Option<Value> {
    let r = c.get(format!("{}/readyz", n.url())).send().await.ok()?;
    r.json().await.ok()
}

/// A running cluster: its nodes, the admin client and the bearer header.
pub(crate) struct Cluster {
    pub nodes: Vec<Node>,
    pub client: reqwest::Client,
    pub auth: String,
    /// The cluster CA, PEM.
    pub ca_pem: Vec<u8>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// `size` nodes (the first bootstraps, the rest join as voters); `cpus` pins them all.
    pub(crate) async fn start(size: usize, cpus: Option<&str>) -> Cluster {
        Cluster::start_with(size, cpus, &node_bin()).await
    }

    /// Like [`Cluster::start`], running the `certraft-node` at `bin`.
    pub(crate) async fn start_with(size: usize, cpus: Option<&str>, bin: &str) -> Cluster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut first = Node::new(tmp.path(), 1);
        first.cpus = cpus.map(str::to_string);
        first.bin = bin.to_string();
        first.start(None);
        let token_path = first.dir.join("admin.token");
        wait_for("bootstrap", Duration::from_secs(20), || {
            let p = token_path.clone();
            async move { p.exists() && p.with_file_name("ca.pem").exists() }
        })
        .await;
        let token = std::fs::read_to_string(&token_path).expect("token");
        let auth = format!("Bearer {}", token.trim());
        let ca_pem = std::fs::read(first.dir.join("ca.pem")).expect("ca");
        let client = client(&ca_pem);
        wait_for("node 1 ready", Duration::from_secs(20), || async {
            readyz(&client, &first)
                .await
                .is_some_and(|v| v["ready"] == true)
        })
        .await;
        let mut cluster = Cluster {
            nodes: vec![first],
            client,
            auth,
            ca_pem,
            _tmp: tmp,
        };
        cluster.grow(size, cpus, Duration::from_secs(30)).await;
        cluster
    }

    /// Joins voters until there are `size` nodes, each within `limit` (a node joining a
    /// loaded cluster catches up from a snapshot first).
    pub(crate) async fn grow(&mut self, size: usize, cpus: Option<&str>, limit: Duration) {
        while self.nodes.len() < size {
            let mut node = Node::new(self._tmp.path(), self.nodes.len() as u64 + 1);
            node.cpus = cpus.map(str::to_string);
            node.bin = self.nodes[0].bin.clone();
            let t: Value = self
                .client
                .post(format!(
                    "{}/api/v1/cluster/join-tokens",
                    self.nodes[0].url()
                ))
                .header("authorization", &self.auth)
                .json(&json!({"role": "voter"}))
                .send()
                .await
                .expect("join token")
                .json()
                .await
                .expect("join token json");
            let url = self.nodes[0].url();
            node.start(Some((&url, t["token"].as_str().expect("token"))));
            let client = &self.client;
            wait_for("joiner voting", limit, || async {
                readyz(client, &node)
                    .await
                    .is_some_and(|v| v["voting"] == true)
            })
            .await;
            self.nodes.push(node);
        }
    }

    pub(crate) async fn leader_url(&self) -> String {
        let live = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a live node");
        let v = readyz(&self.client, live).await.expect("readyz");
        let id = v["leader"].as_u64().expect("a leader");
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.url())
            .expect("leader node")
    }

    pub(crate) async fn post(&self, url: &str, body: &Value) -> Value {
        match self.try_post(url, body).await {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// `POST url`; `Err` with the status and body unless 2xx.
    pub(crate) async fn try_post(&self, url: &str, body: &Value) -> Result<Value, String> {
        let r = self
            .client
            .post(url)
            .header("authorization", &self.auth)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            Err(format!("{url}: {status} {v}"))
        }
    }

    /// Loads `leaves` through `POST /api/v1/backup/restore` in backup files of `chunk`
    /// bundles each (the admin API takes bodies up to 16 MiB). Returns the time taken.
    pub(crate) async fn restore(&self, pki: &Pki, leaves: std::ops::Range<usize>) -> Duration {
        let t0 = Instant::now();
        let mut url = format!("{}/api/v1/backup/restore", self.leader_url().await);
        let passphrase = "bench passphrase";
        let chunk = 4000;
        let mut start = leaves.start;
        while start < leaves.end {
            let end = (start + chunk).min(leaves.end);
            let bundles = (start..end)
                .map(|i| certraft::backup::BackupBundle {
                    name: pki.leaves[i].name.clone(),
                    retired: false,
                    key_pkcs8: zeroize::Zeroizing::new(pki.leaves[i].key_pkcs8.clone()),
                    certs: vec![pki.leaves[i].der.clone(), pki.intermediate_der.clone()],
                })
                .collect();
            let file = certraft::backup::write(
                bundles,
                None,
                &certraft::bundle::Passphrase::new(passphrase),
            )
            .expect("backup file");
            let b64 = base64::engine::general_purpose::STANDARD.encode(file);
            let body = json!({"data": b64, "passphrase": passphrase});
            // A restore is idempotent (what is there already is reported, not added
            // twice): after a leader change, the chunk goes again to the new leader.
            let mut tries = 0;
            let v = loop {
                match self.try_post(&url, &body).await {
                    Ok(v) => break v,
                    Err(e) if tries < 5 => {
                        tries += 1;
                        println!("    restore chunk {start}..{end}: {e}; again via the leader");
                        url = format!("{}/api/v1/backup/restore", self.leader_url().await);
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            let done = v["restored"].as_array().map_or(0, Vec::len)
                + v["already_present"].as_array().map_or(0, Vec::len);
            assert_eq!(
                done,
                end - start,
                "restore answered {}",
                v.to_string().chars().take(300).collect::<String>()
            );
            start = end;
        }
        t0.elapsed()
    }
}

/// One generated leaf: bundle name = host name.
pub(crate) struct Leaf {
    pub name: String,
    pub der: Vec<u8>,
    pub key_pkcs8: Vec<u8>,
}

/// Root CA → intermediate CA → leaves, all ECDSA P-256 (what the serving benchmark asks
/// for: leaf + chain).
pub(crate) struct Pki {
    pub root_der: Vec<u8>,
    pub intermediate_der: Vec<u8>,
    pub leaves: Vec<Leaf>,
}

impl Pki {
    /// `n` leaves named `h<i>.<domain>`.
    pub(crate) fn generate(n: usize, domain: &str) -> Pki {
        Pki::generate_expiring(n, domain, |_| None)
    }

    /// As [`Pki::generate`]; leaf `i` expires `days(i)` days from now (rcgen's default
    /// validity for `None`).
    pub(crate) fn generate_expiring(
        n: usize,
        domain: &str,
        days: impl Fn(usize) -> Option<i64>,
    ) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_params = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p
        };
        let root_key = KeyPair::generate().expect("root key");
        let root_params = ca_params("certraft bench root");
        let root = root_params.self_signed(&root_key).expect("root");
        let root_issuer = Issuer::new(root_params, &root_key);
        let int_key = KeyPair::generate().expect("intermediate key");
        let int_params = ca_params("certraft bench intermediate");
        let int = int_params
            .signed_by(&int_key, &root_issuer)
            .expect("intermediate");
        let int_issuer = Issuer::new(int_params, &int_key);
        let leaves = (0..n)
            .map(|i| {
                let host = format!("h{i}.{domain}");
                let key = KeyPair::generate().expect("leaf key");
                let mut p = CertificateParams::new(vec![host.clone()]).expect("params");
                p.distinguished_name.push(DnType::CommonName, host.clone());
                if let Some(d) = days(i) {
                    let now = time::OffsetDateTime::now_utc();
                    p.not_before = now - time::Duration::days(1);
                    p.not_after = now + time::Duration::days(d);
                }
                let cert = p.signed_by(&key, &int_issuer).expect("leaf");
                Leaf {
                    name: host,
                    der: cert.der().to_vec(),
                    key_pkcs8: key.serialize_der(),
                }
            })
            .collect();
        Pki {
            root_der: root.der().to_vec(),
            intermediate_der: int.der().to_vec(),
            leaves,
        }
    }
}

pub(crate) fn pem_of(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

pub(crate) fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Accepts any server certificate but still checks the handshake signature (the benches
/// compare the served leaf byte for byte themselves): the one such verifier, shared with
/// the cluster tests.
pub(crate) use certraft_cluster_tests::client::AcceptAny;

/// A TLS 1.3 client config for load and probes: X25519 only, browsers' cipher-suite order,
/// any certificate accepted.
pub(crate) fn load_client(resume_sessions: Option<usize>) -> Arc<rustls::ClientConfig> {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    // The order browsers offer (Chrome, Firefox, Safari): AES-128-GCM-SHA256 first. Every
    // server under test follows the client's order, so all negotiate the same suite.
    provider.cipher_suites = vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    let provider = Arc::new(provider);
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.resumption = match resume_sessions {
        Some(n) => rustls::client::Resumption::in_memory_sessions(n),
        None => rustls::client::Resumption::disabled(),
    };
    Arc::new(config)
}

/// How one request went.
pub(crate) enum Outcome {
    /// The answer came (200) with this leaf; `resumed` if the handshake was resumed.
    Ok {
        resumed: bool,
        leaf_matches: bool,
    },
    Failed(String),
}

/// One connection: TCP connect, TLS handshake with `sni`, `GET /` with `Connection: close`,
/// read the answer to the end. `want` is the leaf DER the server should present.
pub(crate) async fn request(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
    sni: &str,
    want: &[u8],
) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(format!("connect: {e}")),
    };
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("a DNS name");
    let mut tls = match connector.connect(name, tcp).await {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(format!("handshake: {e}")),
    };
    let (resumed, leaf_matches) = {
        let (_, conn) = tls.get_ref();
        (
            conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            conn.peer_certificates()
                .and_then(|c| c.first())
                .is_some_and(|c| c.as_ref() == want)
                // A resumed session presents no certificate; it resumed the one for `sni`.
                || conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        )
    };
    let req = format!("GET / HTTP/1.1\r\nhost: {sni}\r\nconnection: close\r\n\r\n");
    if let Err(e) = tls.write_all(req.as_bytes()).await {
        return Outcome::Failed(format!("write: {e}"));
    }
    let mut buf = Vec::with_capacity(1024);
    // The servers close without close_notify at times; the answer is what counts.
    let _ = tls.read_to_end(&mut buf).await;
    if buf.starts_with(b"HTTP/1.1 200") {
        Outcome::Ok {
            resumed,
            leaf_matches,
        }
    } else {
        Outcome::Failed(format!(
            "answer: {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(80)])
        ))
    }
}

/// The leaf a serve port presents for `sni` (a full handshake), or the error.
pub(crate) async fn served_leaf(port: u16, sni: &str) -> Result<Vec<u8>, String> {
    probe(port, sni).await.map(|(leaf, _)| leaf)
}

/// One handshake with `sni`: the served leaf and the negotiated cipher suite.
pub(crate) async fn probe(port: u16, sni: &str) -> Result<(Vec<u8>, String), String> {
    thread_local! {
        static CONNECTOR: tokio_rustls::TlsConnector = tokio_rustls::TlsConnector::from(load_client(None));
    }
    let connector = CONNECTOR.with(|c| c.clone());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("a DNS name");
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, conn) = tls.get_ref();
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| (c.as_ref().to_vec(), suite))
        .ok_or_else(|| "no certificate".to_string())
}

/// CPU time (user + system) of a process and its threads, in seconds, from /proc.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: f64 = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux this runs on; `getconf` confirms it when present.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The process and all its descendants (nginx: master + worker).
pub(crate) fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(children) = std::fs::read_to_string(t.path().join("children")) {
                    out.extend(
                        children
                            .split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    out.sort();
    out.dedup();
    out
}

/// Resident memory of a process in MiB (VmRSS), and its peak (VmHWM).
pub(crate) fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// A handshake loop on a serve port: `conns` connections, each a full TLS 1.3 handshake
/// and `GET /` after the other, until stopped; counts what succeeded and what failed.
pub(crate) struct HandshakeLoop {
    stop: Arc<std::sync::atomic::AtomicBool>,
    done: Arc<std::sync::atomic::AtomicU64>,
    failed: Arc<std::sync::atomic::AtomicU64>,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HandshakeLoop {
    /// Starts it against `port` with `sni`; `want` is the leaf the answers must carry
    /// (empty: any leaf).
    pub(crate) fn start(port: u16, sni: &str, want: &[u8], conns: usize) -> HandshakeLoop {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let connector = tokio_rustls::TlsConnector::from(load_client(None));
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..conns)
            .map(|_| {
                let (connector, stop, done, failed) = (
                    connector.clone(),
                    stop.clone(),
                    done.clone(),
                    failed.clone(),
                );
                let (sni, want) = (sni.to_string(), want.to_vec());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let r = tokio::time::timeout(
                            Duration::from_secs(5),
                            request(&connector, port, &sni, &want),
                        )
                        .await;
                        match r {
                            Ok(Outcome::Ok { leaf_matches, .. })
                                if leaf_matches || want.is_empty() =>
                            {
                                done.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        HandshakeLoop {
            stop,
            done,
            failed,
            started: Instant::now(),
            tasks,
        }
    }

    /// Stops it: (handshakes per second, failed handshakes).
    pub(crate) async fn stop(self) -> (f64, u64) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let secs = self.started.elapsed().as_secs_f64();
        (
            self.done.load(Ordering::Relaxed) as f64 / secs,
            self.failed.load(Ordering::Relaxed),
        )
    }
}
