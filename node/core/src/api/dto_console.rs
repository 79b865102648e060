//! Wire types of the console certificate routes (issue 16; re-exported by [`super::dto`]):
//! which inventory bundle the admin port presents to browsers that ask for a console
//! hostname by SNI. Every other client keeps the node certificate.
//!
//! | method and path            | body → answer                                          |
//! |----------------------------|-------------------------------------------------------|
//! | `GET    /api/v1/console`   | → [`ConsoleStatus`]                                    |
//! | `PUT    /api/v1/console`   | [`SetConsoleRequest`] → [`ConsoleStatus`]              |
//! | `DELETE /api/v1/console`   | → [`ConsoleStatus`] (none: the node certificate again) |

use serde::{Deserialize, Serialize};

/// `certraft console cert NAME --hostname H...`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetConsoleRequest {
    /// An active bundle that covers every hostname.
    pub name: String,
    /// The names browsers use for the console (1 to 8; no wildcard, no address).
    pub hostnames: Vec<String>,
}

/// The console certificate setting, cluster-wide.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsoleStatus {
    /// The bundle presented for `hostnames`; `None`: every client gets the node certificate.
    pub name: Option<String>,
    pub hostnames: Vec<String>,
    /// The bundle's id (hex) and not-after (RFC 3339), when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// After `DELETE`: the bundle that was the console certificate, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
    /// The Raft log index a change was committed at (none for a read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

/// One use of a certificate, for `cert show` and the UI. `description` is written by the
/// server, so a CLI shows kinds added after it was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertUse {
    /// `serving` (the serve port chooses it for `hostnames`), `default`, or `console` (the
    /// admin port presents it for `hostnames`).
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// One line saying what depends on it.
    pub description: String,
}
