//! Talking to nodes the way operators and TLS clients do: the admin HTTPS API (verified
//! against the cluster CA, bearer token) and TLS handshakes on the serve port.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// One admin answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The `error.code` of a failure body, or "".
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.body)
    }
}

/// How a request failed before any answer.
#[derive(Debug, Clone)]
pub enum SendError {
    /// Nothing reached the node (connection refused): the request did not happen.
    NotSent(String),
    /// Sent, but no answer (timeout, reset): it may or may not have happened.
    NoAnswer(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::NotSent(e) => write!(f, "not sent: {e}"),
            SendError::NoAnswer(e) => write!(f, "no answer: {e}"),
        }
    }
}

/// The admin API of every node of one cluster.
#[derive(Clone)]
pub struct Admin {
    client: reqwest::Client,
    token: String,
}

/// The rustls provider (ring), as the product uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// DER of the first certificate in PEM text.
pub fn pem_der(pem_text: &[u8]) -> Result<Vec<u8>, String> {
    pem::parse(pem_text)
        .map(|p| p.contents().to_vec())
        .map_err(|e| format!("not PEM: {e}"))
}

impl Admin {
    /// A client that trusts only `ca_pem` and sends `token`; `timeout` bounds each request.
    pub fn new(ca_pem: &[u8], token: &str, timeout: Duration) -> Result<Admin, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(pem_der(ca_pem)?.into())
            .map_err(|e| format!("cluster CA: {e}"))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Admin {
            client,
            token: token.trim().to_string(),
        })
    }

    /// `method base+path` with the token and an optional JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, SendError> {
        let url = format!("{base}{path}");
        let mut req = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let text = format!("{method} {url}: {e:?}");
            if e.is_connect() {
                SendError::NotSent(text)
            } else {
                SendError::NoAnswer(text)
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| SendError::NoAnswer(format!("{method} {url}: body: {e}")))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Reply { status, body })
    }

    pub async fn get(&self, base: &str, path: &str) -> Result<Reply, SendError> {
        self.send(reqwest::Method::GET, base, path, None).await
    }

    pub async fn post(&self, base: &str, path: &str, body: &Value) -> Result<Reply, SendError> {
        self.send(reqwest::Method::POST, base, path, Some(body))
            .await
    }

    pub async fn delete(&self, base: &str, path: &str) -> Result<Reply, SendError> {
        self.send(reqwest::Method::DELETE, base, path, None).await
    }
}

/// Accepts any server certificate (signatures are still checked): for probes that compare
/// the served leaf themselves. The serve bench uses it too.
#[derive(Debug)]
pub struct AcceptAny(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS handshakes against serve ports: the leaf each presents for an SNI.
#[derive(Clone)]
pub struct Prober {
    connector: tokio_rustls::TlsConnector,
}

impl Default for Prober {
    fn default() -> Self {
        let provider = provider();
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the defaults")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Prober {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }
}

impl Prober {
    /// One full handshake with `sni` at `addr` (within `limit`): the served leaf's DER.
    pub async fn leaf(&self, addr: &str, sni: &str, limit: Duration) -> Result<Vec<u8>, String> {
        let name = rustls::pki_types::ServerName::try_from(sni.to_string())
            .map_err(|e| format!("SNI {sni}: {e}"))?;
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let tls = self
                .connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake with {addr} for {sni}: {e}"))?;
            tls.get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec())
                .ok_or_else(|| format!("{addr} presented no certificate for {sni}"))
        };
        tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| format!("handshake with {addr} for {sni}: no answer within {limit:?}"))?
    }
}
