//! The faults the suites do to a [`Cluster`]: `kill -9` and restart, SIGSTOP/SIGCONT,
//! partitions and one-way drops (iptables inside the containers' namespaces; also of one
//! TCP port, or of a server on the host), a full disk, and replacing a node with a fresh one.

use std::path::Path;

use crate::cluster::*;

impl Cluster {
    /// `kill -9` (a process is reaped; a container stays, stopped, with its data).
    pub fn kill9(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.paused {
            n.signal("CONT");
        }
        match &mut n.run {
            Run::Proc(child) => {
                if let Some(p) = child.take() {
                    p.kill9();
                }
            }
            Run::Container { name } => {
                let _ = crate::docker::docker(&["kill", "-s", "KILL", name]);
            }
        }
        n.paused = false;
    }

    /// Starts a killed node again on its data dir (no join flags matter: it resumes).
    pub fn restart(&mut self, i: usize) {
        match &self.nodes[i].run {
            Run::Proc(Some(_)) => panic!("{} is running", self.nodes[i].label),
            Run::Proc(None) => self.nodes[i].spawn_process(None),
            Run::Container { name } => {
                crate::docker::docker(&["start", name]).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    /// SIGSTOP: the node holds its sockets but does nothing.
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].signal("STOP");
        self.nodes[i].paused = true;
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, i: usize) {
        self.nodes[i].signal("CONT");
        self.nodes[i].paused = false;
    }

    /// Drops every packet between `a` and each of `others` (both ways), inside the
    /// containers' network namespaces. Container clusters only.
    pub fn partition(&self, a: usize, others: &[usize]) {
        for &b in others {
            self.drop_from(a, b);
            self.drop_from(b, a);
        }
    }

    /// `to` drops every packet from `from` (one way). Container clusters only.
    pub fn drop_from(&self, to: usize, from: usize) {
        let net = self
            .network
            .as_ref()
            .expect("partitions need a container cluster");
        net.drop_from(
            self.nodes[to].container().expect("container"),
            &self.nodes[from].host,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Node `i` and the server the host runs on `port` (a CA, say) no longer exchange
    /// anything: `i` sends nothing to the gateway's `port` (not even on a connection already
    /// open) and drops what comes from it. The test's own clients, also on the host, still
    /// reach `i`. Container clusters only; [`Cluster::heal`] ends it.
    pub fn drop_host_server(&self, i: usize, port: u16) {
        self.drop_tcp_from_host(i, Some(port), None);
        let net = self
            .network
            .as_ref()
            .expect("partitions need a container cluster");
        net.drop_tcp_to(
            self.nodes[i].container().expect("container"),
            &net.gateway(),
            port,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Node `i` drops the connections the host opens to its port `port` (the CA's
    /// validation requests to an HTTP-01 port, say). Container clusters only;
    /// [`Cluster::heal`] ends it.
    pub fn drop_host_to(&self, i: usize, port: u16) {
        self.drop_tcp_from_host(i, None, Some(port));
    }

    fn drop_tcp_from_host(&self, i: usize, sport: Option<u16>, dport: Option<u16>) {
        let net = self
            .network
            .as_ref()
            .expect("partitions need a container cluster");
        net.drop_tcp_from(
            self.nodes[i].container().expect("container"),
            &net.gateway(),
            sport,
            dport,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `to` drops the connections `from` opens to its port `port` (one way; Raft and
    /// anything else between them goes on). Container clusters only.
    pub fn drop_port_from(&self, to: usize, from: usize, port: u16) {
        let net = self
            .network
            .as_ref()
            .expect("partitions need a container cluster");
        net.drop_tcp_from(
            self.nodes[to].container().expect("container"),
            &self.nodes[from].host,
            None,
            Some(port),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Removes every partition rule.
    pub fn heal(&self) {
        let net = self
            .network
            .as_ref()
            .expect("partitions need a container cluster");
        for n in &self.nodes {
            net.heal(n.container().expect("container"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Fills node `i`'s disk (its data dir must be its own filesystem: see
    /// [`Cluster::start_containers_on_own_disks`]) with a file the node cannot remove, to
    /// the last byte. Returns the bytes written.
    pub fn fill_disk(&self, i: usize) -> u64 {
        use std::io::Write;
        let dir = &self.nodes[i].data_dir;
        assert!(
            self.disks.contains(dir),
            "{} has no disk of its own to fill",
            self.nodes[i].label
        );
        let mut f = std::fs::File::create(dir.join(FILLER)).expect("create the filler");
        let mut written = 0u64;
        for size in [1 << 20, 4096, 1] {
            let chunk = vec![0u8; size];
            loop {
                match f.write(&chunk) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                    Err(e) => panic!("filling {}: {e}", dir.display()),
                }
            }
        }
        let _ = f.sync_all();
        written
    }

    /// Frees what [`Cluster::fill_disk`] took.
    pub fn free_disk(&self, i: usize) {
        let path = self.nodes[i].data_dir.join(FILLER);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
    }

    /// Replaces node `i` under load, as an operator replaces a dead appliance: removes it
    /// from the membership through another node, destroys it with its data, and joins a
    /// new node with the same role at the same address (a new node id) through another
    /// node. Returns once the new node is in its role and has applied the leader's commit.
    pub async fn replace(&mut self, i: usize) {
        let via = (0..self.nodes.len())
            .find(|&j| j != i && !self.nodes[j].paused)
            .expect("another node");
        let old = self.nodes[i].id;
        self.call_ok(
            via,
            reqwest::Method::DELETE,
            &format!("/api/v1/cluster/nodes/{old}"),
            None,
        )
        .await;
        self.kill9(i);
        let n = &mut self.nodes[i];
        if let Run::Container { name } = &n.run {
            crate::docker::docker(&["rm", "-f", name]).unwrap_or_else(|e| panic!("{e}"));
        }
        for entry in std::fs::read_dir(&n.data_dir).expect("data dir") {
            let path = entry.expect("data dir entry").path();
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            gone.unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
        }
        n.id = 0;
        self.join(i, via).await;
        assert_ne!(
            self.nodes[i].id, old,
            "the new node got the removed node's id"
        );
        self.wait_members_settled().await;
        self.wait_caught_up(i).await;
    }

    /// Waits until node `i` has applied (and, serving, swapped in) the leader's commit
    /// index as it was when this was called.
    pub async fn wait_caught_up(&self, i: usize) {
        let leader = self.leader().await.expect("a leader");
        let status = self
            .call_ok(leader, reqwest::Method::GET, "/api/v1/cluster", None)
            .await;
        let target = status.body["committed"].as_u64().unwrap_or(0);
        let what = format!("{} to apply index {target}", self.nodes[i].label);
        let serves = self.nodes[i].role.serves();
        self.wait_for(&what, PATIENCE, || async {
            let v = self.readyz(i).await?;
            let applied = v["last_applied"].as_u64().unwrap_or(0);
            let serving = v["serving_applied"].as_u64().unwrap_or(0);
            if applied >= target && (!serves || serving >= target) {
                Ok(())
            } else {
                Err(v.to_string())
            }
        })
        .await
    }
}

/// Mounts a tmpfs of `mib` MiB on `path`, owned by the image's user (10001).
pub(crate) fn mount_tmpfs(path: &Path, mib: u64) {
    let options = format!("size={mib}m,uid=10001,gid=10001,mode=0700");
    crate::docker::run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &options,
            "certraft-disk",
            &path.to_string_lossy(),
        ],
    )
    .unwrap_or_else(|e| panic!("a small disk for a node needs root to mount a tmpfs: {e}"));
}
