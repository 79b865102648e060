//! The console's pages (maud: markup checked and escaped at compile time).

use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::Signed;
use crate::api::dto::ClusterStatus;
use crate::inventory::{BundleStatus, Inventory};

/// Certificates expiring within this many days are listed on the overview.
const SOON_DAYS: i64 = 30;
/// Rows of that list on the overview (the rest are a link away).
const SOON_SHOWN: usize = 20;
/// Audit events on the overview.
const RECENT_AUDIT: usize = 10;

pub(super) struct Page(Markup);

/// The main menu: every page a signed-in operator can open.
const NAV: &[(&str, &str)] = &[
    ("/ui", "Overview"),
    ("/ui/certs", "Certificates"),
    ("/ui/import", "Import"),
    ("/ui/csrs", "CSRs"),
    ("/ui/issuers", "Issuers"),
    ("/ui/nodes", "Nodes"),
    ("/ui/audit", "Audit"),
    ("/ui/backup", "Backup"),
];

/// The outcome shown at the top of a page after an action.
pub(super) enum Alert {
    /// It was done (a fixed sentence).
    Done(&'static str),
    /// The cluster refused it: the refusal's message and hint.
    Refused {
        message: String,
        hint: Option<String>,
    },
}

impl Alert {
    pub(super) fn markup(&self) -> Markup {
        match self {
            Alert::Done(text) => html! { p.done role="status" { (text) } },
            Alert::Refused { message, hint } => html! {
                div.error role="alert" {
                    p { strong { "Refused: " } (message) }
                    @if let Some(h) = hint { p.hint { (h) } }
                }
            },
        }
    }
}

/// A file for the browser to save as `file_name` (only `[A-Za-z0-9._~-]` kept: inventory
/// names are that, plus `*`, which becomes `_`).
pub(super) fn download(
    data: impl Into<axum::body::Body>,
    mime: &'static str,
    file_name: &str,
) -> Response {
    let safe: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut resp = Response::new(data.into());
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(mime),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// `?k=v&…` with each value percent-encoded (empty for no pairs).
pub(super) fn query_string(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The class that colours a certificate's expiry: expired, within 14 days, within 30.
pub(super) fn expiry_class(days_left: i64) -> &'static str {
    if days_left < 0 {
        "bad"
    } else if days_left < 14 {
        "warn"
    } else if days_left < 30 {
        "soon"
    } else {
        ""
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        Html(self.0.into_string()).into_response()
    }
}

pub(super) fn layout(title: &str, signed: Option<&Signed>, body: Markup) -> Page {
    Page(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · certraft" }
                link rel="stylesheet" href="/ui/static/app.css";
            }
            body {
                header.top {
                    a.brand href="/ui" { "certraft" }
                    @if let Some(s) = signed {
                        nav aria-label="Main" {
                            @for (href, label) in NAV {
                                @if *label == title { a href=(href) aria-current="page" { (label) } }
                                @else { a href=(href) { (label) } }
                            }
                        }
                        form.signout method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf" value=(s.csrf());
                            span.who { "Signed in as " (s.actor) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    })
}

pub(super) fn sign_in(error: Option<&str>) -> Page {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form.signin method="post" action="/ui/sign-in" {
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.hint { "The first node wrote its admin token to DATA/admin.token; `certraft-node admin-token` makes more." }
        },
    )
}

pub(super) fn message(title: &str, text: &str) -> Page {
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            p.error role="alert" { (text) }
            p { a href="/ui" { "Back to the console" } }
        },
    )
}

/// A failure page: what went wrong and what to do next.
pub(super) fn failure(title: &str, message: &str, hint: Option<&str>) -> Page {
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            div.error role="alert" {
                p { (message) }
                @if let Some(h) = hint { p.hint { (h) } }
            }
            p { a href="/ui" { "Back to the console" } }
        },
    )
}

pub(super) fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now).div_euclid(86_400)
}

pub(super) fn overview(s: &Signed, status: &ClusterStatus, inv: &Inventory, now: i64) -> Page {
    let mut soon: Vec<_> = inv
        .bundles
        .iter()
        .map(|(_, b)| b)
        .filter(|b| b.status == BundleStatus::Active)
        .filter(|b| b.meta.not_after - now < SOON_DAYS * 86_400)
        .collect();
    soon.sort_by_key(|b| b.meta.not_after);
    let expired = soon.iter().filter(|b| b.meta.not_after < now).count();
    let more = soon.len().saturating_sub(SOON_SHOWN);
    soon.truncate(SOON_SHOWN);
    let leader = status.leader;
    layout(
        "Overview",
        Some(s),
        html! {
            h1 { "Overview" }
            section aria-labelledby="cluster-h" {
                h2 #cluster-h { "Cluster" }
                p {
                    "Cluster " code { (status.cluster_id) } ", term " (status.term)
                    ", answered by node " (status.node_id) ". "
                    @match leader {
                        Some(l) => { "Leader: node " (l) "." }
                        None => { strong.bad { "No leader right now." } }
                    }
                }
                table {
                    thead { tr { th scope="col" { "Node" } th scope="col" { "Role" } th scope="col" { "Admin address" } th scope="col" { "Replicated up to" } th scope="col" { "Behind" } th scope="col" { "Health" } } }
                    tbody {
                        @for m in &status.members {
                            tr {
                                td { (m.id) }
                                td { (m.role) @if m.role == "voter" && !m.voting { " (not voting yet)" } }
                                td { code { (m.admin_addr) } }
                                td { @match m.matched { Some(i) => { (i) } None => { "—" } } }
                                td { @match (m.matched, status.last_log_index) {
                                    (Some(i), Some(last)) => { (last.saturating_sub(i)) " entries" }
                                    _ => { "—" }
                                } }
                                td class=(health_class(&m.health)) { (m.health) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="expiry-h" {
                h2 #expiry-h { "Expired or expiring within " (SOON_DAYS) " days" }
                @if soon.is_empty() {
                    p.good { "Nothing expires within " (SOON_DAYS) " days." }
                } @else {
                    p { strong.bad { (expired) " expired" } ", " (soon.len() + more - expired) " expiring soon." }
                    table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Hostnames" } th scope="col" { "Not after" } th scope="col" { "Days left" } } }
                        tbody {
                            @for b in &soon {
                                @let left = days_left(b.meta.not_after, now);
                                tr {
                                    td { a href={ "/ui/certs/" (b.name) } { (b.name) } }
                                    td { (b.meta.hostnames.join(", ")) }
                                    td { (crate::bundle::assemble::fmt_time(b.meta.not_after)) }
                                    td class=(expiry_class(left)) {
                                        @if left < 0 { "expired" } @else { (left) }
                                    }
                                }
                            }
                        }
                    }
                    @if more > 0 {
                        p { a href="/ui/certs?show=expiring&sort=expiry" { "and " (more) " more: all expiring certificates" } }
                    }
                }
            }
            section aria-labelledby="default-h" {
                h2 #default-h { "Default certificate" }
                @match &inv.default {
                    Some(d) => p { code { (d) } " answers clients that send no SNI or an unknown name." },
                    None => p.warn { "No default certificate: clients without a known SNI get no certificate." },
                }
            }
            section aria-labelledby="console-h" {
                h2 #console-h { "Console certificate" }
                @match &inv.console {
                    Some(c) => p { "This admin port presents " a href={ "/ui/certs/" (c.name) } { (c.name) } " to browsers that ask for " (c.hostnames.join(", ")) "; the CLI and the nodes get the node certificate. Undo on its page or with " code { "certraft console reset" } "." },
                    None => p { "The admin port presents the node certificate (cluster CA) to every client. Choose a trusted one on a certificate's page, or with " code { "certraft console cert NAME --hostname H" } "." },
                }
            }
            section aria-labelledby="audit-h" {
                h2 #audit-h { "Latest changes" }
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Result" } } }
                    tbody {
                        @for a in inv.audit.iter().rev().take(RECENT_AUDIT) {
                            tr {
                                td { (crate::bundle::assemble::fmt_time(a.at)) }
                                td { (a.actor) }
                                td { (a.what) }
                                td class=(if a.refused { "bad" } else { "" }) { (a.result) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn health_class(health: &str) -> &'static str {
    match health {
        "leader" | "ok" => "good",
        "lagging" | "unknown" => "warn",
        _ => "bad",
    }
}
