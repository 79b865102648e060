//! What the CLI trusts on the admin port: a certificate issued by the cluster CA (the CA
//! file) that is not on the cluster's list of removed members' certificates
//! (`revoked-nodes.txt` beside the CA file, which every node keeps current in its data dir).
//!
//! The check runs inside the TLS handshake, so a server presenting a removed node's
//! certificate never receives the admin token (issue 19).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use certraft::api::dto::REVOKED_NODES_FILE;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::fail::Failure;

/// A removed member's certificate was presented: which node, from which list.
#[derive(Debug)]
pub(crate) struct RemovedMember {
    pub node: u64,
    pub sha256: String,
    pub list: PathBuf,
}

impl fmt::Display for RemovedMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the certificate of removed cluster member node {} (SHA-256 {}, listed in {})",
            self.node,
            self.sha256,
            self.list.display()
        )
    }
}

impl std::error::Error for RemovedMember {}

/// The path of the revoked list that goes with `ca_file`.
pub(crate) fn revoked_list_path(ca_file: &Path) -> PathBuf {
    ca_file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(REVOKED_NODES_FILE)
}

/// The rustls client configuration: ring, safe default protocol versions, roots = the
/// certificates in the CA file, no client certificate, and the removed members' certificates
/// (when the list exists beside the CA file) refused.
pub(crate) fn tls_config(ca_file: &Path) -> Result<rustls::ClientConfig, Failure> {
    let ca = ca_file.display();
    let bytes = std::fs::read(ca_file).map_err(|e| {
        Failure::usage(
            "ca_file_unreadable",
            format!("cannot read CA file {ca}: {e}; pass --ca-file F with a copy of DATA/ca.pem from any node"),
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| {
            Failure::usage(
                "invalid_ca_file",
                format!("CA file {ca} is not valid PEM ({e}); pass --ca-file F with a copy of DATA/ca.pem from any node"),
            )
        })?;
        roots.add(cert).map_err(|e| {
            Failure::usage(
                "invalid_ca_file",
                format!("CA file {ca} holds a certificate that cannot be a trust anchor ({e}); pass --ca-file F with a copy of DATA/ca.pem from any node"),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(Failure::usage(
            "invalid_ca_file",
            format!("CA file {ca} holds no PEM certificate; pass --ca-file F with a copy of DATA/ca.pem from any node"),
        ));
    }
    let list = revoked_list_path(ca_file);
    let revoked = read_revoked(&list)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Failure::refused("client_setup_failed", format!("cannot set up TLS: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::refused("client_setup_failed", format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(MemberVerifier {
            inner,
            revoked,
            list,
        }))
        .with_no_client_auth();
    Ok(config)
}

/// SHA-256 hex → node id, from `path`; an absent file is an empty list. A line is
/// `SHA256HEX node-N`; `#` starts a comment. A malformed file is refused (it is a security
/// list: better to stop than to trust what it meant to refuse).
fn read_revoked(path: &Path) -> Result<BTreeMap<String, u64>, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(Failure::usage(
                "revoked_list_unreadable",
                format!("cannot read the removed-member list {}: {e}; copy DATA/{REVOKED_NODES_FILE} from any node beside the CA file", path.display()),
            ))
        }
    };
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let sha = words.next().unwrap_or_default().to_ascii_lowercase();
        let node = words
            .next()
            .and_then(|w| w.strip_prefix("node-"))
            .and_then(|id| id.parse::<u64>().ok());
        match node {
            Some(node) if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
                out.insert(sha, node);
            }
            _ => {
                return Err(Failure::usage(
                    "invalid_revoked_list",
                    format!(
                        "line {} of the removed-member list {} is not `SHA256HEX node-N`; copy DATA/{REVOKED_NODES_FILE} from any node again",
                        n + 1,
                        path.display()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

#[derive(Debug)]
struct MemberVerifier {
    inner: Arc<WebPkiServerVerifier>,
    revoked: BTreeMap<String, u64>,
    list: PathBuf,
}

impl ServerCertVerifier for MemberVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let sha256 = hex(&Sha256::digest(end_entity.as_ref()));
        if let Some(&node) = self.revoked.get(&sha256) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(RemovedMember {
                    node,
                    sha256,
                    list: self.list.clone(),
                })),
            )));
        }
        Ok(verified)
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fail::Exit;

    /// A CA file without a certificate is a usage error naming the file.
    #[test]
    fn ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = tls_config(&path).expect_err("refused");
        assert_eq!(err.exit, Exit::Usage);
        assert!(err.message.contains(&path.display().to_string()));
        std::fs::write(&path, test_ca_pem()).expect("write");
        assert!(tls_config(&path).is_ok());
    }

    /// The removed-member list: comments and blank lines skipped, hex case-folded, and a
    /// malformed line refused with its number (never silently ignored).
    #[test]
    fn revoked_list_parses_or_refuses() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(REVOKED_NODES_FILE);
        assert!(read_revoked(&path).expect("absent is empty").is_empty());
        let sha = "AB".repeat(32);
        std::fs::write(&path, format!("# comment\n\n{sha} node-7\n")).expect("write");
        let list = read_revoked(&path).expect("parsed");
        assert_eq!(list.get(&"ab".repeat(32)), Some(&7));
        for bad in ["abc node-1", sha.as_str(), &format!("{sha} node-x")] {
            std::fs::write(&path, format!("# ok\n{bad}\n")).expect("write");
            let err = read_revoked(&path).expect_err(bad);
            assert_eq!(err.exit, Exit::Usage);
            assert!(err.message.contains("line 2"), "{}", err.message);
        }
    }

    pub(crate) fn test_ca_pem() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../node/tests/fixtures/root.pem"
        ))
        .expect("node/tests/fixtures/root.pem")
    }
}
