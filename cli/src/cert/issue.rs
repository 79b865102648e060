//! `certraft cert issue` and the renewal block of `cert show` (issue 14): a certificate
//! whose key is born in the cluster, issued by the local issuer and renewed by the leader.

use std::fmt::Write as _;
use std::time::Duration;

use certraft::api::dto::{
    ImportResponse, IssueRequest, RenewalInfo, DEFAULT_ISSUE_LIFETIME_SECS,
    MAX_ISSUE_LIFETIME_SECS, MIN_ISSUE_LIFETIME_SECS,
};
use certraft::bundle::assemble::fmt_time;
use certraft::inventory::{ChallengeKind, KeyType, DEFAULT_RENEW_AT_PERMILLE};

use super::{date_part, list_or_none, relative, unix_now};
use crate::client::{Client, ConnectArgs};
use crate::fail::Failure;
use crate::output::Output;
use crate::{csr, duration};

#[derive(clap::Args, Debug)]
pub(crate) struct IssueArgs {
    /// Name of the certificate in the inventory: 1–64 letters, digits, '.', '-', '_'.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A DNS name the certificate is for; repeat it, or separate names with commas.
    #[arg(
        long = "san",
        value_name = "DNS",
        required = true,
        value_delimiter = ','
    )]
    pub sans: Vec<String>,
    /// The issuer: `local`, the cluster's own CA (the default), or an ACME issuer added
    /// with `certraft issuer acme add NAME`. From ACME, only the leader talks to the CA and
    /// every node answers the challenge; the CA decides the lifetime.
    #[arg(long, value_name = "ISSUER")]
    pub issuer: Option<String>,
    /// ACME only: how the CA checks the names: http-01 (default; every node's --http port)
    /// or tls-alpn-01 (every node's serve port).
    #[arg(long, value_name = "TYPE", value_parser = parse_challenge)]
    pub challenge: Option<ChallengeKind>,
    /// ACME only: `local` serves a certificate from the cluster's own CA at once whenever
    /// ACME fails or the CA is unreachable, until the ACME certificate arrives.
    #[arg(long, value_name = "ISSUER")]
    pub fallback: Option<String>,
    /// ACME only: return once the certificate is asked for, without waiting for the CA.
    #[arg(long)]
    pub no_wait: bool,
    /// ACME only: how long to wait for the certificate (default 5m).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "5m")]
    pub wait: Duration,
    /// Lifetime in days (default 90; 1 to 398).
    #[arg(long, value_name = "D", conflicts_with = "lifetime",
          value_parser = clap::value_parser!(u32).range(1..=398))]
    pub days: Option<u32>,
    /// Lifetime as a duration: 10m, 12h, 30d (at least 60s, at most 398d).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub lifetime: Option<Duration>,
    /// The key to generate: ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519.
    #[arg(long, value_name = "TYPE", default_value = "ec-p256", value_parser = csr::parse_key_type)]
    pub key: KeyType,
    /// Renew when this percentage of the lifetime has passed (10 to 95; default about 67).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u16).range(10..=95))]
    pub renew_at: Option<u16>,
    /// Also make it the cluster-wide default certificate.
    #[arg(long)]
    pub default: bool,
}

/// The lifetime asked for, in seconds (`None`: the cluster's default, 90 days).
fn issue_lifetime(args: &IssueArgs) -> Result<Option<i64>, Failure> {
    let secs = match (args.days, args.lifetime) {
        (Some(days), _) => i64::from(days) * 86_400,
        (None, Some(d)) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        (None, None) => return Ok(None),
    };
    if !(MIN_ISSUE_LIFETIME_SECS..=MAX_ISSUE_LIFETIME_SECS).contains(&secs) {
        return Err(Failure::usage(
            "usage",
            format!(
                "a lifetime of {} is outside 60s to 398d; pass --days 1..398, or --lifetime 10m for a short-lived test",
                duration::format(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
            ),
        ));
    }
    Ok(Some(secs))
}

/// "at about two thirds of its lifetime", or the percentage asked for.
fn renews_at_text(percent: Option<u16>) -> String {
    match percent {
        None | Some(66 | 67) => "at about two thirds of its lifetime".to_string(),
        Some(50) => "at about half of its lifetime".to_string(),
        Some(p) => format!("at about {p}% of its lifetime"),
    }
}

pub(super) fn issue(args: &IssueArgs, connect: &ConnectArgs) -> Result<Output, Failure> {
    let sans = csr::sans(&args.sans);
    if sans.is_empty() {
        return Err(Failure::usage(
            "usage",
            "--san is empty; name at least one DNS name, e.g. --san www.example.com",
        ));
    }
    let lifetime_secs = issue_lifetime(args)?;
    let client = Client::connect(connect)?;
    if args.issuer.as_deref().is_some_and(|i| i != "local") {
        return super::acme::issue(args, &client, sans);
    }
    let request = IssueRequest {
        name: args.name.clone(),
        sans,
        issuer: args.issuer.clone(),
        key: args.key,
        lifetime_secs,
        renew_at_permille: args.renew_at.map(|p| p * 10),
        make_default: args.default,
        challenge: args.challenge,
        fallback: args.fallback.clone(),
    };
    let reply = client.post::<_, ImportResponse>(&["issue"], &request)?;
    let r = &reply.body;
    let issuer = args.issuer.as_deref().unwrap_or("local");
    let mut human = format!(
        "issued {} (id {}) from issuer {issuer}, {} key\n",
        r.name, r.id, args.key
    );
    let _ = writeln!(human, "  hostnames:  {}", list_or_none(&r.hostnames));
    let _ = writeln!(human, "  not after:  {}", r.not_after);
    let _ = writeln!(human, "  chain:      {}", r.completeness);
    if args.default {
        let _ = writeln!(human, "  default:    yes (cluster-wide)");
    }
    if let Some(index) = r.index {
        let _ = writeln!(human, "  committed:  log index {index}");
    }
    let lifetime = lifetime_secs.unwrap_or(DEFAULT_ISSUE_LIFETIME_SECS);
    let permille = request
        .renew_at_permille
        .unwrap_or(DEFAULT_RENEW_AT_PERMILLE);
    let around =
        fmt_time(unix_now().saturating_add(lifetime.saturating_mul(i64::from(permille)) / 1000));
    // A short-lived certificate renews within the day: show the time, else the date.
    let around = if lifetime < 2 * 86_400 {
        around.as_str()
    } else {
        date_part(&around)
    };
    let _ = writeln!(
        human,
        "renews automatically {} (around {around}); see `certraft cert show {}`",
        renews_at_text(args.renew_at),
        r.name
    );
    Ok(Output::raw(reply.raw.clone())
        .human(human)
        .quiet(r.id.clone())
        .warnings(r.warnings.clone()))
}

pub(crate) fn parse_challenge(text: &str) -> Result<ChallengeKind, String> {
    ChallengeKind::parse(text)
        .ok_or_else(|| format!("unknown challenge {text:?}; use http-01 or tls-alpn-01"))
}

/// `cert show`'s block for a certificate the cluster issued and renews.
pub(super) fn renewal_text(r: &RenewalInfo, now: i64) -> String {
    let mut out = String::new();
    let lifetime = duration::format(Duration::from_secs(
        u64::try_from(r.lifetime_secs).unwrap_or(0),
    ));
    let share = format!("{}.{}%", r.renew_at_permille / 10, r.renew_at_permille % 10);
    let share = share
        .strip_suffix(".0%")
        .map_or(share.clone(), |s| format!("{s}%"));
    let _ = writeln!(out, "renewal:");
    let _ = writeln!(out, "  issuer:        {}", r.issuer);
    let _ = writeln!(out, "  key:           {}", r.key);
    let _ = writeln!(out, "  lifetime:      {lifetime}, renewed at {share} of it");
    let next = if r.next_attempt_unix <= now {
        "due now".to_string()
    } else {
        relative(r.next_attempt_unix, now)
    };
    let _ = writeln!(out, "  next attempt:  {} ({next})", r.next_attempt);
    match (&r.last_attempt, &r.last_result) {
        (Some(at), Some(result)) => {
            let _ = writeln!(out, "  last attempt:  {at}: {result}");
        }
        (Some(at), None) => {
            let _ = writeln!(out, "  last attempt:  {at}");
        }
        (None, _) => {
            let _ = writeln!(out, "  last attempt:  none yet");
        }
    }
    let _ = writeln!(out, "  failures:      {} in a row", r.consecutive_failures);
    let _ = writeln!(out, "  renewals:      {}", r.renewals);
    if let Some(a) = &r.acme {
        let _ = writeln!(out, "  acme:          {} by {}", a.state, a.challenge);
        if let Some(url) = &a.order_url {
            let _ = writeln!(out, "  order:         {url}");
        }
        if let Some(f) = &a.fallback {
            let _ = writeln!(out, "  fallback:      {f}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RenewalInfo {
        RenewalInfo {
            issuer: "local".into(),
            key: KeyType::Rsa2048,
            lifetime_secs: 90 * 86_400,
            renew_at_permille: 667,
            next_attempt: "2025-03-01T00:00:00Z".into(),
            next_attempt_unix: 1_000_000 + 3 * 3600,
            last_attempt: None,
            last_result: None,
            consecutive_failures: 0,
            renewals: 0,
            acme: None,
        }
    }

    /// The block says who renews it, when next (or that it is due), and how the last
    /// attempt went; the share is a percentage with one decimal only when needed.
    #[test]
    fn renewal_block_shows_next_and_last_attempts() {
        let now = 1_000_000;
        let text = renewal_text(&info(), now);
        for needle in [
            "renewal:\n",
            "  issuer:        local\n",
            "  key:           rsa-2048\n",
            "  lifetime:      90d, renewed at 66.7% of it\n",
            "  next attempt:  2025-03-01T00:00:00Z (in 3h)\n",
            "  last attempt:  none yet\n",
            "  failures:      0 in a row\n",
            "  renewals:      0\n",
        ] {
            assert!(text.contains(needle), "{needle:?}: {text}");
        }
        let failing = RenewalInfo {
            renew_at_permille: 500,
            next_attempt_unix: now - 10,
            last_attempt: Some("2025-02-28T00:00:00Z".into()),
            last_result: Some("the issuer key is unusable".into()),
            consecutive_failures: 2,
            renewals: 3,
            ..info()
        };
        let text = renewal_text(&failing, now);
        for needle in [
            "renewed at 50% of it",
            "(due now)",
            "last attempt:  2025-02-28T00:00:00Z: the issuer key is unusable",
            "failures:      2 in a row",
            "renewals:      3",
        ] {
            assert!(text.contains(needle), "{needle:?}: {text}");
        }
    }

    /// The renewal share in words, and the lifetime flags in seconds (out of range: usage).
    #[test]
    fn issue_lifetime_and_share() {
        assert_eq!(renews_at_text(None), "at about two thirds of its lifetime");
        assert_eq!(
            renews_at_text(Some(66)),
            "at about two thirds of its lifetime"
        );
        assert_eq!(renews_at_text(Some(80)), "at about 80% of its lifetime");
        let args = |days: Option<u32>, lifetime: Option<u64>| IssueArgs {
            name: "x".into(),
            sans: vec!["x.test".into()],
            issuer: None,
            days,
            lifetime: lifetime.map(Duration::from_secs),
            key: KeyType::EcP256,
            renew_at: None,
            default: false,
            challenge: None,
            fallback: None,
            no_wait: false,
            wait: Duration::from_secs(300),
        };
        assert_eq!(issue_lifetime(&args(None, None)).expect("default"), None);
        assert_eq!(
            issue_lifetime(&args(Some(30), None)).expect("days"),
            Some(30 * 86_400)
        );
        assert_eq!(
            issue_lifetime(&args(None, Some(600))).expect("10m"),
            Some(600)
        );
        for secs in [59, 399 * 86_400] {
            let f = issue_lifetime(&args(None, Some(secs))).expect_err("out of range");
            assert_eq!(f.exit, crate::fail::Exit::Usage, "{secs}");
        }
    }
}
