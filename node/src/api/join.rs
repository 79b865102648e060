//! `POST /api/v1/cluster/join`: a new node proves a join token and is admitted as a learner.
//!
//! The secret is checked against the replicated token hashes on the leader *before* anything
//! is proposed: a request without a usable token never reaches Raft or the audit log, it is
//! counted as a failed sign-in ([`super::auth`]). The joining node makes its own key and
//! sends a CSR; the leader signs it for the id Raft allocated and the addresses the node
//! advertises, pins the certificate's SHA-256 in the membership, and hands over the data
//! keyring. Only a node that may lead (a voter or a witness) also receives the CA key: a
//! traffic node (learner) can verify the cluster's certificates but never issue one.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::auth::FailureKind;
use super::cluster::role_text;
use super::dto::b64;
use super::error::AppError;
use super::server::AppState;
use crate::clock::unix_now;
use crate::datadir::token_hash;
use crate::http::ClientAddr;
use crate::inventory::{AdminToken, Command, Inventory, JoinToken, NodeRole, Outcome, Refusal};
use crate::raft::NodeInfo;

/// What a joining node sends, authenticated by the join token's secret.
#[derive(Serialize, Deserialize)]
pub struct JoinRequest {
    pub secret: String,
    /// PKCS#10 for the key the joining node made and keeps.
    #[serde(with = "b64")]
    pub csr: Vec<u8>,
    pub node_id: Option<u64>,
    pub role: Option<NodeRole>,
    pub cluster_addr: String,
    pub admin_addr: String,
}

/// What a joining node receives: its certificate and what it needs of the cluster's secrets.
/// Only ever sent over TLS to a node that proved a join token, and sealed under its unseal
/// key on arrival.
#[derive(Serialize, Deserialize)]
pub struct JoinGrant {
    pub cluster_id: String,
    pub node_id: u64,
    pub role: NodeRole,
    #[serde(with = "b64")]
    pub ca_cert: Vec<u8>,
    /// The CA key, for a voter or a witness only (a node that may lead signs joiners' CSRs).
    #[serde(default, with = "b64_opt")]
    pub ca_key: Option<Vec<u8>>,
    #[serde(with = "b64")]
    pub keyring: Vec<u8>,
    #[serde(with = "b64")]
    pub node_cert: Vec<u8>,
    pub members: BTreeMap<u64, NodeInfo>,
    /// An admin token made for this node (`node-ID`), for a voter or a witness only: the
    /// joiner writes it to `DATA/admin.token`, so the CLI works on every core node with no
    /// flags (also once the bootstrap node is gone). A traffic node gets none. Absent from
    /// leaders before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

mod b64_opt {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super::b64")] Vec<u8>);

    pub(super) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        bytes.as_ref().map(|b| Wrapped(b.clone())).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
pub fn host_of(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => addr.to_string(),
    }
}

/// An advertised `host:port`: an IP address or a DNS-style host name, and a port. It becomes
/// part of the membership and of the node's certificate, so nothing else is accepted.
pub fn valid_addr(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host_ok = host.parse::<IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    port_ok && host_ok
}

/// The unused, unexpired join token whose secret hashes to `hash`.
fn usable<'a>(inv: &'a Inventory, hash: &[u8; 32], now: i64) -> Option<&'a JoinToken> {
    inv.join_tokens
        .iter()
        .find(|t| &t.secret_sha256 == hash && t.used_by.is_none() && t.expires_at >= now)
}

pub async fn join(
    State(st): State<std::sync::Arc<AppState>>,
    Extension(ClientAddr(from)): Extension<ClientAddr>,
    Json(body): Json<JoinRequest>,
) -> Result<Json<JoinGrant>, AppError> {
    // 1. The secret, before anything reaches Raft. A token created a moment ago may not be
    //    applied here yet: a linearizable read settles that, then it is a failure.
    let hash = token_hash(&body.secret);
    let mut token_role = usable(&st.sm.inventory(), &hash, unix_now()).map(|t| t.role);
    if token_role.is_none() {
        // Nothing has been done yet: a leader that cannot confirm itself in time answers
        // 503 (retry), never 504 (which says a change may have happened).
        let inv = st.read_barrier().await.map_err(|e| match e {
            AppError::Timeout(m) => AppError::NoLeader(m),
            other => other,
        })?;
        token_role = usable(&inv, &hash, unix_now()).map(|t| t.role);
    }
    let Some(token_role) = token_role else {
        st.failures
            .record(FailureKind::JoinToken, from.ip(), std::time::Instant::now());
        return Err(AppError::Refused(Refusal::JoinTokenInvalid));
    };
    // 2. The rest of the request, still before the token is used up.
    let role = match (token_role, body.role) {
        (r, None) => r,
        (NodeRole::Voter, Some(asked)) => asked,
        (r, Some(asked)) if r == asked => r,
        (r, Some(asked)) => {
            return Err(AppError::bad_request(
                "role_not_allowed",
                format!(
                    "the join token allows {} but --role {} was asked; create a token with `certraft cluster join-token --role {}`",
                    role_text(Some(r)),
                    role_text(Some(asked)),
                    role_text(Some(asked))
                ),
            ))
        }
    };
    for (what, addr) in [("cluster", &body.cluster_addr), ("admin", &body.admin_addr)] {
        if !valid_addr(addr) {
            return Err(AppError::bad_request(
                "bad_address",
                format!(
                    "the {what} address {:?} is not HOST:PORT with an IP address or a host name; pass --advertise HOST",
                    crate::inventory::escape_controls(addr)
                ),
            ));
        }
    }
    // A request that cannot be signed costs no token and no id.
    crate::pki::check_csr(&body.csr)
        .map_err(|e| AppError::bad_request("bad_csr", format!("{e}; the joining certraft-node makes its CSR itself: run `certraft-node run --join TOKEN` rather than posting by hand")))?;
    let m = st.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let floor = membership.nodes().map(|(id, _)| *id).max().unwrap_or(0);
    // 3. Use the token up; Raft allocates the id (never one handed out before).
    let (outcome, _) = st
        .propose(
            "join",
            Command::ConsumeJoinToken {
                secret_sha256: hash,
                requested: body.node_id,
                floor,
            },
        )
        .await?;
    let Outcome::JoinTokenConsumed { node_id, .. } = outcome else {
        return Err(AppError::Internal(format!("join answered {outcome:?}")));
    };
    // 4. The certificate for the joiner's own key, naming what it advertises.
    let mut hosts = vec![host_of(&body.cluster_addr), host_of(&body.admin_addr)];
    hosts.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    hosts.sort();
    hosts.dedup();
    let node_cert = st
        .ca
        .sign_node_csr(node_id, &hosts, &body.csr)
        .map_err(|e| match e {
            crate::pki::PkiError::BadCsr(_) => AppError::bad_request("bad_csr", e.to_string()),
            other => AppError::Internal(other.to_string()),
        })?;
    let info = NodeInfo {
        cluster_addr: body.cluster_addr.clone(),
        admin_addr: body.admin_addr.clone(),
        role: Some(role),
        cert_sha256: Some(hex::encode(crate::pki::cert_sha256(&node_cert))),
    };
    st.change_membership(&format!("adding node {node_id}"), || {
        st.raft.add_learner(node_id, info.clone(), false)
    })
    .await?;
    tracing::info!(node = node_id, role = %role_text(Some(role)), addr = %body.cluster_addr, "node joined as learner");
    // 5. The audit says who joined, as what, from where.
    let _ = st
        .propose(
            "join",
            Command::Record {
                what: format!(
                    "node {node_id} joined as {} (cluster {}, from {})",
                    role_text(Some(role)),
                    body.cluster_addr,
                    from.ip()
                ),
                result: "ok".into(),
            },
        )
        .await;
    let mut members: BTreeMap<u64, NodeInfo> =
        membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    members.insert(node_id, info);
    let ca_key = match role {
        NodeRole::Learner => None,
        NodeRole::Voter | NodeRole::Witness => st.ca.key_pkcs8().map(<[u8]>::to_vec),
    };
    // 6. A core node's own admin token (only its hash is replicated). Without one the
    //    grant still stands: the node joined; the operator can make a token later.
    let admin_token = match role {
        NodeRole::Learner => None,
        NodeRole::Voter | NodeRole::Witness => {
            let token = crate::datadir::new_admin_token();
            let created = st
                .propose(
                    "join",
                    Command::CreateAdminToken {
                        token: AdminToken {
                            name: format!("node-{node_id}"),
                            secret_sha256: token_hash(&token),
                            created_at: unix_now(),
                            created_by: format!("join of node {node_id}"),
                        },
                    },
                )
                .await;
            match created {
                Ok((Outcome::AdminTokenCreated { .. }, _)) => Some(token.to_string()),
                other => {
                    tracing::warn!(node = node_id, result = ?other.map(|(o, _)| o).err(), "no admin token for the joined node; make one with `certraft-node admin-token` on it");
                    None
                }
            }
        }
    };
    Ok(Json(JoinGrant {
        cluster_id: st.cluster_id.clone(),
        node_id,
        role,
        ca_cert: st.ca.cert_der().to_vec(),
        ca_key,
        keyring: st.keyring.export_secret().to_vec(),
        node_cert,
        members,
        admin_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advertised addresses: host names and IP literals with a port; nothing that could
    /// smuggle other text into the membership or a certificate.
    #[test]
    fn advertised_addresses_are_host_and_port_only() {
        for (addr, ok) in [
            ("127.0.0.1:9444", true),
            ("[::1]:9444", true),
            ("node-2.example.internal:9444", true),
            ("node2:9444", true),
            ("127.0.0.1", false),
            ("127.0.0.1:0", false),
            ("127.0.0.1:99999", false),
            (":9444", false),
            ("-bad:9444", false),
            ("a b:9444", false),
            ("evil\n:9444", false),
            ("a..b:9444", false),
        ] {
            assert_eq!(valid_addr(addr), ok, "{addr:?}");
        }
        assert!(!valid_addr(&format!("{}:1", "a".repeat(300))));
    }

    /// The grant's optional CA key round-trips through JSON, and is absent when `None`.
    #[test]
    fn the_ca_key_travels_only_when_given() {
        let grant = JoinGrant {
            cluster_id: "c".into(),
            node_id: 2,
            role: NodeRole::Learner,
            ca_cert: vec![1],
            ca_key: None,
            keyring: vec![2],
            node_cert: vec![3],
            members: BTreeMap::new(),
            admin_token: None,
        };
        let json = serde_json::to_string(&grant).unwrap();
        let back: JoinGrant = serde_json::from_str(&json).unwrap();
        assert!(back.ca_key.is_none());
        let with = JoinGrant {
            ca_key: Some(vec![9, 9]),
            ..back
        };
        let back: JoinGrant = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back.ca_key, Some(vec![9, 9]));
    }
}
