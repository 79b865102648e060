//! The Debian package (`images/debian/build-deb.sh`): it builds, installs with `dpkg -i` into
//! a fresh Debian made by `debootstrap` (no container image can be pulled here), its postinst
//! makes the unseal key (root-only, hex), the binaries run there, a node started there the
//! way the unit starts it (state dir, unseal key from /etc/certraft) bootstraps and answers
//! the CLI, and `systemd-analyze verify` accepts the unit.
//!
//! Needs root, `debootstrap`, `dpkg-deb`, `systemd-analyze` and network access to a Debian
//! mirror (`DEBIAN_MIRROR`, default deb.debian.org). Without them the test skips with the
//! reason, except under `CI=true`.

// Tests: `unwrap` is how a test says "this cannot fail here".
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use certraft_cluster_tests::ports::free_port;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `program` in the repository root, without the `CARGO_*` variables `cargo test` sets (they
/// would make the nested cargo build rebuild what images/build.sh built already).
fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

#[track_caller]
fn run(program: &str, args: &[&str]) -> String {
    let out = command(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    text(&out)
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if !is_root() {
        return Some("not root (debootstrap and chroot need it)".into());
    }
    for tool in ["debootstrap", "dpkg-deb", "systemd-analyze", "chroot"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
            || Path::new("/usr/sbin").join(tool).is_file();
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn the_debian_package_installs_into_a_fresh_debian_and_its_node_runs() {
    let name = "debian-package";
    if let Some(why) = missing() {
        assert!(
            std::env::var("CI").is_err(),
            "{name}: CI=true needs it to run, but {why}"
        );
        println!("{name}: skipped: {why}");
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("certraft-deb-")
        .tempdir()
        .unwrap();
    let out_dir = work.path().join("out");
    let built = command("images/debian/build-deb.sh")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(built.status.success(), "build-deb.sh: {}", text(&built));
    // The .deb's path is build-deb.sh's only line on stdout.
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_string();
    assert!(deb.ends_with(".deb") && Path::new(&deb).is_file(), "{deb}");
    let contents = run("dpkg-deb", &["--contents", &deb]);
    for want in [
        "./usr/bin/certraft-node",
        "./usr/bin/certraft",
        "./lib/systemd/system/certraft-node.service",
        "./etc/default/certraft-node",
        "./usr/share/doc/certraft/help/certraft-cert-import.txt",
    ] {
        assert!(
            contents.contains(want),
            "{want} not in the package:\n{contents}"
        );
    }

    // A fresh, minimal Debian.
    let chroot = work.path().join("debian");
    let mirror =
        std::env::var("DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    run(
        "debootstrap",
        &[
            "--variant=minbase",
            // systemd's units, for `systemd-analyze verify --root` (not run: no init here).
            "--include=systemd",
            "bookworm",
            chroot.to_str().unwrap(),
            &mirror,
        ],
    );
    std::fs::copy(&deb, chroot.join("tmp/certraft.deb")).unwrap();
    let in_chroot = |args: &[&str]| -> String {
        let mut all = vec![chroot.to_str().unwrap()];
        all.extend_from_slice(args);
        run("chroot", &all)
    };
    let installed = in_chroot(&["dpkg", "-i", "/tmp/certraft.deb"]);
    assert!(
        installed.contains("made /etc/certraft/unseal.key"),
        "{installed}"
    );
    let key = chroot.join("etc/certraft/unseal.key");
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(&key).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o400);
        assert_eq!(meta.uid(), 0);
        let hex = std::fs::read_to_string(&key).unwrap();
        assert!(
            hex.trim().len() == 64 && hex.trim().bytes().all(|b| b.is_ascii_hexdigit()),
            "the unseal key is 64 hex digits"
        );
    }
    assert!(in_chroot(&["certraft-node", "--version"]).starts_with("certraft-node "));
    assert!(in_chroot(&["certraft", "--version"]).starts_with("certraft "));

    // The unit as systemd reads it, against the installed tree.
    let unit = run(
        "systemd-analyze",
        &[
            "verify",
            &format!("--root={}", chroot.display()),
            "/lib/systemd/system/certraft-node.service",
        ],
    );
    assert!(!unit.contains("Unknown"), "systemd-analyze verify: {unit}");

    // A node as the unit runs it: state in /var/lib/certraft, the postinst's hex unseal key.
    let admin = free_port();
    let mut node = Command::new("chroot")
        .arg(&chroot)
        .args(["env", "CERTRAFT_DATA_DIR=/var/lib/certraft"])
        .arg("CERTRAFT_UNSEAL_KEY_FILE=/etc/certraft/unseal.key")
        .arg(format!("CERTRAFT_ADMIN=127.0.0.1:{admin}"))
        .arg(format!("CERTRAFT_CLUSTER=127.0.0.1:{}", free_port()))
        .arg(format!("CERTRAFT_SERVE=127.0.0.1:{}", free_port()))
        .args(["certraft-node", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.path().join("node.log")).unwrap())
        .spawn()
        .unwrap();
    let server = format!("https://127.0.0.1:{admin}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = Command::new("chroot")
            .arg(&chroot)
            .args([
                "env",
                "CERTRAFT_DATA_DIR=/var/lib/certraft",
                "certraft",
                "--server",
            ])
            .arg(&server)
            .args(["cluster", "status"])
            .output()
            .unwrap();
        if out.status.success() {
            break text(&out);
        }
        if Instant::now() > deadline || node.try_wait().unwrap().is_some() {
            let _ = node.kill();
            panic!(
                "the packaged node did not answer: {}\nlog:\n{}",
                text(&out),
                std::fs::read_to_string(work.path().join("node.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = node.kill();
    let _ = node.wait();
    assert!(status.contains("leader"), "{status}");
    assert!(
        !chroot.join("var/lib/certraft/unseal.key").exists(),
        "the unseal key stays out of the state directory"
    );
}
