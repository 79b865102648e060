//! One `certraft-node run` process on loopback: the one place every harness in the
//! workspace (the node's and the CLI's integration tests, the benches, the cluster suites)
//! finds the binary, builds the command line, captures the logs, signals and reaps the
//! process, and polls a condition with a deadline.
//!
//! What a harness adds on top is its own: how it talks to the nodes (an async HTTP client,
//! the `certraft` binary, the bench's load clients) and what a cluster of them means.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::logs::Tail;
use crate::ports::free_port;

// ---- the binary ---------------------------------------------------------------------------

/// `certraft-node` in the target dir of the running test or bench (`target/PROFILE/`, the
/// parent of its `deps/`).
///
/// `cargo test --workspace` builds it before the tests run. When it is missing, or older
/// than a file of `node/src`, `node/core/src`, `node/Cargo.toml` or `Cargo.lock` (e.g. under
/// `cargo test -p certraft-cli` alone, which does not build it), it is built once per test
/// process with `$CARGO build -p certraft-node` into the same target dir and profile; a
/// failed build fails every test that needs it, with cargo's output.
pub fn node_binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(find_or_build_node) {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

/// The workspace root (this crate's parent directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn find_or_build_node() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("test executable path: {e}"))?;
    // TARGET/PROFILE/deps/TEST → TARGET/PROFILE
    let bin_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not under target/PROFILE/deps", exe.display()))?
        .to_path_buf();
    let node = bin_dir.join(format!("certraft-node{}", std::env::consts::EXE_SUFFIX));
    let built = node.metadata().and_then(|m| m.modified()).ok();
    let why = match (built, newest_node_source()) {
        (None, _) => "is missing",
        (Some(built), Some(source)) if source > built => "is older than the node's sources",
        _ => return Ok(node),
    };
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root()).args([
        "build",
        "-p",
        "certraft-node",
        "--bin",
        "certraft-node",
    ]);
    // TARGET/PROFILE_DIR, or TARGET/TRIPLE/PROFILE_DIR with --target.
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

/// When the newest of the node's sources was modified.
fn newest_node_source() -> Option<std::time::SystemTime> {
    let root = workspace_root();
    let mut files = vec![
        root.join("node/Cargo.toml"),
        root.join("node/core/Cargo.toml"),
        root.join("Cargo.lock"),
    ];
    let mut dirs = vec![root.join("node/src"), root.join("node/core/src")];
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

// ---- the command line ---------------------------------------------------------------------

/// A node's three loopback ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub admin: u16,
    pub cluster: u16,
    pub serve: u16,
    /// `--http 127.0.0.1:PORT` (ACME HTTP-01); `None` passes no flag (the node's default,
    /// which gives way quietly when taken; a build from before `--http` knows no flag).
    pub http: Option<u16>,
}

impl Ports {
    /// Three ports free now (see [`free_port`]).
    pub fn free() -> Ports {
        Ports {
            admin: free_port(),
            cluster: free_port(),
            serve: free_port(),
            http: None,
        }
    }
}

/// Whether a node's log says it could not bind a port (another process took it between
/// [`free_port`] and the node's bind): a bootstrap that failed so got no further and can be
/// started afresh on new ports.
pub fn port_was_taken(log: &str) -> bool {
    log.contains("cannot listen on")
}

/// Where a node's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum Output {
    /// Each to its own file, created afresh.
    Files { stdout: PathBuf, stderr: PathBuf },
    /// Both appended to one file (kept across restarts).
    Append(PathBuf),
    /// Nowhere (benches under load).
    Discard,
}

/// `certraft-node run` with loopback ports: no `CERTRAFT_*` from the environment running
/// the tests (only what the harness sets), `NO_COLOR=1`, stdin closed.
pub struct NodeCommand {
    bin: PathBuf,
    wrapper: Vec<String>,
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    output: Output,
}

impl NodeCommand {
    pub fn new(bin: impl Into<PathBuf>, ports: Ports) -> NodeCommand {
        let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
        for (flag, port) in [
            ("--admin", ports.admin),
            ("--cluster", ports.cluster),
            ("--serve", ports.serve),
        ] {
            args.push(flag.into());
            args.push(format!("127.0.0.1:{port}").into());
        }
        if let Some(port) = ports.http {
            args.push("--http".into());
            args.push(format!("127.0.0.1:{port}").into());
        }
        NodeCommand {
            bin: bin.into(),
            wrapper: Vec::new(),
            args,
            env: Vec::new(),
            cwd: None,
            output: Output::Discard,
        }
    }

    /// `--data-dir DIR` (otherwise `./certraft-data` in the working directory).
    pub fn data_dir(mut self, dir: &Path) -> NodeCommand {
        self.args.push("--data-dir".into());
        self.args.push(dir.into());
        self
    }

    /// `--join URL --join-token TOKEN`.
    pub fn join(mut self, url: &str, token: &str) -> NodeCommand {
        for a in ["--join", url, "--join-token", token] {
            self.args.push(a.into());
        }
        self
    }

    /// `--role ROLE` (for a join).
    pub fn role(mut self, role: &str) -> NodeCommand {
        self.args.push("--role".into());
        self.args.push(role.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> NodeCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = &'a (String, String)>) -> NodeCommand {
        self.env.extend(vars.into_iter().cloned());
        self
    }

    pub fn cwd(mut self, dir: &Path) -> NodeCommand {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    pub fn output(mut self, output: Output) -> NodeCommand {
        self.output = output;
        self
    }

    /// Runs the node under another program, e.g. `taskset -c 0` or `prlimit --nofile=N:N`;
    /// calls nest (the first given is outermost).
    pub fn wrapped_in(mut self, program: &[&str]) -> NodeCommand {
        self.wrapper.extend(program.iter().map(|s| s.to_string()));
        self
    }

    /// Starts the process.
    pub fn spawn(self) -> NodeProcess {
        let mut cmd = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CERTRAFT_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let create = |p: &Path| {
            File::create(p).unwrap_or_else(|e| panic!("create log {}: {e}", p.display()))
        };
        match &self.output {
            Output::Files { stdout, stderr } => {
                cmd.stdout(create(stdout)).stderr(create(stderr));
            }
            Output::Append(path) => {
                let log = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|e| panic!("open log {}: {e}", path.display()));
                cmd.stdout(log.try_clone().expect("log handle")).stderr(log);
            }
            Output::Discard => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        NodeProcess {
            child: Mutex::new(Some(child)),
        }
    }
}

// ---- the process --------------------------------------------------------------------------

/// A started node process; killed (SIGKILL) and reaped when dropped.
pub struct NodeProcess {
    child: Mutex<Option<Child>>,
}

impl NodeProcess {
    /// Its process id (also after it exited).
    pub fn pid(&self) -> Option<u32> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_ref().map(Child::id)
    }

    /// The exit status if the process has ended.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, and reap; [`NodeProcess::exited`] reports the exit afterwards.
    pub fn kill9(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` (`TERM`, `STOP`, `CONT`, …) unless the process has ended.
    pub fn signal(&self, sig: &str) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.pid() {
            let status = Command::new("kill")
                .args([&format!("-{sig}"), &pid.to_string()])
                .status()
                .expect("run kill");
            assert!(
                status.success() || self.exited().is_some(),
                "kill -{sig} {pid} failed"
            );
        }
    }

    /// SIGTERM, then waits (at most `limit`) for the exit; `None` if it did not exit.
    pub fn stop(&self, limit: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `lines` lines of each log in `files` (`(stream name, path)`), under a header
/// naming `who`, leaving out openraft's retry chatter about unreachable peers (counted
/// instead), which drowns the rest.
pub fn log_tail(who: &str, files: &[(&str, &Path)], lines: usize) -> String {
    let mut out = String::new();
    for (stream, path) in files {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        out.push_str(&Tail::of(&text, lines).render(&format!("{who} {stream}")));
    }
    out
}

// ---- waiting ------------------------------------------------------------------------------

/// Looks at `probe` every `every` until it answers `Ok`, for at most `limit`; `Err` with the
/// last thing it said when the time is up. Harnesses add their context (what was awaited,
/// log tails) to the panic.
pub async fn poll<T, F, Fut>(limit: Duration, every: Duration, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = match probe().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(every).await;
    }
}

/// [`poll`] for a blocking probe (the CLI's tests drive nodes through processes).
pub fn poll_blocking<T>(
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match probe() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process the harness starts ends on drop, and a signal reaches it.
    #[test]
    fn a_process_is_signalled_and_reaped() {
        // `sleep` stands in for the node: what is under test is the process handling.
        let p = NodeCommand {
            bin: "sleep".into(),
            wrapper: Vec::new(),
            args: vec!["30".into()],
            env: Vec::new(),
            cwd: None,
            output: Output::Discard,
        }
        .spawn();
        assert!(p.exited().is_none());
        let status = p.stop(Duration::from_secs(10)).expect("exits on SIGTERM");
        assert!(!status.success());
        p.kill9();
        assert!(p.exited().is_some(), "a stopped process reports its exit");
        // Regression: kill -9 of a running process dropped the handle, so the harness took a
        // killed node for a running one and refused to restart it.
        let q = NodeCommand {
            bin: "sleep".into(),
            wrapper: Vec::new(),
            args: vec!["30".into()],
            env: Vec::new(),
            cwd: None,
            output: Output::Discard,
        }
        .spawn();
        q.kill9();
        assert!(q.exited().is_some(), "a killed process reports its exit");
    }

    /// Polling gives the value once the probe answers, the last error once the time is up.
    #[test]
    fn polling_answers_or_times_out_with_the_last_error() {
        let mut n = 0;
        let got = poll_blocking(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            if n == 3 {
                Ok(n)
            } else {
                Err(format!("try {n}"))
            }
        });
        assert_eq!(got, Ok(3));
        let late: Result<(), String> =
            poll_blocking(Duration::from_millis(20), Duration::from_millis(5), || {
                Err("never".into())
            });
        assert_eq!(late, Err("never".into()));
    }
}
