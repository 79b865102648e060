//! README's container quickstart, run verbatim from the README: the `sh` block under
//! "Deploying with containers" (build, `images/up.sh pair`, a CLI call on appliance-b), twice
//! in a row, so a second run finds the cluster up and leaves it as it is; then the CLI on
//! appliance-b with appliance-a (the bootstrap node) killed; then the block's teardown, after
//! which nothing of the project may be left: no container, network or volume.
//!
//! Needs a Docker engine, `docker-compose` and the image (`images/build.sh`, which the block
//! runs). Without them the test skips with the reason, except under `CI=true`.

// Tests: `unwrap` is how a test says "this cannot fail here".
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use certraft_cluster_tests::docker;

const PROJECT: &str = "certraft-pair";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The README's first `sh` block after the "Deploying with containers" heading.
fn quickstart() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## Deploying with containers")
        .nth(1)
        .expect("README has a \"Deploying with containers\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section starts with a sh block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Runs `script` with bash in the repository root; its output, or a panic with it.
#[track_caller]
fn bash(script: &str) -> String {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(root());
    // Without the CARGO_* variables `cargo test` sets: they would make images/build.sh's
    // cargo rebuild what the same command built before.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" {
            cmd.env_remove(key.as_ref());
        }
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`{script}` failed ({}):\n{text}",
        out.status
    );
    text
}

/// What is left of the project: containers, networks, volumes (by compose's label).
fn leftovers() -> String {
    let label = format!("label=com.docker.compose.project={PROJECT}");
    ["ps -aq", "network ls -q", "volume ls -q"]
        .iter()
        .map(|what| {
            let mut args: Vec<&str> = what.split(' ').collect();
            args.extend(["--filter", &label]);
            docker::docker(&args).unwrap_or_default().trim().to_string()
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Takes the project down if the test fails half-way.
struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("images/down.sh")
                .arg("pair")
                .current_dir(root())
                .status();
        }
    }
}

#[test]
fn the_readme_container_quickstart_runs_twice_survives_the_bootstrap_node_and_leaves_nothing() {
    let name = "compose-quickstart";
    if docker::image_or_skip(name).is_none() {
        return;
    }
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "{name}: CI=true needs docker-compose"
        );
        println!("{name}: skipped: docker-compose is not installed");
        return;
    }
    let _teardown = Teardown;
    let lines = quickstart();
    let (down, up): (Vec<&String>, Vec<&String>) =
        lines.iter().partition(|l| l.starts_with("images/down.sh"));
    assert!(
        !down.is_empty() && up.len() >= 2,
        "quickstart block: {lines:?}"
    );
    // Leftovers of an earlier, interrupted run would make the first pass a second one.
    let _ = Command::new("images/down.sh")
        .arg("pair")
        .current_dir(root())
        .output();

    let up_script = up.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n");
    for pass in 1..=2 {
        let out = bash(&up_script);
        assert!(out.contains("every node joined"), "pass {pass}:\n{out}");
        if pass == 2 {
            assert!(
                out.contains("is a member already; left as it is"),
                "the second run leaves members alone:\n{out}"
            );
        }
    }

    // The bootstrap node dies: the CLI on appliance-b still works with no flags (its own
    // token), once B and the witness have elected a leader.
    docker::docker(&["kill", &format!("{PROJECT}_appliance-a_1")]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = Command::new("docker")
            .args([
                "exec",
                &format!("{PROJECT}_appliance-b_1"),
                "/certraft",
                "cert",
                "list",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        let last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            Instant::now() < deadline,
            "the CLI on appliance-b never worked with appliance-a down: {last}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    for line in &down {
        bash(line);
    }
    assert_eq!(leftovers(), "", "left behind after the teardown");
}
