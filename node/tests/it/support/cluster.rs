//! Real `certraft-node` processes for the cluster tests (each one a
//! [`certraft_cluster_tests::process::NodeProcess`], the harness every suite shares): free ports, temp dirs, captured
//! logs, an admin API client, kill -9 / SIGTERM / restart, and condition waits that fail
//! with what was awaited, what was last seen and the tail of every node's log.
//!
//! Every process a [`Cluster`] starts is killed when the cluster is dropped; when the test is
//! failing, the drop also prints every node's log tail.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use certraft_cluster_tests::process::{
    log_tail, poll, port_was_taken, NodeCommand, NodeProcess, Output, Ports,
};

/// How long a node may take to start answering, a cluster to elect or catch up. Generous:
/// CI runs the suite on 2 cores with debug builds and tests in parallel.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

const LOG_TAIL_LINES: usize = 40;

// ---- the admin API client ----------------------------------------------------------------

/// An HTTP answer: status and body text.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub text: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The body of a 200 answer; panics naming `what` and the answer otherwise.
    pub(crate) fn ok(&self, what: &str) -> Value {
        assert_eq!(self.status, 200, "{what}: expected 200, got {self}");
        self.json()
    }

    /// `error.code` of an error body.
    pub(crate) fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.text)
    }
}

/// One node's admin API, with (or without) a bearer token.
#[derive(Clone)]
pub(crate) struct Api {
    client: reqwest::Client,
    pub base: String,
    token: Option<String>,
}

impl Api {
    /// The same node with another `Authorization` (none when `token` is `None`).
    pub(crate) fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(String::from),
            ..self.clone()
        }
    }

    /// Sends a request; a transport failure (refused, reset, timeout) is an `Err`.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {}{path}: {e:?}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{method} {}{path}: body: {e}", self.base))?;
        Ok(Reply { status, text })
    }

    /// Like [`Api::send`], but a transport failure fails the test.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.send(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// `GET /api/v1/certs`.
    pub(crate) async fn certs(&self) -> CertList {
        CertList(self.get("/api/v1/certs").await.ok("list certificates"))
    }

    /// `GET /readyz` as JSON (it answers JSON when not ready too).
    pub(crate) async fn readyz(&self) -> Result<Readyz, String> {
        let r = self.send(Method::GET, "/readyz", None).await?;
        match r.json() {
            Value::Object(_) => Ok(Readyz(r.json())),
            _ => Err(format!("/readyz answered {r}")),
        }
    }
}

/// `GET /api/v1/certs`, with lookups by name.
#[derive(Debug, Clone)]
pub(crate) struct CertList(pub Value);

impl CertList {
    pub(crate) fn certs(&self) -> &[Value] {
        self.0["certs"].as_array().map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.certs().iter().find(|c| c["name"] == name)
    }

    /// Name → id of every bundle: what "the inventory did not change" compares.
    pub(crate) fn ids(&self) -> std::collections::BTreeMap<String, String> {
        self.certs()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["id"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub(crate) fn default(&self) -> Option<&str> {
        self.0["default"].as_str()
    }
}

/// A node's `/readyz` answer.
#[derive(Debug, Clone)]
pub(crate) struct Readyz(pub Value);

impl Readyz {
    pub(crate) fn ready(&self) -> bool {
        self.0["ready"] == true
    }
    pub(crate) fn node_id(&self) -> u64 {
        self.0["node_id"].as_u64().unwrap_or(0)
    }
    pub(crate) fn leader(&self) -> Option<u64> {
        self.0["leader"].as_u64()
    }
    pub(crate) fn state(&self) -> &str {
        self.0["state"].as_str().unwrap_or_default()
    }
    pub(crate) fn voting(&self) -> bool {
        self.0["voting"] == true
    }
    pub(crate) fn last_applied(&self) -> Option<u64> {
        self.0["last_applied"].as_u64()
    }
    pub(crate) fn last_log_index(&self) -> Option<u64> {
        self.0["last_log_index"].as_u64()
    }
    pub(crate) fn snapshot_index(&self) -> Option<u64> {
        self.0["snapshot_index"].as_u64()
    }
    pub(crate) fn purged_index(&self) -> Option<u64> {
        self.0["purged_index"].as_u64()
    }
}

impl std::fmt::Display for Readyz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A client of the admin ports that trusts only this cluster's CA (as the CLI does).
pub(crate) fn admin_client(ca_der: &[u8]) -> reqwest::Client {
    let tls =
        certraft::raft::tls::admin_client_config(ca_der).expect("cluster CA is a usable root");
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// The DER certificate in a PEM file.
pub(crate) fn pem_cert_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pem::parse(text)
        .unwrap_or_else(|e| panic!("{}: not PEM: {e}", path.display()))
        .contents()
        .to_vec()
}

// ---- node processes ----------------------------------------------------------------------

/// One `certraft-node run` process (or the memory of one, while it is stopped).
pub(crate) struct Node {
    /// `node1`, `node2`, … in start order: names log files.
    pub label: String,
    /// The node id it reported on `/readyz` (0 until it answered).
    pub id: u64,
    /// Working directory of the process; the data dir lives inside it.
    pub cwd: PathBuf,
    pub data_dir: PathBuf,
    /// Pass `--data-dir` (otherwise the default `./certraft-data` is used).
    explicit_data_dir: bool,
    pub admin: u16,
    pub cluster: u16,
    pub serve: u16,
    /// The HTTP port (ACME HTTP-01 answers).
    pub http: u16,
    env: Vec<(String, String)>,
    /// The `certraft-node` executable to start: this build unless a test sets another (the
    /// previous build, for the mixed-version test).
    pub binary: Option<PathBuf>,
    /// `--join URL --join-token TOKEN`, for the first start only.
    join: Option<(String, String)>,
    process: Option<NodeProcess>,
    /// Whether the test expects it to be running (false once killed or stopped).
    expect_running: bool,
    starts: u32,
    logs: PathBuf,
}

impl Node {
    fn log_path(&self, start: u32, stream: &str) -> PathBuf {
        self.logs
            .join(format!("{}.run{start}.{stream}.log", self.label))
    }

    /// Stdout of the latest start (the bootstrap prints the admin token there).
    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts, "stdout")).unwrap_or_default()
    }

    /// Stderr (the log) of the latest start.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts, "stderr")).unwrap_or_default()
    }

    pub(crate) fn admin_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.admin)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.expect_running
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let ports = Ports {
            admin: self.admin,
            cluster: self.cluster,
            serve: self.serve,
            // A previous build knows no --http.
            http: self.binary.is_none().then_some(self.http),
        };
        let bin = self
            .binary
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_certraft-node")));
        let mut cmd = NodeCommand::new(bin, ports)
            .envs(&self.env)
            .cwd(&self.cwd)
            .output(Output::Files {
                stdout: self.log_path(self.starts, "stdout"),
                stderr: self.log_path(self.starts, "stderr"),
            });
        if self.explicit_data_dir {
            cmd = cmd.data_dir(&self.data_dir);
        }
        if let Some((url, token)) = self.join.take() {
            cmd = cmd.join(&url, &token);
        }
        self.process = Some(cmd.spawn());
        self.expect_running = true;
    }

    /// The exit status if the process has ended.
    fn exited(&self) -> Option<ExitStatus> {
        self.process.as_ref().and_then(NodeProcess::exited)
    }

    /// The process id of the running process, if any.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(NodeProcess::pid)
    }

    /// SIGKILL, and reap.
    fn kill9(&mut self) {
        self.expect_running = false;
        if let Some(p) = &self.process {
            p.kill9();
        }
    }

    /// SIGTERM (graceful stop), without waiting.
    fn sigterm(&mut self) {
        self.expect_running = false;
        if let Some(p) = &self.process {
            p.signal("TERM");
        }
    }

    /// The last lines of the latest start's stdout and stderr.
    fn log_tail(&self) -> String {
        let (out, err) = (
            self.log_path(self.starts, "stdout"),
            self.log_path(self.starts, "stderr"),
        );
        log_tail(
            &format!("{} (id {}) run {}", self.label, self.id, self.starts),
            &[("stdout", &out), ("stderr", &err)],
            LOG_TAIL_LINES,
        )
    }
}

/// What a cluster's nodes are started with.
#[derive(Default, Clone)]
pub(crate) struct Options {
    /// Environment for every node (e.g. `CERTRAFT_SNAPSHOT_EVERY`).
    pub env: Vec<(String, String)>,
    /// Start nodes without `--data-dir`, so they use `./certraft-data` in their cwd.
    pub default_data_dir: bool,
    /// Start new nodes from this executable instead of this build's `certraft-node`.
    pub binary: Option<PathBuf>,
}

impl Options {
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A set of node processes of one cluster in one temp dir.
pub(crate) struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub options: Options,
    /// The first admin token (from `DATA/admin.token` of the bootstrap node).
    pub token: String,
    /// The cluster CA certificate (DER).
    pub ca_der: Vec<u8>,
    client: Option<reqwest::Client>,
    /// Every join token used, for the secret scans.
    pub join_tokens: Vec<String>,
}

impl Cluster {
    pub(crate) fn new(options: Options) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("certraft-it-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        Cluster {
            dir,
            nodes: Vec::new(),
            options,
            token: String::new(),
            ca_der: Vec::new(),
            client: None,
            join_tokens: Vec::new(),
        }
    }

    /// A cluster of `voters` voting nodes: node 1 bootstraps, each next node joins through the
    /// node started before it (so joins are forwarded by followers too); returns once every
    /// node votes.
    pub(crate) async fn start(voters: usize, options: Options) -> Cluster {
        let mut c = Cluster::new(options);
        c.bootstrap().await;
        for i in 1..voters {
            c.join(i - 1).await;
        }
        c.wait_all_voting().await;
        c
    }

    pub(crate) fn logs_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn new_node(&mut self) -> usize {
        let n = self.nodes.len() + 1;
        let cwd = self.dir.path().join(format!("node{n}"));
        std::fs::create_dir_all(&cwd).expect("node dir");
        let ports = Ports::free();
        self.nodes.push(Node {
            label: format!("node{n}"),
            id: 0,
            data_dir: cwd.join("certraft-data"),
            cwd,
            explicit_data_dir: !self.options.default_data_dir,
            admin: ports.admin,
            cluster: ports.cluster,
            serve: ports.serve,
            http: certraft_cluster_tests::ports::free_port(),
            env: self.options.env.clone(),
            binary: self.options.binary.clone(),
            join: None,
            process: None,
            expect_running: false,
            starts: 0,
            logs: self.logs_dir(),
        });
        n - 1
    }

    /// Starts node 1 on an empty data dir: it bootstraps a one-node cluster. Returns once it
    /// is ready (knows itself as leader); reads the admin token and the CA from its data dir.
    pub(crate) async fn bootstrap(&mut self) -> usize {
        let i = self.new_node();
        for attempt in 1..=5 {
            self.nodes[i].spawn();
            match self.await_admin_port(i).await {
                Ok(()) => break,
                // Another process took a port between our check and the node's bind: the
                // bootstrap never got further than binding, so start afresh on new ports.
                Err(log) if port_was_taken(&log) && attempt < 5 => {
                    let n = &mut self.nodes[i];
                    let _ = std::fs::remove_dir_all(&n.data_dir);
                    let ports = Ports::free();
                    (n.admin, n.cluster, n.serve) = (ports.admin, ports.cluster, ports.serve);
                }
                Err(log) => panic!("node1 exited during bootstrap:\n{log}"),
            }
        }
        let dd = &self.nodes[i].data_dir;
        self.token = std::fs::read_to_string(dd.join("admin.token"))
            .expect("DATA/admin.token after bootstrap")
            .trim()
            .to_string();
        self.wait_ready(i).await;
        i
    }

    /// Waits until every node reports its state digest at one applied index, then asserts
    /// the digests are equal (issue 22's divergence check).
    pub(crate) async fn assert_one_state(&self) {
        let digests = self
            .wait_for("every node at one applied index", PATIENCE, || async {
                let mut seen = Vec::new();
                for i in 0..self.nodes.len() {
                    let r = self.api(i).readyz().await?;
                    seen.push((r.0["digest_index"].clone(), r.0["state_digest"].clone()));
                }
                if seen.windows(2).all(|w| w[0].0 == w[1].0) {
                    Ok(seen)
                } else {
                    Err(format!("{seen:?}"))
                }
            })
            .await;
        assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "replicas diverged: {digests:?}"
        );
    }

    /// Starts a new node that bootstraps with a crash injected right after bootstrap step
    /// `step` (`CERTRAFT_TEST_CRASH_AT`); returns once that process has died. Restart it with
    /// [`Cluster::restart`], then [`Cluster::adopt_bootstrap`].
    pub(crate) async fn bootstrap_crashing_at(&mut self, step: &str) -> usize {
        let i = self.new_node();
        let n = &mut self.nodes[i];
        n.env.push(("CERTRAFT_TEST_CRASH_AT".into(), step.into()));
        n.spawn();
        let node = &self.nodes[i];
        if let Err(last) = poll(PATIENCE, Duration::from_millis(20), || async {
            node.exited().map(drop).ok_or("still running".to_string())
        })
        .await
        {
            panic!(
                "{} did not crash after {step} ({last}):\n{}",
                node.label,
                node.log_tail()
            );
        }
        let n = &mut self.nodes[i];
        n.expect_running = false;
        n.env.retain(|(k, _)| k != "CERTRAFT_TEST_CRASH_AT");
        i
    }

    /// After a restarted bootstrap: the admin token from `DATA/admin.token`, then ready.
    pub(crate) async fn adopt_bootstrap(&mut self, i: usize) -> Readyz {
        self.token = std::fs::read_to_string(self.nodes[i].data_dir.join("admin.token"))
            .expect("DATA/admin.token")
            .trim()
            .to_string();
        self.wait_ready(i).await
    }

    /// Starts a new node that joins through node `via` with a fresh voter join token; returns
    /// once its admin port answers (it may still be a learner).
    pub(crate) async fn join(&mut self, via: usize) -> usize {
        self.join_as(via, "voter").await
    }

    /// Like [`Cluster::join`], with a join token for `role` (`voter`, `learner`, `witness`).
    pub(crate) async fn join_as(&mut self, via: usize, role: &str) -> usize {
        let token = self
            .api(via)
            .post("/api/v1/cluster/join-tokens", &json!({ "role": role }))
            .await
            .ok(&format!("create a {role} join token"))["token"]
            .as_str()
            .expect("join token in the answer")
            .to_string();
        self.join_tokens.push(token.clone());
        let url = self.nodes[via].admin_url();
        let i = self.new_node();
        self.nodes[i].join = Some((url, token));
        self.nodes[i].spawn();
        if let Err(log) = self.await_admin_port(i).await {
            panic!("{} exited while joining:\n{log}", self.nodes[i].label);
        }
        i
    }

    /// Starts one new node per entry of `via`, all at once, each joining through that node
    /// with its own fresh voter join token; returns once every admin port answers.
    pub(crate) async fn join_together(&mut self, via: &[usize]) -> Vec<usize> {
        let mut started = Vec::new();
        for &v in via {
            let token = self
                .api(v)
                .post("/api/v1/cluster/join-tokens", &json!({"role": "voter"}))
                .await
                .ok("create a join token")["token"]
                .as_str()
                .expect("join token in the answer")
                .to_string();
            self.join_tokens.push(token.clone());
            let i = self.new_node();
            self.nodes[i].join = Some((self.nodes[v].admin_url(), token));
            started.push(i);
        }
        for &i in &started {
            self.nodes[i].spawn();
        }
        for &i in &started {
            if let Err(log) = self.await_admin_port(i).await {
                panic!("{} exited while joining:\n{log}", self.nodes[i].label);
            }
        }
        started
    }

    /// Waits until node `i` answers `/healthz`, learning its id from `/readyz`. `Err` with its
    /// log when the process exits first.
    async fn await_admin_port(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::from("nothing yet");
        loop {
            if let Some(status) = self.nodes[i].exited() {
                self.nodes[i].expect_running = false;
                return Err(format!(
                    "{} exited with {status}\n{}",
                    self.nodes[i].label,
                    self.nodes[i].log_tail()
                ));
            }
            if self.client.is_none() {
                let ca = self.nodes[i].data_dir.join("ca.pem");
                if ca.exists() {
                    self.ca_der = pem_cert_der(&ca);
                    self.client = Some(admin_client(&self.ca_der));
                }
            }
            if self.client.is_some() {
                let api = self.api(i);
                match api.send(Method::GET, "/healthz", None).await {
                    Ok(r) if r.status == 200 => {
                        if let Ok(ready) = api.readyz().await {
                            self.nodes[i].id = ready.node_id();
                            return Ok(());
                        }
                    }
                    Ok(r) => last = r.to_string(),
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {PATIENCE:?} waiting for {}'s admin port {} to answer /healthz; last: {last}\n{}",
                    self.nodes[i].label,
                    self.nodes[i].admin,
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The admin API of node `i`, with the admin token.
    pub(crate) fn api(&self, i: usize) -> Api {
        Api {
            client: self.client.clone().expect("no node has bootstrapped yet"),
            base: self.nodes[i].admin_url(),
            token: Some(self.token.clone()).filter(|t| !t.is_empty()),
        }
    }

    /// Index of the node with Raft id `id`.
    pub(crate) fn index_of(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node has id {id}"))
    }

    /// Indexes of the nodes the test expects to be running.
    pub(crate) fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].expect_running)
            .collect()
    }

    /// Polls `probe` every 50 ms until it answers `Ok`, for at most `timeout`. On timeout (or
    /// when a node the test expects to run has exited) fails with `what`, the last `Err` the
    /// probe gave and the tail of every node's log.
    pub(crate) async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        poll(timeout, Duration::from_millis(50), || {
            self.assert_alive(what);
            probe()
        })
        .await
        .unwrap_or_else(|last| {
            panic!(
                "timed out after {timeout:?} waiting for {what}; last observed: {last}\n{}",
                self.log_tails()
            )
        })
    }

    /// Fails if a node the test expects to be running has exited.
    pub(crate) fn assert_alive(&self, what: &str) {
        for n in &self.nodes {
            if n.expect_running {
                if let Some(status) = n.exited() {
                    panic!(
                        "{} exited unexpectedly ({status}) while waiting for {what}\n{}",
                        n.label,
                        self.log_tails()
                    );
                }
            }
        }
    }

    pub(crate) async fn readyz(&self, i: usize) -> Result<Readyz, String> {
        self.api(i)
            .readyz()
            .await
            .map_err(|e| format!("{}: {e}", self.nodes[i].label))
    }

    /// Waits until node `i` knows a leader.
    pub(crate) async fn wait_ready(&self, i: usize) -> Readyz {
        let what = format!("{} to know a leader", self.nodes[i].label);
        self.wait_for(&what, PATIENCE, || async move {
            let r = self.readyz(i).await?;
            if r.ready() {
                Ok(r)
            } else {
                Err(r.to_string())
            }
        })
        .await
    }

    /// Waits until every running node is a voter (joined voters are promoted once caught up).
    pub(crate) async fn wait_all_voting(&self) {
        self.wait_for(
            "every running node to be a voter",
            PATIENCE,
            || async move {
                for i in self.running() {
                    let r = self.readyz(i).await?;
                    if !r.voting() || !r.ready() {
                        return Err(format!("{}: {r}", self.nodes[i].label));
                    }
                }
                Ok(())
            },
        )
        .await
    }

    /// Waits until every running node names the same running leader, which knows itself as
    /// leader; returns its index.
    pub(crate) async fn leader(&self) -> usize {
        self.wait_for(
            "one leader every running node agrees on",
            PATIENCE,
            || async move {
                let mut views = Vec::new();
                for i in self.running() {
                    let r = self.readyz(i).await?;
                    views.push((self.nodes[i].label.clone(), r));
                }
                let leaders: BTreeSet<Option<u64>> =
                    views.iter().map(|(_, r)| r.leader()).collect();
                let describe = || {
                    views
                        .iter()
                        .map(|(l, r)| format!("{l}: leader {:?} state {}", r.leader(), r.state()))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                let [Some(id)] = leaders.into_iter().collect::<Vec<_>>()[..] else {
                    return Err(describe());
                };
                let Some(i) = self
                    .nodes
                    .iter()
                    .position(|n| n.id == id && n.expect_running)
                else {
                    return Err(format!(
                        "the leader named, {id}, is not running; {}",
                        describe()
                    ));
                };
                if self.readyz(i).await?.state() != "leader" {
                    return Err(describe());
                }
                Ok(i)
            },
        )
        .await
    }

    /// A running node other than `not`.
    pub(crate) fn other_than(&self, not: usize) -> usize {
        self.running()
            .into_iter()
            .find(|&i| i != not)
            .expect("another running node")
    }

    /// Node `i` is about to exit on its own (an injected crash): waits stop treating its
    /// exit as a failure. Returns whether it has exited already.
    pub(crate) fn expect_exit(&mut self, i: usize) -> bool {
        self.nodes[i].expect_running = false;
        self.nodes[i].exited().is_some()
    }

    /// Whether node `i`'s process has ended.
    pub(crate) fn has_exited(&self, i: usize) -> bool {
        self.nodes[i].exited().is_some()
    }

    /// kill -9.
    pub(crate) fn kill(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// SIGTERM to every node in `which`, then waits for each to exit; returns their statuses.
    pub(crate) async fn stop(&mut self, which: &[usize]) -> Vec<ExitStatus> {
        for &i in which {
            self.nodes[i].sigterm();
        }
        let mut statuses = Vec::new();
        for &i in which {
            let what = format!("{} to exit after SIGTERM", self.nodes[i].label);
            let node = &self.nodes[i];
            let status = self
                .wait_for(&what, PATIENCE, || async move {
                    node.exited().ok_or_else(|| "still running".to_string())
                })
                .await;
            statuses.push(status);
        }
        statuses
    }

    /// Starts a stopped node again with the same data dir and ports (no join flags); returns
    /// once its admin port answers.
    pub(crate) async fn restart(&mut self, i: usize) {
        assert!(
            self.nodes[i].exited().is_some(),
            "{} is still running",
            self.nodes[i].label
        );
        self.nodes[i].spawn();
        if let Err(log) = self.await_admin_port(i).await {
            panic!("{} exited on restart:\n{log}", self.nodes[i].label);
        }
    }

    /// Every captured stdout/stderr file of every start of every node.
    pub(crate) fn log_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.logs_dir())
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    pub(crate) fn log_tails(&self) -> String {
        self.nodes.iter().map(Node::log_tail).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the data dirs and full logs of a failed test for a post-mortem.
            self.dir.disable_cleanup(true);
            eprintln!(
                "cluster at failure (kept in {}):\n{}",
                self.dir.path().display(),
                self.log_tails()
            );
        }
        for n in &mut self.nodes {
            n.kill9();
        }
    }
}
