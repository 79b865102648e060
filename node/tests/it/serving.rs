//! SPEC §4 on real nodes: every selection rule seen through `openssl s_client` on every node,
//! strict SNI refusing with `unrecognized_name`, certificates swapped under a loop of
//! handshakes without one failing or going stale, and witnesses that vote but do not serve.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::cluster::{Cluster, Options, PATIENCE};
use crate::support::have_openssl;
use crate::support::probe::{
    any_leaf_client, handshake, handshake_chain, s_client, x509_text, Tls,
};
use crate::support::uploads::{fixture_import, TestCert};

/// How long a node may take to serve a change it has applied (the serving index is updated
/// right after apply, asynchronously): generous for 2 CI cores, far above the usual few ms.
const SERVE_LAG: Duration = Duration::from_secs(10);

/// What one connection should be served.
#[derive(Clone, Copy)]
enum Want<'a> {
    /// The node's own certificate, issued by the cluster CA (no default set).
    NodeCert,
    /// A bundle: its name, its certificate and how the page says it was chosen.
    Bundle(&'a str, &'a TestCert, &'static str),
}

/// The subject of the cluster CA, as `openssl x509` prints it (a node certificate's issuer).
async fn ca_subject(c: &Cluster) -> String {
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE", c.ca_der.clone()));
    x509_text(&pem).await.expect("ca.pem is readable").subject
}

/// Connects to node `i`'s serve port with `openssl s_client` and checks the served leaf, the
/// negotiated protocol and the answer page against `want`.
async fn check_served(
    c: &Cluster,
    i: usize,
    ca_subject: &str,
    sni: Option<&str>,
    tls: Tls,
    want: Want<'_>,
) -> Result<(), String> {
    let node = &c.nodes[i];
    let out = s_client(node.serve, sni, tls).await;
    let served = out.served().await?;
    let context = || {
        format!(
            "{} (id {}), SNI {sni:?}, {}: served {:?}, page:\n{}",
            node.label,
            node.id,
            tls.name(),
            served.leaf,
            served.page
        )
    };
    if served.protocol != tls.name() {
        return Err(format!("negotiated {}; {}", served.protocol, context()));
    }
    let page_sni = sni
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_else(|| "(none)".into());
    let (name, how) = match want {
        Want::NodeCert => {
            let subject = format!("CN = certraft node {}", node.id);
            if served.leaf.subject != subject || served.leaf.issuer != ca_subject {
                return Err(format!(
                    "expected the node certificate ({subject}, issued by {ca_subject}); {}",
                    context()
                ));
            }
            ("the node certificate", "no default set")
        }
        Want::Bundle(name, cert, how) => {
            if served.leaf_der != cert.cert_der {
                return Err(format!(
                    "expected {name}'s certificate (DNS:{}); {}",
                    cert.host,
                    context()
                ));
            }
            if !served.leaf.sans.contains(&format!("DNS:{}", cert.host)) {
                return Err(format!("SANs lack DNS:{}; {}", cert.host, context()));
            }
            (name, how)
        }
    };
    let expected_page = format!(
        "certraft node {}\nsni: {page_sni}\ncertificate: {name} ({how})",
        node.id
    );
    if served.page.trim_end() != expected_page || served.certificate_header != name {
        return Err(format!(
            "expected the page\n{expected_page}\nand x-certraft-certificate: {name}; header was {:?}; {}",
            served.certificate_header,
            context()
        ));
    }
    Ok(())
}

/// Checks a table of (SNI, wanted) on node `i` with TLS 1.2 and TLS 1.3, after waiting
/// (bounded) until it serves `sentinel` — the latest change — as wanted.
async fn check_node(
    c: &Cluster,
    i: usize,
    ca: &str,
    sentinel: (Option<&str>, Want<'_>),
    table: &[(Option<&str>, Want<'_>)],
) {
    let what = format!(
        "{} to serve the latest change for SNI {:?}",
        c.nodes[i].label, sentinel.0
    );
    c.wait_for(&what, SERVE_LAG, || {
        check_served(c, i, ca, sentinel.0, Tls::V13, sentinel.1)
    })
    .await;
    for &(sni, want) in table {
        for tls in Tls::BOTH {
            if let Err(e) = check_served(c, i, ca, sni, tls, want).await {
                panic!("{e}");
            }
        }
    }
}

/// [`check_node`] on the three nodes of `c` at once.
async fn check_table(
    c: &Cluster,
    ca: &str,
    sentinel: (Option<&str>, Want<'_>),
    table: &[(Option<&str>, Want<'_>)],
) {
    assert_eq!(c.nodes.len(), 3, "a table is checked on three nodes");
    tokio::join!(
        check_node(c, 0, ca, sentinel, table),
        check_node(c, 1, ca, sentinel, table),
        check_node(c, 2, ca, sentinel, table),
    );
}

/// Imports `cert` as `name` through node `via`; the commit index.
async fn import_as(c: &Cluster, via: usize, cert: &TestCert, name: &str) -> u64 {
    let r = c
        .api(via)
        .post("/api/v1/certs", &cert.import(Some(name)))
        .await
        .ok(&format!("import {name}"));
    assert_eq!(r["outcome"], "imported", "import {name}: {r}");
    r["index"]
        .as_u64()
        .expect("a committed import names its index")
}

/// Waits until node `i` has applied log index `index`.
async fn wait_applied(c: &Cluster, i: usize, index: u64) {
    let what = format!("{} to apply log index {index}", c.nodes[i].label);
    c.wait_for(&what, PATIENCE, || async move {
        let r = c.readyz(i).await?;
        match r.last_applied() {
            Some(a) if a >= index => Ok(()),
            _ => Err(r.to_string()),
        }
    })
    .await
}

/// Every SPEC §4 rule on every node of a 3-node cluster, through the real `openssl s_client`
/// with TLS 1.2 and with TLS 1.3, checking the served leaf (DER, subject, SANs, issuer), the
/// protocol and the answer page (node, SNI, certificate and how it was chosen): before a
/// default is set, no SNI and unmatched names get the node's own certificate from the
/// cluster CA; an exact name matches case-insensitively and with a trailing dot; `*.w.test`
/// covers `a.w.test` but neither `a.b.w.test` nor `w.test`; of two certificates for one name
/// the later not-after wins even when imported first, and the admin API's `serving` list
/// names the bundle the serve port serves (regression: on a not-after tie the API named the
/// other bundle); once `PUT /api/v1/default` names a bundle, no SNI and every unmatched name
/// get it on every node.
#[tokio::test(flavor = "multi_thread")]
async fn every_node_serves_by_spec_rules_over_tls12_and_tls13() {
    if !have_openssl() {
        return;
    }
    let c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let ca = ca_subject(&c).await;

    let exact = TestCert::new("exact.test");
    let wild = TestCert::new("*.w.test");
    let dup_late = TestCert::with(&["dup.test"], Some(rcgen::date_time_ymd(2045, 1, 1)));
    let dup_early = TestCert::with(&["dup.test"], Some(rcgen::date_time_ymd(2040, 1, 1)));
    let fallback = TestCert::new("fallback.test");
    // Two certificates for one name with the same not-after (rcgen's default).
    let tie_a = TestCert::new("tie.test");
    let tie_b = TestCert::new("tie.test");
    // The later not-after is imported first: import order must not decide.
    let mut last = 0;
    for (cert, name) in [
        (&exact, "exact.test"),
        (&wild, "w-wildcard"),
        (&dup_late, "dup-late"),
        (&dup_early, "dup-early"),
        (&tie_b, "tie-b"),
        (&tie_a, "tie-a"),
        (&fallback, "fallback.test"),
    ] {
        last = import_as(&c, leader, cert, name).await;
    }
    for i in 0..3 {
        wait_applied(&c, i, last).await;
    }

    let exact_w = Want::Bundle("exact.test", &exact, "exact name");
    let wild_w = Want::Bundle("w-wildcard", &wild, "wildcard");
    let dup_w = Want::Bundle("dup-late", &dup_late, "exact name");
    let fallback_exact = Want::Bundle("fallback.test", &fallback, "exact name");
    let fallback_default = Want::Bundle("fallback.test", &fallback, "cluster default");

    check_table(
        &c,
        &ca,
        (Some("fallback.test"), fallback_exact),
        &[
            (None, Want::NodeCert),
            (Some("exact.test"), exact_w),
            (Some("EXACT.Test"), exact_w),
            (Some("exact.test."), exact_w),
            (Some("a.w.test"), wild_w),
            (Some("A.W.Test."), wild_w),
            (Some("a.b.w.test"), Want::NodeCert),
            (Some("w.test"), Want::NodeCert),
            (Some("unknown.test"), Want::NodeCert),
            (Some("dup.test"), dup_w),
        ],
    )
    .await;

    // What the admin API says a bundle serves (`serving` of `GET /api/v1/certs/NAME`) is what
    // the serve port serves, also on a not-after tie (which the SPEC leaves open).
    let tie_served = s_client(c.nodes[leader].serve, Some("tie.test"), Tls::V13)
        .await
        .served()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .leaf_der;
    assert!(tie_served == tie_a.cert_der || tie_served == tie_b.cert_der);
    for (name, cert) in [
        ("dup-late", &dup_late),
        ("dup-early", &dup_early),
        ("tie-a", &tie_a),
        ("tie-b", &tie_b),
    ] {
        let detail = c
            .api(leader)
            .get(&format!("/api/v1/certs/{name}"))
            .await
            .ok(&format!("show {name}"));
        let served = if name.starts_with("dup") {
            cert.cert_der == dup_late.cert_der
        } else {
            cert.cert_der == tie_served
        };
        let want = if served {
            json!([cert.host])
        } else {
            json!([])
        };
        assert_eq!(
            detail["serving"],
            want,
            "{name}: the API's serving list disagrees with the serve port ({} serves it)",
            if served { "it" } else { "another bundle" }
        );
    }

    let follower = c.other_than(leader);
    let r = c
        .api(follower)
        .call(
            Method::PUT,
            "/api/v1/default",
            Some(&json!({"name": "fallback.test"})),
        )
        .await;
    assert_eq!(r.ok("set the default")["default"], "fallback.test", "{r}");

    check_table(
        &c,
        &ca,
        (None, fallback_default),
        &[
            (None, fallback_default),
            (Some("unknown.test"), fallback_default),
            (Some("a.b.w.test"), fallback_default),
            (Some("w.test"), fallback_default),
            (Some("fallback.test"), fallback_exact),
            (Some("exact.test"), exact_w),
            (Some("a.w.test"), wild_w),
            (Some("dup.test"), dup_w),
        ],
    )
    .await;
}

/// True when `openssl s_client` failed because the server sent `unrecognized_name`.
fn refused_unrecognized(out: &crate::support::probe::SClient) -> bool {
    !out.success
        && format!("{}{}", out.stdout, out.stderr).contains("unrecognized name")
        && out.stdout.contains("no peer certificate available")
}

/// `strict_sni` (here from `CERTRAFT_STRICT_SNI=true`): a name no certificate covers is
/// refused with a TLS `unrecognized_name` alert, over TLS 1.2 and 1.3, before and after a
/// default is set — while exact and wildcard names are served as usual. A client that sends
/// no SNI at all is not refused: it gets the node certificate, then the default.
#[tokio::test(flavor = "multi_thread")]
async fn strict_sni_refuses_unknown_names_with_unrecognized_name() {
    if !have_openssl() {
        return;
    }
    let c = Cluster::start(1, Options::default().env("CERTRAFT_STRICT_SNI", "true")).await;
    let ca = ca_subject(&c).await;
    let known = TestCert::new("known.test");
    let wild = TestCert::new("*.w.test");
    import_as(&c, 0, &wild, "w-wildcard").await;
    let index = import_as(&c, 0, &known, "known.test").await;
    wait_applied(&c, 0, index).await;
    let known_w = Want::Bundle("known.test", &known, "exact name");
    let wild_w = Want::Bundle("w-wildcard", &wild, "wildcard");
    let default_w = Want::Bundle("known.test", &known, "cluster default");

    for (phase, no_sni) in [("no default", Want::NodeCert), ("default set", default_w)] {
        if phase == "default set" {
            c.api(0)
                .call(
                    Method::PUT,
                    "/api/v1/default",
                    Some(&json!({"name": "known.test"})),
                )
                .await
                .ok("set the default");
        }
        c.wait_for(
            &format!("{phase}: no SNI to be served as expected"),
            SERVE_LAG,
            || check_served(&c, 0, &ca, None, Tls::V13, no_sni),
        )
        .await;
        for tls in Tls::BOTH {
            for sni in ["unknown.test", "a.b.w.test", "w.test"] {
                let out = s_client(c.nodes[0].serve, Some(sni), tls).await;
                assert!(
                    refused_unrecognized(&out),
                    "{phase}, {}: {sni} should be refused with unrecognized_name; {out}",
                    tls.name()
                );
            }
            for (sni, want) in [
                (Some("known.test"), known_w),
                (Some("KNOWN.test."), known_w),
                (Some("x.w.test"), wild_w),
                (None, no_sni),
            ] {
                if let Err(e) = check_served(&c, 0, &ca, sni, tls, want).await {
                    panic!("{phase}: {e}");
                }
            }
        }
    }
}

/// What one SNI should get from the follower in one state of the inventory.
type Expected = BTreeMap<Option<String>, Vec<u8>>;

/// One handshake of the load loop.
struct Observed {
    sni: Option<String>,
    start: Instant,
    end: Instant,
    result: Result<Vec<u8>, String>,
}

/// A change the hot-swap test commits.
#[derive(Debug, Clone)]
enum Change {
    Import(String),
    Rotate(String),
    Remove(String),
    /// Import the default bundle as the default (`make_default`).
    ImportDefault,
}

/// Hot swap under load (SPEC §4: "a committed change is served on every node without restart
/// and without a single failed handshake"). A loop of full rustls handshakes (no resumption)
/// runs against one follower while over 100 imports, rotations, removals and a new default
/// commit through the leader. Served is part of applied: right after the leader's 200 (the
/// entry applied there) a handshake on the leader sees the change, and as soon as the
/// follower's `/readyz` shows the entry applied, the next handshake there sees it too — no
/// waiting (removed names fall back to the node certificate, then to the default).
/// Afterwards: no handshake of the loop failed, and each served a certificate that was
/// current at some instant during that handshake — a rotated-out or removed certificate
/// never comes back.
#[tokio::test(flavor = "multi_thread")]
async fn committed_changes_swap_under_handshake_load_without_a_failure() {
    let c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let follower = c.other_than(leader);
    let port = c.nodes[follower].serve;
    let client = any_leaf_client();

    // The follower's own certificate, before anything is imported.
    let node_der = handshake(&client, port, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node_text = x509_text(&pem::encode(&pem::Pem::new(
        "CERTIFICATE",
        node_der.clone(),
    )))
    .await
    .expect("node certificate");
    assert_eq!(
        node_text.subject,
        format!("CN = certraft node {}", c.nodes[follower].id)
    );
    assert_eq!(node_text.issuer, ca_subject(&c).await);

    let hosts: Vec<String> = (0..6).map(|k| format!("h{k}.swap.test")).collect();
    let nobody = "nobody.swap.test".to_string();
    let snis: Vec<Option<String>> = hosts
        .iter()
        .cloned()
        .chain([nobody.clone()])
        .map(Some)
        .chain([None])
        .collect();

    // The load: sequential full handshakes, cycling through every SNI, until stopped.
    let stop = CancellationToken::new();
    let load = tokio::spawn({
        let (stop, client, snis) = (stop.clone(), client.clone(), snis.clone());
        async move {
            let mut seen = Vec::new();
            for sni in snis.iter().cycle() {
                if stop.is_cancelled() {
                    break;
                }
                let start = Instant::now();
                let result = handshake(&client, port, sni.as_deref()).await;
                seen.push(Observed {
                    sni: sni.clone(),
                    start,
                    end: Instant::now(),
                    result,
                });
            }
            seen
        }
    });

    let mut changes: Vec<Change> = Vec::new();
    let each =
        |f: fn(String) -> Change, hs: &[String]| hs.iter().cloned().map(f).collect::<Vec<_>>();
    changes.extend(each(Change::Import, &hosts));
    changes.push(Change::ImportDefault);
    // Each round starts and ends with every host imported.
    for _round in 0..4 {
        changes.extend(each(Change::Rotate, &hosts));
        changes.extend(each(Change::Remove, &hosts[..3]));
        changes.extend(each(Change::Import, &hosts[..3]));
        changes.extend(each(Change::Rotate, &hosts));
        changes.extend(each(Change::Remove, &hosts[3..]));
        changes.extend(each(Change::Import, &hosts[3..]));
    }
    changes.extend(each(Change::Remove, &hosts));
    assert!(changes.len() >= 100);

    let mut current: BTreeMap<String, TestCert> = BTreeMap::new();
    let mut default: Option<TestCert> = None;
    let expected = |current: &BTreeMap<String, TestCert>, default: &Option<TestCert>| {
        let fallback = default
            .as_ref()
            .map(|d| d.cert_der.clone())
            .unwrap_or_else(|| node_der.clone());
        snis.iter()
            .map(|sni| {
                let der = sni
                    .as_ref()
                    .and_then(|h| current.get(h))
                    .map(|t| t.cert_der.clone())
                    .unwrap_or_else(|| fallback.clone());
                (sni.clone(), der)
            })
            .collect::<Expected>()
    };
    // State k is possibly current from the submission of change k until change k+1 has
    // been seen served; state 0 (nothing imported) from the start.
    let mut states: Vec<Expected> = vec![expected(&current, &default)];
    let mut submitted: Vec<Instant> = vec![Instant::now() - Duration::from_secs(3600)];
    let mut converged: Vec<Instant> = vec![Instant::now()];
    let mut worst_lag = Duration::ZERO;
    let api = c.api(leader);

    for (k, change) in changes.iter().enumerate() {
        submitted.push(Instant::now());
        let (index, probe) = match change {
            Change::Import(h) => {
                let cert = TestCert::new(h);
                let r = api
                    .post("/api/v1/certs", &cert.import(None))
                    .await
                    .ok(&format!("change {k}: import {h}"));
                current.insert(h.clone(), cert);
                (r["index"].as_u64(), Some(h.clone()))
            }
            Change::Rotate(h) => {
                let cert = TestCert::new(h);
                let r = api
                    .post(&format!("/api/v1/certs/{h}/rotate"), &cert.import(None))
                    .await
                    .ok(&format!("change {k}: rotate {h}"));
                current.insert(h.clone(), cert);
                (r["index"].as_u64(), Some(h.clone()))
            }
            Change::Remove(h) => {
                let r = api
                    .delete(&format!("/api/v1/certs/{h}?force=true"))
                    .await
                    .ok(&format!("change {k}: remove {h}"));
                current.remove(h);
                (r["index"].as_u64(), Some(h.clone()))
            }
            Change::ImportDefault => {
                let cert = TestCert::new("default.swap.test");
                let mut body = cert.import(None);
                body["make_default"] = json!(true);
                let r = api
                    .post("/api/v1/certs", &body)
                    .await
                    .ok(&format!("change {k}: import the default"));
                default = Some(cert);
                (r["index"].as_u64(), None)
            }
        };
        let index = index.unwrap_or_else(|| panic!("change {k} ({change:?}) names no index"));
        let state = expected(&current, &default);
        let want = state[&probe].clone();
        // The leader answered after applying the entry: it serves the change already.
        let leader_port = c.nodes[leader].serve;
        let got = handshake(&client, leader_port, probe.as_deref())
            .await
            .unwrap_or_else(|e| panic!("change {k} on the leader: {e}"));
        assert!(
            got == want,
            "change {k} ({change:?}, index {index}): the leader acknowledged it but a handshake \
             for SNI {probe:?} right after still got the previous certificate"
        );
        wait_applied(&c, follower, index).await;
        let applied = Instant::now();
        let got = handshake(&client, port, probe.as_deref())
            .await
            .unwrap_or_else(|e| panic!("change {k}: {e}"));
        assert!(
            got == want,
            "change {k} ({change:?}, index {index}): {} reports the entry applied but a \
             handshake for SNI {probe:?} started afterwards got the previous certificate",
            c.nodes[follower].label
        );
        worst_lag = worst_lag.max(applied.elapsed());
        converged.push(applied);
        states.push(state);
    }

    stop.cancel();
    let seen = load.await.expect("the handshake loop");
    let failed: Vec<&String> = seen
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} handshakes failed, e.g. {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        seen.len() >= 2 * changes.len(),
        "the loop made only {} handshakes during {} changes",
        seen.len(),
        changes.len()
    );
    // State s was possibly served from submitted[s] until converged[s + 1].
    for o in &seen {
        let Ok(der) = &o.result else { continue };
        let possible = (0..states.len()).any(|s| {
            let from = submitted[s];
            let until = converged.get(s + 1).copied();
            from <= o.end && until.is_none_or(|u| o.start <= u) && &states[s][&o.sni] == der
        });
        if !possible {
            let ms = |t: Instant| t.saturating_duration_since(submitted[1]).as_millis();
            let windows: Vec<String> = (0..states.len())
                .filter(|&s| &states[s][&o.sni] == der)
                .map(|s| {
                    let until = converged.get(s + 1).map(|&u| ms(u).to_string());
                    format!(
                        "state {s}: {} ms to {} ms",
                        ms(submitted[s]),
                        until.unwrap_or("end".into())
                    )
                })
                .collect();
            panic!(
                "a handshake for SNI {:?} ({} ms to {} ms after the first change) got a certificate \
                 that was not current during it; that certificate was current in {windows:?}",
                o.sni,
                ms(o.start),
                ms(o.end)
            );
        }
    }
    eprintln!(
        "hot swap: {} changes, {} handshakes on {} without a failure; longest check after apply {worst_lag:?}",
        changes.len(),
        seen.len(),
        c.nodes[follower].label
    );
}

/// A witness (joined with a `{"role":"witness"}` token) votes but does not serve: its serve
/// port refuses connections while the voters' serve ports answer, and with one of the two
/// full voters killed, the survivor and the witness still agree on a leader and commit.
#[tokio::test(flavor = "multi_thread")]
async fn witness_votes_but_does_not_listen_on_its_serve_port() {
    let mut c = Cluster::start(2, Options::default()).await;
    let w = c.join_as(0, "witness").await;
    c.wait_all_voting().await;
    let witness_id = c.nodes[w].id;
    let status = c.api(w).get("/api/v1/cluster").await.ok("cluster status");
    let member = status["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == witness_id))
        .unwrap_or_else(|| panic!("the witness {witness_id} is not a member: {status}"));
    assert_eq!(member["role"], "witness", "{member}");
    assert_eq!(member["voting"], true, "{member}");

    let client = any_leaf_client();
    for i in 0..3 {
        let port = c.nodes[i].serve;
        if i == w {
            let err = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .err()
                .unwrap_or_else(|| panic!("the witness accepted a connection on its serve port"));
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::ConnectionRefused,
                "witness serve port {port}: {err}"
            );
        } else if let Err(e) = handshake(&client, port, None).await {
            panic!("{}: {e}", c.nodes[i].label);
        }
    }

    let leader = c.leader().await;
    let victim = if leader != w { leader } else { 0 };
    let survivor = 1 - victim;
    c.kill(victim);
    c.leader().await;
    let cert = TestCert::new("after-kill.test");
    let index = import_as(&c, survivor, &cert, "after-kill.test").await;
    wait_applied(&c, w, index).await;
    let port = c.nodes[survivor].serve;
    c.wait_for(
        "the surviving voter to serve the import committed with the witness",
        SERVE_LAG,
        || async {
            match handshake(&client, port, Some("after-kill.test")).await? {
                der if der == cert.cert_der => Ok(()),
                _ => Err("not yet the new certificate".into()),
            }
        },
    )
    .await;
}

/// One `openssl s_client` connection with a session file; returns its output.
fn s_client_session(port: u16, version: &str, session: &std::path::Path, save: bool) -> String {
    use std::io::Write;
    let flag = if save { "-sess_out" } else { "-sess_in" };
    let mut child = std::process::Command::new("openssl")
        .args([
            "s_client",
            version,
            "-ign_eof",
            "-servername",
            "ec256.example.test",
        ])
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg(flag)
        .arg(session)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
    }
    let out = child.wait_with_output().expect("openssl s_client output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TLS session made on one node resumes on every other node, over TLS 1.3 and TLS 1.2:
/// the session-ticket keys are sealed into the replicated inventory by the leader and used
/// by every node's serve port.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_resume_on_every_node() {
    if !have_openssl() {
        return;
    }
    let c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let index = c
        .api(leader)
        .post(
            "/api/v1/certs",
            &crate::support::uploads::fixture_import(
                &["ec256.p12"],
                Some(&crate::support::uploads::fixture_passphrase()),
            ),
        )
        .await
        .ok("import the fixture")["index"]
        .as_u64()
        .expect("index");
    for i in 0..c.nodes.len() {
        wait_applied(&c, i, index).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for version in ["-tls1_3", "-tls1_2"] {
        let session = dir.path().join(format!("session{version}.pem"));
        let first = c.nodes[0].serve;
        let others: Vec<u16> = c.nodes[1..].iter().map(|n| n.serve).collect();
        let session2 = session.clone();
        c.wait_for(
            &format!("a {version} session from node 1 to resume on every other node"),
            PATIENCE,
            || {
                let session = session2.clone();
                let others = others.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        let made = s_client_session(first, version, &session, true);
                        if !made.contains("New, TLSv1") {
                            return Err(format!("first connection: {made}"));
                        }
                        for port in &others {
                            let out = s_client_session(*port, version, &session, false);
                            if !out.contains("Reused, TLSv1") {
                                return Err(format!("port {port} did not resume: {out}"));
                            }
                        }
                        Ok(())
                    })
                    .await
                    .expect("openssl task")
                }
            },
        )
        .await;
    }
}

/// Issue 17 item 7: a bundle that holds its root keeps it (`cert show`, export) but every node
/// sends leaf and intermediate only: the trust anchor is left out of the handshake (RFC 8446
/// §4.4.2). A self-signed leaf alone is still sent.
#[tokio::test(flavor = "multi_thread")]
async fn the_served_chain_leaves_out_the_trust_anchor() {
    let c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let r = c
        .api(leader)
        .post(
            "/api/v1/certs",
            &fixture_import(&["fullchain-ec256.pem", "ec256.key"], None),
        )
        .await
        .ok("import the full chain");
    let index = r["index"].as_u64().expect("committed");
    let r = c
        .api(leader)
        .post(
            "/api/v1/certs",
            &fixture_import(&["selfsigned.pem", "selfsigned.key"], None),
        )
        .await
        .ok("import a self-signed leaf");
    let self_signed = r["hostnames"][0].as_str().expect("a hostname").to_string();
    let last = r["index"].as_u64().expect("committed").max(index);
    let shown = c
        .api(leader)
        .get("/api/v1/certs/ec256.example.test")
        .await
        .ok("cert show");
    assert_eq!(shown["chain"].as_array().map(Vec::len), Some(3), "{shown}");
    assert_eq!(shown["completeness"], "complete", "{shown}");
    let root = pem::parse(crate::support::fixture("root.pem"))
        .expect("root.pem")
        .into_contents();
    let client = any_leaf_client();
    for (i, node) in c.nodes.iter().enumerate() {
        wait_applied(&c, i, last).await;
        let port = node.serve;
        let chain = c
            .wait_for("the bundle served", SERVE_LAG, || {
                let client = client.clone();
                async move {
                    let chain = handshake_chain(&client, port, Some("ec256.example.test")).await?;
                    if chain.len() > 1 {
                        Ok(chain)
                    } else {
                        Err(format!("{} certificate(s) served", chain.len()))
                    }
                }
            })
            .await;
        assert_eq!(chain.len(), 2, "{}: leaf and intermediate only", node.label);
        assert!(!chain.contains(&root), "{} sent the root", node.label);
        let alone = handshake_chain(&client, port, Some(&self_signed))
            .await
            .expect("the self-signed bundle");
        assert_eq!(alone.len(), 1, "{}", node.label);
    }
    // The export still carries the root.
    let r = c
        .api(leader)
        .post(
            "/api/v1/certs/ec256.example.test/export",
            &json!({"format": "pem"}),
        )
        .await
        .ok("export");
    let pem_text = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            r["data"].as_str().expect("data"),
        )
        .expect("base64"),
    )
    .expect("PEM");
    assert_eq!(
        pem_text.matches("BEGIN CERTIFICATE").count(),
        3,
        "{pem_text}"
    );
}
