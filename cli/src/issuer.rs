//! `certraft issuer …`: the CAs that issue certificates in the cluster: the cluster's own
//! issuing CA, `local` (made on first use; its key is sealed under the core keyring and
//! never leaves the voters), and ACME accounts (`issuer acme add`: the account key is born
//! on the leader and sealed the same way; the account is registered once).

use std::fmt::Write as _;

use std::path::PathBuf;

use certraft::api::dto::{AcmeIssuerInfo, AcmeIssuerRequest, Done, IssuerInfo, IssuerList};
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

    /// List the issuers: name, kind, subject or directory, certificates managed.
    ///
    /// Examples:
    ///   certraft issuer list
    ///   certraft issuer list --json
    #[command(verbatim_doc_comment)]
    List,

    /// ACME issuers (RFC 8555): a CA such as Let's Encrypt that the cluster obtains
    /// certificates from. Only the leader talks to the CA; every node answers challenges.
    #[command(subcommand)]
    Acme(AcmeCommand),

    /// One ACME issuer: directory, contact, account URL, whether the CA offers renewal
    /// information (ARI), certificates managed.
    ///
    /// Example:
    ///   certraft issuer show letsencrypt
    #[command(verbatim_doc_comment)]
    Show {
        #[arg(value_name = "NAME")]
        name: String,
    },

    /// Remove an ACME issuer no certificate uses any more (`certraft cert remove NAME`
    /// those first). The account stays registered at the CA.
    ///
    /// Example:
    ///   certraft issuer remove staging
    #[command(verbatim_doc_comment)]
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AcmeCommand {
    /// Register an ACME account for the cluster and keep it as issuer NAME. The leader
    /// checks the directory, makes the account key (P-256), registers once (terms of
    /// service agreed) and seals the key under the core keyring: traffic nodes cannot open it.
    ///
    /// Then: `certraft cert issue www --san www.example.com --issuer NAME`.
    ///
    /// Examples:
    ///   certraft issuer acme add letsencrypt     ///       --directory https://acme-v02.api.letsencrypt.org/directory --email ops@example.com
    ///   certraft issuer acme add zerossl --directory https://acme.zerossl.com/v2/DV90     ///       --email ops@example.com --eab-kid KID --eab-hmac-file zerossl.hmac
    ///   certraft issuer acme add lab --directory https://ca.lab:14000/dir     ///       --email ops@lab.example --directory-ca-file lab-root.pem
    #[command(verbatim_doc_comment)]
    Add(AcmeAddArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct AcmeAddArgs {
    /// The issuer's name in the cluster: 1–64 letters, digits, '.', '-', '_' (not `local`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The CA's ACME directory URL (https).
    #[arg(long, value_name = "URL")]
    pub directory: String,
    /// The contact the CA writes to about expiry and policy.
    #[arg(long, value_name = "E")]
    pub email: String,
    /// External account binding key id, when the CA requires one (with --eab-hmac-file).
    #[arg(long, value_name = "K", requires = "eab_hmac_file")]
    pub eab_kid: Option<String>,
    /// File holding the EAB HMAC key (base64url, as the CA gives it). Never on argv.
    #[arg(long, value_name = "F", requires = "eab_kid")]
    pub eab_hmac_file: Option<PathBuf>,
    /// Extra root (PEM) to verify the directory's HTTPS with, for a private CA. (The global
    /// --ca-file is the cluster's own CA, for the admin endpoint.)
    #[arg(long, value_name = "F")]
    pub directory_ca_file: Option<PathBuf>,
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
        IssuerCommand::Acme(AcmeCommand::Add(args)) => acme_add(args, &client),
        IssuerCommand::Show { name } => {
            let reply = client.get::<AcmeIssuerInfo>(&["issuers", name])?;
            Ok(Output::raw(reply.raw.clone())
                .human(acme_text(&reply.body))
                .quiet(reply.body.account_url.clone()))
        }
        IssuerCommand::Remove { name } => {
            let reply = client.delete::<Done>(&["issuers", name], &[])?;
            Ok(Output::raw(reply.raw.clone())
                .human(format!("{}\n", reply.body.message))
                .quiet(name.clone()))
        }
    }
}

fn read_small(path: &PathBuf, what: &str) -> Result<String, Failure> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Failure::refused(
            "unreadable_file",
            format!("cannot read the {what} {}: {e}", path.display()),
        )
    })?;
    if meta.len() > 64 * 1024 {
        return Err(Failure::refused(
            "file_too_large",
            format!(
                "the {what} {} is {} bytes; it should be a few KiB at most",
                path.display(),
                meta.len()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| {
        Failure::refused(
            "unreadable_file",
            format!("cannot read the {what} {}: {e}", path.display()),
        )
    })
}

fn acme_add(args: &AcmeAddArgs, client: &Client) -> Result<Output, Failure> {
    let eab_hmac = match &args.eab_hmac_file {
        Some(p) => Some(
            read_small(p, "EAB HMAC file")?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let ca_pem = match &args.directory_ca_file {
        Some(p) => Some(read_small(p, "directory CA file")?),
        None => None,
    };
    let request = AcmeIssuerRequest {
        name: args.name.clone(),
        directory: args.directory.clone(),
        email: args.email.clone(),
        eab_kid: args.eab_kid.clone(),
        eab_hmac,
        ca_pem,
    };
    let reply = client.post::<_, AcmeIssuerInfo>(&["issuers", "acme"], &request)?;
    let mut human = format!("registered ACME account for issuer {}\n", reply.body.name);
    human.push_str(&acme_text(&reply.body));
    let _ = writeln!(
        human,
        "next: certraft cert issue NAME --san DNS --issuer {}",
        reply.body.name
    );
    Ok(Output::raw(reply.raw.clone())
        .human(human)
        .quiet(reply.body.account_url.clone()))
}

/// The `issuer show` text.
fn acme_text(i: &AcmeIssuerInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "issuer:     {} (ACME)", i.name);
    let _ = writeln!(out, "directory:  {}", i.directory);
    let _ = writeln!(out, "contact:    {}", i.email);
    let _ = writeln!(out, "account:    {}", i.account_url);
    let _ = writeln!(
        out,
        "renewal information (ARI): {}",
        if i.ari { "offered" } else { "not offered" }
    );
    let _ = writeln!(out, "created:    {}", i.created_at);
    let _ = writeln!(out, "managed:    {} certificate(s)", i.managed);
    out
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
    let acme = client.get::<IssuerList>(&["issuers"])?;
    let mut table = Table::new([
        "NAME",
        "KIND",
        "SUBJECT / DIRECTORY",
        "NOT AFTER",
        "MANAGED",
    ]);
    table.row([
        i.name.clone(),
        "cluster CA".to_string(),
        i.subject.clone(),
        i.not_after.clone(),
        i.managed.to_string(),
    ]);
    let mut names = vec![i.name.clone()];
    for a in &acme.body.acme {
        table.row([
            a.name.clone(),
            "acme".to_string(),
            a.directory.clone(),
            "-".to_string(),
            a.managed.to_string(),
        ]);
        names.push(a.name.clone());
    }
    let mut all = vec![reply.raw];
    all.extend(acme.raw["acme"].as_array().cloned().unwrap_or_default());
    let json = serde_json::json!({ "issuers": all });
    Ok(Output::raw(json)
        .human(table.render())
        .quiet(names.join("\n")))
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
