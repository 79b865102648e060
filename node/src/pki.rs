//! The cluster's own PKI: one CA per cluster, one certificate per node.
//!
//! Node certificates name their node in a URI SAN `urn:certraft:node:<id>`, so the cluster
//! port can map a peer's certificate to a member id and refuse CA-issued certificates of
//! nodes that are not current members (the class of Consul CVE-2021-37219).

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

/// The URI SAN prefix that carries a node id.
pub const NODE_URI_PREFIX: &str = "urn:certraft:node:";
const CA_YEARS: i64 = 20;
const NODE_YEARS: i64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("the stored cluster CA key could not be loaded: {0}; restore DATA/ca.key.sealed from a backup")]
    LoadCaKey(String),
    #[error("this node holds no cluster CA key (a traffic node never does): node certificates are issued by a voter; ask the leader")]
    NoCaKey,
    #[error("the node's certificate signing request is not usable: {0}; the joining node must send a signed PKCS#10 request for a P-256 key")]
    BadCsr(String),
}

fn gen_err(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// A certificate and its private key (PKCS#8 DER, zeroized on drop, never printed).
pub struct Issued {
    pub cert_der: Vec<u8>,
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Issued({} cert bytes, key <redacted>)",
            self.cert_der.len()
        )
    }
}

/// The cluster CA: its certificate, and on the nodes that may lead (voters and witnesses)
/// its key. A traffic node (learner) holds only the certificate: it verifies, never issues.
pub struct ClusterCa {
    cert_der: Vec<u8>,
    key: Option<CaKey>,
}

struct CaKey {
    pkcs8: Zeroizing<Vec<u8>>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterCa(sha256 {})", self.fingerprint_hex())
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    getrandom(&mut bytes);
    bytes[0] &= 0x7f; // positive
    SerialNumber::from(bytes.to_vec())
}

fn getrandom(buf: &mut [u8]) {
    use aes_gcm::aead::rand_core::RngCore;
    aes_gcm::aead::OsRng.fill_bytes(buf);
}

fn ca_params(cluster_id: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(
        DnType::CommonName,
        format!("certraft cluster CA {cluster_id}"),
    );
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl ClusterCa {
    /// A new P-256 CA, valid for 20 years from now.
    pub fn generate(cluster_id: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
        let mut params = ca_params(cluster_id);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365 * CA_YEARS);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(gen_err)?;
        Ok(ClusterCa {
            cert_der: cert.der().to_vec(),
            key: Some(CaKey {
                pkcs8: Zeroizing::new(key.serialize_der()),
                issuer: Issuer::new(params, key),
            }),
        })
    }

    /// The CA as a verifier only: its certificate, no key.
    pub fn public(cert_der: Vec<u8>) -> Self {
        ClusterCa {
            cert_der,
            key: None,
        }
    }

    /// Reloads a CA from its certificate and key (as stored in the data dir).
    pub fn load(
        cluster_id: &str,
        cert_der: Vec<u8>,
        key_pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<Self, PkiError> {
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key_pkcs8.as_slice());
        let key = KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| PkiError::LoadCaKey(e.to_string()))?;
        Ok(ClusterCa {
            cert_der,
            key: Some(CaKey {
                pkcs8: key_pkcs8,
                issuer: Issuer::new(ca_params(cluster_id), key),
            }),
        })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA key, for sealing into the data dir; `None` on a node that holds no CA key.
    /// Secret.
    pub fn key_pkcs8(&self) -> Option<&[u8]> {
        self.key.as_ref().map(|k| k.pkcs8.as_slice())
    }

    fn issuer(&self) -> Result<&Issuer<'static, KeyPair>, PkiError> {
        self.key
            .as_ref()
            .map(|k| &k.issuer)
            .ok_or(PkiError::NoCaKey)
    }

    /// SHA-256 of the CA certificate: what join tokens bind so a joiner verifies its cluster.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.cert_der).into()
    }

    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint())
    }

    /// A node certificate for mutual TLS (server and client auth), naming the node id, with
    /// a key made here. Only the bootstrap (and tests) use this: a joining node makes its own
    /// key and sends a CSR ([`ClusterCa::sign_node_csr`]), so no node key ever travels.
    pub fn issue_node_cert(&self, node_id: u64, hosts: &[String]) -> Result<Issued, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
        let cert = node_params(node_id, hosts)?
            .signed_by(&key, self.issuer()?)
            .map_err(gen_err)?;
        Ok(Issued {
            cert_der: cert.der().to_vec(),
            key_pkcs8: Zeroizing::new(key.serialize_der()),
        })
    }

    /// Signs a joining node's CSR: only its public key is taken (after the CSR's signature
    /// is checked); the names, usages and validity are this CA's choice, never the CSR's.
    pub fn sign_node_csr(
        &self,
        node_id: u64,
        hosts: &[String],
        csr_der: &[u8],
    ) -> Result<Vec<u8>, PkiError> {
        check_csr(csr_der)?;
        let csr = rcgen::CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let cert = node_params(node_id, hosts)?
            .signed_by(&csr.public_key, self.issuer()?)
            .map_err(gen_err)?;
        Ok(cert.der().to_vec())
    }
}

/// The largest CSR a joiner may send: a P-256 or RSA-4096 request is well under 2 KiB.
pub const MAX_CSR_BYTES: usize = 8 * 1024;

/// Checks a joiner's CSR (size, DER, self-signature) without signing anything: the join
/// route runs this before it uses the token up, so a bad request costs no token and no id.
pub fn check_csr(csr_der: &[u8]) -> Result<(), PkiError> {
    if csr_der.len() > MAX_CSR_BYTES {
        return Err(PkiError::BadCsr(format!(
            "the CSR is {} bytes; at most {MAX_CSR_BYTES} are accepted",
            csr_der.len()
        )));
    }
    rcgen::CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
        .map(|_| ())
        .map_err(|e| PkiError::BadCsr(e.to_string()))
}

/// A new node key and a PKCS#10 request for it (the joining side of
/// [`ClusterCa::sign_node_csr`]). The key stays on the joining node.
pub fn node_key_and_csr() -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "certraft joining node");
    let csr = params.serialize_request(&key).map_err(gen_err)?;
    Ok((csr.der().to_vec(), Zeroizing::new(key.serialize_der())))
}

/// SHA-256 of a certificate's DER: how the membership pins the certificate a node was issued.
pub fn cert_sha256(cert_der: &[u8]) -> [u8; 32] {
    Sha256::digest(cert_der).into()
}

fn node_params(node_id: u64, hosts: &[String]) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("certraft node {node_id}"));
    let uri = format!("{NODE_URI_PREFIX}{node_id}");
    params
        .subject_alt_names
        .push(SanType::URI(uri.try_into().map_err(gen_err)?));
    for host in hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.clone().try_into().map_err(gen_err)?),
        };
        params.subject_alt_names.push(san);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365 * NODE_YEARS);
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The node id a node certificate names, if it names exactly one.
pub fn node_id_of(cert_der: &[u8]) -> Option<u64> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut ids = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(uri) => uri.strip_prefix(NODE_URI_PREFIX)?.parse::<u64>().ok(),
        _ => None,
    });
    let id = ids.next()?;
    ids.next().is_none().then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::cert::parse_cert;

    /// A node certificate is signed by the cluster CA, names its node, and its key matches.
    #[test]
    fn node_certificates_are_issued_by_the_ca_and_name_the_node() {
        let ca = ClusterCa::generate("test").unwrap();
        let node = ca
            .issue_node_cert(7, &["127.0.0.1".into(), "node7.example".into()])
            .unwrap();
        assert_eq!(node_id_of(&node.cert_der), Some(7));
        let leaf = parse_cert(&node.cert_der).unwrap();
        let root = parse_cert(ca.cert_der()).unwrap();
        assert!(leaf.is_signed_by(&root));
        assert!(root.is_ca && !leaf.is_ca);
        assert_eq!(leaf.ip_addresses, ["127.0.0.1"]);
        let key = crate::bundle::PrivateKey::from_pkcs8_der(&node.key_pkcs8).unwrap();
        assert_eq!(key.spki(), leaf.spki.as_slice());
    }

    /// A CA reloaded from its stored certificate and key issues certificates that chain to it.
    #[test]
    fn reloaded_ca_keeps_issuing_under_the_same_identity() {
        let ca = ClusterCa::generate("c1").unwrap();
        let again = ClusterCa::load(
            "c1",
            ca.cert_der().to_vec(),
            Zeroizing::new(ca.key_pkcs8().unwrap().to_vec()),
        )
        .unwrap();
        assert_eq!(again.fingerprint(), ca.fingerprint());
        let node = again.issue_node_cert(2, &[]).unwrap();
        assert!(parse_cert(&node.cert_der)
            .unwrap()
            .is_signed_by(&parse_cert(ca.cert_der()).unwrap()));
    }

    /// Certificates without exactly one node URI do not name a node.
    #[test]
    fn only_node_certificates_name_a_node() {
        let ca = ClusterCa::generate("c").unwrap();
        assert_eq!(node_id_of(ca.cert_der()), None);
        assert_eq!(node_id_of(b"not a certificate"), None);
    }

    /// A joining node's CSR is signed for the id and hosts the CA chooses: the names in the
    /// CSR are ignored, the certificate holds the CSR's key, and a CA without its key
    /// (a traffic node's) issues nothing. A CSR whose signature does not verify is refused.
    #[test]
    fn node_csrs_are_signed_with_the_cas_names_and_only_by_a_ca_with_its_key() {
        let ca = ClusterCa::generate("c").unwrap();
        let (csr, key) = node_key_and_csr().unwrap();
        let cert = ca.sign_node_csr(9, &["10.0.0.9".into()], &csr).unwrap();
        assert_eq!(node_id_of(&cert), Some(9));
        let leaf = parse_cert(&cert).unwrap();
        assert!(leaf.is_signed_by(&parse_cert(ca.cert_der()).unwrap()));
        assert_eq!(leaf.ip_addresses, ["10.0.0.9"]);
        let key = crate::bundle::PrivateKey::from_pkcs8_der(&key).unwrap();
        assert_eq!(key.spki(), leaf.spki.as_slice());

        let public = ClusterCa::public(ca.cert_der().to_vec());
        assert!(public.key_pkcs8().is_none());
        assert!(matches!(
            public.sign_node_csr(9, &[], &csr),
            Err(PkiError::NoCaKey)
        ));
        assert!(matches!(
            public.issue_node_cert(9, &[]),
            Err(PkiError::NoCaKey)
        ));
        let mut forged = csr.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(matches!(
            ca.sign_node_csr(9, &[], &forged),
            Err(PkiError::BadCsr(_))
        ));
    }

    /// Debug output carries no key material.
    #[test]
    fn debug_redacts_keys() {
        let ca = ClusterCa::generate("c").unwrap();
        let node = ca.issue_node_cert(1, &[]).unwrap();
        let shown = format!("{ca:?} {node:?}");
        assert!(
            shown.contains("redacted") && !shown.contains(&hex::encode(&node.key_pkcs8[40..56]))
        );
    }
}
