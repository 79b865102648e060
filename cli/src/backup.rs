//! `certraft backup …`: the whole inventory as one passphrase-sealed file, and back.

use std::fmt::Write as _;
use std::path::PathBuf;

use certraft::api::dto::{BackupRequest, BackupResponse, RestoreRequest, RestoreResponse};
use clap::Subcommand;

use crate::client::{Client, ConnectArgs};
use crate::fail::Failure;
use crate::outfile::{self, Overwrite};
use crate::output::Output;
use crate::passphrase;

#[derive(Subcommand, Debug)]
pub(crate) enum BackupCommand {
    /// Write the whole inventory (every bundle, the default) to one file sealed with a
    /// passphrase.
    ///
    /// The passphrase comes from --passphrase-file F, else CERTRAFT_PASSPHRASE, else is
    /// asked twice on a terminal; without it the backup cannot be restored, so keep it
    /// apart from the file. The file is created with mode 0600; an existing file is
    /// replaced only with --force.
    ///
    /// Examples:
    ///   certraft backup create --out certraft-2025-06-01.backup --passphrase-file pass.txt
    ///   CERTRAFT_PASSPHRASE=... certraft backup create --out nightly.backup --force
    #[command(verbatim_doc_comment)]
    Create(CreateArgs),

    /// Import every bundle of a backup file into this cluster (the same or another one);
    /// bundles already present are skipped.
    ///
    /// The passphrase the backup was created with comes from --passphrase-file F, else
    /// CERTRAFT_PASSPHRASE, else a prompt on a terminal.
    ///
    /// Examples:
    ///   certraft backup restore certraft-2025-06-01.backup --passphrase-file pass.txt
    ///   certraft backup restore nightly.backup --server https://dr-site:9443 --ca-file dr-ca.pem
    #[command(verbatim_doc_comment)]
    Restore(RestoreArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct CreateArgs {
    /// The file to write (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// File whose first line is the backup passphrase (else $CERTRAFT_PASSPHRASE, else asked
    /// twice on a terminal).
    #[arg(long, value_name = "F")]
    pub passphrase_file: Option<PathBuf>,
    /// Accept a passphrase shorter than 12 characters. It alone protects every private key
    /// in the backup.
    #[arg(long)]
    pub allow_weak_passphrase: bool,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RestoreArgs {
    /// A file written by `certraft backup create`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// File whose first line is the backup's passphrase (else $CERTRAFT_PASSPHRASE, else a
    /// prompt on a terminal).
    #[arg(long, value_name = "F")]
    pub passphrase_file: Option<PathBuf>,
}

pub(crate) fn run(command: &BackupCommand, connect: &ConnectArgs) -> Result<Output, Failure> {
    match command {
        BackupCommand::Create(args) => create(args, connect),
        BackupCommand::Restore(args) => restore(args, connect),
    }
}

fn create(args: &CreateArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    let overwrite = Overwrite::from_force(args.force);
    outfile::check_free(&args.out, overwrite)?;
    let client = Client::connect(connect)?;
    let out = args.out.display().to_string();
    let passphrase = passphrase::for_new_secret(
        args.passphrase_file.as_deref(),
        &format!("backup {out}"),
        passphrase::Strength::from_flag(args.allow_weak_passphrase),
    )?;
    let request = BackupRequest {
        passphrase: passphrase.expose().to_string(),
        allow_weak_passphrase: args.allow_weak_passphrase,
    };
    let reply = client.post::<_, BackupResponse>(&["backup"], &request)?;
    let r = reply.body;
    outfile::write(&args.out, &r.data, overwrite)?;
    let json = serde_json::json!({"out": out, "bundles": r.bundles, "bytes": r.data.len()});
    Ok(Output::raw(json)
        .human(format!(
            "wrote {out}: {} bundles, {} bytes\n",
            r.bundles,
            r.data.len()
        ))
        .quiet(out)
        .note("keep the passphrase apart from the file: without it the backup cannot be restored"))
}

fn restore(args: &RestoreArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    let name = args.file.display().to_string();
    let data = std::fs::read(&args.file).map_err(|e| {
        Failure::refused(
            "file_unreadable",
            format!("cannot read backup {name}: {e}; check the path and its permissions"),
        )
    })?;
    let client = Client::connect(connect)?;
    let passphrase = passphrase::for_existing_secret(
        args.passphrase_file.as_deref(),
        &format!("backup {name}"),
    )?;
    let request = RestoreRequest {
        data,
        passphrase: passphrase.expose().to_string(),
    };
    let reply = client.post::<_, RestoreResponse>(&["backup", "restore"], &request)?;
    let r = &reply.body;
    Ok(Output::raw(reply.raw.clone())
        .human(restore_text(&name, r))
        .quiet(r.restored.join("\n")))
}

fn restore_text(file: &str, r: &RestoreResponse) -> String {
    let mut out = format!("restored {} bundles from {file}\n", r.restored.len());
    for name in &r.restored {
        let _ = writeln!(out, "  + {name}");
    }
    if !r.already_present.is_empty() {
        let _ = writeln!(
            out,
            "already present, skipped: {}",
            r.already_present.join(", ")
        );
    }
    match &r.default {
        Some(d) => {
            let _ = writeln!(out, "default: {d}");
        }
        None => {
            let _ = writeln!(out, "default: none set");
        }
    }
    out
}
