//! Inventory data: bundles by id and name, the default, join tokens, the audit log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bundle::assemble::{Bundle, Completeness};
use crate::bundle::cert::is_dns_name;
use crate::bundle::{KeyKind, SealedBundle};

use super::request::*;

/// The public facts about a bundle, kept in the clear beside its sealed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleMeta {
    pub hostnames: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub key: KeyKind,
    pub completeness: Completeness,
}

impl BundleMeta {
    pub fn of(bundle: &Bundle) -> Self {
        let leaf = bundle.leaf();
        BundleMeta {
            hostnames: bundle.hostnames(),
            subject: leaf.subject.clone(),
            issuer: leaf.issuer.clone(),
            serial: leaf.serial.clone(),
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            key: bundle.key().kind(),
            completeness: bundle.completeness(),
        }
    }

    /// Does this certificate cover `host`: exactly, or by a wildcard over exactly one label?
    pub fn covers(&self, host: &str) -> bool {
        self.hostnames.iter().any(|h| hostname_matches(h, host))
    }
}

/// SPEC §4 matching: case-insensitive, trailing dot ignored, `*.parent` covers one label.
pub fn hostname_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => pattern == host,
    }
}

/// Served, or kept after a rotation but not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleStatus {
    Active,
    Retired,
}

/// One bundle in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBundle {
    pub name: String,
    pub sealed: SealedBundle,
    pub meta: BundleMeta,
    pub status: BundleStatus,
    pub imported_at: i64,
    pub imported_by: String,
}

impl StoredBundle {
    pub fn id(&self) -> [u8; 32] {
        self.sealed.id
    }
}

/// A bundle as proposed for import: sealed by the node that assembled and validated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBundle {
    pub name: String,
    pub sealed: SealedBundle,
    pub meta: BundleMeta,
}

/// What a joining node may become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    Voter,
    Learner,
    Witness,
}

/// A single-use join token, stored only as the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    pub secret_sha256: [u8; 32],
    pub role: NodeRole,
    pub expires_at: i64,
    pub created_by: String,
    pub used_by: Option<u64>,
}

/// An admin API bearer token, stored only as the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    /// Recorded as the actor of every mutation made with the token.
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub created_at: i64,
    pub created_by: String,
}

/// A TLS session-ticket key, shared by every node so a client resumes anywhere. The key is
/// sealed under the cluster keyring (record id `ticket-key-<id>`), never in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketKey {
    pub id: u32,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
    pub created_at: i64,
}

impl TicketKey {
    /// The AAD record id the key is sealed under.
    pub fn record_id(id: u32) -> String {
        format!("ticket-key-{id}")
    }
}

/// How many ticket keys are kept: the newest issues tickets, the older ones still decrypt.
pub const TICKET_KEYS_KEPT: usize = 3;

/// One line of the replicated audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: i64,
    pub actor: String,
    pub what: String,
    /// `ok` or the refusal code.
    pub result: String,
    /// `apply` refused the request: such records are the first to go when the log is full.
    #[serde(default)]
    pub refused: bool,
}

/// How many audit records the inventory keeps. When full, the oldest *refused* record goes
/// first, and an accepted one only when no refused record is left: no volume of refused
/// attempts can push out the record of a change that happened.
pub const AUDIT_CAPACITY: usize = 10_000;

/// Text for the audit log: control characters (a name sent with ESC or a newline, to forge
/// lines or drive a terminal) are written as `\u{..}` escapes, never stored raw.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The bundles by name, with an index by id kept beside them (not serialised; rebuilt on
/// decode), so import, rotate and restore find "the same bundle already present" in O(1)
/// rather than scanning 100,000 bundles per entry. Reads go through `Deref` to the map.
///
/// The index is a pure function of the map: each id lists every name that holds it, and
/// [`Bundles::by_id`] answers the least of them. So a replica that applied the log and one
/// that decoded a snapshot answer alike whatever order the names arrived in (issue 22: the
/// index once kept the last name inserted, and the decoded one the greatest), and
/// comparing the maps compares everything `apply` reads.
///
/// Both are persistent maps (`imbl`): a clone shares everything and an update copies only
/// the path it touches. The state machine applies copy-on-write while readers (a snapshot
/// being encoded for seconds, a request) hold the previous inventory; with std maps each
/// such apply deep-copied all 100,000 bundles.
#[derive(Debug, Clone, Default)]
pub struct Bundles {
    by_name: imbl::OrdMap<String, StoredBundle>,
    /// Every name holding each id, in name order (almost always exactly one).
    by_id: imbl::HashMap<[u8; 32], Vec<String>>,
}

impl Bundles {
    fn index(&mut self, id: [u8; 32], name: &str) {
        let names = self.by_id.entry(id).or_default();
        if let Err(at) = names.binary_search_by(|n| n.as_str().cmp(name)) {
            names.insert(at, name.to_string());
        }
    }

    fn unindex(&mut self, id: &[u8; 32], name: &str) {
        if let Some(names) = self.by_id.get_mut(id) {
            names.retain(|n| n != name);
            if names.is_empty() {
                self.by_id.remove(id);
            }
        }
    }

    /// Files `bundle` under `name`, replacing (and returning) what was there.
    pub fn insert(&mut self, name: String, bundle: StoredBundle) -> Option<StoredBundle> {
        self.index(bundle.sealed.id, &name);
        let old = self.by_name.insert(name.clone(), bundle)?;
        if self
            .by_name
            .get(&name)
            .is_some_and(|b| b.sealed.id != old.sealed.id)
        {
            self.unindex(&old.sealed.id, &name);
        }
        Some(old)
    }

    pub fn remove(&mut self, name: &str) -> Option<StoredBundle> {
        let old = self.by_name.remove(name)?;
        self.unindex(&old.sealed.id, name);
        Some(old)
    }

    /// The bundle with this id, if any, whatever its name: the least name holding it.
    pub fn by_id(&self, id: &[u8; 32]) -> Option<&StoredBundle> {
        self.by_name.get(self.by_id.get(id)?.first()?)
    }
}

impl std::ops::Deref for Bundles {
    type Target = imbl::OrdMap<String, StoredBundle>;
    fn deref(&self) -> &Self::Target {
        &self.by_name
    }
}

impl PartialEq for Bundles {
    fn eq(&self, other: &Self) -> bool {
        self.by_name == other.by_name
    }
}

impl Eq for Bundles {}

impl FromIterator<(String, StoredBundle)> for Bundles {
    fn from_iter<T: IntoIterator<Item = (String, StoredBundle)>>(iter: T) -> Self {
        let mut b = Bundles::default();
        for (name, bundle) in iter {
            b.insert(name, bundle);
        }
        b
    }
}

impl Serialize for Bundles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The same wire form as a BTreeMap: a map in name order.
        s.collect_map(self.by_name.iter())
    }
}

impl<'de> Deserialize<'de> for Bundles {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let by_name = BTreeMap::<String, StoredBundle>::deserialize(d)?;
        Ok(by_name.into_iter().collect())
    }
}

/// The whole replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub bundles: Bundles,
    pub default: Option<String>,
    pub join_tokens: Vec<JoinToken>,
    #[serde(default)]
    pub admin_tokens: Vec<AdminToken>,
    /// The highest node id a join token has handed out.
    #[serde(default)]
    pub highest_node_id: u64,
    /// Session-ticket keys, oldest first.
    #[serde(default)]
    pub ticket_keys: Vec<TicketKey>,
    pub audit: Vec<AuditRecord>,
    /// SHA-256 (hex) of every node certificate a membership change dropped, with the id of
    /// the node it was issued to: recorded when the change is applied and never forgotten,
    /// so a removed member's certificate is refused for good (SPEC §6) by anyone holding
    /// this list (the CLI reads it from `DATA/revoked-nodes.txt`).
    #[serde(default)]
    pub revoked_node_certs: BTreeMap<String, u64>,
    /// How many times `recover --force-single-node` re-formed this cluster from one node:
    /// old members that come back are told so (issue 22).
    #[serde(default)]
    pub epoch: u64,
    /// Behaviours every member has agreed to ([`Command::EnableFeature`]).
    #[serde(default)]
    pub features: std::collections::BTreeSet<Feature>,
    /// Pending CSRs, the local issuer, managed certificates, notices (issue 14).
    #[serde(default, skip_serializing_if = "super::issuance::Issuance::is_empty")]
    pub issuance: super::issuance::Issuance,
    /// Signed-in web console sessions (issue 16); left out while none, so digests equal
    /// those of older builds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ui_sessions: Vec<super::ui::UiSession>,
    /// The bundle the admin port presents for the console hostnames (issue 16; see
    /// `console.rs` for the invariant); left out while none, so digests equal those of
    /// older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<super::console::ConsoleCert>,
}

impl Inventory {
    /// The bundle with this id, if any, whatever its name.
    pub fn by_id(&self, id: &[u8; 32]) -> Option<&StoredBundle> {
        self.bundles.by_id(id)
    }

    /// The admin token whose secret hashes to `sha256`, if any.
    pub fn admin_token(&self, sha256: &[u8; 32]) -> Option<&AdminToken> {
        self.admin_tokens
            .iter()
            .find(|t| &t.secret_sha256 == sha256)
    }

    /// The bundle SPEC §4 serves for `host` now: an exact name beats a wildcard; among
    /// several, currently valid first, then the latest not-after, then the first name — the
    /// serving index's order (`tls::index`), so this names what the serve port serves.
    /// `None`: the default applies.
    pub fn serving(&self, host: &str, now: i64) -> Option<&str> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        fn rank<'a>(b: &'a StoredBundle, host: &str, now: i64) -> impl Ord + 'a {
            let exact = b
                .meta
                .hostnames
                .iter()
                .any(|h| !h.starts_with("*.") && hostname_matches(h, host));
            let m = &b.meta;
            (
                exact,
                crate::bundle::cert::serve_rank(m.not_before, m.not_after, &b.name, now),
            )
        }
        self.bundles
            .values()
            .filter(|b| b.status == BundleStatus::Active && b.meta.covers(&host))
            .max_by_key(|b| rank(b, &host, now))
            .map(|b| b.name.as_str())
    }

    /// Active bundles other than `except` that cover `host`.
    pub fn servers_of(&self, host: &str, except: &str) -> usize {
        self.bundles
            .values()
            .filter(|b| b.status == BundleStatus::Active && b.name != except && b.meta.covers(host))
            .count()
    }
}

/// Names: 1–64 of letters, digits, '.', '-', '_', starting with a letter or a digit (so
/// `.`, `..` and `-x`, which no shell or URL handles cleanly, are refused); a wildcard
/// hostname `*.parent` is a name too. Usually a hostname.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && (name.starts_with(|c: char| c.is_ascii_alphanumeric())
            || (name.starts_with("*.") && is_dns_name(name)))
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
        && (is_dns_name(name) || !name.contains('*'))
}
