//! ACME in the replicated state (issue 15): the cluster's ACME accounts, the one order in
//! flight per managed certificate, and the challenge answers every serving node gives.
//! Plain data and the pure decisions over it (what the leader's ACME duty does next for a
//! certificate, when the local fallback is served), table-tested without a clock.
//!
//! Only the leader talks to the CA; everything it learns (the account, an order's URL and
//! challenges, the finished certificate, a failure and its backoff) becomes a Raft entry, so
//! a new leader resumes the order in flight instead of opening a second one.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::issuance::{renewal_due, renewal_seed, KeyType, Managed};

/// How the CA checks that the cluster controls a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeKind {
    /// `http-01`: `GET http://NAME/.well-known/acme-challenge/TOKEN` on every node's HTTP port.
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// `tls-alpn-01`: a handshake for NAME with ALPN `acme-tls/1` on every node's serve port.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl ChallengeKind {
    pub const ALL: [ChallengeKind; 2] = [ChallengeKind::Http01, ChallengeKind::TlsAlpn01];

    pub fn name(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }

    pub fn parse(text: &str) -> Option<ChallengeKind> {
        ChallengeKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(text.trim()))
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An ACME account of the cluster, registered once by the leader. The account key (inside
/// the client's credentials) is born on the leader and sealed under the core keyring (record
/// [`AcmeIssuer::credentials_record`]): a traffic node cannot open it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeIssuer {
    pub name: String,
    pub directory: String,
    pub email: String,
    /// The account URL the CA gave (`kid`).
    pub account_url: String,
    #[serde(with = "serde_bytes")]
    pub sealed_credentials: Vec<u8>,
    /// Extra roots (PEM) the directory's HTTPS is verified against, besides the public ones.
    pub ca_pem: Option<String>,
    /// Whether the directory offers ACME Renewal Information (RFC 9773).
    pub ari: bool,
    pub created_at: i64,
    pub created_by: String,
}

impl AcmeIssuer {
    pub fn credentials_record(name: &str, created_at: i64) -> String {
        format!("acme-account/{name}/{created_at}")
    }
}

/// One challenge of an order in flight: what every serving node answers until the order ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeChallenge {
    pub kind: ChallengeKind,
    /// The name being validated (lowercase, no wildcard).
    pub domain: String,
    pub token: String,
    /// `token.thumbprint`: public (RFC 8555 §8.1), derived from the account key.
    pub key_authorization: String,
}

/// The one order in flight for a managed certificate. Its key was made before the order
/// was opened and is sealed under the core keyring (record [`AcmeOrder::key_record`]), so
/// whichever leader finalizes it uses the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeOrder {
    pub issuer: String,
    pub url: String,
    /// The bundle id (hex) this order will replace (`None`: the first certificate for the
    /// name).
    pub replaces: Option<String>,
    pub key_type: KeyType,
    #[serde(with = "serde_bytes")]
    pub sealed_key: Vec<u8>,
    pub challenges: Vec<AcmeChallenge>,
    pub opened_at: i64,
}

impl AcmeOrder {
    pub fn key_record(name: &str, opened_at: i64) -> String {
        format!("acme-order-key/{name}/{opened_at}")
    }
}

/// What the leader's ACME duty does now about one ACME-managed certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeStep {
    /// Nothing until then (unix seconds).
    WaitUntil(i64),
    /// Open an order (a first certificate, a renewal, or a retry after a failed order).
    Open,
    /// Carry the open order on (check it with the CA, answer, finalize, download).
    Resume,
}

/// Where an ACME-managed certificate's current bundle stands, for [`acme_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub not_before: i64,
    pub not_after: i64,
    pub id: [u8; 32],
    /// Served from the local issuer while ACME keeps failing.
    pub fallback: bool,
}

/// The ACME duty's decision: an open order is resumed (after its backoff); without one, an
/// order is opened when there is no certificate yet, when the current one is the local
/// fallback, or when it falls due (two thirds of its lifetime, or the start of the CA's
/// renewal window if the CA said so) — never before the backoff of a failure ends.
pub fn acme_step(name: &str, m: &Managed, current: Option<Current>, now: i64) -> AcmeStep {
    let retry = m.renewal.retry_at.unwrap_or(i64::MIN);
    let after_backoff = |at: i64| {
        let at = at.max(retry);
        if now >= at {
            None
        } else {
            Some(AcmeStep::WaitUntil(at))
        }
    };
    if m.order.is_some() {
        return after_backoff(i64::MIN).unwrap_or(AcmeStep::Resume);
    }
    let due = match current {
        None => i64::MIN,
        Some(c) if c.fallback || m.on_fallback => i64::MIN,
        Some(c) => {
            let due = renewal_due(
                c.not_before,
                c.not_after,
                m.renew_at_permille,
                &renewal_seed(name, &c.id),
            );
            match m.ari_window_start {
                Some(start) => start.min(due),
                None => due,
            }
        }
    };
    after_backoff(due).unwrap_or(AcmeStep::Open)
}

/// The renewal moment chosen in the CA's suggested window (RFC 9773 §4.2: a uniform random
/// time in `[start, end]`): drawn from `seed` (the name and bundle id), so every leader and
/// every check of the same window picks the same moment and records it once. A window that
/// ends before it starts is read as its start.
pub fn ari_pick(start: i64, end: i64, seed: &[u8]) -> i64 {
    let span = end.saturating_sub(start);
    if span <= 0 {
        return start;
    }
    // FNV-1a, as `renewal_due`: stable across builds and platforms.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in seed.iter().chain(b"/ari") {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    start + (h % (span as u64 + 1)) as i64
}

/// Whether a failed ACME attempt should put the local issuer's certificate in place now:
/// only for a certificate that asked for it (`--fallback local`), and only when nothing
/// usable would serve the name until the next attempt — no certificate yet, or the current
/// one (not itself the fallback) expires before `retry_at`.
pub fn fallback_now(m: &Managed, current: Option<Current>, retry_at: i64) -> bool {
    if m.fallback.as_deref() != Some(super::issuance::LOCAL_ISSUER) {
        return false;
    }
    match current {
        None => true,
        Some(c) if c.fallback => false,
        Some(c) => c.not_after <= retry_at,
    }
}

/// The ACME problem types that mean "this order will not succeed as it is": the order is
/// dropped and a new one opened after the backoff. Anything else (a network error, a 5xx,
/// `badNonce` beyond the client's retries, `rateLimited`) keeps the order and retries it.
pub fn order_is_dead(problem_type: &str) -> bool {
    let t = problem_type.trim_start_matches("urn:ietf:params:acme:error:");
    matches!(
        t,
        "unauthorized"
            | "rejectedIdentifier"
            | "badCSR"
            | "caa"
            | "dns"
            | "connection"
            | "incorrectResponse"
            | "tls"
            | "malformed"
            | "orderNotReady"
            | "unsupportedIdentifier"
            | "badRevocationReason"
    )
}

/// How long to wait before trying an ACME certificate again after the `failures`-th failure
/// in a row: 30 s doubling to an hour (RFC 8555 asks clients not to hammer a CA), but never
/// sooner than the CA's `Retry-After`, and for a rate limit never sooner than an hour unless
/// the CA said otherwise.
pub fn acme_backoff(failures: u32, retry_after_secs: Option<i64>, rate_limited: bool) -> i64 {
    let exp = 30i64.saturating_mul(1i64 << failures.saturating_sub(1).min(20));
    let base = exp.min(3600);
    match (retry_after_secs, rate_limited) {
        (Some(ra), _) => ra.clamp(1, 86_400),
        (None, true) => base.max(3600),
        (None, false) => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ari_pick_is_inside_the_window_and_stable() {
        let seed = renewal_seed("www", &[7; 32]);
        let at = ari_pick(1_000, 2_000, &seed);
        assert!((1_000..=2_000).contains(&at), "{at}");
        assert_eq!(ari_pick(1_000, 2_000, &seed), at, "same seed, same moment");
        let spread: std::collections::BTreeSet<i64> = (0..50u8)
            .map(|i| ari_pick(1_000, 2_000, &renewal_seed("www", &[i; 32])))
            .collect();
        assert!(
            spread.len() > 40,
            "bundles spread over the window: {spread:?}"
        );
        assert_eq!(ari_pick(5_000, 5_000, &seed), 5_000);
        assert_eq!(
            ari_pick(5_000, 4_000, &seed),
            5_000,
            "a backwards window is its start"
        );
        assert_eq!(
            ari_pick(i64::MIN, i64::MAX, &seed),
            ari_pick(i64::MIN, i64::MAX, &seed)
        );
    }
    use crate::inventory::issuance::{RenewalState, DEFAULT_RENEW_AT_PERMILLE};

    fn managed() -> Managed {
        Managed {
            issuer: "le".into(),
            sans: vec!["a.example".into()],
            key_type: KeyType::EcP256,
            lifetime_secs: 0,
            renew_at_permille: DEFAULT_RENEW_AT_PERMILLE,
            renewal: RenewalState::default(),
            challenge: Some(ChallengeKind::Http01),
            fallback: None,
            order: None,
            ari_window_start: None,
            on_fallback: false,
            make_default: false,
        }
    }

    fn order() -> AcmeOrder {
        AcmeOrder {
            issuer: "le".into(),
            url: "https://ca/order/1".into(),
            replaces: None,
            key_type: KeyType::EcP256,
            sealed_key: vec![1],
            challenges: vec![],
            opened_at: 0,
        }
    }

    fn cur(not_before: i64, not_after: i64, fallback: bool) -> Option<Current> {
        Some(Current {
            not_before,
            not_after,
            id: [7; 32],
            fallback,
        })
    }

    /// The duty's decision for each situation a certificate can be in.
    #[test]
    fn the_acme_step_follows_order_certificate_and_backoff() {
        let m = managed();
        let mut with_order = managed();
        with_order.order = Some(order());
        let mut backing_off = managed();
        backing_off.renewal.retry_at = Some(500);
        let mut order_backing_off = with_order.clone();
        order_backing_off.renewal.retry_at = Some(500);
        let mut ari = managed();
        ari.ari_window_start = Some(100);
        let cases: &[(&str, &Managed, Option<Current>, i64, AcmeStep)] = &[
            ("no certificate yet: open", &m, None, 10, AcmeStep::Open),
            (
                "an order is open: resume it",
                &with_order,
                None,
                10,
                AcmeStep::Resume,
            ),
            (
                "an order in backoff waits",
                &order_backing_off,
                None,
                10,
                AcmeStep::WaitUntil(500),
            ),
            (
                "a fallback is replaced at once",
                &m,
                cur(0, 3000, true),
                10,
                AcmeStep::Open,
            ),
            (
                "a fresh certificate waits for two thirds",
                &m,
                cur(0, 3000, false),
                10,
                AcmeStep::WaitUntil(renewal_due(0, 3000, 667, &renewal_seed("a", &[7; 32]))),
            ),
            (
                "a due certificate renews",
                &m,
                cur(0, 3000, false),
                2001,
                AcmeStep::Open,
            ),
            (
                "the CA's window brings it forward",
                &ari,
                cur(0, 3000, false),
                150,
                AcmeStep::Open,
            ),
            (
                "a failure's backoff holds a first order back",
                &backing_off,
                None,
                10,
                AcmeStep::WaitUntil(500),
            ),
            (
                "after the backoff: open",
                &backing_off,
                None,
                500,
                AcmeStep::Open,
            ),
        ];
        for (why, m, current, now, want) in cases {
            assert_eq!(acme_step("a", m, *current, *now), *want, "{why}");
        }
    }

    /// The fallback is opt-in and only stands in when nothing usable would serve.
    #[test]
    fn the_fallback_serves_only_when_asked_and_nothing_else_would() {
        let mut m = managed();
        assert!(!fallback_now(&m, None, 100), "not asked for");
        m.fallback = Some("local".into());
        assert!(fallback_now(&m, None, 100), "no certificate yet");
        assert!(
            !fallback_now(&m, cur(0, 3000, true), 100),
            "already on the fallback"
        );
        assert!(
            !fallback_now(&m, cur(0, 3000, false), 100),
            "still valid until the retry"
        );
        assert!(
            fallback_now(&m, cur(0, 90, false), 100),
            "expires before the retry"
        );
    }

    /// Validation failures end the order; transport trouble and rate limits keep it.
    #[test]
    fn dead_orders_are_told_from_transient_trouble() {
        for t in [
            "urn:ietf:params:acme:error:unauthorized",
            "urn:ietf:params:acme:error:connection",
            "urn:ietf:params:acme:error:incorrectResponse",
            "urn:ietf:params:acme:error:dns",
        ] {
            assert!(order_is_dead(t), "{t}");
        }
        for t in [
            "urn:ietf:params:acme:error:badNonce",
            "urn:ietf:params:acme:error:rateLimited",
            "urn:ietf:params:acme:error:serverInternal",
            "",
        ] {
            assert!(!order_is_dead(t), "{t}");
        }
    }

    /// The backoff doubles to an hour, honours Retry-After, and waits an hour on a rate limit.
    #[test]
    fn acme_backoff_honours_retry_after_and_rate_limits() {
        assert_eq!(acme_backoff(1, None, false), 30);
        assert_eq!(acme_backoff(2, None, false), 60);
        assert_eq!(acme_backoff(30, None, false), 3600);
        assert_eq!(acme_backoff(1, None, true), 3600);
        assert_eq!(acme_backoff(1, Some(5), false), 5);
        assert_eq!(acme_backoff(1, Some(7200), true), 7200);
        assert_eq!(acme_backoff(1, Some(10_000_000), false), 86_400);
        assert_eq!(acme_backoff(1, Some(-5), false), 1);
    }
}
