//! What the tests do to a cluster while faults happen: register operations through the
//! admin API (recorded for the checker), and TLS handshakes on the serve ports (counted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checker::{Call, Outcome};
use crate::client::{Admin, Prober, Reply, SendError};
use crate::fixtures;
use crate::history::{History, Rng};

/// Bundle id → version, per register, learned with dry-run imports.
pub type Versions = HashMap<String, u32>;

/// Asks node `base` what id each fixture version would get (dry run: nothing changes).
pub async fn learn_versions(admin: &Admin, base: &str) -> Versions {
    let mut ids = Versions::new();
    for k in 0..fixtures::KEYS {
        for v in 0..fixtures::VERSIONS {
            let mut body = fixtures::import_body(k, v);
            body["dry_run"] = true.into();
            let r = admin
                .post(base, "/api/v1/certs", &body)
                .await
                .unwrap_or_else(|e| panic!("dry-run import: {e}"));
            assert_eq!(r.status, 200, "dry-run import of reg-{k} v{v}: {r}");
            let id = r.body["id"].as_str().expect("an id").to_string();
            assert!(
                ids.insert(id, v).is_none(),
                "two fixtures with one bundle id"
            );
        }
    }
    ids
}

/// Sends one register operation to `base` and records it.
pub async fn operate(
    admin: &Admin,
    base: &str,
    history: &History,
    versions: &Versions,
    client: usize,
    k: usize,
    call: Call,
) -> Result<Outcome, String> {
    let key = fixtures::name(k);
    let h = history.invoke(client, &key, call);
    let sent = match call {
        Call::Import(v) => {
            admin
                .post(base, "/api/v1/certs", &fixtures::import_body(k, v))
                .await
        }
        Call::Remove => {
            admin
                .delete(base, &format!("/api/v1/certs/{key}?force=true"))
                .await
        }
        Call::Read => admin.get(base, &format!("/api/v1/certs/{key}")).await,
    };
    let reply = match sent {
        Ok(r) => r,
        Err(SendError::NotSent(_)) => {
            history.discard(h);
            return Err("not sent".into());
        }
        Err(SendError::NoAnswer(e)) => {
            history.complete(h, Outcome::Unknown);
            return Err(e);
        }
    };
    let outcome = interpret(call, &reply, versions);
    history.complete(h, outcome);
    match outcome {
        Outcome::Unknown => Err(reply.to_string()),
        o => Ok(o),
    }
}

/// The model outcome an answer means; `Unknown` for anything that does not tell.
fn interpret(call: Call, r: &Reply, versions: &Versions) -> Outcome {
    match (call, r.status) {
        (Call::Import(_), 200 | 201) => match r.body["outcome"].as_str() {
            Some("imported") => Outcome::Created,
            Some("already_present") => Outcome::Unchanged,
            _ => Outcome::Unknown,
        },
        (Call::Import(_), 409) if r.code() == "name_taken" => Outcome::Taken,
        (Call::Remove, 200) => Outcome::Removed,
        (Call::Remove, 404) => Outcome::NotFound,
        (Call::Read, 200) => {
            let id = r.body["id"].as_str().unwrap_or("");
            match versions.get(id) {
                Some(&v) => Outcome::Holds(v),
                None => Outcome::Unknown,
            }
        }
        (Call::Read, 404) => Outcome::Absent,
        _ => Outcome::Unknown,
    }
}

/// Counts of what the clients saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub unknown: AtomicU64,
    pub not_sent: AtomicU64,
}

/// What every register client shares.
#[derive(Clone)]
pub struct Shared {
    pub admin: Admin,
    /// The admin URLs to spread requests over (a node that is down just refuses).
    pub bases: Vec<String>,
    pub history: Arc<History>,
    pub versions: Arc<Versions>,
    pub stop: Arc<AtomicBool>,
    pub tally: Arc<Tally>,
}

/// `clients` tasks doing random register operations on random nodes until `stop`.
pub fn spawn_clients(
    shared: Shared,
    clients: usize,
    seed: u64,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|c| {
            let s = shared.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ (c as u64).wrapping_mul(0x9E37_79B9));
                while !s.stop.load(Ordering::Relaxed) {
                    let k = rng.below(PROBE_KEY as u64) as usize;
                    let call = match rng.below(10) {
                        0..=3 => Call::Import(rng.below(u64::from(fixtures::VERSIONS)) as u32),
                        4..=5 => Call::Remove,
                        _ => Call::Read,
                    };
                    let base = &s.bases[rng.below(s.bases.len() as u64) as usize];
                    match operate(&s.admin, base, &s.history, &s.versions, c, k, call).await {
                        Ok(_) => s.tally.ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) if e == "not sent" => {
                            s.tally.not_sent.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        Err(_) => s.tally.unknown.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect()
}

/// Handshake results on one serve port.
#[derive(Debug, Default)]
pub struct Handshakes {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
    /// While false, failures are expected (the node is down) and not counted.
    pub counting: AtomicBool,
}

/// A loop of full handshakes with register SNIs against `addr` until `stop`; failures are
/// counted while `counting` is set.
pub fn spawn_handshakes(
    addr: String,
    stats: Arc<Handshakes>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let prober = Prober::default();
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let sni = fixtures::host(i % fixtures::KEYS);
            i += 1;
            let counting = stats.counting.load(Ordering::Acquire);
            match prober.leaf(&addr, &sni, Duration::from_secs(5)).await {
                Ok(_) => {
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if counting && stats.counting.load(Ordering::Acquire) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// The register the write probe uses; the random clients leave it alone.
pub const PROBE_KEY: usize = fixtures::KEYS - 1;

/// Commits one write to [`PROBE_KEY`] through any of `bases` (an import when it is absent, a
/// removal when present), retrying until one is acknowledged; the time from `since`.
pub async fn until_write_acknowledged(
    admin: &Admin,
    bases: &[String],
    history: &History,
    versions: &Versions,
    since: Instant,
    limit: Duration,
) -> Result<Duration, String> {
    let mut rng = Rng::new(since.elapsed().as_nanos() as u64 | 1);
    let mut last = String::new();
    let mut call = Call::Import(0);
    while since.elapsed() < limit {
        let base = &bases[rng.below(bases.len() as u64) as usize];
        match operate(admin, base, history, versions, usize::MAX, PROBE_KEY, call).await {
            Ok(Outcome::Created | Outcome::Removed) => return Ok(since.elapsed()),
            Ok(Outcome::Taken | Outcome::Unchanged) => call = Call::Remove,
            Ok(_) => call = Call::Import(rng.below(u64::from(fixtures::VERSIONS)) as u32),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!(
        "no write acknowledged within {limit:?}; last: {last}"
    ))
}
