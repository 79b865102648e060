//! `certraft cert issue NAME --issuer ACME`: asks the cluster for a certificate from an
//! ACME issuer, then (unless `--no-wait`) follows the leader's ACME duty until the
//! certificate is served, printing each change of state on stderr.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use certraft::api::dto::{AcmeState, IssueRequest};

use super::issue::IssueArgs;
use super::list_or_none;
use crate::client::Client;
use crate::fail::Failure;
use crate::output::Output;

/// How often the state is asked for while waiting.
const POLL: Duration = Duration::from_millis(500);

pub(super) fn issue(
    args: &IssueArgs,
    client: &Client,
    sans: Vec<String>,
) -> Result<Output, Failure> {
    if args.days.is_some() || args.lifetime.is_some() {
        return Err(Failure::usage(
            "usage",
            "the CA decides an ACME certificate's lifetime; --days and --lifetime are for --issuer local",
        ));
    }
    let request = IssueRequest {
        name: args.name.clone(),
        sans,
        issuer: args.issuer.clone(),
        key: args.key,
        lifetime_secs: None,
        renew_at_permille: args.renew_at.map(|p| p * 10),
        make_default: args.default,
        challenge: args.challenge,
        fallback: args.fallback.clone(),
    };
    let reply = client.post::<_, AcmeState>(&["issue"], &request)?;
    let mut state = reply.body;
    let mut raw = reply.raw;
    if !args.no_wait {
        let deadline = Instant::now() + args.wait;
        let mut last = String::new();
        loop {
            let line = progress(&state);
            if line != last {
                eprintln!("{line}");
                last = line;
            }
            if state.state == "issued" {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Failure::refused(
                    "acme_pending",
                    format!(
                        "{} is not issued after {}s: {}",
                        state.name,
                        args.wait.as_secs(),
                        progress(&state)
                    ),
                )
                .with_hint(format!(
                    "the cluster keeps trying; follow it with `certraft cert show {}`",
                    state.name
                )));
            }
            std::thread::sleep(POLL);
            let reply = client.get::<AcmeState>(&["acme", &state.name])?;
            state = reply.body;
            raw = reply.raw;
        }
    }
    Ok(Output::raw(raw)
        .human(text(&state))
        .quiet(state.name.clone()))
}

/// One line for a state, as the wait prints it.
fn progress(s: &AcmeState) -> String {
    let mut line = format!("{}: {}", s.name, s.state);
    if let Some(url) = &s.order_url {
        let _ = write!(line, " (order {url})");
    }
    if let Some(e) = &s.last_error {
        let _ = write!(
            line,
            "; last error: {e}; attempt {} failed, next at {}",
            s.consecutive_failures,
            s.next_attempt.as_deref().unwrap_or("?")
        );
    }
    line
}

/// The summary after `cert issue --issuer ACME`.
fn text(s: &AcmeState) -> String {
    let mut out = String::new();
    let verb = if s.state == "issued" {
        "issued"
    } else {
        "asked for"
    };
    let _ = writeln!(
        out,
        "{verb} {} from ACME issuer {}, {} key, by {}",
        s.name, s.issuer, s.key, s.challenge
    );
    let _ = writeln!(out, "  hostnames:  {}", list_or_none(&s.sans));
    let _ = writeln!(out, "  state:      {}", s.state);
    if let Some(id) = &s.id {
        let _ = writeln!(out, "  id:         {id}");
    }
    if let Some(f) = &s.fallback {
        let _ = writeln!(out, "  fallback:   {f} (served while ACME fails)");
    }
    let _ = writeln!(
        out,
        "renews automatically at about two thirds of its lifetime; see `certraft cert show {}`",
        s.name
    );
    out
}
