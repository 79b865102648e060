//! Talking to a node's cluster port as a member would: a node's unsealed secrets from its
//! data dir, and one request presenting any certificate and key.

use std::path::Path;
use std::time::Duration;

use certraft::datadir::{DataDir, Secrets};
use certraft::raft::tls::{cluster_client_config, NodeIdentity};

use super::cluster::Cluster;

/// A node's keyring, CA and node key, unsealed with the unseal key in its data dir.
pub(crate) fn secrets_of(data_dir: &Path) -> Secrets {
    let dd = DataDir::new(data_dir);
    let (unseal, _) = dd.unseal_key(None, false).expect("unseal key");
    dd.load_secrets(&unseal).expect("node secrets")
}

/// A client of node `target`'s cluster port presenting `cert`/`key` (fresh: no pooled
/// connection from an earlier handshake).
pub(crate) fn cluster_client(
    c: &Cluster,
    target: usize,
    cert_der: &[u8],
    key_pkcs8: &[u8],
) -> reqwest::Client {
    let me = NodeIdentity {
        cert_der: cert_der.to_vec(),
        key_pkcs8: zeroize::Zeroizing::new(key_pkcs8.to_vec()),
    };
    let tls = cluster_client_config(&c.ca_der, &me, c.nodes[target].id).expect("client config");
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// One request to node `target`'s cluster port route `/raft/{route}` presenting
/// `cert`/`key`. `Err` when the TLS handshake (or the connection) failed; otherwise the
/// status and body.
pub(crate) async fn cluster_call(
    c: &Cluster,
    target: usize,
    cert_der: &[u8],
    key_pkcs8: &[u8],
    route: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let url = format!("https://127.0.0.1:{}/raft/{route}", c.nodes[target].cluster);
    let resp = cluster_client(c, target, cert_der, key_pkcs8)
        .post(url)
        .header("content-type", "application/cbor")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    Ok((
        status,
        resp.bytes().await.map_err(|e| e.to_string())?.to_vec(),
    ))
}
