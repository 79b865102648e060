//! The console's own certificate (issue 16) on real nodes, seen through `openssl s_client`
//! on the admin port: the console bundle for its hostname on every node, the node
//! certificate for any other name, no SNI and the API's clients; removal refused; rotation
//! moving the role; the offline `certraft-node console-reset` bringing back the node
//! certificate on a node whose peers are down, then clearing the setting cluster-wide.
//! (The CLI's side, `certraft console …` and `cert show`'s "used by", is in
//! `cli/tests/it/console.rs`.)

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::cluster::{pem_cert_der, Cluster, Options, PATIENCE};
use crate::support::have_openssl;
use crate::support::uploads::TestCert;

const CONSOLE: &str = "console.example.test";

/// How long a node may take to present a change it has applied.
const PRESENT_LAG: Duration = Duration::from_secs(20);

/// The leaf the admin port at `port` presents to `openssl s_client` sending `sni` (none:
/// `-noservername`), as DER.
async fn admin_leaf(port: u16, sni: Option<&str>) -> Result<Vec<u8>, String> {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let run = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .map_err(|_| format!("openssl s_client to {port} ({sni:?}) still running after 20 s"))?
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let begin = stdout.find("-----BEGIN CERTIFICATE-----").ok_or_else(|| {
        format!(
            "no certificate from the admin port {port} for SNI {sni:?}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let block = pem::parse(&stdout[begin..]).map_err(|e| format!("leaf PEM: {e}"))?;
    Ok(block.contents().to_vec())
}

/// Node `i`'s own certificate (`DATA/node.pem`).
fn node_cert(c: &Cluster, i: usize) -> Vec<u8> {
    pem_cert_der(&c.nodes[i].data_dir.join("node.pem"))
}

/// Which certificate a leaf is, for messages.
fn which(c: &Cluster, i: usize, leaf: &[u8], bundles: &[(&str, &TestCert)]) -> String {
    if leaf == node_cert(c, i) {
        return "the node certificate".into();
    }
    bundles
        .iter()
        .find(|(_, t)| t.cert_der == leaf)
        .map(|(n, _)| format!("bundle {n}"))
        .unwrap_or_else(|| "an unknown certificate".into())
}

/// Waits until node `i`'s admin port presents `want` (`None`: its node certificate) for
/// `sni`, then checks that every other name, and no SNI, gets the node certificate.
async fn wait_presents(c: &Cluster, i: usize, sni: &str, want: Option<(&str, &TestCert)>) {
    let port = c.nodes[i].admin;
    let wanted = want.map_or_else(|| node_cert(c, i), |(_, t)| t.cert_der.clone());
    let named: Vec<(&str, &TestCert)> = want.into_iter().collect();
    let what = format!(
        "{}'s admin port to present {} for {sni}",
        c.nodes[i].label,
        want.map_or("the node certificate".into(), |(n, _)| format!(
            "bundle {n}"
        ))
    );
    c.wait_for(&what, PRESENT_LAG, || {
        let (wanted, named) = (&wanted, &named);
        async move {
            let leaf = admin_leaf(port, Some(sni)).await?;
            if &leaf == wanted {
                Ok(())
            } else {
                Err(format!("presented {}", which(c, i, &leaf, named)))
            }
        }
    })
    .await;
    for other in [Some("other.example.test"), Some("localhost"), None] {
        let leaf = admin_leaf(port, other).await.unwrap();
        assert!(
            leaf == node_cert(c, i),
            "{}: SNI {other:?} got {}",
            c.nodes[i].label,
            which(c, i, &leaf, &named)
        );
    }
}

async fn import(c: &Cluster, i: usize, cert: &TestCert, name: &str) {
    let r = c
        .api(i)
        .post("/api/v1/certs", &cert.import(Some(name)))
        .await
        .ok(&format!("import {name}"));
    assert_eq!(r["outcome"], "imported", "{r}");
}

async fn console(c: &Cluster, i: usize) -> Value {
    c.api(i)
        .get("/api/v1/console")
        .await
        .ok("GET /api/v1/console")
}

/// The admin port presents the console bundle to clients asking for its hostname, on every
/// node (set through a follower), and the node certificate to every other name, to no SNI
/// and to the API's clients, which keep working. The console's bundle cannot be removed,
/// `--force` or not; `cert show` lists the use; a rotation to a bundle that covers the
/// hostname moves the role (presented at once), one that does not is refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_port_presents_the_console_bundle_for_its_hostname_only() {
    if !have_openssl() {
        return;
    }
    let c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let follower = c.other_than(leader);
    let first = TestCert::with(&[CONSOLE, "www.example.test"], None);
    import(&c, leader, &first, "console").await;
    for i in 0..3 {
        wait_presents(&c, i, CONSOLE, None).await;
    }

    let set = json!({"name": "console", "hostnames": ["Console.Example.Test"]});
    let r = c
        .api(follower)
        .call(Method::PUT, "/api/v1/console", Some(&set))
        .await
        .ok("set the console certificate through a follower");
    assert_eq!(r["name"], "console", "{r}");
    assert_eq!(r["hostnames"], json!([CONSOLE]), "{r}");
    for i in 0..3 {
        wait_presents(&c, i, CONSOLE, Some(("console", &first))).await;
        // The API's clients connect by address (no SNI) and verify the node certificate.
        assert_eq!(console(&c, i).await["name"], "console");
    }

    // A hostname that is a node's address, a bundle that does not cover the name: refused.
    let bad = [
        (json!({"name": "console", "hostnames": ["localhost"]}), 400),
        (
            json!({"name": "console", "hostnames": ["admin.example.test"]}),
            409,
        ),
    ];
    for (body, status) in bad {
        let r = c
            .api(leader)
            .call(Method::PUT, "/api/v1/console", Some(&body))
            .await;
        assert_eq!(r.status, status, "{body}: {r}");
    }

    for path in ["/api/v1/certs/console", "/api/v1/certs/console?force=true"] {
        let r = c.api(follower).delete(path).await;
        assert_eq!(r.status, 409, "{path}: {r}");
        assert_eq!(r.error_code(), "is_console", "{r}");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("certraft console reset") && message.contains(CONSOLE),
            "{message}"
        );
    }
    let shown = c
        .api(follower)
        .get("/api/v1/certs/console")
        .await
        .ok("show");
    let uses = shown["uses"].as_array().expect("uses").clone();
    assert!(
        uses.iter()
            .any(|u| u["kind"] == "console" && u["hostnames"] == json!([CONSOLE])),
        "{shown}"
    );

    // Rotation: refused when the new bundle does not cover the console's hostname...
    let elsewhere = TestCert::with(&["www.example.test"], None);
    let body = json!({"files": elsewhere.files(), "name": "elsewhere"});
    let r = c
        .api(leader)
        .post("/api/v1/certs/console/rotate", &body)
        .await;
    assert_eq!(r.error_code(), "rotation_loses_console", "{r}");
    // ...and the role moves to one that does.
    let second = TestCert::with(&[CONSOLE, "www.example.test"], None);
    let body = json!({"files": second.files(), "name": "console-2"});
    c.api(follower)
        .post("/api/v1/certs/console/rotate", &body)
        .await
        .ok("rotate the console certificate");
    assert_eq!(console(&c, leader).await["name"], "console-2");
    // The leader answered once it applied the rotation: it presents the new bundle now.
    let leaf = admin_leaf(c.nodes[leader].admin, Some(CONSOLE))
        .await
        .unwrap();
    assert!(
        leaf == second.cert_der,
        "the leader still presents the old bundle"
    );
    for i in 0..3 {
        wait_presents(&c, i, CONSOLE, Some(("console-2", &second))).await;
    }
}

/// `certraft-node console-reset` on a stopped node: refused while the node runs; after it,
/// the node presents its node certificate for the console hostname even with every peer
/// down (its applied state still names the console bundle), and once the peers are back the
/// setting is cleared cluster-wide, audited, and the marker is gone.
#[tokio::test(flavor = "multi_thread")]
async fn the_offline_console_reset_brings_back_the_node_certificate_cluster_wide() {
    if !have_openssl() {
        return;
    }
    let mut c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    let cert = TestCert::new(CONSOLE);
    import(&c, leader, &cert, "console").await;
    let set = json!({"name": "console", "hostnames": [CONSOLE]});
    c.api(leader)
        .call(Method::PUT, "/api/v1/console", Some(&set))
        .await
        .ok("set the console certificate");
    for i in 0..3 {
        wait_presents(&c, i, CONSOLE, Some(("console", &cert))).await;
    }
    let reset = 2;
    let data = c.nodes[reset].data_dir.clone();
    let marker = data.join("console-reset");

    let refused = offline_reset(&data);
    assert!(!refused.status.success(), "refused while running");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop certraft-node"),
        "{refused:?}"
    );
    assert!(!marker.exists());

    c.stop(&[0, 1, 2]).await;
    let out = offline_reset(&data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("node certificate") && stdout.contains("next: start the node"),
        "{stdout}"
    );
    assert!(marker.exists());

    // Alone, with no leader to clear anything: reachable by node address all the same.
    c.restart(reset).await;
    wait_presents(&c, reset, CONSOLE, None).await;
    assert!(marker.exists(), "no leader yet: the reset is not finished");
    assert!(c.nodes[reset]
        .stderr()
        .contains("the admin port presents only this node's certificate"));

    c.restart(0).await;
    c.restart(1).await;
    let c = &c;
    for i in 0..3 {
        let what = format!("{} to report no console certificate", c.nodes[i].label);
        c.wait_for(&what, PATIENCE, || async move {
            let r = c.api(i).get("/api/v1/console").await;
            match r.json()["name"] {
                Value::Null if r.status == 200 => Ok(()),
                _ => Err(r.to_string()),
            }
        })
        .await;
        wait_presents(c, i, CONSOLE, None).await;
    }
    let marker_gone = marker.clone();
    c.wait_for("the reset marker to go", PATIENCE, || {
        let marker = marker_gone.clone();
        async move {
            if marker.exists() {
                Err("still there".to_string())
            } else {
                Ok(())
            }
        }
    })
    .await;
    let audit = c.api(0).get("/api/v1/audit").await.ok("audit");
    let id = c.nodes[reset].id;
    assert!(
        audit["records"].as_array().unwrap().iter().any(|a| {
            a["what"] == "console certificate reset to the node certificate"
                && a["actor"] == format!("node {id} (certraft-node console-reset)")
        }),
        "{audit}"
    );
    // The bundle is an ordinary one again.
    c.api(0)
        .delete("/api/v1/certs/console?force=true")
        .await
        .ok("remove the former console bundle");
}

/// `certraft-node console-reset --data-dir DATA`.
fn offline_reset(data: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_certraft-node"))
        .args(["console-reset", "--data-dir"])
        .arg(data)
        .env("NO_COLOR", "1")
        .output()
        .expect("run certraft-node console-reset")
}
