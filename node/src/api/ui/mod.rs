//! The web console (issue 16, in progress): server-rendered pages under `/ui/` on every
//! node's admin port, built into the binary (maud templates, one stylesheet, no script).
//!
//! - **Sessions**: signing in with an admin token opens a replicated session
//!   ([`Command::OpenUiSession`]); the browser holds its random secret in a cookie
//!   (`HttpOnly`, `Secure`, `SameSite=Strict`, `Path=/ui`, 8 h), every node looks it up in its
//!   applied state, and signing out closes it on every node. The token is read from the form
//!   body only: never a URL, never a page.
//! - **CSRF**: every form carries a token derived from the session's secret (SHA-256 of
//!   "csrf" and the secret): a cross-site page can neither read the cookie nor compute it,
//!   and `SameSite=Strict` keeps the cookie off cross-site requests anyway.
//! - **Headers** on every page: a strict Content-Security-Policy (no script at all, styles
//!   from this origin only, forms only to this origin, no framing), `no-store`, no referrer,
//!   no sniffing.
//! - Failed sign-ins cost what a bad API token costs: they count against the source's
//!   failure limit (429 once over it) and are answered after the same delay.
//! - Writes run on the leader like the API's: a follower forwards the form.

mod admin;
mod certs;
mod issuing;
mod pages;
mod transfer;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::auth::FailureKind;
use super::forward::on_leader;
use super::layers::read_body;
use super::server::*;
use crate::clock::unix_now as now;
use crate::datadir::token_hash;
use crate::inventory::{Command, UiSession, UI_SESSION_SECS};

/// The session cookie's name.
const COOKIE: &str = "certraft_session";

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, nested at `/ui`. Every page and form runs on the leader, like the
/// API (a follower forwards it with the browser's cookie), so what a page shows is the
/// committed state and the leader's view of every member.
pub(super) fn router(state: S) -> Router<S> {
    // A sign-in's token is checked where the browser sent it, before it is forwarded.
    let sign_in_post = Router::new()
        .route("/sign-in", post(sign_in))
        .route_layer(middleware::from_fn_with_state(state.clone(), on_leader))
        .route_layer(middleware::from_fn_with_state(state.clone(), checked_here))
        .route_layer(middleware::from_fn_with_state(state.clone(), read_body));
    let pages = Router::new()
        .route("/", get(overview))
        .route("/sign-in", get(sign_in_page))
        .route("/sign-out", post(sign_out))
        .merge(certs::routes())
        .merge(transfer::routes())
        .merge(admin::routes())
        .merge(issuing::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), on_leader))
        .route_layer(middleware::from_fn_with_state(state.clone(), read_body));
    Router::new()
        .route("/static/app.css", get(stylesheet))
        .merge(pages)
        .merge(sign_in_post)
        .layer(middleware::from_fn(html_errors))
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn(security_headers))
}

/// Refuses a form posted from another site: a browser names the page's origin on every POST
/// (`Origin`, and `Sec-Fetch-Site` in current browsers). This backs the forms' CSRF tokens;
/// it runs on the node the browser talks to, before anything is forwarded.
async fn same_origin(req: axum::extract::Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST && !same_site(req.headers()) {
        return (
            StatusCode::FORBIDDEN,
            pages::message(
                "Refused",
                "This form was sent from another site. Open the console directly and use its own forms.",
            ),
        )
            .into_response();
    }
    next.run(req).await
}

fn same_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return false;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    // No Origin (not a browser), or "null" (what a browser sends from a page whose referrer
    // policy is `no-referrer`, as the console's): `Sec-Fetch-Site` above and the CSRF token
    // decide.
    let Some(origin) = origin.filter(|o| *o != "null") else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .strip_prefix("https://")
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Turns the API's JSON errors (a missing leader, a forwarded refusal, a body over budget)
/// into a page with the same message and hint.
async fn html_errors(req: axum::extract::Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json || !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let (message, hint) = match serde_json::from_slice::<super::dto::ErrorBody>(&bytes) {
        Ok(b) => (b.error.message, b.error.hint),
        Err(_) => (format!("the node answered {status}"), None),
    };
    (
        status,
        pages::failure("Not done", &message, hint.as_deref()),
    )
        .into_response()
}

/// An API error as a page: its message and hint, with its status.
pub(super) fn error_page(e: super::error::AppError) -> Response {
    let (status, _, message, hint) = e.parts();
    (
        status,
        pages::failure("Not done", &message, hint.as_deref()),
    )
        .into_response()
}

/// The headers every console answer carries.
async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("app.css"),
    )
        .into_response()
}

/// A signed-in browser: the session's secret (from the cookie) and who it acts as.
pub(super) struct Signed {
    secret: Zeroizing<String>,
    pub(super) actor: String,
}

impl Signed {
    /// The CSRF token of this session's forms.
    pub(super) fn csrf(&self) -> String {
        csrf_of(&self.secret)
    }

    /// The session's id as the inventory keeps it (the secret's hash).
    pub(super) fn session_hash(&self) -> [u8; 32] {
        session_hash(&self.secret)
    }
}

fn csrf_of(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"certraft-ui-csrf\0");
    h.update(secret.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

fn session_hash(secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"certraft-ui-session\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// The session secret in the request's cookie, if any.
fn cookie_secret(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| Zeroizing::new(v.to_string()))
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The signed-in session of a request. A follower that has not applied a session opened a
/// moment ago on the leader waits for its applied index to move (up to a second) first.
async fn signed(st: &AppState, headers: &HeaderMap) -> Option<Signed> {
    let secret = cookie_secret(headers)?;
    let hash = session_hash(&secret);
    let lookup = |st: &AppState| {
        st.sm
            .inventory()
            .ui_session(&hash, now())
            .map(|s| s.actor.clone())
    };
    let mut actor = lookup(st);
    if actor.is_none() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut rx = st.raft.metrics();
        while actor.is_none() && std::time::Instant::now() < deadline {
            let applied = rx.borrow().last_applied.map(|l| l.index);
            let moved = tokio::time::timeout_at(
                deadline.into(),
                rx.wait_for(|m| m.last_applied.map(|l| l.index) != applied),
            )
            .await;
            if !matches!(moved, Ok(Ok(_))) {
                break;
            }
            actor = lookup(st);
        }
    }
    Some(Signed {
        secret,
        actor: actor?,
    })
}

/// The signed-in session of a page request, or the redirect to sign in.
pub(super) async fn session(st: &AppState, headers: &HeaderMap) -> Result<Signed, Response> {
    signed(st, headers).await.ok_or_else(to_sign_in)
}

fn to_sign_in() -> Response {
    Redirect::to("/ui/sign-in").into_response()
}

async fn sign_in_page(State(st): State<S>, headers: HeaderMap) -> Response {
    if signed(&st, &headers).await.is_some() {
        return Redirect::to("/ui").into_response();
    }
    pages::sign_in(None).into_response()
}

/// The name of the admin token a sign-in typed, or the page that refuses it. Run on the node
/// the browser reached (so the failure limit counts the browser's address, and a follower
/// forwards only a token it knows) and again on the leader that opens the session.
async fn check_token(st: &AppState, ip: std::net::IpAddr, token: &str) -> Result<String, Response> {
    if token.trim().is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            pages::sign_in(Some("type the admin token into the form")),
        )
            .into_response());
    }
    let when = std::time::Instant::now();
    if st.failures.limited(ip, when) {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            pages::sign_in(Some(&format!(
                "too many failed sign-ins from {ip} lately; wait {} s, then try again",
                super::auth::WINDOW.as_secs()
            ))),
        )
            .into_response());
    }
    let may_wait = !st.failures.over_limit(ip, when);
    match st.token_name(&token_hash(token), may_wait).await {
        Some(actor) => Ok(actor),
        None => {
            st.failures.record(FailureKind::AdminToken, ip, when);
            Err((
                StatusCode::UNAUTHORIZED,
                pages::sign_in(Some(
                    "that is not an admin token of this cluster (it is in DATA/admin.token on the first node, or made with `certraft-node admin-token`)",
                )),
            )
                .into_response())
        }
    }
}

/// Before a sign-in is forwarded: its token checked here (see [`check_token`]).
async fn checked_here(
    State(st): State<S>,
    addr: Option<axum::Extension<crate::http::ClientAddr>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    if req.headers().contains_key(FORWARDED) {
        // Checked by the node that forwarded it; the handler checks again.
        return next.run(req).await;
    }
    let ip = addr
        .map(|a| a.0 .0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            pages::sign_in(Some("the sign-in form was too large")),
        )
            .into_response();
    };
    // The form as the handler will read it (a body that is not one has no token).
    let mut probe = axum::extract::Request::new(axum::body::Body::from(bytes.clone()));
    *probe.method_mut() = parts.method.clone();
    if let Some(kind) = parts.headers.get(header::CONTENT_TYPE) {
        probe
            .headers_mut()
            .insert(header::CONTENT_TYPE, kind.clone());
    }
    let token = Zeroizing::new(
        <Form<SignInForm> as axum::extract::FromRequest<()>>::from_request(probe, &())
            .await
            .map(|Form(f)| f.token)
            .unwrap_or_default(),
    );
    if let Err(refused) = check_token(&st, ip, &token).await {
        return refused;
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// The largest sign-in form read (a token is under 100 bytes).
const MAX_FORM_BYTES: usize = 8 * 1024;

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
}

async fn sign_in(
    State(st): State<S>,
    headers: HeaderMap,
    addr: Option<axum::Extension<crate::http::ClientAddr>>,
    Form(form): Form<SignInForm>,
) -> Response {
    let ip = addr
        .map(|a| a.0 .0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let forwarded = headers.contains_key(FORWARDED);
    let token = Zeroizing::new(form.token);
    let actor = match check_token(&st, ip, &token).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    let secret = crate::datadir::random_hex(32);
    let at = now();
    let session = UiSession {
        id_sha256: session_hash(&secret),
        actor: actor.clone(),
        from: if forwarded {
            format!("{ip} (through another node)")
        } else {
            ip.to_string()
        },
        created_at: at,
        expires_at: at + UI_SESSION_SECS,
    };
    if let Err(e) = st.propose(&actor, Command::OpenUiSession { session }).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            pages::sign_in(Some(&format!("the session was not opened: {e:?}"))),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age={UI_SESSION_SECS}",
        secret.as_str()
    );
    let mut resp = Redirect::to("/ui").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub(super) csrf: String,
}

/// The session of a form post, if its CSRF token is the session's.
pub(super) async fn posted(
    st: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Signed, Response> {
    let Some(s) = signed(st, headers).await else {
        return Err(to_sign_in());
    };
    let ok = constant_eq(csrf.as_bytes(), s.csrf().as_bytes());
    if !ok {
        return Err((
            StatusCode::FORBIDDEN,
            pages::message(
                "Refused",
                "This form did not come from this console (its CSRF token is missing or wrong). Reload the page and try again.",
            ),
        )
            .into_response());
    }
    Ok(s)
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn sign_out(State(st): State<S>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let s = match posted(&st, &headers, &form.csrf).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let closed = st
        .propose(
            &s.actor,
            Command::CloseUiSession {
                id_sha256: session_hash(&s.secret),
            },
        )
        .await;
    if let Err(e) = closed {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            pages::message(
                "Not signed out",
                &format!("The cluster did not record the sign-out ({e:?}); try again."),
            ),
        )
            .into_response();
    }
    let mut resp = Redirect::to("/ui/sign-in").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "certraft_session=; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

async fn overview(State(st): State<S>, headers: HeaderMap) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let status = match super::cluster::cluster_status(State(st.clone())).await {
        Ok(axum::Json(status)) => status,
        Err(e) => return e.into_response(),
    };
    let inv = st.sm.inventory();
    pages::overview(&s, &status, &inv, now()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_read_by_name_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; certraft_session=abc; b=2"),
        );
        assert_eq!(
            cookie_secret(&h).as_deref().map(|s| s.as_str()),
            Some("abc")
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xcertraft_session=abc"),
        );
        assert!(cookie_secret(&h).is_none());
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("certraft_session="),
        );
        assert!(cookie_secret(&h).is_none());
    }

    #[test]
    fn only_forms_from_this_origin_pass() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("10.0.0.1:9443"));
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_site(&h(&[])), "no Origin: the token decides");
        assert!(same_site(&h(&[("origin", "https://10.0.0.1:9443")])));
        assert!(same_site(&h(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_site(&h(&[("origin", "https://evil.test")])));
        assert!(!same_site(&h(&[("origin", "http://10.0.0.1:9443")])));
        assert!(!same_site(&h(&[
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_site(&h(&[("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn csrf_tokens_differ_by_session_and_from_the_secret() {
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert!(!csrf_of("secret").contains("secret"));
        assert_ne!(session_hash("a"), session_hash("b"));
        assert!(constant_eq(b"abc", b"abc"));
        assert!(!constant_eq(b"abc", b"abd"));
        assert!(!constant_eq(b"abc", b"ab"));
    }
}
