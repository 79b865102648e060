//! `certraft`: the operator's command line.
//!
//! Today: `certraft inspect`, the offline pre-flight of bundle files. The cluster commands
//! (`cert`, `csr`, `cluster`, `backup`) arrive with the admin API.

mod fail;
mod inspect;
mod passphrase;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// certraft: import, inspect, export and rotate TLS certificate bundles in a certraft cluster.
///
/// Passphrases are never taken from the command line: use --passphrase-file F (its first
/// line), the CERTRAFT_PASSPHRASE environment variable, or answer the prompt on a terminal.
///
/// Exit codes: 0 done; 1 refused or failed (validation, conflict, not found); 2 usage;
/// 3 cluster unreachable; 4 authentication or permission.
#[derive(Parser, Debug)]
#[command(name = "certraft", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// Machine-readable JSON on stdout (errors too: {"error":{"code","message"}}).
    #[arg(long, global = true)]
    json: bool,
    /// Terse output: only the essential value (for `inspect`, the bundle id).
    #[arg(short, long, global = true)]
    quiet: bool,
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
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match &cli.command {
        Command::Inspect(args) => match inspect::run(args) {
            Ok(report) => {
                if cli.json {
                    match serde_json::to_string_pretty(&report) {
                        Ok(s) => println!("{s}"),
                        Err(e) => {
                            return fail::Failure::refused(
                                "internal",
                                format!("could not encode the report: {e}"),
                            )
                            .report(true)
                        }
                    }
                } else if cli.quiet {
                    println!("{}", report.id);
                } else {
                    print!("{}", report.to_human());
                }
                ExitCode::SUCCESS
            }
            Err(f) => f.report(cli.json),
        },
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
    let body = serde_json::json!({"error": {"code": "usage", "message": message}});
    println!("{body}");
    ExitCode::from(2)
}
