//! Import request bodies (the admin API's JSON, written out, not built from the node's own
//! DTO types): from fixture files, or from distinct bundles generated with rcgen.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::fixture;

/// The passphrase of every encrypted fixture (`pass.txt`).
pub(crate) fn fixture_passphrase() -> String {
    String::from_utf8(fixture("pass.txt")).expect("pass.txt is UTF-8")
}

/// `wrong-pass.txt`.
pub(crate) fn wrong_fixture_passphrase() -> String {
    String::from_utf8(fixture("wrong-pass.txt")).expect("wrong-pass.txt is UTF-8")
}

/// `{"name", "data"}` for one upload.
pub(crate) fn upload(name: &str, data: &[u8]) -> Value {
    json!({"name": name, "data": STANDARD.encode(data)})
}

/// An import body from fixture files, with an optional passphrase.
pub(crate) fn fixture_import(files: &[&str], passphrase: Option<&str>) -> Value {
    let files: Vec<Value> = files.iter().map(|f| upload(f, &fixture(f))).collect();
    let mut body = json!({ "files": files });
    if let Some(p) = passphrase {
        body["passphrase"] = json!(p);
    }
    body
}

/// A self-signed P-256 leaf for one or more DNS names (wildcards such as `*.w.test` too), with
/// its key: a fresh, distinct bundle per call.
pub(crate) struct TestCert {
    /// The first DNS name.
    pub host: String,
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    /// PKCS#8 DER.
    pub key_der: Vec<u8>,
    pub key_pem: String,
}

impl TestCert {
    /// A leaf for `host`, valid from rcgen's default not-before to its default not-after.
    pub(crate) fn new(host: &str) -> TestCert {
        TestCert::with(&[host], None)
    }

    /// A leaf for `hosts` (the first names the uploads), valid until `not_after` when given.
    pub(crate) fn with(hosts: &[&str], not_after: Option<time::OffsetDateTime>) -> TestCert {
        let host = hosts.first().expect("at least one DNS name").to_string();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let sans: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(sans).expect("DNS SANs");
        if let Some(t) = not_after {
            params.not_after = t;
        }
        let cert = params.self_signed(&key).expect("self-signed leaf");
        let cert_der = cert.der().to_vec();
        let key_der = key.serialize_der();
        TestCert {
            host,
            cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", cert_der.clone())),
            key_pem: pem::encode(&pem::Pem::new("PRIVATE KEY", key_der.clone())),
            cert_der,
            key_der,
        }
    }

    /// The uploads: certificate PEM and PKCS#8 PEM key, as two files.
    pub(crate) fn files(&self) -> Value {
        let stem = self.host.replace('*', "wildcard");
        json!([
            upload(&format!("{stem}.pem"), self.cert_pem.as_bytes()),
            upload(&format!("{stem}.key"), self.key_pem.as_bytes()),
        ])
    }

    /// An import body; the node names the bundle after the host unless `name` is given.
    pub(crate) fn import(&self, name: Option<&str>) -> Value {
        let mut body = json!({ "files": self.files() });
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        body
    }
}
