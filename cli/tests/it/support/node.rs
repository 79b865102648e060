//! Real `certraft-node` processes for the end-to-end tests: the binary (built on demand), free
//! ports, temp dirs, captured logs, SIGTERM, and condition waits that fail with what was
//! awaited and what was last seen.
//!
//! Every process a [`Cluster`] starts is killed when the cluster is dropped; when the test is
//! failing, the drop prints every node's log tail and keeps the temp dir for a post-mortem.
//!
//! Free ports and filtered log tails come from the cluster tests' library
//! (`certraft_cluster_tests::{ports, logs}`), shared with `node/tests/it/support`; the
//! retried bootstrap when a port was taken is that harness's idea. This side drives the
//! nodes only through the `certraft` binary, with no HTTP client of its own.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use certraft_cluster_tests::logs::Tail;
pub(crate) use certraft_cluster_tests::ports::free_port;

use super::{certraft, Certraft};

/// How long a node may take to start answering, or a cluster to elect or catch up. Generous:
/// CI runs the suite on 2 cores with debug builds and tests in parallel.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// Between two looks at a condition (each look is a `certraft` process).
const POLL: Duration = Duration::from_millis(100);

const LOG_TAIL_LINES: usize = 40;

// ---- the node binary ---------------------------------------------------------------------

/// `certraft-node`, next to the `certraft` binary under test (same target dir and profile).
///
/// `cargo test --workspace` builds it before the tests run. When it is missing, or older than
/// a file of `node/src`, `node/Cargo.toml` or `Cargo.lock` (e.g. under `cargo test -p
/// certraft-cli` alone, which does not build it), it is built once per test process with
/// `$CARGO build -p certraft-node` into the same target dir and profile; a failed build fails
/// every test that needs it, with cargo's output.
pub(crate) fn node_binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(find_or_build_node) {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

fn find_or_build_node() -> Result<PathBuf, String> {
    let cli = Path::new(env!("CARGO_BIN_EXE_certraft"));
    let node = cli.with_file_name(format!("certraft-node{}", std::env::consts::EXE_SUFFIX));
    let built = node.metadata().and_then(|m| m.modified()).ok();
    let why = match (built, newest_node_source()) {
        (None, _) => "is missing",
        (Some(built), Some(source)) if source > built => "is older than the node's sources",
        _ => return Ok(node),
    };
    let bin_dir = cli
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", cli.display()))?;
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["build", "-p", "certraft-node", "--bin", "certraft-node"]);
    // TARGET/PROFILE_DIR/certraft, or TARGET/TRIPLE/PROFILE_DIR/certraft with --target.
    match bin_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let is_target_dir = |d: &Path| d.join("CACHEDIR.TAG").is_file();
    if let Some(parent) = bin_dir.parent() {
        if is_target_dir(parent) {
            cmd.arg("--target-dir").arg(parent);
        } else if let (Some(triple), Some(root)) = (parent.file_name(), parent.parent()) {
            if is_target_dir(root) {
                cmd.arg("--target")
                    .arg(triple)
                    .arg("--target-dir")
                    .arg(root);
            }
        }
    }
    eprintln!("{} {why}; building it: {cmd:?}", node.display());
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo to build certraft-node ({cmd:?}): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building certraft-node failed ({cmd:?} exited {}); build it yourself with `cargo build -p certraft-node`, or run `cargo test --workspace`\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !node.is_file() {
        return Err(format!(
            "{cmd:?} succeeded but {} is still missing; run `cargo test --workspace`",
            node.display()
        ));
    }
    Ok(node)
}

/// When the newest of `node/src/**`, `node/Cargo.toml` and `Cargo.lock` was modified.
fn newest_node_source() -> Option<std::time::SystemTime> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut files = vec![root.join("node/Cargo.toml"), root.join("Cargo.lock")];
    let mut dirs = vec![root.join("node/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
        .iter()
        .filter_map(|f| f.metadata().and_then(|m| m.modified()).ok())
        .max()
}

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
    child: Mutex<Option<Child>>,
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
        let out = File::create(&self.stdout_log).expect("create stdout log");
        let err = File::create(&self.stderr_log).expect("create stderr log");
        let mut cmd = Command::new(node_binary());
        cmd.arg("run");
        if self.data_flag == DataDir::Flag {
            cmd.arg("--data-dir").arg(&self.data_dir);
        }
        for (flag, port) in [
            ("--admin", self.admin),
            ("--cluster", self.cluster),
            ("--serve", self.serve),
        ] {
            cmd.arg(flag).arg(format!("127.0.0.1:{port}"));
        }
        if let Some((url, token)) = join {
            cmd.args(["--join", url, "--join-token", token]);
        }
        // No CERTRAFT_* from the environment running the tests.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CERTRAFT_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("NO_COLOR", "1")
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", node_binary().display()));
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        self.expect_running = true;
    }

    /// The exit status if the process has ended.
    fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    fn pid(&self) -> Option<u32> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_ref().map(Child::id)
    }

    /// SIGKILL, and reap.
    fn kill9(&mut self) {
        self.expect_running = false;
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of stdout and stderr, leaving out openraft's retry chatter about
    /// unreachable peers (counted instead), which drowns the rest.
    fn log_tail(&self) -> String {
        let mut out = String::new();
        for (stream, path) in [("stdout", &self.stdout_log), ("stderr", &self.stderr_log)] {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            out.push_str(
                &Tail::of(&text, LOG_TAIL_LINES)
                    .render(&format!("{} (admin {}) {stream}", self.label, self.admin)),
            );
        }
        out
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
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
        self.nodes.push(Node {
            stdout_log: logs.join(format!("{label}.stdout.log")),
            stderr_log: logs.join(format!("{label}.stderr.log")),
            label,
            cwd,
            data_dir,
            data_flag: data,
            admin: free_port(),
            cluster: free_port(),
            serve: free_port(),
            child: Mutex::new(None),
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
                Err(log) if log.contains("cannot listen on") && attempt < 5 => {
                    let n = &mut self.nodes[i];
                    let _ = std::fs::remove_dir_all(&n.data_dir);
                    n.admin = free_port();
                    n.cluster = free_port();
                    n.serve = free_port();
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
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.assert_alive(what);
            let last = match probe() {
                Ok(v) => return v,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!("timed out after {PATIENCE:?} waiting for {what}; last observed: {last}");
            }
            std::thread::sleep(POLL);
        }
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
        if let Some(pid) = self.nodes[i].pid() {
            if self.nodes[i].exited().is_none() {
                let status = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .expect("run kill -TERM");
                assert!(status.success(), "kill -TERM {pid} failed");
            }
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
