//! ACME (issue 15) against a local pebble (Debian's `pebble`, validation delay off, its
//! default 5% `badNonce` rejection on), on a 3-node loopback cluster whose HTTP-01 answers
//! pebble fetches from a follower:
//! 1. the time from `cert issue` (`POST /api/v1/issue` on the leader) until the CA's
//!    certificate is served on every node, one certificate at a time;
//! 2. `COUNT` certificates falling due together: each is asked with the `--renew-at` share
//!    that puts its renewal point at one common moment (pebble gives them all the same
//!    lifetime; the 2% jitter spreads them over a few seconds). Measured until every one is
//!    served renewed: orders per name (pebble's count), the CA requests per certificate
//!    (`certraft_acme_requests_total` over the cluster), and the leader's serve-port
//!    handshake rate against the same load at rest.
//!
//! Run: `cargo bench -p certraft-node --bench acme`. `SAMPLES` (default 15) sets phase 1's
//! count, `COUNT` (default 1000) phase 2's, `PHASE_SECS` (default 8) the at-rest phase,
//! `DUE_AFTER_SECS` (default 300) how long after the first request they fall due.

// A measuring tool, like a test: it stops on anything unexpected.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use certraft_cluster_tests::pebble::{Pebble, PebbleOptions};
use serde_json::json;
use support::*;

fn main() {
    block_on(run());
}

async fn run() {
    let samples: usize = env_or("SAMPLES", 15);
    let count: usize = env_or("COUNT", 1000);
    let secs: u64 = env_or("PHASE_SECS", 8);
    let due_after: i64 = env_or("DUE_AFTER_SECS", 300);
    let bin = node_bin();
    // The nodes inherit this: the duty's default unless set.
    let in_flight: String = env_or("CERTRAFT_ACME_ORDERS_IN_FLIGHT", "the default".to_string());
    println!("acme bench: {bin}, 3 nodes, pebble validating against node 2's --http port, {in_flight} orders in flight");
    let c = Cluster::start(3, None).await;
    // Pebble gives every certificate twice the time until they fall due: each one's
    // `--renew-at` can then put its renewal point at the common moment.
    let validity = 2 * due_after;
    let Some(ca) = Pebble::start(PebbleOptions {
        http_port: c.nodes[1].http,
        certificate_validity: Some(Duration::from_secs(validity as u64)),
        // Every order gets fresh authorizations, as at a public CA for names not validated
        // recently (pebble reuses half of them by default).
        extra_env: vec![("PEBBLE_AUTHZREUSE".into(), "0".into())],
        ..Default::default()
    })
    .await
    else {
        panic!("the ACME bench needs Debian's pebble (apt-get install pebble)");
    };
    let leader = c.leader_url().await;
    c.post(
        &format!("{leader}/api/v1/issuers/acme"),
        &json!({"name": "pebble", "directory": ca.directory_url(), "email": "ops@example.com", "ca_pem": ca.ca_pem()}),
    )
    .await;
    // The certificate the handshake loop asks for: imported, the default.
    let pki = Pki::generate(1, "acme.bench");
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    c.post(
        &format!("{leader}/api/v1/certs"),
        &json!({"make_default": true, "files": [
            {"name": "leaf.pem", "data": b64(pem_of("CERTIFICATE", &pki.leaves[0].der))},
            {"name": "key.pem", "data": b64(pem_of("PRIVATE KEY", &pki.leaves[0].key_pkcs8))},
            {"name": "chain.pem", "data": b64(pem_of("CERTIFICATE", &pki.intermediate_der))},
        ]}),
    )
    .await;
    let loop_target = (pki.leaves[0].name.clone(), pki.leaves[0].der.clone());

    issue_to_served(&c, &leader, &ca, samples).await;
    falling_due(
        &c,
        &leader,
        &ca,
        count,
        secs,
        due_after,
        validity,
        &loop_target,
    )
    .await;
}

/// Whether `der` was issued by pebble (its intermediates are "Pebble Intermediate CA …").
fn from_pebble(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, c)| c.issuer().to_string().contains("Pebble"))
}

/// The CA requests every node sent so far.
async fn acme_requests(c: &Cluster) -> u64 {
    let mut total = 0;
    for n in &c.nodes {
        total += metrics(c, &n.url())
            .await
            .lines()
            .find_map(|l| l.strip_prefix("certraft_acme_requests_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// Phase 1: `cert issue` → served on every node, one at a time.
async fn issue_to_served(c: &Cluster, leader: &str, ca: &Pebble, samples: usize) {
    println!();
    println!("## `cert issue` to served on all 3 nodes (one at a time)");
    println!();
    let (orders0, issued0, requests0) =
        (ca.orders_count(), ca.issued_count(), acme_requests(c).await);
    let mut took = Vec::new();
    for i in 0..samples {
        let host = format!("lat-{i}.acme.bench");
        let t = Instant::now();
        c.post(
            &format!("{leader}/api/v1/issue"),
            &json!({"name": format!("lat-{i}"), "sans": [host], "issuer": "pebble"}),
        )
        .await;
        for n in &c.nodes {
            let port = n.serve;
            wait_for(
                &format!("{host} served by pebble on node {}", n.id),
                Duration::from_secs(120),
                || {
                    let host = host.clone();
                    async move {
                        served_leaf(port, &host)
                            .await
                            .is_ok_and(|der| from_pebble(&der))
                    }
                },
            )
            .await;
        }
        took.push(t.elapsed());
    }
    let requests = acme_requests(c).await - requests0;
    took.sort();
    println!(
        "| certificates | median | p90 | max | orders | issued | CA requests per certificate |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {samples} | {} | {} | {} | {} | {} | {:.1} |",
        ms(pct(&took, 0.5)),
        ms(pct(&took, 0.9)),
        ms(*took.last().unwrap()),
        ca.orders_count() - orders0,
        ca.issued_count() - issued0,
        requests as f64 / samples as f64
    );
}

/// `GET url/metrics`.
async fn metrics(c: &Cluster, url: &str) -> String {
    c.client
        .get(format!("{url}/metrics"))
        .header("authorization", &c.auth)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// When every `m-*` certificate is next due (Unix seconds, the leader's
/// `certraft_renewal_next_attempt_seconds`): a renewed one is due a lifetime's share later.
async fn next_due(c: &Cluster, leader: &str) -> HashMap<String, i64> {
    metrics(c, leader)
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("certraft_renewal_next_attempt_seconds{name=\""))
        .filter(|l| l.starts_with("m-"))
        .filter_map(|l| {
            let (name, v) = l.split_once("\"} ")?;
            Some((name.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Phase 2: `count` certificates falling due together.
#[allow(clippy::too_many_arguments)]
async fn falling_due(
    c: &Cluster,
    leader: &str,
    ca: &Pebble,
    count: usize,
    secs: u64,
    due_after: i64,
    validity: i64,
    (sni, want): &(String, Vec<u8>),
) {
    println!();
    println!("## {count} certificates falling due together");
    println!();
    let due = unix_now() + due_after;
    let serve = c.nodes[0].serve; // the first node bootstrapped: the leader
    let t = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..count {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (client, auth, url) = (
            c.client.clone(),
            c.auth.clone(),
            format!("{leader}/api/v1/issue"),
        );
        asks.spawn(async move {
            let _permit = permit;
            let permille = ((due - unix_now()) * 1000 / validity).clamp(100, 950);
            let r = client
                .post(&url)
                .header("authorization", &auth)
                .json(&json!({"name": format!("m-{i}"), "sans": [format!("m-{i}.acme.bench")], "issuer": "pebble", "renew_at_permille": permille}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "issue m-{i}: {}", r.status());
        });
    }
    while asks.join_next().await.is_some() {}
    let asked = t.elapsed();
    // Issued once every one is served: its state `issued` on the leader.
    let first_issued = loop {
        let m = metrics(c, leader).await;
        let issued = m
            .lines()
            .filter(|l| {
                l.starts_with("certraft_acme_state{name=\"m-") && l.contains("state=\"issued\"")
            })
            .count();
        if issued >= count {
            break next_due(c, leader).await;
        }
        let left = issued;
        assert!(
            unix_now() < due - secs as i64 - 10,
            "only {left} of {count} issued {:.0} s in: too close to the renewal moment; raise DUE_AFTER_SECS",
            t.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "asked for {count} in {:.1} s; all {count} issued and served {:.1} s after the first request ({:.1}/s); due at +{due_after} s",
        asked.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        count as f64 / t.elapsed().as_secs_f64()
    );
    // At rest, before they fall due.
    let rest = HandshakeLoop::start(serve, sni, want, 16);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (rest_rate, rest_failed) = rest.stop().await;
    let lead = (due - unix_now() - validity * 2 / 100 - 2).max(0);
    tokio::time::sleep(Duration::from_secs(lead as u64)).await;
    let (orders0, issued0, requests0) =
        (ca.orders_count(), ca.issued_count(), acme_requests(c).await);
    let during = HandshakeLoop::start(serve, sni, want, 16);
    let started = Instant::now();
    let mut first: Option<Duration> = None;
    let mut last_print = Instant::now();
    loop {
        let now = next_due(c, leader).await;
        let renewed = now
            .iter()
            .filter(|(name, at)| **at > first_issued[*name] + validity / 4)
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
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {renewed} of {count} renewed after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all = started.elapsed();
    let (rate, failed) = during.stop().await;
    let requests = acme_requests(c).await - requests0;
    let first = first.unwrap_or_default();
    let (orders, issued) = (ca.orders_count() - orders0, ca.issued_count() - issued0);
    println!(
        "{count} renewed: the first {:.1} s into the window, all {:.1} s in ({:.1} renewals/s from the first)",
        first.as_secs_f64(),
        all.as_secs_f64(),
        count as f64 / (all - first).as_secs_f64().max(0.001)
    );
    println!();
    println!("| phase | handshakes/s | vs at rest | failed handshakes |");
    println!("|---|---|---|---|");
    println!("| at rest ({secs} s) | {rest_rate:.0} | 1.00 | {rest_failed} |");
    println!(
        "| {count} renewals | {rate:.0} | {:.2} | {failed} |",
        rate / rest_rate
    );
    println!();
    println!("| renewals | orders | orders per name | issued | CA requests | per certificate |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {count} | {orders} | {:.3} | {issued} | {requests} | {:.1} |",
        orders as f64 / count as f64,
        requests as f64 / count as f64
    );
}
