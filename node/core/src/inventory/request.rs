//! The replicated requests: what a log entry carries (`Request`: who, when, which
//! `Command`, at which version), and what `apply` answers (`Outcome` or `Refusal`).

use serde::{Deserialize, Serialize};

use super::acme::*;
use super::issuance::*;
use super::model::*;

/// The newest [`Request`] version this build applies. Each entry carries the lowest version
/// that can apply its command ([`Command::min_version`]), so a command added later is
/// stamped with the version that introduced it, and only that command needs every member
/// upgraded: the leader proposes it only once every member reports it can apply it
/// (`apply_version` in `/readyz`), and a node handed an entry newer than it knows stops its
/// apply with "upgrade this node" rather than skip it (issue 22).
pub const REQUEST_VERSION: u16 = 5;

/// Overrides for the refusals an operator may waive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Force {
    #[default]
    No,
    Yes,
}

/// The mutations the cluster agrees on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    Import {
        bundle: NewBundle,
        make_default: bool,
    },
    Remove {
        name: String,
        force: Force,
    },
    SetDefault {
        name: String,
    },
    Rotate {
        old: String,
        new: NewBundle,
        force: Force,
    },
    CreateJoinToken {
        token: JoinToken,
    },
    /// Uses a join token and allocates the joiner's node id: `requested`, or one above both
    /// every id handed out before and `floor` (the highest member id the proposer knows).
    ConsumeJoinToken {
        secret_sha256: [u8; 32],
        requested: Option<u64>,
        floor: u64,
    },
    /// Adds an admin token. A name already in use is refused: no proposer (least of all a
    /// member node relaying an offline-made token) can replace an operator's token.
    CreateAdminToken {
        token: AdminToken,
    },
    /// An audit record only: something security-relevant that changed no inventory state
    /// (an export, a backup, a membership change, a count of failed sign-ins).
    Record {
        what: String,
        /// `ok`, or what went wrong.
        result: String,
    },
    /// Adds the newest session-ticket key (the leader rotates them); the oldest beyond
    /// [`TICKET_KEYS_KEPT`] is dropped.
    AddTicketKey {
        key: TicketKey,
    },
    /// Restores a backup in one step: bundles already present (by id) are skipped; a name
    /// held by a different bundle refuses the whole restore.
    Restore {
        bundles: Vec<NewBundle>,
        default: Option<String>,
    },
    /// Turns on a behaviour of `apply` that every member must share (request version 2):
    /// the leader proposes it once every member reports it can apply version 2.
    EnableFeature {
        feature: Feature,
    },
    /// A key made on the leader (sealed) and its CSR, kept until completed (version 3).
    CreateCsr {
        csr: PendingCsr,
    },
    RemoveCsr {
        name: String,
    },
    /// Finishes CSR `csr` with the CA's answer: `bundle` (the pending key, the certificate
    /// and its chain, assembled and sealed by the proposer) is imported, or rotates the
    /// bundle already named `bundle.name` (renewal with a new key).
    CompleteCsr {
        csr: String,
        bundle: NewBundle,
        make_default: bool,
        force: Force,
    },
    /// Sets the cluster's local issuer once; a later proposal (two leaders racing to make
    /// it) changes nothing, so every replica keeps the first.
    SetLocalIssuer {
        issuer: LocalIssuer,
    },
    /// Imports a bundle the cluster issued, and keeps renewing it.
    Issue {
        bundle: NewBundle,
        managed: Managed,
        make_default: bool,
    },
    /// A renewal: `new` rotates `name` only while `name` still holds `expect_id`, so a
    /// renewal proposed twice (a leader change mid-way) results in one new bundle.
    Renew {
        name: String,
        expect_id: [u8; 32],
        new: NewBundle,
    },
    /// A renewal attempt failed; retried from `retry_at`.
    RenewalFailed {
        name: String,
        expect_id: [u8; 32],
        error: String,
        retry_at: i64,
    },
    AddNotifyTarget {
        target: NotifyTarget,
    },
    RemoveNotifyTarget {
        name: String,
    },
    /// Expiry notices found by the leader's duty; one already queued is skipped.
    QueueExpiryNotices {
        notices: Vec<ExpiryNotice>,
    },
    /// Notices their targets acknowledged: they leave the outbox.
    NoticesDelivered {
        ids: Vec<u64>,
    },
    /// An ACME account the leader registered (version 4, issue 15); a name in use is refused.
    AddAcmeIssuer {
        issuer: AcmeIssuer,
    },
    /// Removes an ACME issuer no managed certificate uses.
    RemoveIssuer {
        name: String,
    },
    /// The CA no longer knew the account of issuer `name` (a CA that lost its state, an
    /// account it deactivated): the leader registered the same key again, at `account_url`,
    /// with fresh credentials sealed under the same record. Refused when the issuer is gone
    /// or is another one by now (`created_at` differs).
    AcmeAccountRegistered {
        name: String,
        created_at: i64,
        account_url: String,
        #[serde(with = "serde_bytes")]
        sealed_credentials: Vec<u8>,
    },
    /// A certificate to obtain over ACME and keep renewing; the leader's ACME duty opens its
    /// first order. The name must be free.
    ManageAcme {
        name: String,
        managed: Managed,
        make_default: bool,
    },
    /// The leader opened `order` for `name` with the CA. Refused while another order is open
    /// for the name, or when the name no longer holds `expect_id` (hex; `None`: no bundle).
    OpenAcmeOrder {
        name: String,
        expect_id: Option<String>,
        order: AcmeOrder,
    },
    /// The CA issued the certificate of order `order_url`: `new` (its key is the order's)
    /// is imported as `name`, or rotates the bundle `name` holds. Refused unless that order
    /// is still the open one, so one order yields one bundle whoever finishes it.
    FinishAcmeOrder {
        name: String,
        order_url: String,
        new: NewBundle,
    },
    /// An ACME attempt failed: retried from `retry_at`; `drop_order` ends the open order
    /// `order_url` (the CA will not validate it), otherwise it is resumed.
    AcmeFailed {
        name: String,
        order_url: Option<String>,
        drop_order: bool,
        error: String,
        retry_at: i64,
    },
    /// The local issuer's certificate stands in for `name` while ACME fails (`--fallback
    /// local`); refused when the name no longer holds `expect_id`.
    ServeFallback {
        name: String,
        expect_id: Option<String>,
        new: NewBundle,
    },
    /// The CA's suggested renewal window for the bundle `id` (hex) of `name` (RFC 9773).
    SetRenewalWindow {
        name: String,
        id: String,
        start: i64,
    },
    /// A web console sign-in (issue 16): refused unless the session's admin token exists
    /// and it has not expired yet.
    OpenUiSession {
        session: super::ui::UiSession,
    },
    /// A web console sign-out: the session ends on every node.
    CloseUiSession {
        id_sha256: [u8; 32],
    },
    /// The admin port presents bundle `name` to clients asking for one of `hostnames` by SNI
    /// (version 5, issue 16): refused unless `name` is active and covers each hostname.
    SetConsole {
        name: String,
        hostnames: Vec<String>,
    },
    /// The admin port presents the node certificate to every client again (idempotent).
    ClearConsole,
}

/// One expiry threshold crossed, for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryNotice {
    pub target: String,
    pub bundle_id: String,
    /// `Expiring` for the tightest threshold crossed.
    pub event: NoticeEvent,
    /// Every threshold this notice stands for (the wider ones crossed at once).
    pub thresholds: Vec<i64>,
}

/// A behaviour of the replicated state that is off until every member runs a build that
/// has it, so replicas never disagree about it (issue 22's feature gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Membership entries that drop a member put its certificate on `revoked_node_certs`.
    RevokeRemovedMembers,
    /// Every member has applied request version 3 (issue 14's issuance commands): such
    /// entries are proposed from now on without asking the members again, so a member
    /// that is down (a killed leader) no longer holds back renewals and notices.
    RequestVersion3,
    /// Every member has applied request version 4 (issue 15's ACME commands).
    RequestVersion4,
    /// Every member has applied request version 5 (issue 16's console certificate).
    RequestVersion5,
}

impl Feature {
    pub const ALL: [Feature; 4] = [
        Feature::RevokeRemovedMembers,
        Feature::RequestVersion3,
        Feature::RequestVersion4,
        Feature::RequestVersion5,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::RevokeRemovedMembers => "revoke_removed_members",
            Feature::RequestVersion3 => "request_version_3",
            Feature::RequestVersion4 => "request_version_4",
            Feature::RequestVersion5 => "request_version_5",
        }
    }

    /// The request version whose entries this feature vouches for: once it is on, the
    /// gate lets entries up to this version through without asking (0: none).
    pub fn vouches_for(self) -> u16 {
        match self {
            Feature::RevokeRemovedMembers => 0,
            Feature::RequestVersion3 => 3,
            Feature::RequestVersion4 => 4,
            Feature::RequestVersion5 => 5,
        }
    }

    /// The lowest request version that can apply enabling it (an older build could not
    /// even read its name).
    pub fn min_version(self) -> u16 {
        match self {
            Feature::RevokeRemovedMembers => 2,
            Feature::RequestVersion3 => 3,
            Feature::RequestVersion4 => 4,
            Feature::RequestVersion5 => 5,
        }
    }
}

impl Command {
    /// The lowest [`Request`] version that can apply this command: the version that
    /// introduced it.
    pub fn min_version(&self) -> u16 {
        match self {
            Command::Import { .. }
            | Command::Remove { .. }
            | Command::SetDefault { .. }
            | Command::Rotate { .. }
            | Command::CreateJoinToken { .. }
            | Command::ConsumeJoinToken { .. }
            | Command::CreateAdminToken { .. }
            | Command::Record { .. }
            | Command::AddTicketKey { .. }
            | Command::Restore { .. } => 1,
            Command::EnableFeature { feature } => feature.min_version(),
            Command::CreateCsr { .. }
            | Command::RemoveCsr { .. }
            | Command::CompleteCsr { .. }
            | Command::SetLocalIssuer { .. }
            | Command::Issue { .. }
            | Command::Renew { .. }
            | Command::RenewalFailed { .. }
            | Command::AddNotifyTarget { .. }
            | Command::RemoveNotifyTarget { .. }
            | Command::QueueExpiryNotices { .. }
            | Command::NoticesDelivered { .. } => 3,
            Command::AddAcmeIssuer { .. }
            | Command::RemoveIssuer { .. }
            | Command::AcmeAccountRegistered { .. }
            | Command::ManageAcme { .. }
            | Command::OpenAcmeOrder { .. }
            | Command::FinishAcmeOrder { .. }
            | Command::AcmeFailed { .. }
            | Command::ServeFallback { .. }
            | Command::SetRenewalWindow { .. }
            | Command::OpenUiSession { .. }
            | Command::CloseUiSession { .. } => 4,
            Command::SetConsole { .. } | Command::ClearConsole => 5,
        }
    }

    /// Whether applying this command can change the ACME challenges the nodes answer.
    pub fn changes_challenges(&self) -> bool {
        matches!(
            self,
            Command::OpenAcmeOrder { .. }
                | Command::FinishAcmeOrder { .. }
                | Command::AcmeFailed { .. }
                | Command::Remove { .. }
                | Command::Rotate { .. }
                | Command::Restore { .. }
        )
    }
}

/// One committed log entry's payload: who, when, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u16,
    /// The admin token's name (never the token itself).
    pub actor: String,
    /// Unix seconds, stamped by the node that proposed it.
    pub at: i64,
    pub command: Command,
}

impl Request {
    /// The one way a replicated request is made: stamped with the lowest version that can
    /// apply `command`.
    pub fn new(actor: impl Into<String>, at: i64, command: Command) -> Request {
        Request {
            version: command.min_version(),
            actor: actor.into(),
            at,
            command,
        }
    }
}

/// Why `apply` refused a command. The inventory is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
    #[error("no certificate named {name}; run `certraft cert list` to see the names")]
    NotFound { name: String },
    #[error("the name {name} is already used by bundle {existing}; choose another --name, or `certraft cert rotate {name} FILE...` to replace it")]
    NameTaken { name: String, existing: String },
    #[error("{name} is the cluster default; set another default first (`certraft cert default OTHER`) or pass --force")]
    IsDefault { name: String },
    #[error("{name} is the only certificate serving {}; import a replacement first, or pass --force", hostnames.join(", "))]
    OnlyServer {
        name: String,
        hostnames: Vec<String>,
    },
    #[error("{name} is retired and cannot be the default; import or rotate to a new bundle")]
    Retired { name: String },
    #[error("the new certificate does not cover {} served by {old}; pass --force to rotate anyway", missing.join(", "))]
    RotationLosesHostnames { old: String, missing: Vec<String> },
    #[error("invalid name {name:?}: use 1–64 letters, digits, '.', '-' or '_'")]
    InvalidName { name: String },
    #[error("the join token is unknown, already used, or expired; create a new one with `certraft cluster join-token`")]
    JoinTokenInvalid,
    #[error("node id {requested} was already handed out (ids up to {highest} are used, and node ids are never reused); leave --node-id out, or pick one above {highest}")]
    NodeIdUsed { requested: u64, highest: u64 },
    #[error("an admin token named {name} already exists; pick another name (`certraft-node admin-token --name NEW`)")]
    TokenNameTaken { name: String },
    #[error(
        "this entry has version {version}, which this node does not know; upgrade certraft-node"
    )]
    UnknownVersion { version: u16 },
    #[error("a CSR named {name} is already pending; complete it (`certraft csr complete {name} CERT`), remove it (`certraft csr remove {name}`), or choose another --name")]
    CsrNameTaken { name: String },
    #[error("no pending CSR named {name}; run `certraft csr list` to see the pending ones")]
    CsrNotFound { name: String },
    #[error("{name} was renewed already (it no longer holds bundle {expected}); nothing changed")]
    AlreadyRenewed { name: String, expected: String },
    #[error("{name} is not a certificate the cluster issued; only `certraft cert issue` certificates are renewed by the cluster")]
    NotManaged { name: String },
    #[error(
        "a notify target named {name} already exists; remove it first or choose another --name"
    )]
    NotifyNameTaken { name: String },
    #[error("no notify target named {name}; run `certraft notify list` to see them")]
    NotifyNotFound { name: String },
    #[error(
        "an issuer named {name} already exists; run `certraft issuer list`, or choose another name"
    )]
    IssuerNameTaken { name: String },
    #[error("no ACME issuer named {name}; run `certraft issuer list`, or add one with `certraft issuer acme add {name} --directory URL --email E`")]
    IssuerNotFound { name: String },
    #[error("issuer {name} still issues {}; remove those certificates first (`certraft cert remove NAME`)", users.join(", "))]
    IssuerInUse { name: String, users: Vec<String> },
    #[error(
        "an ACME order is already open for {name} ({url}); it is carried on, not opened twice"
    )]
    OrderOpen { name: String, url: String },
    #[error("the ACME order {url} is no longer the open order of {name}; nothing changed")]
    OrderGone { name: String, url: String },
    #[error("no console session opened for {actor}: its admin token is gone or the session had already expired; sign in again")]
    SessionRefused { actor: String },
    #[error("{name} is the console certificate (the admin port presents it for {}); it cannot be removed, even with --force: point the console at another certificate (`certraft console cert OTHER --hostname {}`) or back to the node certificate (`certraft console reset`) first", hostnames.join(", "), hostnames.first().map(String::as_str).unwrap_or("H"))]
    IsConsole {
        name: String,
        hostnames: Vec<String>,
    },
    #[error("the new certificate does not cover the console hostname(s) {} that {old} answers for on the admin port; include them in the new certificate, pass --force to rotate anyway (the console keeps only the hostnames the new one covers, the node certificate when none is left), or `certraft console reset` first", missing.join(", "))]
    RotationLosesConsole { old: String, missing: Vec<String> },
    #[error("{name} does not cover {} (it covers {}); pick a certificate whose hostnames include them (`certraft cert list`), or import one", missing.join(", "), if covers.is_empty() { "no hostname".to_string() } else { covers.join(", ") })]
    ConsoleNotCovered {
        name: String,
        missing: Vec<String>,
        covers: Vec<String>,
    },
    #[error("{name} is retired (kept after a rotation, not served) and cannot be the console certificate; use the bundle that replaced it (`certraft cert list`)")]
    ConsoleRetired { name: String },
    #[error("invalid console hostname {hostname:?}: give the DNS name browsers use for the console, e.g. --hostname console.example.com (no wildcard, IP address or port)")]
    InvalidConsoleHostname { hostname: String },
    #[error("a console certificate answers for 1 to {max} hostnames; {count} were given: pass --hostname once per name", max = super::console::MAX_CONSOLE_HOSTNAMES)]
    ConsoleHostnameCount { count: usize },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound { .. } => "not_found",
            Refusal::NameTaken { .. } => "name_taken",
            Refusal::IsDefault { .. } => "is_default",
            Refusal::OnlyServer { .. } => "only_server",
            Refusal::Retired { .. } => "retired",
            Refusal::RotationLosesHostnames { .. } => "rotation_loses_hostnames",
            Refusal::InvalidName { .. } => "invalid_name",
            Refusal::JoinTokenInvalid => "join_token_invalid",
            Refusal::NodeIdUsed { .. } => "node_id_used",
            Refusal::TokenNameTaken { .. } => "token_name_taken",
            Refusal::UnknownVersion { .. } => "unknown_version",
            Refusal::CsrNameTaken { .. } => "csr_name_taken",
            Refusal::CsrNotFound { .. } => "csr_not_found",
            Refusal::AlreadyRenewed { .. } => "already_renewed",
            Refusal::NotManaged { .. } => "not_managed",
            Refusal::NotifyNameTaken { .. } => "notify_name_taken",
            Refusal::NotifyNotFound { .. } => "notify_not_found",
            Refusal::IssuerNameTaken { .. } => "issuer_name_taken",
            Refusal::IssuerNotFound { .. } => "issuer_not_found",
            Refusal::IssuerInUse { .. } => "issuer_in_use",
            Refusal::OrderOpen { .. } => "order_open",
            Refusal::OrderGone { .. } => "order_gone",
            Refusal::SessionRefused { .. } => "session_refused",
            Refusal::IsConsole { .. } => "is_console",
            Refusal::RotationLosesConsole { .. } => "rotation_loses_console",
            Refusal::ConsoleNotCovered { .. } => "console_not_covered",
            Refusal::ConsoleRetired { .. } => "console_retired",
            Refusal::InvalidConsoleHostname { .. } => "invalid_console_hostname",
            Refusal::ConsoleHostnameCount { .. } => "console_hostname_count",
        }
    }
}

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Imported {
        name: String,
        id: String,
    },
    /// The same bundle (by id) was already present: nothing changed.
    AlreadyPresent {
        name: String,
        id: String,
    },
    Removed {
        name: String,
    },
    DefaultSet {
        name: String,
    },
    Rotated {
        old: String,
        retired_as: String,
        new: String,
    },
    JoinTokenCreated,
    JoinTokenConsumed {
        role: NodeRole,
        node_id: u64,
    },
    AdminTokenCreated {
        name: String,
    },
    TicketKeyAdded {
        id: u32,
    },
    Recorded,
    FeatureEnabled {
        feature: Feature,
    },
    Restored {
        restored: Vec<String>,
        already_present: Vec<String>,
    },
    CsrCreated {
        name: String,
    },
    CsrRemoved {
        name: String,
    },
    /// `created` is false when an issuer was already set (nothing changed).
    LocalIssuerSet {
        created: bool,
    },
    RenewalRecorded {
        name: String,
    },
    NotifyTargetAdded {
        name: String,
    },
    NotifyTargetRemoved {
        name: String,
    },
    NoticesQueued {
        queued: usize,
    },
    NoticesDelivered {
        removed: usize,
    },
    IssuerAdded {
        name: String,
    },
    IssuerRemoved {
        name: String,
    },
    /// A certificate the ACME duty will obtain.
    AcmeManaged {
        name: String,
    },
    OrderRecorded {
        name: String,
    },
    /// The console certificate is `name` for `hostnames` (normalised).
    ConsoleSet {
        name: String,
        hostnames: Vec<String>,
    },
    /// The admin port presents the node certificate to everyone; `was` the bundle before.
    ConsoleCleared {
        was: Option<String>,
    },
}

/// The result `apply` returns to the proposer.
pub type Response = Result<Outcome, Refusal>;
