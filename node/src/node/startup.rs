//! Start-up: a new cluster's bootstrap (crash-safe at each step: `bootstrap.pending` first,
//! `node.json` last, the marker removed once Raft is initialized) and a joiner's exchange
//! with the cluster (the CA checked against the token, its own key and CSR).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::join::{JoinGrant, JoinRequest};
use crate::bundle::{DataKey, Keyring};
use crate::config::Config;
use crate::datadir::{new_admin_token, token_hash, DataDir, Identity, Secrets};
use crate::inventory::NodeRole;
use crate::pki::ClusterCa;
use crate::raft::tls::{self};
use crate::raft::NodeInfo;

use super::NodeError;

/// Creates a new one-node cluster in an empty data dir. Returns the first admin token (to
/// print once); it is written to `DATA/admin.token` and replicated on first start.
/// Present from the first write of a bootstrap until Raft is initialized.
pub(super) const BOOTSTRAP_PENDING: &str = "bootstrap.pending";

pub(super) fn cert_hosts(config: &Config) -> Vec<String> {
    let mut hosts = vec![
        config.advertise.clone(),
        "localhost".into(),
        "127.0.0.1".into(),
    ];
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Crash injection for the bootstrap tests (issue 22): with `CERTRAFT_TEST_CRASH_AT=STEP` the
/// process aborts right after STEP, as a power cut there would leave it. Steps: `marker`,
/// `token`, `identity`, `initialized`.
pub(super) fn crash_point(step: &str) {
    if std::env::var("CERTRAFT_TEST_CRASH_AT").is_ok_and(|s| s == step) {
        eprintln!("certraft: crash injected after bootstrap step {step} (CERTRAFT_TEST_CRASH_AT)");
        std::process::abort();
    }
}

pub(super) fn bootstrap(
    config: &Config,
    dd: &DataDir,
) -> Result<zeroize::Zeroizing<String>, NodeError> {
    dd.create()?;
    crate::datadir::write_atomic(&dd.path(BOOTSTRAP_PENDING), b"", 0o600)?;
    crash_point("marker");
    let (unseal, generated) = dd.unseal_key(config.unseal_key_file.as_deref(), true)?;
    if generated {
        tracing::warn!(
            path = %dd.path("unseal.key").display(),
            "generated an unseal key inside the data dir; for real deployments keep it elsewhere (--unseal-key-file) so a copy of the data dir alone cannot be unsealed"
        );
    }
    let node_id = config.node_id.unwrap_or(1);
    let cluster_id = crate::datadir::random_hex(8).to_string();
    let ca = ClusterCa::generate(&cluster_id)?;
    let issued = ca.issue_node_cert(node_id, &cert_hosts(config))?;
    let secrets = Secrets {
        keyring: Keyring::new(DataKey::generate(1)),
        ca,
        node_cert_der: issued.cert_der.clone(),
        node_key_pkcs8: issued.key_pkcs8.clone(),
    };
    let identity = Identity {
        cluster_id,
        node_id,
        role: NodeRole::Voter,
    };
    let token = new_admin_token();
    dd.write_pending_admin_token("admin", &token_hash(&token))?;
    dd.write_admin_token(&token)?;
    crash_point("token");
    dd.write_node(&identity, &secrets, &unseal)?;
    crash_point("identity");
    Ok(token)
}

/// Joins an existing cluster: verifies it by the CA fingerprint the token binds, proves the
/// token, stores what the cluster grants. Returns the members to trust until Raft tells more.
pub(super) async fn join(
    config: &Config,
    dd: &DataDir,
) -> Result<BTreeMap<u64, NodeInfo>, NodeError> {
    let Some(j) = &config.join else {
        return Err(NodeError::Other("join without --join".into()));
    };
    let fail = |detail: String| NodeError::Join {
        url: j.url.clone(),
        detail,
    };
    // 1. The CA, fetched without trust, then checked against the fingerprint in the token.
    let insecure = tls::fingerprint_probe_config();
    let probe = reqwest::Client::builder()
        .use_preconfigured_tls(insecure)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let ca_pem = probe
        .get(format!("{}/api/v1/trust", j.url))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            fail(format!(
                "cannot fetch the cluster CA: {e}; check the URL and that the node is up"
            ))
        })?
        .bytes()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let ca_der = pem::parse(&ca_pem[..])
        .map_err(|e| fail(format!("the node answered no CA certificate: {e}")))?
        .contents()
        .to_vec();
    let fp: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&ca_der).into();
    if fp != j.token.ca_sha256 {
        return Err(fail(format!(
            "the cluster at this URL has CA sha256 {}, but the join token is for CA {}; this is not the cluster the token was made for",
            hex::encode(fp),
            hex::encode(j.token.ca_sha256)
        )));
    }
    // 2. From here on the server is verified against that CA.
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls::admin_client_config(&ca_der)?)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    // The node key is made here and never leaves this machine: the leader signs a CSR.
    let (csr, node_key) = crate::pki::node_key_and_csr()?;
    let req = JoinRequest {
        secret: j.token.secret.to_string(),
        csr,
        node_id: config.node_id,
        role: config.role,
        cluster_addr: config.advertised(config.cluster),
        admin_addr: config.advertised(config.admin),
    };
    let resp = client
        .post(format!("{}/api/v1/cluster/join", j.url))
        .json(&req)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<crate::api::dto::ErrorBody>(&body)
            .map(|b| b.error.message)
            .unwrap_or(body);
        return Err(fail(format!("{status}: {msg}")));
    }
    let grant: JoinGrant = resp.json().await.map_err(|e| fail(e.to_string()))?;
    if <sha2::Sha256 as sha2::Digest>::digest(&grant.ca_cert).as_slice() != fp {
        return Err(fail(
            "the grant names a different CA than the one verified".into(),
        ));
    }
    dd.create()?;
    let (unseal, generated) = dd.unseal_key(config.unseal_key_file.as_deref(), true)?;
    if generated {
        tracing::warn!(path = %dd.path("unseal.key").display(), "generated an unseal key inside the data dir; keep it elsewhere (--unseal-key-file) for real deployments");
    }
    let keyring = Keyring::import_secret(&zeroize::Zeroizing::new(grant.keyring))
        .map_err(|e| fail(e.to_string()))?;
    // Only nodes that may lead (voters, witnesses) are given the CA key.
    let ca = match grant.ca_key {
        Some(key) => ClusterCa::load(
            &grant.cluster_id,
            grant.ca_cert,
            zeroize::Zeroizing::new(key),
        )?,
        None => ClusterCa::public(grant.ca_cert),
    };
    if crate::pki::node_id_of(&grant.node_cert) != Some(grant.node_id) {
        return Err(fail(format!(
            "the node certificate granted does not name node {}",
            grant.node_id
        )));
    }
    let secrets = Secrets {
        keyring,
        ca,
        node_cert_der: grant.node_cert,
        node_key_pkcs8: node_key,
    };
    let identity = Identity {
        cluster_id: grant.cluster_id,
        node_id: grant.node_id,
        role: grant.role,
    };
    dd.write_node(&identity, &secrets, &unseal)?;
    if let Some(token) = grant.admin_token.as_deref() {
        dd.write_admin_token(token)?;
    }
    tracing::info!(node = identity.node_id, role = ?identity.role, "joined the cluster; waiting to be caught up");
    Ok(grant.members)
}
