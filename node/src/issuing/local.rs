//! The cluster's local issuer: a P-256 CA of its own, separate from the node-to-node
//! mutual-TLS CA (a served certificate can never act as a cluster member, nor a node
//! certificate as a served one). Its key is sealed under the core keyring, which is derived
//! from the cluster CA key: only nodes that may lead (voters, witnesses) can open it.

use hmac::{Hmac, Mac};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::keygen::{self, NewKey};
use super::IssuingError;
use crate::bundle::{assemble, AssembleOptions, Bundle, DataKey, Keyring};
use crate::inventory::{KeyType, LocalIssuer, LOCAL_ISSUER_KEY_RECORD};
use crate::pki::ClusterCa;

const ISSUER_YEARS: i64 = 10;

/// The keyring for secrets only a leader needs (the local issuer's key, webhook secrets):
/// HMAC-SHA256 of the cluster CA key under a fixed label (HKDF-extract with one block of
/// expand). `None` on a node without the CA key (a traffic node).
pub fn core_keyring(ca: &ClusterCa) -> Option<Keyring> {
    let ca_key = ca.key_pkcs8()?;
    let mut extract = <Hmac<Sha256> as Mac>::new_from_slice(b"certraft core keyring v1")
        .expect("HMAC takes a key of any length");
    extract.update(ca_key);
    let prk = Zeroizing::new(extract.finalize().into_bytes());
    let mut expand =
        <Hmac<Sha256> as Mac>::new_from_slice(&prk).expect("HMAC takes a key of any length");
    expand.update(b"issuer and notify secrets\x01");
    let okm = Zeroizing::new(<[u8; 32]>::from(expand.finalize().into_bytes()));
    Some(Keyring::new(DataKey::from_bytes(1, *okm)))
}

fn random_serial() -> SerialNumber {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = [0u8; 16];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    SerialNumber::from(bytes.to_vec())
}

/// A new local issuer for the cluster, its key sealed under `core`.
pub fn create(cluster_id: &str, core: &Keyring, now: i64) -> Result<LocalIssuer, IssuingError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| IssuingError::Sign(e.to_string()))?;
    let subject = format!("certraft local issuer {cluster_id}");
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, subject.clone());
    p.distinguished_name
        .push(DnType::OrganizationName, "certraft");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let start = time::OffsetDateTime::from_unix_timestamp(now - 3600)
        .map_err(|e| IssuingError::Sign(e.to_string()))?;
    p.not_before = start;
    p.not_after = start + time::Duration::days(365 * ISSUER_YEARS);
    p.serial_number = Some(random_serial());
    let cert = p
        .self_signed(&key)
        .map_err(|e| IssuingError::Sign(e.to_string()))?;
    let pkcs8 = Zeroizing::new(key.serialize_der());
    Ok(LocalIssuer {
        cert_der: cert.der().to_vec(),
        sealed_key: core.seal(LOCAL_ISSUER_KEY_RECORD.as_bytes(), &pkcs8),
        subject,
        not_after: p.not_after.unix_timestamp(),
        created_at: now,
    })
}

/// What an issued certificate should be.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub sans: Vec<String>,
    pub key_type: KeyType,
    pub lifetime_secs: i64,
}

/// Signs a leaf for `key` under the local issuer and assembles the bundle exactly as an
/// import would (key, leaf, issuer; validated and ordered by `assemble`).
pub fn issue(
    issuer: &LocalIssuer,
    core: &Keyring,
    key: &NewKey,
    spec: &LeafSpec,
    now: i64,
) -> Result<Bundle, IssuingError> {
    let ca_pkcs8 = core
        .open(LOCAL_ISSUER_KEY_RECORD.as_bytes(), &issuer.sealed_key)
        .map_err(|e| IssuingError::IssuerKey(e.to_string()))?;
    let ca_der = rustls::pki_types::PrivatePkcs8KeyDer::from(ca_pkcs8.as_slice());
    let ca_key = KeyPair::from_pkcs8_der_and_sign_algo(&ca_der, &rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| IssuingError::IssuerKey(e.to_string()))?;
    let ca_cert = rustls::pki_types::CertificateDer::from(issuer.cert_der.as_slice());
    let ca = Issuer::from_ca_cert_der(&ca_cert, ca_key)
        .map_err(|e| IssuingError::IssuerKey(e.to_string()))?;
    let not_after = now + spec.lifetime_secs;
    if not_after > issuer.not_after {
        return Err(IssuingError::BadInput(format!(
            "the certificate would outlive the local issuer ({}); ask for a shorter lifetime",
            crate::bundle::assemble::fmt_time(issuer.not_after)
        )));
    }
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, spec.sans[0].clone());
    p.subject_alt_names = keygen::dns_sans(&spec.sans)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = match spec.key_type.rsa_bits() {
        Some(_) => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        None => vec![KeyUsagePurpose::DigitalSignature],
    };
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    // Slack for clients whose clocks run behind: a minute, less for a very short lifetime
    // (so its renewal still falls two thirds into what was asked for).
    let backdate = (spec.lifetime_secs / 20).clamp(0, 60);
    p.not_before = time::OffsetDateTime::from_unix_timestamp(now - backdate)
        .map_err(|e| IssuingError::Sign(e.to_string()))?;
    p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after)
        .map_err(|e| IssuingError::Sign(e.to_string()))?;
    p.serial_number = Some(random_serial());
    let leaf = p
        .signed_by(&key.pair, &ca)
        .map_err(|e| IssuingError::Sign(e.to_string()))?;
    assemble_parts(
        &key.pkcs8,
        &[leaf.der().to_vec(), issuer.cert_der.clone()],
        now,
    )
}

/// Assembles a bundle from a key (PKCS#8) and certificates (DER) through the import path:
/// the same parsing and the same checks an operator's files meet.
pub fn assemble_parts(
    key_pkcs8: &[u8],
    certs: &[Vec<u8>],
    now: i64,
) -> Result<Bundle, IssuingError> {
    let mut parsed = vec![crate::bundle::parse_file("generated.key", key_pkcs8, None)
        .map_err(|e| IssuingError::Assemble(e.to_string()))?];
    for (i, der) in certs.iter().enumerate() {
        parsed.push(
            crate::bundle::parse_file(&format!("issued-{i}.der"), der, None)
                .map_err(|e| IssuingError::Assemble(e.to_string()))?,
        );
    }
    assemble(parsed, AssembleOptions::default(), now)
        .map_err(|e| IssuingError::Assemble(e.to_string()))
}
