//! `certraft cluster …`: membership as the admin API shows it — status, join tokens, removal.

use std::fmt::Write as _;
use std::time::Duration;

use certraft::api::dto::{ClusterStatus, Done, JoinTokenRequest, JoinTokenResponse, Member};
use certraft::inventory::NodeRole;
use clap::{Subcommand, ValueEnum};

use crate::client::{Client, ConnectArgs};
use crate::duration;
use crate::fail::Failure;
use crate::output::{printable, Output};
use crate::table::Table;

#[derive(Subcommand, Debug)]
pub(crate) enum ClusterCommand {
    /// Members, roles, health, the leader, the term and the log indices, as the node at
    /// --server sees them ('*' marks the leader).
    ///
    /// HEALTH is leader, ok, lagging, unreachable or unknown (only the leader knows how far
    /// each member is; ask the leader for MATCHED). With -q, the leader's id only.
    ///
    /// Examples:
    ///   certraft cluster status
    ///   certraft cluster status --server https://10.0.0.12:9443 --json
    #[command(verbatim_doc_comment)]
    Status,

    /// Create a single-use token for one new node; prints only the token on stdout (its
    /// expiry and the next step on stderr).
    ///
    /// The token binds this cluster's CA, so the joining node verifies the cluster it
    /// joins. A voter joins as a learner and is promoted once caught up; a learner
    /// (traffic node) receives every bundle and serves TLS but does not vote; a witness
    /// votes and stores the log but serves no TLS.
    ///
    /// Examples:
    ///   certraft cluster join-token > join.token
    ///   certraft cluster join-token --role learner --ttl 15m
    ///   certraft-node run --join https://10.0.0.11:9443 --join-token "$(cat join.token)"
    #[command(verbatim_doc_comment)]
    JoinToken(JoinTokenArgs),

    /// Remove a member by node id (see `certraft cluster status`); its node certificate
    /// stops being accepted on the cluster port.
    ///
    /// Examples:
    ///   certraft cluster remove 4
    #[command(verbatim_doc_comment)]
    Remove(RemoveNodeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Votes and serves TLS (joins as a learner, promoted once caught up).
    Voter,
    /// Traffic node: receives every bundle and serves TLS; does not vote.
    Learner,
    /// Votes and stores the log; serves no TLS (the third node of a failover pair).
    Witness,
}

impl From<RoleArg> for NodeRole {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Voter => NodeRole::Voter,
            RoleArg::Learner => NodeRole::Learner,
            RoleArg::Witness => NodeRole::Witness,
        }
    }
}

#[derive(clap::Args, Debug)]
pub(crate) struct JoinTokenArgs {
    /// How long the token stays valid: 15m, 1h, 1d.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration::parse)]
    pub ttl: Duration,
    /// What the new node becomes.
    #[arg(long, value_enum, default_value_t = RoleArg::Voter)]
    pub role: RoleArg,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RemoveNodeArgs {
    /// The node id (the ID column of `certraft cluster status`).
    #[arg(value_name = "NODE")]
    pub node: u64,
}

pub(crate) fn run(command: &ClusterCommand, connect: &ConnectArgs) -> Result<Output, Failure> {
    match command {
        ClusterCommand::Status => status(&Client::connect(connect)?),
        ClusterCommand::JoinToken(args) => join_token(args, connect),
        ClusterCommand::Remove(args) => remove(args, &Client::connect(connect)?),
    }
}

fn status(client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<ClusterStatus>(&["cluster"])?;
    let s = &reply.body;
    Ok(Output::raw(reply.raw.clone())
        .human(status_text(s))
        .quiet(s.leader.map(|l| l.to_string()).unwrap_or_default()))
}

/// The `cluster status` text: a summary, then one row per member.
fn status_text(s: &ClusterStatus) -> String {
    let idx = |i: Option<u64>| i.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let _ = writeln!(out, "cluster:   {}", s.cluster_id);
    let _ = writeln!(out, "answered:  node {}", s.node_id);
    match s.leader {
        Some(l) => {
            let _ = writeln!(out, "leader:    node {l} (term {})", s.term);
        }
        None => {
            let _ = writeln!(
                out,
                "leader:    none (term {}): writes wait until a majority of voters elects one",
                s.term
            );
        }
    }
    let _ = writeln!(
        out,
        "log:       last {}, committed {}, applied {}",
        idx(s.last_log_index),
        idx(s.committed),
        idx(s.last_applied)
    );
    let _ = writeln!(out, "CA:        sha256 {}", s.ca_fingerprint);
    if !s.features.is_empty() {
        let _ = writeln!(out, "Features:  {}", printable(&s.features.join(", ")));
    }
    let _ = writeln!(out);
    out.push_str(&members_table(&s.members, s.leader));
    out
}

fn members_table(members: &[Member], leader: Option<u64>) -> String {
    let mut table = Table::new([
        "",
        "ID",
        "ROLE",
        "VOTING",
        "HEALTH",
        "MATCHED",
        "CLUSTER ADDR",
        "ADMIN ADDR",
    ]);
    for m in members {
        table.row([
            if leader == Some(m.id) { "*" } else { "" }.to_string(),
            m.id.to_string(),
            m.role.clone(),
            if m.voting { "yes" } else { "no" }.to_string(),
            m.health.clone(),
            m.matched
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            m.cluster_addr.clone(),
            m.admin_addr.clone(),
        ]);
    }
    table.render()
}

fn join_token(args: &JoinTokenArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    if args.ttl.is_zero() {
        return Err(Failure::usage(
            "usage",
            "--ttl 0s would make a token that is already expired; give e.g. --ttl 1h",
        ));
    }
    let client = Client::connect(connect)?;
    let request = JoinTokenRequest {
        ttl_secs: Some(args.ttl.as_secs()),
        role: args.role.into(),
    };
    let reply = client.post::<_, JoinTokenResponse>(&["cluster", "join-tokens"], &request)?;
    let r = &reply.body;
    let role = match r.role {
        NodeRole::Voter => "voter",
        NodeRole::Learner => "learner",
        NodeRole::Witness => "witness",
    };
    let role_flag = match r.role {
        NodeRole::Voter => String::new(),
        _ => format!(" --role {role}"),
    };
    let note = format!(
        "single-use {role} token, expires {}; save it to a file (mode 0600) on the new node and run: certraft-node run --join https://MEMBER:9443 --join-token-file FILE{role_flag}",
        r.expires_at,
    );
    Ok(Output::raw(reply.raw.clone())
        .human(r.token.clone())
        .quiet(r.token.clone())
        .note(note))
}

fn remove(args: &RemoveNodeArgs, client: &Client) -> Result<Output, Failure> {
    let id = args.node.to_string();
    let reply = client.delete::<Done>(&["cluster", "nodes", &id], &[])?;
    Ok(Output::done(reply.raw, &reply.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, role: &str, voting: bool, health: &str) -> Member {
        Member {
            id,
            role: role.into(),
            voting,
            cluster_addr: format!("10.0.0.{id}:9444"),
            admin_addr: format!("10.0.0.{id}:9443"),
            matched: Some(40 + id),
            health: health.into(),
        }
    }

    /// The status text names the leader and term, the indices, and marks the leader's row.
    #[test]
    fn status_text_marks_the_leader() {
        let s = ClusterStatus {
            cluster_id: "c0ffee".into(),
            node_id: 2,
            leader: Some(1),
            term: 7,
            last_log_index: Some(42),
            last_applied: Some(42),
            committed: Some(41),
            members: vec![
                member(1, "voter", true, "leader"),
                member(2, "voter", true, "ok"),
                member(3, "witness", true, "lagging"),
            ],
            ca_fingerprint: "ab".repeat(32),
            features: vec![],
        };
        let text = status_text(&s);
        assert!(text.contains("leader:    node 1 (term 7)"), "{text}");
        assert!(text.contains("last 42, committed 41, applied 42"), "{text}");
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("10.0.0.")).collect();
        assert_eq!(rows.len(), 3, "{text}");
        let cells = |line: &str| -> Vec<String> {
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        };
        assert_eq!(cells(rows[0])[..3], ["*", "1", "voter"], "{text}");
        assert!(rows[2].starts_with("   3"), "{text}");
        assert_eq!(
            cells(rows[2])[..4],
            ["3", "witness", "yes", "lagging"],
            "{text}"
        );
    }

    /// No leader is said plainly, not as an empty cell.
    #[test]
    fn status_text_without_leader() {
        let s = ClusterStatus {
            cluster_id: "c0ffee".into(),
            node_id: 2,
            leader: None,
            term: 8,
            last_log_index: None,
            last_applied: None,
            committed: None,
            members: vec![member(2, "voter", true, "unknown")],
            ca_fingerprint: "ab".repeat(32),
            features: vec![],
        };
        let text = status_text(&s);
        assert!(text.contains("leader:    none (term 8)"), "{text}");
        assert!(text.contains("last -, committed -, applied -"), "{text}");
    }
}
