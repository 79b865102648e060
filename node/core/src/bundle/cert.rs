//! What certraft needs to know about one X.509 certificate, extracted once.

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::key::{kind_from_spki, KeyKind};

/// A parsed certificate: its DER plus the facts assembly and display need.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    #[serde(skip)]
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    #[serde(skip)]
    pub subject_raw: Vec<u8>,
    #[serde(skip)]
    pub issuer_raw: Vec<u8>,
    #[serde(skip)]
    pub spki: Vec<u8>,
    pub serial: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub sha256: String,
    pub signature_algorithm: String,
    pub key: Option<KeyKind>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub common_name: Option<String>,
    pub has_san: bool,
    /// `None` when the certificate has no extended key usage extension (any use).
    pub server_auth: Option<bool>,
}

/// Parses DER into a [`CertInfo`]; the error is x509-parser's description.
pub fn parse_cert(der: &[u8]) -> Result<CertInfo, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        ));
    }
    let der = &der[..der.len() - rest.len()];
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    let mut has_san = false;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        has_san = true;
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns_names.push(normalize_hostname(n)),
                GeneralName::IPAddress(ip) => ip_addresses.push(format_ip(ip)),
                _ => {}
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let server_auth = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|eku| eku.value.server_auth || eku.value.any);
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    let spki = cert.tbs_certificate.subject_pki.raw.to_vec();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        subject_raw: cert.subject().as_raw().to_vec(),
        issuer_raw: cert.issuer().as_raw().to_vec(),
        key: kind_from_spki(&spki),
        spki,
        serial: cert.raw_serial_as_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca,
        sha256: hex::encode(Sha256::digest(der)),
        signature_algorithm: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
        dns_names,
        ip_addresses,
        common_name,
        has_san,
        server_auth,
        der: der.to_vec(),
    })
}

impl CertInfo {
    /// The names this certificate serves: DNS SANs, or the CN when there is no SAN extension.
    pub fn hostnames(&self) -> Vec<String> {
        if self.has_san {
            self.dns_names.clone()
        } else {
            self.common_name
                .iter()
                .map(|cn| normalize_hostname(cn))
                .filter(|cn| is_dns_name(cn))
                .collect()
        }
    }

    pub fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// A short name for messages: the CN if there is one, else the whole subject.
    pub fn display_name(&self) -> String {
        match &self.common_name {
            Some(cn) => format!("CN={cn}"),
            None => self.subject.clone(),
        }
    }

    /// Did `issuer` sign this certificate? Names must match and the signature must verify.
    pub fn is_signed_by(&self, issuer: &CertInfo) -> bool {
        if self.issuer_raw != issuer.subject_raw {
            return false;
        }
        self.signature_verifies_with(&issuer.spki)
    }

    pub fn signature_verifies_with(&self, issuer_spki: &[u8]) -> bool {
        let Ok((_, cert)) = X509Certificate::from_der(&self.der) else {
            return false;
        };
        let Ok((_, spki)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(issuer_spki) else {
            return false;
        };
        cert.verify_signature(Some(&spki)).is_ok()
    }

    pub fn uses_sha1(&self) -> bool {
        self.signature_algorithm.contains("SHA-1")
    }
}

/// A plausible DNS name (optionally `*.` wildcard): dotted labels of letters, digits and
/// hyphens. Used to decide whether a CN may stand in for missing SANs.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Lowercase, without a trailing dot: the form hostnames are compared in.
pub fn normalize_hostname(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn format_ip(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => hex::encode(bytes),
    }
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.5" => "RSA PKCS#1 SHA-1",
        "1.2.840.113549.1.1.11" => "RSA PKCS#1 SHA-256",
        "1.2.840.113549.1.1.12" => "RSA PKCS#1 SHA-384",
        "1.2.840.113549.1.1.13" => "RSA PKCS#1 SHA-512",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10045.4.1" => "ECDSA SHA-1",
        "1.2.840.10045.4.3.2" => "ECDSA SHA-256",
        "1.2.840.10045.4.3.3" => "ECDSA SHA-384",
        "1.2.840.10045.4.3.4" => "ECDSA SHA-512",
        "1.3.101.112" => "Ed25519",
        other => return other.to_string(),
    }
    .to_string()
}

/// SPEC §4's order among the bundles that serve one name, as a key (the greatest wins):
/// currently valid first, then the latest not-after, then the first name. The serving index
/// and the inventory's `serving` both rank with it, so what the API says is served is what
/// the serve port serves.
pub fn serve_rank(
    not_before: i64,
    not_after: i64,
    name: &str,
    now: i64,
) -> (bool, i64, std::cmp::Reverse<&str>) {
    (
        not_before <= now && now <= not_after,
        not_after,
        std::cmp::Reverse(name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which names may stand in as a hostname when a certificate has no SAN.
    #[test]
    fn dns_name_check() {
        for (name, ok) in [
            ("example.com", true),
            ("www.example.com", true),
            ("*.example.com", true),
            ("xn--bcher-kva.example", true),
            ("localhost", false),
            ("certraft test root", false),
            ("*.*.example.com", false),
            ("-bad.example.com", false),
            ("a..b", false),
            ("", false),
        ] {
            assert_eq!(is_dns_name(name), ok, "{name:?}");
        }
    }

    /// Hostnames compare lowercase without a trailing dot.
    #[test]
    fn hostnames_are_normalised() {
        assert_eq!(normalize_hostname("WWW.Example.COM."), "www.example.com");
    }
}
