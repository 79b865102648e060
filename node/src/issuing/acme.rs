//! The leader's ACME client (issue 15): instant-acme (RFC 8555, `badNonce` retried, ARI)
//! over certraft's own HTTPS transport ([`Transport`]: the public roots plus the issuer's
//! `--ca-file`, bounded bodies and timeouts, no redirects). Only the leader calls anything
//! here; what it learns goes through Raft (`node/issuing_duties.rs` drives the orders).
//!
//! The account key is born here (instant-acme's P-256 key), registered once, and kept only
//! sealed under the core keyring inside the replicated [`AcmeIssuer`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, BytesResponse, ExternalAccountKey, HttpClient,
    NewAccount,
};
use zeroize::Zeroizing;

use super::IssuingError;
use crate::bundle::Keyring;
use crate::inventory::AcmeIssuer;

/// One request to the CA, at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from a CA (a certificate chain is a few KiB).
const MAX_BODY: usize = 1 << 20;

/// Why an ACME step failed, told apart the way the duty needs: does the order survive, and
/// when may it be tried again.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with a problem document (RFC 8555 §6.7).
    #[error("the CA refused: {detail} ({kind})")]
    Problem { kind: String, detail: String },
    /// The CA could not be reached or answered nonsense.
    #[error("the CA at {url} is unreachable or answered unexpectedly: {detail}")]
    Unreachable { url: String, detail: String },
    /// The order ended `invalid`: the CA will not validate it.
    #[error("the CA did not validate {domain} by {kind}: {detail}")]
    Invalid {
        domain: String,
        kind: String,
        detail: String,
    },
    #[error("{0}")]
    Local(String),
}

impl AcmeError {
    /// Whether the open order is finished with (a new one is opened after the backoff).
    pub fn order_dead(&self) -> bool {
        match self {
            AcmeError::Problem { kind, .. } => crate::inventory::order_is_dead(kind),
            AcmeError::Invalid { .. } => true,
            AcmeError::Unreachable { .. } | AcmeError::Local(_) => false,
        }
    }

    pub fn rate_limited(&self) -> bool {
        matches!(self, AcmeError::Problem { kind, .. } if kind.ends_with(":rateLimited"))
    }

    pub(crate) fn from_acme(url: &str, e: instant_acme::Error) -> AcmeError {
        match e {
            instant_acme::Error::Api(p) => AcmeError::Problem {
                kind: p.r#type.clone().unwrap_or_default(),
                detail: p.detail.clone().unwrap_or_default(),
            },
            other => AcmeError::Unreachable {
                url: url.to_string(),
                detail: other.to_string(),
            },
        }
    }
}

/// instant-acme's transport: reqwest with certraft's roots and bounds.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
}

impl Transport {
    /// Verifies the CA with the public roots and, when given, the PEM roots of `ca_pem`.
    pub fn new(ca_pem: Option<&str>) -> Result<Transport, IssuingError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(text) = ca_pem {
            let blocks = pem::parse_many(text)
                .map_err(|e| IssuingError::BadInput(format!("the --ca-file is not PEM: {e}")))?;
            if blocks.is_empty() {
                return Err(IssuingError::BadInput(
                    "the --ca-file holds no certificate".into(),
                ));
            }
            for block in blocks {
                roots
                    .add(rustls::pki_types::CertificateDer::from(
                        block.contents().to_vec(),
                    ))
                    .map_err(|e| {
                        IssuingError::BadInput(format!("the --ca-file is not a usable root: {e}"))
                    })?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| IssuingError::BadInput(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| IssuingError::BadInput(e.to_string()))?;
        Ok(Transport { client })
    }

    async fn send(
        client: reqwest::Client,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Result<BytesResponse, instant_acme::Error> {
        use http_body_util::BodyExt;
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        let mut resp = client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
        let mut builder = http::Response::builder().status(resp.status());
        for (k, v) in resp.headers() {
            builder = builder.header(k, v);
        }
        let mut data = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
        {
            if data.len() + chunk.len() > MAX_BODY {
                return Err(instant_acme::Error::Str("the CA's answer is over 1 MiB"));
            }
            data.extend_from_slice(&chunk);
        }
        let (parts, ()) = builder.body(())?.into_parts();
        Ok(BytesResponse {
            parts,
            body: Box::new(Bytes::from(data)),
        })
    }
}

impl HttpClient for Transport {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>
    {
        Box::pin(Self::send(self.client.clone(), req))
    }
}

/// What a directory offers, read before anything is registered.
#[derive(Debug, Clone)]
pub struct Directory {
    /// `renewalInfo` (RFC 9773).
    pub ari: bool,
}

/// Fetches `url` and checks it is an ACME directory.
pub async fn directory(transport: &Transport, url: &str) -> Result<Directory, AcmeError> {
    let unreachable = |detail: String| AcmeError::Unreachable {
        url: url.to_string(),
        detail,
    };
    let resp = transport
        .client
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(unreachable(format!("HTTP {}", resp.status())));
    }
    let v: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| unreachable(format!("not JSON: {e}")))?;
    if !v["newAccount"].is_string() || !v["newOrder"].is_string() || !v["newNonce"].is_string() {
        return Err(unreachable(
            "not an ACME directory (no newAccount, newOrder and newNonce)".into(),
        ));
    }
    Ok(Directory {
        ari: v["renewalInfo"].is_string(),
    })
}

/// An error and its sources in one line (reqwest hides the TLS reason in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// External account binding (`--eab-kid`, `--eab-hmac-file`): the HMAC key base64url.
pub struct Eab {
    pub kid: String,
    pub hmac: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Eab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Eab({}, <redacted>)", self.kid)
    }
}

/// Registers a new account at `directory_url` (terms agreed, contact `mailto:email`); the
/// credentials come back as JSON (the account key inside) for the caller to seal.
pub async fn register(
    transport: Transport,
    directory_url: &str,
    email: &str,
    eab: Option<&Eab>,
) -> Result<(String, Zeroizing<Vec<u8>>), AcmeError> {
    let contact = format!("mailto:{email}");
    let eab = eab.map(|e| ExternalAccountKey::new(e.kid.clone(), &e.hmac));
    let (account, creds) = Account::builder_with_http(Box::new(transport))
        .create(
            &NewAccount {
                contact: &[&contact],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory_url.to_string(),
            eab.as_ref(),
        )
        .await
        .map_err(|e| AcmeError::from_acme(directory_url, e))?;
    let json = Zeroizing::new(
        serde_json::to_vec(&creds)
            .map_err(|e| AcmeError::Local(format!("account credentials: {e}")))?,
    );
    Ok((account.id().to_string(), json))
}

/// The account of `issuer`, opened from its seal (a directory fetch, no registration).
pub async fn account(issuer: &AcmeIssuer, core: &Keyring) -> Result<Account, AcmeError> {
    let json = core
        .open(
            AcmeIssuer::credentials_record(&issuer.name, issuer.created_at).as_bytes(),
            &issuer.sealed_credentials,
        )
        .map_err(|e| {
            AcmeError::Local(format!(
                "the account key of issuer {} does not open: {e}",
                issuer.name
            ))
        })?;
    let creds: AccountCredentials = serde_json::from_slice(&json).map_err(|e| {
        AcmeError::Local(format!(
            "the account of issuer {} is unreadable: {e}",
            issuer.name
        ))
    })?;
    let transport =
        Transport::new(issuer.ca_pem.as_deref()).map_err(|e| AcmeError::Local(e.to_string()))?;
    Account::builder_with_http(Box::new(transport))
        .from_credentials(creds)
        .await
        .map_err(|e| AcmeError::from_acme(&issuer.directory, e))
}
