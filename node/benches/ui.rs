//! Web console benchmark (issue 16): the overview and certificates pages with a small and a
//! large inventory, side by side in one run. A single `certraft-node` (pinned to CPU 0 when
//! `taskset` is there) holds `UI_SIZES` (default 100 and 10,000) ECDSA P-256 bundles, leaf
//! `i` expiring `1 + i % 365` days from now (so about 8% fall within the overview's 30
//! days); a signed-in client on CPU 1 asks each page `UI_REQUESTS` (default 200) times over
//! one kept-alive connection and reports the time to the last byte (p50, p99: on loopback,
//! the server's time plus a few tens of microseconds) and the page's weight. The pages are
//! paged on the server, so the large inventory should cost at most what filtering and
//! sorting its index costs, and weigh the same.
//!
//! Run: `cargo bench -p certraft-node --bench ui`.

// A measuring tool, like a test: it stops on anything unexpected.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;

/// The pages measured: what an operator opens most.
const PAGES: &[(&str, &str)] = &[
    ("overview", "/ui"),
    ("certificates, first page", "/ui/certs"),
    ("certificates by expiry", "/ui/certs?sort=expiry"),
    ("certificates filtered", "/ui/certs?q=h99"),
    ("certificates, page 20", "/ui/certs?page=20"),
    ("audit", "/ui/audit"),
];

struct Row {
    size: usize,
    page: &'static str,
    p50: Duration,
    p99: Duration,
    bytes: usize,
}

fn main() {
    let pinned = pin_to_cpu1();
    block_on(run(pinned));
}

async fn run(pinned: bool) {
    let sizes: Vec<usize> = std::env::var("UI_SIZES")
        .unwrap_or_else(|_| "100,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let requests: usize = env_or("UI_REQUESTS", 200);
    let mut rows = Vec::new();
    for &n in &sizes {
        println!("{n} certificates: generating and restoring…");
        let pki = Pki::generate_expiring(n, "ui.bench", |i| Some(1 + (i % 365) as i64));
        let cluster = Cluster::start(1, pinned.then_some("0")).await;
        let took = cluster.restore(&pki, 0..n).await;
        println!("  restored in {:.1} s", took.as_secs_f64());
        let http = client_with(&cluster.ca_pem, reqwest::redirect::Policy::none());
        let base = cluster.nodes[0].url();
        let cookie = sign_in(&http, &base, &cluster.auth).await;
        for &(page, path) in PAGES {
            let url = format!("{base}{path}");
            // Warm-up: the first request pays for the connection.
            let bytes = fetch(&http, &url, &cookie).await;
            let mut times = Vec::with_capacity(requests);
            for _ in 0..requests {
                let t0 = Instant::now();
                let b = fetch(&http, &url, &cookie).await;
                times.push(t0.elapsed());
                assert_eq!(b, bytes, "{path}: the page changed size");
            }
            times.sort();
            let row = Row {
                size: n,
                page,
                p50: times[times.len() / 2],
                p99: times[(times.len() * 99 / 100).min(times.len() - 1)],
                bytes,
            };
            println!(
                "  {:<28} p50 {:>7.2} ms  p99 {:>7.2} ms  {:>7} bytes",
                row.page,
                ms(row.p50),
                ms(row.p99),
                row.bytes
            );
            rows.push(row);
        }
    }
    if let (Some(&small), Some(&large)) = (sizes.first(), sizes.last()) {
        if small != large {
            println!("\nratio {large} / {small} certificates (p50 time, page weight):");
            for &(page, _) in PAGES {
                let get = |n| rows.iter().find(|r| r.size == n && r.page == page).unwrap();
                let (a, b) = (get(small), get(large));
                println!(
                    "  {:<28} time x{:.2}  weight x{:.2}",
                    page,
                    ms(b.p50) / ms(a.p50),
                    b.bytes as f64 / a.bytes as f64
                );
            }
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Signs in with the admin token (the form a browser posts); answers the session cookie.
async fn sign_in(http: &reqwest::Client, base: &str, auth: &str) -> String {
    let token = auth.trim_start_matches("Bearer ").to_string();
    let r = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER, "sign in");
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// GETs a page to its last byte; answers its size.
async fn fetch(http: &reqwest::Client, url: &str, cookie: &str) -> usize {
    let r = http
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), reqwest::StatusCode::OK, "{url}");
    r.bytes().await.expect("body").len()
}
