//! Recording what clients did: every operation as invoked, then ok / failed / unknown.

use std::sync::Mutex;
use std::time::Instant;

use crate::checker::{Call, Op, Outcome};

/// The operations of one run, on one monotonic clock.
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Option<Op>>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }
}

impl History {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records the invocation; the returned handle completes it.
    pub fn invoke(&self, client: usize, key: &str, call: Call) -> usize {
        let op = Op {
            client,
            key: key.to_string(),
            call,
            invoked: self.now(),
            returned: None,
            outcome: Outcome::Unknown,
        };
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        ops.push(Some(op));
        ops.len() - 1
    }

    /// The operation returned with `outcome` (`Unknown` leaves it open-ended).
    pub fn complete(&self, handle: usize, outcome: Outcome) {
        let now = self.now();
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(op) = ops[handle].as_mut() {
            op.outcome = outcome;
            op.returned = (outcome != Outcome::Unknown).then_some(now);
        }
    }

    /// The operation definitely did not happen (never reached a node): left out.
    pub fn discard(&self, handle: usize) {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        ops[handle] = None;
    }

    /// Everything recorded so far; operations still open count as unknown.
    pub fn ops(&self) -> Vec<Op> {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        ops.iter().flatten().cloned().collect()
    }

    /// Writes the history and `seed` as JSON into `dir`; returns the file's path.
    pub fn save(&self, dir: &std::path::Path, name: &str, seed: u64) -> std::path::PathBuf {
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(format!("{name}-seed-{seed}.json"));
        let body = serde_json::json!({"seed": seed, "ops": self.ops()});
        let _ = std::fs::write(&path, serde_json::to_vec_pretty(&body).unwrap_or_default());
        path
    }
}

/// A small deterministic generator (SplitMix64), so a seed replays a run's choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The run's seed: env `SEED`, else the clock.
pub fn seed() -> u64 {
    std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}
