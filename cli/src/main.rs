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
/// Exit codes: 0 done; 1 refused or failed (validation, conflict, not found); 2 usage;
/// 3 cluster unreachable; 4 authentication or permission.
#[derive(Parser, Debug)]
#[command(name = "certraft", version, about, long_about)]
struct Cli {
    /// Machine-readable JSON on stdout (errors too: {"error":{"code","message"}}).
    #[arg(long, global = true)]
    json: bool,
    /// Print only what was asked for: no warnings on stderr.
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
    /// Examples:
    ///   certraft inspect site.pfx --passphrase-file pass.txt
    ///   certraft inspect site.key site.crt intermediate.pem
    ///   certraft inspect --json fullchain.pem privkey.pem
    #[command(verbatim_doc_comment)]
    Inspect(inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
