//! Keys born in the cluster (issue 14), measured on one node pinned to CPU 0 with the load
//! on the other core:
//! 1. key generation + CSR latency per key type, end to end (`POST /api/v1/csrs`: the key
//!    made on the leader, sealed, committed through Raft);
//! 2. the serve port's handshake rate at rest and during a burst of 100 RSA-4096 issues
//!    (`POST /api/v1/issue`, 4 at a time, a 503 "busy" retried): RSA-4096 generation takes about a second of CPU
//!    each and must not starve the serve port or the Raft core;
//! 3. 10,000 cluster-issued certificates falling due together (each issued with the
//!    lifetime that puts its renewal point at one common moment; the 2% jitter spreads
//!    them over a few seconds): time until every one is renewed by the leader's duty, with
//!    the handshake rate and the latency of an operator's import measured meanwhile, and
//!    both at rest for comparison.
//!
//! Run: `cargo bench -p certraft-node --bench issuing`. `COUNT` (default 10000) sets how
//! many certificates fall due; `PHASE_SECS` (default 8) the at-rest phases;
//! `DUE_AFTER_SECS` (default 240) how long after the start they fall due (raise it if
//! issuing them takes longer here).

// A measuring tool, like a test: it stops on anything unexpected.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use support::*;

fn main() {
    block_on(run());
}

async fn run() {
    let secs: u64 = env_or("PHASE_SECS", 8);
    let count: usize = env_or("COUNT", 10_000);
    let due_after: u64 = env_or("DUE_AFTER_SECS", 240);
    let bin = node_bin();
    println!("issuing bench: {bin}, node pinned to CPU 0, {count} certificates falling due");
    let pki = Pki::generate(2, "issuing.test");
    let c = Cluster::start_with(1, Some("0"), &bin).await;
    let url = c.nodes[0].url();
    let serve = c.nodes[0].serve;
    // The certificate the handshake loops ask for (by SNI), imported, as the default.
    let mut body = bundle_body(&pki, 0);
    body["make_default"] = json!(true);
    c.post(&format!("{url}/api/v1/certs"), &body).await;
    let want = pki.leaves[0].der.clone();
    let sni = pki.leaves[0].name.clone();

    keygen_latency(&c, &url).await;
    rsa_burst(&c, &url, serve, &sni, &want, secs).await;
    mass_renewal(&c, &url, serve, &sni, &want, &pki, secs, count, due_after).await;
}

/// An import body for leaf `i` of `pki` (leaf, key, intermediate).
fn bundle_body(pki: &Pki, i: usize) -> Value {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    json!({"files": [
        {"name": "leaf.pem", "data": b64(pem_of("CERTIFICATE", &pki.leaves[i].der))},
        {"name": "key.pem", "data": b64(pem_of("PRIVATE KEY", &pki.leaves[i].key_pkcs8))},
        {"name": "chain.pem", "data": b64(pem_of("CERTIFICATE", &pki.intermediate_der))},
    ]})
}

/// `POST /api/v1/csrs` per key type, one at a time; each removed again.
async fn keygen_latency(c: &Cluster, url: &str) {
    println!();
    println!("## key generation + CSR, end to end (one at a time)");
    println!();
    println!("| key type | samples | median | p90 | max |");
    println!("|---|---|---|---|---|");
    let types = [
        ("ec-p256", 21),
        ("ec-p384", 21),
        ("ed25519", 21),
        ("rsa-2048", 15),
        ("rsa-3072", 9),
        ("rsa-4096", 9),
    ];
    for (key, n) in types {
        let mut took = Vec::new();
        for i in 0..n {
            let name = format!("lat-{key}-{i}");
            let t = Instant::now();
            c.post(
                &format!("{url}/api/v1/csrs"),
                &json!({"name": name, "common_name": "lat.issuing.test", "sans": ["lat.issuing.test"], "key": key}),
            )
            .await;
            took.push(t.elapsed());
            c.client
                .delete(format!("{url}/api/v1/csrs/{name}"))
                .header("authorization", &c.auth)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        }
        took.sort();
        println!(
            "| {key} | {n} | {} | {} | {} |",
            ms(pct(&took, 0.5)),
            ms(pct(&took, 0.9)),
            ms(*took.last().unwrap())
        );
    }
}

/// The handshake rate at rest, then during 100 RSA-4096 issues sent 8 at a time.
async fn rsa_burst(c: &Cluster, url: &str, serve: u16, sni: &str, want: &[u8], secs: u64) {
    println!();
    println!("## 100 RSA-4096 issues against the serve port's handshake rate");
    println!();
    let rest = HandshakeLoop::start(serve, sni, want, 16);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (rest_rate, rest_failed) = rest.stop().await;
    let during = HandshakeLoop::start(serve, sni, want, 16);
    let t = Instant::now();
    let took = fan_out(c, url, 100, 4, |i| {
        json!({"name": format!("rsa-{i}"), "sans": [format!("rsa-{i}.issuing.test")], "key": "rsa-4096"})
    })
    .await;
    let burst = t.elapsed();
    let (rate, failed) = during.stop().await;
    println!("| phase | handshakes/s | vs at rest | failed handshakes | issue latency p50 | p90 |");
    println!("|---|---|---|---|---|---|");
    println!("| at rest ({secs} s) | {rest_rate:.0} | 1.00 | {rest_failed} | | |");
    println!(
        "| 100 RSA-4096 issues ({:.1} s, {:.2}/s) | {rate:.0} | {:.2} | {failed} | {} | {} |",
        burst.as_secs_f64(),
        100.0 / burst.as_secs_f64(),
        rate / rest_rate,
        ms(pct(&took, 0.5)),
        ms(pct(&took, 0.9)),
    );
}

/// `POST /api/v1/issue` `total` times, `concurrency` at a time, with `body(i)`: each
/// answer's latency, sorted.
async fn fan_out(
    c: &Cluster,
    url: &str,
    total: usize,
    concurrency: usize,
    body: impl Fn(usize) -> Value + Send + Sync + 'static,
) -> Vec<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(body);
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let (client, auth, url, next, body, busy) = (
            c.client.clone(),
            c.auth.clone(),
            format!("{url}/api/v1/issue"),
            next.clone(),
            body.clone(),
            busy.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut took = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return took;
                }
                let t = Instant::now();
                // 503 "busy" is the node's backpressure: retried, as a script would.
                loop {
                    let r = client
                        .post(&url)
                        .header("authorization", &auth)
                        .timeout(Duration::from_secs(300))
                        .json(&body(i))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    if status == 503 {
                        busy.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    assert!(
                        status.is_success(),
                        "{status}: {}",
                        r.text().await.unwrap_or_default()
                    );
                    break;
                }
                took.push(t.elapsed());
            }
        }));
    }
    let mut took = Vec::new();
    for s in senders {
        took.extend(s.await.unwrap());
    }
    took.sort();
    let busy = busy.load(Ordering::Relaxed);
    if busy > 0 {
        println!("  ({busy} answers 503 busy, retried after 1 s)");
    }
    took
}

/// The lifetime that puts the renewal point (two thirds, after the issuer's backdating of
/// min(60 s, lifetime/20)) of a certificate issued now at `due`.
fn lifetime_due_at(now: i64, due: i64) -> i64 {
    let mut life = 60;
    while life < 400 * 86_400 {
        let back = 60.min(life / 20);
        if now - back + (life + back) * 2 / 3 >= due {
            return life;
        }
        life += 1;
    }
    life
}

#[allow(clippy::too_many_arguments)]
async fn mass_renewal(
    c: &Cluster,
    url: &str,
    serve: u16,
    sni: &str,
    want: &[u8],
    pki: &Pki,
    secs: u64,
    count: usize,
    due_after: u64,
) {
    println!();
    println!("## {count} certificates falling due together");
    println!();
    let due = unix_now() + due_after as i64;
    let t = Instant::now();
    fan_out(c, url, count, 16, move |i| {
        json!({"name": format!("m-{i}"), "sans": [format!("m-{i}.issuing.test")], "lifetime_secs": lifetime_due_at(unix_now(), due)})
    })
    .await;
    println!(
        "issued {count} (EC P-256, 16 at a time) in {:.1} s ({:.0}/s); due at +{due_after} s",
        t.elapsed().as_secs_f64(),
        count as f64 / t.elapsed().as_secs_f64()
    );
    let margin = due - unix_now();
    assert!(
        margin > secs as i64 + 15,
        "issuing took too long: only {margin} s left before they fall due; raise DUE_AFTER_SECS"
    );
    // At rest: handshakes and imports, well before the renewals.
    let rest = HandshakeLoop::start(serve, sni, want, 16);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rest_imports = tokio::spawn(import_loop(c, url, pki, "rest", stop.clone()));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut rest_imports = rest_imports.await.unwrap();
    let (rest_rate, rest_failed) = rest.stop().await;
    // Wait for the moment (minus the jitter's 2%), then measure until all are renewed.
    let lead = (due - unix_now() - (due_after as i64 * 3 / 100) - 2).max(0);
    tokio::time::sleep(Duration::from_secs(lead as u64)).await;
    let during = HandshakeLoop::start(serve, sni, want, 16);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let importer = tokio::spawn(import_loop(c, url, pki, "during", stop.clone()));
    let started = Instant::now();
    let mut first: Option<Duration> = None;
    let mut last_print = Instant::now();
    let renewed = loop {
        let m = c
            .client
            .get(format!("{url}/metrics"))
            .header("authorization", &c.auth)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let renewed = m
            .lines()
            .filter(|l| {
                l.starts_with("certraft_renewal_last_attempt_seconds{name=\"m-")
                    && !l.ends_with(" 0")
            })
            .count();
        if renewed > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!(
                "  {:.0} s: {renewed} of {count} renewed",
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        if renewed >= count {
            break renewed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {renewed} of {count} renewed after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let all = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut during_imports = importer.await.unwrap();
    let (rate, failed) = during.stop().await;
    let first = first.unwrap_or_default();
    println!(
        "{renewed} renewed: the first {:.1} s into the window, all {:.1} s in ({:.1} s from the first; {:.0} renewals/s)",
        first.as_secs_f64(),
        all.as_secs_f64(),
        (all - first).as_secs_f64(),
        count as f64 / (all - first).as_secs_f64().max(0.001)
    );
    println!();
    println!("| phase | handshakes/s | vs at rest | failed handshakes | import ack p50 | p99 | max | imports failed |");
    println!("|---|---|---|---|---|---|---|---|");
    let row = |name: &str, rate: f64, failed: u64, imports: &mut Vec<(Duration, bool)>| {
        let bad = imports.iter().filter(|(_, ok)| !ok).count();
        let mut d: Vec<Duration> = imports.iter().map(|(d, _)| *d).collect();
        d.sort();
        println!(
            "| {name} | {rate:.0} | {:.2} | {failed} | {} | {} | {} | {bad} of {} |",
            rate / rest_rate,
            ms(pct(&d, 0.5)),
            ms(pct(&d, 0.99)),
            ms(*d.last().unwrap()),
            d.len()
        );
    };
    row("at rest", rest_rate, rest_failed, &mut rest_imports);
    row(
        &format!("{count} renewals"),
        rate,
        failed,
        &mut during_imports,
    );
}

/// Imports leaf 1 under fresh names `{tag}-N`, one every 100 ms, until `stop`:
/// (ack latency, ok) per import.
fn import_loop(
    c: &Cluster,
    url: &str,
    pki: &Pki,
    tag: &'static str,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> impl std::future::Future<Output = Vec<(Duration, bool)>> + Send + 'static {
    let (client, auth, url, body) = (
        c.client.clone(),
        c.auth.clone(),
        format!("{url}/api/v1/certs"),
        bundle_body(pki, 1),
    );
    async move {
        let mut took = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut b = body.clone();
            b["name"] = json!(format!("{tag}-{i}"));
            i += 1;
            let t = Instant::now();
            let ok = client
                .post(&url)
                .header("authorization", &auth)
                .timeout(Duration::from_secs(60))
                .json(&b)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            took.push((t.elapsed(), ok));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        took
    }
}
