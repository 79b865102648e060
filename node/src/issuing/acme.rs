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
    Account, AccountCredentials, BodyWrapper, BytesResponse, ExternalAccountKey, HttpClient, Key,
    NewAccount,
};
use rustls::pki_types::PrivateKeyDer;
use zeroize::Zeroizing;

use super::IssuingError;
use crate::bundle::Keyring;
use crate::inventory::AcmeIssuer;

/// Requests this node sent to ACME CAs since it started (`certraft_acme_requests_total`).
pub static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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

    /// The CA does not know the account (it lost its state, or deactivated it).
    pub fn account_unknown(&self) -> bool {
        matches!(self, AcmeError::Problem { kind, .. } if kind.ends_with(":accountDoesNotExist"))
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

tokio::task_local! {
    /// The `Retry-After` (seconds from then) of the CA's last error answer in this task:
    /// instant-acme's problem documents drop the header, the transport keeps it here.
    static RETRY_AFTER: std::cell::Cell<Option<i64>>;
}

/// Runs one certificate's ACME attempt with its own [`retry_after`] slot.
pub async fn noting_retry_after<F: std::future::Future>(f: F) -> F::Output {
    RETRY_AFTER.scope(std::cell::Cell::new(None), f).await
}

/// The CA's `Retry-After` on its last error answer in this attempt, in seconds.
pub fn retry_after() -> Option<i64> {
    RETRY_AFTER.try_with(|c| c.get()).ok().flatten()
}

/// A `Retry-After` value (delay-seconds or an HTTP date) as seconds from `now`; nonsense
/// is ignored.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<i64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.min(i64::MAX as u64) as i64);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
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
        REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        if !resp.status().is_success() {
            if let Some(secs) = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
            {
                let _ = RETRY_AFTER.try_with(|c| c.set(Some(secs)));
            }
        }
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
    REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// The sealed credentials (account id and key) of `issuer`.
fn credentials(issuer: &AcmeIssuer, core: &Keyring) -> Result<AccountCredentials, AcmeError> {
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
    serde_json::from_slice(&json).map_err(|e| {
        AcmeError::Local(format!(
            "the account of issuer {} is unreadable: {e}",
            issuer.name
        ))
    })
}

fn transport_of(issuer: &AcmeIssuer) -> Result<Transport, AcmeError> {
    Transport::new(issuer.ca_pem.as_deref()).map_err(|e| AcmeError::Local(e.to_string()))
}

/// The account of `issuer`, opened from its seal (a directory fetch, no registration).
pub async fn account(issuer: &AcmeIssuer, core: &Keyring) -> Result<Account, AcmeError> {
    let creds = credentials(issuer, core)?;
    Account::builder_with_http(Box::new(transport_of(issuer)?))
        .from_credentials(creds)
        .await
        .map_err(|e| AcmeError::from_acme(&issuer.directory, e))
}

/// Registers the account key of `issuer` again, for a CA that no longer knows the account
/// (`accountDoesNotExist`: a CA that lost its state). The same key keeps the same identity
/// wherever the CA still knows it. Returns the account and its credentials sealed under
/// the issuer's record, for `AcmeAccountRegistered`.
pub async fn register_again(
    issuer: &AcmeIssuer,
    core: &Keyring,
) -> Result<(Account, Vec<u8>), AcmeError> {
    let creds = credentials(issuer, core)?;
    let der = creds.private_key().clone_key();
    let key = Key::from_pkcs8_der(der.clone_key())
        .map_err(|e| AcmeError::Local(format!("the account key does not load: {e}")))?;
    let (account, creds) = Account::builder_with_http(Box::new(transport_of(issuer)?))
        .create_from_key((key, PrivateKeyDer::Pkcs8(der)), issuer.directory.clone())
        .await
        .map_err(|e| AcmeError::from_acme(&issuer.directory, e))?;
    // create_from_key sends no contact; the issuer's email is set again (best effort: the
    // account works without it).
    let contact = format!("mailto:{}", issuer.email);
    if let Err(e) = account.update_contacts(&[&contact]).await {
        tracing::warn!(issuer = %issuer.name, error = %e, "the account's contact was not set again");
    }
    let json = Zeroizing::new(
        serde_json::to_vec(&creds)
            .map_err(|e| AcmeError::Local(format!("account credentials: {e}")))?,
    );
    let sealed = core.seal(
        AcmeIssuer::credentials_record(&issuer.name, issuer.created_at).as_bytes(),
        &json,
    );
    Ok((account, sealed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn retry_after_reads_seconds_and_dates_and_ignores_nonsense() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("120", now), Some(120));
        assert_eq!(parse_retry_after(" 0 ", now), Some(0));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&later, now), Some(90));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(0));
        for bad in ["", "-5", "soon", "1e9", "Thu, 99 Foo 2026"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_retry_after_slot_belongs_to_one_attempt() {
        assert_eq!(retry_after(), None, "outside an attempt there is none");
        let seen = noting_retry_after(async {
            assert_eq!(retry_after(), None);
            let _ = RETRY_AFTER.try_with(|c| c.set(Some(30)));
            retry_after()
        })
        .await;
        assert_eq!(seen, Some(30));
        assert_eq!(noting_retry_after(async { retry_after() }).await, None);
    }
}
