//! The serving index: which certificate answers which SNI name (SPEC §4), as plain data.
//!
//! Pure and synchronous: built and queried without a runtime, sockets or clock (`now` is an
//! argument). Updated incrementally per bundle name; every map (hosts, wildcard parents,
//! names) is spread over [`SHARDS`] shards of `Arc`ed maps, so the next generation copies
//! only the shards an update touches: about 3/64 of the index per changed bundle.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use rustls::sign::CertifiedKey;

use crate::bundle::cert::serve_rank;
use crate::bundle::{Keyring, OpenError, SealedBundle};

/// How many shards the host maps are split into.
pub const SHARDS: usize = 64;

/// One servable certificate.
#[derive(Debug)]
pub struct Served {
    pub name: String,
    pub not_before: i64,
    pub not_after: i64,
    pub key: ServedKey,
}

/// A certificate's key: opened from its sealed bundle on its first handshake, then kept.
///
/// Filing a bundle into the index is therefore cheap (no AES-GCM, no key-pair check), which
/// is what makes a cold start with 100,000 bundles and an apply under the state lock fast;
/// keys of names nobody asks for are never decrypted in memory.
pub struct ServedKey {
    opened: OnceLock<Result<Arc<CertifiedKey>, OpenError>>,
    sealed: Option<(SealedBundle, Arc<Keyring>)>,
}

impl std::fmt::Debug for ServedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.opened.get() {
            Some(Ok(_)) => f.write_str("ServedKey(open)"),
            Some(Err(e)) => write!(f, "ServedKey(unusable: {})", e.code()),
            None => f.write_str("ServedKey(sealed)"),
        }
    }
}

impl ServedKey {
    /// A key already in serving form.
    pub fn ready(key: Arc<CertifiedKey>) -> Self {
        ServedKey {
            opened: OnceLock::from(Ok(key)),
            sealed: None,
        }
    }

    /// A key opened from `sealed` under `keyring` when first asked for.
    pub fn sealed(sealed: SealedBundle, keyring: Arc<Keyring>) -> Self {
        ServedKey {
            opened: OnceLock::new(),
            sealed: Some((sealed, keyring)),
        }
    }

    /// The key, opening it on first use; `fresh` is true for the call that opened it (so a
    /// damaged bundle is reported once, not per handshake).
    pub fn get(&self) -> (Result<Arc<CertifiedKey>, OpenError>, bool) {
        let mut fresh = false;
        let r = self.opened.get_or_init(|| {
            fresh = true;
            match &self.sealed {
                Some((s, keyring)) => s.open_certified(keyring),
                None => unreachable!("a ready key is always opened"),
            }
        });
        (r.clone(), fresh)
    }

    /// Has the key been opened (metrics: how many keys are in memory)?
    pub fn is_open(&self) -> bool {
        matches!(self.opened.get(), Some(Ok(_)))
    }
}

/// How a handshake's certificate was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    Exact,
    Wildcard,
    Default,
}

type Candidates = Vec<Arc<Served>>;
type Filed = (Arc<Served>, Vec<String>);
type Shard = Arc<HashMap<String, Candidates>>;

fn shard_of(key: &str) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// Lowercase, without a trailing dot: the form every lookup and key uses.
pub fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The serving index of one node. Cheap to clone (shards are shared until written).
#[derive(Clone)]
pub struct CertIndex {
    /// Exact host → certificates naming it.
    exact: Vec<Shard>,
    /// Parent of `*.parent` → certificates with that wildcard.
    wildcard: Vec<Shard>,
    /// Bundle name → (the served certificate, the keys it is filed under), sharded too.
    by_name: Vec<Arc<HashMap<String, Filed>>>,
    /// How many bundles are served.
    count: usize,
    default: Option<String>,
    /// Bumped by every change; reported in metrics.
    pub generation: u64,
}

impl Default for CertIndex {
    fn default() -> Self {
        CertIndex {
            exact: (0..SHARDS).map(|_| Shard::default()).collect(),
            wildcard: (0..SHARDS).map(|_| Shard::default()).collect(),
            by_name: (0..SHARDS).map(|_| Arc::default()).collect(),
            count: 0,
            default: None,
            generation: 0,
        }
    }
}

/// The better of two candidates for one name, by [`serve_rank`] (SPEC §4's order, the one
/// the inventory's `serving` uses too).
fn better<'a>(a: &'a Arc<Served>, b: &'a Arc<Served>, now: i64) -> &'a Arc<Served> {
    let key = |s: &'a Served| serve_rank(s.not_before, s.not_after, &s.name, now);
    if key(b) > key(a) {
        b
    } else {
        a
    }
}

fn best(c: &Candidates, now: i64) -> Option<&Arc<Served>> {
    c.iter().reduce(|a, b| better(a, b, now))
}

impl CertIndex {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name[shard_of(name)].contains_key(name)
    }

    fn file(&mut self, wildcard: bool, key: &str, served: &Arc<Served>) {
        let shards = if wildcard {
            &mut self.wildcard
        } else {
            &mut self.exact
        };
        let shard = Arc::make_mut(&mut shards[shard_of(key)]);
        shard
            .entry(key.to_string())
            .or_default()
            .push(served.clone());
    }

    fn unfile(&mut self, wildcard: bool, key: &str, name: &str) {
        let shards = if wildcard {
            &mut self.wildcard
        } else {
            &mut self.exact
        };
        let shard = Arc::make_mut(&mut shards[shard_of(key)]);
        if let Some(c) = shard.get_mut(key) {
            c.retain(|s| s.name != name);
            if c.is_empty() {
                shard.remove(key);
            }
        }
    }

    /// Serves `served` for `hostnames` (replacing whatever `served.name` served before).
    pub fn upsert(&mut self, hostnames: &[String], served: Served) {
        self.remove(&served.name);
        let served = Arc::new(served);
        let mut keys = Vec::with_capacity(hostnames.len());
        for h in hostnames {
            let h = normalize(h);
            match h.strip_prefix("*.") {
                Some(parent) => self.file(true, parent, &served),
                None => self.file(false, &h, &served),
            }
            keys.push(h);
        }
        Arc::make_mut(&mut self.by_name[shard_of(&served.name)])
            .insert(served.name.clone(), (served.clone(), keys));
        self.count += 1;
        self.generation += 1;
    }

    /// Stops serving the bundle `name` (no-op when absent).
    pub fn remove(&mut self, name: &str) {
        let shard = &mut self.by_name[shard_of(name)];
        if !shard.contains_key(name) {
            return;
        }
        let Some((_, keys)) = Arc::make_mut(shard).remove(name) else {
            return;
        };
        self.count -= 1;
        for k in keys {
            match k.strip_prefix("*.") {
                Some(parent) => self.unfile(true, parent, name),
                None => self.unfile(false, &k, name),
            }
        }
        self.generation += 1;
    }

    /// Names the cluster-wide default (by bundle name; `None`: no default set).
    pub fn set_default(&mut self, name: Option<String>) {
        if self.default != name {
            self.default = name;
            self.generation += 1;
        }
    }

    pub fn default_name(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// SPEC §4: exact name, then a one-label wildcard, then the default. `None` when nothing
    /// matches and no default is set (the caller falls back to the node certificate, or
    /// refuses under `strict_sni`).
    pub fn select(&self, sni: Option<&str>, now: i64) -> Option<(Matched, &Arc<Served>)> {
        if let Some(sni) = sni {
            let host = normalize(sni);
            if let Some(s) = self.exact[shard_of(&host)]
                .get(&host)
                .and_then(|c| best(c, now))
            {
                return Some((Matched::Exact, s));
            }
            if let Some((label, parent)) = host.split_once('.') {
                if !label.is_empty() {
                    if let Some(s) = self.wildcard[shard_of(parent)]
                        .get(parent)
                        .and_then(|c| best(c, now))
                    {
                        return Some((Matched::Wildcard, s));
                    }
                }
            }
        }
        self.default_served().map(|s| (Matched::Default, s))
    }

    /// The default bundle, when one is set and served.
    pub fn default_served(&self) -> Option<&Arc<Served>> {
        let name = self.default.as_deref()?;
        self.by_name[shard_of(name)].get(name).map(|(s, _)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<CertifiedKey> {
        let kp = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x.test".into()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(kp.serialize_der().into());
        let signing = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing))
    }

    fn served(name: &str, not_after: i64, k: &Arc<CertifiedKey>) -> Served {
        Served {
            name: name.into(),
            not_before: 0,
            not_after,
            key: ServedKey::ready(k.clone()),
        }
    }

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    fn chosen(ix: &CertIndex, sni: Option<&str>, now: i64) -> Option<(Matched, String)> {
        ix.select(sni, now).map(|(m, s)| (m, s.name.clone()))
    }

    /// SPEC §4 selection, as a table: exact beats wildcard; a wildcard covers exactly one
    /// label; case and a trailing dot are ignored; no SNI or no match falls to the default;
    /// nothing at all without a default.
    #[test]
    fn selection_follows_spec_order() {
        let k = key();
        let mut ix = CertIndex::default();
        ix.upsert(&hosts(&["www.example.test"]), served("www", 100, &k));
        ix.upsert(&hosts(&["*.example.test"]), served("wild", 100, &k));
        ix.upsert(&hosts(&["other.test"]), served("other", 100, &k));
        let now = 50;
        type Case<'a> = (Option<&'a str>, Option<(Matched, &'a str)>);
        let cases: &[Case] = &[
            (Some("www.example.test"), Some((Matched::Exact, "www"))),
            (Some("WWW.Example.TEST."), Some((Matched::Exact, "www"))),
            (Some("api.example.test"), Some((Matched::Wildcard, "wild"))),
            (Some("a.b.example.test"), None),
            (Some("example.test"), None),
            (Some(".example.test"), None),
            (None, None),
        ];
        for (sni, want) in cases {
            let want = want.map(|(m, n)| (m, n.to_string()));
            assert_eq!(chosen(&ix, *sni, now), want, "sni {sni:?} without default");
        }
        ix.set_default(Some("other".into()));
        assert_eq!(
            chosen(&ix, Some("a.b.example.test"), now),
            Some((Matched::Default, "other".into()))
        );
        assert_eq!(
            chosen(&ix, None, now),
            Some((Matched::Default, "other".into()))
        );
    }

    /// Among several certificates for one name: currently valid first, then the latest
    /// not-after.
    #[test]
    fn among_several_valid_first_then_latest_not_after() {
        let k = key();
        let mut ix = CertIndex::default();
        ix.upsert(&hosts(&["a.test"]), served("old", 100, &k));
        ix.upsert(&hosts(&["a.test"]), served("new", 200, &k));
        assert_eq!(chosen(&ix, Some("a.test"), 50).unwrap().1, "new");
        // At 150, "old" has expired: "new" is the only valid one.
        assert_eq!(chosen(&ix, Some("a.test"), 150).unwrap().1, "new");
        let mut future = served("future", 300, &k);
        future.not_before = 250;
        ix.upsert(&hosts(&["a.test"]), future);
        // Not yet valid loses to a valid one despite its later not-after.
        assert_eq!(chosen(&ix, Some("a.test"), 150).unwrap().1, "new");
        assert_eq!(chosen(&ix, Some("a.test"), 260).unwrap().1, "future");
    }

    /// Upsert replaces a name's hostnames; remove unfiles it everywhere; a clone taken
    /// before a change keeps serving the old generation.
    #[test]
    fn updates_are_incremental_and_clones_are_snapshots() {
        let k = key();
        let mut ix = CertIndex::default();
        ix.upsert(&hosts(&["a.test", "*.w.test"]), served("x", 100, &k));
        let before = ix.clone();
        ix.upsert(&hosts(&["b.test"]), served("x", 100, &k));
        assert!(ix.select(Some("a.test"), 0).is_none());
        assert!(ix.select(Some("q.w.test"), 0).is_none());
        assert_eq!(chosen(&ix, Some("b.test"), 0).unwrap().1, "x");
        assert_eq!(chosen(&before, Some("a.test"), 0).unwrap().1, "x");
        ix.remove("x");
        assert!(ix.is_empty());
        assert!(ix.select(Some("b.test"), 0).is_none());
        assert!(ix.generation > before.generation);
    }
}
