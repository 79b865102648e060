//! Certificates born in the cluster (issue 14) on real node processes: renewal at two thirds
//! of the lifetime on every node with no failed handshake, exactly one renewal across a
//! leader crash on either side of the commit, and signed webhook notices delivered exactly
//! once across a leader kill and a receiver that was down for a while.
//!
//! Time is compressed, not slept through: certificates are issued for a minute
//! (`lifetime_secs: 60`, renewed about 40 s in) and the leader's duties tick every 200 ms
//! (`CERTRAFT_ISSUING_TICK_MS`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::support::cluster::{Cluster, Options, PATIENCE};
use crate::support::probe::{any_leaf_client, handshake};

/// Long enough for a one-minute certificate to reach its renewal on a loaded CI machine.
const RENEWAL_PATIENCE: Duration = Duration::from_secs(120);

fn fast() -> Options {
    Options::default().env("CERTRAFT_ISSUING_TICK_MS", "200")
}

async fn issue(c: &Cluster, i: usize, name: &str, host: &str) -> Value {
    c.api(i)
        .post(
            "/api/v1/issue",
            &json!({"name": name, "sans": [host], "lifetime_secs": 60}),
        )
        .await
        .ok(&format!("issue {name}"))
}

/// Waits until node `i` has applied the feature that lets version-3 entries through
/// without asking every member: from then on a dead member no longer stops the duties.
async fn version_3_enabled(c: &Cluster, i: usize) {
    c.wait_for("request version 3 to be enabled", PATIENCE, || async {
        let s = c.api(i).get("/api/v1/cluster").await.json();
        if s["features"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "request_version_3"))
        {
            Ok(())
        } else {
            Err(s["features"].to_string())
        }
    })
    .await;
}

/// The active and retired bundles of `name` on node `i`: (active ids, retired ids).
async fn versions(c: &Cluster, i: usize, name: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let r = c
        .api(i)
        .send(reqwest::Method::GET, "/api/v1/certs", None)
        .await?;
    let list = r.json();
    let mut active = Vec::new();
    let mut retired = Vec::new();
    for cert in list["certs"].as_array().cloned().unwrap_or_default() {
        let n = cert["name"].as_str().unwrap_or_default();
        let id = cert["id"].as_str().unwrap_or_default().to_string();
        if n == name {
            active.push(id);
        } else if n.starts_with(&format!("{name}~")) {
            retired.push(id);
        }
    }
    Ok((active, retired))
}

/// A certificate issued for a minute is renewed about two thirds into its life, by one
/// atomic rotate that every node serves, while a handshake loop against every node sees no
/// failure; the new leaf chains to the issuer every client pulls from `/api/v1/trust/issuers`.
#[tokio::test(flavor = "multi_thread")]
async fn a_minute_certificate_is_renewed_at_two_thirds_on_every_node_without_a_failed_handshake() {
    let c = Cluster::start(3, fast()).await;
    let leader = c.leader().await;
    let host = "renew.issue.test";
    let issued = issue(&c, leader, "renew", host).await;
    let first_id = issued["id"].as_str().expect("an id").to_string();
    let issued_at = Instant::now();

    let client = any_leaf_client();
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.serve).collect();
    let stop = CancellationToken::new();
    let load = tokio::spawn({
        let (stop, client, ports) = (stop.clone(), client.clone(), ports.clone());
        async move {
            let mut seen: Vec<(u16, Result<Vec<u8>, String>)> = Vec::new();
            for port in ports.iter().cycle() {
                if stop.is_cancelled() {
                    break;
                }
                seen.push((*port, handshake(&client, *port, Some(host)).await));
            }
            seen
        }
    });

    // Every node serves the first leaf, then a different one after the renewal.
    let mut first_leaf = None;
    for &port in &ports {
        let leaf = c
            .wait_for(
                "every node to serve the issued certificate",
                PATIENCE,
                || {
                    let client = client.clone();
                    async move {
                        // Until it has applied the issue, a node answers with its own
                        // certificate (no default is set): wait for the one that names host.
                        let leaf = handshake(&client, port, Some(host)).await?;
                        if leaf.windows(host.len()).any(|w| w == host.as_bytes()) {
                            Ok(leaf)
                        } else {
                            Err(format!("port {port} does not serve {host} yet"))
                        }
                    }
                },
            )
            .await;
        assert_eq!(first_leaf.get_or_insert(leaf.clone()), &leaf);
    }
    let first_leaf = first_leaf.expect("three nodes");
    for (i, &port) in ports.iter().enumerate() {
        let first = first_leaf.clone();
        c.wait_for(
            &format!("node {i} to serve the renewed certificate"),
            RENEWAL_PATIENCE,
            || {
                let (client, first) = (client.clone(), first.clone());
                async move {
                    let leaf = handshake(&client, port, Some(host)).await?;
                    if leaf == first {
                        Err("still the first certificate".into())
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
    }
    let renewed_after = issued_at.elapsed();
    stop.cancel();
    let seen = load.await.expect("the handshake loop");
    let failed: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} handshakes failed across the renewal, e.g. {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(seen.len() > 30, "only {} handshakes", seen.len());
    // Two thirds of 63 s (60 s asked, 3 s backdated), less at most 2% jitter: not before ~37 s.
    assert!(
        renewed_after >= Duration::from_secs(36),
        "renewed after only {renewed_after:?}"
    );

    // Exactly one renewal, recorded in `cert show`, the same on every node.
    let (active, retired) = versions(&c, leader, "renew").await.expect("list");
    assert_eq!(active.len(), 1);
    assert_ne!(active[0], first_id);
    assert_eq!(retired, vec![first_id]);
    let show = c.api(leader).get("/api/v1/certs/renew").await.ok("show");
    assert_eq!(show["renewal"]["renewals"], 1, "{show}");
    assert_eq!(show["renewal"]["consecutive_failures"], 0);
    c.assert_one_state().await;

    // The renewed leaf chains to the published issuer.
    let pem_text = c
        .api(leader)
        .with_token(None)
        .get("/api/v1/trust/issuers")
        .await;
    assert_eq!(pem_text.status, 200, "{pem_text}");
    let issuer_der = pem::parse(&pem_text.text).expect("PEM").contents().to_vec();
    let leaf = handshake(&client, ports[0], Some(host))
        .await
        .expect("leaf");
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).expect("leaf parses");
    let (_, issuer) = x509_parser::parse_x509_certificate(&issuer_der).expect("issuer parses");
    leaf.verify_signature(Some(issuer.public_key()))
        .expect("the served leaf is signed by the published issuer");
    assert_ne!(
        issuer_der, c.ca_der,
        "the issuer is not the cluster's node-to-node CA"
    );
}

/// A leader killed at either side of a renewal's commit: exactly one new bundle results.
/// Before the commit, the next leader renews (nothing lost); after it, the next leader sees
/// the renewal done (nothing doubled); every replica ends in one state.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_crash_before_the_renewal_commits_loses_nothing() {
    leader_crash_renews_exactly_once("renew-before-commit").await;
}

/// See [`a_leader_crash_before_the_renewal_commits_loses_nothing`].
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_crash_right_after_the_renewal_commits_renews_nothing_twice() {
    leader_crash_renews_exactly_once("renew-after-commit").await;
}

async fn leader_crash_renews_exactly_once(step: &str) {
    // Node 1 bootstraps, so leads first; the crash is armed on node id 1 only.
    let mut c = Cluster::start(
        3,
        fast().env("CERTRAFT_TEST_CRASH_AT", &format!("{step}@1")),
    )
    .await;
    let leader = c.leader().await;
    if c.nodes[leader].id != 1 {
        // Leadership moved during start-up: the armed node is not leading, so the crash
        // cannot be observed here. (Rare; the other variant still runs.)
        eprintln!("skipping {step}: node 1 is not the leader");
        return;
    }
    let issued = issue(&c, leader, "crash", "crash.issue.test").await;
    let first_id = issued["id"].as_str().expect("id").to_string();
    version_3_enabled(&c, leader).await;
    // Its crash is expected: waits no longer fail on it.
    c.expect_exit(leader);
    c.wait_for(
        "the leader to crash at its renewal",
        RENEWAL_PATIENCE,
        || {
            let exited = c.has_exited(leader);
            async move {
                if exited {
                    Ok(())
                } else {
                    Err("still running".into())
                }
            }
        },
    )
    .await;
    let next = c.leader().await;
    assert_ne!(next, leader);
    let (active, retired) = c
        .wait_for("one renewal to be committed", RENEWAL_PATIENCE, || async {
            let (a, r) = versions(&c, next, "crash").await?;
            if a.len() == 1 && a[0] != first_id {
                Ok((a, r))
            } else {
                Err(format!("active {a:?}, retired {r:?}"))
            }
        })
        .await;
    assert_eq!(retired, vec![first_id.clone()], "exactly one renewal");
    // The renewal state says one, and the next one is a full two thirds away.
    let show = c.api(next).get("/api/v1/certs/crash").await.ok("show");
    assert_eq!(show["renewal"]["renewals"], 1, "{show}");
    assert_eq!(show["id"], json!(active[0]));
    // The crashed node rejoins and agrees.
    c.restart(leader).await;
    c.assert_one_state().await;
    let (active2, retired2) = versions(&c, leader, "crash").await.expect("list");
    assert_eq!((active2, retired2), (active, vec![first_id]));
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    delivery: String,
    event: String,
    signature: String,
    body: Vec<u8>,
}

/// A local HTTPS webhook receiver (self-signed, trusted through the target's CA file) that
/// records every POST and answers 200; it can be taken down and brought back on its port.
struct Receiver {
    port: u16,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

struct ReceiverTls {
    cert_pem: String,
    config: Arc<rustls::ServerConfig>,
}

fn receiver_tls() -> ReceiverTls {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("server config");
    ReceiverTls {
        cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", cert.der().to_vec())),
        config: Arc::new(config),
    }
}

impl Receiver {
    async fn start(port: u16, tls: &ReceiverTls, hits: Arc<Mutex<Vec<Hit>>>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the receiver");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = stop.cancelled() => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let (acceptor, hits) = (acceptor.clone(), hits.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        let (head_end, length) = loop {
                            let Ok(n) = tls.read(&mut chunk).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..at]).to_lowercase();
                                let length = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                                    .unwrap_or(0);
                                break (at + 4, length);
                            }
                        };
                        while buf.len() < head_end + length {
                            let Ok(n) = tls.read(&mut chunk).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                        let header = |name: &str| {
                            head.lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                                })
                                .unwrap_or_default()
                        };
                        hits.lock().expect("hits").push(Hit {
                            delivery: header("x-certraft-delivery"),
                            event: header("x-certraft-event"),
                            signature: header("x-certraft-signature"),
                            body: buf[head_end..head_end + length].to_vec(),
                        });
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        let _ = tls.shutdown().await;
                    });
                }
            }
        });
        Receiver { port, stop, task }
    }

    async fn down(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn verify(secret: &str, hit: &Hit) -> Value {
    let (t, v1) = hit
        .signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature header {:?}", hit.signature));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&hit.body);
    mac.verify_slice(&hex::decode(v1).expect("hex signature"))
        .unwrap_or_else(|_| panic!("the HMAC of {} does not verify", hit.delivery));
    serde_json::from_slice(&hit.body).expect("JSON body")
}

/// Expiry thresholds and the renewal reach a local HTTPS receiver exactly once each, signed
/// with the target's secret: across a kill -9 of the leader, and while the receiver was down
/// for a while (queued through Raft, retried with backoff, delivered when it is back).
#[tokio::test(flavor = "multi_thread")]
async fn notices_arrive_once_each_across_a_leader_kill_and_a_receiver_outage() {
    let mut c = Cluster::start(3, fast()).await;
    let leader = c.leader().await;
    let tls = receiver_tls();
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let receiver = Receiver::start(0, &tls, hits.clone()).await;
    let port = receiver.port;
    let secret = "a-webhook-secret-of-some-length";
    let api = c.api(leader);
    api.post(
        "/api/v1/notify",
        &json!({
            "name": "hook",
            "url": format!("https://127.0.0.1:{port}/certraft"),
            "secret": secret,
            "ca_pem": tls.cert_pem,
            // Crossed ~10 s and ~20 s into a one-minute certificate.
            "before_secs": [50, 40],
        }),
    )
    .await
    .ok("add the notify target");
    version_3_enabled(&c, leader).await;
    let issued = issue(&c, leader, "noticed", "noticed.issue.test").await;
    let first_id = issued["id"].as_str().expect("id").to_string();

    let expiring = |hits: &[Hit], threshold: i64| -> usize {
        hits.iter()
            .filter(|h| {
                let v: Value = serde_json::from_slice(&h.body).unwrap_or_default();
                h.event == "expiring"
                    && v["event"]["id"] == json!(first_id)
                    && v["event"]["threshold_secs"] == json!(threshold)
            })
            .count()
    };
    c.wait_for("the 50 s threshold notice", RENEWAL_PATIENCE, || async {
        let n = expiring(&hits.lock().expect("hits"), 50);
        if n > 0 {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    // Once the leader has recorded the delivery, kill it; then take the receiver down.
    c.wait_for("the outbox to empty", PATIENCE, || async {
        let m = api.get("/metrics").await.text;
        if m.contains("certraft_notices_pending 0") {
            Ok(())
        } else {
            Err("notices pending".into())
        }
    })
    .await;
    c.kill(leader);
    receiver.down().await;
    let down_at = Instant::now();
    let next = c.leader().await;
    // The 40 s threshold is crossed while the receiver is down: queued, not delivered.
    c.wait_for("the 40 s notice to be queued", RENEWAL_PATIENCE, || async {
        let m = c.api(next).get("/metrics").await.text;
        if m.lines()
            .any(|l| l.starts_with("certraft_notices_pending ") && !l.ends_with(" 0"))
        {
            Ok(())
        } else {
            Err("nothing pending".into())
        }
    })
    .await;
    // Down for a few retries, then back.
    c.wait_for("a few seconds of outage", PATIENCE, || async {
        if down_at.elapsed() > Duration::from_secs(4) {
            Ok(())
        } else {
            Err("still early".into())
        }
    })
    .await;
    let receiver = Receiver::start(port, &tls, hits.clone()).await;
    c.restart(leader).await;
    c.wait_for(
        "the 40 s notice and the renewal notice",
        RENEWAL_PATIENCE,
        || async {
            let h = hits.lock().expect("hits").clone();
            let renewed = h.iter().filter(|h| h.event == "renewed").count();
            if expiring(&h, 40) > 0 && renewed > 0 {
                Ok(())
            } else {
                Err(format!("{} hits so far", h.len()))
            }
        },
    )
    .await;
    // Let the outbox drain so nothing is in flight, then count.
    c.wait_for("the outbox to empty", PATIENCE, || async {
        let m = c.api(next).get("/metrics").await.text;
        if m.contains("certraft_notices_pending 0") {
            Ok(())
        } else {
            Err("notices pending".into())
        }
    })
    .await;
    let h = hits.lock().expect("hits").clone();
    receiver.down().await;
    assert_eq!(expiring(&h, 50), 1, "the 50 s notice once: {h:#?}");
    assert_eq!(expiring(&h, 40), 1, "the 40 s notice once: {h:#?}");
    let renewed: Vec<&Hit> = h.iter().filter(|h| h.event == "renewed").collect();
    assert_eq!(renewed.len(), 1, "one renewal notice: {h:#?}");
    let mut deliveries = BTreeMap::new();
    for hit in &h {
        let body = verify(secret, hit);
        assert_eq!(body["id"], json!(hit.delivery));
        assert_eq!(body["type"], json!(hit.event));
        *deliveries.entry(hit.delivery.clone()).or_insert(0) += 1;
    }
    assert!(
        deliveries.values().all(|n| *n == 1),
        "a delivery id arrived twice: {deliveries:?}"
    );
    let body = verify(secret, renewed[0]);
    assert_eq!(body["event"]["old_id"], json!(first_id));
}

/// Bad input to the new routes: each a clear 4xx, nothing changed.
#[tokio::test(flavor = "multi_thread")]
async fn bad_issuing_input_is_refused_and_changes_nothing() {
    let c = Cluster::start(1, Options::default()).await;
    let api = c.api(0);
    let before = api.get("/api/v1/certs").await.ok("list");
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/api/v1/csrs",
            json!({"name": "k", "common_name": "a.test", "sans": ["a.test"], "key": "rsa-1024"}),
            422,
            "",
        ),
        (
            "/api/v1/csrs",
            json!({"name": "s", "common_name": "a.test", "sans": ["not a name!"]}),
            400,
            "invalid_input",
        ),
        (
            "/api/v1/csrs",
            json!({"name": "s", "common_name": "a.test", "sans": []}),
            400,
            "invalid_input",
        ),
        (
            "/api/v1/csrs/unknown/complete",
            json!({"files": [{"name": "c.pem", "data": ""}]}),
            404,
            "csr_not_found",
        ),
        (
            "/api/v1/issue",
            json!({"name": "x", "sans": ["x.test"], "lifetime_secs": 5}),
            400,
            "invalid_input",
        ),
        (
            "/api/v1/issue",
            json!({"name": "x", "sans": ["x.test"], "issuer": "elsewhere"}),
            400,
            "unknown_issuer",
        ),
        (
            "/api/v1/notify",
            json!({"name": "h", "url": "http://hooks.test/x"}),
            400,
            "invalid_input",
        ),
        (
            "/api/v1/notify",
            json!({"name": "h", "url": "https://hooks.test/x", "secret": "short"}),
            400,
            "invalid_input",
        ),
        (
            "/api/v1/notify",
            json!({"name": "h", "url": "https://hooks.test/x", "ca_pem": "not pem"}),
            400,
            "invalid_input",
        ),
        (
            "/api/v1/notify",
            json!({"name": "h", "url": "https://user:secret@hooks.test/x"}),
            400,
            "invalid_input",
        ),
    ];
    for (path, body, status, code) in cases {
        let r = api.post(path, &body).await;
        assert_eq!(r.status, status, "{path} {body}: {r}");
        if !code.is_empty() {
            assert_eq!(r.error_code(), code, "{path} {body}: {r}");
        }
    }
    // A duplicate CSR name.
    let csr = json!({"name": "dup", "common_name": "d.test", "sans": ["d.test"]});
    api.post("/api/v1/csrs", &csr).await.ok("first csr");
    let r = api.post("/api/v1/csrs", &csr).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "csr_name_taken"),
        "{r}"
    );
    // Completing it with files that carry a private key of their own: refused, the pending
    // key is the one used, and the CSR stays pending.
    let r = api
        .post(
            "/api/v1/csrs/dup/complete",
            &json!({"files": [
                crate::support::uploads::upload("leaf-ec256.pem", &crate::support::fixture("leaf-ec256.pem")),
                crate::support::uploads::upload("ec256.key", &crate::support::fixture("ec256.key")),
            ]}),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "unexpected_key"),
        "{r}"
    );
    assert_eq!(
        api.get("/api/v1/certs").await.ok("list")["certs"],
        before["certs"]
    );
    assert_eq!(
        api.get("/api/v1/notify").await.ok("notify")["targets"],
        json!([])
    );
    let csrs = api.get("/api/v1/csrs").await.ok("csrs");
    assert_eq!(csrs["csrs"].as_array().map(Vec::len), Some(1));
    // No key material in the listing: only the CSR and the public key's hash.
    assert!(!csrs.to_string().contains("PRIVATE KEY"));
    // A receiver that hangs: `notify test` gives up within its timeout with a clear error.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hang_port = hang.local_addr().expect("addr").port();
    api.post(
        "/api/v1/notify",
        &json!({"name": "hangs", "url": format!("https://127.0.0.1:{hang_port}/")}),
    )
    .await
    .ok("add a target that hangs");
    let started = Instant::now();
    let r = api.post("/api/v1/notify/hangs/test", &json!({})).await;
    drop(hang);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "receiver_failed"),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
