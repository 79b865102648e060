//! `certraft notify …`: webhooks the cluster POSTs signed notices to — certificates nearing
//! expiry, renewals that failed or succeeded — add, list, remove, test.
//!
//! The HMAC secret comes from a file (never argv) or is made by the leader and shown once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certraft::api::dto::{
    Done, NotifyAddRequest, NotifyAddResponse, NotifyList, NotifyTargetInfo, NotifyTestResponse,
};
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::client::{Client, ConnectArgs};
use crate::duration;
use crate::fail::Failure;
use crate::output::Output;
use crate::table::Table;

/// How a receiver checks a notice, said wherever a secret is handed out.
const VERIFY_HOW: &str = "receivers verify each POST by its header `x-certraft-signature: t=<unix>,v1=<hex>`, where hex = HMAC-SHA256 keyed with the secret (as text) over \"<t>.<body>\"; reject a t far from now";

/// The widest expiry threshold (the cluster's own cap).
const MAX_THRESHOLD_SECS: i64 = 400 * 86_400;

/// The largest CA file accepted for a receiver (the cluster's own cap).
const MAX_CA_BYTES: u64 = 64 << 10;

#[derive(Subcommand, Debug)]
pub(crate) enum NotifyCommand {
    /// Add a webhook: the cluster POSTs JSON notices to URL, each signed with HMAC-SHA256.
    ///
    /// Notices: a certificate nearing its not-after (once per threshold of --before), a
    /// renewal that failed or succeeded. Only the leader sends them, retrying until the
    /// receiver answers 2xx (backing off up to 30 s); a notice keeps its `x-certraft-delivery` id on a retry.
    /// The secret is the first line of --secret-file F (never argv); without it the leader
    /// makes one and it is printed this once. Each POST carries
    /// `x-certraft-signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    /// The receiver must be https://, verified against the public roots plus
    /// --receiver-ca-file F (for a receiver with a private CA).
    ///
    /// Examples:
    ///   certraft notify add --name ops --url https://hooks.example.com/certraft
    ///   certraft notify add --name pager --url https://pager.lan/hook --secret-file hook.secret
    ///   certraft notify add --name lab --url https://10.0.0.5/hook --receiver-ca-file lab-ca.pem
    ///   certraft notify add --name chat --url https://chat.example.com/in --before 14d,1d
    #[command(verbatim_doc_comment)]
    Add(AddArgs),

    /// List the webhooks: name, URL, expiry thresholds, notices waiting to be delivered.
    ///
    /// Examples:
    ///   certraft notify list
    ///   certraft notify list --json
    #[command(verbatim_doc_comment)]
    List,

    /// Remove a webhook and the notices still queued for it.
    ///
    /// Examples:
    ///   certraft notify remove ops
    #[command(verbatim_doc_comment)]
    Remove(NameArgs),

    /// Send a signed test notice to a webhook now; prints the receiver's HTTP status and
    /// how long it took. Exits 1, with the reason, when the receiver cannot be reached or
    /// answers anything but 2xx.
    ///
    /// Examples:
    ///   certraft notify test ops
    #[command(verbatim_doc_comment)]
    Test(NameArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct AddArgs {
    /// Name of the webhook: 1–64 letters, digits, '.', '-', '_'.
    #[arg(long, value_name = "N")]
    pub name: String,
    /// The receiver: an https:// URL.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// File whose first line is the HMAC secret (16–1024 bytes); without it the cluster
    /// makes one and prints it once.
    #[arg(long, value_name = "F")]
    pub secret_file: Option<PathBuf>,
    /// CA certificates (PEM) that verify the receiver, besides the public roots. (--ca-file
    /// is the cluster CA this command verifies the admin endpoint with.)
    #[arg(long, value_name = "F")]
    pub receiver_ca_file: Option<PathBuf>,
    /// Expiry thresholds before not-after, comma-separated (default 30d,14d,7d,1d).
    #[arg(long, value_name = "DURATIONS", value_delimiter = ',', value_parser = duration::parse)]
    pub before: Vec<Duration>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct NameArgs {
    /// The webhook's name (see `certraft notify list`).
    #[arg(value_name = "N")]
    pub name: String,
}

pub(crate) fn run(command: &NotifyCommand, connect: &ConnectArgs) -> Result<Output, Failure> {
    match command {
        NotifyCommand::Add(args) => add(args, connect),
        NotifyCommand::List => list(&Client::connect(connect)?),
        NotifyCommand::Remove(args) => remove(args, &Client::connect(connect)?),
        NotifyCommand::Test(args) => test(args, &Client::connect(connect)?),
    }
}

/// A URL the cluster will post to: https only (the server checks the rest).
fn check_url(url: &str) -> Result<(), Failure> {
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    if https && url.len() > 8 {
        return Ok(());
    }
    Err(Failure::usage(
        "usage",
        format!("--url {url:?} is not an https:// URL; notices carry certificate names and are signed, so they go over TLS only"),
    )
    .with_hint("give the receiver's https:// URL, e.g. --url https://hooks.example.com/certraft (a private CA: add --receiver-ca-file F)"))
}

/// Thresholds in seconds; one of zero or over 400 days is a usage error.
fn before_secs(before: &[Duration]) -> Result<Option<Vec<i64>>, Failure> {
    if before.is_empty() {
        return Ok(None);
    }
    before
        .iter()
        .map(|d| match i64::try_from(d.as_secs()) {
            Ok(s) if s > 0 && s <= MAX_THRESHOLD_SECS => Ok(s),
            _ => Err(Failure::usage(
                "usage",
                format!(
                    "--before {}: each threshold must be more than 0s and at most 400d, e.g. --before 30d,14d,7d,1d",
                    duration::format(*d)
                ),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The secret: the first line of the file, trimmed; never empty.
fn read_secret(path: &Path) -> Result<Zeroizing<String>, Failure> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        Failure::refused(
            "secret_file_unreadable",
            format!(
                "cannot read secret file {}: {e}; check the path and its permissions",
                path.display()
            ),
        )
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Failure::refused(
            "secret_file_not_utf8",
            format!(
                "secret file {} is not UTF-8 text; write the secret as one line, e.g. `openssl rand -hex 32 > {}`",
                path.display(),
                path.display()
            ),
        )
    })?;
    let secret = Zeroizing::new(text.lines().next().unwrap_or("").trim().to_string());
    if secret.is_empty() {
        return Err(Failure::refused(
            "secret_file_empty",
            format!(
                "secret file {} has no secret on its first line; e.g. `openssl rand -hex 32 > {}`",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(secret)
}

/// The receiver's CA file, as PEM text.
fn read_ca(path: &Path) -> Result<String, Failure> {
    let cannot = |why: String| {
        Failure::refused(
            "ca_file_unreadable",
            format!(
                "cannot use {} as the receiver's CA: {why}; give the CA certificate(s) that issued the receiver's certificate, PEM",
                path.display()
            ),
        )
    };
    let size = std::fs::metadata(path)
        .map_err(|e| cannot(e.to_string()))?
        .len();
    if size > MAX_CA_BYTES {
        return Err(cannot(format!(
            "{size} bytes, over the {MAX_CA_BYTES} accepted"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| cannot(e.to_string()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(cannot("no PEM certificate in it".to_string()));
    }
    Ok(text)
}

fn add(args: &AddArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    check_url(&args.url)?;
    let before_secs = before_secs(&args.before)?;
    let secret = args.secret_file.as_deref().map(read_secret).transpose()?;
    let ca_pem = args.receiver_ca_file.as_deref().map(read_ca).transpose()?;
    let client = Client::connect(connect)?;
    let request = NotifyAddRequest {
        name: args.name.clone(),
        url: args.url.clone(),
        secret: secret.as_ref().map(|s| s.to_string()),
        ca_pem,
        before_secs: before_secs.clone(),
    };
    let reply = client.post::<_, NotifyAddResponse>(&["notify"], &request)?;
    let r = &reply.body;
    let thresholds = before_secs.as_deref().map_or_else(
        || "30d, 14d, 7d, 1d (the default)".to_string(),
        |b| thresholds_text(b, ", "),
    );
    let mut human = format!("added notify target {} -> {}\n", r.name, args.url);
    let _ = writeln!(human, "  expiry notices: {thresholds} before not-after");
    if let Some(index) = r.index {
        let _ = writeln!(human, "  committed:      log index {index}");
    }
    let mut output = Output::raw(reply.raw.clone());
    match &r.generated_secret {
        Some(generated) => {
            let _ = writeln!(
                human,
                "secret: {generated}\n  (shown only now: the cluster keeps it sealed and cannot show it again; give it to the receiver)"
            );
            let _ = writeln!(human, "  {VERIFY_HOW}");
            output = output.quiet(generated.clone());
        }
        None => {
            output = output.quiet(r.name.clone()).note(format!(
                "signed with the secret from {}; {VERIFY_HOW}",
                args.secret_file
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string())
            ));
        }
    }
    let _ = writeln!(human, "try it: `certraft notify test {}`", r.name);
    Ok(output.human(human))
}

/// `30d, 14d` (or with another separator).
fn thresholds_text(before_secs: &[i64], sep: &str) -> String {
    before_secs
        .iter()
        .map(|s| duration::format(Duration::from_secs(u64::try_from(*s).unwrap_or(0))))
        .collect::<Vec<_>>()
        .join(sep)
}

fn list(client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<NotifyList>(&["notify"])?;
    let targets = &reply.body.targets;
    let human = if targets.is_empty() {
        "no notify targets; add one with `certraft notify add --name N --url https://…`\n"
            .to_string()
    } else {
        notify_table(targets)
    };
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    Ok(Output::raw(reply.raw.clone())
        .human(human)
        .quiet(names.join("\n")))
}

/// The `notify list` table.
fn notify_table(targets: &[NotifyTargetInfo]) -> String {
    let mut table = Table::new(["NAME", "URL", "BEFORE", "PENDING", "OWN CA"]);
    for t in targets {
        table.row([
            t.name.clone(),
            t.url.clone(),
            thresholds_text(&t.before_secs, "/"),
            t.pending.to_string(),
            if t.has_ca { "yes" } else { "no" }.to_string(),
        ]);
    }
    table.render()
}

fn remove(args: &NameArgs, client: &Client) -> Result<Output, Failure> {
    let reply = client.delete::<Done>(&["notify", &args.name], &[])?;
    Ok(Output::done(reply.raw, &reply.body))
}

fn test(args: &NameArgs, client: &Client) -> Result<Output, Failure> {
    let reply = client
        .post::<_, NotifyTestResponse>(&["notify", &args.name, "test"], &serde_json::json!({}))
        .map_err(|f| match f.code.as_str() {
            // The server's generic hint for this code is about bundle files; say what helps.
            "receiver_failed" => f.with_hint(format!(
                "the leader must reach the receiver, verify its certificate (public roots, or the CA given with --receiver-ca-file) and get a 2xx; fix the receiver, or `certraft notify remove {}` and add it again",
                args.name
            )),
            _ => f,
        })?;
    let r = &reply.body;
    Ok(Output::raw(reply.raw.clone())
        .human(format!(
            "notify target {} answered the test notice with HTTP {} in {} ms\n",
            r.name, r.status, r.millis
        ))
        .quiet(r.status.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only https:// URLs (any case) pass; the refusal is a usage error with a hint.
    #[test]
    fn only_https_urls_pass() {
        for ok in ["https://hooks.example/x", "HTTPS://h.example"] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example/x",
            "https://",
            "hooks.example",
            "ftp://x",
            "",
        ] {
            let f = check_url(bad).expect_err(bad);
            assert_eq!(f.exit, crate::fail::Exit::Usage, "{bad}");
            assert!(f.hint.is_some(), "{bad}");
        }
    }

    /// Thresholds become seconds; none means the server's default; zero is refused.
    #[test]
    fn thresholds_become_seconds() {
        assert_eq!(before_secs(&[]).expect("none"), None);
        let days = |d: u64| Duration::from_secs(d * 86_400);
        assert_eq!(
            before_secs(&[days(30), days(1)]).expect("two"),
            Some(vec![30 * 86_400, 86_400])
        );
        assert!(before_secs(&[Duration::ZERO]).is_err());
        assert!(before_secs(&[days(401)]).is_err());
        assert!(before_secs(&[days(400)]).is_ok());
        assert_eq!(thresholds_text(&[30 * 86_400, 86_400], "/"), "30d/1d");
    }

    /// The secret is the file's first line, trimmed; an empty one is refused.
    #[test]
    fn secret_is_the_first_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hook.secret");
        std::fs::write(&path, "  0123456789abcdef0123  \nsecond line\n").expect("write");
        assert_eq!(
            read_secret(&path).expect("secret").as_str(),
            "0123456789abcdef0123"
        );
        std::fs::write(&path, "\n\n").expect("write");
        assert_eq!(
            read_secret(&path).expect_err("empty").code,
            "secret_file_empty"
        );
    }

    /// One row per target, thresholds written short.
    #[test]
    fn list_table_rows() {
        let text = notify_table(&[NotifyTargetInfo {
            name: "ops".into(),
            url: "https://hooks.example/certraft".into(),
            before_secs: vec![30 * 86_400, 14 * 86_400, 7 * 86_400, 86_400],
            has_ca: true,
            pending: 2,
            created_at: "2025-01-01T00:00:00Z".into(),
            created_by: "admin".into(),
        }]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].contains("30d/14d/7d/1d"), "{text}");
        assert!(
            lines[1].contains("https://hooks.example/certraft"),
            "{text}"
        );
    }
}
