//! Fault cycles on clusters of real `certraft-node` processes on loopback.
//!
//! Each test runs register clients (imports, removals, reads through random nodes) and a
//! loop of TLS handshakes on every serving node while it injects faults, then heals, waits
//! for convergence, reads every register, checks that every serving node presents the same
//! certificates, and checks the whole history for per-key linearizability. A violation
//! fails with the seed (env `SEED` replays the run's choices) and the saved history.
//!
//! Env: `CYCLES` (fault cycles per test), `SEED`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certraft_cluster_tests::checker;
use certraft_cluster_tests::client::Admin;
use certraft_cluster_tests::cluster::{Cluster, Role, PATIENCE};
use certraft_cluster_tests::fixtures;
use certraft_cluster_tests::history::{self, History, Rng};
use certraft_cluster_tests::verify;
use certraft_cluster_tests::workload::{self, Handshakes, Tally};

fn cycles(default: usize) -> usize {
    std::env::var("CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The workload around a test's faults.
struct Run {
    seed: u64,
    history: Arc<History>,
    versions: Arc<workload::Versions>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    handshakes: Vec<Arc<Handshakes>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Short request timeout, for measuring write availability.
    probe_admin: Admin,
}

impl Run {
    async fn start(c: &Cluster, name: &str, clients: usize) -> Run {
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
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let bases = c.nodes.iter().map(|n| n.admin_url()).collect();
        let mut tasks = workload::spawn_clients(
            c.admin().clone(),
            bases,
            history.clone(),
            versions.clone(),
            clients,
            seed,
            stop.clone(),
            tally.clone(),
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
        let ca = std::fs::read(c.nodes[0].data_dir.join("ca.pem")).expect("ca.pem");
        let token =
            std::fs::read_to_string(c.nodes[0].data_dir.join("admin.token")).expect("token");
        Run {
            seed,
            history,
            versions,
            stop,
            tally,
            handshakes,
            tasks,
            probe_admin: Admin::new(&ca, &token, Duration::from_millis(1500)).expect("admin"),
        }
    }

    /// Stops the workload, heals, and checks everything; returns the convergence time.
    async fn finish(self, c: &Cluster, name: &str) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let took = verify::converged(c, PATIENCE).await;
        verify::same_everywhere(c, &self.history, &self.versions).await;
        for (n, h) in c.nodes.iter().zip(&self.handshakes) {
            let failed = h.failed.load(Ordering::Relaxed);
            assert_eq!(
                failed,
                0,
                "{}: {failed} failed handshakes while it was up (of {}); last: {:?}",
                n.label,
                h.ok.load(Ordering::Relaxed) + failed,
                h.last_error.lock().unwrap()
            );
        }
        let ops = self.history.ops();
        let t = Instant::now();
        if let Err(v) = checker::check(&ops) {
            let path = self.history.save(c.dir(), name, self.seed);
            panic!(
                "{name} (seed {}): {v}\nhistory saved to {}",
                self.seed,
                path.display()
            );
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

/// The admin URLs of the nodes other than `down`.
fn others(c: &Cluster, down: usize) -> Vec<String> {
    (0..c.nodes.len())
        .filter(|&i| i != down)
        .map(|i| c.nodes[i].admin_url())
        .collect()
}

fn p99(v: &mut [Duration]) -> Duration {
    v.sort();
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_pair_with_witness_keeps_serving_and_writing_when_either_appliance_dies() {
    let name = "pair";
    let mut c = Cluster::start(&[Role::Voter, Role::Voter, Role::Witness]).await;
    let run = Run::start(&c, name, 3).await;
    let mut rng = Rng::new(run.seed);
    let mut to_write = Vec::new();
    for cycle in 0..cycles(2) * 2 {
        // Alternate the appliances; the witness stays.
        let victim = cycle % 2;
        tokio::time::sleep(Duration::from_millis(200 + rng.below(400))).await;
        run.handshakes[victim]
            .counting
            .store(false, Ordering::Release);
        let t0 = Instant::now();
        c.kill9(victim);
        let took = workload::until_write_acknowledged(
            &run.probe_admin,
            &others(&c, victim),
            &run.history,
            &run.versions,
            t0,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("cycle {cycle}: {e}\n{}", c.log_tails(20)));
        println!(
            "  cycle {cycle}: kill -9 {} -> next acknowledged write after {:.0} ms",
            c.nodes[victim].label,
            took.as_secs_f64() * 1e3
        );
        to_write.push(took);
        c.restart(victim);
        c.wait_ready(victim).await;
        run.handshakes[victim]
            .counting
            .store(true, Ordering::Release);
    }
    run.finish(&c, name).await;
    let worst = p99(&mut to_write);
    println!(
        "{name}: kill -> next acknowledged write p99 {worst:?} over {} kills",
        to_write.len()
    );
    // The acceptance bound is 2 s p99 (BENCHMARKS.md, measured on release builds); the
    // test's bound leaves room for debug builds on a loaded 2-core CI machine.
    assert!(
        worst < Duration::from_secs(10),
        "writes resumed only after {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_and_a_traffic_node_stay_linearizable_through_kills_and_pauses() {
    let name = "core3+traffic1";
    let mut c = Cluster::start(&[Role::Voter, Role::Voter, Role::Voter, Role::Learner]).await;
    let run = Run::start(&c, name, 4).await;
    let mut rng = Rng::new(run.seed ^ 0xFA17);
    for cycle in 0..cycles(4) {
        let victim = rng.below(c.nodes.len() as u64) as usize;
        tokio::time::sleep(Duration::from_millis(200 + rng.below(500))).await;
        run.handshakes[victim]
            .counting
            .store(false, Ordering::Release);
        let pause = rng.below(2) == 0;
        if pause {
            c.pause(victim);
            tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
            c.resume(victim);
        } else {
            c.kill9(victim);
            tokio::time::sleep(Duration::from_millis(rng.below(1000))).await;
            c.restart(victim);
        }
        println!(
            "  cycle {cycle}: {} {}",
            if pause {
                "SIGSTOP/SIGCONT"
            } else {
                "kill -9/restart"
            },
            c.nodes[victim].label
        );
        c.wait_ready(victim).await;
        run.handshakes[victim]
            .counting
            .store(true, Ordering::Release);
    }
    run.finish(&c, name).await;
}
