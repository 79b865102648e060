//! A test run: the workload around a test's faults, and the checks once it is healed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checker;
use crate::client::Admin;
use crate::cluster::{Cluster, PATIENCE};
use crate::fixtures;
use crate::history::{self, History};
use crate::verify;
use crate::workload::{self, Handshakes, Tally};

/// Fault cycles for a test: env `CYCLES`, else `default`.
pub fn cycles(default: usize) -> usize {
    std::env::var("CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The workload around a test's faults.
pub struct Run {
    pub seed: u64,
    pub history: Arc<History>,
    pub versions: Arc<workload::Versions>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    pub handshakes: Vec<Arc<Handshakes>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Short request timeout, for measuring write availability.
    pub probe_admin: Admin,
    save_on_failure: SaveOnFailure,
}

/// Saves the history beside the kept cluster dir when the test fails anywhere (a fault
/// that did not heal, a node that did not converge, a failed handshake), not only on a
/// linearizability violation, so every failure can be replayed and read.
struct SaveOnFailure {
    history: Arc<History>,
    dir: std::path::PathBuf,
    name: String,
    seed: u64,
}

impl Drop for SaveOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let path = self.history.save(&self.dir, &self.name, self.seed);
            eprintln!(
                "{} failed (seed {}; SEED={} replays the choices); history saved to {}",
                self.name,
                self.seed,
                self.seed,
                path.display()
            );
        }
    }
}

impl Run {
    pub async fn start(c: &Cluster, name: &str, clients: usize) -> Run {
        let seed = history::seed();
        println!("{name}: seed {seed} (SEED={seed} replays the choices)");
        let base = c.nodes[0].admin_url();
        let versions = Arc::new(workload::learn_versions(c.admin(), &base).await);
        let r = c
            .admin()
            .post(&base, "/api/v1/certs", &fixtures::default_body())
            .await
            .expect("import the default");
        assert_eq!(r.status, 200, "import the default: {r}");
        let history = Arc::new(History::default());
        let saved_history = history.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let bases = c.nodes.iter().map(|n| n.admin_url()).collect();
        let ca = std::fs::read(c.nodes[0].data_dir.join("ca.pem")).expect("ca.pem");
        let token =
            std::fs::read_to_string(c.nodes[0].data_dir.join("admin.token")).expect("token");

        let mut tasks = workload::spawn_clients(
            workload::Shared {
                // Short: a request to a node cut off from the leader should not stall a
                // client for the server's whole 10 s deadline (it is recorded as unknown).
                admin: Admin::new(&ca, &token, Duration::from_secs(3)).expect("admin"),
                bases,
                history: history.clone(),
                versions: versions.clone(),
                stop: stop.clone(),
                tally: tally.clone(),
            },
            clients,
            seed,
        );
        let mut handshakes = Vec::new();
        for n in &c.nodes {
            let stats = Arc::new(Handshakes::default());
            if n.role.serves() {
                stats.counting.store(true, Ordering::Release);
                tasks.push(workload::spawn_handshakes(
                    n.serve_addr(),
                    stats.clone(),
                    stop.clone(),
                ));
            }
            handshakes.push(stats);
        }
        Run {
            seed,
            history: saved_history,
            versions,
            stop,
            tally,
            handshakes,
            tasks,
            probe_admin: Admin::new(&ca, &token, Duration::from_millis(1500)).expect("admin"),
            save_on_failure: SaveOnFailure {
                history,
                dir: c.dir().to_path_buf(),
                name: name.to_string(),
                seed,
            },
        }
    }

    /// Stops the workload, heals, and checks everything; returns the convergence time.
    pub async fn finish(self, c: &Cluster, name: &str) -> Duration {
        let _saves_on_failure = self.save_on_failure;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let took = verify::converged(c, PATIENCE).await;
        verify::same_everywhere(c, &self.history, &self.versions).await;
        verify::same_state(c, PATIENCE).await;
        for (n, h) in c.nodes.iter().zip(&self.handshakes) {
            let failed = h.failed.load(Ordering::Relaxed);
            assert_eq!(
                failed,
                0,
                "{}: {failed} failed handshakes while it was up (of {}); last: {:?}",
                n.label,
                h.ok.load(Ordering::Relaxed) + failed,
                h.last_error.lock().unwrap_or_else(|e| e.into_inner())
            );
        }
        let ops = self.history.ops();
        let t = Instant::now();
        if let Err(v) = checker::check(&ops) {
            panic!("{name} (seed {}): {v}", self.seed);
        }
        println!(
            "{name}: {} operations ({} ok, {} unknown, {} not sent) linearizable (checked in {:.0} ms); converged {:.0} ms after healing",
            ops.len(),
            self.tally.ok.load(Ordering::Relaxed),
            self.tally.unknown.load(Ordering::Relaxed),
            self.tally.not_sent.load(Ordering::Relaxed),
            t.elapsed().as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3
        );
        took
    }
}

impl Run {
    /// One acknowledged write of the probe register through `bases` (retrying for up to
    /// 30 s); panics with `during` and the last error otherwise.
    pub async fn write_through(&self, bases: &[String], during: &str) {
        workload::until_write_acknowledged(
            &self.probe_admin,
            bases,
            &self.history,
            &self.versions,
            Instant::now(),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("writing {during}: {e}"));
    }

    /// Counts handshake failures on node `i` from now (it is meant to be up), or not.
    pub fn expect_up(&self, i: usize, up: bool) {
        self.handshakes[i].counting.store(up, Ordering::Release);
    }
}

/// The admin URLs of the nodes other than `down`.
pub fn others(c: &Cluster, down: usize) -> Vec<String> {
    (0..c.nodes.len())
        .filter(|&i| i != down)
        .map(|i| c.nodes[i].admin_url())
        .collect()
}

pub fn p99(v: &mut [Duration]) -> Duration {
    v.sort();
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

/// What the failover-pair drill measured: kill → next acknowledged write, by whether the
/// killed appliance was leading.
#[derive(Default)]
pub struct PairDrill {
    pub leader_kills: Vec<Duration>,
    pub follower_kills: Vec<Duration>,
}

impl PairDrill {
    pub fn all(&self) -> Vec<Duration> {
        let mut all = self.leader_kills.clone();
        all.extend_from_slice(&self.follower_kills);
        all
    }

    /// One line: p99 and max of each kind.
    pub fn summary(&self) -> String {
        let show = |v: &[Duration]| {
            if v.is_empty() {
                return "none".to_string();
            }
            let mut v = v.to_vec();
            let worst = p99(&mut v);
            format!(
                "{} kills, p99 {:.0} ms, median {:.0} ms",
                v.len(),
                worst.as_secs_f64() * 1e3,
                v[v.len() / 2].as_secs_f64() * 1e3
            )
        };
        format!(
            "leading appliance killed: {}; following appliance killed: {}",
            show(&self.leader_kills),
            show(&self.follower_kills)
        )
    }
}

/// The failover-pair drill on appliances 0 and 1 and the witness 2: `kills` times, `kill
/// -9` an appliance, time until a write is acknowledged through the other two, restart it.
/// Even cycles kill the appliance that leads (the worst case: an election first); when the
/// witness leads, it is killed and restarted first so that an appliance takes over. Odd
/// cycles kill the appliance that follows.
pub async fn kill_each_appliance(c: &mut Cluster, run: &Run, kills: usize) -> PairDrill {
    let mut rng = crate::history::Rng::new(run.seed);
    let mut drill = PairDrill::default();
    for cycle in 0..kills {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(500))).await;
        let leader = appliance_leading(c).await;
        let kill_leader = cycle % 2 == 0;
        let victim = if kill_leader { leader } else { 1 - leader };
        run.expect_up(victim, false);
        let t0 = Instant::now();
        let elected = kill_leader.then(|| {
            tokio::spawn(first_other_leader(
                run.probe_admin.clone(),
                others(c, victim),
                c.nodes[victim].id,
                t0,
            ))
        });
        c.kill9(victim);
        let took = workload::until_write_acknowledged(
            &run.probe_admin,
            &others(c, victim),
            &run.history,
            &run.versions,
            t0,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("cycle {cycle}: {e}\n{}", c.log_tails(20)));
        let elected = match elected {
            Some(task) => match task.await.ok().flatten() {
                Some(e) => format!(
                    " (a new leader known after {:.0} ms)",
                    e.as_secs_f64() * 1e3
                ),
                None => " (no new leader seen)".to_string(),
            },
            None => String::new(),
        };
        println!(
            "  cycle {cycle}: kill -9 {} ({}) -> next acknowledged write after {:.0} ms{elected}",
            c.nodes[victim].label,
            if kill_leader { "leading" } else { "following" },
            took.as_secs_f64() * 1e3
        );
        if kill_leader {
            drill.leader_kills.push(took);
        } else {
            drill.follower_kills.push(took);
        }
        c.restart(victim);
        c.wait_ready(victim).await;
        run.expect_up(victim, true);
    }
    drill
}

/// When one of `bases` first names a leader other than node `old`, polling every 10 ms for
/// at most 10 s: where a failover's time goes (the election, or what follows it).
async fn first_other_leader(
    admin: crate::client::Admin,
    bases: Vec<String>,
    old: u64,
    t0: Instant,
) -> Option<Duration> {
    while t0.elapsed() < Duration::from_secs(10) {
        for base in &bases {
            if let Ok(r) = admin.get(base, "/readyz").await {
                if r.body["leader"].as_u64().is_some_and(|l| l != old) {
                    return Some(t0.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// The appliance (0 or 1) that leads, after moving leadership off the witness (node 2) by
/// killing and restarting it when it leads.
async fn appliance_leading(c: &mut Cluster) -> usize {
    const WITNESS: usize = 2;
    for _ in 0..10 {
        let leader = c
            .wait_for("a leader", crate::cluster::PATIENCE, || async {
                c.leader().await.ok_or_else(|| "no leader".to_string())
            })
            .await;
        if leader != WITNESS {
            return leader;
        }
        c.kill9(WITNESS);
        c.wait_for(
            "an appliance to take over from the witness",
            crate::cluster::PATIENCE,
            || async {
                match c.leader_among(&[0, 1]).await {
                    Some(l) if l != WITNESS => Ok(l),
                    other => Err(format!("leader {other:?}")),
                }
            },
        )
        .await;
        c.restart(WITNESS);
        c.wait_ready(WITNESS).await;
    }
    panic!("the witness kept winning elections over 10 restarts")
}
