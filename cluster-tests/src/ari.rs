//! ACME Renewal Information (RFC 9773) in front of pebble, which (Debian's 2.4) offers none.
//!
//! [`AriFront`] serves the directory — pebble's own, with `renewalInfo` added and pointing
//! here — and `GET /renewal-info/{id}` with `Retry-After: 1` and the window the test set:
//! the default one, or for the certificates asked about before [`AriFront::renew_now`] (as a
//! CA revoking what it issued so far), a window that already ended. Everything else in the directory still points at pebble, so orders,
//! challenges and certificates are pebble's: only the CA's renewal advice is the test's.
//! Its HTTPS certificate is its own (IP 127.0.0.1); trust [`AriFront::ca_pem`] with pebble's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::pebble::Pebble;

/// The renewal-information front; stops when dropped.
pub struct AriFront {
    port: u16,
    ca_pem: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// (start, end), Unix seconds.
    window: (i64, i64),
    /// Identifiers asked about so far, and those to renew now.
    seen: Mutex<std::collections::BTreeSet<String>>,
    urgent: Mutex<std::collections::BTreeSet<String>>,
    asked: AtomicUsize,
    last_id: Mutex<Option<String>>,
    directory: String,
}

impl AriFront {
    /// Starts it in front of `pebble`, advising `window` (Unix seconds) until told otherwise.
    pub async fn start(pebble: &Pebble, window: (i64, i64)) -> AriFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params");
        let cert = params.self_signed(&key).expect("certificate");
        let ca_pem = pem::encode(&pem::Pem::new("CERTIFICATE", cert.der().to_vec()));
        let mut directory: serde_json::Value = crate::pebble::https_client(pebble.ca_pem())
            .get(pebble.directory_url())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("pebble's directory")
            .json()
            .await
            .expect("pebble's directory is JSON");
        directory["renewalInfo"] = format!("https://127.0.0.1:{port}/renewal-info").into();
        let shared = Arc::new(Shared {
            window,
            seen: Mutex::default(),
            urgent: Mutex::default(),
            asked: AtomicUsize::new(0),
            last_id: Mutex::new(None),
            directory: directory.to_string(),
        });
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let served = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, shared) = (acceptor.clone(), served.clone());
                tokio::spawn(async move {
                    let answer = async {
                        let mut tls = acceptor.accept(tcp).await.ok()?;
                        let path = read_request_path(&mut tls).await?;
                        let response = shared.answer(&path);
                        tls.write_all(response.as_bytes()).await.ok()?;
                        tls.shutdown().await.ok()
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(10), answer).await;
                });
            }
        });
        AriFront {
            port,
            ca_pem,
            shared,
            task,
        }
    }

    /// The directory URL to register the issuer with: `https://127.0.0.1:PORT/dir`.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// PEM of this front's own certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Every certificate asked about so far is to be renewed now: its window ended a second
    /// ago. Certificates asked about later get the default window.
    pub fn renew_now(&self) {
        let seen = self.shared.seen.lock().expect("seen").clone();
        self.shared.urgent.lock().expect("urgent").extend(seen);
    }

    /// How many renewal-information requests were answered.
    pub fn asked(&self) -> usize {
        self.shared.asked.load(Ordering::Relaxed)
    }

    /// The certificate identifier of the last request (`AKI.serial`, base64url).
    pub fn last_id(&self) -> Option<String> {
        self.shared.last_id.lock().expect("last id").clone()
    }
}

impl Drop for AriFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn answer(&self, path: &str) -> String {
        if path == "/dir" {
            return response("200 OK", &self.directory, "");
        }
        let Some(id) = path.strip_prefix("/renewal-info/") else {
            return response("404 Not Found", "{}", "");
        };
        self.asked.fetch_add(1, Ordering::Relaxed);
        *self.last_id.lock().expect("last id") = Some(id.to_string());
        self.seen.lock().expect("seen").insert(id.to_string());
        let (start, end) = if self.urgent.lock().expect("urgent").contains(id) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("a clock after 1970")
                .as_secs() as i64;
            (now - 60, now - 1)
        } else {
            self.window
        };
        let body = serde_json::json!({
            "suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}
        });
        response("200 OK", &body.to_string(), "Retry-After: 1\r\n")
    }
}

fn response(status: &str, body: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The path of a request's first line, once its head (at most 16 KiB) is in.
async fn read_request_path<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.lines().next()?.split(' ');
    let (_method, path) = (first.next()?, first.next()?);
    Some(path.to_string())
}

/// Unix seconds as RFC 3339 UTC (`1970-01-01T00:00:00Z`), for years 1970–9999.
pub fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_308_481), "2026-12-03T14:34:41Z");
    }
}
