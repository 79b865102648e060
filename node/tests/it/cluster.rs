//! Real `certraft-node` processes: bootstrap, joins, imports through any node, failover,
//! catch-up (by log and by snapshot), whole-cluster restarts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use crate::support::cluster::{pem_cert_der, Cluster, Options, Readyz, PATIENCE};
use crate::support::uploads::{
    fixture_import, fixture_passphrase, wrong_fixture_passphrase, TestCert,
};
use crate::support::{fixtures_dir, have_openssl};

/// Imports a fresh generated bundle for `host` through node `i`; panics unless acknowledged.
/// Returns the commit index.
async fn import_generated(c: &Cluster, i: usize, host: &str) -> u64 {
    let r = c
        .api(i)
        .post("/api/v1/certs", &TestCert::new(host).import(None))
        .await
        .ok(&format!("import {host} via {}", c.nodes[i].label));
    assert_eq!(r["outcome"], "imported", "{r}");
    r["index"]
        .as_u64()
        .expect("a committed import names its index")
}

/// Waits until node `i` has applied at least `index`.
async fn wait_applied(c: &Cluster, i: usize, index: u64) -> Readyz {
    let what = format!("{} to apply log index {index}", c.nodes[i].label);
    c.wait_for(&what, PATIENCE, || async move {
        let r = c.readyz(i).await?;
        match r.last_applied() {
            Some(a) if a >= index => Ok(r),
            _ => Err(r.to_string()),
        }
    })
    .await
}

/// `certraft-node run` given only its three ports, started in an empty directory, is a working
/// appliance: it bootstraps `./certraft-data` (admin token 0600 and printed once, the CA in
/// `ca.pem` and served as `/api/v1/trust`), is healthy and ready as the leader of a one-node
/// cluster, and takes an OpenSSL PKCS#12 import that the certificate list then shows.
#[tokio::test(flavor = "multi_thread")]
async fn run_with_only_ports_bootstraps_a_working_appliance_in_the_working_dir() {
    let mut c = Cluster::new(Options {
        default_data_dir: true,
        ..Options::default()
    });
    let n = c.bootstrap().await;
    let node = &c.nodes[n];
    let data = node.cwd.join("certraft-data");
    assert_eq!(node.data_dir, data);

    // The token: in DATA/admin.token, owner-only, and not printed (stdout ends up in
    // `docker logs` and the journal) unless --print-token asks for it.
    let token_file = data.join("admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "admin.token mode {mode:o}");
    }
    assert!(c.token.starts_with("cra1_"), "token {:?}", c.token);
    assert!(
        !node.stdout().contains(&c.token),
        "stdout:\n{}",
        node.stdout()
    );
    assert!(
        node.stdout().contains("admin.token"),
        "stdout says where the token is:\n{}",
        node.stdout()
    );
    assert!(!node.stderr().contains(&c.token), "the token is in the log");

    // The CA: DATA/ca.pem is what the node serves as its trust anchor.
    let ca_der = pem_cert_der(&data.join("ca.pem"));
    let api = c.api(n);
    let trust = api.with_token(None).get("/api/v1/trust").await;
    assert_eq!(trust.status, 200, "{trust}");
    assert_eq!(
        pem::parse(&trust.text).unwrap().contents(),
        ca_der.as_slice()
    );

    let health = api.get("/healthz").await;
    assert_eq!((health.status, health.text.trim()), (200, "ok"));
    let ready = api.get("/readyz").await.ok("readyz");
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["leader"], 1, "{ready}");
    assert_eq!(ready["state"], "leader", "{ready}");
    assert_eq!(ready["voting"], true, "{ready}");

    let pass = fixture_passphrase();
    let imported = api
        .post(
            "/api/v1/certs",
            &fixture_import(&["ec256.p12"], Some(&pass)),
        )
        .await
        .ok("import ec256.p12");
    assert_eq!(imported["outcome"], "imported", "{imported}");
    assert_eq!(imported["name"], "ec256.example.test", "{imported}");
    assert_eq!(imported["completeness"], "complete", "{imported}");

    let list = api.certs().await;
    let cert = list
        .get("ec256.example.test")
        .unwrap_or_else(|| panic!("{}", list.0));
    assert_eq!(cert["id"], imported["id"]);
    assert_eq!(cert["status"], "active");
    assert_eq!(
        cert["hostnames"],
        json!(["ec256.example.test", "www.ec256.example.test"])
    );
}

/// One import case of the format table.
struct Case {
    what: &'static str,
    files: &'static [&'static str],
    passphrase: bool,
    name: Option<&'static str>,
    outcome: &'static str,
    /// The bundle id equals that of `ec256.p12` (same key, leaf and chain).
    same_as_ec256: bool,
    completeness: &'static str,
}

/// A three-node cluster (bootstrap + two joins, the second through a follower) promotes both
/// joiners to voters; an import sent to a follower is forwarded to the leader; every import
/// format is accepted through any node (the same bundle in another container is recognised
/// as already present); refused imports answer 422 with the failing check's code and change
/// nothing; rotate moves the name and default to the new bundle and retires the old; removal
/// of the default or of a hostname's only server is refused unless forced; and a PKCS#12
/// export is read by the real `openssl pkcs12` without `-legacy`.
#[tokio::test(flavor = "multi_thread")]
async fn three_node_cluster_imports_every_format_through_any_node_and_guards_changes() {
    let c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let follower = c.other_than(leader);
    let pass = fixture_passphrase();

    // Forwarded: the follower hands the import to the leader.
    let first = c
        .api(follower)
        .post(
            "/api/v1/certs",
            &fixture_import(&["ec256.p12"], Some(&pass)),
        )
        .await
        .ok("import ec256.p12 via a follower");
    assert_eq!(first["outcome"], "imported", "{first}");
    let ec256_id = first["id"].as_str().unwrap().to_string();

    let cases = [
        Case {
            what: "legacy PKCS#12 (RC2-40 certs, 3DES key, SHA-1 MAC)",
            files: &["ec256-legacy.p12"],
            passphrase: true,
            name: None,
            outcome: "already_present",
            same_as_ec256: true,
            completeness: "complete",
        },
        Case {
            what: "PEM leaf + PKCS#8 key + chain",
            files: &["leaf-ec256.pem", "ec256.key", "chain.pem"],
            passphrase: false,
            name: None,
            outcome: "already_present",
            same_as_ec256: true,
            completeness: "complete",
        },
        Case {
            what: "DER leaf + scrypt-encrypted PKCS#8 + intermediate",
            files: &["leaf-ec256.der", "ec256.enc-scrypt.pem", "inter.pem"],
            passphrase: true,
            name: Some("ec256-no-root"),
            outcome: "imported",
            same_as_ec256: false,
            completeness: "no-root",
        },
        Case {
            what: "RSA 2048 PEM leaf + key + chain",
            files: &["leaf-rsa2048.pem", "rsa2048.key", "chain.pem"],
            passphrase: false,
            name: None,
            outcome: "imported",
            same_as_ec256: false,
            completeness: "complete",
        },
        Case {
            what: "legacy RSA PKCS#12",
            files: &["rsa2048-legacy.p12"],
            passphrase: true,
            name: None,
            outcome: "already_present",
            same_as_ec256: false,
            completeness: "complete",
        },
        Case {
            what: "Ed25519 PKCS#12",
            files: &["ed25519.p12"],
            passphrase: true,
            name: None,
            outcome: "imported",
            same_as_ec256: false,
            completeness: "complete",
        },
    ];
    for (k, case) in cases.iter().enumerate() {
        let via = k % c.nodes.len();
        let mut body = fixture_import(case.files, case.passphrase.then_some(pass.as_str()));
        if let Some(name) = case.name {
            body["name"] = json!(name);
        }
        let r = c.api(via).post("/api/v1/certs", &body).await;
        let r = r.ok(&format!("{} via {}", case.what, c.nodes[via].label));
        assert_eq!(r["outcome"], case.outcome, "{}: {r}", case.what);
        assert_eq!(r["completeness"], case.completeness, "{}: {r}", case.what);
        assert_eq!(
            r["id"] == ec256_id.as_str(),
            case.same_as_ec256,
            "{}: {r}",
            case.what
        );
    }
    let list = c.api(leader).certs().await;
    let names: Vec<String> = list.ids().into_keys().collect();
    assert_eq!(
        names,
        [
            "ec256-no-root",
            "ec256.example.test",
            "ed25519.example.test",
            "rsa2048.example.test"
        ],
        "{}",
        list.0
    );
    assert!(list.get("rsa2048.example.test").unwrap()["key"]
        .as_str()
        .unwrap()
        .contains("2048"));

    // Refusals: 422 with the failing check's code; nothing changes anywhere.
    let wrong = wrong_fixture_passphrase();
    let refusals: [(&str, &[&str], Option<&str>, &str); 3] = [
        (
            "expired leaf",
            &["leaf-expired.pem", "expired.key", "chain.pem"],
            None,
            "expired",
        ),
        (
            "wrong passphrase",
            &["ec256.p12"],
            Some(&wrong),
            "wrong_passphrase",
        ),
        (
            "key of another certificate",
            &["fullchain-ec256.pem", "ec384.key"],
            None,
            "key_mismatch",
        ),
    ];
    let before = c.api(leader).certs().await.ids();
    for (k, (what, files, passphrase, code)) in refusals.into_iter().enumerate() {
        let via = k % c.nodes.len();
        let r = c
            .api(via)
            .post("/api/v1/certs", &fixture_import(files, passphrase))
            .await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (422, code),
            "{what}: {r}"
        );
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(!message.is_empty(), "{what}: {r}");
    }
    for i in 0..c.nodes.len() {
        assert_eq!(
            c.api(i).certs().await.ids(),
            before,
            "after refusals, via node {i}"
        );
    }

    // Rotate: the new bundle takes the name and the default role; the old one is retired.
    let old = TestCert::new("rotate.example.test");
    let new = TestCert::new("rotate.example.test");
    let mut body = old.import(None);
    body["make_default"] = json!(true);
    let imported = c
        .api(follower)
        .post("/api/v1/certs", &body)
        .await
        .ok("import old");
    assert_eq!(imported["name"], "rotate.example.test");
    let rotated = c
        .api(follower)
        .post(
            "/api/v1/certs/rotate.example.test/rotate",
            &json!({ "files": new.files() }),
        )
        .await
        .ok("rotate");
    assert_eq!(rotated["old"], "rotate.example.test", "{rotated}");
    assert_eq!(rotated["new"], "rotate.example.test", "{rotated}");
    let retired_as = rotated["retired_as"].as_str().unwrap().to_string();
    assert_ne!(retired_as, "rotate.example.test");
    let list = c.api(leader).certs().await;
    let current = list.get("rotate.example.test").unwrap();
    assert_eq!(current["id"], rotated["id"]);
    assert_ne!(current["id"], imported["id"]);
    assert_eq!(current["status"], "active");
    assert_eq!(current["is_default"], true);
    let retired = list
        .get(&retired_as)
        .unwrap_or_else(|| panic!("{}", list.0));
    assert_eq!(retired["id"], imported["id"]);
    assert_eq!(retired["status"], "retired");
    assert_eq!(list.default(), Some("rotate.example.test"));

    // Removal guards.
    let r = c
        .api(follower)
        .delete("/api/v1/certs/rotate.example.test")
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "is_default"),
        "{r}"
    );
    let r = c
        .api(follower)
        .delete("/api/v1/certs/rsa2048.example.test")
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "only_server"),
        "{r}"
    );
    c.api(follower)
        .delete("/api/v1/certs/rotate.example.test?force=true")
        .await
        .ok("forced removal of the default");
    let list = c.api(leader).certs().await;
    assert!(list.get("rotate.example.test").is_none(), "{}", list.0);
    assert!(list.get("rsa2048.example.test").is_some(), "{}", list.0);
    assert_eq!(list.default(), None);

    // Export: PKCS#12 that OpenSSL 3 reads without -legacy.
    let exported = c
        .api(follower)
        .post(
            "/api/v1/certs/ec256.example.test/export",
            &json!({"format": "p12", "passphrase": pass}),
        )
        .await
        .ok("export p12");
    assert_eq!(exported["warnings"], json!([]), "{exported}");
    let p12 = STANDARD.decode(exported["data"].as_str().unwrap()).unwrap();
    if have_openssl() {
        let file = c.dir.path().join("export.p12");
        std::fs::write(&file, &p12).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkcs12", "-in"])
            .arg(&file)
            .arg("-passin")
            .arg(format!(
                "file:{}",
                fixtures_dir().join("pass.txt").display()
            ))
            .arg("-nokeys")
            .output()
            .expect("run openssl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "openssl pkcs12 failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.matches("BEGIN CERTIFICATE").count(), 3, "{stdout}");
        assert!(stdout.contains("ec256.example.test"), "{stdout}");
    }
}

/// kill -9 of the leader: the survivors elect a new leader among themselves and accept writes;
/// the killed node, restarted on its data dir, catches up with what was written while it was
/// down (its applied index reaches the leader's) and answers for those bundles.
#[tokio::test(flavor = "multi_thread")]
async fn killed_leader_is_replaced_and_catches_up_after_restart() {
    let mut c = Cluster::start(3, Options::default()).await;
    let old = c.leader().await;
    let old_id = c.nodes[old].id;
    import_generated(&c, old, "before-kill.example.test").await;

    c.kill(old);
    let new = c.leader().await;
    assert_ne!(new, old);
    let mut last = 0;
    for (k, host) in ["down-1.example.test", "down-2.example.test"]
        .iter()
        .enumerate()
    {
        let via = [new, c.other_than(new)][k % 2];
        last = import_generated(&c, via, host).await;
    }
    assert_ne!(c.readyz(new).await.unwrap().leader(), Some(old_id));

    c.restart(old).await;
    let leader_applied = c.readyz(new).await.unwrap().last_applied().unwrap();
    let caught_up = wait_applied(&c, old, leader_applied.max(last)).await;
    assert!(caught_up.ready(), "{caught_up}");
    let list = c.api(old).certs().await;
    for name in [
        "before-kill.example.test",
        "down-1.example.test",
        "down-2.example.test",
    ] {
        assert!(list.get(name).is_some(), "{name} missing: {}", list.0);
    }
}

/// With snapshots every 5 entries, a follower killed while 20 imports commit comes back to a
/// leader that has purged the log it lacks: it catches up by installing a snapshot (its
/// snapshot index reaches at least the leader's purge point) and then has every bundle.
/// (Also pins: `CERTRAFT_SNAPSHOT_EVERY=5` used not to purge anything until 256 entries lay
/// behind the snapshot.)
#[tokio::test(flavor = "multi_thread")]
async fn follower_behind_purged_log_catches_up_by_snapshot() {
    let mut c = Cluster::start(3, Options::default().env("CERTRAFT_SNAPSHOT_EVERY", "5")).await;
    let leader = c.leader().await;
    let down = c.other_than(leader);
    let had = c.readyz(down).await.unwrap().last_log_index().unwrap_or(0);
    c.kill(down);

    let hosts: Vec<String> = (0..20).map(|k| format!("snap-{k}.example.test")).collect();
    for host in &hosts {
        import_generated(&c, leader, host).await;
    }
    let purged = c
        .wait_for(
            "the leader to purge its log past what the stopped follower has",
            PATIENCE,
            || async {
                let r = c.readyz(leader).await?;
                match r.purged_index() {
                    Some(p) if p > had => Ok(p),
                    _ => Err(format!("follower had {had}; leader {r}")),
                }
            },
        )
        .await;

    c.restart(down).await;
    let leader_applied = c.readyz(leader).await.unwrap().last_applied().unwrap();
    let r = wait_applied(&c, down, leader_applied).await;
    let snapshot = r
        .snapshot_index()
        .unwrap_or_else(|| panic!("no snapshot: {r}"));
    assert!(
        snapshot >= purged,
        "snapshot index {snapshot} < leader's purge point {purged}: {r}"
    );
    let list = c.api(down).certs().await;
    for host in &hosts {
        assert!(list.get(host).is_some(), "{host} missing: {}", list.0);
    }
}

/// Regression: a join that arrived while another membership change (a join, or the automatic
/// promotion of a caught-up voter) was uncommitted failed with 503 after its token had been
/// consumed, and the forwarding node's retry then got 409 `join_token_invalid`. Three nodes
/// started at the same moment, each with its own token and joining through a different
/// member, all join and become voters.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_joins_all_become_voters() {
    let mut c = Cluster::start(3, Options::default()).await;
    let joined = c.join_together(&[0, 1, 2]).await;
    assert_eq!(joined.len(), 3);
    c.wait_all_voting().await;
    let leader = c.leader().await;
    let status = c
        .api(leader)
        .get("/api/v1/cluster")
        .await
        .ok("cluster status");
    let voters = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voting"] == true)
        .count();
    assert_eq!(voters, 6, "{status}");
}

/// Regression: a node that had just joined knew the leader's id before the membership naming
/// the leader's address reached it (here: by a snapshot, the log being purged), and answered
/// 503 "leader 1 has no known address" instead of forwarding. Requests through a node that
/// is still catching up are forwarded once it learns the address.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_just_joined_forwards_requests_while_catching_up() {
    let mut c = Cluster::new(
        Options::default()
            .env("CERTRAFT_SNAPSHOT_EVERY", "5")
            .env("CERTRAFT_PRINT_TOKEN", "true"),
    );
    c.bootstrap().await;
    // --print-token (here by its variable): the first token on stdout exactly once.
    assert_eq!(c.nodes[0].stdout().matches(&c.token).count(), 1);
    for k in 0..12 {
        import_generated(&c, 0, &format!("early-{k}.example.test")).await;
    }
    let new = c.join(0).await;
    // At once, before the new node is caught up: a read and a write through it.
    let list = c.api(new).certs().await;
    assert!(list.get("early-11.example.test").is_some(), "{}", list.0);
    import_generated(&c, new, "through-new.example.test").await;
    let token = c
        .api(new)
        .post("/api/v1/cluster/join-tokens", &json!({"role": "voter"}))
        .await;
    assert_eq!(token.status, 200, "{token}");
}

/// SIGTERM to all three nodes stops each cleanly (exit 0); started again on the same data
/// dirs, without join flags, they form the same cluster with every bundle and the default.
#[tokio::test(flavor = "multi_thread")]
async fn whole_cluster_restart_keeps_every_bundle() {
    let mut c = Cluster::start(3, Options::default()).await;
    let hosts: Vec<String> = (0..5).map(|k| format!("keep-{k}.example.test")).collect();
    for (k, host) in hosts.iter().enumerate() {
        import_generated(&c, k % 3, host).await;
    }
    c.api(1)
        .call(
            reqwest::Method::PUT,
            "/api/v1/default",
            Some(&json!({"name": hosts[2]})),
        )
        .await
        .ok("set default");
    let before = c.api(0).certs().await;

    let all: Vec<usize> = (0..c.nodes.len()).collect();
    for (i, status) in all.iter().zip(c.stop(&all).await) {
        assert!(
            status.success(),
            "{} stopped with {status}",
            c.nodes[*i].label
        );
    }
    for &i in &all {
        c.restart(i).await;
    }
    c.wait_all_voting().await;
    let leader = c.leader().await;
    let after = c.api(leader).certs().await;
    assert_eq!(after.ids(), before.ids());
    assert_eq!(after.default(), Some(hosts[2].as_str()));
    for i in all {
        assert_eq!(c.api(i).certs().await.ids(), before.ids(), "via node {i}");
    }
}

/// Imports stream through a follower while the leader is killed with -9 midway: some fail
/// while there is no leader, the rest succeed under the new one, and every import that was
/// answered 200 is present afterwards, on the survivors and on the restarted old leader.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_imports_survive_a_leader_kill() {
    const N: usize = 30;
    let mut c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let entry = c.other_than(leader);
    let api = c.api(entry);
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            for k in 0..N {
                let host = format!("ack-{k}.example.test");
                let r = api
                    .send(
                        reqwest::Method::POST,
                        "/api/v1/certs",
                        Some(&TestCert::new(&host).import(None)),
                    )
                    .await;
                let outcome = match r {
                    Ok(r) if r.status == 200 => Ok(r.json()["index"].as_u64().unwrap_or(0)),
                    Ok(r) => Err(r.to_string()),
                    Err(e) => Err(e),
                };
                results.push((host, outcome));
                done.fetch_add(1, Ordering::SeqCst);
            }
            results
        })
    };
    let third = N / 3;
    c.wait_for("a third of the imports to be answered", PATIENCE, || {
        let n = done.load(Ordering::SeqCst);
        async move {
            if n >= third {
                Ok(())
            } else {
                Err(format!("{n} answered"))
            }
        }
    })
    .await;
    c.kill(leader);
    // Imports answered before this point were sent before the kill.
    let answered_before_kill = done.load(Ordering::SeqCst);
    let results = writer.await.expect("writer task");
    let acked: BTreeMap<&str, u64> = results
        .iter()
        .filter_map(|(h, r)| r.as_ref().ok().map(|i| (h.as_str(), *i)))
        .collect();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(h, r)| r.as_ref().err().map(|e| format!("{h}: {e}")))
        .collect();
    eprintln!(
        "{} of {N} imports acknowledged, the leader killed after {answered_before_kill}; failed: {failed:#?}",
        acked.len()
    );
    assert!(
        results[answered_before_kill + 1..]
            .iter()
            .any(|(_, r)| r.is_ok()),
        "no import succeeded after the leader was killed: {results:#?}"
    );

    let new = c.leader().await;
    assert_ne!(new, leader);
    c.restart(leader).await;
    let max = acked.values().copied().max().unwrap_or(0);
    for i in 0..c.nodes.len() {
        wait_applied(&c, i, max).await;
        let list = c.api(i).certs().await;
        for host in acked.keys() {
            assert!(
                list.get(host).is_some(),
                "{host} was acknowledged but is missing (via {}): {}",
                c.nodes[i].label,
                list.0
            );
        }
    }
}

/// Runs `certraft-node` offline (`recover`, `admin-token`) on a stopped node's data dir.
fn offline(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_certraft-node"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run certraft-node offline")
}

/// Break-glass: with the other two voters gone for good, `recover --force-single-node` turns
/// the survivor into a one-node cluster that keeps every bundle it held and accepts writes;
/// an admin token made offline with `admin-token` on it is valid once it runs. Without
/// `--force-single-node`, `recover` refuses (exit 2) and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn recover_makes_a_lone_survivor_a_working_cluster() {
    let mut c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let index = import_generated(&c, leader, "kept.example.test").await;
    let survivor = c.other_than(leader);
    wait_applied(&c, survivor, index).await;
    for i in c.running() {
        c.kill(i);
    }
    let data = c.nodes[survivor].data_dir.clone();

    let refused = offline(&["recover"], &data);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    // The other voters must be named dead, every one of them.
    let others: Vec<String> = (0..3)
        .filter(|&i| i != survivor)
        .map(|i| c.nodes[i].id.to_string())
        .collect();
    let unnamed = offline(&["recover", "--force-single-node"], &data);
    assert_eq!(unnamed.status.code(), Some(2), "{unnamed:?}");
    let said = String::from_utf8_lossy(&unnamed.stderr);
    assert!(
        said.contains(&format!("--dead {}", others.join(","))),
        "{said}"
    );
    let done = offline(
        &[
            "recover",
            "--force-single-node",
            "--dead",
            &others.join(","),
        ],
        &data,
    );
    assert!(done.status.success(), "{done:?}");
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        said.contains("keeping every entry it held up to log index"),
        "{said}"
    );
    // Regression (review item 11): a bad name used to exit 0 with a token that never worked.
    let bad = offline(&["admin-token", "--name", "bad name"], &data);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid token name"));
    let minted = offline(&["admin-token", "--name", "rescue"], &data);
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8(minted.stdout).expect("token is text");
    let token = token.trim();
    assert!(token.starts_with("cra1_"), "{token}");

    c.restart(survivor).await;
    let api = c.api(survivor).with_token(Some(token));
    let r = c
        .wait_for(
            "the survivor to lead alone and accept the offline token",
            PATIENCE,
            || {
                let api = api.clone();
                async move {
                    let list = api.get("/api/v1/certs").await;
                    if list.status == 200 {
                        Ok(list)
                    } else {
                        Err(list.to_string())
                    }
                }
            },
        )
        .await;
    assert!(
        r.json()["certs"]
            .as_array()
            .is_some_and(|a| a.iter().any(|b| b["name"] == "kept.example.test")),
        "{r}"
    );
    let imported = api
        .post(
            "/api/v1/certs",
            &TestCert::new("after-recover.example.test").import(None),
        )
        .await
        .ok("import after recover");
    assert_eq!(imported["outcome"], "imported");
    let audit = api.get("/api/v1/audit").await.ok("audit");
    assert!(
        audit.to_string().contains("create admin token rescue"),
        "{audit}"
    );

    // An old member restarted with its old data dir is refused by the recovered node and
    // told why and how to rejoin (its certificate is revoked); the survivor still leads.
    let old = (0..3).find(|&i| i != survivor).unwrap();
    c.restart(old).await;
    c.wait_for("the old member to be told it was removed", PATIENCE, || {
        let log = c.nodes[old].stdout() + &c.nodes[old].stderr();
        async move {
            if log.contains("was removed from this cluster (the cluster was re-formed by `recover` since: epoch 1)")
                && log.contains("join it again with a join token")
            {
                Ok(())
            } else {
                Err(log)
            }
        }
    })
    .await;
    let ready = c.wait_ready(survivor).await;
    assert_eq!(ready.leader(), Some(c.nodes[survivor].id), "{ready}");
    let list = api.get("/api/v1/certs").await;
    assert_eq!(list.status, 200, "{list}");
}

/// Regression (issue 22, split brain): `recover` on a killed follower while the other two
/// kept running made a second cluster beside them, both accepting writes. Now it refuses and
/// changes nothing: without `--dead` (exit 2), and with `--dead` naming the live voters
/// (exit 1, naming the ones that answer).
#[tokio::test(flavor = "multi_thread")]
async fn recover_refuses_while_the_other_voters_answer() {
    let mut c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let victim = c.other_than(leader);
    c.kill(victim);
    let data = c.nodes[victim].data_dir.clone();
    // What the store holds (redb may rewrite its file when opened after a kill, so the
    // bytes of raft.redb are not compared): the snapshot file and the last membership.
    let stored = |data: &std::path::Path| {
        (
            std::fs::read(data.join("raft.snapshot")).ok(),
            format!(
                "{:?}",
                certraft::store::last_membership(&data.join("raft.redb")).unwrap()
            ),
        )
    };
    let before = stored(&data);
    let others: Vec<String> = (0..3)
        .filter(|&i| i != victim)
        .map(|i| c.nodes[i].id.to_string())
        .collect();
    let unnamed = offline(&["recover", "--force-single-node"], &data);
    assert_eq!(unnamed.status.code(), Some(2), "{unnamed:?}");
    let named = offline(
        &[
            "recover",
            "--force-single-node",
            "--dead",
            &others.join(","),
        ],
        &data,
    );
    assert_eq!(named.status.code(), Some(1), "{named:?}");
    let said = String::from_utf8_lossy(&named.stderr);
    for i in (0..3).filter(|&i| i != victim) {
        assert!(
            said.contains(&format!("node {} answers at", c.nodes[i].id)),
            "{said}"
        );
    }
    assert!(said.contains("Nothing was changed"), "{said}");
    assert!(
        before == stored(&data),
        "the refused recover changed the store"
    );
    // The node comes back as a follower of the running cluster.
    c.restart(victim).await;
    let ready = c.wait_ready(victim).await;
    assert_eq!(
        ready.leader(),
        Some(c.nodes[c.leader().await].id),
        "{ready}"
    );
}

/// Regression (issue 22's first reproduction, end to end): a backup written by
/// `backup::write` that holds one bundle under two names, restored through the route, then
/// a default import; a node that joins afterwards catches up from a snapshot. Every node
/// shows the same state digest at the same applied index (before, a snapshot-restored
/// replica rebuilt the id index differently and answered later changes differently).
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_with_one_bundle_under_two_names_leaves_every_replica_identical() {
    let mut c = Cluster::start(2, Options::default().env("CERTRAFT_SNAPSHOT_EVERY", "3")).await;
    let leader = c.leader().await;
    let dup = TestCert::new("dup.example.test");
    let entry = |name: &str| certraft::backup::BackupBundle {
        name: name.into(),
        retired: false,
        key_pkcs8: zeroize::Zeroizing::new(dup.key_der.clone()),
        certs: vec![dup.cert_der.clone()],
    };
    let pass = "correct horse battery staple";
    let file = certraft::backup::write(
        vec![entry("alpha"), entry("zeta")],
        Some("zeta".into()),
        &certraft::bundle::Passphrase::new(pass),
    )
    .unwrap();
    let restored = c
        .api(leader)
        .post(
            "/api/v1/backup/restore",
            &json!({"data": STANDARD.encode(&file), "passphrase": pass}),
        )
        .await
        .ok("restore the backup");
    assert_eq!(restored["restored"], json!(["alpha"]), "{restored}");
    for i in 0..4 {
        let mut body = TestCert::new(&format!("later{i}.example.test")).import(None);
        body["make_default"] = json!(i == 3);
        c.api(leader)
            .post("/api/v1/certs", &body)
            .await
            .ok("an import after the restore");
    }
    let learner = c.join_as(leader, "learner").await;
    c.wait_ready(learner).await;
    c.assert_one_state().await;
    let snapshot = c.api(learner).readyz().await.unwrap();
    assert!(
        snapshot.0["snapshot_index"].as_u64().is_some(),
        "the joiner did not catch up from a snapshot: {snapshot}"
    );
}

/// Regression (issue 13): a dry run decides by running `apply` on a copy of the state, so it
/// answers what the real import would. The same bundle under an invalid name is
/// `invalid_name` for both (the old dry run checked "already present" first and said
/// `already_present`); a new bundle under a taken name is `name_taken` for both.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_answers_what_the_import_would() {
    let mut c = Cluster::new(Options::default());
    c.bootstrap().await;
    let cert = TestCert::new("dry.example.test");
    c.api(0)
        .post("/api/v1/certs", &cert.import(Some("dry")))
        .await
        .ok("import");
    for (body, code) in [
        (cert.import(Some("-bad")), "invalid_name"),
        (
            TestCert::new("other.example.test").import(Some("dry")),
            "name_taken",
        ),
    ] {
        let mut dry = body.clone();
        dry["dry_run"] = json!(true);
        let d = c.api(0).post("/api/v1/certs", &dry).await;
        let r = c.api(0).post("/api/v1/certs", &body).await;
        assert_eq!(r.error_code(), code, "{r}");
        assert_eq!(
            (d.status, d.error_code()),
            (r.status, r.error_code()),
            "dry run {d} vs import {r}"
        );
    }
}

/// Issue 22's crash injection: a bootstrap killed right after each of its steps (the marker
/// written, the admin token written, the identity written, Raft initialized) comes back on
/// the next start as a working one-node cluster: it leads, and the token in
/// `DATA/admin.token` works.
#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_crashed_after_any_step_comes_back_working() {
    for step in ["marker", "token", "identity", "initialized"] {
        let mut c = Cluster::new(Options::default());
        let i = c.bootstrap_crashing_at(step).await;
        c.restart(i).await;
        let ready = c.adopt_bootstrap(i).await;
        assert_eq!(ready.leader(), Some(c.nodes[i].id), "after {step}: {ready}");
        c.api(i)
            .get("/api/v1/certs")
            .await
            .ok(&format!("the admin token after a crash after {step}"));
        assert!(
            !c.nodes[i].data_dir.join("bootstrap.pending").exists(),
            "after {step}: the bootstrap marker is left behind"
        );
    }
}

/// Regression (issue 22, bootstrap crash window): `node.json` was written and the admin
/// token printed before Raft was initialized, so a crash in between left a node that never
/// became ready and logged nothing. The data dir as such a crash leaves it (the identity,
/// the secrets, the pending token and `bootstrap.pending`, but an empty Raft store) now
/// finishes its bootstrap on the next start: it leads, and the printed token works.
#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_interrupted_before_raft_was_initialized_resumes() {
    let mut c = Cluster::new(Options::default());
    c.bootstrap().await;
    c.stop(&[0]).await;
    let data = c.nodes[0].data_dir.clone();
    for store in ["raft.redb", "raft.snapshot"] {
        let _ = std::fs::remove_file(data.join(store));
    }
    std::fs::write(data.join("bootstrap.pending"), b"").unwrap();
    let dd = certraft::datadir::DataDir::new(&data);
    dd.write_pending_admin_token("admin", &certraft::datadir::token_hash(&c.token))
        .unwrap();
    c.restart(0).await;
    let ready = c.wait_ready(0).await;
    assert_eq!(ready.leader(), Some(c.nodes[0].id), "{ready}");
    c.api(0)
        .get("/api/v1/certs")
        .await
        .ok("the printed token works");
    assert!(!data.join("bootstrap.pending").exists());
    assert!(c.nodes[0].stderr().contains("resuming a bootstrap"));
}

/// Removing the leader through a follower answers promptly and the others elect a new
/// leader. Regression: the removal's audit record was proposed by the removed leader, whose
/// entries the remaining voters now refuse, so the answer waited out the whole deadline (the
/// container suite's `replace` fault caught it).
#[tokio::test(flavor = "multi_thread")]
async fn removing_the_leader_answers_promptly_and_the_rest_elect_another() {
    let c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let via = c.other_than(leader);
    let id = c.nodes[leader].id;
    let started = std::time::Instant::now();
    c.api(via)
        .delete(&format!("/api/v1/cluster/nodes/{id}"))
        .await
        .ok("remove the leader");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "the removal took {:?}",
        started.elapsed()
    );
    let (c, via) = (&c, via);
    c.wait_for("another leader", PATIENCE, || async move {
        match c.readyz(via).await {
            Ok(r) if r.leader().is_some_and(|l| l != id) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    c.api(via)
        .post(
            "/api/v1/certs",
            &TestCert::new("after-removal.example.test").import(None),
        )
        .await
        .ok("a write after the leader's removal");
}
