//! Webhook notices: the JSON body, its HMAC signature, and one POST to a receiver.
//!
//! A notice is `POST`ed as JSON with three headers: `x-certraft-event` (its type),
//! `x-certraft-delivery` (`<cluster id>/<notice id>`: the same on a retry, so a receiver
//! dedupes by it) and `x-certraft-signature: t=<unix seconds>,v1=<hex>`, where the hex is
//! HMAC-SHA256 under the target's secret of `"<t>.<body>"` (the timestamp bounds replays).
//! Receivers are verified against the public roots plus the target's own CA certificates;
//! redirects are not followed; each POST has 5 s to connect and 10 s in all.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::inventory::{Notice, NoticeEvent, NotifyTarget};

pub const SIGNATURE_HEADER: &str = "x-certraft-signature";
pub const DELIVERY_HEADER: &str = "x-certraft-delivery";
pub const EVENT_HEADER: &str = "x-certraft-event";
/// The whole of one POST, connect included.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest URL a target may have.
pub const MAX_URL_BYTES: usize = 2048;

/// Checks a webhook URL: `https://host[:port]/path`, no credentials, bounded.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!(
            "the URL is {} bytes; at most {MAX_URL_BYTES}",
            url.len()
        ));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err(format!(
            "{url:?} is not https; notices carry certificate names and are signed, so they go over TLS only (use https://…)"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL would be stored in the clear; use --secret-file for the receiver to verify the sender".into());
    }
    Ok(parsed)
}

/// The JSON a receiver gets.
pub fn body(cluster_id: &str, notice: &Notice) -> Vec<u8> {
    let event = serde_json::to_value(&notice.event).unwrap_or_default();
    serde_json::to_vec(&serde_json::json!({
        "id": delivery_id(cluster_id, notice.id),
        "cluster": cluster_id,
        "type": notice.event.kind(),
        "created_at": notice.created_at,
        "event": event,
    }))
    .unwrap_or_default()
}

/// A test notice (`certraft notify test`): never queued, never retried.
pub fn test_body(cluster_id: &str, target: &str, at: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": format!("{cluster_id}/test-{at}"),
        "cluster": cluster_id,
        "type": "test",
        "created_at": at,
        "event": {"type": "test", "target": target},
    }))
    .unwrap_or_default()
}

pub fn delivery_id(cluster_id: &str, id: u64) -> String {
    format!("{cluster_id}/{id}")
}

/// `t=<at>,v1=<hex HMAC-SHA256(secret, "<at>.<body>")>`.
pub fn signature(secret: &[u8], at: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={at},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// An HTTPS client for one target: public roots plus its own CA certificates.
pub fn client_for(target: &NotifyTarget) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem_text) = &target.ca_pem {
        for block in pem::parse_many(pem_text).map_err(|e| format!("the target's CA file: {e}"))? {
            roots
                .add(rustls::pki_types::CertificateDer::from(
                    block.contents().to_vec(),
                ))
                .map_err(|e| format!("the target's CA file: {e}"))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(POST_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())
}

/// One POST. `Ok(status)` for any 2xx; anything else is an error naming what happened.
pub async fn post(
    client: &reqwest::Client,
    target: &NotifyTarget,
    secret: &[u8],
    delivery: &str,
    kind: &str,
    body: Vec<u8>,
    at: i64,
) -> Result<u16, String> {
    let resp = client
        .post(&target.url)
        .header("content-type", "application/json")
        .header(EVENT_HEADER, kind)
        .header(DELIVERY_HEADER, delivery)
        .header(SIGNATURE_HEADER, signature(secret, at, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("{} answered {status}", target.url))
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        text.push_str(&format!(" (no answer within {POST_TIMEOUT:?})"));
    }
    text
}

/// The event type of a queued notice.
pub fn kind(event: &NoticeEvent) -> &'static str {
    event.kind()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature is the documented HMAC over "t.body", checkable by any receiver.
    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        let sig = signature(b"secret", 1700000000, b"{}");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"secret").unwrap();
        mac.update(b"1700000000.{}");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("t=1700000000,v1={want}"));
        assert_ne!(sig, signature(b"other", 1700000000, b"{}"));
    }

    #[test]
    fn only_plain_https_urls_are_targets() {
        assert!(check_url("https://hooks.example.com/certraft").is_ok());
        assert!(check_url("https://127.0.0.1:8443/x").is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://x/",
            "hooks.example.com",
            "https://user:pw@hooks.example.com/",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://x/{}", "a".repeat(3000))).is_err());
    }
}
