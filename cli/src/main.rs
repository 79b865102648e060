//! `certraft`: the operator's command line.
//!
//! Layout: [`inspect`] is the offline pre-flight; [`cert`], [`csr`], [`issuer`], [`notify`],
//! [`console`], [`cluster`], [`audit`] and [`backup`] are the cluster commands, which talk to the admin API through [`client`] (the
//! only module that does HTTP). Each command returns an [`output::Output`] (what to show in
//! human, `-q` and `--json` modes) or a [`fail::Failure`] (code, message, exit status), and
//! `main` prints it once.

mod audit;
mod backup;
mod cert;
mod client;
mod cluster;
mod console;
mod csr;
mod duration;
mod fail;
mod inspect;
mod issuer;
mod notify;
mod outfile;
mod output;
mod passphrase;
mod table;
mod trust;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Mode;

/// certraft: import, inspect, export and rotate TLS certificate bundles in a certraft cluster.
///
/// The cluster commands talk to the admin API of any node (--server, default
/// https://127.0.0.1:9443), always verifying it against the cluster CA (--ca-file), with an
/// admin token (--token-file or CERTRAFT_TOKEN). On a node, ca.pem and admin.token are found
/// in $CERTRAFT_DATA_DIR or ./certraft-data, so no flag is needed there.
///
/// Passphrases are never taken from the command line: use --passphrase-file F (its first
/// line), the CERTRAFT_PASSPHRASE environment variable, or answer the prompt on a terminal.
///
/// Exit codes: 0 done; 1 refused or failed (validation, conflict, not found); 2 usage;
/// 3 cluster unreachable, no leader, or no answer in time; 4 authentication or permission.
///
/// Examples:
///   certraft inspect site.pfx --passphrase-file pass.txt
///   certraft cert import site.key site.crt chain.pem --default
///   certraft --server https://10.0.0.11:9443 --ca-file ca.pem --token-file admin.token cert list
#[derive(Parser, Debug)]
#[command(name = "certraft", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// Machine-readable JSON on stdout: the answer, or {"error":{"code","message","hint"}}.
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,
    /// Terse output: only the essential value (an id, a name, a token).
    #[arg(short, long, global = true, help_heading = "Output")]
    quiet: bool,
    #[command(flatten)]
    connect: client::ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Offline pre-flight: what is in these files — leaf, chain order, key match,
    /// completeness, hostnames, expiry, warnings. Exits 1, with the reason, wherever
    /// `certraft cert import` would refuse the same files. No server needed.
    ///
    /// Passphrases for PKCS#12 files and encrypted keys: --passphrase-file F, else
    /// CERTRAFT_PASSPHRASE, else a prompt on a terminal; never argv.
    ///
    /// Exit codes: 0 the files make a valid bundle; 1 import would refuse them (the reason
    /// is printed); 2 usage.
    ///
    /// Examples:
    ///   certraft inspect site.pfx --passphrase-file pass.txt
    ///   certraft inspect site.key site.crt intermediate.pem
    ///   certraft inspect --json fullchain.pem privkey.pem
    #[command(verbatim_doc_comment)]
    Inspect(inspect::InspectArgs),

    /// Certificates in the cluster: import, issue, list, show, export, default, rotate,
    /// remove.
    ///
    /// Examples:
    ///   certraft cert import site.pfx --passphrase-file pass.txt
    ///   certraft cert issue internal-api --san api.internal.example
    ///   certraft cert list --expiring-within 30d
    ///   certraft cert rotate www.example.com new-site.pfx
    #[command(verbatim_doc_comment)]
    Cert {
        #[command(subcommand)]
        command: cert::CertCommand,
    },

    /// Certificate signing requests whose key is born in the cluster and never leaves it:
    /// create one, send it to your CA, complete it with the CA's answer.
    ///
    /// Examples:
    ///   certraft csr create --name www --cn www.example.com --san www.example.com --out www.csr
    ///   certraft csr complete www www.crt intermediate.pem
    ///   certraft csr list
    #[command(verbatim_doc_comment)]
    Csr {
        #[command(subcommand)]
        command: csr::CsrCommand,
    },

    /// The CAs that issue certificates in the cluster: its own CA, `local`, used by
    /// `certraft cert issue`.
    ///
    /// Examples:
    ///   certraft issuer local
    ///   certraft issuer local --pem > certraft-issuer.pem
    ///   certraft issuer list
    #[command(verbatim_doc_comment)]
    Issuer {
        #[command(subcommand)]
        command: issuer::IssuerCommand,
    },

    /// Webhooks that receive HMAC-signed notices: certificates nearing expiry, renewals
    /// that failed or succeeded.
    ///
    /// Examples:
    ///   certraft notify add --name ops --url https://hooks.example.com/certraft
    ///   certraft notify list
    ///   certraft notify test ops
    #[command(verbatim_doc_comment)]
    Notify {
        #[command(subcommand)]
        command: notify::NotifyCommand,
    },

    /// The web console's own certificate: which imported bundle the admin port presents to
    /// browsers asking for the console's hostname (the CLI and the nodes keep the node
    /// certificate); show it; reset it to the node certificate.
    ///
    /// Examples:
    ///   certraft console cert console --hostname certraft.example.com
    ///   certraft console show
    ///   certraft console reset
    #[command(verbatim_doc_comment)]
    Console {
        #[command(subcommand)]
        command: console::ConsoleCommand,
    },

    /// The cluster's members: status, join tokens for new nodes, removal.
    ///
    /// Examples:
    ///   certraft cluster status
    ///   certraft cluster join-token --role learner
    ///   certraft cluster remove 4
    #[command(verbatim_doc_comment)]
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },

    /// The replicated audit log: every change, who made it, when, and its result (most
    /// recent last).
    ///
    /// Examples:
    ///   certraft audit
    ///   certraft audit --limit 0 --json
    #[command(verbatim_doc_comment)]
    Audit(audit::AuditArgs),

    /// The whole inventory as one passphrase-sealed file: create one, or restore one into
    /// this (or another) cluster.
    ///
    /// Examples:
    ///   certraft backup create --out site-a.backup --passphrase-file pass.txt
    ///   certraft backup restore site-a.backup --passphrase-file pass.txt
    #[command(verbatim_doc_comment)]
    Backup {
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let mode = Mode {
        json: cli.json,
        quiet: cli.quiet,
    };
    let result = match &cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Cert { command } => cert::run(command, &cli.connect),
        Command::Csr { command } => csr::run(command, &cli.connect),
        Command::Issuer { command } => issuer::run(command, &cli.connect),
        Command::Notify { command } => notify::run(command, &cli.connect),
        Command::Console { command } => console::run(command, &cli.connect),
        Command::Cluster { command } => cluster::run(command, &cli.connect),
        Command::Audit(args) => audit::run(args, &cli.connect),
        Command::Backup { command } => backup::run(command, &cli.connect),
    };
    match result {
        Ok(output) => {
            output.print(mode);
            ExitCode::SUCCESS
        }
        Err(f) => f.report(mode.json),
    }
}

/// Clap's usage errors, as JSON when `--json` was asked for; help and version as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let wants_json = std::env::args().any(|a| a == "--json");
    if !wants_json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let message = e.render().to_string();
    let message = message.trim().trim_start_matches("error: ");
    fail::Failure::usage("usage", message).report(true)
}
