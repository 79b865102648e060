//! The serve port with `--upstream`: after the handshake the decrypted stream is relayed to a
//! TCP upstream (a small server run by the test), both directions, half-close, large
//! transfers, and a clean close when the upstream is down.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::cluster::{Cluster, Options};
use crate::support::fixture;
use crate::support::uploads::{fixture_import, fixture_passphrase};

/// An upstream that reads until the client half-closes, then answers `got N bytes, sha256 H`
/// followed by the bytes themselves, then closes.
async fn upstream() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                if s.read_to_end(&mut all).await.is_err() {
                    return;
                }
                let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&all));
                let head = format!("got {} bytes, sha256 {digest}\n", all.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&all).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, task)
}

fn client_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(fixture("root.der").into())
        .expect("the fixture root is a CA certificate");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

async fn connect(port: u16) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the serve port");
    tokio_rustls::TlsConnector::from(client_config())
        .connect(
            rustls::pki_types::ServerName::try_from("ec256.example.test").expect("name"),
            tcp,
        )
        .await
        .expect("handshake with the imported certificate")
}

/// 8 MiB goes to the upstream and back through the node byte for byte; the client's
/// half-close (TLS close_notify) reaches the upstream as EOF while the answer still flows
/// back; `/metrics` counts the handshakes; with the upstream gone, a new connection is
/// closed cleanly instead of hanging.
#[tokio::test(flavor = "multi_thread")]
async fn relays_both_ways_with_half_close_and_closes_when_upstream_is_down() {
    let (port, task) = upstream().await;
    let mut c =
        Cluster::new(Options::default().env("CERTRAFT_UPSTREAM", &format!("127.0.0.1:{port}")));
    let n = c.bootstrap().await;
    c.api(n)
        .post(
            "/api/v1/certs",
            &fixture_import(&["ec256.p12"], Some(&fixture_passphrase())),
        )
        .await
        .ok("import the fixture");
    let serve = c.nodes[n].serve;
    // The index is updated right after apply: poll until the handshake finds the bundle.
    c.wait_for(
        "the serve port to present the imported certificate",
        Duration::from_secs(10),
        || async move {
            let tcp = TcpStream::connect(("127.0.0.1", serve))
                .await
                .map_err(|e| e.to_string())?;
            tokio_rustls::TlsConnector::from(client_config())
                .connect(
                    rustls::pki_types::ServerName::try_from("ec256.example.test").expect("name"),
                    tcp,
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;

    let payload: Vec<u8> = (0..8 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut tls = connect(serve).await;
    let (mut rd, mut wr) = tokio::io::split(&mut tls);
    let send = async {
        wr.write_all(&payload).await.expect("send payload");
        wr.shutdown().await.expect("half-close");
    };
    let mut back = Vec::new();
    let recv = async {
        tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut back))
            .await
            .expect("the answer arrives within 30 s")
            .expect("read the answer")
    };
    tokio::join!(send, recv);
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&payload));
    let head = format!("got {} bytes, sha256 {digest}\n", payload.len());
    assert!(
        back.starts_with(head.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&back[..back.len().min(120)])
    );
    assert_eq!(&back[head.len()..], &payload[..], "echoed bytes differ");

    // `/metrics` (token required) counts the exact-name handshakes and lists the not-after.
    let metrics = c.api(n).get("/metrics").await;
    assert_eq!(metrics.status, 200, "{metrics}");
    let exact: u64 = metrics
        .text
        .lines()
        .find_map(|l| l.strip_prefix("certraft_handshakes_total{node=\"1\",outcome=\"exact\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(exact >= 2, "{}", metrics.text);
    assert!(
        metrics.text.contains(
            "certraft_certificate_not_after_seconds{name=\"ec256.example.test\",status=\"active\"} 4102444799"
        ),
        "{}",
        metrics.text
    );

    task.abort();
    let _ = task.await;
    let mut tls = connect(serve).await;
    let _ = tls.write_all(b"anyone there?").await;
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest)).await;
    assert!(
        r.is_ok(),
        "the node did not close the connection with its upstream down"
    );
    assert!(rest.is_empty(), "unexpected answer {rest:?}");
}
