//! The admin API's wire types: JSON bodies under `/api/v1`, shared by the node and the CLI.
//!
//! Routes (all but `/healthz`, `/readyz`, `GET /api/v1/trust` and `POST /api/v1/cluster/join`
//! need `Authorization: Bearer <admin token>`):
//!
//! | method and path                         | body → answer                                  |
//! |-----------------------------------------|-----------------------------------------------|
//! | `GET  /healthz`                         | `200 ok` while the process runs               |
//! | `GET  /readyz`                          | `200` once the node knows a leader, else 503   |
//! | `GET  /api/v1/trust`                    | the cluster CA, PEM                            |
//! | `GET  /metrics`                         | Prometheus text, this node's view (token)     |
//! | `GET  /api/v1/certs`                    | → [`CertList`]                                 |
//! | `POST /api/v1/certs`                    | [`ImportRequest`] → [`ImportResponse`]         |
//! | `GET  /api/v1/certs/{name}`             | → [`CertDetail`]                               |
//! | `DELETE /api/v1/certs/{name}?force=bool`| → [`Done`]                                     |
//! | `POST /api/v1/certs/{name}/export`      | [`ExportRequest`] → [`ExportResponse`]         |
//! | `POST /api/v1/certs/{name}/rotate`      | [`RotateRequest`] → [`RotateResponse`]         |
//! | `GET  /api/v1/default`                  | → [`DefaultCert`]                              |
//! | `PUT  /api/v1/default`                  | [`SetDefault`] → [`DefaultCert`]               |
//! | `GET  /api/v1/audit?limit=N`            | → [`AuditList`] (the last N records)           |
//! | `GET  /api/v1/cluster`                  | → [`ClusterStatus`]                            |
//! | `POST /api/v1/cluster/join-tokens`      | [`JoinTokenRequest`] → [`JoinTokenResponse`]   |
//! | `DELETE /api/v1/cluster/nodes/{id}`     | → [`Done`]                                     |
//! | `POST /api/v1/backup`                   | [`BackupRequest`] → [`BackupResponse`]         |
//! | `POST /api/v1/backup/restore`           | [`RestoreRequest`] → [`RestoreResponse`]       |
//!
//! CSRs, the local issuer, `cert issue` and notify targets: see [`super::dto_issuing`]; the
//! console certificate (`/api/v1/console`): see [`super::dto_console`].
//!
//! Every failure is `{"error": {"code", "message", "hint"}}` ([`ErrorBody`]) with a 4xx/5xx
//! status: 400 bad input, 401 no or wrong token, 404 not found, 409 refused by the
//! inventory's rules, 422 the files do not make a valid bundle, 503 no leader / not ready,
//! 504 the cluster did not answer in time. Reads are linearizable: a follower first learns the
//! leader's commit index and waits until it has applied it.
//!
//! Secrets (passphrases, file bytes) travel only in request bodies over TLS; the types
//! holding them have no `Debug`.

use serde::{Deserialize, Serialize};

use crate::inventory::{AuditRecord, NodeRole};

pub const API_PREFIX: &str = "/api/v1";

/// The file in a node's data dir listing removed members' certificates (`SHA256HEX node-N`
/// per line). Nodes keep it current; the CLI refuses a server presenting one of them when the
/// file sits beside its CA file.
pub const REVOKED_NODES_FILE: &str = "revoked-nodes.txt";

/// Bytes as standard base64 in JSON.
pub mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// The error body of every failed request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable, machine-readable: `key_mismatch`, `not_found`, `unauthorized`, `no_leader`, …
    pub code: String,
    /// What is wrong, with the values involved.
    pub message: String,
    /// What to do next, when there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One uploaded file: any format `certraft inspect` reads.
#[derive(Clone, Serialize, Deserialize)]
pub struct UploadFile {
    pub name: String,
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

/// What to build a bundle from, and how strictly.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct BundleSource {
    pub files: Vec<UploadFile>,
    /// For PKCS#12 files and encrypted keys among `files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    #[serde(default)]
    pub allow_expired: bool,
    #[serde(default)]
    pub allow_incomplete: bool,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    #[serde(flatten)]
    pub source: BundleSource,
    /// Defaults to the leaf's first hostname (or its subject CN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub make_default: bool,
    /// Validate and report; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    Imported,
    /// The same bundle (by id) was already in the inventory: nothing changed.
    AlreadyPresent,
    /// `dry_run`: it would be imported under `name`.
    DryRun,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResponse {
    pub outcome: ImportOutcome,
    pub name: String,
    pub id: String,
    pub hostnames: Vec<String>,
    pub not_after: String,
    pub completeness: String,
    pub warnings: Vec<String>,
    /// The Raft log index the change was committed at (none for a dry run).
    #[serde(default)]
    pub index: Option<u64>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct RotateRequest {
    #[serde(flatten)]
    pub source: BundleSource,
    /// Name of the new bundle; defaults to OLD's name. OLD is kept, retired, as
    /// `OLD~<first 12 hex digits of its id>` (see `inventory::apply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Rotate even if the new certificate does not cover every hostname OLD served.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateResponse {
    pub old: String,
    pub retired_as: String,
    pub new: String,
    pub id: String,
    pub warnings: Vec<String>,
    pub index: Option<u64>,
}

/// One row of `certraft cert list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertSummary {
    pub name: String,
    pub id: String,
    pub hostnames: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// Unix seconds of `not_after`, for sorting and `--expiring-within`.
    pub not_after_unix: i64,
    /// `active`, `retired`, `expired` or `not-yet-valid`.
    pub status: String,
    pub is_default: bool,
    pub key: String,
    pub completeness: String,
    pub imported_at: String,
    pub imported_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertList {
    pub certs: Vec<CertSummary>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainCert {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertDetail {
    #[serde(flatten)]
    pub summary: CertSummary,
    /// Leaf first.
    pub chain: Vec<ChainCert>,
    /// The hostnames for which this bundle is the one chosen now (SPEC §4 order).
    pub serving: Vec<String>,
    /// Every use of the bundle now: hostnames served, the default, the console (empty from
    /// servers before this field).
    #[serde(default)]
    pub uses: Vec<CertUse>,
    pub warnings: Vec<String>,
    /// For a certificate the cluster issued: its renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal: Option<RenewalInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    #[default]
    P12,
    Pem,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ExportRequest {
    #[serde(default)]
    pub format: ExportFormat,
    /// Required for `p12`, and for `pem` with `with_key` unless `unencrypted_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
    /// `pem` only: append the private key (encrypted PKCS#8 under `passphrase`). Nodes before
    /// this field ignore it and answer certificates only; the CLI checks the answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_key: bool,
    /// With `with_key`: the key as plain PKCS#8 (no passphrase), with a warning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unencrypted_key: bool,
    /// 3DES + SHA-1 PKCS#12 for old systems.
    #[serde(default)]
    pub legacy: bool,
    /// Accept a passphrase shorter than [`MIN_PASSPHRASE_CHARS`] (`--allow-weak-passphrase`).
    #[serde(default)]
    pub allow_weak_passphrase: bool,
}

/// The shortest passphrase export and backup accept unless the caller insists: a PKCS#12
/// file or a backup leaves the cluster, and its passphrase is all that protects the keys in
/// it. Counted in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Whether `passphrase` is long enough for an export or a backup.
pub fn strong_enough(passphrase: &str) -> bool {
    passphrase.chars().count() >= MIN_PASSPHRASE_CHARS
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ExportResponse {
    pub format: ExportFormat,
    #[serde(with = "b64")]
    pub data: Vec<u8>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetDefault {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefaultCert {
    pub default: Option<String>,
}

/// A mutation that answers nothing but its commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub message: String,
    pub index: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditList {
    pub records: Vec<AuditRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    /// `voter`, `learner` or `witness`.
    pub role: String,
    /// In the voting configuration now (a joining voter is a learner until caught up).
    pub voting: bool,
    pub cluster_addr: String,
    pub admin_addr: String,
    /// The last log index the leader knows this member has (leader's view only).
    pub matched: Option<u64>,
    /// `leader`, `ok`, `lagging`, `unreachable` or `unknown`.
    pub health: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster_id: String,
    /// The node that answered.
    pub node_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub committed: Option<u64>,
    pub members: Vec<Member>,
    pub ca_fingerprint: String,
    /// Behaviours every member agreed to (the leader enables each once all can apply it).
    #[serde(default)]
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinTokenRequest {
    /// Seconds the token stays valid (default 3600).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    #[serde(default = "default_role")]
    pub role: NodeRole,
}

fn default_role() -> NodeRole {
    NodeRole::Voter
}

#[derive(Clone, Serialize, Deserialize)]
pub struct JoinTokenResponse {
    /// `crj1.<secret>.<ca sha256 hex>`: single use, binds the cluster CA.
    pub token: String,
    pub role: NodeRole,
    pub expires_at: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct BackupRequest {
    pub passphrase: String,
    /// Accept a passphrase shorter than [`MIN_PASSPHRASE_CHARS`].
    #[serde(default)]
    pub allow_weak_passphrase: bool,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct BackupResponse {
    #[serde(with = "b64")]
    pub data: Vec<u8>,
    pub bundles: usize,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct RestoreRequest {
    #[serde(with = "b64")]
    pub data: Vec<u8>,
    pub passphrase: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreResponse {
    /// Names imported from the backup.
    pub restored: Vec<String>,
    /// Names skipped because the same bundle (by id) was already present.
    pub already_present: Vec<String>,
    pub default: Option<String>,
}

pub use super::dto_acme::*;
pub use super::dto_console::*;
pub use super::dto_issuing::*;
