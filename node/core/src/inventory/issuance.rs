//! Certificates born in the cluster (issue 14): pending CSRs, the cluster's local issuer,
//! the certificates it issued and their renewal state, webhook targets and the notice
//! outbox. Plain data and the pure decisions over it (when a renewal is due, how long a
//! failure backs off, which expiry thresholds a bundle has crossed), table-tested without a
//! clock: the leader's duties call them with the time, `apply` never does.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The key types the cluster generates (`--key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    #[default]
    EcP256,
    EcP384,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    Ed25519,
}

impl KeyType {
    pub const ALL: [KeyType; 6] = [
        KeyType::EcP256,
        KeyType::EcP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::Ed25519,
    ];

    /// The name operators type: `ec-p256`, `rsa-4096`, …
    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Ed25519 => "ed25519",
        }
    }

    pub fn parse(text: &str) -> Option<KeyType> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(text.trim()))
    }

    /// The RSA modulus size, for the RSA types.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key made on the leader and its CSR, waiting for a CA's certificate. The key is sealed
/// under the cluster keyring (record id [`PendingCsr::key_record`]); only the CSR is public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCsr {
    pub name: String,
    pub key_type: KeyType,
    pub common_name: String,
    pub sans: Vec<String>,
    pub csr_pem: String,
    /// SHA-256 (hex) of the key's SubjectPublicKeyInfo: what a completing certificate must carry.
    pub spki_sha256: String,
    #[serde(with = "serde_bytes")]
    pub sealed_key: Vec<u8>,
    pub created_at: i64,
    pub created_by: String,
}

impl PendingCsr {
    /// The AAD record id a pending key is sealed under: bound to the name and the moment,
    /// so a sealed key cannot be swapped between two CSRs.
    pub fn key_record(name: &str, created_at: i64) -> String {
        format!("csr-key/{name}/{created_at}")
    }
}

/// The cluster's own issuing CA, separate from the node-to-node mutual-TLS CA. Its key is
/// sealed under the *core* key (derived from the cluster CA key, which only nodes that may
/// lead hold), never under the data key a traffic node has: a traffic node cannot issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalIssuer {
    #[serde(with = "serde_bytes")]
    pub cert_der: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub sealed_key: Vec<u8>,
    pub subject: String,
    pub not_after: i64,
    pub created_at: i64,
}

/// The record id the local issuer's key is sealed under.
pub const LOCAL_ISSUER_KEY_RECORD: &str = "issuer-key/local";
/// The issuer name `cert issue` uses by default.
pub const LOCAL_ISSUER: &str = "local";

/// Default share of a certificate's lifetime after which it is renewed: two thirds.
pub const DEFAULT_RENEW_AT_PERMILLE: u16 = 667;

/// A certificate the cluster issued and keeps renewing, by bundle name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Managed {
    /// `local` (the cluster's issuer) or the name of an ACME issuer.
    pub issuer: String,
    pub sans: Vec<String>,
    pub key_type: KeyType,
    /// Each certificate's lifetime, in seconds.
    pub lifetime_secs: i64,
    /// Renewed once this share (in thousandths) of the lifetime has passed.
    pub renew_at_permille: u16,
    #[serde(default)]
    pub renewal: RenewalState,
    /// ACME only (issue 15): how the CA validates the names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<super::acme::ChallengeKind>,
    /// ACME only: `local` to serve a certificate from the local issuer while ACME fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// ACME only: the one order in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<super::acme::AcmeOrder>,
    /// ACME only: the start of the CA's suggested renewal window (RFC 9773), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_window_start: Option<i64>,
    /// ACME only: the bundle served now is the local issuer's stand-in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_fallback: bool,
    /// ACME only: the first bundle becomes the cluster default (`cert issue --default`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub make_default: bool,
}

impl Managed {
    /// Whether an ACME account (rather than the local issuer) issues this certificate.
    pub fn is_acme(&self) -> bool {
        self.issuer != LOCAL_ISSUER
    }
}

/// Where a managed certificate's renewal stands (`cert show`, `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalState {
    pub last_attempt: Option<i64>,
    /// `ok`, or what went wrong.
    pub last_result: Option<String>,
    /// Set after a failure: not retried before then.
    pub retry_at: Option<i64>,
    pub consecutive_failures: u32,
    pub renewals: u32,
}

/// When a certificate valid `not_before..not_after` falls due: once `permille` of its
/// lifetime has passed, brought forward by a jitter of up to 2% of the lifetime chosen by
/// `seed` (its name and id), so thousands issued together do not all renew in one second.
/// Deterministic: every leader computes the same moment.
pub fn renewal_due(not_before: i64, not_after: i64, permille: u16, seed: &[u8]) -> i64 {
    let life = (not_after - not_before).max(0);
    let base = not_before + (life as i128 * permille.min(1000) as i128 / 1000) as i64;
    let spread = life / 50;
    if spread == 0 {
        return base;
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in seed {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    base - (h % (spread as u64 + 1)) as i64
}

/// The jitter seed of a managed certificate: its name and current bundle id.
pub fn renewal_seed(name: &str, id: &[u8; 32]) -> Vec<u8> {
    let mut seed = name.as_bytes().to_vec();
    seed.extend_from_slice(id);
    seed
}

/// What the renewal duty does now about one managed certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalStep {
    /// Nothing until then (unix seconds).
    WaitUntil(i64),
    Renew,
}

/// The renewal decision: due and not backing off → renew.
pub fn renewal_step(due: i64, state: &RenewalState, now: i64) -> RenewalStep {
    let at = match state.retry_at {
        Some(retry) => retry.max(due),
        None => due,
    };
    if now >= at {
        RenewalStep::Renew
    } else {
        RenewalStep::WaitUntil(at)
    }
}

/// How long to wait after the `failures`-th failure in a row: 30 s doubling to an hour, and
/// never more than a tenth of the lifetime (at least 5 s), so a short-lived certificate is
/// retried many times before it expires.
pub fn renewal_backoff(failures: u32, lifetime_secs: i64) -> i64 {
    let exp = 30i64.saturating_mul(1i64 << failures.saturating_sub(1).min(20));
    exp.min(3600).min((lifetime_secs / 10).max(5))
}

/// A webhook that receives notices. Its HMAC secret is sealed under the core key (record id
/// [`NotifyTarget::secret_record`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTarget {
    pub name: String,
    pub url: String,
    #[serde(with = "serde_bytes")]
    pub sealed_secret: Vec<u8>,
    /// Extra CA certificates (PEM) to verify the receiver with, besides the public roots.
    pub ca_pem: Option<String>,
    /// Expiry thresholds, seconds before not-after, largest first.
    pub before_secs: Vec<i64>,
    pub created_at: i64,
    pub created_by: String,
}

impl NotifyTarget {
    pub fn secret_record(name: &str, created_at: i64) -> String {
        format!("notify-secret/{name}/{created_at}")
    }
}

/// The default expiry thresholds: 30, 14, 7 and 1 days before not-after.
pub const DEFAULT_BEFORE_SECS: [i64; 4] = [30 * 86_400, 14 * 86_400, 7 * 86_400, 86_400];

/// What a notice says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NoticeEvent {
    /// The bundle crossed `threshold_secs` before its not-after.
    Expiring {
        name: String,
        id: String,
        hostnames: Vec<String>,
        not_after: i64,
        threshold_secs: i64,
    },
    RenewalFailed {
        name: String,
        error: String,
        consecutive_failures: u32,
        retry_at: i64,
    },
    Renewed {
        name: String,
        old_id: String,
        new_id: String,
        not_after: i64,
    },
    /// ACME failed and the local issuer's certificate `new_id` now serves `name` until the
    /// CA's arrives (`--fallback local`; `old_id` empty when there was none).
    FallbackServed {
        name: String,
        old_id: String,
        new_id: String,
        not_after: i64,
    },
}

impl NoticeEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            NoticeEvent::Expiring { .. } => "expiring",
            NoticeEvent::RenewalFailed { .. } => "renewal_failed",
            NoticeEvent::Renewed { .. } => "renewed",
            NoticeEvent::FallbackServed { .. } => "fallback_served",
        }
    }
}

/// One notice waiting to reach one target: queued through Raft, removed through Raft once
/// delivered, so a leader change neither loses it nor sends it twice (short of a leader
/// dying between the receiver's answer and the commit: receivers dedupe by `id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub id: u64,
    pub target: String,
    pub event: NoticeEvent,
    pub created_at: i64,
}

/// Notices kept waiting at most; beyond, the oldest are dropped (and the drop audited).
pub const NOTICE_OUTBOX_CAPACITY: usize = 10_000;

/// The expiry thresholds of `target` that a bundle with `not_after` has crossed at `now`
/// and that `done` (already queued) does not hold: the tightest crossed one, to be sent, and
/// with it every wider one, to be marked done without a notice of its own (a certificate
/// imported 3 days before expiry gets one "expires in under 7 days" notice, not three).
pub fn crossed_thresholds(
    before_secs: &[i64],
    not_after: i64,
    now: i64,
    done: &[i64],
) -> Option<(i64, Vec<i64>)> {
    let left = not_after - now;
    let crossed: Vec<i64> = before_secs
        .iter()
        .copied()
        .filter(|t| left <= *t && !done.contains(t))
        .collect();
    let tightest = *crossed.iter().min()?;
    Some((tightest, crossed))
}

/// Everything issue 14 adds to the replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issuance {
    #[serde(default)]
    pub csrs: BTreeMap<String, PendingCsr>,
    #[serde(default)]
    pub local_issuer: Option<LocalIssuer>,
    /// Certificates the cluster renews, by bundle name.
    #[serde(default)]
    pub managed: BTreeMap<String, Managed>,
    #[serde(default)]
    pub notify_targets: BTreeMap<String, NotifyTarget>,
    /// The outbox, by notice id.
    #[serde(default)]
    pub notices: BTreeMap<u64, Notice>,
    #[serde(default)]
    pub next_notice_id: u64,
    /// Expiry thresholds already queued: target → bundle id (hex) → thresholds.
    #[serde(default)]
    pub expiry_noticed: BTreeMap<String, BTreeMap<String, Vec<i64>>>,
    /// ACME accounts by issuer name (issue 15). Left out of the encoding while empty, so a
    /// cluster that never used ACME digests exactly as a build before it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acme_issuers: BTreeMap<String, super::acme::AcmeIssuer>,
}

impl Issuance {
    /// Every challenge of every open ACME order: what each serving node answers.
    pub fn challenges(&self) -> Vec<super::acme::AcmeChallenge> {
        self.managed
            .values()
            .filter_map(|m| m.order.as_ref())
            .flat_map(|o| o.challenges.iter().cloned())
            .collect()
    }

    /// Nothing born in the cluster yet: the snapshot leaves the field out, so a cluster
    /// that never used it encodes (and digests) exactly as a build before issue 14 does,
    /// and a rolling upgrade shows no divergence.
    pub fn is_empty(&self) -> bool {
        *self == Issuance::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The due moment is two thirds into the lifetime, brought forward by at most 2%.
    #[test]
    fn renewal_falls_due_at_two_thirds_with_bounded_jitter() {
        for seed in [&b"a"[..], b"web", b"api.example.com", b""] {
            let due = renewal_due(0, 3000, DEFAULT_RENEW_AT_PERMILLE, seed);
            assert!((2001 - 60..=2001).contains(&due), "{due}");
            assert_eq!(due, renewal_due(0, 3000, DEFAULT_RENEW_AT_PERMILLE, seed));
        }
        // Spread: 200 names do not all land on one second.
        let dues: std::collections::BTreeSet<i64> = (0..200)
            .map(|i| renewal_due(0, 90 * 86_400, 667, format!("n{i}").as_bytes()))
            .collect();
        assert!(dues.len() > 150, "{}", dues.len());
        assert_eq!(renewal_due(10, 10, 667, b"x"), 10, "zero lifetime");
        assert!((980..=1000).contains(&renewal_due(0, 1000, 1000, b"")));
    }

    #[test]
    fn renewal_step_table() {
        let fresh = RenewalState::default();
        let failed = RenewalState {
            retry_at: Some(500),
            consecutive_failures: 2,
            ..Default::default()
        };
        let cases = [
            (100, &fresh, 99, RenewalStep::WaitUntil(100)),
            (100, &fresh, 100, RenewalStep::Renew),
            (100, &fresh, 1000, RenewalStep::Renew),
            (100, &failed, 200, RenewalStep::WaitUntil(500)),
            (100, &failed, 500, RenewalStep::Renew),
            (900, &failed, 600, RenewalStep::WaitUntil(900)),
        ];
        for (due, state, now, want) in cases {
            assert_eq!(renewal_step(due, state, now), want, "due {due} now {now}");
        }
    }

    #[test]
    fn backoff_doubles_to_an_hour_and_stays_under_a_tenth_of_the_lifetime() {
        let year = 365 * 86_400;
        let cases = [
            (1, year, 30),
            (2, year, 60),
            (3, year, 120),
            (8, year, 3600),
            (40, year, 3600),
            (1, 600, 30),
            (3, 600, 60),
            (1, 20, 5),
        ];
        for (failures, life, want) in cases {
            assert_eq!(renewal_backoff(failures, life), want, "{failures} {life}");
        }
    }

    #[test]
    fn thresholds_send_the_tightest_crossed_and_mark_the_wider_ones() {
        let t = [30, 14, 7, 1];
        assert_eq!(crossed_thresholds(&t, 100, 50, &[]), None);
        assert_eq!(crossed_thresholds(&t, 100, 70, &[]), Some((30, vec![30])));
        assert_eq!(
            crossed_thresholds(&t, 100, 97, &[30]),
            Some((7, vec![14, 7]))
        );
        assert_eq!(crossed_thresholds(&t, 100, 97, &[30, 14, 7]), None);
        assert_eq!(
            crossed_thresholds(&t, 100, 200, &[30, 14, 7]),
            Some((1, vec![1])),
            "expired: the last threshold still fires"
        );
    }

    #[test]
    fn key_types_parse_by_their_names_only() {
        for k in KeyType::ALL {
            assert_eq!(KeyType::parse(k.name()), Some(k));
            // The wire name is the name operators type.
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.name())
            );
        }
        assert_eq!(KeyType::parse("RSA-4096"), Some(KeyType::Rsa4096));
        for bad in ["rsa", "rsa-1024", "p256", "", "ec-p521"] {
            assert_eq!(KeyType::parse(bad), None, "{bad}");
        }
    }
}
