//! Clusters of real `certraft-node` processes on loopback, and the faults done to them:
//! `kill -9` and restart, SIGSTOP/SIGCONT, SIGTERM.
//!
//! Every process is killed when the [`Cluster`] is dropped; when the test is failing, the
//! drop keeps the temp dir (data dirs and full logs) and prints where it is.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{Admin, Reply};

/// How long a node may take to start, a cluster to elect or catch up. Generous: CI runs
/// debug builds on 2 cores with tests in parallel.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A member's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Voter,
    Learner,
    Witness,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Voter => "voter",
            Role::Learner => "learner",
            Role::Witness => "witness",
        }
    }

    /// Whether it serves TLS.
    pub fn serves(self) -> bool {
        self != Role::Witness
    }
}

/// A workspace binary (`certraft-node`, `certraft`) next to the test executable's
/// `deps/` dir, as `cargo test --workspace` builds them.
pub fn binary(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/PROFILE/deps/TEST")
            .to_path_buf()
    });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p certraft-node -p certraft-cli` first)",
        path.display()
    );
    path
}

/// A port free on 127.0.0.1 now and never handed out twice by this process; from below the
/// kernel's ephemeral range when there is room, so no outgoing connection takes it.
pub fn free_port() -> u16 {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static HANDED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed = HANDED.lock().unwrap_or_else(|e| e.into_inner());
    let high: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    const LOW: u16 = 10_000;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 9);
    if high > LOW + 1000 {
        let span = u64::from(high - LOW);
        for step in 0..span {
            let p = LOW + ((seed + step * 7919) % span) as u16;
            if !handed.contains(&p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                handed.insert(p);
                return p;
            }
        }
    }
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if handed.insert(p) {
            return p;
        }
    }
}

/// One `certraft-node run` process, or the memory of one while it is down.
pub struct Node {
    pub label: String,
    pub role: Role,
    /// The id it reported (0 until it answered).
    pub id: u64,
    pub data_dir: PathBuf,
    pub admin: u16,
    pub cluster: u16,
    pub serve: u16,
    log: PathBuf,
    child: Option<std::process::Child>,
    paused: bool,
}

impl Node {
    pub fn admin_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.admin)
    }

    pub fn serve_addr(&self) -> String {
        format!("127.0.0.1:{}", self.serve)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn spawn(&mut self, join: Option<(&str, &str)>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log");
        let mut cmd = std::process::Command::new(binary("certraft-node"));
        cmd.arg("run").arg("--data-dir").arg(&self.data_dir);
        for (flag, port) in [
            ("--admin", self.admin),
            ("--cluster", self.cluster),
            ("--serve", self.serve),
        ] {
            cmd.arg(flag).arg(format!("127.0.0.1:{port}"));
        }
        if let Some((url, token)) = join {
            cmd.args(["--join", url, "--join-token", token, "--role"])
                .arg(self.role.as_str());
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CERTRAFT_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("NO_COLOR", "1")
            .env(
                "CERTRAFT_LOG",
                "info,openraft=warn,openraft::replication=error",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn certraft-node"));
        self.paused = false;
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = std::process::Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The processes of one cluster in one temp dir, with an admin client trusting its CA.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub admin: Option<Admin>,
}

impl Cluster {
    /// Bootstraps a cluster with the first role (must be a voter), then joins the rest one
    /// by one through the first node; returns once every voter and witness votes and every
    /// learner has caught up.
    pub async fn start(roles: &[Role]) -> Cluster {
        assert_eq!(
            roles.first(),
            Some(&Role::Voter),
            "the first node bootstraps"
        );
        let dir = tempfile::Builder::new()
            .prefix("certraft-cluster-")
            .tempdir()
            .expect("temp dir");
        let mut c = Cluster {
            dir,
            nodes: Vec::new(),
            admin: None,
        };
        for (i, &role) in roles.iter().enumerate() {
            let label = format!("n{}", i + 1);
            c.nodes.push(Node {
                data_dir: c.dir.path().join(&label),
                log: c.dir.path().join(format!("{label}.log")),
                label,
                role,
                id: 0,
                admin: free_port(),
                cluster: free_port(),
                serve: free_port(),
                child: None,
                paused: false,
            });
        }
        c.nodes[0].spawn(None);
        let data = c.nodes[0].data_dir.clone();
        let (ca, token) = c
            .wait_for("node 1 to write ca.pem and admin.token", PATIENCE, || {
                let data = data.clone();
                async move {
                    match (
                        std::fs::read(data.join("ca.pem")),
                        std::fs::read_to_string(data.join("admin.token")),
                    ) {
                        (Ok(ca), Ok(token)) if !token.trim().is_empty() => Ok((ca, token)),
                        _ => Err("not yet".to_string()),
                    }
                }
            })
            .await;
        c.admin = Some(Admin::new(&ca, &token, Duration::from_secs(10)).expect("admin client"));
        c.wait_ready(0).await;
        for i in 1..c.nodes.len() {
            let role = c.nodes[i].role;
            let reply = c
                .call_ok(
                    0,
                    reqwest::Method::POST,
                    "/api/v1/cluster/join-tokens",
                    Some(&json!({"role": role.as_str(), "ttl_secs": 600})),
                )
                .await;
            let token = reply.body["token"]
                .as_str()
                .unwrap_or_else(|| panic!("join-token answer without a token: {reply}"))
                .to_string();
            let url = c.nodes[0].admin_url();
            c.nodes[i].spawn(Some((&url, &token)));
            c.wait_ready(i).await;
        }
        c.wait_members_settled().await;
        c
    }

    pub fn admin(&self) -> &Admin {
        self.admin.as_ref().expect("admin client")
    }

    /// Where failure artefacts go: kept with the temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A request to node `i` that must answer 2xx.
    pub async fn call_ok(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let base = self.nodes[i].admin_url();
        match self.admin().send(method.clone(), &base, path, body).await {
            Ok(r) if (200..300).contains(&r.status) => r,
            Ok(r) => panic!("{method} {base}{path}: {r}"),
            Err(e) => panic!("{e}"),
        }
    }

    /// `/readyz` of node `i` (its JSON, whatever the status).
    pub async fn readyz(&self, i: usize) -> Result<Value, String> {
        let base = self.nodes[i].admin_url();
        self.admin()
            .get(&base, "/readyz")
            .await
            .map(|r| r.body)
            .map_err(|e| e.to_string())
    }

    /// Waits until node `i` answers `/readyz` with a leader known; records its id.
    pub async fn wait_ready(&mut self, i: usize) {
        let what = format!("{} to know a leader", self.nodes[i].label);
        let v = self
            .wait_for(&what, PATIENCE, || async {
                match self.readyz(i).await {
                    Ok(v) if v["ready"] == true => Ok(v),
                    Ok(v) => Err(v.to_string()),
                    Err(e) => Err(e),
                }
            })
            .await;
        self.nodes[i].id = v["node_id"].as_u64().unwrap_or(0);
    }

    /// Waits until the membership holds every node with its role, voters and witnesses
    /// voting.
    pub async fn wait_members_settled(&self) {
        let want: Vec<(u64, Role)> = self.nodes.iter().map(|n| (n.id, n.role)).collect();
        self.wait_for("every member in its role", PATIENCE, || async {
            let Some(leader) = self.leader().await else {
                return Err("no leader".to_string());
            };
            let base = self.nodes[leader].admin_url();
            let r = self
                .admin()
                .get(&base, "/api/v1/cluster")
                .await
                .map_err(|e| e.to_string())?;
            let members = r.body["members"].as_array().cloned().unwrap_or_default();
            for (id, role) in &want {
                let ok = members.iter().any(|m| {
                    m["id"] == *id
                        && m["role"] == role.as_str()
                        && m["voting"] == (*role != Role::Learner)
                });
                if !ok {
                    return Err(format!("node {id} not yet a {}: {}", role.as_str(), r.body));
                }
            }
            Ok(())
        })
        .await
    }

    /// The index of the node that the running nodes agree is leader, if any.
    pub async fn leader(&self) -> Option<usize> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused || self.nodes[i].child.is_none() {
                continue;
            }
            if let Ok(v) = self.readyz(i).await {
                if let Some(id) = v["leader"].as_u64() {
                    if let Some(j) = self.nodes.iter().position(|n| n.id == id) {
                        return Some(j);
                    }
                }
            }
        }
        None
    }

    /// Polls `probe` every 50 ms until `Ok`, for at most `limit`; then fails with `what` and
    /// the last error.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            let last = match probe().await {
                Ok(v) => return v,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!("timed out after {limit:?} waiting for {what}; last: {last}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // ---- faults ----------------------------------------------------------------------

    /// `kill -9`, reaped.
    pub fn kill9(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.paused {
            n.signal("-CONT");
        }
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        n.paused = false;
    }

    /// Starts a stopped node again on its data dir (no join flags: it resumes).
    pub fn restart(&mut self, i: usize) {
        assert!(
            !self.nodes[i].is_running(),
            "{} is running",
            self.nodes[i].label
        );
        self.nodes[i].spawn(None);
    }

    /// SIGSTOP: the process holds its sockets but does nothing.
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].signal("-STOP");
        self.nodes[i].paused = true;
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, i: usize) {
        self.nodes[i].signal("-CONT");
        self.nodes[i].paused = false;
    }

    /// Every node's log tail, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("---- {} ----\n{}\n", n.label, n.log_tail(lines)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "cluster kept for a post-mortem in {}\n{}",
                self.dir.path().display(),
                self.log_tails(30)
            );
        }
    }
}
