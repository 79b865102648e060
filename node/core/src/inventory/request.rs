//! The replicated requests: what a log entry carries (`Request`: who, when, which
//! `Command`, at which version), and what `apply` answers (`Outcome` or `Refusal`).

use serde::{Deserialize, Serialize};

use super::model::*;

/// The newest [`Request`] version this build applies. Each entry carries the lowest version
/// that can apply its command ([`Command::min_version`]), so a command added later is
/// stamped with the version that introduced it, and only that command needs every member
/// upgraded: the leader proposes it only once every member reports it can apply it
/// (`apply_version` in `/readyz`), and a node handed an entry newer than it knows stops its
/// apply with "upgrade this node" rather than skip it (issue 22).
pub const REQUEST_VERSION: u16 = 2;

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
}

/// A behaviour of the replicated state that is off until every member runs a build that
/// has it, so replicas never disagree about it (issue 22's feature gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Membership entries that drop a member put its certificate on `revoked_node_certs`.
    RevokeRemovedMembers,
}

impl Feature {
    pub const ALL: [Feature; 1] = [Feature::RevokeRemovedMembers];

    pub fn name(self) -> &'static str {
        match self {
            Feature::RevokeRemovedMembers => "revoke_removed_members",
        }
    }
}

impl Command {
    /// The lowest [`Request`] version that can apply this command: the version that
    /// introduced it. Every command so far is version 1.
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
            Command::EnableFeature { .. } => 2,
        }
    }

    /// A short description for the audit log; never secret material.
    pub fn describe(&self) -> String {
        match self {
            Command::Import {
                bundle,
                make_default,
            } => format!(
                "import {} ({}){}",
                bundle.name,
                hex::encode(&bundle.sealed.id[..8]),
                if *make_default { " as default" } else { "" }
            ),
            Command::Remove { name, force } => {
                format!(
                    "remove {name}{}",
                    if *force == Force::Yes { " --force" } else { "" }
                )
            }
            Command::SetDefault { name } => format!("set default {name}"),
            Command::Rotate { old, new, .. } => format!(
                "rotate {old} to {} ({})",
                new.name,
                hex::encode(&new.sealed.id[..8])
            ),
            Command::CreateJoinToken { token } => {
                let role = match token.role {
                    NodeRole::Voter => "voter",
                    NodeRole::Learner => "learner",
                    NodeRole::Witness => "witness",
                };
                format!(
                    "create join token ({role}, expires {})",
                    crate::bundle::assemble::fmt_time(token.expires_at)
                )
            }
            Command::ConsumeJoinToken { requested, .. } => match requested {
                Some(id) => format!("join token used by node {id}"),
                None => "join token used by a new node".into(),
            },
            Command::CreateAdminToken { token } => format!("create admin token {}", token.name),
            Command::Record { what, .. } => what.clone(),
            Command::EnableFeature { feature } => format!("enable feature {}", feature.name()),
            Command::AddTicketKey { key } => format!("rotate session-ticket key to {}", key.id),
            Command::Restore { bundles, .. } => {
                format!("restore backup of {} bundles", bundles.len())
            }
        }
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
}

/// The result `apply` returns to the proposer.
pub type Response = Result<Outcome, Refusal>;

/// The bundle names whose serving state a committed command changed (the default aside):
/// what the serving index must re-read after applying it. Refusals touch nothing.
pub fn touched(command: &Command, response: &Response) -> Vec<String> {
    let Ok(outcome) = response else {
        return Vec::new();
    };
    match (command, outcome) {
        (Command::Import { bundle, .. }, _) => vec![bundle.name.clone()],
        (Command::Remove { name, .. }, _) => vec![name.clone()],
        (
            Command::Rotate { .. },
            Outcome::Rotated {
                old,
                retired_as,
                new,
            },
        ) => vec![old.clone(), retired_as.clone(), new.clone()],
        (Command::Restore { bundles, .. }, _) => bundles.iter().map(|b| b.name.clone()).collect(),
        _ => Vec::new(),
    }
}
