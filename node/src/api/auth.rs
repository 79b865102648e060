//! Who may call the admin API: bearer tokens, and what anonymous failures cost.
//!
//! A failed sign-in (a wrong admin token, a wrong join secret) never reaches Raft or the audit
//! log one by one: it is counted here, per kind for `/metrics` and per source address for the
//! rate limit and the node's audit summary, once a minute ([`AuthFailures::take_summary`]:
//! the leader proposes its own; another member hands its own to the leader over the cluster
//! port, which records it as that member's). A source with too many recent failures is answered 429
//! before anything is checked.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// The bearer token of a request: `Authorization: Bearer <token>`, the scheme matched without
/// regard to case (RFC 9110 §11.1).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What a failed sign-in tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// A bearer token that is not a valid admin token.
    AdminToken,
    /// A join request whose secret is no usable join token.
    JoinToken,
}

impl FailureKind {
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::AdminToken => "admin_token",
            FailureKind::JoinToken => "join_token",
        }
    }
}

/// Failures one source may make in [`WINDOW`] before it is answered 429.
pub const FAILURES_PER_WINDOW: u32 = 20;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at once; beyond it the quietest are forgotten (an attacker rotating
/// addresses cannot grow this table without bound).
const MAX_SOURCES: usize = 4096;

/// Failed sign-ins on this node.
#[derive(Default)]
pub struct AuthFailures {
    /// Per source: the window's start and the failures in it.
    recent: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Since the last summary: failures per (kind, source), for the audit log.
    unreported: Mutex<BTreeMap<(FailureKind, IpAddr), u64>>,
    pub admin_token: AtomicU64,
    pub join_token: AtomicU64,
    /// Requests answered 429 because their source failed too often.
    pub rate_limited: AtomicU64,
}

impl AuthFailures {
    /// Whether `ip` has failed too often lately, without counting anything.
    pub fn over_limit(&self, ip: IpAddr, now: Instant) -> bool {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.get(&ip).is_some_and(|(start, n)| {
            now.duration_since(*start) < WINDOW && *n >= FAILURES_PER_WINDOW
        })
    }

    /// Whether `ip` has failed too often lately; counted in `rate_limited` when it has.
    pub fn limited(&self, ip: IpAddr, now: Instant) -> bool {
        let over = self.over_limit(ip, now);
        if over {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        over
    }

    /// Counts one failure of `kind` from `ip`.
    pub fn record(&self, kind: FailureKind, ip: IpAddr, now: Instant) {
        match kind {
            FailureKind::AdminToken => &self.admin_token,
            FailureKind::JoinToken => &self.join_token,
        }
        .fetch_add(1, Ordering::Relaxed);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() >= MAX_SOURCES && !recent.contains_key(&ip) {
                recent.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
                if recent.len() >= MAX_SOURCES {
                    // Still full of live windows: forget the one with the fewest failures.
                    if let Some(quiet) = recent.iter().min_by_key(|(_, (_, n))| *n).map(|(k, _)| *k)
                    {
                        recent.remove(&quiet);
                    }
                }
            }
            let entry = recent.entry(ip).or_insert((now, 0));
            if now.duration_since(entry.0) >= WINDOW {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
        let mut unreported = self.unreported.lock().unwrap_or_else(|e| e.into_inner());
        if unreported.len() < MAX_SOURCES || unreported.contains_key(&(kind, ip)) {
            *unreported.entry((kind, ip)).or_insert(0) += 1;
        }
    }

    /// The failures since the last call, as one audit line (at most 8 sources named, the
    /// busiest first), or `None` when there were none.
    pub fn take_summary(&self) -> Option<String> {
        let taken = std::mem::take(&mut *self.unreported.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        for kind in [FailureKind::AdminToken, FailureKind::JoinToken] {
            let mut sources: Vec<(IpAddr, u64)> = taken
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|((_, ip), n)| (*ip, *n))
                .collect();
            if sources.is_empty() {
                continue;
            }
            sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let total: u64 = sources.iter().map(|(_, n)| n).sum();
            let mut named: Vec<String> = sources
                .iter()
                .take(8)
                .map(|(ip, n)| format!("{ip} ×{n}"))
                .collect();
            if sources.len() > 8 {
                named.push(format!("{} more sources", sources.len() - 8));
            }
            parts.push(format!(
                "{total} failed sign-ins with a wrong {} from {}",
                match kind {
                    FailureKind::AdminToken => "admin token",
                    FailureKind::JoinToken => "join token",
                },
                named.join(", ")
            ));
        }
        Some(parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// The bearer scheme is matched without regard to case; anything else is no token.
    #[test]
    fn bearer_scheme_is_case_insensitive_and_nothing_else_counts() {
        for (header, expect) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Bearer ", None),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("abc", None),
        ] {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_static(header));
            assert_eq!(bearer(&h), expect, "{header:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    /// A source is limited after [`FAILURES_PER_WINDOW`] failures and free again after the
    /// window; other sources are not affected.
    #[test]
    fn a_source_is_limited_after_too_many_failures_until_the_window_passes() {
        let f = AuthFailures::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..FAILURES_PER_WINDOW {
            assert!(!f.limited(a, t0), "after {i} failures");
            f.record(FailureKind::JoinToken, a, t0);
        }
        assert!(f.limited(a, t0 + Duration::from_secs(1)));
        assert!(!f.limited(b, t0 + Duration::from_secs(1)));
        assert!(!f.limited(a, t0 + WINDOW + Duration::from_secs(1)));
        assert_eq!(
            f.join_token.load(Ordering::Relaxed),
            u64::from(FAILURES_PER_WINDOW)
        );
        assert_eq!(f.rate_limited.load(Ordering::Relaxed), 1);
    }

    /// The audit summary counts per kind and source, busiest first, names at most eight
    /// sources, and is taken once.
    #[test]
    fn the_summary_names_the_busiest_sources_once() {
        let f = AuthFailures::default();
        let t0 = Instant::now();
        for i in 0..10u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            for _ in 0..=i {
                f.record(FailureKind::AdminToken, ip, t0);
            }
        }
        f.record(FailureKind::JoinToken, IpAddr::from([203, 0, 113, 7]), t0);
        let s = f.take_summary().unwrap();
        assert!(s.starts_with("55 failed sign-ins with a wrong admin token from 198.51.100.9 ×10, 198.51.100.8 ×9"), "{s}");
        assert!(s.contains("2 more sources"), "{s}");
        assert!(
            s.ends_with("1 failed sign-ins with a wrong join token from 203.0.113.7 ×1"),
            "{s}"
        );
        assert_eq!(f.take_summary(), None);
    }

    /// An attacker rotating source addresses cannot grow the tables without bound.
    #[test]
    fn rotating_sources_do_not_grow_the_tables_without_bound() {
        let f = AuthFailures::default();
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 500) {
            f.record(FailureKind::AdminToken, IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(f.recent.lock().unwrap().len() <= MAX_SOURCES);
        assert!(f.unreported.lock().unwrap().len() <= MAX_SOURCES);
    }
}
