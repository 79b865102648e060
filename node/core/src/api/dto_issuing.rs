//! Wire types of issue 14's routes (re-exported by [`super::dto`]):
//!
//! | method and path                          | body → answer                                  |
//! |------------------------------------------|-----------------------------------------------|
//! | `GET  /api/v1/csrs`                      | → [`CsrList`]                                  |
//! | `POST /api/v1/csrs`                      | [`CsrCreateRequest`] → [`CsrInfo`]             |
//! | `GET  /api/v1/csrs/{name}`               | → [`CsrInfo`] (the PEM again)                  |
//! | `DELETE /api/v1/csrs/{name}`             | → [`Done`](super::dto::Done)                  |
//! | `POST /api/v1/csrs/{name}/complete`      | [`CsrCompleteRequest`] → [`CsrCompleteResponse`] |
//! | `GET  /api/v1/issuers/local`             | → [`IssuerInfo`] (made on first use)           |
//! | `GET  /api/v1/trust/issuers`             | the issuing CAs, PEM (no token: clients pull it) |
//! | `POST /api/v1/issue`                     | [`IssueRequest`] → [`ImportResponse`](super::dto::ImportResponse) |
//! | `GET  /api/v1/notify`                    | → [`NotifyList`]                               |
//! | `POST /api/v1/notify`                    | [`NotifyAddRequest`] → [`NotifyAddResponse`]   |
//! | `DELETE /api/v1/notify/{name}`           | → [`Done`](super::dto::Done)                  |
//! | `POST /api/v1/notify/{name}/test`        | → [`NotifyTestResponse`]                       |

use serde::{Deserialize, Serialize};

use super::dto::UploadFile;
use crate::inventory::KeyType;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsrCreateRequest {
    pub name: String,
    pub common_name: String,
    pub sans: Vec<String>,
    #[serde(default)]
    pub key: KeyType,
}

/// A pending CSR: its request (PEM) and what it asks for. Never the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsrInfo {
    pub name: String,
    pub key: KeyType,
    pub common_name: String,
    pub sans: Vec<String>,
    pub csr_pem: String,
    /// SHA-256 (hex) of the key's SubjectPublicKeyInfo.
    pub spki_sha256: String,
    pub created_at: String,
    pub created_by: String,
    /// Raft index of the commit (creation only).
    #[serde(default)]
    pub index: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsrList {
    pub csrs: Vec<CsrInfo>,
}

/// The CA's answer to a pending CSR: the certificate and, usually, its chain.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct CsrCompleteRequest {
    pub files: Vec<UploadFile>,
    /// The bundle's name; defaults to the CSR's. An existing bundle of that name is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_name: Option<String>,
    #[serde(default)]
    pub make_default: bool,
    #[serde(default)]
    pub allow_expired: bool,
    #[serde(default)]
    pub allow_incomplete: bool,
    /// Rotate even if the new certificate does not cover every hostname the old one served.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsrCompleteResponse {
    /// `imported`, or `rotated` (the name held a bundle, now retired as `retired_as`).
    pub outcome: String,
    pub name: String,
    pub id: String,
    pub hostnames: Vec<String>,
    pub not_after: String,
    pub completeness: String,
    pub retired_as: Option<String>,
    pub warnings: Vec<String>,
    pub index: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerInfo {
    pub name: String,
    pub subject: String,
    pub not_after: String,
    pub sha256: String,
    pub pem: String,
    /// Certificates it issued that the cluster renews.
    pub managed: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueRequest {
    pub name: String,
    pub sans: Vec<String>,
    /// `local` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default)]
    pub key: KeyType,
    /// The certificate's lifetime in seconds (default 90 days; at least 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_secs: Option<i64>,
    /// Renew after this share of the lifetime, in thousandths (default 667).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_at_permille: Option<u16>,
    #[serde(default)]
    pub make_default: bool,
    /// ACME only: `http-01` (the default) or `tls-alpn-01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<crate::inventory::ChallengeKind>,
    /// ACME only: `local` to serve a local-issuer certificate while ACME fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// The default lifetime of a certificate the cluster issues.
pub const DEFAULT_ISSUE_LIFETIME_SECS: i64 = 90 * 86_400;
/// The shortest lifetime `cert issue` accepts.
pub const MIN_ISSUE_LIFETIME_SECS: i64 = 60;
/// The longest: 398 days, the CA/Browser Forum's ceiling for public certificates until 2026.
pub const MAX_ISSUE_LIFETIME_SECS: i64 = 398 * 86_400;

/// Renewal facts of a managed certificate, in `cert show`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewalInfo {
    pub issuer: String,
    pub key: KeyType,
    pub lifetime_secs: i64,
    pub renew_at_permille: u16,
    /// When the next renewal falls due (or is retried after a failure).
    pub next_attempt: String,
    pub next_attempt_unix: i64,
    pub last_attempt: Option<String>,
    pub last_result: Option<String>,
    pub consecutive_failures: u32,
    pub renewals: u32,
    /// ACME only: the order in flight, the challenge, the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<super::dto_acme::AcmeState>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct NotifyAddRequest {
    pub name: String,
    pub url: String,
    /// The HMAC secret; the leader makes one (returned once) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Extra CA certificates (PEM) that verify the receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Expiry thresholds in seconds before not-after (default 30, 14, 7 and 1 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_secs: Option<Vec<i64>>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct NotifyAddResponse {
    pub name: String,
    /// The secret the leader made, shown this once; absent when the caller gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_secret: Option<String>,
    pub index: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyTargetInfo {
    pub name: String,
    pub url: String,
    pub before_secs: Vec<i64>,
    pub has_ca: bool,
    /// Notices queued for it and not yet acknowledged.
    pub pending: usize,
    pub created_at: String,
    pub created_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyList {
    pub targets: Vec<NotifyTargetInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyTestResponse {
    pub name: String,
    /// The receiver's HTTP status.
    pub status: u16,
    pub millis: u64,
}
