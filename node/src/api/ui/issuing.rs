//! The console's issuing pages: pending CSRs (create, download, complete with the CA's
//! answer, remove) and issuers (the cluster's own CA, ACME accounts, and a form to issue a
//! managed certificate from either).

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use maud::html;
use serde::Deserialize;

use super::pages::{layout, Alert, Page};
use super::transfer::posted_upload;
use super::{error_page, posted, session, Signed};
use crate::api::dto::{CsrCompleteRequest, CsrCreateRequest, CsrInfo, IssueRequest, IssuerList};
use crate::api::error::AppError;
use crate::api::server::{Actor, S};
use crate::bundle::assemble::fmt_time;
use crate::inventory::{KeyType, LOCAL_ISSUER};

pub(super) fn routes() -> Router<S> {
    Router::new()
        .route("/csrs", get(csrs).post(create_csr))
        .route("/csrs/{name}", get(csr))
        .route("/csrs/{name}/csr.pem", get(csr_pem))
        .route("/csrs/{name}/complete", post(complete_csr))
        .route("/csrs/{name}/remove", post(remove_csr))
        .route("/issuers", get(issuers))
        .route("/issue", post(issue))
}

/// The key types a form offers, as the API names them.
const KEYS: &[(&str, &str)] = &[
    ("ec-p256", "ECDSA P-256 (recommended)"),
    ("ec-p384", "ECDSA P-384"),
    ("rsa-2048", "RSA 2048"),
    ("rsa-3072", "RSA 3072"),
    ("rsa-4096", "RSA 4096"),
    ("ed25519", "Ed25519 (few clients)"),
];

fn key_type(v: &str) -> KeyType {
    serde_json::from_value(serde_json::Value::String(v.to_string())).unwrap_or_default()
}

/// Hostnames typed into one field, separated by commas, spaces or lines.
fn split_names(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A refusal as the page's alert, and the status the page answers with.
fn refused(e: AppError) -> (Alert, StatusCode) {
    let (status, _, message, hint) = e.parts();
    (Alert::Refused { message, hint }, status)
}

async fn csrs(State(st): State<S>, headers: HeaderMap) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    csrs_response(&st, &s, None, StatusCode::OK).await
}

async fn csrs_response(st: &S, s: &Signed, alert: Option<Alert>, status: StatusCode) -> Response {
    match crate::api::issuing::list_csrs(State(st.clone())).await {
        Ok(Json(l)) => (status, csrs_page(s, &l.csrs, alert)).into_response(),
        Err(e) => error_page(e),
    }
}

fn csrs_page(s: &Signed, list: &[CsrInfo], alert: Option<Alert>) -> Page {
    layout(
        "CSRs",
        Some(s),
        html! {
            h1 { "Certificate signing requests" }
            @if let Some(a) = &alert { (a.markup()) }
            p { "The cluster makes the key (it never leaves, sealed); you send the request to your CA and bring back its certificate." }
            section aria-labelledby="pending-h" {
                h2 #pending-h { "Pending" }
                @if list.is_empty() { p { "No request is waiting for its certificate." } }
                @else {
                    table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Common name" } th scope="col" { "Hostnames" } th scope="col" { "Key" } th scope="col" { "Created" } } }
                        tbody {
                            @for c in list {
                                tr {
                                    td { a href={ "/ui/csrs/" (c.name) } { (c.name) } }
                                    td { (c.common_name) }
                                    td { (c.sans.join(", ")) }
                                    td { (serde_json::to_value(c.key).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()) }
                                    td { (c.created_at) " by " (c.created_by) }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="new-h" {
                h2 #new-h { "New request" }
                form.stack method="post" action="/ui/csrs" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    label for="csr-name" { "Name (the bundle's name once completed)" }
                    input #csr-name type="text" name="name" required maxlength="64" pattern="[A-Za-z0-9*][A-Za-z0-9._*-]*";
                    label for="cn" { "Common name" }
                    input #cn type="text" name="common_name" required maxlength="64";
                    label for="sans" { "Hostnames (comma or space separated; the common name is added)" }
                    input #sans type="text" name="sans";
                    label for="csr-key" { "Key" }
                    select #csr-key name="key" { @for (v, l) in KEYS { option value=(v) { (l) } } }
                    button type="submit" { "Create key and request" }
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct CsrForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    common_name: String,
    #[serde(default)]
    sans: String,
    #[serde(default)]
    key: String,
}

async fn create_csr(State(st): State<S>, headers: HeaderMap, Form(f): Form<CsrForm>) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut sans = split_names(&f.sans);
    let cn = f.common_name.trim().to_string();
    if !cn.is_empty() && !sans.contains(&cn) {
        sans.insert(0, cn.clone());
    }
    let made = crate::api::issuing::create_csr(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Json(CsrCreateRequest {
            name: f.name.trim().to_string(),
            common_name: cn,
            sans,
            key: key_type(&f.key),
        }),
    )
    .await;
    match made {
        Ok(Json(c)) => Redirect::to(&format!("/ui/csrs/{}", c.name)).into_response(),
        Err(e) => {
            let (alert, status) = refused(e);
            csrs_response(&st, &s, Some(alert), status).await
        }
    }
}

async fn csr(State(st): State<S>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    csr_response(&st, &s, &name, None, StatusCode::OK).await
}

async fn csr_response(
    st: &S,
    s: &Signed,
    name: &str,
    alert: Option<Alert>,
    status: StatusCode,
) -> Response {
    match crate::api::issuing::show_csr(State(st.clone()), Path(name.to_string())).await {
        Ok(Json(c)) => (status, csr_page(s, &c, alert)).into_response(),
        Err(e) => error_page(e),
    }
}

fn csr_page(s: &Signed, c: &CsrInfo, alert: Option<Alert>) -> Page {
    layout(
        "CSRs",
        Some(s),
        html! {
            p.crumbs { a href="/ui/csrs" { "CSRs" } " / " }
            h1 { (c.name) }
            @if let Some(a) = &alert { (a.markup()) }
            section aria-labelledby="req-h" {
                h2 #req-h { "Request" }
                dl.facts {
                    dt { "Common name" } dd { (c.common_name) }
                    dt { "Hostnames" } dd { (c.sans.join(", ")) }
                    dt { "Public key SHA-256" } dd { code.fp { (c.spki_sha256) } }
                    dt { "Created" } dd { (c.created_at) " by " (c.created_by) }
                }
                p { a.button href={ "/ui/csrs/" (c.name) "/csr.pem" } download { "Download " (c.name) ".csr.pem" } }
                pre.copy tabindex="0" aria-label="The request (PEM)" { (c.csr_pem) }
            }
            section aria-labelledby="complete-h" {
                h2 #complete-h { "Complete with the CA's certificate" }
                form.stack method="post" action={ "/ui/csrs/" (c.name) "/complete" } enctype="multipart/form-data" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    label for="cert-files" { "The certificate and its chain, as the CA sent them" }
                    input #cert-files type="file" name="files" multiple required;
                    label for="bundle-name" { "Bundle name (empty: " (c.name) "; an existing name is rotated)" }
                    input #bundle-name type="text" name="bundle_name" maxlength="64";
                    div.checks {
                        input #mk-default type="checkbox" name="make_default" value="yes";
                        label for="mk-default" { "Make it the default certificate" }
                        input #allow-incomplete type="checkbox" name="allow_incomplete" value="yes";
                        label for="allow-incomplete" { "Accept an incomplete chain" }
                    }
                    button type="submit" { "Complete" }
                }
            }
            section aria-labelledby="drop-h" {
                h2 #drop-h { "Abandon" }
                form.remove method="post" action={ "/ui/csrs/" (c.name) "/remove" } {
                    input type="hidden" name="csrf" value=(s.csrf());
                    input #confirm-drop type="checkbox" name="confirm" value="yes" required;
                    label for="confirm-drop" { "Delete this request and its key (a certificate issued for it can then never be used)" }
                    button.danger type="submit" { "Delete" }
                }
            }
        },
    )
}

async fn csr_pem(State(st): State<S>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = session(&st, &headers).await {
        return r;
    }
    match crate::api::issuing::show_csr(State(st.clone()), Path(name.clone())).await {
        Ok(Json(c)) => {
            super::pages::download(c.csr_pem, "application/pkcs10", &format!("{name}.csr.pem"))
        }
        Err(e) => error_page(e),
    }
}

async fn complete_csr(
    State(st): State<S>,
    headers: HeaderMap,
    Path(name): Path<String>,
    mp: Multipart,
) -> Response {
    let (s, up) = match posted_upload(&st, &headers, mp).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let bundle_name = up.text("bundle_name").trim();
    let done = crate::api::issuing::complete_csr(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Path(name.clone()),
        Json(CsrCompleteRequest {
            files: up.files.clone(),
            bundle_name: (!bundle_name.is_empty()).then(|| bundle_name.to_string()),
            make_default: up.checked("make_default"),
            allow_incomplete: up.checked("allow_incomplete"),
            ..Default::default()
        }),
    )
    .await;
    match done {
        Ok(Json(r)) => Redirect::to(&format!("/ui/certs/{}?done=imported", r.name)).into_response(),
        Err(e) => {
            let (alert, status) = refused(e);
            csr_response(&st, &s, &name, Some(alert), status).await
        }
    }
}

async fn remove_csr(
    State(st): State<S>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = crate::api::issuing::remove_csr(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Path(name.clone()),
    )
    .await;
    match done {
        Ok(_) => Redirect::to("/ui/csrs").into_response(),
        Err(e) => {
            let (alert, status) = refused(e);
            csr_response(&st, &s, &name, Some(alert), status).await
        }
    }
}

#[derive(Deserialize)]
struct IssuersQuery {
    #[serde(default)]
    done: String,
}

async fn issuers(
    State(st): State<S>,
    headers: HeaderMap,
    Query(q): Query<IssuersQuery>,
) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let alert = (q.done == "ordered").then_some(Alert::Done(
        "Ordered: the leader is obtaining the certificate from the CA; it appears under Certificates once issued.",
    ));
    issuers_response(&st, &s, alert, StatusCode::OK).await
}

async fn issuers_response(
    st: &S,
    s: &Signed,
    alert: Option<Alert>,
    status: StatusCode,
) -> Response {
    let list = match crate::api::acme::list_issuers(State(st.clone())).await {
        Ok(Json(l)) => l,
        Err(e) => return error_page(e),
    };
    (status, issuers_page(st, s, &list, alert)).into_response()
}

fn issuers_page(st: &S, s: &Signed, list: &IssuerList, alert: Option<Alert>) -> Page {
    let inv = st.sm.inventory();
    let local = inv.issuance.local_issuer.as_ref();
    layout(
        "Issuers",
        Some(s),
        html! {
            h1 { "Issuers" }
            @if let Some(a) = &alert { (a.markup()) }
            section aria-labelledby="local-h" {
                h2 #local-h { "The cluster's own CA (" (LOCAL_ISSUER) ")" }
                @match local {
                    Some(l) => {
                        dl.facts {
                            dt { "Subject" } dd { (l.subject) }
                            dt { "Not after" } dd { (fmt_time(l.not_after)) }
                        }
                        p { a href="/api/v1/trust/issuers" download="certraft-issuer.pem" { "Download its certificate" } " for the clients that must trust what it issues." }
                    }
                    None => p { "Made on first use: issuing a certificate from it below creates it." },
                }
            }
            section aria-labelledby="acme-h" {
                h2 #acme-h { "ACME accounts" }
                @if list.acme.is_empty() { p { "None. `certraft issuer add-acme NAME --directory URL --email E` registers one." } }
                @else {
                    table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Directory" } th scope="col" { "Contact" } th scope="col" { "Renewal info (ARI)" } th scope="col" { "Certificates" } } }
                        tbody {
                            @for i in &list.acme {
                                tr { td { (i.name) } td { code { (i.directory) } } td { (i.email) } td { @if i.ari { "yes" } @else { "no" } } td { (i.managed) } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="issue-h" {
                h2 #issue-h { "Issue a certificate" }
                p { "The cluster makes the key, obtains the certificate and renews it before it expires." }
                form.stack method="post" action="/ui/issue" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    label for="issue-name" { "Name" }
                    input #issue-name type="text" name="name" required maxlength="64" pattern="[A-Za-z0-9*][A-Za-z0-9._*-]*";
                    label for="issue-sans" { "Hostnames (comma or space separated)" }
                    input #issue-sans type="text" name="sans" required;
                    label for="issuer" { "Issuer" }
                    select #issuer name="issuer" {
                        option value=(LOCAL_ISSUER) { "the cluster's own CA" }
                        @for i in &list.acme { option value=(i.name) { "ACME: " (i.name) } }
                    }
                    label for="issue-key" { "Key" }
                    select #issue-key name="key" { @for (v, l) in KEYS { option value=(v) { (l) } } }
                    label for="days" { "Lifetime in days (own CA only; ACME CAs choose)" }
                    input #days type="number" name="days" min="1" max="398" value="90";
                    div.checks {
                        input #issue-default type="checkbox" name="make_default" value="yes";
                        label for="issue-default" { "Make it the default certificate" }
                    }
                    button type="submit" { "Issue" }
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct IssueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    sans: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    days: Option<i64>,
    #[serde(default)]
    make_default: String,
}

async fn issue(State(st): State<S>, headers: HeaderMap, Form(f): Form<IssueForm>) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let local = f.issuer.is_empty() || f.issuer == LOCAL_ISSUER;
    let name = f.name.trim().to_string();
    let req = IssueRequest {
        name: name.clone(),
        sans: split_names(&f.sans),
        issuer: (!local).then(|| f.issuer.clone()),
        key: key_type(&f.key),
        lifetime_secs: if local {
            f.days.map(|d| d.saturating_mul(86_400))
        } else {
            None
        },
        renew_at_permille: None,
        make_default: !f.make_default.is_empty(),
        challenge: None,
        fallback: None,
    };
    let done = crate::api::issuing::issue(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Json(req),
    )
    .await;
    match done {
        Ok(_) if local => Redirect::to(&format!("/ui/certs/{name}?done=issued")).into_response(),
        Ok(_) => Redirect::to("/ui/issuers?done=ordered").into_response(),
        Err(e) => {
            let (alert, status) = refused(e);
            issuers_response(&st, &s, Some(alert), status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_split_on_commas_spaces_and_lines() {
        assert_eq!(
            split_names(" a.test, b.test\nc.test  d.test,,"),
            ["a.test", "b.test", "c.test", "d.test"]
        );
        assert!(split_names("  ").is_empty());
    }

    #[test]
    fn the_forms_key_names_are_the_apis() {
        for (v, _) in KEYS {
            let k = key_type(v);
            assert_eq!(serde_json::to_value(k).unwrap(), *v, "{v}");
        }
    }
}
