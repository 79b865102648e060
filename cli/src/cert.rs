//! `certraft cert …`: the inventory of bundles — import, issue, list, show, export, default,
//! rotate, remove — against the admin API (`certraft::api::dto`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certraft::api::dto::{
    BundleSource, CertList, CertSummary, DefaultCert, Done, ExportFormat, ExportRequest,
    ExportResponse, ImportOutcome, ImportRequest, ImportResponse, RotateRequest, RotateResponse,
    SetDefault,
};
use clap::{Subcommand, ValueEnum};

use crate::client::{Client, ConnectArgs};
use crate::fail::Failure;
use crate::inspect::{self, InspectArgs};
use crate::outfile::{self, Overwrite};
use crate::output::Output;
use crate::table::Table;
use crate::{duration, passphrase};
use issue::{issue, IssueArgs};
use show::show;

#[derive(Subcommand, Debug)]
pub(crate) enum CertCommand {
    /// Assemble a bundle from any mix of files, validate it locally (as `certraft inspect`
    /// does), then replicate it; prints its name and id (with -q, the id only).
    ///
    /// The files are checked on this machine first: anything `certraft inspect` refuses is
    /// refused here without contacting the cluster. A passphrase (for PKCS#12 files and
    /// encrypted keys) comes from --passphrase-file F, else CERTRAFT_PASSPHRASE, else a
    /// prompt on a terminal, and is sent to the cluster over the verified TLS connection.
    /// Importing the same bundle twice changes nothing (identical bundles have one id).
    ///
    /// Examples:
    ///   certraft cert import site.pfx --passphrase-file pass.txt --default
    ///   certraft cert import --name shop site.key site.crt intermediate.pem
    ///   certraft cert import --dry-run fullchain.pem privkey.pem
    #[command(verbatim_doc_comment)]
    Import(ImportArgs),

    /// Issue a certificate from the cluster's own CA (`certraft issuer local`), with a key
    /// born in the cluster; the cluster then renews it automatically, by default at about
    /// two thirds of its lifetime. Prints its name and id (with -q, the id only).
    ///
    /// The key is generated on the leader and sealed; it never leaves the cluster. Each
    /// renewal replaces the bundle under the same name, keeping its hostnames and default
    /// role; `certraft cert show NAME` shows when the next one falls due and how the last
    /// went, and `certraft notify add` tells a webhook when one fails. Clients trust these
    /// certificates through the issuer's CA certificate (`certraft issuer local --pem`).
    /// Lifetime: --days D (default 90, at most 398), or --lifetime 10m, 12h, 30d.
    ///
    /// Examples:
    ///   certraft cert issue internal-api --san api.internal.example --san api2.internal.example
    ///   certraft cert issue grafana --san grafana.lan --days 30 --key rsa-2048 --renew-at 50
    ///   certraft cert issue smoke --san smoke.test --lifetime 10m
    #[command(verbatim_doc_comment)]
    Issue(IssueArgs),

    /// List the certificates: name, hostnames, issuer, not-after, status; '*' marks the
    /// cluster-wide default.
    ///
    /// Status is active, retired (kept after a rotation, not served), expired or
    /// not-yet-valid. With --expiring-within, only certificates whose not-after falls
    /// within that time from now (expired ones included), soonest first. With -q, names only.
    ///
    /// Examples:
    ///   certraft cert list
    ///   certraft cert list --expiring-within 30d
    ///   certraft cert list --json
    #[command(verbatim_doc_comment)]
    List(ListArgs),

    /// Show one certificate: details, chain, warnings, the hostnames it serves now, and
    /// every use of it ("used by": hostnames served, the default role, the console
    /// certificate on the admin port).
    ///
    /// Examples:
    ///   certraft cert show www.example.com
    ///   certraft cert show shop --json
    #[command(verbatim_doc_comment)]
    Show(ShowArgs),

    /// Export a bundle to a file: PKCS#12 with key, leaf and chain (passphrase required),
    /// or PEM with the certificates only, or, with --with-key, the certificates and the key
    /// (encrypted PKCS#8 under a passphrase; --unencrypted-key for a plain one, with a warning).
    ///
    /// The passphrase comes from --passphrase-file F, else CERTRAFT_PASSPHRASE, else
    /// is asked twice on a terminal. The default PKCS#12 (PBES2, AES-256-CBC, HMAC-SHA256)
    /// is read by OpenSSL 3 without -legacy; --legacy writes 3DES + SHA-1 for old systems.
    /// The file is created with mode 0600; an existing file is replaced only with --force.
    ///
    /// Examples:
    ///   certraft cert export www.example.com --out www.p12 --passphrase-file pass.txt
    ///   certraft cert export www.example.com --out www-chain.pem --format pem
    ///   certraft cert export www.example.com --out www.pem --format pem --with-key
    ///   certraft cert export old-lb --out old-lb.p12 --legacy
    #[command(verbatim_doc_comment)]
    Export(ExportArgs),

    /// Show the cluster-wide default certificate, or set it to NAME.
    ///
    /// The default answers TLS connections without SNI, or whose name matches no
    /// certificate. With no default, nodes answer with their own cluster-CA certificate.
    ///
    /// Examples:
    ///   certraft cert default
    ///   certraft cert default www.example.com
    #[command(verbatim_doc_comment)]
    Default(DefaultArgs),

    /// Replace OLD with a new bundle in one atomic step: the new bundle takes over every
    /// hostname and the default role of OLD; OLD is retired (kept, not served).
    ///
    /// The new files are checked locally first, exactly like `cert import`. The rotation is
    /// refused when the new certificate does not cover every hostname OLD served, unless
    /// --force. The new bundle is named --name N, else OLD's name; OLD is kept, retired, as
    /// OLD~ID12 (its name, '~' and the first 12 hex digits of its id).
    ///
    /// Examples:
    ///   certraft cert rotate www.example.com new-site.pfx --passphrase-file pass.txt
    ///   certraft cert rotate shop shop-2025.key shop-2025.crt chain.pem
    #[command(verbatim_doc_comment)]
    Rotate(RotateArgs),

    /// Remove a certificate from the cluster. Refused while NAME is the default or the only
    /// certificate serving a hostname, unless --force; refused while NAME is the console
    /// certificate, even with --force (`certraft console reset` first).
    ///
    /// Examples:
    ///   certraft cert remove www.example.com~b1044866ccdd
    ///   certraft cert remove legacy-api --force
    #[command(verbatim_doc_comment)]
    Remove(RemoveArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    pub bundle: InspectArgs,
    /// Name of the bundle in the inventory (default: the leaf's first hostname, or its CN).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Also make it the cluster-wide default certificate.
    #[arg(long)]
    pub default: bool,
    /// Validate on the cluster too, and report the name it would get; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    /// Only certificates whose not-after is within this time from now (expired included):
    /// 30d, 12h, 90m, 3600s, 1w.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub expiring_within: Option<Duration>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ShowArgs {
    /// The certificate's name (see `certraft cert list`).
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// PKCS#12 / PFX: key, leaf and chain, passphrase protected.
    P12,
    /// PEM: leaf and chain certificates; the key too only with --with-key.
    Pem,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// The certificate's name (see `certraft cert list`).
    pub name: String,
    /// The file to write (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// p12 (key + certificates, passphrase protected) or pem (certificates only, unless
    /// --with-key).
    #[arg(long, value_enum, default_value_t = FormatArg::P12)]
    pub format: FormatArg,
    /// With --format pem: append the private key, as encrypted PKCS#8 (PBES2, PBKDF2-SHA256
    /// 600,000 iterations, AES-256) under the passphrase: the one file nginx and HAProxy take
    /// (nginx reads the passphrase from `ssl_password_file`).
    #[arg(long)]
    pub with_key: bool,
    /// With --with-key: write the key unencrypted (`PRIVATE KEY`), for servers that cannot be
    /// given a passphrase. Anyone who reads the file holds the key; certraft warns.
    #[arg(long, requires = "with_key")]
    pub unencrypted_key: bool,
    /// File whose first line is the PKCS#12 passphrase (else $CERTRAFT_PASSPHRASE, else
    /// asked twice on a terminal).
    #[arg(long, value_name = "F")]
    pub passphrase_file: Option<PathBuf>,
    /// PKCS#12 with 3DES and a SHA-1 MAC, for systems that cannot read the default. Weak.
    #[arg(long)]
    pub legacy: bool,
    /// Accept a passphrase shorter than 12 characters (for a system that cannot take a
    /// longer one). The passphrase alone protects the key once the file leaves the cluster.
    #[arg(long)]
    pub allow_weak_passphrase: bool,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct DefaultArgs {
    /// The certificate to make the default; without it, show the current default.
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RotateArgs {
    /// The certificate being replaced.
    #[arg(value_name = "OLD")]
    pub old: String,
    #[command(flatten)]
    pub bundle: InspectArgs,
    /// Name of the new bundle (default: OLD's name; OLD itself is kept as OLD~ID12).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Rotate even if the new certificate does not cover every hostname OLD served.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RemoveArgs {
    /// The certificate's name (see `certraft cert list`).
    pub name: String,
    /// Remove it even if it is the default or the only certificate serving a hostname.
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn run(command: &CertCommand, connect: &ConnectArgs) -> Result<Output, Failure> {
    match command {
        CertCommand::Import(args) => import(args, connect),
        CertCommand::Issue(args) => issue(args, connect),
        CertCommand::List(args) => list(args, &Client::connect(connect)?),
        CertCommand::Show(args) => show(args, &Client::connect(connect)?),
        CertCommand::Export(args) => export(args, connect),
        CertCommand::Default(args) => default(args, &Client::connect(connect)?),
        CertCommand::Rotate(args) => rotate(args, connect),
        CertCommand::Remove(args) => remove(args, &Client::connect(connect)?),
    }
}

/// The local pre-flight, then what the cluster needs to redo it.
fn bundle_source(args: &InspectArgs) -> Result<BundleSource, Failure> {
    let checked = inspect::check(args)?;
    Ok(BundleSource {
        files: checked.uploads,
        passphrase: checked.passphrase.map(|p| p.expose().to_string()),
        allow_expired: args.allow_expired,
        allow_incomplete: args.allow_incomplete,
    })
}

fn import(args: &ImportArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    // Credentials first: no passphrase prompt for a command that cannot be sent.
    let client = Client::connect(connect)?;
    let request = ImportRequest {
        source: bundle_source(&args.bundle)?,
        name: args.name.clone(),
        make_default: args.default,
        dry_run: args.dry_run,
    };
    let reply = client.post::<_, ImportResponse>(&["certs"], &request)?;
    let r = &reply.body;
    let mut human = match r.outcome {
        ImportOutcome::Imported => format!("imported {} (id {})\n", r.name, r.id),
        ImportOutcome::AlreadyPresent => format!(
            "{} (id {}) is already in the inventory; nothing changed\n",
            r.name, r.id
        ),
        ImportOutcome::DryRun => format!(
            "dry run: would import as {} (id {}); nothing changed\n",
            r.name, r.id
        ),
    };
    let _ = writeln!(human, "  hostnames:  {}", list_or_none(&r.hostnames));
    let _ = writeln!(human, "  not after:  {}", r.not_after);
    let _ = writeln!(human, "  chain:      {}", r.completeness);
    if args.default && r.outcome == ImportOutcome::Imported {
        let _ = writeln!(human, "  default:    yes (cluster-wide)");
    }
    if let Some(index) = r.index {
        let _ = writeln!(human, "  committed:  log index {index}");
    }
    Ok(Output::raw(reply.raw.clone())
        .human(human)
        .quiet(r.id.clone())
        .warnings(r.warnings.clone()))
}

fn list(args: &ListArgs, client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<CertList>(&["certs"])?;
    let now = unix_now();
    let mut list = reply.body;
    let output = match args.expiring_within {
        None => Output::raw(reply.raw),
        Some(within) => {
            let cutoff = now.saturating_add(i64::try_from(within.as_secs()).unwrap_or(i64::MAX));
            list.certs.retain(|c| c.not_after_unix <= cutoff);
            list.certs.sort_by_key(|c| c.not_after_unix);
            Output::json(&list)?
        }
    };
    let human = if list.certs.is_empty() {
        match args.expiring_within {
            Some(d) => format!("no certificate expires within {}\n", duration::format(d)),
            None => {
                "no certificates yet; add one with `certraft cert import FILE...`\n".to_string()
            }
        }
    } else {
        cert_table(&list.certs, now)
    };
    let names: Vec<&str> = list.certs.iter().map(|c| c.name.as_str()).collect();
    Ok(output.human(human).quiet(names.join("\n")))
}

/// The `cert list` table.
fn cert_table(certs: &[CertSummary], now: i64) -> String {
    let mut table = Table::new(["", "NAME", "HOSTNAMES", "ISSUER", "NOT AFTER", "STATUS"]);
    for c in certs {
        table.row([
            if c.is_default { "*" } else { "" }.to_string(),
            c.name.clone(),
            hostnames_cell(&c.hostnames),
            short_dn(&c.issuer).to_string(),
            format!(
                "{} ({})",
                date_part(&c.not_after),
                relative(c.not_after_unix, now)
            ),
            c.status.clone(),
        ]);
    }
    table.render()
}

fn export(args: &ExportArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    if args.legacy && args.format == FormatArg::Pem {
        return Err(Failure::usage(
            "usage",
            "--legacy applies to PKCS#12 only; drop it, or use --format p12",
        ));
    }
    if args.with_key && args.format != FormatArg::Pem {
        return Err(Failure::usage(
            "usage",
            "--with-key applies to --format pem (a PKCS#12 export always holds the key); drop it, or add --format pem",
        ));
    }
    let overwrite = Overwrite::from_force(args.force);
    outfile::check_free(&args.out, overwrite)?;
    let client = Client::connect(connect)?;
    let (format, passphrase) = match args.format {
        FormatArg::Pem if args.with_key && !args.unencrypted_key => {
            let what = format!("the private key in the PEM export of {}", args.name);
            let strength = passphrase::Strength::from_flag(args.allow_weak_passphrase);
            let p = passphrase::for_new_secret(args.passphrase_file.as_deref(), &what, strength)?;
            (ExportFormat::Pem, Some(p.expose().to_string()))
        }
        FormatArg::Pem => (ExportFormat::Pem, None),
        FormatArg::P12 => {
            let what = format!("the PKCS#12 export of {}", args.name);
            let strength = passphrase::Strength::from_flag(args.allow_weak_passphrase);
            let p = passphrase::for_new_secret(args.passphrase_file.as_deref(), &what, strength)?;
            (ExportFormat::P12, Some(p.expose().to_string()))
        }
    };
    let request = ExportRequest {
        format,
        passphrase,
        legacy: args.legacy,
        allow_weak_passphrase: args.allow_weak_passphrase,
        with_key: args.with_key,
        unencrypted_key: args.unencrypted_key,
    };
    let reply = client.post::<_, ExportResponse>(&["certs", &args.name, "export"], &request)?;
    let r = reply.body;
    // A node from before --with-key ignores it and answers certificates only.
    if args.with_key && !r.data.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(Failure::refused(
            "unsupported_by_server",
            "the node answered certificates only: it predates PEM exports with the key; upgrade the cluster, or export --format p12 and convert with `openssl pkcs12 -in FILE -nodes`",
        ));
    }
    outfile::write(&args.out, &r.data, overwrite)?;
    let mut warnings = r.warnings.clone();
    if args.legacy && warnings.is_empty() {
        warnings.push(
            "--legacy wrote 3DES + SHA-1 PKCS#12, which is weak; use it only for systems that cannot read the default"
                .to_string(),
        );
    }
    let format_name = match r.format {
        ExportFormat::P12 if args.legacy => "PKCS#12 (legacy)",
        ExportFormat::P12 => "PKCS#12",
        ExportFormat::Pem if args.unencrypted_key => "PEM with the key UNENCRYPTED",
        ExportFormat::Pem if args.with_key => "PEM with the key (encrypted PKCS#8)",
        ExportFormat::Pem => "PEM, certificates only",
    };
    let out = args.out.display().to_string();
    let json = serde_json::json!({
        "name": args.name,
        "out": out,
        "format": r.format,
        "bytes": r.data.len(),
        "warnings": r.warnings,
    });
    Ok(Output::raw(json)
        .human(format!(
            "wrote {out}: {} as {format_name}, {} bytes\n",
            args.name,
            r.data.len()
        ))
        .quiet(out)
        .warnings(warnings))
}

fn default(args: &DefaultArgs, client: &Client) -> Result<Output, Failure> {
    let reply = match &args.name {
        None => client.get::<DefaultCert>(&["default"])?,
        Some(name) => {
            client.put::<_, DefaultCert>(&["default"], &SetDefault { name: name.clone() })?
        }
    };
    let human = match (&reply.body.default, &args.name) {
        (Some(d), None) => format!("default: {d}\n"),
        (Some(d), Some(_)) => format!("default is now {d}\n"),
        (None, _) => "no cluster-wide default is set: connections without a matching name get the node's own certificate; set one with `certraft cert default NAME`\n".to_string(),
    };
    Ok(Output::raw(reply.raw)
        .human(human)
        .quiet(reply.body.default.unwrap_or_default()))
}

fn rotate(args: &RotateArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    let client = Client::connect(connect)?;
    let request = RotateRequest {
        source: bundle_source(&args.bundle)?,
        name: args.name.clone(),
        force: args.force,
    };
    let reply = client.post::<_, RotateResponse>(&["certs", &args.old, "rotate"], &request)?;
    let r = &reply.body;
    let mut human = format!(
        "rotated {} -> {} (id {})\n{} is retired as {} (kept, not served)\n",
        r.old, r.new, r.id, r.old, r.retired_as
    );
    if let Some(index) = r.index {
        let _ = writeln!(human, "committed at log index {index}");
    }
    Ok(Output::raw(reply.raw.clone())
        .human(human)
        .quiet(r.id.clone())
        .warnings(r.warnings.clone()))
}

fn remove(args: &RemoveArgs, client: &Client) -> Result<Output, Failure> {
    let force = if args.force { "true" } else { "false" };
    let reply = client.delete::<Done>(&["certs", &args.name], &[("force", force)])?;
    Ok(Output::done(reply.raw, &reply.body))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

/// At most two hostnames, then how many more.
fn hostnames_cell(hosts: &[String]) -> String {
    match hosts {
        [] => "-".to_string(),
        [a] => a.clone(),
        [a, b] => format!("{a},{b}"),
        [a, b, rest @ ..] => format!("{a},{b} +{}", rest.len()),
    }
}

/// The CN of a distinguished name as shown by the API (`C=US, O=Org, CN=name`), else the
/// whole name.
fn short_dn(dn: &str) -> &str {
    dn.split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .filter(|cn| !cn.is_empty())
        .unwrap_or(dn)
}

/// `2099-12-31` from an RFC 3339 time; other text unchanged.
fn date_part(rfc3339: &str) -> &str {
    match rfc3339.split_once('T') {
        Some((date, _)) if date.len() == 10 => date,
        _ => rfc3339,
    }
}

/// `in 12d`, `in 5h`, `expired 3d ago`.
fn relative(at: i64, now: i64) -> String {
    let diff = at.saturating_sub(now);
    let span = |secs: i64| {
        let secs = secs.unsigned_abs();
        if secs >= 86_400 {
            format!("{}d", secs / 86_400)
        } else if secs >= 3600 {
            format!("{}h", secs / 3600)
        } else {
            format!("{}m", secs / 60)
        }
    };
    if diff >= 0 {
        format!("in {}", span(diff))
    } else {
        format!("expired {} ago", span(diff))
    }
}

mod acme;
mod issue;
mod show;

#[cfg(test)]
mod tests;
