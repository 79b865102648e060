//! A traffic node that turns hostile (issue 19's nemesis). It joins like any learner, with
//! a real join token and a key and CSR of its own, and then, instead of running
//! `certraft-node`, spends the run attacking every member:
//! - proposing an admin token over the cluster port,
//! - asking for votes and sending entries for a far later term, as itself and as a voter,
//! - presenting a node certificate for a voter's id from a CA it made itself,
//! - flooding the admin ports with made-up join secrets.
//!
//! Each attempt must be refused. [`Report::admitted`] lists any that was not, and the test
//! fails on it; the run's workload and linearizability check go on around it as usual.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::json;

use crate::client::provider;
use crate::cluster::Cluster;
use crate::ports::free_port;

/// A term no honest member reaches in a test: if any node ever reports it, a forged
/// message was obeyed.
pub const FORGED_TERM: u64 = 1_000_000;

/// The hostile learner: its identity and whom it attacks.
pub struct Hostile {
    pub id: u64,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    ca_der: Vec<u8>,
    /// `(node id, host, cluster port, admin URL)` of each real member.
    targets: Vec<(u64, String, u16, String)>,
}

/// What the attacks came to.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub attempts: u64,
    /// Attempts that were not refused, described.
    pub admitted: Vec<String>,
}

fn cbor(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR into a Vec");
    out
}

fn map(entries: Vec<(&str, Cbor)>) -> Cbor {
    Cbor::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Cbor::Text(k.into()), v))
            .collect(),
    )
}

/// openraft 0.9's `Vote` as it travels in CBOR (its default leader id: term and node id;
/// `wire_fuzz::the_cluster_suites_forged_messages_decode_as_raft_messages` in the node's
/// tests checks these against openraft's own types).
fn vote(term: u64, node: u64, committed: bool) -> Cbor {
    map(vec![
        (
            "leader_id",
            map(vec![
                ("term", Cbor::Integer(term.into())),
                ("node_id", Cbor::Integer(node.into())),
            ]),
        ),
        ("committed", Cbor::Bool(committed)),
    ])
}

pub fn vote_request(term: u64, candidate: u64) -> Vec<u8> {
    cbor(&map(vec![
        ("vote", vote(term, candidate, false)),
        ("last_log_id", Cbor::Null),
    ]))
}

pub fn append_request(term: u64, leader: u64) -> Vec<u8> {
    cbor(&map(vec![
        ("vote", vote(term, leader, true)),
        ("prev_log_id", Cbor::Null),
        ("entries", Cbor::Array(vec![])),
        ("leader_commit", Cbor::Null),
    ]))
}

pub fn token_proposal(name: &str) -> Vec<u8> {
    cbor(&map(vec![
        ("name", Cbor::Text(name.into())),
        (
            "secret_sha256",
            Cbor::Array((0..32).map(|i| Cbor::Integer(i.into())).collect()),
        ),
    ]))
}

impl Hostile {
    /// Joins cluster `c` as a learner through node 0, as `certraft-node` would (join token,
    /// own key, CSR), without running a node.
    pub async fn join(c: &Cluster) -> Hostile {
        let base = c.nodes[0].admin_url();
        let token = c
            .call_ok(
                0,
                reqwest::Method::POST,
                "/api/v1/cluster/join-tokens",
                Some(&json!({"role": "learner"})),
            )
            .await
            .body["token"]
            .as_str()
            .expect("a join token")
            .to_string();
        let secret = token.split('.').nth(1).expect("crj1.<secret>.<ca>");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .expect("CSR");
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = json!({
            "secret": secret,
            "csr": b64.encode(csr.der()),
            "role": "learner",
            "cluster_addr": format!("127.0.0.1:{}", free_port()),
            "admin_addr": format!("127.0.0.1:{}", free_port()),
        });
        let grant = c
            .admin()
            .post(&base, "/api/v1/cluster/join", &body)
            .await
            .expect("join answered");
        assert_eq!(
            grant.status, 200,
            "the hostile learner could not join: {grant}"
        );
        let g = grant.body;
        assert!(g["ca_key"].is_null(), "a learner was given the CA key");
        let decode = |field: &str| {
            b64.decode(g[field].as_str().expect("base64 field"))
                .expect("base64")
        };
        Hostile {
            id: g["node_id"].as_u64().expect("node id"),
            cert_der: decode("node_cert"),
            key_der: key.serialize_der(),
            ca_der: decode("ca_cert"),
            targets: c
                .nodes
                .iter()
                .map(|n| (n.id, n.host.clone(), n.cluster, n.admin_url()))
                .collect(),
        }
    }

    fn client(&self, cert_der: &[u8], key_der: &[u8]) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone().into()).expect("cluster CA");
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![cert_der.to_vec().into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.to_vec().into()),
            )
            .expect("client certificate");
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client")
    }

    /// Attacks until `stop` is set, one round (every attack on every member) about every
    /// 200 ms.
    pub async fn attack(self, stop: Arc<AtomicBool>) -> Report {
        let mut report = Report::default();
        let own = self.client(&self.cert_der, &self.key_der);
        // A CA of its own, issuing a node certificate for the first voter's id.
        let forged = {
            let voter = self.targets[0].0;
            let ca_key = rcgen::KeyPair::generate().expect("key");
            let mut ca = rcgen::CertificateParams::default();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_cert = ca.self_signed(&ca_key).expect("CA");
            let issuer = rcgen::Issuer::new(ca, &ca_key);
            let leaf_key = rcgen::KeyPair::generate().expect("key");
            let mut leaf = rcgen::CertificateParams::default();
            leaf.subject_alt_names = vec![
                rcgen::SanType::URI(
                    format!("urn:certraft:node:{voter}")
                        .try_into()
                        .expect("URI"),
                ),
                rcgen::SanType::IpAddress([127, 0, 0, 1].into()),
            ];
            let cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
            drop(ca_cert);
            self.client(cert.der(), &leaf_key.serialize_der())
        };
        let anonymous = reqwest::Client::builder()
            .use_preconfigured_tls({
                let mut roots = rustls::RootCertStore::empty();
                roots.add(self.ca_der.clone().into()).expect("cluster CA");
                rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .expect("TLS versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth()
            })
            // From an address of its own, as an attacker elsewhere would: the operator's and
            // the workload's requests at 127.0.0.1 are not the ones rate-limited.
            .local_address(std::net::IpAddr::from([127, 0, 0, 9]))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            for (id, host, port, admin) in &self.targets {
                let url = |route: &str| format!("https://{host}:{port}/raft/{route}");
                let attacks: [(&str, Vec<u8>, &reqwest::Client); 4] = [
                    ("propose", token_proposal(&format!("hostile-{round}")), &own),
                    ("vote", vote_request(FORGED_TERM + round, self.id), &own),
                    ("vote", vote_request(FORGED_TERM + round, *id), &own),
                    ("append", append_request(FORGED_TERM + round, self.id), &own),
                ];
                for (route, body, client) in attacks {
                    report.attempts += 1;
                    let r = client
                        .post(url(route))
                        .header("content-type", "application/cbor")
                        .body(body)
                        .send()
                        .await;
                    let refused = match r {
                        // A handshake the node refused, or a dead/paused node: not admitted.
                        Err(_) => true,
                        Ok(resp) if resp.status() == 403 => true,
                        // `propose` answers 200 with a CBOR `Err(NotAllowed)`.
                        Ok(resp) if route == "propose" && resp.status() == 200 => {
                            let body = resp.bytes().await.unwrap_or_default();
                            ciborium::from_reader::<Cbor, _>(&body[..])
                                .ok()
                                .and_then(|v| v.as_map().cloned())
                                .is_some_and(|m| m.iter().any(|(k, _)| k.as_text() == Some("Err")))
                        }
                        Ok(_) => false,
                    };
                    if !refused {
                        report
                            .admitted
                            .push(format!("{route} to node {id} (round {round})"));
                    }
                }
                // The forged certificate must not even complete a handshake.
                report.attempts += 1;
                if let Ok(resp) = forged
                    .post(url("vote"))
                    .body(vote_request(1, *id))
                    .send()
                    .await
                {
                    report.admitted.push(format!(
                        "a certificate from another CA for node {} was admitted by node {id} ({})",
                        self.targets[0].0,
                        resp.status()
                    ));
                }
                // Made-up join secrets at the admin port.
                report.attempts += 1;
                if let Ok(resp) = anonymous
                    .post(format!("{admin}/api/v1/cluster/join"))
                    .json(&json!({"secret": format!("{round:048x}"), "csr": "", "cluster_addr": "127.0.0.1:1", "admin_addr": "127.0.0.1:2"}))
                    .send()
                    .await
                {
                    // Refused (401), limited (429), or no leader to decide (503; 504 when
                    // the leader the request was forwarded to died under it): no grant.
                    if !matches!(resp.status().as_u16(), 401 | 429 | 503 | 504) {
                        report
                            .admitted
                            .push(format!("a made-up join secret at node {id}: {}", resp.status()));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        report
    }
}
