//! Per-key linearizability (Wing & Gong, with Lowe's memoisation) of a recorded history.
//!
//! Each bundle name is an independent register whose value is which certificate version it
//! holds, or nothing. The sequential model of one register:
//!
//! | operation   | state `None`            | state `Some(w)`                        |
//! |-------------|-------------------------|----------------------------------------|
//! | `Import(v)` | `Created`, → `Some(v)`  | `Unchanged` if `w == v`, else `Taken`  |
//! | `Remove`    | `NotFound`              | `Removed`, → `None`                    |
//! | `Read`      | `Absent`                | `Holds(w)`                             |
//!
//! An operation whose outcome is unknown (timeout, reset, 5xx) may have taken effect at any
//! moment after its invocation, or never: it has no response bound and need not be
//! linearized. One that definitely did not happen (refused before it was sent) is left out
//! by the recorder. A history is linearizable when some order of its operations respects
//! real time (an operation that returned before another was invoked comes first) and the
//! model gives every completed operation the outcome it observed.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// What a client asked of one register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    Import(u32),
    Remove,
    Read,
}

/// What it observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Created,
    Unchanged,
    Taken,
    Removed,
    NotFound,
    Absent,
    Holds(u32),
    /// No answer that tells: the operation may or may not have happened.
    Unknown,
}

/// One operation of the history, times in nanoseconds on one monotonic clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub call: Call,
    pub invoked: u64,
    /// `None` with [`Outcome::Unknown`].
    pub returned: Option<u64>,
    pub outcome: Outcome,
}

type State = Option<u32>;

/// The model: the outcome `call` has on `state` and the next state.
pub fn step(state: State, call: Call) -> (Outcome, State) {
    match (call, state) {
        (Call::Import(v), None) => (Outcome::Created, Some(v)),
        (Call::Import(v), Some(w)) if v == w => (Outcome::Unchanged, state),
        (Call::Import(_), Some(_)) => (Outcome::Taken, state),
        (Call::Remove, Some(_)) => (Outcome::Removed, None),
        (Call::Remove, None) => (Outcome::NotFound, None),
        (Call::Read, Some(w)) => (Outcome::Holds(w), state),
        (Call::Read, None) => (Outcome::Absent, None),
    }
}

/// Why a key's history is not linearizable.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub key: String,
    /// The longest prefix of a linearization the search found, as indices into `ops`.
    pub longest_prefix: Vec<usize>,
    /// The key's operations, by invocation.
    pub ops: Vec<Op>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "register {} is not linearizable ({} operations); the longest valid order covers {}:",
            self.key,
            self.ops.len(),
            self.longest_prefix.len()
        )?;
        for (i, op) in self.ops.iter().enumerate() {
            let mark = if self.longest_prefix.contains(&i) {
                " "
            } else {
                "*"
            };
            writeln!(
                f,
                " {mark} #{i:<3} client {:<2} {:>12.3} ms .. {:<12} {:?} -> {:?}",
                op.client,
                op.invoked as f64 / 1e6,
                op.returned
                    .map(|r| format!("{:.3} ms", r as f64 / 1e6))
                    .unwrap_or_else(|| "?".into()),
                op.call,
                op.outcome
            )?;
        }
        Ok(())
    }
}

/// Checks every key of `ops`; `Err` with the first key that fails. Keys start absent.
pub fn check(ops: &[Op]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.invoked);
        check_register(key, ops)?;
    }
    Ok(())
}

/// Depth-first search over linearizations, memoising (set linearized, state) pairs.
fn check_register(key: &str, ops: Vec<Op>) -> Result<(), Violation> {
    let n = ops.len();
    let words = n.div_ceil(64);
    let required: usize = ops.iter().filter(|o| o.outcome != Outcome::Unknown).count();
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut done = vec![0u64; words];
    let mut order: Vec<usize> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    // Iterative DFS: each frame is (state, next candidate index to try).
    let mut stack: Vec<(State, usize)> = vec![(None, 0)];
    let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;
    loop {
        let linearized_required = order
            .iter()
            .filter(|&&i| ops[i].outcome != Outcome::Unknown)
            .count();
        if linearized_required == required {
            return Ok(());
        }
        let Some(&mut (state, ref mut next)) = stack.last_mut() else {
            return Err(Violation {
                key: key.to_string(),
                longest_prefix: longest,
                ops,
            });
        };
        // Every candidate must be invoked before the earliest return among the completed
        // operations not yet placed (else that one must come first).
        let horizon = (0..n)
            .filter(|&i| !is_done(&done, i))
            .filter_map(|i| ops[i].returned)
            .min()
            .unwrap_or(u64::MAX);
        let mut advanced = false;
        while *next < n {
            let i = *next;
            *next += 1;
            if is_done(&done, i) || ops[i].invoked > horizon {
                continue;
            }
            let (outcome, after) = step(state, ops[i].call);
            let fits = ops[i].outcome == Outcome::Unknown || ops[i].outcome == outcome;
            if !fits {
                continue;
            }
            done[i / 64] |= 1 << (i % 64);
            if !seen.insert((done.clone(), after)) {
                done[i / 64] &= !(1 << (i % 64));
                continue;
            }
            order.push(i);
            if order.len() > longest.len() {
                longest = order.clone();
            }
            stack.push((after, 0));
            advanced = true;
            break;
        }
        if !advanced {
            stack.pop();
            if let Some(i) = order.pop() {
                done[i / 64] &= !(1 << (i % 64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, call: Call, invoked: u64, returned: Option<u64>, outcome: Outcome) -> Op {
        Op {
            client,
            key: "k".into(),
            call,
            invoked,
            returned,
            outcome,
        }
    }

    #[test]
    fn sequential_history_follows_the_model() {
        let h = [
            op(0, Call::Read, 0, Some(1), Outcome::Absent),
            op(0, Call::Import(1), 2, Some(3), Outcome::Created),
            op(0, Call::Import(1), 4, Some(5), Outcome::Unchanged),
            op(0, Call::Import(2), 6, Some(7), Outcome::Taken),
            op(0, Call::Read, 8, Some(9), Outcome::Holds(1)),
            op(0, Call::Remove, 10, Some(11), Outcome::Removed),
            op(0, Call::Remove, 12, Some(13), Outcome::NotFound),
        ];
        check(&h).unwrap();
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_import_is_a_violation() {
        let h = [
            op(0, Call::Import(1), 0, Some(10), Outcome::Created),
            op(1, Call::Read, 20, Some(30), Outcome::Absent),
        ];
        let v = check(&h).unwrap_err();
        assert_eq!(v.key, "k");
        assert!(v.to_string().contains("not linearizable"), "{v}");
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // The read overlaps the import: seeing it or not are both fine.
        for seen in [Outcome::Absent, Outcome::Holds(1)] {
            let h = [
                op(0, Call::Import(1), 0, Some(10), Outcome::Created),
                op(1, Call::Read, 5, Some(15), seen),
            ];
            check(&h).unwrap();
        }
        // Two overlapping imports of different versions: exactly one wins.
        let h = [
            op(0, Call::Import(1), 0, Some(10), Outcome::Taken),
            op(1, Call::Import(2), 1, Some(11), Outcome::Created),
            op(2, Call::Read, 12, Some(13), Outcome::Holds(2)),
        ];
        check(&h).unwrap();
        let both_won = [
            op(0, Call::Import(1), 0, Some(10), Outcome::Created),
            op(1, Call::Import(2), 1, Some(11), Outcome::Created),
        ];
        check(&both_won).unwrap_err();
    }

    #[test]
    fn an_unknown_import_may_or_may_not_have_happened_but_not_twice() {
        let happened = [
            op(0, Call::Import(1), 0, None, Outcome::Unknown),
            op(1, Call::Read, 50, Some(60), Outcome::Holds(1)),
            op(1, Call::Read, 70, Some(80), Outcome::Holds(1)),
        ];
        check(&happened).unwrap();
        let did_not = [
            op(0, Call::Import(1), 0, None, Outcome::Unknown),
            op(1, Call::Read, 50, Some(60), Outcome::Absent),
        ];
        check(&did_not).unwrap();
        // Late: it may land after reads that did not see it...
        let late = [
            op(0, Call::Import(1), 0, None, Outcome::Unknown),
            op(1, Call::Read, 50, Some(60), Outcome::Absent),
            op(1, Call::Read, 70, Some(80), Outcome::Holds(1)),
        ];
        check(&late).unwrap();
        // ...but a value that appears and vanishes with no removal is lost data.
        let flicker = [
            op(0, Call::Import(1), 0, None, Outcome::Unknown),
            op(1, Call::Read, 50, Some(60), Outcome::Holds(1)),
            op(1, Call::Read, 70, Some(80), Outcome::Absent),
        ];
        check(&flicker).unwrap_err();
    }

    #[test]
    fn keys_are_independent_registers() {
        let mut a = op(0, Call::Import(1), 0, Some(10), Outcome::Created);
        a.key = "a".into();
        let mut b = op(1, Call::Read, 20, Some(30), Outcome::Absent);
        b.key = "b".into();
        check(&[a, b]).unwrap();
    }

    #[test]
    fn a_longer_concurrent_history_checks_quickly() {
        // 6 clients, 240 operations, each op overlapping its neighbours: a valid history
        // built from a sequential run with stretched intervals.
        let mut state = None;
        let mut h = Vec::new();
        for i in 0..240u64 {
            let call = match i % 5 {
                0 | 3 => Call::Import((i % 3) as u32),
                1 => Call::Remove,
                _ => Call::Read,
            };
            let (outcome, next) = step(state, call);
            state = next;
            h.push(op(
                (i % 6) as usize,
                call,
                i * 10,
                Some(i * 10 + 25),
                outcome,
            ));
        }
        let t = std::time::Instant::now();
        check(&h).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
