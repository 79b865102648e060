//! `certraft issuer …`: the CAs that issue certificates in the cluster. Today that is the
//! cluster's own issuing CA, `local` (made on first use; its key is sealed under the core
//! keyring and never leaves the voters).

use std::fmt::Write as _;

use certraft::api::dto::IssuerInfo;
use clap::Subcommand;

use crate::client::{Client, ConnectArgs};
use crate::fail::Failure;
use crate::output::Output;
use crate::table::Table;

#[derive(Subcommand, Debug)]
pub(crate) enum IssuerCommand {
    /// The cluster's own issuing CA: subject, not-after, SHA-256 fingerprint and how many
    /// certificates it issued that the cluster renews; --pem prints its certificate.
    ///
    /// `certraft cert issue NAME --san DNS` issues from it. Clients that should trust those
    /// certificates need this CA certificate (--pem); any node also serves it, without a
    /// token, at /api/v1/trust/issuers. The cluster makes the issuer the first time it is
    /// asked for.
    ///
    /// Examples:
    ///   certraft issuer local
    ///   certraft issuer local --pem > certraft-issuer.pem
    ///   certraft issuer local --json
    #[command(verbatim_doc_comment)]
    Local(LocalArgs),

    /// List the issuers: name, kind, subject, not-after, certificates managed.
    ///
    /// Examples:
    ///   certraft issuer list
    ///   certraft issuer list --json
    #[command(verbatim_doc_comment)]
    List,
}

#[derive(clap::Args, Debug)]
pub(crate) struct LocalArgs {
    /// Print the issuer's certificate (PEM) only: what clients add to their trust store.
    #[arg(long)]
    pub pem: bool,
}

pub(crate) fn run(command: &IssuerCommand, connect: &ConnectArgs) -> Result<Output, Failure> {
    let client = Client::connect(connect)?;
    match command {
        IssuerCommand::Local(args) => local(args, &client),
        IssuerCommand::List => list(&client),
    }
}

fn local(args: &LocalArgs, client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<IssuerInfo>(&["issuers", "local"])?;
    let i = &reply.body;
    let output = Output::raw(reply.raw.clone());
    if args.pem {
        let pem = crate::csr::unix_lines(&i.pem);
        return Ok(output.human(pem.clone()).quiet(pem));
    }
    Ok(output.human(local_text(i)).quiet(i.sha256.clone()))
}

/// The `issuer local` text.
fn local_text(i: &IssuerInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "issuer:     {} (the cluster's own CA)", i.name);
    let _ = writeln!(out, "subject:    {}", i.subject);
    let _ = writeln!(out, "not after:  {}", i.not_after);
    let _ = writeln!(out, "sha256:     {}", i.sha256);
    let _ = writeln!(
        out,
        "managed:    {} certificate{} issued and renewed by the cluster",
        i.managed,
        if i.managed == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "trust it:   `certraft issuer local --pem > issuer.pem` (or GET /api/v1/trust/issuers on any node, no token)"
    );
    out
}

fn list(client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<IssuerInfo>(&["issuers", "local"])?;
    let i = reply.body;
    let mut table = Table::new(["NAME", "KIND", "SUBJECT", "NOT AFTER", "MANAGED"]);
    table.row([
        i.name.clone(),
        "cluster CA".to_string(),
        i.subject.clone(),
        i.not_after.clone(),
        i.managed.to_string(),
    ]);
    let json = serde_json::json!({ "issuers": [reply.raw] });
    Ok(Output::raw(json).human(table.render()).quiet(i.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text names the subject, expiry, fingerprint and managed count (singular for one).
    #[test]
    fn local_text_shows_the_issuer() {
        let mut i = IssuerInfo {
            name: "local".into(),
            subject: "CN=certraft issuer c0ffee".into(),
            not_after: "2035-01-01T00:00:00Z".into(),
            sha256: "ab".repeat(32),
            pem: String::new(),
            managed: 1,
        };
        let text = local_text(&i);
        for needle in [
            "CN=certraft issuer c0ffee",
            "2035-01-01T00:00:00Z",
            &"ab".repeat(32),
            "1 certificate issued",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        i.managed = 2;
        assert!(local_text(&i).contains("2 certificates issued"));
    }
}
