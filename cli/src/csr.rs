//! `certraft csr …`: certificate signing requests whose key is born, and stays, in the
//! cluster — create one, hand the PEM to a CA, complete it with the CA's answer (or remove
//! it) — against the admin API (`certraft::api::dto`).
//!
//! Also home of what `csr create` and `cert issue` share: the `--key` and `--san` parsers.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use certraft::api::dto::{
    CsrCompleteRequest, CsrCompleteResponse, CsrCreateRequest, CsrInfo, CsrList, Done, UploadFile,
};
use certraft::bundle::limits::MAX_FILE_BYTES;
use certraft::inventory::KeyType;
use clap::Subcommand;

use crate::client::{Client, ConnectArgs};
use crate::fail::Failure;
use crate::outfile::{self, Overwrite};
use crate::output::{printable, Output};
use crate::table::Table;

#[derive(Subcommand, Debug)]
pub(crate) enum CsrCommand {
    /// Make a key in the cluster and a certificate signing request (PKCS#10) for it; prints
    /// the CSR PEM (or writes it to --out F) for you to send to your CA.
    ///
    /// The private key is generated on the leader, sealed under the cluster data key and
    /// replicated like a bundle; it never leaves the cluster, not even to this command.
    /// When the CA answers, finish with `certraft csr complete N CERT [CHAIN...]`: the
    /// certificate joins the key as bundle N (or rotates bundle N if it exists).
    /// Key types: ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519.
    /// Several names: repeat --san, or separate them with commas.
    ///
    /// Examples:
    ///   certraft csr create --name www --cn www.example.com --san www.example.com,example.com
    ///   certraft csr create --name api --cn api.example.com --san api.example.com \
    ///       --key rsa-3072 --out api.csr
    #[command(verbatim_doc_comment)]
    Create(CreateArgs),

    /// List the pending CSRs: name, key type, common name, names, when created.
    ///
    /// A CSR is pending until `certraft csr complete` turns it into a bundle, or
    /// `certraft csr remove` drops it and its key. With -q, names only.
    ///
    /// Examples:
    ///   certraft csr list
    ///   certraft csr list --json
    #[command(verbatim_doc_comment)]
    List,

    /// Print a pending CSR's PEM again (with --json, everything about it).
    ///
    /// Examples:
    ///   certraft csr show www > www.csr
    ///   certraft csr show www --json
    #[command(verbatim_doc_comment)]
    Show(NameArgs),

    /// Finish a pending CSR with the CA's answer: the certificate it issued and, usually,
    /// its chain (PEM or DER, in any order).
    ///
    /// The certificate must be for the CSR's key; anything else is refused and nothing
    /// changes. The bundle is named --name N, else after the CSR; when a bundle of that
    /// name exists it is rotated (the old one is retired, kept, not served), refused when
    /// the new certificate drops a hostname the old one served unless --force. The chain is
    /// checked as `certraft cert import` checks it.
    ///
    /// Examples:
    ///   certraft csr complete www www.crt intermediate.pem
    ///   certraft csr complete api api-fullchain.pem --default
    ///   certraft csr complete www www-2026.crt chain.pem --name www.example.com --force
    #[command(verbatim_doc_comment)]
    Complete(CompleteArgs),

    /// Drop a pending CSR and its key (a certificate issued for it can then never be used).
    ///
    /// Examples:
    ///   certraft csr remove www
    #[command(verbatim_doc_comment)]
    Remove(NameArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct CreateArgs {
    /// Name of the CSR (and of the bundle it becomes): 1–64 letters, digits, '.', '-', '_'.
    #[arg(long, value_name = "N")]
    pub name: String,
    /// The subject's common name (usually the main hostname).
    #[arg(long = "cn", value_name = "CN")]
    pub common_name: String,
    /// A DNS name the certificate is for; repeat it, or separate names with commas.
    #[arg(
        long = "san",
        value_name = "DNS",
        required = true,
        value_delimiter = ','
    )]
    pub sans: Vec<String>,
    /// The key to generate: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519.
    #[arg(long, value_name = "TYPE", default_value = "ec-p256", value_parser = parse_key_type)]
    pub key: KeyType,
    /// Write the CSR PEM to this file instead of standard output.
    #[arg(long, value_name = "F")]
    pub out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct NameArgs {
    /// The CSR's name (see `certraft csr list`).
    #[arg(value_name = "N")]
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub(crate) struct CompleteArgs {
    /// The pending CSR's name (see `certraft csr list`).
    #[arg(value_name = "N")]
    pub csr: String,
    /// The certificate the CA issued, then its chain (intermediates, root), in any order.
    #[arg(value_name = "CERT", required = true)]
    pub files: Vec<PathBuf>,
    /// Name of the bundle (default: the CSR's name); an existing bundle of that name is
    /// rotated.
    #[arg(long, value_name = "BUNDLE")]
    pub name: Option<String>,
    /// Also make it the cluster-wide default certificate.
    #[arg(long)]
    pub default: bool,
    /// Accept a certificate that has expired or is not yet valid.
    #[arg(long)]
    pub allow_expired: bool,
    /// Accept a chain with a missing intermediate between certificates ("broken").
    #[arg(long)]
    pub allow_incomplete: bool,
    /// When rotating, proceed even if the new certificate drops hostnames the old one served.
    #[arg(long)]
    pub force: bool,
}

pub(crate) fn run(command: &CsrCommand, connect: &ConnectArgs) -> Result<Output, Failure> {
    match command {
        CsrCommand::Create(args) => create(args, connect),
        CsrCommand::List => list(&Client::connect(connect)?),
        CsrCommand::Show(args) => show(args, &Client::connect(connect)?),
        CsrCommand::Complete(args) => complete(args, connect),
        CsrCommand::Remove(args) => remove(args, &Client::connect(connect)?),
    }
}

/// `--key`: one of [`KeyType::ALL`] by name; anything else is a usage error naming them.
pub(crate) fn parse_key_type(text: &str) -> Result<KeyType, String> {
    KeyType::parse(text).ok_or_else(|| {
        let names: Vec<&str> = KeyType::ALL.iter().map(|k| k.name()).collect();
        format!("unknown key type {text:?}; use one of {}", names.join(", "))
    })
}

/// `--san` values as given (repeated, comma-separated), blanks dropped; the server checks
/// each name.
pub(crate) fn sans(given: &[String]) -> Vec<String> {
    given
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn create(args: &CreateArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    let sans = sans(&args.sans);
    if sans.is_empty() {
        return Err(Failure::usage(
            "usage",
            "--san is empty; name at least one DNS name, e.g. --san www.example.com",
        ));
    }
    let overwrite = Overwrite::from_force(args.force);
    if let Some(out) = &args.out {
        outfile::check_free(out, overwrite)?;
    }
    let client = Client::connect(connect)?;
    let request = CsrCreateRequest {
        name: args.name.clone(),
        common_name: args.common_name.clone(),
        sans,
        key: args.key,
    };
    let reply = client.post::<_, CsrInfo>(&["csrs"], &request)?;
    let info = &reply.body;
    let pem = unix_lines(&info.csr_pem);
    let next = format!(
        "send {} to your CA, then `certraft csr complete {} CERT [CHAIN...]`",
        args.out
            .as_ref()
            .map_or_else(|| "the CSR".to_string(), |p| p.display().to_string()),
        info.name
    );
    let what = format!(
        "{} key made and sealed in the cluster; CN {}, names {}",
        info.key,
        info.common_name,
        info.sans.join(", ")
    );
    match &args.out {
        None => Ok(Output::raw(reply.raw.clone())
            .human(pem.clone())
            .quiet(pem)
            .note(format!("csr {}: {what}", info.name))
            .note(format!("next: {next}"))),
        Some(out) => {
            outfile::write(out, pem.as_bytes(), overwrite)?;
            let shown = out.display().to_string();
            let mut human = format!("wrote {shown}: csr {} ({what})\n", info.name);
            let _ = writeln!(human, "next: {next}");
            Ok(Output::raw(reply.raw.clone()).human(human).quiet(shown))
        }
    }
}

fn list(client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<CsrList>(&["csrs"])?;
    let csrs = &reply.body.csrs;
    let human = if csrs.is_empty() {
        "no pending CSRs; make one with `certraft csr create --name N --cn CN --san DNS`\n"
            .to_string()
    } else {
        csr_table(csrs)
    };
    let names: Vec<&str> = csrs.iter().map(|c| c.name.as_str()).collect();
    Ok(Output::raw(reply.raw.clone())
        .human(human)
        .quiet(names.join("\n")))
}

/// The `csr list` table.
fn csr_table(csrs: &[CsrInfo]) -> String {
    let mut table = Table::new(["NAME", "KEY", "CN", "NAMES", "CREATED"]);
    for c in csrs {
        table.row([
            c.name.clone(),
            c.key.name().to_string(),
            c.common_name.clone(),
            names_cell(&c.sans),
            format!("{} by {}", c.created_at, c.created_by),
        ]);
    }
    table.render()
}

/// At most two names, then how many more.
fn names_cell(names: &[String]) -> String {
    match names {
        [] => "-".to_string(),
        [a] => a.clone(),
        [a, b] => format!("{a},{b}"),
        [a, b, rest @ ..] => format!("{a},{b} +{}", rest.len()),
    }
}

fn show(args: &NameArgs, client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<CsrInfo>(&["csrs", &args.name])?;
    let c = &reply.body;
    let note = format!(
        "csr {}: {} key, CN {}, names {}; created {} by {}",
        c.name,
        c.key,
        c.common_name,
        c.sans.join(", "),
        c.created_at,
        c.created_by
    );
    Ok(Output::raw(reply.raw.clone())
        .human(unix_lines(&c.csr_pem))
        .quiet(unix_lines(&c.csr_pem))
        .note(note))
}

fn complete(args: &CompleteArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    let files = args
        .files
        .iter()
        .map(|p| read_upload(p))
        .collect::<Result<Vec<_>, _>>()?;
    let client = Client::connect(connect)?;
    let request = CsrCompleteRequest {
        files,
        bundle_name: args.name.clone(),
        make_default: args.default,
        allow_expired: args.allow_expired,
        allow_incomplete: args.allow_incomplete,
        force: args.force,
    };
    let reply =
        client.post::<_, CsrCompleteResponse>(&["csrs", &args.csr, "complete"], &request)?;
    let r = &reply.body;
    Ok(Output::raw(reply.raw.clone())
        .human(complete_text(&args.csr, r, args.default))
        .quiet(r.id.clone())
        .warnings(r.warnings.clone()))
}

/// The `csr complete` text: what became of the CSR, then the bundle's facts.
fn complete_text(csr: &str, r: &CsrCompleteResponse, made_default: bool) -> String {
    let mut out = match (r.outcome.as_str(), &r.retired_as) {
        (_, Some(retired)) => format!(
            "completed csr {csr}: rotated {} (id {}); the previous bundle is retired as {retired} (kept, not served)\n",
            r.name, r.id
        ),
        ("already_present", _) => format!(
            "completed csr {csr}: {} (id {}) was already in the inventory\n",
            r.name, r.id
        ),
        _ => format!("completed csr {csr}: imported {} (id {})\n", r.name, r.id),
    };
    let _ = writeln!(out, "  hostnames:  {}", list_or_none(&r.hostnames));
    let _ = writeln!(out, "  not after:  {}", r.not_after);
    let _ = writeln!(out, "  chain:      {}", r.completeness);
    if made_default {
        let _ = writeln!(out, "  default:    yes (cluster-wide)");
    }
    if let Some(index) = r.index {
        let _ = writeln!(out, "  committed:  log index {index}");
    }
    out
}

fn remove(args: &NameArgs, client: &Client) -> Result<Output, Failure> {
    let reply = client.delete::<Done>(&["csrs", &args.name], &[])?;
    Ok(Output::done(reply.raw, &reply.body))
}

/// One file of the CA's answer, as uploaded: read whole, but never more than the cluster
/// accepts ([`MAX_FILE_BYTES`]).
fn read_upload(path: &Path) -> Result<UploadFile, Failure> {
    let name = path.display().to_string();
    let unreadable = |e: std::io::Error| {
        Failure::refused(
            "file_unreadable",
            format!("cannot read {name}: {e}; check the path and its permissions"),
        )
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut data = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut data)
        .map_err(unreadable)?;
    if data.len() > MAX_FILE_BYTES {
        return Err(Failure::refused(
            "too_large",
            format!(
                "{name} is over {MAX_FILE_BYTES} bytes; a certificate and its chain are far smaller: is it the right file?"
            ),
        ));
    }
    Ok(UploadFile { name, data })
}

/// PEM text with `\n` line ends: the server's may end lines with `\r\n`, which the terminal
/// output escapes (a bare `\r` could overwrite what was printed) and which would then no
/// longer be PEM when redirected to a file.
pub(crate) fn unix_lines(pem: &str) -> String {
    pem.replace("\r\n", "\n")
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        printable(&items.join(", ")).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key type parses by its name (any case); anything else names them all.
    #[test]
    fn key_types_parse_by_name_and_unknown_ones_list_the_valid() {
        for k in KeyType::ALL {
            assert_eq!(parse_key_type(k.name()), Ok(k));
            assert_eq!(parse_key_type(&k.name().to_uppercase()), Ok(k));
        }
        let err = parse_key_type("dsa-1024").expect_err("unknown");
        for k in KeyType::ALL {
            assert!(err.contains(k.name()), "{err}");
        }
        assert!(err.contains("dsa-1024"), "{err}");
    }

    /// CRLF PEM becomes LF PEM; LF PEM is unchanged.
    #[test]
    fn pem_gets_unix_line_ends() {
        let lf = "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(unix_lines(&lf.replace('\n', "\r\n")), lf);
        assert_eq!(unix_lines(lf), lf);
    }

    /// Blanks between commas are dropped; names are otherwise passed as given.
    #[test]
    fn sans_drop_blanks() {
        let given = ["a.example".to_string(), " b.example ".into(), String::new()];
        assert_eq!(sans(&given), ["a.example", "b.example"]);
    }

    fn info(name: &str, sans: &[&str]) -> CsrInfo {
        CsrInfo {
            name: name.into(),
            key: KeyType::Rsa3072,
            common_name: format!("{name}.example"),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            csr_pem: String::new(),
            spki_sha256: "ab".repeat(32),
            created_at: "2025-01-01T00:00:00Z".into(),
            created_by: "admin".into(),
            index: None,
        }
    }

    /// One row per CSR: name, key type, CN, at most two names, creation.
    #[test]
    fn list_table_rows() {
        let text = csr_table(&[
            info("www", &["www.example", "example", "a.example"]),
            info("api", &["api.example"]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(
            lines[1].contains("rsa-3072") && lines[1].contains("www.example,example +1"),
            "{text}"
        );
        assert!(lines[2].contains("2025-01-01T00:00:00Z by admin"), "{text}");
    }

    /// A rotation says what was retired; an import does not.
    #[test]
    fn complete_text_names_the_retired_bundle() {
        let mut r = CsrCompleteResponse {
            outcome: "imported".into(),
            name: "www".into(),
            id: "cd".repeat(32),
            hostnames: vec!["www.example".into()],
            not_after: "2099-01-01T00:00:00Z".into(),
            completeness: "complete".into(),
            retired_as: None,
            warnings: vec![],
            index: Some(7),
        };
        let text = complete_text("www", &r, false);
        assert!(
            text.starts_with("completed csr www: imported www"),
            "{text}"
        );
        assert!(!text.contains("retired"), "{text}");
        r.outcome = "rotated".into();
        r.retired_as = Some("www~abcdef012345".into());
        let text = complete_text("www", &r, true);
        assert!(text.contains("retired as www~abcdef012345"), "{text}");
        assert!(text.contains("default:    yes"), "{text}");
    }
}
