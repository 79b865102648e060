//! Helpers for running the real `certraft` binary against the node crate's fixtures, a
//! scripted admin endpoint ([`admin`]) and real `certraft-node` processes ([`node`]).

pub(crate) mod admin;
pub(crate) mod node;

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The OpenSSL-made fixtures of the bundle engine (`node/tests/fixtures/generate.sh`).
pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../node/tests/fixtures");

/// The environment variable the binary reads a passphrase from.
pub(crate) const ENV_PASSPHRASE: &str = "CERTRAFT_PASSPHRASE";

/// True when the `openssl` command runs; under CI=true it must (`.ci/run` installs it),
/// elsewhere a test without it skips its openssl checks with this reason.
pub(crate) fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "openssl is required under CI=true"
        );
        eprintln!("skipping the openssl checks: the openssl command is not installed");
    }
    ok
}

/// The path of one fixture, as the binary will be given it (and will print it back).
pub(crate) fn fixture(name: &str) -> PathBuf {
    let path = PathBuf::from(FIXTURES).join(name);
    assert!(
        path.exists(),
        "fixture {} is missing; run node/tests/fixtures/generate.sh",
        path.display()
    );
    path
}

/// `fixture(name)` as the string the binary prints in its messages.
pub(crate) fn fixture_str(name: &str) -> String {
    fixture(name).display().to_string()
}

/// The first line of a passphrase fixture (`pass.txt` or `wrong-pass.txt`).
fn first_line(name: &str) -> String {
    let text = std::fs::read_to_string(fixture(name)).expect("passphrase fixture is UTF-8");
    let line = text.lines().next().unwrap_or("").to_string();
    assert!(!line.is_empty(), "{name} holds no passphrase");
    line
}

/// The passphrase in `pass.txt`.
pub(crate) fn passphrase() -> String {
    first_line("pass.txt")
}

/// The passphrase in `wrong-pass.txt`.
pub(crate) fn wrong_passphrase() -> String {
    first_line("wrong-pass.txt")
}

/// The environment variables that point the binary at a cluster; removed from every run (as
/// is every other `CERTRAFT_*` variable) so the caller's environment cannot leak into a test.
pub(crate) const ENV_CLUSTER: [&str; 4] = [
    "CERTRAFT_SERVER",
    "CERTRAFT_TOKEN",
    "CERTRAFT_DATA_DIR",
    "CERTRAFT_PASSPHRASE",
];

/// One invocation of the binary: no `CERTRAFT_*` variable unless set here, stdin null
/// (never a TTY, so no prompt can happen).
pub(crate) struct Certraft {
    cmd: Command,
    shown: Vec<String>,
}

/// Starts `certraft` with these arguments.
pub(crate) fn certraft<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Certraft {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certraft"));
    for key in ENV_CLUSTER {
        cmd.env_remove(key);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CERTRAFT_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut c = Certraft {
        cmd,
        shown: Vec::new(),
    };
    for a in args {
        c = c.arg(a);
    }
    c
}

/// Starts `certraft inspect` with these fixtures (by name) as its files.
pub(crate) fn inspect_fixtures(files: &[&str]) -> Certraft {
    certraft(["inspect"]).fixtures(files)
}

impl Certraft {
    pub(crate) fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.shown.push(a.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(a);
        self
    }

    pub(crate) fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub(crate) fn fixtures(self, names: &[&str]) -> Self {
        self.args(names.iter().map(|n| fixture(n)))
    }

    /// `--passphrase-file` with the named fixture.
    pub(crate) fn passphrase_fixture(self, name: &str) -> Self {
        self.arg("--passphrase-file").arg(fixture(name))
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.shown.push(format!("[{key} set]"));
        self.cmd.env(key, value);
        self
    }

    /// Runs in `dir` (where `./certraft-data` is looked for).
    pub(crate) fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.shown.push(format!("[in {}]", dir.as_ref().display()));
        self.cmd.current_dir(dir);
        self
    }

    /// Standard input from this file (instead of null).
    pub(crate) fn stdin_file(mut self, path: &std::path::Path) -> Self {
        self.shown.push(format!("< {}", path.display()));
        self.cmd
            .stdin(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        self
    }

    pub(crate) fn run(mut self) -> Run {
        let out = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run certraft: {e}"));
        Run {
            command: format!("certraft {}", self.shown.join(" ")),
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }
}

/// What one invocation did. `Display` shows all of it, for assertion messages.
pub(crate) struct Run {
    pub command: String,
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Asserts the exit code; returns self for chaining.
    #[track_caller]
    pub(crate) fn exits(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "wrong exit code: {self}");
        self
    }

    /// stdout as JSON; panics with the whole run when it is not.
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// For `--json` refusals: checks the `{"error":{"code","message"}}` shape (and nothing
    /// else on stdout or stderr) and returns `(code, message)`.
    #[track_caller]
    pub(crate) fn json_error(&self) -> (String, String) {
        let v = self.json();
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {self}"));
        assert_eq!(obj.len(), 1, "only \"error\" expected: {self}");
        let err = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("no error object: {self}"));
        assert_eq!(err.len(), 2, "error holds code and message only: {self}");
        let code = err["code"]
            .as_str()
            .unwrap_or_else(|| panic!("error.code is not a string: {self}"));
        let message = err["message"]
            .as_str()
            .unwrap_or_else(|| panic!("error.message is not a string: {self}"));
        assert!(!code.is_empty() && !message.is_empty(), "{self}");
        assert_eq!(
            self.stderr, "",
            "--json refusals print nothing on stderr: {self}"
        );
        (code.to_string(), message.to_string())
    }

    /// For `--json` failures that may carry a hint: checks `{"error":{"code","message"[,"hint"]}}`
    /// and nothing on stderr; returns `(code, message, hint)`.
    #[track_caller]
    pub(crate) fn json_error_hint(&self) -> (String, String, Option<String>) {
        let v = self.json();
        let err = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("no error object: {self}"));
        assert!(
            err.keys()
                .all(|k| ["code", "message", "hint"].contains(&k.as_str())),
            "unexpected keys in error: {self}"
        );
        assert_eq!(
            self.stderr, "",
            "--json failures print nothing on stderr: {self}"
        );
        let text = |k: &str| err.get(k).and_then(|v| v.as_str()).map(str::to_string);
        (
            text("code").unwrap_or_else(|| panic!("no error.code: {self}")),
            text("message").unwrap_or_else(|| panic!("no error.message: {self}")),
            text("hint"),
        )
    }

    /// True when `needle` occurs on stdout or stderr.
    pub(crate) fn prints(&self, needle: &str) -> bool {
        self.stdout.contains(needle) || self.stderr.contains(needle)
    }
}

/// `key` of a report as one string: `ec-p256`, `ec-p384`, `ed25519`, `rsa-2048`, …
pub(crate) fn key_text(key: &Value) -> String {
    let algorithm = key["algorithm"].as_str().unwrap_or("?");
    match key.get("bits") {
        Some(bits) => format!("{algorithm}-{bits}"),
        None => algorithm.to_string(),
    }
}

/// True for 64 lowercase hex digits.
pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
