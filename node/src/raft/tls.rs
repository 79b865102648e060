//! Mutual TLS on the cluster port: who may talk Raft to whom.
//!
//! Both directions check more than "signed by the cluster CA": the peer's certificate must
//! name (in its `urn:certraft:node:<id>` SAN) a node that is a current member. A certificate
//! the CA once issued to a node that has since been removed — or to anything else — is
//! refused during the handshake (the class of Consul CVE-2021-37219). Hostnames are not
//! checked on the cluster port: a node's identity is its id, not its address.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::pki::node_id_of;

/// Who the cluster port admits now: each member's id, the SHA-256 of the node certificate the
/// cluster issued to it (when the membership records one), and whether it votes. Updated
/// from the Raft membership as it changes; read during every handshake and every request.
/// Every change is announced on a watch channel, so open connections of a member that has
/// been removed are closed at once ([`crate::http`]).
#[derive(Clone)]
pub struct Members {
    inner: Arc<RwLock<BTreeMap<u64, Member>>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
    /// Removed members' certificates (SHA-256 → node id) and the cluster's epoch: such a
    /// peer completes its handshake only to be told, on every request, why it is refused
    /// and how to rejoin (issue 22).
    revoked: Arc<RwLock<Revoked>>,
}

/// Removed members' certificates (SHA-256 → node id), and the cluster epoch.
type Revoked = (BTreeMap<[u8; 32], u64>, u64);

/// One entry of [`Members`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The issued certificate's SHA-256; `None` admits any CA-issued certificate naming the id
    /// (memberships written before certificates were pinned).
    pub cert_sha256: Option<[u8; 32]>,
    /// A voter (or witness): may send Raft RPCs. Learners only receive them.
    pub voter: bool,
}

impl Default for Members {
    fn default() -> Self {
        Members::new([])
    }
}

impl Members {
    pub fn new(members: impl IntoIterator<Item = (u64, Member)>) -> Self {
        Members {
            inner: Arc::new(RwLock::new(members.into_iter().collect())),
            changed: Arc::new(tokio::sync::watch::channel(0).0),
            revoked: Arc::new(RwLock::new((BTreeMap::new(), 0))),
        }
    }

    /// Replaces the revoked list (SHA-256 hex → node id, as the inventory holds it) and the
    /// cluster epoch.
    pub fn set_revoked(&self, revoked: &BTreeMap<String, u64>, epoch: u64) {
        let parsed = revoked
            .iter()
            .filter_map(|(sha, id)| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(sha, &mut out)
                    .ok()
                    .map(|()| (out, *id))
            })
            .collect();
        // Held only for a swap.
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = (parsed, epoch);
    }

    /// Why a peer presenting this certificate is refused, when it is a removed member's.
    pub fn revocation(&self, sha256: &[u8; 32]) -> Option<String> {
        let held = self.revoked.read().unwrap_or_else(|e| e.into_inner());
        let (revoked, epoch) = &*held;
        revoked.get(sha256).map(|node| {
            let recovered = if *epoch > 0 {
                format!(" (the cluster was re-formed by `recover` since: epoch {epoch})")
            } else {
                String::new()
            };
            format!(
                "node {node} was removed from this cluster{recovered} and its certificate is revoked for good; it cannot come back with its old data dir: stop it, wipe its data dir, and join it again with a join token (`certraft cluster join-token` on a member)"
            )
        })
    }

    pub fn set(&self, members: impl IntoIterator<Item = (u64, Member)>) {
        let members: BTreeMap<u64, Member> = members.into_iter().collect();
        {
            // Held only for a swap; a poisoned lock still holds a consistent map.
            let mut held = self.inner.write().unwrap_or_else(|e| e.into_inner());
            if *held == members {
                return;
            }
            *held = members;
        }
        self.changed.send_modify(|generation| *generation += 1);
    }

    fn get(&self, id: u64) -> Option<Member> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// Whether the peer presenting `cert_der` (which names node `id`) is a current member:
    /// the id is in the membership and, where the membership pins a certificate, it is
    /// exactly that one.
    pub fn admits(&self, id: u64, cert_der: &[u8]) -> bool {
        self.admits_sha256(id, &crate::pki::cert_sha256(cert_der))
    }

    pub fn admits_sha256(&self, id: u64, sha256: &[u8; 32]) -> bool {
        self.get(id)
            .is_some_and(|m| m.cert_sha256.is_none_or(|pinned| &pinned == sha256))
    }

    /// Whether `id` is a current voting member (a witness votes).
    pub fn is_voter(&self, id: u64) -> bool {
        self.get(id).is_some_and(|m| m.voter)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Fires on every change of the membership.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Members({:?})", self.ids())
    }
}

/// The cluster port's allow-list for a Raft membership: every node in it, its pinned
/// certificate, and whether it votes.
pub fn members_of(
    membership: &openraft::Membership<u64, super::NodeInfo>,
) -> BTreeMap<u64, Member> {
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, info)| (*id, member_of(info, voters.contains(id))))
        .collect()
}

/// One member's entry: the certificate its membership record pins.
pub fn member_of(info: &super::NodeInfo, voter: bool) -> Member {
    Member {
        cert_sha256: info
            .cert_sha256
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok()),
        voter,
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(
        "the cluster CA certificate is not usable as a trust anchor: {0}; restore DATA/ca.pem"
    )]
    BadCa(String),
    #[error("this node's certificate or key is not usable for TLS: {0}; restore DATA/node.pem and DATA/node.key.sealed, or rejoin the node")]
    BadNodeCert(String),
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_der: &[u8]) -> Result<Arc<RootCertStore>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| TlsSetupError::BadCa(e.to_string()))?;
    Ok(Arc::new(roots))
}

/// This node's certificate and key, as TLS wants them.
pub struct NodeIdentity {
    pub cert_der: Vec<u8>,
    pub key_pkcs8: zeroize::Zeroizing<Vec<u8>>,
}

impl NodeIdentity {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert_der.clone())]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_pkcs8.to_vec().into())
    }

    /// The certificate and key in serving form, the key checked against the certificate.
    pub fn certified_key(&self) -> Result<Arc<rustls::sign::CertifiedKey>, TlsSetupError> {
        rustls::sign::CertifiedKey::from_der(self.chain(), self.key(), &provider())
            .map(Arc::new)
            .map_err(|e| TlsSetupError::BadNodeCert(e.to_string()))
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NodeIdentity(node {:?}, key <redacted>)",
            node_id_of(&self.cert_der)
        )
    }
}

/// The cluster port's server side: a client certificate from the CA naming a member.
pub fn cluster_server_config(
    ca_der: &[u8],
    me: &NodeIdentity,
    members: Members,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let inner = WebPkiClientVerifier::builder_with_provider(roots(ca_der)?, provider())
        .build()
        .map_err(|e| TlsSetupError::BadCa(e.to_string()))?;
    let verifier = Arc::new(MemberClientVerifier { inner, members });
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::BadNodeCert(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(me.chain(), me.key())
        .map_err(|e| TlsSetupError::BadNodeCert(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The cluster port's client side, for calls to node `target`: the server must present a
/// CA-issued certificate naming exactly `target`.
pub fn cluster_client_config(
    ca_der: &[u8],
    me: &NodeIdentity,
    target: u64,
) -> Result<ClientConfig, TlsSetupError> {
    let verifier = Arc::new(NodeServerVerifier {
        roots: roots(ca_der)?,
        provider: provider(),
        expect: target,
    });
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::BadNodeCert(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(me.chain(), me.key())
        .map_err(|e| TlsSetupError::BadNodeCert(e.to_string()))
}

/// The admin port's server side: no client certificates; each handshake's certificate from
/// `certs` (the node certificate, or for the console hostnames the console certificate:
/// `tls::console::AdminCerts`, built on [`NodeIdentity::certified_key`]).
pub fn admin_server_config(
    certs: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::BadNodeCert(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    Ok(Arc::new(config))
}

/// A client of some node's admin port: verifies the server against the cluster CA and the
/// host name in the URL, as the CLI does.
pub fn admin_client_config(ca_der: &[u8]) -> Result<ClientConfig, TlsSetupError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::BadCa(e.to_string()))?
        .with_root_certificates(roots(ca_der)?)
        .with_no_client_auth())
}

/// A client of other members' admin ports (the forwarder): the CA chain and the URL's host,
/// as [`admin_client_config`], and the certificate must be the one the membership pins for
/// the node it names, so a removed node's certificate, or one re-issued for a member's id,
/// never receives a forwarded request (and the admin token in it).
pub fn member_admin_client_config(
    ca_der: &[u8],
    members: Members,
) -> Result<ClientConfig, TlsSetupError> {
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca_der)?, provider())
            .build()
            .map_err(|e| TlsSetupError::BadCa(e.to_string()))?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::BadCa(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(MemberServerVerifier { inner, members }))
        .with_no_client_auth())
}

#[derive(Debug)]
struct MemberServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    members: Members,
}

impl ServerCertVerifier for MemberServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        admitted(&self.members, end_entity).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether `end_entity` (already verified against the CA) is the certificate the membership
/// pins for the node it names: the one membership check both verifiers make.
fn admitted(members: &Members, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    match node_id_of(end_entity) {
        Some(id) if members.admits(id, end_entity) => Ok(()),
        other => Err(not_member(other)),
    }
}

fn not_member(id: Option<u64>) -> rustls::Error {
    rustls::Error::General(match id {
        Some(id) => format!("node {id} is not a current member of this cluster"),
        None => "the certificate names no certraft node".into(),
    })
}

#[derive(Debug)]
struct MemberClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    members: Members,
}

impl ClientCertVerifier for MemberClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        // A removed member's certificate gets through the handshake only to be told why it
        // is refused: every request it sends is answered 403 with that text.
        if self
            .members
            .revocation(&crate::pki::cert_sha256(end_entity))
            .is_some()
        {
            return Ok(ClientCertVerified::assertion());
        }
        admitted(&self.members, end_entity).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct NodeServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    expect: u64,
}

impl ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        match node_id_of(end_entity) {
            Some(id) if id == self.expect => Ok(ServerCertVerified::assertion()),
            Some(id) => Err(rustls::Error::General(format!(
                "expected node {} at this address, found node {id}",
                self.expect
            ))),
            None => Err(not_member(None)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// For a joining node's first request only: fetches `GET /api/v1/trust` without trusting the
/// server, because the answer is then checked against the CA fingerprint in the join token.
/// Never used for anything that sends a secret.
pub fn fingerprint_probe_config() -> ClientConfig {
    #[derive(Debug)]
    struct CheckedLater(Arc<CryptoProvider>);
    impl ServerCertVerifier for CheckedLater {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CheckedLater(provider())))
        .with_no_client_auth()
}

#[cfg(test)]
mod tests;
