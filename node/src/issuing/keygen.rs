//! Keys born in the cluster and their CSRs: generated here, on the leader, on the blocking
//! pool; the PKCS#8 bytes are zeroized on drop and never printed.

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use zeroize::Zeroizing;

use super::IssuingError;
use crate::inventory::KeyType;

/// A fresh key: its PKCS#8 DER and the rcgen key pair that signs with it.
pub struct NewKey {
    pub key_type: KeyType,
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub pair: KeyPair,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewKey({}, <redacted>)", self.key_type)
    }
}

fn algorithm(key_type: KeyType) -> &'static rcgen::SignatureAlgorithm {
    match key_type {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
    }
}

/// Generates a key of `key_type`. CPU-bound (RSA-4096 takes seconds): call it on the
/// blocking pool.
pub fn generate(key_type: KeyType) -> Result<NewKey, IssuingError> {
    let failed = |e: String| IssuingError::KeyGeneration {
        key_type,
        detail: e,
    };
    let alg = algorithm(key_type);
    let pkcs8 = match key_type.rsa_bits() {
        Some(bits) => {
            use rsa::pkcs8::EncodePrivateKey;
            let mut rng = aes_gcm::aead::OsRng;
            let key = rsa::RsaPrivateKey::new(&mut rng, bits).map_err(|e| failed(e.to_string()))?;
            let doc = key.to_pkcs8_der().map_err(|e| failed(e.to_string()))?;
            Zeroizing::new(doc.as_bytes().to_vec())
        }
        None => {
            let pair = KeyPair::generate_for(alg).map_err(|e| failed(e.to_string()))?;
            Zeroizing::new(pair.serialize_der())
        }
    };
    load(key_type, pkcs8)
}

/// Loads a key made earlier (a pending CSR's, opened from its seal).
pub fn load(key_type: KeyType, pkcs8: Zeroizing<Vec<u8>>) -> Result<NewKey, IssuingError> {
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_slice());
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(&der, algorithm(key_type)).map_err(|e| {
        IssuingError::KeyGeneration {
            key_type,
            detail: e.to_string(),
        }
    })?;
    Ok(NewKey {
        key_type,
        pkcs8,
        pair,
    })
}

/// The SubjectPublicKeyInfo (DER) of a key.
pub fn spki_der(key: &NewKey) -> Vec<u8> {
    use rcgen::PublicKeyData;
    key.pair.subject_public_key_info()
}

/// Checks and normalises a CSR's or certificate's names: lowercase DNS names (a leading
/// `*.` allowed), at most [`MAX_SANS`], no duplicates; at least one.
pub fn check_sans(sans: &[String]) -> Result<Vec<String>, IssuingError> {
    if sans.is_empty() {
        return Err(IssuingError::BadInput(
            "no --san given; name at least one DNS name the certificate is for (e.g. --san www.example.com)".into(),
        ));
    }
    if sans.len() > MAX_SANS {
        return Err(IssuingError::BadInput(format!(
            "{} names given; a certificate made here carries at most {MAX_SANS}",
            sans.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(sans.len());
    for san in sans {
        let name = san.trim().trim_end_matches('.').to_ascii_lowercase();
        if !crate::bundle::cert::is_dns_name(&name) {
            return Err(IssuingError::BadInput(format!(
                "{san:?} is not a DNS name; use names like www.example.com or *.example.com (IP addresses are not issued here)"
            )));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// The most names a CSR or an issued certificate carries.
pub const MAX_SANS: usize = 100;

/// Checks a subject common name: 1–64 printable characters.
pub fn check_cn(cn: &str) -> Result<(), IssuingError> {
    if cn.is_empty() || cn.chars().count() > 64 || cn.chars().any(char::is_control) {
        return Err(IssuingError::BadInput(format!(
            "the common name {cn:?} must be 1–64 printable characters (usually the main hostname)"
        )));
    }
    Ok(())
}

fn san_types(sans: &[String]) -> Result<Vec<SanType>, IssuingError> {
    sans.iter()
        .map(|s| {
            s.clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| IssuingError::BadInput(format!("{s:?}: {e}")))
        })
        .collect()
}

/// A PKCS#10 request for `key`, subject `CN=cn`, with the names as DNS SANs (PEM).
pub fn csr_pem(key: &NewKey, cn: &str, sans: &[String]) -> Result<String, IssuingError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = san_types(sans)?;
    let csr = params
        .serialize_request(&key.pair)
        .map_err(|e| IssuingError::Sign(e.to_string()))?;
    Ok(super::pem_lf("CERTIFICATE REQUEST", csr.der().to_vec()))
}

/// The names as rcgen SANs, for issuing.
pub(super) fn dns_sans(sans: &[String]) -> Result<Vec<SanType>, IssuingError> {
    san_types(sans)
}
