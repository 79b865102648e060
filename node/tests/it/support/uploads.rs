//! Import request bodies (the admin API's JSON, written out, not built from the node's own
//! DTO types): from fixture files, or from distinct bundles generated with rcgen.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::fixture;

/// The passphrase of every encrypted fixture (`pass.txt`).
pub fn fixture_passphrase() -> String {
    String::from_utf8(fixture("pass.txt")).expect("pass.txt is UTF-8")
}

/// `wrong-pass.txt`.
pub fn wrong_fixture_passphrase() -> String {
    String::from_utf8(fixture("wrong-pass.txt")).expect("wrong-pass.txt is UTF-8")
}

/// `{"name", "data"}` for one upload.
pub fn upload(name: &str, data: &[u8]) -> Value {
    json!({"name": name, "data": STANDARD.encode(data)})
}

/// An import body from fixture files, with an optional passphrase.
pub fn fixture_import(files: &[&str], passphrase: Option<&str>) -> Value {
    let files: Vec<Value> = files.iter().map(|f| upload(f, &fixture(f))).collect();
    let mut body = json!({ "files": files });
    if let Some(p) = passphrase {
        body["passphrase"] = json!(p);
    }
    body
}

/// A self-signed P-256 leaf for one DNS name, with its key: a fresh, distinct bundle per call.
pub struct TestCert {
    pub host: String,
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    /// PKCS#8 DER.
    pub key_der: Vec<u8>,
    pub key_pem: String,
}

impl TestCert {
    pub fn new(host: &str) -> TestCert {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let params = rcgen::CertificateParams::new(vec![host.to_string()]).expect("DNS SAN");
        let cert = params.self_signed(&key).expect("self-signed leaf");
        let cert_der = cert.der().to_vec();
        let key_der = key.serialize_der();
        TestCert {
            host: host.to_string(),
            cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", cert_der.clone())),
            key_pem: pem::encode(&pem::Pem::new("PRIVATE KEY", key_der.clone())),
            cert_der,
            key_der,
        }
    }

    /// The uploads: certificate PEM and PKCS#8 PEM key, as two files.
    pub fn files(&self) -> Value {
        json!([
            upload(&format!("{}.pem", self.host), self.cert_pem.as_bytes()),
            upload(&format!("{}.key", self.host), self.key_pem.as_bytes()),
        ])
    }

    /// An import body; the node names the bundle after the host unless `name` is given.
    pub fn import(&self, name: Option<&str>) -> Value {
        let mut body = json!({ "files": self.files() });
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        body
    }
}
