//! Clusters of real `certraft-node` processes on loopback or in containers: start, form,
//! wait; the faults done to them are in [`crate::faults`].
//!
//! Every process is killed when the [`Cluster`] is dropped; when the test is failing, the
//! drop keeps the temp dir (data dirs and full logs) and prints where it is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::{Admin, Reply};
use crate::faults::mount_tmpfs;
use crate::ports::free_port;
use crate::process::{node_binary, NodeCommand, NodeProcess, Output, Ports};

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

/// How a node runs.
pub(crate) enum Run {
    /// A process on loopback.
    Proc(Option<NodeProcess>),
    /// A container on the cluster's private Docker network.
    Container { name: String },
}

/// One node: a `certraft-node run` process or container, or the memory of one while down.
pub struct Node {
    pub label: String,
    pub role: Role,
    /// The id it reported (0 until it answered).
    pub id: u64,
    /// Host-side path of its data dir.
    pub data_dir: PathBuf,
    /// `127.0.0.1`, or the container's address on the test network.
    pub host: String,
    pub admin: u16,
    pub cluster: u16,
    pub serve: u16,
    pub(crate) log: PathBuf,
    pub(crate) run: Run,
    pub(crate) paused: bool,
}

impl Node {
    pub fn admin_url(&self) -> String {
        format!("https://{}:{}", self.host, self.admin)
    }

    pub fn serve_addr(&self) -> String {
        format!("{}:{}", self.host, self.serve)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The container's name (container clusters only).
    pub fn container(&self) -> Option<&str> {
        match &self.run {
            Run::Container { name } => Some(name),
            Run::Proc(_) => None,
        }
    }

    pub(crate) fn spawn_process(&mut self, join: Option<(&str, &str)>) {
        let ports = Ports {
            admin: self.admin,
            cluster: self.cluster,
            serve: self.serve,
            http: None,
        };
        let mut cmd = NodeCommand::new(node_binary(), ports)
            .data_dir(&self.data_dir)
            .env("CERTRAFT_LOG", LOG_FILTER)
            .env("CERTRAFT_SNAPSHOT_EVERY", SNAPSHOT_EVERY)
            .output(Output::Append(self.log.clone()));
        if let Some((url, token)) = join {
            cmd = cmd.join(url, token).role(self.role.as_str());
        }
        self.run = Run::Proc(Some(cmd.spawn()));
        self.paused = false;
    }

    pub(crate) fn signal(&self, sig: &str) {
        match &self.run {
            Run::Proc(Some(p)) => p.signal(sig),
            Run::Proc(None) => {}
            Run::Container { name } => {
                let _ = crate::docker::docker(&["kill", "-s", sig, name]);
            }
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        if let Run::Container { name } = &self.run {
            if let Ok(text) = crate::docker::logs(name) {
                let _ = std::fs::write(&self.log, &text);
            }
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Node logs: openraft's per-retry replication chatter left out.
const LOG_FILTER: &str = "info,openraft=warn,openraft::replication=error";

/// The file [`Cluster::fill_disk`] fills a disk with.
pub(crate) const FILLER: &str = "filler.root";

/// Snapshots (and log purges) every this many entries, so a node that was cut off for a
/// while needs a snapshot to catch up.
const SNAPSHOT_EVERY: &str = "50";

/// The nodes of one cluster (processes or containers) in one temp dir, with an admin
/// client trusting its CA.
pub struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub admin: Option<Admin>,
    /// The private network of a container cluster.
    pub(crate) network: Option<crate::docker::Network>,
    /// Data dirs on their own small tmpfs (see [`Cluster::start_containers_on_own_disks`]).
    pub(crate) disks: Vec<PathBuf>,
}

impl Cluster {
    /// Processes on loopback: bootstraps with the first role (a voter), then joins the rest
    /// one by one through the first node; returns once every member holds its role.
    pub async fn start(roles: &[Role]) -> Cluster {
        let mut c = Cluster::empty("certraft-cluster-");
        for (i, &role) in roles.iter().enumerate() {
            let label = format!("n{}", i + 1);
            c.nodes.push(Node {
                data_dir: c.dir.path().join(&label),
                log: c.dir.path().join(format!("{label}.log")),
                label,
                role,
                id: 0,
                host: "127.0.0.1".into(),
                admin: free_port(),
                cluster: free_port(),
                serve: free_port(),
                run: Run::Proc(None),
                paused: false,
            });
        }
        c.form(roles).await;
        c
    }

    /// Containers of `image` on a new private Docker network, one address each; otherwise
    /// as [`Cluster::start`].
    pub async fn start_containers(image: &str, roles: &[Role]) -> Cluster {
        Cluster::start_containers_on_own_disks(image, roles, None).await
    }

    /// As [`Cluster::start_containers`]; with `disk_mib`, each data dir is its own tmpfs of
    /// that size, so [`Cluster::fill_disk`] can fill one node's disk (needs root to mount).
    pub async fn start_containers_on_own_disks(
        image: &str,
        roles: &[Role],
        disk_mib: Option<u64>,
    ) -> Cluster {
        let mut c = Cluster::empty("certraft-containers-");
        let network = crate::docker::Network::create(image).unwrap_or_else(|e| panic!("{e}"));
        for (i, &role) in roles.iter().enumerate() {
            let label = format!("n{}", i + 1);
            let data_dir = c.dir.path().join(&label);
            crate::docker::prepare_data_dir(&data_dir);
            if let Some(mib) = disk_mib {
                mount_tmpfs(&data_dir, mib);
                c.disks.push(data_dir.clone());
            }
            c.nodes.push(Node {
                log: c.dir.path().join(format!("{label}.log")),
                host: network.address(i),
                run: Run::Container {
                    name: format!("{}-{label}", network.name),
                },
                data_dir,
                label,
                role,
                id: 0,
                admin: 9443,
                cluster: 9444,
                serve: 8443,
                paused: false,
            });
        }
        c.network = Some(network);
        c.form(roles).await;
        c
    }

    fn empty(prefix: &str) -> Cluster {
        Cluster {
            dir: tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .expect("temp dir"),
            nodes: Vec::new(),
            admin: None,
            network: None,
            disks: Vec::new(),
        }
    }

    /// Starts node `i` for the first time (joining through `join` unless it bootstraps).
    pub(crate) fn first_start(&mut self, i: usize, join: Option<(&str, &str)>) {
        match &self.nodes[i].run {
            Run::Proc(_) => self.nodes[i].spawn_process(join),
            Run::Container { .. } => {
                let net = self.network.as_ref().expect("container network");
                let n = &self.nodes[i];
                let mut env = vec![
                    ("CERTRAFT_ADVERTISE", n.host.clone()),
                    ("CERTRAFT_LOG", LOG_FILTER.to_string()),
                    ("CERTRAFT_SNAPSHOT_EVERY", SNAPSHOT_EVERY.to_string()),
                    ("NO_COLOR", "1".to_string()),
                ];
                if let Some((url, token)) = join {
                    env.push(("CERTRAFT_JOIN", url.to_string()));
                    env.push(("CERTRAFT_JOIN_TOKEN", token.to_string()));
                    env.push(("CERTRAFT_ROLE", n.role.as_str().to_string()));
                }
                net.run(
                    n.container().expect("container"),
                    &n.host,
                    &n.data_dir,
                    &env,
                )
                .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    async fn form(&mut self, roles: &[Role]) {
        assert_eq!(
            roles.first(),
            Some(&Role::Voter),
            "the first node bootstraps"
        );
        self.first_start(0, None);
        let data = self.nodes[0].data_dir.clone();
        let (ca, token) = self
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
        self.admin = Some(Admin::new(&ca, &token, Duration::from_secs(10)).expect("admin client"));
        self.wait_ready(0).await;
        for i in 1..self.nodes.len() {
            self.join(i, 0).await;
        }
        self.wait_members_settled().await;
    }

    /// Starts node `i` on its (empty) data dir with a join token for its role from node
    /// `via`, joining through `via`; waits until it knows a leader.
    pub(crate) async fn join(&mut self, i: usize, via: usize) {
        let role = self.nodes[i].role;
        let reply = self
            .call_ok(
                via,
                reqwest::Method::POST,
                "/api/v1/cluster/join-tokens",
                Some(&json!({"role": role.as_str(), "ttl_secs": 600})),
            )
            .await;
        let token = reply.body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("join-token answer without a token: {reply}"))
            .to_string();
        let url = self.nodes[via].admin_url();
        self.first_start(i, Some((&url, &token)));
        self.wait_ready(i).await;
    }

    pub fn admin(&self) -> &Admin {
        self.admin.as_ref().expect("admin client")
    }

    /// The host's address on a container cluster's network (its gateway): where a server
    /// the test runs on the host must listen for the containers to reach it, and where the
    /// test's own clients come from. `None` for processes on loopback.
    pub fn gateway(&self) -> Option<String> {
        self.network.as_ref().map(crate::docker::Network::gateway)
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

    /// The index of the node the first running node that knows one names as leader.
    pub async fn leader(&self) -> Option<usize> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.leader_among(&all).await
    }

    /// As [`Cluster::leader`], asking only the nodes in `among` (one side of a partition).
    pub async fn leader_among(&self, among: &[usize]) -> Option<usize> {
        for &i in among {
            if self.nodes[i].paused || matches!(self.nodes[i].run, Run::Proc(None)) {
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
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        crate::process::poll(limit, Duration::from_millis(50), probe)
            .await
            .unwrap_or_else(|last| {
                panic!("timed out after {limit:?} waiting for {what}; last: {last}")
            })
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
        let failing = std::thread::panicking();
        if failing {
            self.dir.disable_cleanup(true);
            eprintln!(
                "cluster kept for a post-mortem in {}\n{}",
                self.dir.path().display(),
                self.log_tails(30)
            );
        }
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        if let Some(net) = self.network.take() {
            let names: Vec<&str> = self.nodes.iter().filter_map(Node::container).collect();
            net.remove(&names);
        }
        for disk in &self.disks {
            if failing {
                eprintln!("kept mounted for the post-mortem: {}", disk.display());
            } else if let Err(e) = crate::docker::run("umount", &["-l", &disk.to_string_lossy()]) {
                eprintln!("{e}");
            }
        }
    }
}
