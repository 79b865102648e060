//! SPEC §5–6 against real nodes: admin authentication, no secret in plaintext on disk or in
//! a log, and the cluster port admitting only current members' certificates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use certraft::pki::ClusterCa;

use crate::support::cluster::{pem_cert_der, Cluster, Options, PATIENCE};
use crate::support::fixture;
use crate::support::peer::{cluster_call, secrets_of};
use crate::support::uploads::{fixture_import, fixture_passphrase, TestCert};

/// Every `/api/v1` route that needs the admin token (the table in `api/dto.rs`), with a body
/// the route would accept in shape.
fn authed_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    let files = json!({"files": [{"name": "a.pem", "data": ""}]});
    vec![
        (Method::GET, "/api/v1/certs", None),
        (Method::POST, "/api/v1/certs", Some(files.clone())),
        (Method::GET, "/api/v1/certs/ec256.example.test", None),
        (
            Method::DELETE,
            "/api/v1/certs/ec256.example.test?force=true",
            None,
        ),
        (
            Method::POST,
            "/api/v1/certs/ec256.example.test/export",
            Some(json!({"format": "pem"})),
        ),
        (
            Method::POST,
            "/api/v1/certs/ec256.example.test/rotate",
            Some(files),
        ),
        (Method::GET, "/api/v1/default", None),
        (
            Method::PUT,
            "/api/v1/default",
            Some(json!({"name": "ec256.example.test"})),
        ),
        (Method::GET, "/api/v1/audit", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/api/v1/cluster", None),
        (
            Method::POST,
            "/api/v1/cluster/join-tokens",
            Some(json!({"role": "voter"})),
        ),
        (Method::DELETE, "/api/v1/cluster/nodes/2", None),
        (
            Method::POST,
            "/api/v1/backup",
            Some(json!({"passphrase": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/backup/restore",
            Some(json!({"data": "", "passphrase": "x"})),
        ),
    ]
}

/// On the leader and on a follower (which forwards to the leader), every authenticated admin
/// route answers 401 `unauthorized` without a token, with a wrong token, with an empty bearer
/// and with another scheme, and changes nothing; `/healthz`, `/readyz` and
/// `GET /api/v1/trust` answer without a token; a join with an unknown secret is refused.
#[tokio::test(flavor = "multi_thread")]
async fn admin_routes_refuse_requests_without_a_valid_token() {
    let c = Cluster::start(2, Options::default()).await;
    let leader = c.leader().await;
    let follower = c.other_than(leader);
    c.api(leader)
        .post(
            "/api/v1/certs",
            &fixture_import(&["leaf-ec256.pem", "ec256.key", "chain.pem"], None),
        )
        .await
        .ok("import with the valid token");
    let before = c.api(leader).certs().await.ids();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(
            certraft::raft::tls::admin_client_config(&c.ca_der).expect("CA as trust anchor"),
        )
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let wrong = format!("cra1_{}", "0".repeat(64));
    let headers: [(&str, Option<String>); 5] = [
        ("no Authorization", None),
        ("a wrong token", Some(format!("Bearer {wrong}"))),
        ("an empty bearer", Some("Bearer ".into())),
        (
            "the token under another scheme",
            Some(format!("Basic {}", c.token)),
        ),
        ("a near-miss token", Some(format!("Bearer {}x", c.token))),
    ];
    let mut limited = 0;
    for node in [leader, follower] {
        let base = c.nodes[node].admin_url();
        for (method, path, body) in authed_routes() {
            for (what, header) in &headers {
                let mut req = client.request(method.clone(), format!("{base}{path}"));
                if let Some(h) = header {
                    req = req.header("authorization", h);
                }
                if let Some(b) = &body {
                    req = req.json(b);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                let code = serde_json::from_str::<Value>(&text).unwrap_or_default()["error"]
                    ["code"]
                    .clone();
                // A source that keeps sending wrong tokens is told to wait (429) after
                // `FAILURES_PER_WINDOW` of them; either way nothing is done.
                let refused = matches!(
                    (status, code.as_str()),
                    (401, Some("unauthorized")) | (429, Some("rate_limited"))
                );
                assert!(
                    refused,
                    "{method} {path} with {what} via {}: {status} {text}",
                    c.nodes[node].label
                );
                if header.is_none() {
                    assert_eq!(status, 401, "no token is never rate-limited: {text}");
                }
                limited += usize::from(status == 429);
            }
        }
        let open = c.api(node).with_token(None);
        for path in ["/healthz", "/readyz", "/api/v1/trust"] {
            let r = open.get(path).await;
            assert_eq!(r.status, 200, "{path} via {}: {r}", c.nodes[node].label);
        }
        let trust = open.get("/api/v1/trust").await;
        assert_eq!(
            pem::parse(&trust.text).unwrap().contents(),
            c.ca_der.as_slice()
        );
        let join = open
            .post(
                "/api/v1/cluster/join",
                &json!({"secret": "f".repeat(48), "cluster_addr": "127.0.0.1:1", "admin_addr": "127.0.0.1:2"}),
            )
            .await;
        assert!(
            ["join_token_invalid", "rate_limited"].contains(&join.error_code().as_str()),
            "{join}"
        );
        assert!(!join.text.contains("ca_key"), "{join}");
    }
    assert!(
        limited > 0,
        "the wrong tokens from one source were never rate-limited"
    );
    // Nothing changed: same bundles, still two voting members.
    assert_eq!(c.api(follower).certs().await.ids(), before);
    c.wait_all_voting().await;
    let status = c
        .api(leader)
        .get("/api/v1/cluster")
        .await
        .ok("cluster status");
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
}

/// Byte strings that must not appear in a file.
struct Needle {
    what: String,
    bytes: Vec<u8>,
    /// File names allowed to hold it (`admin.token` for the admin token).
    allowed_in: &'static [&'static str],
}

fn needle(what: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Needle {
    Needle {
        what: what.into(),
        bytes: bytes.into(),
        allowed_in: &[],
    }
}

/// A private key as the raw PKCS#8 DER and each base64 line of its PEM body.
fn key_needles(what: &str, pem_text: &str) -> Vec<Needle> {
    let der = pem::parse(pem_text)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .contents()
        .to_vec();
    let mut out = vec![needle(format!("{what} (PKCS#8 DER)"), der)];
    for (n, line) in pem_text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .enumerate()
    {
        out.push(needle(format!("{what} (PEM line {n})"), line.as_bytes()));
    }
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Bytes as a string, one char per byte (Latin-1): lets binary files be searched with
/// `str::contains` (Two-Way), much faster than comparing every window in a debug build.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// After imports of fixtures with known keys (PKCS#12 with a passphrase through a follower,
/// RSA PEM, a scrypt-encrypted key, a generated key), an export and a backup under the
/// fixture passphrase, a refused wrong passphrase, and a join, with debug logging: no file in any node's directory and no
/// captured log holds an imported private key (raw PKCS#8 DER or a line of its PEM), the
/// passphrase, the cluster CA's or a node's private key, a join token's secret, or (outside
/// `admin.token` and the bootstrap's one-time stdout) the admin token.
#[tokio::test(flavor = "multi_thread")]
async fn no_key_passphrase_or_token_in_plaintext_in_data_dirs_or_logs() {
    let mut c = Cluster::start(
        2,
        Options::default().env("CERTRAFT_LOG", "debug,openraft=debug"),
    )
    .await;
    let leader = c.leader().await;
    let follower = c.other_than(leader);
    let pass = fixture_passphrase();
    let generated = TestCert::new("generated.example.test");
    let imports = [
        (follower, fixture_import(&["ec256.p12"], Some(&pass))),
        (
            leader,
            fixture_import(&["leaf-rsa2048.pem", "rsa2048.key", "chain.pem"], None),
        ),
        (follower, {
            let mut b = fixture_import(
                &["leaf-ec256.der", "ec256.enc-scrypt.pem", "inter.pem"],
                Some(&pass),
            );
            b["name"] = json!("ec256-scrypt");
            b
        }),
        (follower, generated.import(None)),
    ];
    for (via, body) in &imports {
        let r = c.api(*via).post("/api/v1/certs", body).await;
        assert_eq!(r.json()["outcome"], "imported", "{r}");
    }
    c.api(follower)
        .post(
            "/api/v1/certs/ec256.example.test/export",
            &json!({"format": "p12", "passphrase": pass}),
        )
        .await
        .ok("export");
    c.api(follower)
        .post("/api/v1/backup", &json!({"passphrase": pass}))
        .await
        .ok("backup");
    // A wrong passphrase is refused without echoing anything secret.
    let refused = c
        .api(leader)
        .post(
            "/api/v1/certs",
            &fixture_import(&["ec256.p12"], Some("not the passphrase at all")),
        )
        .await;
    assert_eq!(refused.error_code(), "wrong_passphrase", "{refused}");

    let mut needles = Vec::new();
    needles.extend(key_needles(
        "ec256.key",
        &String::from_utf8(fixture("ec256.key")).unwrap(),
    ));
    needles.extend(key_needles(
        "rsa2048.key",
        &String::from_utf8(fixture("rsa2048.key")).unwrap(),
    ));
    needles.extend(key_needles("generated key", &generated.key_pem));
    needles.push(needle("the fixture passphrase", pass.as_bytes()));
    needles.push(needle("a refused passphrase", "not the passphrase at all"));
    needles.push(Needle {
        what: "the admin token".into(),
        bytes: c.token.clone().into_bytes(),
        allowed_in: &["admin.token"],
    });
    for token in &c.join_tokens {
        let secret = token.split('.').nth(1).expect("crj1.<secret>.<fp>");
        needles.push(needle("a join token's secret", secret));
    }
    for n in &c.nodes {
        let s = secrets_of(&n.data_dir);
        if let Some(ca_key) = s.ca.key_pkcs8() {
            needles.push(needle("the cluster CA key", ca_key.to_vec()));
        }
        needles.push(needle(
            format!("{}'s node key", n.label),
            s.node_key_pkcs8.to_vec(),
        ));
    }

    // Stop the nodes so every log line is written and the stores are closed.
    let all: Vec<usize> = (0..c.nodes.len()).collect();
    c.stop(&all).await;

    let mut files = Vec::new();
    for n in &c.nodes {
        files_under(&n.cwd, &mut files);
    }
    let logs = c.log_files();
    assert!(!logs.is_empty());
    let debug_lines: usize = logs
        .iter()
        .map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .matches("DEBUG")
                .count()
        })
        .sum();
    assert!(debug_lines > 0, "debug logging was not on");
    files.extend(logs);
    let bootstrap_stdout = c.logs_dir().join("node1.run1.stdout.log");
    let mut found = Vec::new();
    let needle_text: Vec<String> = needles.iter().map(|n| latin1(&n.bytes)).collect();
    for file in &files {
        let text = latin1(&std::fs::read(file).unwrap());
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for (n, t) in needles.iter().zip(&needle_text) {
            let allowed = n.allowed_in.contains(&name.as_str())
                || (n.what == "the admin token" && *file == bootstrap_stdout);
            if !allowed && text.contains(t.as_str()) {
                found.push(format!("{} in {}", n.what, file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "secrets in plaintext:\n{}",
        found.join("\n")
    );
    // The search itself works: it finds the token where it belongs.
    let token_file = latin1(&std::fs::read(c.nodes[0].data_dir.join("admin.token")).unwrap());
    assert!(token_file.contains(latin1(c.token.as_bytes()).as_str()));
    // SPEC §2 prints the token once at a terminal; this stdout is a file (as `docker logs`
    // or the journal would be), so it holds no token (SPEC §6), and the files scanned are many.
    let stdout = std::fs::read_to_string(&bootstrap_stdout).unwrap();
    assert_eq!(stdout.matches(&c.token).count(), 0, "{stdout}");
    assert!(files.iter().any(|f| f.ends_with("raft.redb")));
}

/// Attempts a Raft RPC on node `target`'s cluster port presenting `cert`/`key` as client
/// certificate. `Ok(status)` once TLS admitted the certificate (garbage earns an HTTP 400);
/// `Err` when the handshake was refused.
async fn raft_rpc_with(
    c: &Cluster,
    target: usize,
    cert_der: &[u8],
    key_pkcs8: &[u8],
) -> Result<u16, String> {
    cluster_call(c, target, cert_der, key_pkcs8, "vote", b"garbage".to_vec())
        .await
        .map(|(status, _)| status)
}

/// The cluster port admits only certificates from this cluster's CA naming a current member:
/// members' node certificates pass the handshake (the garbage RPC then gets an HTTP 400); a
/// certificate the same CA issues for node 99, and one from another CA naming a member, are
/// refused; once a node is removed (`DELETE /api/v1/cluster/nodes/{id}`) its certificate is
/// refused by every remaining node (403 naming the revocation), while the others' still pass.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_port_admits_only_current_members_certificates() {
    let c = Cluster::start(3, Options::default()).await;
    let leader = c.leader().await;
    // Remove node 3, or node 2 when node 3 leads: the removal is then a follower's.
    let removed = if leader == 2 { 1 } else { 2 };
    let kept = 3 - removed;

    let s1 = secrets_of(&c.nodes[0].data_dir);
    let member = secrets_of(&c.nodes[kept].data_dir);
    let doomed = secrets_of(&c.nodes[removed].data_dir);
    let hosts = ["127.0.0.1".to_string()];
    let stranger = s1.ca.issue_node_cert(99, &hosts).unwrap();
    let foreign = ClusterCa::generate("another-cluster")
        .unwrap()
        .issue_node_cert(c.nodes[kept].id, &hosts)
        .unwrap();
    assert_eq!(pem_cert_der(&c.nodes[0].data_dir.join("ca.pem")), c.ca_der);

    for target in 0..3 {
        for (who, cert, key) in [
            ("a member", &member.node_cert_der, &member.node_key_pkcs8),
            (
                "the member to be removed",
                &doomed.node_cert_der,
                &doomed.node_key_pkcs8,
            ),
        ] {
            let r = raft_rpc_with(&c, target, cert, key).await;
            assert_eq!(
                r,
                Ok(400),
                "{who}'s certificate at {}",
                c.nodes[target].label
            );
        }
        for (who, issued) in [("node 99 (same CA)", &stranger), ("another CA's", &foreign)] {
            let r = raft_rpc_with(&c, target, &issued.cert_der, &issued.key_pkcs8).await;
            assert!(
                r.is_err(),
                "{who} certificate admitted by {}: {r:?}",
                c.nodes[target].label
            );
        }
    }

    let id = c.nodes[removed].id;
    c.api(leader)
        .delete(&format!("/api/v1/cluster/nodes/{id}"))
        .await
        .ok("remove a node");
    for target in (0..3).filter(|&t| t != removed) {
        let what = format!(
            "{} to refuse removed node {id}'s certificate",
            c.nodes[target].label
        );
        let (c, doomed) = (&c, &doomed);
        c.wait_for(&what, PATIENCE, || async move {
            // Refused in the handshake, or (once the revoked list is applied) answered 403
            // on every request with why and how to rejoin.
            match cluster_call(
                c,
                target,
                &doomed.node_cert_der,
                &doomed.node_key_pkcs8,
                "vote",
                b"garbage".to_vec(),
            )
            .await
            {
                Err(_) => Ok(()),
                Ok((403, body)) if String::from_utf8_lossy(&body).contains("revoked") => Ok(()),
                Ok((status, _)) => Err(format!("admitted (HTTP {status})")),
            }
        })
        .await;
        let r = raft_rpc_with(c, target, &member.node_cert_der, &member.node_key_pkcs8).await;
        assert_eq!(
            r,
            Ok(400),
            "a member's certificate at {}",
            c.nodes[target].label
        );
    }
    let status = c
        .api(leader)
        .get("/api/v1/cluster")
        .await
        .ok("cluster status");
    let ids: Vec<u64> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(!ids.contains(&id), "{status}");
}
