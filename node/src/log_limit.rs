//! Warnings that can repeat thousands of times a second (accept failing at a descriptor
//! limit, connections refused over a cap) are logged at a bounded rate. A leaf: every
//! listener uses it, it uses nothing of the node.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A warning that repeats (accept failing at a descriptor limit, connections refused over a
/// cap) is logged at most once per interval, with the count of those not logged.
pub struct RateLimitedLog {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    pub const fn new(interval: Duration) -> Self {
        RateLimitedLog {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when this occurrence should be logged, with how many were not.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                s.1 += 1;
                None
            }
            _ => {
                let suppressed = s.1;
                *s = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repeating warning is logged once per interval, reporting how many were skipped.
    #[test]
    fn repeated_warnings_are_logged_once_per_interval_with_the_count_skipped() {
        let log = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.admit(t0), Some(0));
        for i in 1..=500 {
            assert_eq!(log.admit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(log.admit(t0 + Duration::from_secs(11)), Some(500));
        assert_eq!(log.admit(t0 + Duration::from_secs(12)), None);
    }
}
