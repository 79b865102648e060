//! ACME challenge answers (issue 15), published with the serving index: every serving node
//! answers every open order's challenges, from the replicated state, the moment the entry
//! that opened the order is applied.
//!
//! - HTTP-01: [`Challenges::http_answer`] for `GET /.well-known/acme-challenge/TOKEN` on the
//!   HTTP port ([`serve_http`]), which redirects everything else to https.
//! - TLS-ALPN-01 (RFC 8737): [`Challenges::alpn_key`], a self-signed certificate for the
//!   name carrying the critical `acmeIdentifier` extension, presented on the serve port to a
//!   client that offers only `acme-tls/1`. Each node makes its own (nothing secret travels);
//!   a rebuild keeps the certificates of challenges that did not change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use sha2::Digest;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::inventory::{AcmeChallenge, ChallengeKind};

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The challenges one node answers now.
#[derive(Default)]
pub struct Challenges {
    /// token → key authorization.
    http: HashMap<String, String>,
    /// lowercase name → (key authorization, challenge certificate).
    alpn: HashMap<String, (String, Arc<CertifiedKey>)>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Challenges({} http-01, {} tls-alpn-01)",
            self.http.len(),
            self.alpn.len()
        )
    }
}

impl Challenges {
    /// The answers for `list`, reusing `previous`'s TLS-ALPN-01 certificates where the name
    /// and key authorization are unchanged.
    pub fn build(list: Vec<AcmeChallenge>, previous: &Challenges) -> Challenges {
        let mut out = Challenges::default();
        for c in list {
            match c.kind {
                ChallengeKind::Http01 => {
                    out.http.insert(c.token, c.key_authorization);
                }
                ChallengeKind::TlsAlpn01 => {
                    let domain = c.domain.to_ascii_lowercase();
                    let reuse = previous
                        .alpn
                        .get(&domain)
                        .filter(|(ka, _)| *ka == c.key_authorization)
                        .map(|(_, key)| key.clone());
                    let key = match reuse {
                        Some(key) => key,
                        None => match alpn_certificate(&domain, &c.key_authorization) {
                            Ok(key) => key,
                            Err(e) => {
                                tracing::error!(%domain, error = %e, "cannot make the tls-alpn-01 certificate");
                                continue;
                            }
                        },
                    };
                    out.alpn.insert(domain, (c.key_authorization, key));
                }
            }
        }
        out
    }

    /// The key authorization for an HTTP-01 `token`.
    pub fn http_answer(&self, token: &str) -> Option<&str> {
        self.http.get(token).map(String::as_str)
    }

    /// The TLS-ALPN-01 certificate for `sni`.
    pub fn alpn_key(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let name = sni.trim_end_matches('.').to_ascii_lowercase();
        self.alpn.get(&name).map(|(_, k)| k.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.alpn.is_empty()
    }
}

/// RFC 8737 §3: a self-signed certificate for `domain` whose critical `acmeIdentifier`
/// extension holds SHA-256 of the key authorization.
fn alpn_certificate(domain: &str, key_authorization: &str) -> Result<Arc<CertifiedKey>, String> {
    let digest = sha2::Sha256::digest(key_authorization.as_bytes());
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&digest)];
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// Whether a ClientHello asks for TLS-ALPN-01: it offers `acme-tls/1` (RFC 8737 §3 says it
/// offers only that).
pub fn wants_acme_tls(hello: &rustls::server::ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}

/// The HTTP port's bounds: challenge requests are tiny and answered at once.
const HTTP_MAX_CONNECTIONS: usize = 512;
const HTTP_HEADER_READ: Duration = Duration::from_secs(10);
const HTTP_LIFETIME: Duration = Duration::from_secs(30);

/// What the HTTP port answers for one request: the challenge answer, or a redirect to https
/// on the serve port, or a refusal for a request without a usable Host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAnswer {
    Challenge(String),
    NotFound,
    Redirect(String),
    BadRequest,
}

/// The pure decision of the HTTP port (table-tested): `path` and `host` as the client sent
/// them, `https_port` the serve port (left out of the redirect when 443).
pub fn http_answer(
    challenges: &Challenges,
    path: &str,
    host: Option<&str>,
    https_port: u16,
) -> HttpAnswer {
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        return match challenges.http_answer(token) {
            Some(ka) => HttpAnswer::Challenge(ka.to_string()),
            None => HttpAnswer::NotFound,
        };
    }
    let Some(host) = host.and_then(redirect_host) else {
        return HttpAnswer::BadRequest;
    };
    let path = if path.starts_with('/') { path } else { "/" };
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return HttpAnswer::BadRequest;
    }
    HttpAnswer::Redirect(match https_port {
        443 => format!("https://{host}{path}"),
        p => format!("https://{host}:{p}{path}"),
    })
}

/// The host part of a Host header, if it is a plain DNS name or IPv4 address (no port,
/// credentials, slashes or controls): a redirect never points anywhere stranger.
fn redirect_host(host: &str) -> Option<&str> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then_some(name)
}

/// Serves the HTTP port until cancelled: HTTP-01 answers from `serving`'s challenges, and a
/// 308 to https for everything else. Bounded like every listener: a connection cap, a
/// header deadline that is also the idle limit, and a lifetime.
pub async fn serve_http(
    listener: TcpListener,
    serving: Arc<super::Serving>,
    https_port: u16,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(HTTP_MAX_CONNECTIONS));
    loop {
        let (tcp, _remote): (_, SocketAddr) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let serving = serving.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let serving = serving.clone();
                    async move {
                        let host = req
                            .headers()
                            .get(hyper::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_string)
                            .or_else(|| req.uri().host().map(str::to_string));
                        let answer = http_answer(
                            &serving.challenges(),
                            req.uri().path(),
                            host.as_deref(),
                            https_port,
                        );
                        Ok::<_, std::convert::Infallible>(http_response(answer))
                    }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_READ)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = conn => {}
                _ = tokio::time::sleep(HTTP_LIFETIME) => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}

fn http_response(answer: HttpAnswer) -> hyper::Response<String> {
    let (status, location, body) = match answer {
        HttpAnswer::Challenge(ka) => (200, None, ka),
        HttpAnswer::NotFound => (404, None, "no such challenge\n".to_string()),
        HttpAnswer::Redirect(to) => (308, Some(to), String::new()),
        HttpAnswer::BadRequest => (
            400,
            None,
            "a Host header naming this site is required\n".into(),
        ),
    };
    let mut b = hyper::Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain")
        .header(hyper::header::CACHE_CONTROL, "no-store");
    if let Some(to) = location {
        b = b.header(hyper::header::LOCATION, to);
    }
    b.body(body)
        .expect("a status, fixed header names and checked values make a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(list: Vec<AcmeChallenge>) -> Challenges {
        Challenges::build(list, &Challenges::default())
    }

    fn ch(kind: ChallengeKind, domain: &str, token: &str) -> AcmeChallenge {
        AcmeChallenge {
            kind,
            domain: domain.into(),
            token: token.into(),
            key_authorization: format!("{token}.thumb"),
        }
    }

    /// The HTTP port answers known tokens, 404s unknown ones, and redirects only to a sane host.
    #[test]
    fn the_http_port_answers_challenges_and_redirects_the_rest() {
        let c = with(vec![ch(ChallengeKind::Http01, "a.example", "tok1")]);
        let cases: &[(&str, Option<&str>, u16, HttpAnswer)] = &[
            (
                "/.well-known/acme-challenge/tok1",
                None,
                8443,
                HttpAnswer::Challenge("tok1.thumb".into()),
            ),
            (
                "/.well-known/acme-challenge/nope",
                Some("a"),
                8443,
                HttpAnswer::NotFound,
            ),
            (
                "/x?y",
                Some("a.example"),
                443,
                HttpAnswer::Redirect("https://a.example/x?y".into()),
            ),
            (
                "/",
                Some("a.example:80"),
                8443,
                HttpAnswer::Redirect("https://a.example:8443/".into()),
            ),
            ("/", Some("evil.example/@x"), 443, HttpAnswer::BadRequest),
            ("/", Some("user@evil.example"), 443, HttpAnswer::BadRequest),
            ("/", Some("a:b:c"), 443, HttpAnswer::BadRequest),
            ("/", None, 443, HttpAnswer::BadRequest),
        ];
        for (path, host, port, want) in cases {
            assert_eq!(
                http_answer(&c, path, *host, *port),
                *want,
                "{path} {host:?}"
            );
        }
    }

    /// A TLS-ALPN-01 certificate names the domain and carries the digest; a rebuild with the
    /// same challenge keeps it, a new key authorization makes a new one.
    #[test]
    fn alpn_certificates_are_made_once_per_challenge() {
        let first = with(vec![ch(ChallengeKind::TlsAlpn01, "B.example", "t")]);
        let k1 = first.alpn_key("b.example.").expect("made");
        let cert = &k1.cert[0];
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).expect("parses");
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical);
        let digest = sha2::Sha256::digest(b"t.thumb");
        assert!(
            ext.value.ends_with(&digest),
            "the digest is the extension's value"
        );
        let again = Challenges::build(vec![ch(ChallengeKind::TlsAlpn01, "b.example", "t")], &first);
        assert!(Arc::ptr_eq(
            &k1,
            &again.alpn_key("b.example").expect("kept")
        ));
        let other = Challenges::build(vec![ch(ChallengeKind::TlsAlpn01, "b.example", "u")], &first);
        assert!(!Arc::ptr_eq(
            &k1,
            &other.alpn_key("b.example").expect("new")
        ));
        assert!(other.alpn_key("c.example").is_none());
    }
}
