//! Wire types of issue 15's routes (re-exported by [`super::dto`]):
//!
//! | method and path                    | body → answer                                   |
//! |------------------------------------|-------------------------------------------------|
//! | `GET  /api/v1/issuers`             | → [`IssuerList`] (local and ACME)               |
//! | `POST /api/v1/issuers/acme`        | [`AcmeIssuerRequest`] → [`AcmeIssuerInfo`]      |
//! | `GET  /api/v1/issuers/{name}`      | → [`AcmeIssuerInfo`]                            |
//! | `DELETE /api/v1/issuers/{name}`    | → [`Done`](super::dto::Done)                   |
//! | `POST /api/v1/issue` (ACME issuer) | → [`AcmeState`] (the duty obtains it)           |
//! | `GET  /api/v1/acme/{name}`         | → [`AcmeState`]                                 |

use serde::{Deserialize, Serialize};

use crate::inventory::{ChallengeKind, KeyType};

/// `certraft issuer acme add`.
#[derive(Clone, Serialize, Deserialize)]
pub struct AcmeIssuerRequest {
    pub name: String,
    pub directory: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_kid: Option<String>,
    /// The EAB HMAC key as the CA gave it (base64url). Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_hmac: Option<String>,
    /// Extra roots (PEM) that verify the directory's HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for AcmeIssuerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeIssuerRequest")
            .field("name", &self.name)
            .field("directory", &self.directory)
            .field("email", &self.email)
            .field("eab_kid", &self.eab_kid)
            .field("eab_hmac", &self.eab_hmac.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcmeIssuerInfo {
    pub name: String,
    pub directory: String,
    pub email: String,
    pub account_url: String,
    /// The directory offers ACME Renewal Information (RFC 9773).
    pub ari: bool,
    pub created_at: String,
    /// Certificates it obtains and renews.
    pub managed: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerList {
    /// The local issuer's subject, once made.
    pub local: Option<String>,
    pub acme: Vec<AcmeIssuerInfo>,
}

/// Where an ACME certificate stands (`cert issue --issuer`, `cert show`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcmeState {
    pub name: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub key: KeyType,
    pub challenge: ChallengeKind,
    /// `ordering` (no certificate yet), `validating` (an order is open), `issued`,
    /// `fallback` (the local issuer's certificate stands in), `retrying` (after a failure).
    pub state: String,
    pub order_url: Option<String>,
    /// The id of the bundle served now, if any.
    pub id: Option<String>,
    pub fallback: Option<String>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub next_attempt: Option<String>,
    pub next_attempt_unix: Option<i64>,
}
