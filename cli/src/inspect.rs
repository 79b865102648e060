//! `certraft inspect`: the offline pre-flight, with exactly import's checks.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use certraft::api::dto::UploadFile;
use certraft::bundle::limits::MAX_FILE_BYTES;
use certraft::bundle::report::{FileSummary, InspectReport};
use certraft::bundle::{
    assemble, parse_file, AssembleOptions, FileFormat, FormatError, ParsedFile, Passphrase,
};

use crate::fail::Failure;
use crate::output::Output;
use crate::passphrase;

#[derive(clap::Args, Debug)]
pub(crate) struct InspectArgs {
    /// Certificate, key and PKCS#12 files, in any order and any mix (PEM, DER, PKCS#8,
    /// encrypted PKCS#8, PKCS#1, SEC1, PKCS#12/PFX, PKCS#7). The format is read from the
    /// content. `-` reads one file from standard input (e.g. `docker exec -i NODE /certraft
    /// cert import - < bundle.pem`, where the container has no shell and no /tmp).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// File whose first line is the passphrase for encrypted keys and PKCS#12 files
    /// (else $CERTRAFT_PASSPHRASE, else a prompt on a terminal).
    #[arg(long, value_name = "F")]
    pub passphrase_file: Option<PathBuf>,
    /// Accept a leaf certificate that has expired or is not yet valid (import refuses it otherwise).
    #[arg(long)]
    pub allow_expired: bool,
    /// Accept a chain with a missing intermediate between certificates ("broken").
    #[arg(long)]
    pub allow_incomplete: bool,
}

/// What the local pre-flight found, and what to send the cluster when it passed.
pub(crate) struct Checked {
    pub report: InspectReport,
    /// The files as read, for `POST /api/v1/certs` and `…/rotate`.
    pub uploads: Vec<UploadFile>,
    /// The passphrase the files were opened with (given, or asked for), when one of them is
    /// encrypted; `None` when no file needed one, even if one was at hand.
    pub passphrase: Option<Passphrase>,
}

/// `certraft inspect`: the report, for every output mode.
pub(crate) fn run(args: &InspectArgs) -> Result<Output, Failure> {
    let report = check(args)?.report;
    Ok(Output::json(&report)?
        .human(report.to_human())
        .quiet(report.id.to_string()))
}

/// Reads every file, assembles and validates the bundle exactly as import does, asking for a
/// passphrase on the terminal when a file needs one that was not given.
pub(crate) fn check(args: &InspectArgs) -> Result<Checked, Failure> {
    let mut passphrase = passphrase::given(args.passphrase_file.as_deref())?;
    let mut parsed: Vec<ParsedFile> = Vec::with_capacity(args.files.len());
    let mut uploads = Vec::with_capacity(args.files.len());
    let mut encrypted = false;
    if args.files.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(Failure::usage(
            "usage",
            "`-` (standard input) can be given once; put the other parts in files, or all of them in one PEM on stdin",
        ));
    }
    for path in &args.files {
        let name = if path.as_os_str() == "-" {
            "(stdin)".to_string()
        } else {
            path.display().to_string()
        };
        let bytes = read_input(path, &name)?;
        let file = parse_with_prompt(path, &name, &bytes, &mut passphrase)?;
        encrypted |= is_encrypted(&file, &bytes);
        parsed.push(file);
        uploads.push(UploadFile { name, data: bytes });
    }
    let files = parsed.iter().map(FileSummary::of).collect();
    let options = AssembleOptions {
        allow_incomplete: args.allow_incomplete,
        allow_expired: args.allow_expired,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let bundle = assemble(parsed, options, now)?;
    Ok(Checked {
        report: InspectReport::new(&bundle, files),
        uploads,
        passphrase: passphrase.filter(|_| encrypted),
    })
}

/// Reads one input file, but never more than `parse_file` would accept: a file whose size is
/// over [`MAX_FILE_BYTES`] is refused from its metadata, unread, with `parse_file`'s own
/// `too_large` error; and at most one byte over the cap is read in any case (a file that grew
/// since, or one without a size, such as a pipe), so `parse_file` refuses it the same way.
fn read_input(path: &Path, name: &str) -> Result<Vec<u8>, Failure> {
    let unreadable = |e: std::io::Error| {
        Failure::refused(
            "file_unreadable",
            format!("cannot read {name}: {e}; check the path and its permissions"),
        )
    };
    let file: Box<dyn Read> = if path.as_os_str() == "-" {
        // Standard input, once (checked by the caller). A passphrase prompt reads the
        // terminal itself, not stdin, so an encrypted file on stdin can still be opened.
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let size = file.metadata().map_err(unreadable)?.len();
        if size > MAX_FILE_BYTES as u64 {
            return Err(FormatError::TooLarge {
                file: name.into(),
                size: usize::try_from(size).unwrap_or(usize::MAX),
                max: MAX_FILE_BYTES,
            }
            .into());
        }
        Box::new(file)
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    Ok(bytes)
}

/// Whether opening `file` took a passphrase: PKCS#12, or an encrypted key (DER PKCS#8, PEM
/// `ENCRYPTED PRIVATE KEY`, or a traditional `Proc-Type: 4,ENCRYPTED` PEM key).
fn is_encrypted(file: &ParsedFile, bytes: &[u8]) -> bool {
    const MARKERS: [&[u8]; 2] = [b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"4,ENCRYPTED"];
    match file.format {
        FileFormat::Pkcs12 | FileFormat::DerEncryptedPkcs8 => true,
        FileFormat::Pem => MARKERS
            .iter()
            .any(|m| bytes.windows(m.len()).any(|w| w == *m)),
        _ => false,
    }
}

/// Parses one file; when it needs a passphrase none was given for, asks on the terminal once
/// and keeps the answer for the other files.
fn parse_with_prompt(
    path: &Path,
    name: &str,
    bytes: &[u8],
    passphrase: &mut Option<Passphrase>,
) -> Result<ParsedFile, Failure> {
    match parse_file(name, bytes, passphrase.as_ref()) {
        Err(FormatError::PassphraseRequired { .. }) if passphrase.is_none() => {
            let Some(p) = passphrase::prompt(path)? else {
                return Err(parse_file(name, bytes, None)
                    .expect_err("failed the same way before")
                    .into());
            };
            *passphrase = Some(p);
            Ok(parse_file(name, bytes, passphrase.as_ref())?)
        }
        other => Ok(other?),
    }
}
