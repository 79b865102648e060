//! ACME (issue 15) against a real CA: Debian's `pebble`, with `pebble-challtestsrv` as its
//! DNS, started per test ([`certraft_cluster_tests::pebble`]). Pebble's validation
//! authority connects to 127.0.0.1 on the one port it is configured with, so which node
//! answers a challenge is chosen by port: its HTTP-01 port is a follower's (or a traffic
//! node's) `--http` port, its TLS-ALPN-01 port a node's serve port — never the leader's.
//! Pebble's default 5% `badNonce` rejection stays on.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use base64::Engine;
use certraft_cluster_tests::ari::AriFront;
use certraft_cluster_tests::pebble::{Pebble, PebbleOptions};

use crate::support::cluster::{Cluster, Options, PATIENCE};
use crate::support::probe::{any_leaf_client, handshake};

/// Long enough for an order to be validated and issued on a loaded CI machine.
const ACME_PATIENCE: Duration = Duration::from_secs(120);

fn fast() -> Options {
    Options::default()
        .env("CERTRAFT_ISSUING_TICK_MS", "200")
        .env("CERTRAFT_TEST_ACME_BACKOFF_SECS", "2")
}

/// One node (fast ticks and backoffs) and a pebble that validates HTTP-01 at its `--http`
/// port; `None` when pebble is missing (outside CI).
async fn one_node_and_pebble() -> Option<(Cluster, Pebble)> {
    let c = Cluster::start(1, fast()).await;
    let ca = Pebble::start(PebbleOptions {
        http_port: c.nodes[0].http,
        ..Default::default()
    })
    .await?;
    Some((c, ca))
}

/// Adds ACME issuer `name` for `pebble` through node `i`.
async fn add_issuer(c: &Cluster, i: usize, name: &str, pebble: &Pebble) -> Value {
    c.api(i)
        .post(
            "/api/v1/issuers/acme",
            &json!({
                "name": name,
                "directory": pebble.directory_url(),
                "email": "ops@example.com",
                "ca_pem": pebble.ca_pem(),
            }),
        )
        .await
        .ok(&format!("add acme issuer {name}"))
}

/// Asks for `name` (`host`) from ACME issuer `issuer` by `challenge`.
async fn issue(
    c: &Cluster,
    i: usize,
    name: &str,
    host: &str,
    issuer: &str,
    challenge: &str,
) -> Value {
    c.api(i)
        .post(
            "/api/v1/issue",
            &json!({"name": name, "sans": [host], "issuer": issuer, "challenge": challenge}),
        )
        .await
        .ok(&format!("issue {name} from {issuer}"))
}

/// Waits until the serve port `port` presents a certificate for `host` that is not `not`
/// (the fallback, or the one before a renewal); returns its DER.
async fn served(
    c: &Cluster,
    port: u16,
    host: &str,
    not: Option<&[u8]>,
    patience: Duration,
) -> Vec<u8> {
    let client = any_leaf_client();
    c.wait_for(
        &format!("port {port} to serve a new certificate for {host}"),
        patience,
        || {
            let client = client.clone();
            async move {
                let leaf = handshake(&client, port, Some(host)).await?;
                let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
                    .map_err(|e| format!("leaf does not parse: {e}"))?;
                let names: Vec<String> = cert
                    .subject_alternative_name()
                    .ok()
                    .flatten()
                    .map(|s| {
                        s.value
                            .general_names
                            .iter()
                            .map(|n| n.to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                if !names.iter().any(|n| n.contains(host)) {
                    return Err(format!("serves a certificate for {names:?}"));
                }
                if not.is_some_and(|n| n == leaf.as_slice()) {
                    return Err("still the earlier certificate".into());
                }
                Ok(leaf)
            }
        },
    )
    .await
}

/// `openssl s_client` against `port` for `host`, verifying against `roots` (PEM).
async fn openssl_verifies(port: u16, host: &str, roots: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ca = dir.path().join("pebble-roots.pem");
    std::fs::write(&ca, roots).map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", host, "-verify_return_error", "-CAfile"])
        .arg(&ca)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("openssl: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains("Verify return code: 0 (ok)") {
        Ok(())
    } else {
        Err(format!(
            "openssl did not verify {host} on {port}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Issue with HTTP-01 and TLS-ALPN-01 while the CA validates against a follower and a
/// traffic node, never the leader (two CAs: each challenge type lands on each of them);
/// every node then serves each certificate and openssl verifies it against the CA's root.
/// The one with a one-minute lifetime is renewed at two thirds with no failed handshake in a
/// loop over every node.
#[tokio::test(flavor = "multi_thread")]
async fn acme_challenges_are_answered_by_a_follower_and_a_traffic_node_and_renewed_live() {
    let mut c = Cluster::start(3, fast()).await;
    let traffic = c.join_as(0, "learner").await;
    c.wait_ready(traffic).await;
    let leader = c.leader().await;
    let follower = c.other_than(leader);
    // CA one validates HTTP-01 at the follower and TLS-ALPN-01 at the traffic node; CA two
    // the other way round. Its certificates live a minute, to see a renewal.
    let Some(one) = Pebble::start(PebbleOptions {
        http_port: c.nodes[follower].http,
        tls_port: c.nodes[traffic].serve,
        certificate_validity: Some(Duration::from_secs(60)),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let Some(two) = Pebble::start(PebbleOptions {
        http_port: c.nodes[traffic].http,
        tls_port: c.nodes[follower].serve,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let added = add_issuer(&c, leader, "one", &one).await;
    assert!(
        added["account_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")),
        "{added}"
    );
    add_issuer(&c, follower, "two", &two).await;

    let wanted = [
        ("a", "a.acme.test", "one", "http-01"),
        ("b", "b.acme.test", "one", "tls-alpn-01"),
        ("c", "c.acme.test", "two", "http-01"),
        ("d", "d.acme.test", "two", "tls-alpn-01"),
    ];
    for (name, host, issuer, challenge) in wanted {
        let state = issue(&c, follower, name, host, issuer, challenge).await;
        assert_eq!(state["state"], "ordering", "{state}");
    }
    let serve_ports: Vec<u16> = c.nodes.iter().map(|n| n.serve).collect();
    let roots_one = one.roots_pem().await;
    let roots_two = two.roots_pem().await;
    let mut first_a = None;
    for (_, host, issuer, _) in wanted {
        for &port in &serve_ports {
            let leaf = served(&c, port, host, None, ACME_PATIENCE).await;
            if host.starts_with("a.") {
                assert_eq!(
                    first_a.get_or_insert(leaf.clone()),
                    &leaf,
                    "one certificate everywhere"
                );
            }
            let roots = if issuer == "one" {
                &roots_one
            } else {
                &roots_two
            };
            openssl_verifies(port, host, roots).await.expect("verified");
        }
    }
    assert_eq!(one.issued_count(), 2, "{}", one.log());
    assert_eq!(two.issued_count(), 2, "{}", two.log());
    let show = c.api(leader).get("/api/v1/acme/a").await.ok("acme state");
    assert_eq!(show["state"], "issued", "{show}");

    // Renewal of `a` (valid a minute) at two thirds, with handshakes looping over every node.
    let first_a = first_a.expect("served");
    let stop = CancellationToken::new();
    let load = tokio::spawn({
        let (stop, ports) = (stop.clone(), serve_ports.clone());
        async move {
            let client = any_leaf_client();
            let mut seen = Vec::new();
            for port in ports.iter().cycle() {
                if stop.is_cancelled() {
                    break;
                }
                seen.push((*port, handshake(&client, *port, Some("a.acme.test")).await));
            }
            seen
        }
    });
    for &port in &serve_ports {
        served(&c, port, "a.acme.test", Some(&first_a), ACME_PATIENCE).await;
    }
    stop.cancel();
    let seen = load.await.expect("handshake loop");
    let failed: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} handshakes failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(seen.len() > 30, "only {} handshakes", seen.len());
    let show = c.api(leader).get("/api/v1/certs/a").await.ok("show a");
    assert_eq!(show["renewal"]["renewals"], 1, "{show}");
    assert_eq!(show["renewal"]["issuer"], "one");
    c.assert_one_state().await;
}

/// The leader is killed right after it recorded a new order (before any validation): the
/// next leader carries that same order to the end. Pebble counts one order and one
/// certificate.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_killed_mid_order_is_followed_by_one_that_finishes_the_same_order() {
    let mut c = Cluster::start(3, fast().env("CERTRAFT_TEST_CRASH_AT", "acme-after-open@1")).await;
    let leader = c.leader().await;
    assert_eq!(c.nodes[leader].id, 1, "node 1 bootstrapped and leads");
    let follower = c.other_than(leader);
    let Some(ca) = Pebble::start(PebbleOptions {
        http_port: c.nodes[follower].http,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    // Once on, version-4 entries no longer wait for every member: the dead leader's
    // absence must not hold the next leader back.
    c.wait_for("request version 4 to be enabled", PATIENCE, || async {
        let s = c.api(follower).get("/api/v1/cluster").await.json();
        let on = s["features"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "request_version_4"));
        if on {
            Ok(())
        } else {
            Err(s["features"].to_string())
        }
    })
    .await;
    add_issuer(&c, follower, "ca", &ca).await;
    issue(&c, follower, "www", "www.acme.test", "ca", "http-01").await;
    c.expect_exit(leader);
    c.wait_for(
        "the leader to crash after opening the order",
        PATIENCE,
        || async {
            if c.has_exited(leader) {
                Ok(())
            } else {
                Err("still running".to_string())
            }
        },
    )
    .await;
    for i in c.running() {
        served(&c, c.nodes[i].serve, "www.acme.test", None, ACME_PATIENCE).await;
    }
    assert_eq!(ca.orders_count(), 1, "one order, resumed: {}", ca.log());
    assert_eq!(ca.issued_count(), 1, "{}", ca.log());
    let state = c.api(follower).get("/api/v1/acme/www").await.ok("state");
    assert_eq!(state["state"], "issued", "{state}");
    c.restart(leader).await;
    c.assert_one_state().await;
}

/// Every validation failing (the name points where no node answers): the local issuer's
/// certificate is served at once, attempts back off and are recorded; once the name points
/// at the cluster, the ACME certificate replaces the fallback.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_ca_is_covered_by_the_local_fallback_until_acme_succeeds() {
    let Some((c, ca)) = one_node_and_pebble().await else {
        return;
    };
    // Nothing listens on 127.0.0.2: every validation fails.
    ca.add_a("fb.acme.test", "127.0.0.2").await;
    add_issuer(&c, 0, "ca", &ca).await;
    let asked = c
        .api(0)
        .post(
            "/api/v1/issue",
            &json!({"name": "fb", "sans": ["fb.acme.test"], "issuer": "ca", "fallback": "local"}),
        )
        .await
        .ok("issue with fallback");
    assert_eq!(asked["fallback"], "local");
    let port = c.nodes[0].serve;
    let fallback = served(&c, port, "fb.acme.test", None, ACME_PATIENCE).await;
    let local = c.api(0).with_token(None).get("/api/v1/trust/issuers").await;
    let local = pem::parse(&local.text).expect("local issuer PEM");
    let (_, leaf) = x509_parser::parse_x509_certificate(&fallback).expect("leaf");
    let (_, issuer) = x509_parser::parse_x509_certificate(local.contents()).expect("issuer");
    leaf.verify_signature(Some(issuer.public_key()))
        .expect("the fallback comes from the local issuer");
    let state = c
        .wait_for("a second failed attempt", ACME_PATIENCE, || async {
            let s = c.api(0).get("/api/v1/acme/fb").await.json();
            if s["state"] == "fallback" && s["consecutive_failures"].as_u64() >= Some(2) {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        })
        .await;
    assert!(
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("fb.acme.test")),
        "{state}"
    );
    let metrics = c.api(0).get("/metrics").await.text;
    assert!(
        metrics.contains("certraft_acme_state{name=\"fb\",issuer=\"ca\",state=\"fallback\"} 1"),
        "{metrics}"
    );
    let show = c.api(0).get("/api/v1/certs/fb").await.ok("cert show");
    assert_eq!(show["renewal"]["acme"]["state"], "fallback", "{show}");
    let audit = c.api(0).get("/api/v1/audit").await.text;
    assert!(audit.contains("serve fb from the local issuer"), "{audit}");

    ca.clear_a("fb.acme.test").await;
    ca.add_a("fb.acme.test", "127.0.0.1").await;
    served(&c, port, "fb.acme.test", Some(&fallback), ACME_PATIENCE).await;
    openssl_verifies(port, "fb.acme.test", &ca.roots_pem().await)
        .await
        .expect("the ACME certificate took over");
    let state = c.api(0).get("/api/v1/acme/fb").await.ok("state");
    assert_eq!(state["state"], "issued", "{state}");
}

/// The CA down: the local fallback is served at once and attempts back off (each further
/// apart, never more often than the backoff); the CA comes back having lost everything (a
/// restarted pebble keeps no accounts and issues under a new root): the leader registers the
/// same account key again, records it, and the ACME certificate replaces the fallback.
#[tokio::test(flavor = "multi_thread")]
async fn a_ca_that_went_down_and_forgot_the_account_takes_over_from_the_fallback() {
    let Some((c, ca)) = one_node_and_pebble().await else {
        return;
    };
    add_issuer(&c, 0, "ca", &ca).await;
    let first = c.api(0).get("/api/v1/issuers/ca").await.ok("issuer show");
    ca.stop().await;
    c.api(0)
        .post(
            "/api/v1/issue",
            &json!({"name": "down", "sans": ["down.acme.test"], "issuer": "ca", "fallback": "local"}),
        )
        .await
        .ok("issue with fallback");
    let port = c.nodes[0].serve;
    let fallback = served(&c, port, "down.acme.test", None, ACME_PATIENCE).await;
    // (failures so far, next attempt) as the state goes.
    let attempts = std::sync::Mutex::new(Vec::<(u64, i64)>::new());
    let state = c
        .wait_for("three failed attempts", ACME_PATIENCE, || async {
            let s = c.api(0).get("/api/v1/acme/down").await.json();
            let n = s["consecutive_failures"].as_u64().unwrap_or(0);
            if let Some(next) = s["next_attempt_unix"].as_i64() {
                let mut seen = attempts.lock().expect("attempts");
                if seen.last().is_none_or(|(m, _)| *m != n) {
                    seen.push((n, next));
                }
            }
            if s["state"] == "fallback" && n >= 3 {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        })
        .await;
    let attempts = attempts.into_inner().expect("attempts");
    let error = state["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("unreachable") && error.contains(&ca.directory_url()),
        "the error names the CA and what went wrong: {state}"
    );
    // Each attempt waits out its backoff (capped at 2 s by the test): no attempt comes
    // sooner than the one before it was scheduled.
    for pair in attempts.windows(2) {
        assert!(
            pair[1].1 >= pair[0].1,
            "attempts went backwards: {attempts:?}"
        );
    }

    ca.restart().await;
    served(&c, port, "down.acme.test", Some(&fallback), ACME_PATIENCE).await;
    openssl_verifies(port, "down.acme.test", &ca.roots_pem().await)
        .await
        .expect("the ACME certificate from the restarted CA took over");
    let state = c.api(0).get("/api/v1/acme/down").await.ok("state");
    assert_eq!(state["state"], "issued", "{state}");
    let again = c.api(0).get("/api/v1/issuers/ca").await.ok("issuer show");
    assert_ne!(
        again["account_url"], first["account_url"],
        "the account registered again is recorded: {again}"
    );
    let audit = c.api(0).get("/api/v1/audit").await.text;
    assert!(audit.contains("account registered again"), "{audit}");
    let metrics = c.api(0).get("/metrics").await.text;
    let sent: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("certraft_acme_requests_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in /metrics:\n{metrics}"));
    assert!(
        sent >= 10,
        "registration, failed attempts and one order: {sent} requests"
    );
    assert_eq!(
        ca.issued_count(),
        1,
        "one certificate, from the CA that came back"
    );
}

/// A CA that offers renewal information (RFC 9773; pebble behind [`AriFront`], since
/// Debian's pebble has none): the leader asks about the certificate, records the moment it
/// picks in the CA's window, and renews when the CA moves the window to now (as for a mass
/// revocation) — long before two thirds of the lifetime — with one order, and leaves the
/// renewed certificate to the window the CA gives it.
#[tokio::test(flavor = "multi_thread")]
async fn a_ca_renewal_window_brings_the_renewal_forward() {
    let Some((c, ca)) = one_node_and_pebble().await else {
        return;
    };
    let t0 = unix_now();
    // At first the CA advises a window a year out (the lifetime rule says over three years).
    let front = AriFront::start(&ca, (t0 + 365 * 86_400, t0 + 366 * 86_400)).await;
    let issuer = c
        .api(0)
        .post(
            "/api/v1/issuers/acme",
            &json!({
                "name": "ari",
                "directory": front.directory_url(),
                "email": "ops@example.com",
                "ca_pem": format!("{}\n{}", ca.ca_pem().trim_end(), front.ca_pem()),
            }),
        )
        .await
        .ok("add the ARI issuer");
    assert_eq!(issuer["ari"], true, "{issuer}");
    issue(&c, 0, "ari", "ari.acme.test", "ari", "http-01").await;
    let port = c.nodes[0].serve;
    let first = served(&c, port, "ari.acme.test", None, ACME_PATIENCE).await;
    let state = c
        .wait_for("the CA's window recorded", ACME_PATIENCE, || async {
            let s = c.api(0).get("/api/v1/acme/ari").await.json();
            match s["next_attempt_unix"].as_i64() {
                Some(at) if at >= t0 + 365 * 86_400 && at <= t0 + 366 * 86_400 => Ok(s),
                _ => Err(format!("{s} (asked {} times)", front.asked())),
            }
        })
        .await;
    assert_eq!(state["state"], "issued", "{state}");
    let id = front
        .last_id()
        .expect("the leader asked about the certificate");
    let (_, leaf) = x509_parser::parse_x509_certificate(&first).expect("leaf");
    let serial = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(leaf.raw_serial());
    assert!(
        id.ends_with(&format!(".{serial}")),
        "{id} names serial {serial}"
    );

    // The CA wants it renewed now (the renewed one gets the default window again).
    let asked = front.asked();
    front.renew_now();
    let renewed = served(&c, port, "ari.acme.test", Some(&first), ACME_PATIENCE).await;
    assert!(front.asked() > asked);
    openssl_verifies(port, "ari.acme.test", &ca.roots_pem().await)
        .await
        .expect("the renewed certificate verifies");
    assert_ne!(renewed, first);
    // The renewed certificate is asked about and left to its window: no second renewal.
    let (_, leaf) = x509_parser::parse_x509_certificate(&renewed).expect("leaf");
    let serial = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(leaf.raw_serial());
    c.wait_for(
        "the renewed certificate asked about",
        ACME_PATIENCE,
        || async {
            match front.last_id() {
                Some(id) if id.ends_with(&format!(".{serial}")) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(ca.orders_count(), 2, "one order each");
    let audit = c.api(0).get("/api/v1/audit").await.text;
    assert!(audit.contains("renewal window"), "{audit}");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64
}

/// Bad input to the ACME routes is refused with a clear error and changes nothing: a
/// directory that is not https or not ACME, a bad email, half an EAB pair, an unknown
/// issuer, a wildcard over http-01, a lifetime for an ACME certificate, an issuer in use.
#[tokio::test(flavor = "multi_thread")]
async fn bad_acme_input_is_refused_and_changes_nothing() {
    let c = Cluster::start(1, fast()).await;
    let Some(ca) = Pebble::start(PebbleOptions::default()).await else {
        return;
    };
    let api = c.api(0);
    let dir = ca.directory_url();
    let pem = ca.ca_pem().to_string();
    let bad_issuers = [
        (
            json!({"name": "x", "directory": "http://127.0.0.1/dir", "email": "a@b.example"}),
            400,
            "invalid_input",
        ),
        (
            json!({"name": "local", "directory": dir, "email": "a@b.example", "ca_pem": pem}),
            400,
            "invalid_input",
        ),
        (
            json!({"name": "x", "directory": dir, "email": "not-an-email", "ca_pem": pem}),
            400,
            "invalid_input",
        ),
        (
            json!({"name": "x", "directory": dir, "email": "a@b.example", "ca_pem": pem, "eab_kid": "k"}),
            400,
            "invalid_input",
        ),
        (
            json!({"name": "x", "directory": dir, "email": "a@b.example"}),
            422,
            "acme_failed",
        ),
        (
            json!({"name": "x", "directory": format!("{}/nope", ca.management_url()), "email": "a@b.example", "ca_pem": pem}),
            422,
            "acme_failed",
        ),
    ];
    for (body, status, code) in bad_issuers {
        let r = api.post("/api/v1/issuers/acme", &body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{body}: {r}"
        );
    }
    let list = api.get("/api/v1/issuers").await.ok("list");
    assert_eq!(list["acme"].as_array().map(Vec::len), Some(0), "{list}");

    add_issuer(&c, 0, "ca", &ca).await;
    let again = api
        .post(
            "/api/v1/issuers/acme",
            &json!({"name": "ca", "directory": dir, "email": "a@b.example", "ca_pem": pem}),
        )
        .await;
    assert_eq!(again.error_code(), "issuer_name_taken", "{again}");
    let bad_issues = [
        (
            json!({"name": "w", "sans": ["w.test"], "issuer": "nope"}),
            "unknown_issuer",
        ),
        (
            json!({"name": "w", "sans": ["*.w.test"], "issuer": "ca"}),
            "invalid_input",
        ),
        (
            json!({"name": "w", "sans": ["w.test"], "issuer": "ca", "lifetime_secs": 3600}),
            "invalid_input",
        ),
        (
            json!({"name": "w", "sans": ["w.test"], "issuer": "ca", "fallback": "elsewhere"}),
            "invalid_input",
        ),
        (
            json!({"name": "w", "sans": ["w.test"], "challenge": "http-01"}),
            "invalid_input",
        ),
    ];
    for (body, code) in bad_issues {
        let r = api.post("/api/v1/issue", &body).await;
        assert_eq!(r.error_code(), code, "{body}: {r}");
    }
    assert_eq!(api.certs().await.certs().len(), 0);

    api.post(
        "/api/v1/issue",
        &json!({"name": "w", "sans": ["w.test"], "issuer": "ca"}),
    )
    .await
    .ok("issue");
    let in_use = api.delete("/api/v1/issuers/ca").await;
    assert_eq!(in_use.error_code(), "issuer_in_use", "{in_use}");
    api.delete("/api/v1/certs/w")
        .await
        .ok("remove the pending certificate");
    api.delete("/api/v1/issuers/ca")
        .await
        .ok("remove the issuer");
    let started = Instant::now();
    let list = api.get("/api/v1/issuers").await.ok("list");
    assert_eq!(list["acme"].as_array().map(Vec::len), Some(0), "{list}");
    assert!(started.elapsed() < PATIENCE);
}
