//! Real `certraft-node` processes for the end-to-end tests: free ports, temp dirs, captured
//! logs, SIGTERM, and condition waits that fail with what was awaited and what was last seen.
//!
//! Every process a [`Cluster`] starts is killed when the cluster is dropped; when the test is
//! failing, the drop prints every node's log tail and keeps the temp dir for a post-mortem.
//!
//! Each node is a [`certraft_cluster_tests::process::NodeProcess`] (binary found or built on
//! demand, command line, logs, signals, polling), the harness every suite shares. This side
//! drives the nodes only through the `certraft` binary, with no HTTP client of its own.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::Value;

use certraft_cluster_tests::process::{
    log_tail, node_binary, poll_blocking, port_was_taken, NodeCommand, NodeProcess, Output, Ports,
};

use super::{certraft, Certraft};

/// How long a node may take to start answering, or a cluster to elect or catch up. Generous:
/// CI runs the suite on 2 cores with debug builds and tests in parallel.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// Between two looks at a condition (each look is a `certraft` process).
const POLL: Duration = Duration::from_millis(100);

const LOG_TAIL_LINES: usize = 40;

// ---- node processes ----------------------------------------------------------------------

/// Where a node keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataDir {
    /// No `--data-dir`: the default `./certraft-data` in the node's working directory.
    WorkingDir,
    /// `--data-dir DIR`, outside the working directory.
    Flag,
}

/// One `certraft-node run` process.
pub(crate) struct Node {
    /// `node1`, `node2`, … in start order: names the working dir and the log files.
    pub label: String,
    /// Working directory of the process.
    pub cwd: PathBuf,
    pub data_dir: PathBuf,
    data_flag: DataDir,
    pub admin: u16,
    pub cluster: u16,
    pub serve: u16,
    /// The HTTP port (ACME HTTP-01 answers).
    pub http: u16,
    process: Option<NodeProcess>,
    /// Whether the test expects it to be running (false once stopped).
    expect_running: bool,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
}

impl Node {
    /// `https://127.0.0.1:ADMIN`.
    pub(crate) fn admin_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.admin)
    }

    /// `127.0.0.1:ADMIN`, as `cluster status` shows a member's admin address.
    pub(crate) fn admin_addr(&self) -> String {
        format!("127.0.0.1:{}", self.admin)
    }

    fn spawn(&mut self, join: Option<(&str, &str)>) {
        let ports = Ports {
            admin: self.admin,
            cluster: self.cluster,
            serve: self.serve,
            http: Some(self.http),
        };
        let mut cmd = NodeCommand::new(node_binary(), ports)
            .cwd(&self.cwd)
            .output(Output::Files {
                stdout: self.stdout_log.clone(),
                stderr: self.stderr_log.clone(),
            });
        if self.data_flag == DataDir::Flag {
            cmd = cmd.data_dir(&self.data_dir);
        }
        if let Some((url, token)) = join {
            cmd = cmd.join(url, token);
        }
        self.process = Some(cmd.spawn());
        self.expect_running = true;
    }

    /// The exit status if the process has ended.
    fn exited(&self) -> Option<ExitStatus> {
        self.process.as_ref().and_then(NodeProcess::exited)
    }

    /// SIGKILL, and reap.
    fn kill9(&mut self) {
        self.expect_running = false;
        if let Some(p) = &self.process {
            p.kill9();
        }
    }

    /// The last lines of stdout and stderr.
    fn log_tail(&self) -> String {
        log_tail(
            &format!("{} (admin {})", self.label, self.admin),
            &[("stdout", &self.stdout_log), ("stderr", &self.stderr_log)],
            LOG_TAIL_LINES,
        )
    }
}

// ---- a cluster ---------------------------------------------------------------------------

/// The node processes of one cluster, in one temp dir, driven through the `certraft` binary
/// with the first node's `ca.pem` and `admin.token`.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// An empty temp dir; no node yet.
    fn new() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("certraft-e2e-")
            .tempdir()
            .expect("temp dir");
        for sub in ["logs", "scratch"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create a dir in the temp dir");
        }
        Cluster {
            dir,
            nodes: Vec::new(),
        }
    }

    /// A one-node cluster, bootstrapped and ready.
    pub(crate) fn single(data: DataDir) -> Cluster {
        let mut c = Cluster::new();
        c.bootstrap(data);
        c
    }

    /// A directory for the test's own files (exports, backups, token files); the working
    /// directory of every [`Cluster::cli`] run, and holding no `certraft-data`.
    pub(crate) fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    fn new_node(&mut self, data: DataDir) -> usize {
        let n = self.nodes.len() + 1;
        let label = format!("node{n}");
        let cwd = self.dir.path().join(&label);
        std::fs::create_dir_all(&cwd).expect("node working dir");
        let data_dir = match data {
            DataDir::WorkingDir => cwd.join("certraft-data"),
            DataDir::Flag => self.dir.path().join(format!("{label}-data")),
        };
        let logs = self.dir.path().join("logs");
        let ports = Ports::free();
        self.nodes.push(Node {
            stdout_log: logs.join(format!("{label}.stdout.log")),
            stderr_log: logs.join(format!("{label}.stderr.log")),
            label,
            cwd,
            data_dir,
            data_flag: data,
            admin: ports.admin,
            cluster: ports.cluster,
            serve: ports.serve,
            http: certraft_cluster_tests::ports::free_port(),
            process: None,
            expect_running: false,
        });
        n - 1
    }

    /// Starts the first node on an empty data dir, so that it bootstraps a one-node cluster;
    /// returns its index once it answers `cluster status` as its own leader.
    pub(crate) fn bootstrap(&mut self, data: DataDir) -> usize {
        assert!(self.nodes.is_empty(), "bootstrap starts the first node");
        let i = self.new_node(data);
        for attempt in 1..=5 {
            self.nodes[i].spawn(None);
            match self.await_bootstrap(i) {
                Ok(()) => return i,
                // Another process took a port between our check and the node's bind: the
                // bootstrap never got further than binding, so start afresh on new ports.
                Err(log) if port_was_taken(&log) && attempt < 5 => {
                    let n = &mut self.nodes[i];
                    let _ = std::fs::remove_dir_all(&n.data_dir);
                    let ports = Ports::free();
                    (n.admin, n.cluster, n.serve) = (ports.admin, ports.cluster, ports.serve);
                }
                Err(log) => panic!("{} exited during bootstrap:\n{log}", self.nodes[i].label),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Waits until node `i` wrote its CA and admin token and answers `cluster status` naming
    /// itself leader. `Err` with its log when the process exits first.
    fn await_bootstrap(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::from("no ca.pem and admin.token yet");
        loop {
            if let Some(status) = self.nodes[i].exited() {
                self.nodes[i].expect_running = false;
                return Err(format!(
                    "{} exited with {status}\n{}",
                    self.nodes[i].label,
                    self.nodes[i].log_tail()
                ));
            }
            if self.ca_file().is_file() && self.token_file().is_file() {
                match self.status(i) {
                    Ok(s) if s["leader"].is_u64() && s["leader"] == s["node_id"] => return Ok(()),
                    Ok(s) => last = s.to_string(),
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {PATIENCE:?} waiting for {} to bootstrap; last: {last}",
                    self.nodes[i].label
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Starts a new node (data dir given by flag) that joins through node `via` with `token`;
    /// returns its index at once (see [`Cluster::await_answering`]).
    pub(crate) fn join(&mut self, via: usize, token: &str) -> usize {
        let url = self.nodes[via].admin_url();
        let i = self.new_node(DataDir::Flag);
        self.nodes[i].spawn(Some((&url, token)));
        i
    }

    /// Waits until node `i` answers `cluster status` (a joining node does once it is a
    /// member, possibly still a learner).
    pub(crate) fn await_answering(&self, i: usize) {
        let what = format!("{} to answer `cluster status`", self.nodes[i].label);
        self.wait_for(&what, || self.status(i));
    }

    /// The first node's cluster CA: `DATA/ca.pem`.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.nodes[0].data_dir.join("ca.pem")
    }

    /// The first node's `DATA/admin.token`.
    pub(crate) fn token_file(&self) -> PathBuf {
        self.nodes[0].data_dir.join("admin.token")
    }

    /// `certraft --server NODE_i` in [`Cluster::scratch`], with no credentials.
    pub(crate) fn cli_bare(&self, i: usize) -> Certraft {
        certraft(["--server", &self.nodes[i].admin_url()]).current_dir(self.scratch())
    }

    /// `certraft --server NODE_i --ca-file DATA1/ca.pem --token-file DATA1/admin.token`, in
    /// [`Cluster::scratch`]; add the command.
    pub(crate) fn cli(&self, i: usize) -> Certraft {
        self.cli_bare(i)
            .arg("--ca-file")
            .arg(self.ca_file())
            .arg("--token-file")
            .arg(self.token_file())
    }

    /// `cluster status --json` through node `i`.
    pub(crate) fn status(&self, i: usize) -> Result<Value, String> {
        let run = self.cli(i).args(["cluster", "status", "--json"]).run();
        match run.code {
            Some(0) => serde_json::from_str(&run.stdout)
                .map_err(|e| format!("stdout is not JSON ({e}): {run}")),
            _ => Err(run.to_string()),
        }
    }

    /// Looks at `probe` every [`POLL`] until it answers `Ok`, for at most [`PATIENCE`]. On
    /// timeout (or when a node the test expects to run has exited) fails with `what` and the
    /// last `Err` the probe gave; the drop then prints every node's log tail.
    pub(crate) fn wait_for<T>(
        &self,
        what: &str,
        mut probe: impl FnMut() -> Result<T, String>,
    ) -> T {
        poll_blocking(PATIENCE, POLL, || {
            self.assert_alive(what);
            probe()
        })
        .unwrap_or_else(|last| {
            panic!("timed out after {PATIENCE:?} waiting for {what}; last observed: {last}")
        })
    }

    /// Fails if a node the test expects to be running has exited.
    pub(crate) fn assert_alive(&self, what: &str) {
        for n in &self.nodes {
            if n.expect_running {
                if let Some(status) = n.exited() {
                    panic!(
                        "{} exited unexpectedly ({status}) while waiting for {what}",
                        n.label
                    );
                }
            }
        }
    }

    /// From now on node `i` may exit on its own (e.g. once removed from the cluster) without
    /// failing a wait; it is still killed on drop.
    pub(crate) fn may_exit(&mut self, i: usize) {
        self.nodes[i].expect_running = false;
    }

    /// SIGTERM to node `i`, then waits until it has exited; returns its exit status.
    pub(crate) fn stop(&mut self, i: usize) -> ExitStatus {
        self.nodes[i].expect_running = false;
        if let Some(p) = &self.nodes[i].process {
            p.signal("TERM");
        }
        let what = format!("{} to exit after SIGTERM", self.nodes[i].label);
        let node = &self.nodes[i];
        self.wait_for(&what, || {
            node.exited().ok_or_else(|| "still running".to_string())
        })
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
                "nodes at failure (kept in {}):\n{}",
                self.dir.path().display(),
                self.log_tails()
            );
        }
        for n in &mut self.nodes {
            n.kill9();
        }
    }
}
