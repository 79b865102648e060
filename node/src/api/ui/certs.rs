//! The console's certificate pages: the table (filtered, sorted and paged on the server, so
//! neither its time nor its weight grows with the inventory), the detail page, and the
//! one-click actions (make default, remove). Import, rotation and export are in
//! [`super::transfer`].

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{days_left, expiry_class, layout, query_string, Alert, Page};
use super::{error_page, posted, session, CsrfForm, Signed};
use crate::api::dto::{CertDetail, CertSummary, SetConsoleRequest, SetDefault};
use crate::api::server::{Actor, S};
use crate::clock::unix_now as now;
use crate::inventory::Inventory;

/// Rows per page of the certificates table.
pub(super) const PAGE_ROWS: usize = 50;

pub(super) fn routes() -> Router<S> {
    Router::new()
        .route("/certs", get(list))
        .route("/certs/{name}", get(detail))
        .route("/certs/{name}/default", post(make_default))
        .route("/certs/{name}/remove", post(remove))
        .route("/certs/{name}/console", post(use_for_console))
        .route("/console/reset", post(console_reset))
}

/// The table's query: what to show, in which order, which page.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct ListQuery {
    /// Matched (case-insensitive) against name, hostnames, subject and issuer.
    #[serde(default)]
    pub(super) q: String,
    /// `all` (default), `active`, `expiring` (within 30 days), `expired` or `retired`.
    #[serde(default)]
    pub(super) show: String,
    /// `name` (default), `expiry`, `issuer` or `status`.
    #[serde(default)]
    pub(super) sort: String,
    #[serde(default)]
    pub(super) desc: bool,
    #[serde(default)]
    pub(super) page: usize,
}

impl ListQuery {
    fn link(&self, change: impl FnOnce(&mut ListQuery)) -> String {
        let mut q = self.clone();
        change(&mut q);
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !q.q.is_empty() {
            pairs.push(("q", q.q.clone()));
        }
        if !q.show.is_empty() && q.show != "all" {
            pairs.push(("show", q.show.clone()));
        }
        if !q.sort.is_empty() && q.sort != "name" {
            pairs.push(("sort", q.sort.clone()));
        }
        if q.desc {
            pairs.push(("desc", "true".into()));
        }
        if q.page > 1 {
            pairs.push(("page", q.page.to_string()));
        }
        format!("/ui/certs{}", query_string(&pairs))
    }
}

/// One page of the table: the rows shown and how many matched in all.
pub(super) struct Listing {
    pub(super) rows: Vec<CertSummary>,
    pub(super) matched: usize,
    pub(super) page: usize,
    pub(super) pages: usize,
}

/// Filters, sorts and pages the inventory. Only the page's rows are summarised.
pub(super) fn listing(inv: &Inventory, q: &ListQuery, now: i64) -> Listing {
    let needle = q.q.trim().to_ascii_lowercase();
    let status = |b: &crate::inventory::StoredBundle| crate::api::certs::status_of(b, now);
    let mut hits: Vec<_> = inv
        .bundles
        .values()
        .filter(|b| match q.show.as_str() {
            "active" => status(b) == "active",
            "expired" => status(b) == "expired",
            "retired" => status(b) == "retired",
            "expiring" => {
                matches!(status(b), "active" | "expired") && days_left(b.meta.not_after, now) < 30
            }
            _ => true,
        })
        .filter(|b| {
            needle.is_empty()
                || contains_ci(&b.name, &needle)
                || contains_ci(&b.meta.subject, &needle)
                || contains_ci(&b.meta.issuer, &needle)
                || b.meta.hostnames.iter().any(|h| contains_ci(h, &needle))
        })
        .collect();
    match q.sort.as_str() {
        "expiry" => hits.sort_by_key(|b| b.meta.not_after),
        "issuer" => hits.sort_by(|a, b| a.meta.issuer.cmp(&b.meta.issuer)),
        "status" => hits.sort_by(|a, b| status(a).cmp(status(b))),
        // The map is ordered by name already.
        _ => {}
    }
    if q.desc {
        hits.reverse();
    }
    let matched = hits.len();
    let pages = matched.div_ceil(PAGE_ROWS).max(1);
    let page = q.page.clamp(1, pages);
    let rows = hits
        .into_iter()
        .skip((page - 1) * PAGE_ROWS)
        .take(PAGE_ROWS)
        .map(|b| crate::api::certs::summary(inv, b, now))
        .collect();
    Listing {
        rows,
        matched,
        page,
        pages,
    }
}

/// Whether `hay` contains `needle`, ASCII letters matched without regard to case (no
/// allocation: the table filters every bundle on each request).
fn contains_ci(hay: &str, needle: &str) -> bool {
    needle.is_empty()
        || hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

async fn list(
    State(st): State<S>,
    headers: axum::http::HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let inv = st.sm.inventory();
    let l = listing(&inv, &q, now());
    list_page(&s, &q, &l).into_response()
}

fn sort_link(q: &ListQuery, key: &str, label: &str) -> Markup {
    let current = q.sort.as_str() == key || (q.sort.is_empty() && key == "name");
    let desc = current && !q.desc;
    let href = q.link(|n| {
        n.sort = key.to_string();
        n.desc = desc;
        n.page = 1;
    });
    let sort = match (current, q.desc) {
        (false, _) => "none",
        (true, false) => "ascending",
        (true, true) => "descending",
    };
    html! {
        th scope="col" aria-sort=(sort) {
            a href=(href) { (label) @if current { @if q.desc { " ▼" } @else { " ▲" } } }
        }
    }
}

fn list_page(s: &Signed, q: &ListQuery, l: &Listing) -> Page {
    let now = now();
    layout(
        "Certificates",
        Some(s),
        html! {
            h1 { "Certificates" }
            form.filter method="get" action="/ui/certs" role="search" {
                label for="q" { "Filter" }
                input #q type="search" name="q" value=(q.q) placeholder="name, hostname or issuer";
                label for="show" { "Show" }
                select #show name="show" {
                    @for (v, label) in [("all", "all"), ("active", "active"), ("expiring", "expired or expiring within 30 days"), ("expired", "expired"), ("retired", "retired")] {
                        option value=(v) selected[q.show == v || (q.show.is_empty() && v == "all")] { (label) }
                    }
                }
                @if !q.sort.is_empty() { input type="hidden" name="sort" value=(q.sort); }
                @if q.desc { input type="hidden" name="desc" value="true"; }
                button type="submit" { "Apply" }
                a.button.secondary href="/ui/import" { "Import…" }
            }
            p.hint { (l.matched) " certificate(s) match; page " (l.page) " of " (l.pages) "." }
            section {
                table.certs {
                    thead { tr {
                        (sort_link(q, "name", "Name"))
                        th scope="col" { "Hostnames" }
                        (sort_link(q, "issuer", "Issuer"))
                        (sort_link(q, "expiry", "Not after"))
                        (sort_link(q, "status", "Status"))
                    } }
                    tbody {
                        @for c in &l.rows {
                            @let left = days_left(c.not_after_unix, now);
                            tr {
                                td { a href={ "/ui/certs/" (c.name) } { (c.name) } @if c.is_default { " " span.badge title="the default certificate" { "default" } } }
                                td { (hostnames_text(&c.hostnames)) }
                                td { (c.issuer) }
                                td class=(expiry_class(left)) { (c.not_after) br; small { @if left < 0 { "expired " (-left) " days ago" } @else { (left) " days left" } } }
                                td { (c.status) }
                            }
                        }
                    }
                }
                @if l.rows.is_empty() { p { "Nothing matches." } }
            }
            nav.pager aria-label="Pages" {
                @if l.page > 1 { a href=(q.link(|n| n.page = l.page - 1)) rel="prev" { "← Previous" } }
                @if l.page < l.pages { a href=(q.link(|n| n.page = l.page + 1)) rel="next" { "Next →" } }
            }
        },
    )
}

/// Hostnames for a table cell: the first few and how many more.
fn hostnames_text(h: &[String]) -> String {
    const SHOWN: usize = 3;
    if h.len() <= SHOWN {
        h.join(", ")
    } else {
        format!("{} and {} more", h[..SHOWN].join(", "), h.len() - SHOWN)
    }
}

#[derive(Deserialize)]
struct DetailQuery {
    #[serde(default)]
    done: String,
}

/// What a finished action says on the page it lands on (a fixed set: the query names one,
/// never carries text).
fn done_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "imported" => "Imported.",
        "issued" => "Issued by the cluster's own CA; it renews itself before it expires.",
        "rotated" => {
            "Rotated: this bundle now serves what the old one did; the old one is kept, retired."
        }
        "default" => "This is now the default certificate.",
        "console" => "The admin port now presents this certificate to browsers asking for its console hostnames.",
        "console-reset" => "The console is back on the node certificate (cluster CA) for every client.",
        "present" => {
            "This very bundle was already in the inventory under this name; nothing changed."
        }
        _ => return None,
    })
}

async fn detail(
    State(st): State<S>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let alert = done_text(&q.done).map(Alert::Done);
    detail_response(&st, &s, &name, alert).await
}

async fn detail_response(st: &S, s: &Signed, name: &str, alert: Option<Alert>) -> Response {
    match crate::api::certs::show_cert(State(st.clone()), Path(name.to_string())).await {
        Ok(Json(d)) => detail_page(s, &d, alert).into_response(),
        Err(e) => error_page(e),
    }
}

fn role(i: usize, subject: &str, issuer: &str) -> &'static str {
    if i == 0 {
        "leaf"
    } else if subject == issuer {
        "root"
    } else {
        "intermediate"
    }
}

fn detail_page(s: &Signed, d: &CertDetail, alert: Option<Alert>) -> Page {
    let c = &d.summary;
    let left = days_left(c.not_after_unix, now());
    layout(
        &c.name,
        Some(s),
        html! {
            p.crumbs { a href="/ui/certs" { "Certificates" } " / " }
            h1 { (c.name) @if c.is_default { " " span.badge { "default" } } }
            @if let Some(a) = &alert { (a.markup()) }
            section aria-labelledby="about-h" {
                h2 #about-h { "Certificate" }
                dl.facts {
                    dt { "Hostnames" } dd { (c.hostnames.join(", ")) }
                    dt { "Subject" } dd { (c.subject) }
                    dt { "Issuer" } dd { (c.issuer) }
                    dt { "Valid" } dd { (c.not_before) " → " span class=(expiry_class(left)) { (c.not_after) } " (" @if left < 0 { "expired" } @else { (left) " days left" } ")" }
                    dt { "Status" } dd { (c.status) }
                    dt { "Key" } dd { (c.key) }
                    dt { "Chain" } dd { (c.completeness) }
                    dt { "Bundle id" } dd { code { (c.id) } }
                    dt { "Imported" } dd { (c.imported_at) " by " (c.imported_by) }
                    @if let Some(r) = &d.renewal {
                        dt { "Renewal" } dd {
                            "by " (r.issuer) "; next " (r.next_attempt) "; " (r.renewals) " renewal(s)"
                            @if r.consecutive_failures > 0 { ", " span.bad { (r.consecutive_failures) " failed in a row" } }
                            @if let Some(last) = &r.last_result { "; last: " (last) }
                        }
                    }
                }
                @if !d.warnings.is_empty() {
                    ul.warnings { @for w in &d.warnings { li.warn { (w) } } }
                }
            }
            section aria-labelledby="uses-h" {
                h2 #uses-h { "Used for" }
                ul {
                    @for u in &d.uses { li { (u.description) } }
                    @if d.uses.is_empty() { li { "Nothing: another bundle serves each of its hostnames, or it is retired." } }
                }
            }
            section aria-labelledby="chain-h" {
                h2 #chain-h { "Chain (leaf first)" }
                table {
                    thead { tr { th scope="col" { "Role" } th scope="col" { "Subject" } th scope="col" { "Issuer" } th scope="col" { "Not after" } th scope="col" { "SHA-256" } } }
                    tbody {
                        @for (i, cert) in d.chain.iter().enumerate() {
                            tr {
                                td { (role(i, &cert.subject, &cert.issuer)) }
                                td { (cert.subject) }
                                td { (cert.issuer) }
                                td { (cert.not_after) }
                                td { code.fp { (cert.sha256) } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="actions-h" {
                h2 #actions-h { "Actions" }
                div.actions {
                    a.button href={ "/ui/certs/" (c.name) "/export" } { "Export…" }
                    a.button href={ "/ui/certs/" (c.name) "/rotate" } { "Rotate…" }
                    @if !c.is_default && c.status != "retired" {
                        form method="post" action={ "/ui/certs/" (c.name) "/default" } {
                            input type="hidden" name="csrf" value=(s.csrf());
                            button type="submit" { "Make default" }
                        }
                    }
                }
                @let console = d.uses.iter().find(|u| u.kind == "console");
                @match console {
                    Some(_) => {
                        form.stack method="post" action="/ui/console/reset" {
                            input type="hidden" name="csrf" value=(s.csrf());
                            input type="hidden" name="back" value=(c.name);
                            p { "Browsers that ask the admin port for its console hostnames get this certificate." }
                            button.secondary type="submit" { "Back to the node certificate for the console" }
                        }
                    }
                    None if c.status == "active" => {
                        form.stack method="post" action={ "/ui/certs/" (c.name) "/console" } {
                            input type="hidden" name="csrf" value=(s.csrf());
                            label for="console-hosts" { "Present it on the admin port (the console) to browsers asking for these hostnames; the CLI and the nodes keep the node certificate" }
                            input #console-hosts type="text" name="hostnames" placeholder="console.example.com" required;
                            button.secondary type="submit" { "Use for the console" }
                        }
                    }
                    None => {}
                }
                form.remove method="post" action={ "/ui/certs/" (c.name) "/remove" } {
                    input type="hidden" name="csrf" value=(s.csrf());
                    input #confirm-remove type="checkbox" name="confirm" value="yes" required;
                    label for="confirm-remove" { "Remove " (c.name) " from every node (the cluster refuses if it is still in use)" }
                    input #force-remove type="checkbox" name="force" value="yes";
                    label for="force-remove" { "Force (the CLI's --force): even if it is the default or the only certificate for its hostnames" }
                    button.danger type="submit" { "Remove" }
                }
            }
        },
    )
}

async fn make_default(
    State(st): State<S>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = crate::api::certs::set_default(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Json(SetDefault { name: name.clone() }),
    )
    .await;
    match done {
        Ok(_) => Redirect::to(&format!("/ui/certs/{name}?done=default")).into_response(),
        Err(e) => refused(&st, &s, &name, e).await,
    }
}

/// A refused action: the detail page again, with the refusal's message and hint.
async fn refused(st: &S, s: &Signed, name: &str, e: crate::api::error::AppError) -> Response {
    let (status, _, message, hint) = e.parts();
    let mut resp = detail_response(st, s, name, Some(Alert::Refused { message, hint })).await;
    if resp.status().is_success() {
        *resp.status_mut() = status;
    }
    resp
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    force: String,
}

async fn remove(
    State(st): State<S>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<RemoveForm>,
) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = crate::api::certs::remove_cert(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Path(name.clone()),
        Query(crate::api::certs::ForceQuery {
            force: !f.force.is_empty(),
        }),
    )
    .await;
    match done {
        Ok(_) => Redirect::to("/ui/certs").into_response(),
        Err(e) => refused(&st, &s, &name, e).await,
    }
}

#[derive(Deserialize)]
struct ConsoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hostnames: String,
}

async fn use_for_console(
    State(st): State<S>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ConsoleForm>,
) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let hostnames = f
        .hostnames
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    let done = crate::api::console::set_console(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Json(SetConsoleRequest {
            name: name.clone(),
            hostnames,
        }),
    )
    .await;
    match done {
        Ok(_) => Redirect::to(&format!("/ui/certs/{name}?done=console")).into_response(),
        Err(e) => refused(&st, &s, &name, e).await,
    }
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    csrf: String,
    /// The certificate page to come back to.
    #[serde(default)]
    back: String,
}

async fn console_reset(
    State(st): State<S>,
    headers: axum::http::HeaderMap,
    Form(f): Form<ResetForm>,
) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done =
        crate::api::console::clear_console(State(st.clone()), Extension(Actor(s.actor.clone())))
            .await;
    // Back to the bundle's page when there is one (the name goes into a path only then).
    let back = if st.sm.inventory().bundles.get(&f.back).is_some() {
        format!("/ui/certs/{}?done=console-reset", f.back)
    } else {
        "/ui".to_string()
    };
    match done {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_query_and_encode_it() {
        let q = ListQuery {
            q: "a b&c".into(),
            show: "expiring".into(),
            sort: "expiry".into(),
            desc: true,
            page: 3,
        };
        assert_eq!(
            q.link(|n| n.page = 4),
            "/ui/certs?q=a%20b%26c&show=expiring&sort=expiry&desc=true&page=4"
        );
        assert_eq!(ListQuery::default().link(|_| {}), "/ui/certs");
    }

    #[test]
    fn the_filter_ignores_case_and_matches_anywhere() {
        assert!(contains_ci("CN=Shop.Example.TEST", "example.test"));
        assert!(contains_ci("anything", ""));
        assert!(!contains_ci("ab", "abc"));
        assert!(!contains_ci("shop", "shoq"));
    }

    #[test]
    fn long_hostname_lists_are_shortened() {
        let h: Vec<String> = (0..5).map(|i| format!("h{i}")).collect();
        assert_eq!(hostnames_text(&h), "h0, h1, h2 and 2 more");
        assert_eq!(hostnames_text(&h[..2]), "h0, h1");
    }

    #[test]
    fn done_codes_are_a_fixed_set() {
        assert!(done_text("default").is_some());
        assert!(done_text("<script>").is_none());
    }
}
