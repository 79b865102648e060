//! One fault cycle of the container suite with an ACME renewal in flight (issue 15), against
//! a real CA: Debian's `pebble` and `pebble-challtestsrv` run on the host, pebble's ACME
//! listener on the cluster network's gateway (its own HTTPS certificate names that address),
//! its validation authority sent to a traffic node's HTTP-01 port (80 in the image). The
//! register workload of `containers.rs` runs throughout and is checked for linearizability.
//!
//! Needs what `containers.rs` needs (root, a Docker engine, `nsenter`, `iptables`, the image
//! from `images/build.sh`), plus `pebble`, `pebble-challtestsrv` and `openssl`. Without them
//! the test skips with the reason, except under `CI=true`, where it fails. Env: `SEED`.

// Tests: `unwrap` is how a test says "this cannot fail here".
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use certraft_cluster_tests::client::Prober;
use certraft_cluster_tests::cluster::{Cluster, Role, PATIENCE};
use certraft_cluster_tests::docker;
use certraft_cluster_tests::pebble::{Pebble, PebbleOptions};
use certraft_cluster_tests::run::Run;

/// The certificate obtained over ACME, and its one name.
const NAME: &str = "web";
const HOST: &str = "web.acme.test";
/// What pebble's certificates live: the renewal falls due at two thirds (60 s), well inside
/// the test, and the renewed one is not due again before the test ends.
const VALIDITY: Duration = Duration::from_secs(90);
/// The nodes' ACME HTTP-01 port inside the image (`CERTRAFT_HTTP=0.0.0.0:80`).
const HTTP_PORT: u16 = 80;
/// The traffic node, where the name points: it answers every validation.
const TRAFFIC: usize = 3;
/// Long enough for an order to be validated and issued on a loaded 2-core CI machine.
const ACME_PATIENCE: Duration = Duration::from_secs(120);
/// The leader waits this long (`APPLIED_WAIT` in `node/src/node/acme_duties.rs`) for every
/// serving member to confirm it applied an order's challenges before it asks the CA to
/// validate anyway.
const APPLIED_WAIT: Duration = Duration::from_secs(30);

/// A renewal in flight when its leader is cut off from the CA and from the majority:
///
/// 1. 3 voters and a traffic node; the name resolves (for pebble) to the traffic node. The
///    first certificate is served by every node and verifies against pebble's roots.
/// 2. To catch the renewal in flight every time (the CA validates in well under a second),
///    the traffic node drops the leader's connections to its admin port only: the leader
///    opens the renewal's order (`OpenAcmeOrder`, replicated everywhere, challenges answered
///    on every node), then waits up to 30 s for the traffic node to confirm it applied it
///    before asking the CA to validate. The test sees `validating` with a new order and the
///    first certificate still current. (Pebble reuses no authorization here, so the renewal
///    needs a validation of its own.)
/// 3. Then the leader is cut off from the CA's side (nothing passes between it and pebble's
///    listener, not even on a connection already open, and it drops the CA's validation
///    requests to its HTTP-01 port) and from every other node; pebble has validated nothing
///    of the renewal yet. The majority elects a new leader, which carries the same order on
///    and finishes it while the old leader is still cut off: the renewed certificate is
///    served by the majority side while the old leader still serves the first one.
/// 4. Healed: every node serves the renewed certificate (verified by openssl against
///    pebble's roots), pebble issued two certificates on two orders (one more of each only
///    if a retry with a new order was needed, which is printed), and the history is
///    linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_acme_renewal_in_flight_is_finished_by_the_next_leader_when_the_leader_is_cut_off_from_the_ca_and_the_majority(
) {
    let name = "containers-acme-renewal";
    let Some(image) = docker::image_or_skip(name) else {
        return;
    };
    let started = Instant::now();
    let roles = [Role::Voter, Role::Voter, Role::Voter, Role::Learner];
    let c = Cluster::start_containers(&image, &roles).await;
    let gateway: IpAddr = c
        .gateway()
        .expect("a container cluster has a gateway")
        .parse()
        .expect("the gateway is an IP address");
    let Some(ca) = Pebble::start(PebbleOptions {
        http_port: HTTP_PORT,
        tls_port: c.nodes[TRAFFIC].serve,
        certificate_validity: Some(VALIDITY),
        listen_ip: Some(gateway),
        // Every order validated afresh: a reused authorization would make the renewal's
        // order ready at once, with no validation to hold in flight.
        extra_env: vec![("PEBBLE_AUTHZREUSE".into(), "0".into())],
        ..Default::default()
    })
    .await
    else {
        return;
    };
    if let Err(why) = docker::run("openssl", &["version"]) {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{name}: CI=true needs openssl: {why}"
        );
        println!("{name}: skipped: openssl is not installed ({why})");
        return;
    }
    let run = Run::start(&c, name, 3).await;
    let t0 = Instant::now();

    // Once on, ACME entries no longer ask every member first: the traffic node's admin port
    // being unreachable from the leader (step 2) must not hold them back.
    c.wait_for(
        "request version 4 (the ACME entries) to be enabled",
        PATIENCE,
        || async {
            let r = c
                .admin()
                .get(&c.nodes[0].admin_url(), "/api/v1/cluster")
                .await
                .map_err(|e| e.to_string())?;
            let on = r.body["features"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "request_version_4"));
            if on {
                Ok(())
            } else {
                Err(r.to_string())
            }
        },
    )
    .await;

    // 1. The first certificate, validated at the traffic node.
    ca.add_a(HOST, &c.nodes[TRAFFIC].host).await;
    let leader = c.leader().await.expect("a leader");
    let follower = (0..3).find(|&i| i != leader).expect("a follower voter");
    c.call_ok(
        follower,
        Method::POST,
        "/api/v1/issuers/acme",
        Some(&json!({
            "name": "ca",
            "directory": ca.directory_url(),
            "email": "ops@example.com",
            "ca_pem": ca.ca_pem(),
        })),
    )
    .await;
    let asked = c
        .call_ok(
            follower,
            Method::POST,
            "/api/v1/issue",
            Some(&json!({"name": NAME, "sans": [HOST], "issuer": "ca", "challenge": "http-01"})),
        )
        .await;
    assert_eq!(asked.body["state"], "ordering", "{asked}");
    let roots = ca.roots_pem().await;
    let roots_file = c.dir().join("pebble-roots.pem");
    std::fs::write(&roots_file, &roots).unwrap();
    let mut first: Option<Vec<u8>> = None;
    for i in 0..c.nodes.len() {
        let leaf = served(&c, i, None, ACME_PATIENCE, &ca).await;
        assert_eq!(
            first.get_or_insert_with(|| leaf.clone()),
            &leaf,
            "{} serves another certificate than the others",
            c.nodes[i].label
        );
        verified(&c, i, &roots_file).await;
    }
    let first = first.expect("four nodes");
    let first_served = t0.elapsed();
    let state = acme_state(&c, leader).await.unwrap();
    assert_eq!(state["state"], "issued", "{state}");
    let first_id = state["id"].as_str().expect("an id").to_string();
    assert_eq!(
        (ca.orders_count(), ca.validated_count(), ca.issued_count()),
        (1, 1, 1),
        "one order, validated, one certificate\n{}",
        ca.log()
    );

    // 2. The renewal caught in flight (see the doc comment).
    c.drop_port_from(TRAFFIC, leader, c.nodes[TRAFFIC].admin);
    let renewal_order = c
        .wait_for(
            "the renewal's order to open (the leader then waits for the traffic node)",
            VALIDITY + Duration::from_secs(30),
            || async {
                let s = acme_state(&c, leader).await?;
                match s["order_url"].as_str() {
                    Some(url) if s["state"] == "validating" && s["id"] == first_id.as_str() => {
                        Ok(url.to_string())
                    }
                    _ => Err(s.to_string()),
                }
            },
        )
        .await;
    let opened = t0.elapsed();
    assert_eq!(ca.orders_count(), 2, "a new order for the renewal");
    assert_eq!(
        c.leader().await,
        Some(leader),
        "the leader changed on its own before the fault: the renewal was opened by another node"
    );

    // 3. The leader cut off from the CA's side and from the majority.
    let cut = Instant::now();
    let rest: Vec<usize> = (0..c.nodes.len()).filter(|&i| i != leader).collect();
    c.drop_host_server(leader, ca.listen_port());
    c.drop_host_to(leader, HTTP_PORT);
    assert_eq!(
        ca.validated_count(),
        1,
        "the renewal was validated before its leader was cut off: not in flight\n{}",
        ca.log()
    );
    c.partition(leader, &rest);
    let moved = c
        .wait_for(
            "a new leader on the majority side",
            Duration::from_secs(20),
            || async {
                match c.leader_among(&rest).await {
                    Some(l) if l != leader => Ok(l),
                    other => Err(format!("leader {other:?}")),
                }
            },
        )
        .await;
    let elected = cut.elapsed();
    // The new leader waits for the cut-off node to confirm the challenges (it cannot) before
    // it has the CA validate at the traffic node, then finishes the order.
    let mut renewed: Option<Vec<u8>> = None;
    for &i in &rest {
        let leaf = served(&c, i, Some(&first), APPLIED_WAIT + ACME_PATIENCE, &ca).await;
        assert_eq!(
            renewed.get_or_insert_with(|| leaf.clone()),
            &leaf,
            "{} serves another renewed certificate than the others",
            c.nodes[i].label
        );
    }
    let renewed = renewed.expect("three nodes");
    let renewed_after = cut.elapsed();
    let isolated = Prober::default()
        .leaf(&c.nodes[leader].serve_addr(), HOST, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("the cut-off leader stopped serving: {e}"));
    assert_eq!(
        isolated, first,
        "the cut-off leader serves a certificate it cannot have applied"
    );
    let state = acme_state(&c, moved).await.unwrap();
    assert_eq!(state["state"], "issued", "{state}");
    assert!(state["order_url"].is_null(), "{state}");
    let renewed_id = state["id"].as_str().expect("an id").to_string();
    assert_ne!(renewed_id, first_id, "{state}");
    c.heal();

    // 4. Healed: the renewed certificate everywhere, verified; what pebble did.
    for i in 0..c.nodes.len() {
        let leaf = served(&c, i, Some(&first), PATIENCE, &ca).await;
        assert_eq!(
            leaf, renewed,
            "{} serves another certificate",
            c.nodes[i].label
        );
        verified(&c, i, &roots_file).await;
    }
    let (orders, issued) = (ca.orders_count(), ca.issued_count());
    assert!(
        (2..=3).contains(&issued) && (2..=3).contains(&orders),
        "pebble issued {issued} certificates on {orders} orders for {HOST}: the first and the \
         renewal, and at most one retry with a new order\n{}",
        ca.log()
    );
    if issued == 3 || orders == 3 {
        println!("  one retry with a new order: {}", state["last_error"]);
    }
    let same_order = orders == 2;
    let summary = format!(
        "{name}: first certificate served everywhere after {:.1} s; renewal order opened at \
         {:.1} s by {} ({renewal_order}); {} cut off from the CA and the majority, {} led {:.1} s \
         later and finished {} order; renewed certificate (serial {}, was {}) served by the \
         majority {:.1} s after the cut, everywhere after healing; pebble: {orders} orders, \
         {} validations, {issued} certificates",
        first_served.as_secs_f64(),
        opened.as_secs_f64(),
        c.nodes[leader].label,
        c.nodes[leader].label,
        c.nodes[moved].label,
        elected.as_secs_f64(),
        if same_order { "the same" } else { "a new" },
        serial(&renewed),
        serial(&first),
        renewed_after.as_secs_f64(),
        ca.validated_count(),
    );
    run.finish(&c, name).await;
    println!("{summary}; {:.0} s in all", started.elapsed().as_secs_f64());
}

/// `GET /api/v1/acme/NAME` on node `i`.
async fn acme_state(c: &Cluster, i: usize) -> Result<Value, String> {
    let r = c
        .admin()
        .get(&c.nodes[i].admin_url(), &format!("/api/v1/acme/{NAME}"))
        .await
        .map_err(|e| e.to_string())?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(r.to_string())
    }
}

/// Waits until node `i` presents, for `HOST`, a certificate naming it that is not `not`;
/// its DER.
async fn served(
    c: &Cluster,
    i: usize,
    not: Option<&[u8]>,
    limit: Duration,
    ca: &Pebble,
) -> Vec<u8> {
    let prober = Prober::default();
    let addr = c.nodes[i].serve_addr();
    let what = format!(
        "{} to serve {} certificate for {HOST}",
        c.nodes[i].label,
        if not.is_some() {
            "a renewed"
        } else {
            "an ACME"
        }
    );
    let every = Duration::from_millis(100);
    let found = certraft_cluster_tests::process::poll(limit, every, || async {
        let leaf = prober.leaf(&addr, HOST, Duration::from_secs(3)).await?;
        if !leaf.windows(HOST.len()).any(|w| w == HOST.as_bytes()) {
            return Err(format!("a certificate without {HOST} (the default)"));
        }
        if not.is_some_and(|n| n == leaf.as_slice()) {
            return Err("still the first certificate".into());
        }
        Ok(leaf)
    })
    .await;
    found.unwrap_or_else(|last| {
        panic!(
            "timed out after {limit:?} waiting for {what}; last: {last}\n{}\n{}",
            c.log_tails(40),
            ca.log()
        )
    })
}

/// `openssl s_client` verifies what node `i` serves for `HOST` against pebble's roots
/// (`roots`: root and intermediate), name included; panics with openssl's output otherwise.
async fn verified(c: &Cluster, i: usize, roots: &Path) {
    let addr = c.nodes[i].serve_addr();
    let run = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-servername", HOST])
        .args(["-verify_hostname", HOST, "-verify_return_error", "-CAfile"])
        .arg(roots)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap_or_else(|_| panic!("openssl s_client {addr}: no answer within 30 s"))
        .expect("run openssl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Verify return code: 0 (ok)"),
        "openssl did not verify {HOST} on {} ({addr}) against pebble's roots:\n{stdout}\n{}",
        c.nodes[i].label,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The serial number of a DER certificate, as openssl prints it.
fn serial(der: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run openssl");
    child.stdin.take().unwrap().write_all(der).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}
