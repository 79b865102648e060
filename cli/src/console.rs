//! `certraft console …`: the web console's own certificate (issue 16) — which inventory
//! bundle the admin port presents to browsers that ask for the console's hostname, so they
//! see a certificate they trust; show it; reset it to the node certificate.

use std::fmt::Write as _;

use certraft::api::dto::{ConsoleStatus, SetConsoleRequest};
use clap::Subcommand;

use crate::client::{Client, ConnectArgs};
use crate::fail::Failure;
use crate::output::Output;

#[derive(Subcommand, Debug)]
pub(crate) enum ConsoleCommand {
    /// Make the admin port present certificate NAME (an imported bundle, e.g. one a public
    /// CA signed) to clients that ask for HOSTNAME, so browsers opening
    /// https://HOSTNAME:9443/ui see a certificate they trust.
    ///
    /// Only clients that send HOSTNAME by SNI get it: the CLI, `certraft-node health` and the
    /// other nodes connect by node address and keep the node certificate from the cluster
    /// CA, so nothing else changes (keep --server at a node address: the CLI trusts only the
    /// cluster CA). NAME must be active and cover every HOSTNAME (exactly or
    /// by a one-label wildcard); HOSTNAME must point at the nodes in DNS and must not be a
    /// node's own address. The setting is cluster-wide and applies without a restart. While
    /// NAME is the console certificate it cannot be removed, and `certraft cert rotate NAME`
    /// hands the role to the new bundle (refused if it does not cover every HOSTNAME, unless
    /// --force).
    ///
    /// Undo: `certraft console reset` (cluster-wide), or, if no CLI can reach the cluster,
    /// stop a node and run `certraft-node console-reset --data-dir DIR` on it.
    ///
    /// Examples:
    ///   certraft cert import console.pfx --name console --passphrase-file pass.txt
    ///   certraft console cert console --hostname certraft.example.com
    ///   certraft console cert wildcard --hostname certraft.example.com --hostname ca.example.com
    #[command(verbatim_doc_comment)]
    Cert(CertArgs),

    /// Show the console certificate: the bundle the admin port presents, for which
    /// hostnames, and until when; or that every client gets the node certificate.
    ///
    /// Examples:
    ///   certraft console show
    ///   certraft console show --json
    #[command(verbatim_doc_comment)]
    Show,

    /// Reset the console to the node certificate, cluster-wide: from the next connection,
    /// browsers asking for the console hostname get the node certificate from the cluster
    /// CA again (untrusted unless they trust that CA). The bundle itself stays in the
    /// inventory, and can be removed afterwards.
    ///
    /// When no CLI can reach the cluster (the console certificate locks a tool out), the
    /// offline way is `certraft-node console-reset --data-dir DIR` on a stopped node.
    /// Undo: `certraft console cert NAME --hostname H`.
    ///
    /// Examples:
    ///   certraft console reset
    #[command(verbatim_doc_comment)]
    Reset,
}

#[derive(clap::Args, Debug)]
pub(crate) struct CertArgs {
    /// The bundle to present (see `certraft cert list`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A name browsers use for the console; repeat for several (at most 8).
    #[arg(long = "hostname", value_name = "H", required = true)]
    pub hostnames: Vec<String>,
}

pub(crate) fn run(command: &ConsoleCommand, connect: &ConnectArgs) -> Result<Output, Failure> {
    let client = Client::connect(connect)?;
    match command {
        ConsoleCommand::Cert(args) => set(args, &client),
        ConsoleCommand::Show => show(&client),
        ConsoleCommand::Reset => reset(&client),
    }
}

fn set(args: &CertArgs, client: &Client) -> Result<Output, Failure> {
    let request = SetConsoleRequest {
        name: args.name.clone(),
        hostnames: args.hostnames.clone(),
    };
    let reply = client.put::<_, ConsoleStatus>(&["console"], &request)?;
    let s = &reply.body;
    let mut human = format!(
        "the admin port presents {} to clients asking for {}\n",
        s.name.as_deref().unwrap_or(&args.name),
        s.hostnames.join(", ")
    );
    let _ = writeln!(
        human,
        "the CLI and the nodes, which connect by node address, keep the node certificate"
    );
    if let Some(index) = s.index {
        let _ = writeln!(human, "committed at log index {index}");
    }
    let _ = writeln!(human, "undo: `certraft console reset`");
    Ok(Output::raw(reply.raw.clone())
        .human(human)
        .quiet(s.hostnames.join("\n")))
}

fn show(client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<ConsoleStatus>(&["console"])?;
    Ok(Output::raw(reply.raw.clone())
        .human(status_text(&reply.body))
        .quiet(reply.body.name.clone().unwrap_or_default()))
}

/// The `console show` text.
fn status_text(s: &ConsoleStatus) -> String {
    let Some(name) = &s.name else {
        return "no console certificate: the admin port presents the node certificate (cluster CA) to every client\nset one with `certraft console cert NAME --hostname H`\n".into();
    };
    let mut out = String::new();
    let _ = writeln!(out, "certificate:  {name}");
    let _ = writeln!(out, "hostnames:    {}", s.hostnames.join(", "));
    if let Some(id) = &s.id {
        let _ = writeln!(out, "id:           {id}");
    }
    if let Some(not_after) = &s.not_after {
        let _ = writeln!(out, "not after:    {not_after}");
    }
    let _ = writeln!(
        out,
        "every other client (the CLI, the nodes, no SNI) gets the node certificate"
    );
    out
}

fn reset(client: &Client) -> Result<Output, Failure> {
    let reply = client.delete::<ConsoleStatus>(&["console"], &[])?;
    let s = &reply.body;
    let mut human = match &s.was {
        Some(was) => format!(
            "the admin port no longer presents {was}: every client gets the node certificate (cluster CA)\n"
        ),
        None => "no console certificate was set: every client gets the node certificate (cluster CA)\n"
            .to_string(),
    };
    if let Some(index) = s.index {
        let _ = writeln!(human, "committed at log index {index}");
    }
    Ok(Output::raw(reply.raw.clone()).human(human))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `console show` says what browsers get, set or not.
    #[test]
    fn show_text_names_the_bundle_or_the_node_certificate() {
        let none = status_text(&ConsoleStatus::default());
        assert!(none.contains("node certificate"), "{none}");
        assert!(none.contains("certraft console cert NAME"), "{none}");
        let set = status_text(&ConsoleStatus {
            name: Some("console".into()),
            hostnames: vec!["a.example.test".into(), "b.example.test".into()],
            id: Some("ab".repeat(32)),
            not_after: Some("2099-12-31T23:59:59Z".into()),
            ..ConsoleStatus::default()
        });
        for needle in ["console", "a.example.test, b.example.test", "2099-12-31"] {
            assert!(set.contains(needle), "{needle:?} in {set}");
        }
    }
}
