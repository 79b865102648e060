//! `certraft cert show NAME`: one certificate's details, chain, warnings, and every use of
//! it (hostnames served now, the default role, the console certificate).

use std::fmt::Write as _;

use certraft::api::dto::{CertDetail, CertUse};

use super::issue::renewal_text;
use super::{list_or_none, relative, unix_now, ShowArgs};
use crate::client::Client;
use crate::fail::Failure;
use crate::output::Output;

pub(super) fn show(args: &ShowArgs, client: &Client) -> Result<Output, Failure> {
    let reply = client.get::<CertDetail>(&["certs", &args.name])?;
    let human = detail_text(&reply.body, unix_now());
    Ok(Output::raw(reply.raw)
        .human(human)
        .quiet(reply.body.summary.id))
}

/// The `cert show` text.
fn detail_text(d: &CertDetail, now: i64) -> String {
    let s = &d.summary;
    let mut out = String::new();
    let status = if s.is_default {
        format!("{} (cluster-wide default)", s.status)
    } else {
        s.status.clone()
    };
    let _ = writeln!(out, "name:          {}", s.name);
    let _ = writeln!(out, "id:            {}", s.id);
    let _ = writeln!(out, "status:        {status}");
    let _ = writeln!(out, "hostnames:     {}", list_or_none(&s.hostnames));
    let _ = writeln!(out, "serving now:   {}", list_or_none(&d.serving));
    let _ = writeln!(out, "subject:       {}", s.subject);
    let _ = writeln!(out, "issuer:        {}", s.issuer);
    let _ = writeln!(out, "not before:    {}", s.not_before);
    let _ = writeln!(
        out,
        "not after:     {} ({})",
        s.not_after,
        relative(s.not_after_unix, now)
    );
    let _ = writeln!(out, "key:           {}", s.key);
    let _ = writeln!(out, "completeness:  {}", s.completeness);
    let _ = writeln!(out, "imported:      {} by {}", s.imported_at, s.imported_by);
    let _ = writeln!(out, "chain:");
    for (i, c) in d.chain.iter().enumerate() {
        let _ = writeln!(out, "  {i}. {}", c.subject);
        let _ = writeln!(out, "     issuer:    {}", c.issuer);
        let _ = writeln!(out, "     not after: {}", c.not_after);
        let _ = writeln!(out, "     sha256:    {}", c.sha256);
    }
    if !d.warnings.is_empty() {
        let _ = writeln!(out, "warnings:");
        for w in &d.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out.push_str(&uses_text(&d.uses));
    if let Some(r) = &d.renewal {
        out.push_str(&renewal_text(r, now));
    }
    out
}

/// The "used by" section: every use of the certificate, as the server describes it.
fn uses_text(uses: &[CertUse]) -> String {
    let mut out = String::from(
        "used by:
",
    );
    if uses.is_empty() {
        out.push_str("  nothing: not served now, not the default, not the console certificate\n");
    }
    for u in uses {
        let _ = writeln!(out, "  - {}", u.description);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each use is one line as the server wrote it; none says so.
    #[test]
    fn used_by_lists_each_use_or_says_nothing() {
        let none = uses_text(&[]);
        assert!(none.contains("used by:\n  nothing"), "{none}");
        let two = uses_text(&[
            CertUse {
                kind: "default".into(),
                hostnames: vec![],
                description: "serve port: the cluster-wide default".into(),
            },
            CertUse {
                kind: "console".into(),
                hostnames: vec!["console.example.test".into()],
                description: "admin port: the console certificate for console.example.test".into(),
            },
        ]);
        assert_eq!(
            two,
            "used by:\n  - serve port: the cluster-wide default\n  - admin port: the console certificate for console.example.test\n"
        );
    }
}
