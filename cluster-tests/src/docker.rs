//! The Docker side of container clusters: the engine through the `docker` CLI, a private
//! network per cluster with one fixed address per node, and partitions made with iptables
//! inside each container's network namespace (entered from the host with `nsenter`; the
//! image itself holds no tools).

use std::path::Path;
use std::process::Command;

/// Runs `docker ARGS`; its stdout, or an error with the command and its stderr.
pub fn docker(args: &[&str]) -> Result<String, String> {
    run("docker", args)
}

/// Runs `program ARGS`; its stdout, or an error with the command and its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A container's combined output.
pub fn logs(name: &str) -> Result<String, String> {
    let out = Command::new("docker")
        .args(["logs", name])
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The image container tests run: env `CERTRAFT_IMAGE`, default `certraft-node:dev`.
pub fn image_name() -> String {
    std::env::var("CERTRAFT_IMAGE").unwrap_or_else(|_| "certraft-node:dev".to_string())
}

/// What container tests need, present: the image to run. `Err` says what is missing and
/// how to get it.
pub fn ready() -> Result<String, String> {
    docker(&["info", "--format", "{{.ServerVersion}}"])
        .map_err(|e| format!("no Docker engine ({e})"))?;
    for tool in ["nsenter", "iptables"] {
        run("sh", &["-c", &format!("command -v {tool}")]).map_err(|_| {
            format!("{tool} is not installed (apt-get install util-linux iptables)")
        })?;
    }
    let image = image_name();
    docker(&["image", "inspect", "--format", "{{.Id}}", &image]).map_err(|_| {
        format!("the image {image} does not exist: build it with images/build.sh (set CERTRAFT_IMAGE for another tag)")
    })?;
    Ok(image)
}

/// The image for a container test, or `None` (with the reason printed) when the engine,
/// tools or image are missing outside CI. Under `CI=true` a missing part fails the test.
pub fn image_or_skip(test: &str) -> Option<String> {
    match ready() {
        Ok(image) => Some(image),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: CI=true needs the container suite to run, but {why}")
        }
        Err(why) => {
            println!("{test}: skipped: {why}");
            None
        }
    }
}

/// A data dir on the host, bind-mounted as `/data`, owned by the image's user (10001).
pub fn prepare_data_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).expect("data dir");
    std::os::unix::fs::chown(path, Some(10001), Some(10001))
        .unwrap_or_else(|e| panic!("chown {} to 10001: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // The temp dir above it must let uid 10001 through.
    if let Some(parent) = path.parent() {
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711));
    }
}

/// One cluster's private network: `172.31.N.0/24`, node `i` at `172.31.N.(10+i)`.
pub struct Network {
    pub name: String,
    prefix: String,
    image: String,
}

impl Network {
    /// Creates a network on a free /24 of 172.31.0.0/16.
    pub fn create(image: &str) -> Result<Network, String> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id();
        let mut last = String::new();
        for attempt in 0..40u32 {
            let n = (seed.wrapping_add(attempt.wrapping_mul(97))) % 250 + 1;
            let name = format!("certraft-t{}-{n}", std::process::id());
            let prefix = format!("172.31.{n}");
            match docker(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &format!("{prefix}.0/24"),
                &name,
            ]) {
                Ok(_) => {
                    return Ok(Network {
                        name,
                        prefix,
                        image: image.to_string(),
                    })
                }
                Err(e) => last = e,
            }
        }
        Err(format!("no free network for the test cluster: {last}"))
    }

    pub fn address(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 10 + i)
    }

    /// The host's address on the network (the bridge's gateway, `172.31.N.1`): what the
    /// containers see the test's own clients come from, and where a server the test runs on
    /// the host (a CA) can listen for them.
    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// `docker run -d` of the image as `name` at `ip` with `data_dir` as `/data`.
    pub fn run(
        &self,
        name: &str,
        ip: &str,
        data_dir: &Path,
        env: &[(&str, String)],
    ) -> Result<(), String> {
        let volume = format!("{}:/data", data_dir.display());
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            &self.name,
            "--ip",
            ip,
            "--hostname",
            name,
            "-v",
            &volume,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push(self.image.clone());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&refs).map(|_| ())
    }

    fn in_netns(&self, container: &str, iptables: &[&str]) -> Result<(), String> {
        let pid = docker(&["inspect", "--format", "{{.State.Pid}}", container])?;
        if pid == "0" {
            return Ok(()); // not running: nothing to filter
        }
        let mut args = vec!["-t", &pid, "-n", "iptables"];
        args.extend_from_slice(iptables);
        run("nsenter", &args).map(|_| ())
    }

    /// `container` drops every packet from `ip`.
    pub fn drop_from(&self, container: &str, ip: &str) -> Result<(), String> {
        self.in_netns(container, &["-I", "INPUT", "-s", ip, "-j", "DROP"])
    }

    /// `container` drops TCP segments from `ip` whose source port is `sport` (the answers of
    /// a server at `ip:sport`, so `container` can no longer talk to it) or whose destination
    /// port is `dport` (connections `ip` opens to `container`'s `dport`); either may be
    /// `None`, not both. Everything else from `ip` still gets through.
    pub fn drop_tcp_from(
        &self,
        container: &str,
        ip: &str,
        sport: Option<u16>,
        dport: Option<u16>,
    ) -> Result<(), String> {
        assert!(
            sport.is_some() || dport.is_some(),
            "drop_tcp_from needs a port: use drop_from to drop everything from {ip}"
        );
        let (sport, dport) = (sport.map(|p| p.to_string()), dport.map(|p| p.to_string()));
        let mut rule = vec!["-I", "INPUT", "-s", ip, "-p", "tcp"];
        if let Some(p) = &sport {
            rule.extend_from_slice(&["--sport", p]);
        }
        if let Some(p) = &dport {
            rule.extend_from_slice(&["--dport", p]);
        }
        rule.extend_from_slice(&["-j", "DROP"]);
        self.in_netns(container, &rule)
    }

    /// `container` sends no TCP segment to `ip:dport` (an OUTPUT rule: what it would send a
    /// server there never leaves, not even on a connection already open).
    pub fn drop_tcp_to(&self, container: &str, ip: &str, dport: u16) -> Result<(), String> {
        let port = dport.to_string();
        self.in_netns(
            container,
            &[
                "-I", "OUTPUT", "-d", ip, "-p", "tcp", "--dport", &port, "-j", "DROP",
            ],
        )
    }

    /// Removes `container`'s partition rules (every chain of its filter table: the INPUT
    /// rules of the partitions, the OUTPUT rules of [`Network::drop_tcp_to`]).
    pub fn heal(&self, container: &str) -> Result<(), String> {
        self.in_netns(container, &["-F"])
    }

    /// Removes the containers and the network.
    pub fn remove(self, containers: &[&str]) {
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend_from_slice(containers);
            let _ = docker(&args);
        }
        let _ = docker(&["network", "rm", &self.name]);
    }
}
