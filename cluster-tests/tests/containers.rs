//! Fault cycles on clusters of `certraft-node` containers (the image from `images/`) on
//! private Docker networks: kills, pauses, partitions with the leader in the minority and
//! in the majority, one-way partitions, a traffic node cut off until it needs a snapshot,
//! a full disk, a member replaced under load, and a whole-cluster restart. The host is never partitioned, so every node that is up
//! must keep completing handshakes throughout.
//!
//! Needs root (a tmpfs per data dir), a Docker engine, `nsenter`, `iptables` and the image (`images/build.sh`; env
//! `CERTRAFT_IMAGE` for another tag). Without them the tests skip with the reason, except
//! under `CI=true`, where they fail. Env: `CYCLES`, `SEED` (see `loopback.rs`).

// Tests: `unwrap` is how a test says "this cannot fail here".
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use certraft_cluster_tests::cluster::{Cluster, Role};
use certraft_cluster_tests::docker;
use certraft_cluster_tests::history::Rng;
use certraft_cluster_tests::run::{cycles, kill_each_appliance, others, p99, Run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_failover_pair_with_witness_keeps_serving_and_writing_when_either_appliance_dies(
) {
    let name = "containers-pair";
    let Some(image) = docker::image_or_skip(name) else {
        return;
    };
    let mut c = Cluster::start_containers(&image, &[Role::Voter, Role::Voter, Role::Witness]).await;
    let run = Run::start(&c, name, 3).await;
    let drill = kill_each_appliance(&mut c, &run, cycles(3) * 2).await;
    run.finish(&c, name).await;
    println!(
        "{name}: kill -> next acknowledged write: {}",
        drill.summary()
    );
    // The 2 s p99 goal is a measured figure (BENCHMARKS.md, from a quiet soak); here, with
    // the rest of the suite sharing two cores, the test asserts only that writes come back.
    let worst = p99(&mut drill.all());
    assert!(
        worst <= Duration::from_secs(15),
        "after an appliance died, writes resumed only after {worst:?} (p99)"
    );
}

/// The faults of the core-plus-traffic suite.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
    Pause,
    /// The leader alone on one side.
    LeaderInMinority,
    /// One follower voter alone; the leader keeps a majority.
    LeaderInMajority,
    /// The leader drops everything one follower sends.
    OneWay,
    /// A traffic node cut off while writes go on (long enough to need a snapshot).
    LearnerCutOff,
    /// One node's disk full: its Raft core stops with a clear error while it keeps serving;
    /// once space is freed and it is restarted, it catches up with nothing corrupted.
    DiskFull,
    /// A node removed from the membership and replaced by a new one (same role, new id)
    /// while the clients write.
    Replace,
}

const FAULTS: [Fault; 8] = [
    Fault::Kill,
    Fault::Pause,
    Fault::LeaderInMinority,
    Fault::LeaderInMajority,
    Fault::OneWay,
    Fault::LearnerCutOff,
    Fault::DiskFull,
    Fault::Replace,
];

/// Each node's data dir is a tmpfs this big, so one can be filled.
const DISK_MIB: u64 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_core_and_traffic_nodes_stay_linearizable_and_serving_through_faults() {
    let name = "containers-core3+traffic2";
    let Some(image) = docker::image_or_skip(name) else {
        return;
    };
    let roles = [
        Role::Voter,
        Role::Voter,
        Role::Voter,
        Role::Learner,
        Role::Learner,
    ];
    let mut c = Cluster::start_containers_on_own_disks(&image, &roles, Some(DISK_MIB)).await;
    let run = Run::start(&c, name, 4).await;
    let mut rng = Rng::new(run.seed ^ 0xC0DE);
    let voters = [0usize, 1, 2];
    let learners = [3usize, 4];
    let total = cycles(16);
    for cycle in 0..total {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(400))).await;
        // Every fault in turn, then random ones.
        let fault = match FAULTS.get(cycle) {
            Some(&f) => f,
            None => FAULTS[rng.below(FAULTS.len() as u64) as usize],
        };
        let leader = c.leader().await.expect("a leader between faults");
        let what = match fault {
            Fault::Kill | Fault::Pause => {
                let victim = rng.below(c.nodes.len() as u64) as usize;
                run.expect_up(victim, false);
                if matches!(fault, Fault::Kill) {
                    c.kill9(victim);
                    tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
                    c.restart(victim);
                } else {
                    c.pause(victim);
                    tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
                    c.resume(victim);
                }
                c.wait_ready(victim).await;
                run.expect_up(victim, true);
                format!("{fault:?} {}", c.nodes[victim].label)
            }
            Fault::LeaderInMinority => {
                let rest: Vec<usize> = (0..c.nodes.len()).filter(|&i| i != leader).collect();
                c.partition(leader, &rest);
                let moved = c
                    .wait_for(
                        "a new leader on the majority side",
                        Duration::from_secs(20),
                        || async {
                            match c.leader_among(&rest).await {
                                Some(l) if l != leader => Ok(l),
                                other => Err(format!("leader {other:?}")),
                            }
                        },
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(rng.below(1000))).await;
                c.heal();
                format!(
                    "{} isolated (leader in the minority; {} took over)",
                    c.nodes[leader].label, c.nodes[moved].label
                )
            }
            Fault::LeaderInMajority => {
                let follower = *voters
                    .iter()
                    .filter(|&&v| v != leader)
                    .nth(rng.below(2) as usize)
                    .expect("two followers");
                let rest: Vec<usize> = (0..c.nodes.len()).filter(|&i| i != follower).collect();
                c.partition(follower, &rest);
                tokio::time::sleep(Duration::from_millis(1000 + rng.below(1500))).await;
                c.heal();
                format!(
                    "{} isolated (leader {} in the majority)",
                    c.nodes[follower].label, c.nodes[leader].label
                )
            }
            Fault::OneWay => {
                let from = *voters
                    .iter()
                    .filter(|&&v| v != leader)
                    .nth(rng.below(2) as usize)
                    .expect("two followers");
                c.drop_from(leader, from);
                tokio::time::sleep(Duration::from_millis(1000 + rng.below(1500))).await;
                c.heal();
                format!(
                    "{} drops {}'s packets",
                    c.nodes[leader].label, c.nodes[from].label
                )
            }
            Fault::LearnerCutOff => {
                let learner = learners[rng.below(2) as usize];
                let rest: Vec<usize> = (0..c.nodes.len()).filter(|&i| i != learner).collect();
                c.partition(learner, &rest);
                // More committed entries than the snapshot interval: it needs a snapshot.
                let before = committed(&c).await;
                let bases = others(&c, learner);
                let t0 = Instant::now();
                while committed(&c).await < before + 120 {
                    run.write_through(&bases, "past the cut-off node").await;
                    assert!(
                        t0.elapsed() < Duration::from_secs(120),
                        "120 entries took over 2 minutes"
                    );
                }
                c.heal();
                format!("{} cut off for 120+ entries", c.nodes[learner].label)
            }
            Fault::DiskFull => {
                let victim = rng.below(c.nodes.len() as u64) as usize;
                let label = c.nodes[victim].label.clone();
                let filled = c.fill_disk(victim);
                // Writes go on through the others until the full node notices; it keeps
                // serving (its handshakes still count) with its Raft core stopped.
                let bases = others(&c, victim);
                let t0 = Instant::now();
                let why = loop {
                    if let Ok(v) = c.readyz(victim).await {
                        if let Some(e) = v["raft_error"].as_str() {
                            break e.to_string();
                        }
                    }
                    assert!(
                        t0.elapsed() < Duration::from_secs(120),
                        "{label}'s disk is full, but after 2 minutes of writes it reports no error\n{}",
                        c.log_tails(20)
                    );
                    run.write_through(&bases, &format!("while {label}'s disk is full"))
                        .await;
                };
                assert!(
                    why.contains("No space left on device") && why.contains("restart"),
                    "{label}'s /readyz should name the full disk and the next step: {why}"
                );
                println!("    {label} /readyz: {why}");
                let log = c.nodes[victim].log_tail(400);
                assert!(
                    log.contains("No space left on device"),
                    "{label}'s log should name the full disk:\n{log}"
                );
                // Writes go on without it.
                run.write_through(&bases, &format!("after {label}'s Raft core stopped"))
                    .await;
                c.free_disk(victim);
                run.expect_up(victim, false);
                c.kill9(victim);
                c.restart(victim);
                c.wait_ready(victim).await;
                c.wait_caught_up(victim).await;
                run.expect_up(victim, true);
                format!(
                    "{label}'s disk filled ({} MiB), reported after {:.1} s, freed, restarted",
                    filled >> 20,
                    t0.elapsed().as_secs_f64()
                )
            }
            Fault::Replace => {
                let victim = rng.below(c.nodes.len() as u64) as usize;
                let old = c.nodes[victim].id;
                let was_leader = victim == leader;
                run.expect_up(victim, false);
                let t0 = Instant::now();
                c.replace(victim).await;
                run.expect_up(victim, true);
                format!(
                    "{} (node {old}{}) removed and replaced by node {} in {:.1} s",
                    c.nodes[victim].label,
                    if was_leader { ", the leader" } else { "" },
                    c.nodes[victim].id,
                    t0.elapsed().as_secs_f64()
                )
            }
        };
        println!("  cycle {cycle}: {what}");
    }
    // Whole-cluster restart: every node killed, then all started again.
    for i in 0..c.nodes.len() {
        run.expect_up(i, false);
        c.kill9(i);
    }
    for i in 0..c.nodes.len() {
        c.restart(i);
    }
    for i in 0..c.nodes.len() {
        c.wait_ready(i).await;
        run.expect_up(i, true);
    }
    println!("  then: whole-cluster restart");
    run.finish(&c, name).await;
}

/// The leader's commit index.
async fn committed(c: &Cluster) -> u64 {
    let Some(l) = c.leader().await else {
        return 0;
    };
    c.admin()
        .get(&c.nodes[l].admin_url(), "/api/v1/cluster")
        .await
        .ok()
        .and_then(|r| r.body["committed"].as_u64())
        .unwrap_or(0)
}
