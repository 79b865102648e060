//! The pebble harness: two real ACME servers side by side, their DNS, their roots, and a
//! CA taken down and brought back.

// Tests: `unwrap` is how a test says "this cannot fail here".
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use certraft_cluster_tests::pebble::{Pebble, PebbleOptions};

/// A client that trusts only `ca_pem`, as an ACME client of pebble must.
fn client(ca_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pem::parse(ca_pem).unwrap().contents().to_vec().into())
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The directory as JSON, or why not.
async fn directory(client: &reqwest::Client, pebble: &Pebble) -> Result<serde_json::Value, String> {
    let resp = client
        .get(pebble.directory_url())
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

/// The addresses challtestsrv answers for `name` (`qtype` 1 = A, 28 = AAAA), asked over UDP
/// as pebble asks: a hand-made query, the RDATA of each answer.
fn resolve(server: &str, name: &str, qtype: u16) -> Vec<Vec<u8>> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&q, server).unwrap();
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).unwrap();
    let r = &buf[..n];
    assert_eq!(&r[..2], &q[..2], "answer to another query");
    let answers = u16::from_be_bytes([r[6], r[7]]);
    // Skip the header and the question (echoed as sent), then walk the answers.
    let mut at = q.len();
    let mut out = Vec::new();
    for _ in 0..answers {
        // The owner name: a pointer (2 bytes) or labels.
        if r[at] & 0xC0 == 0xC0 {
            at += 2;
        } else {
            while r[at] != 0 {
                at += 1 + r[at] as usize;
            }
            at += 1;
        }
        let len = u16::from_be_bytes([r[at + 8], r[at + 9]]) as usize;
        at += 10;
        out.push(r[at..at + len].to_vec());
        at += len;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pebbles_serve_directories_dns_and_roots_and_come_back_after_a_kill() {
    let (a, b) = tokio::join!(
        Pebble::start(PebbleOptions::default()),
        Pebble::start(PebbleOptions {
            nonce_reject: Some(0),
            always_valid: true,
            certificate_validity: Some(Duration::from_secs(3600)),
            ..Default::default()
        }),
    );
    let (Some(a), Some(b)) = (a, b) else {
        return;
    };
    assert_ne!(a.directory_url(), b.directory_url());
    assert_ne!(a.dns_server(), b.dns_server());
    assert_ne!(a.http_port(), b.http_port());
    assert_ne!(a.ca_pem(), b.ca_pem());

    // The directories, each over HTTPS trusting its own certificate only.
    let (ca, cb) = (client(a.ca_pem()), client(b.ca_pem()));
    for (p, c) in [(&a, &ca), (&b, &cb)] {
        let dir = directory(c, p)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", p.log()));
        for key in ["newNonce", "newAccount", "newOrder"] {
            let url = dir[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {dir}"));
            assert!(url.starts_with("https://127.0.0.1:"), "{key}: {url}");
        }
        // Facts about this pebble, for whoever writes the ACME tests.
        println!(
            "directory of {}: renewalInfo (ARI): {}, profiles: {}",
            p.directory_url(),
            dir.get("renewalInfo").is_some(),
            dir["meta"].get("profiles").is_some(),
        );
    }
    assert!(
        directory(&ca, &b).await.is_err(),
        "b's directory answered a client trusting a's certificate only"
    );

    // The options reach pebble.
    assert!(a.log().contains("reject 5% of good nonces"), "{}", a.log());
    assert!(
        a.log().contains("validity period of 157766400 seconds"),
        "{}",
        a.log()
    );
    assert!(b.log().contains("reject 0% of good nonces"), "{}", b.log());
    assert!(b.log().contains("VA always returns valid"), "{}", b.log());
    assert!(
        b.log().contains("validity period of 3600 seconds"),
        "{}",
        b.log()
    );

    // DNS: the record a test adds, loopback for other names, no AAAA.
    a.add_a("www.example.test", "127.0.0.2").await;
    assert_eq!(
        resolve(&a.dns_server(), "www.example.test", 1),
        vec![vec![127, 0, 0, 2]]
    );
    assert_eq!(
        resolve(&b.dns_server(), "www.example.test", 1),
        vec![vec![127, 0, 0, 1]]
    );
    assert_eq!(
        resolve(&a.dns_server(), "other.example.test", 1),
        vec![vec![127, 0, 0, 1]]
    );
    assert!(resolve(&a.dns_server(), "www.example.test", 28).is_empty());

    // The roots: a root and the intermediate, each a certificate rustls takes as an anchor.
    let roots = a.roots_pem().await;
    let certs = pem::parse_many(&roots).unwrap();
    assert_eq!(certs.len(), 2, "{roots}");
    for (cert, cn) in certs
        .iter()
        .zip(["Pebble Root CA", "Pebble Intermediate CA"])
    {
        assert_eq!(cert.tag(), "CERTIFICATE");
        rustls::RootCertStore::empty()
            .add(cert.contents().to_vec().into())
            .unwrap_or_else(|e| panic!("{cn}: {e}\n{roots}"));
        let der = cert.contents();
        assert!(
            der.windows(cn.len()).any(|w| w == cn.as_bytes()),
            "no {cn} in {roots}"
        );
    }
    assert_ne!(roots, b.roots_pem().await, "two pebbles share a root");

    assert_eq!(a.issued_count(), 0, "{}", a.log());
    assert_eq!(a.orders_count(), 0, "{}", a.log());

    // Down: the directory is refused; b is untouched.
    a.stop().await;
    let down = directory(&ca, &a).await;
    assert!(down.is_err(), "a's directory answered after stop: {down:?}");
    directory(&cb, &b).await.unwrap();
    a.stop().await; // stopping a stopped pebble is fine

    // Back: same URL, same certificate, new roots; DNS records kept.
    a.restart().await;
    let dir = directory(&ca, &a)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", a.log()));
    assert!(dir["newOrder"].is_string(), "{dir}");
    assert_ne!(
        roots,
        a.roots_pem().await,
        "pebble kept its root over a restart"
    );
    assert_eq!(
        resolve(&a.dns_server(), "www.example.test", 1),
        vec![vec![127, 0, 0, 2]]
    );
    assert_eq!(
        a.log().matches("Starting Pebble ACME server").count(),
        2,
        "{}",
        a.log()
    );
    assert_eq!(a.issued_count(), 0);

    // Restart of a running pebble.
    b.restart().await;
    directory(&cb, &b).await.unwrap();
}
