//! What enters and leaves the inventory through the console: import (upload, preview, then
//! commit), rotation (upload a successor) and export (PKCS#12 or PEM, as a download).
//!
//! An import is two steps because a browser cannot send the same files twice without script:
//! the upload is parsed, checked as the real import would be (`apply` on a copy of the
//! state) and shown as `certraft inspect` reports it; the bundle, already sealed under the
//! cluster's data key, waits on this node (the leader) under a random id bound to the
//! session, for at most [`STAGED_FOR`], until the operator confirms. Nothing plaintext is
//! kept: the key is sealed before the preview is drawn.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Json, Router};
use maud::html;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::pages::{layout, Alert, Page};
use super::{error_page, posted, session, Signed};
use crate::api::dto::{
    BundleSource, ExportFormat, ExportRequest, RotateRequest, UploadFile, MIN_PASSPHRASE_CHARS,
};
use crate::api::error::AppError;
use crate::api::server::{Actor, AppState, MAX_UPLOAD_FILES, S};
use crate::bundle::report::{completeness_text, display_key, InspectReport};
use crate::clock::unix_now as now;
use crate::inventory::{Command, NewBundle, Outcome};

/// How long an import preview waits for its confirmation.
const STAGED_FOR: Duration = Duration::from_secs(15 * 60);
/// Previews waiting at once on a node (the oldest goes first).
const MAX_STAGED: usize = 64;
/// The longest text field a console upload form takes (a name, a passphrase).
const MAX_FIELD_BYTES: usize = 4096;

pub(super) fn routes() -> Router<S> {
    Router::new()
        .route("/import", get(import_form).post(preview))
        .route("/import/commit", axum::routing::post(commit))
        .route("/certs/{name}/rotate", get(rotate_form).post(rotate))
        .route("/certs/{name}/export", get(export_form).post(export))
}

/// A previewed import waiting for its confirmation.
struct Staged {
    session: [u8; 32],
    bundle: NewBundle,
    make_default: bool,
    at: Instant,
}

fn staged() -> &'static Mutex<HashMap<String, Staged>> {
    static STAGED: std::sync::OnceLock<Mutex<HashMap<String, Staged>>> = std::sync::OnceLock::new();
    STAGED.get_or_init(Default::default)
}

fn stage(entry: Staged) -> String {
    let id = crate::datadir::random_hex(16).to_string();
    let mut map = staged().lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, s| s.at.elapsed() < STAGED_FOR);
    while map.len() >= MAX_STAGED {
        let Some(oldest) = map.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| k.clone()) else {
            break;
        };
        map.remove(&oldest);
    }
    map.insert(id.clone(), entry);
    id
}

/// Takes the staged import `id` if it belongs to `session` and has not expired.
fn unstage(id: &str, session: &[u8; 32]) -> Option<Staged> {
    let mut map = staged().lock().unwrap_or_else(|e| e.into_inner());
    match map.get(id) {
        Some(s) if &s.session == session && s.at.elapsed() < STAGED_FOR => map.remove(id),
        _ => None,
    }
}

/// A console upload form: its files and text fields.
pub(super) struct Upload {
    pub(super) files: Vec<UploadFile>,
    fields: HashMap<String, Zeroizing<String>>,
}

impl Upload {
    pub(super) fn text(&self, name: &str) -> &str {
        self.fields.get(name).map(|v| v.as_str()).unwrap_or("")
    }
    pub(super) fn checked(&self, name: &str) -> bool {
        !self.text(name).is_empty()
    }
    fn source(&self) -> BundleSource {
        let passphrase = self.text("passphrase");
        BundleSource {
            files: self.files.clone(),
            passphrase: (!passphrase.is_empty()).then(|| passphrase.to_string()),
            allow_expired: self.checked("allow_expired"),
            allow_incomplete: self.checked("allow_incomplete"),
        }
    }
}

async fn read_upload(mut mp: Multipart) -> Result<Upload, AppError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        AppError::bad_request("bad_form", format!("the form could not be read: {e}"))
    };
    let mut up = Upload {
        files: Vec::new(),
        fields: HashMap::new(),
    };
    let mut parts = 0;
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        parts += 1;
        if parts > MAX_UPLOAD_FILES + 16 {
            return Err(AppError::TooLarge(format!(
                "the form has more than {} parts; upload at most {MAX_UPLOAD_FILES} files",
                MAX_UPLOAD_FILES + 16
            )));
        }
        let name = field.name().unwrap_or("").to_string();
        match field.file_name().map(str::to_string) {
            Some(file_name) => {
                let data = field.bytes().await.map_err(bad)?;
                // A file input left empty still sends a part, without a name or bytes.
                if !file_name.is_empty() || !data.is_empty() {
                    up.files.push(UploadFile {
                        name: file_name,
                        data: data.to_vec(),
                    });
                }
            }
            None => {
                let data = Zeroizing::new(field.bytes().await.map_err(bad)?.to_vec());
                if data.len() > MAX_FIELD_BYTES {
                    return Err(AppError::TooLarge(format!(
                        "the form field {name:?} has {} bytes; at most {MAX_FIELD_BYTES}",
                        data.len()
                    )));
                }
                let text = String::from_utf8(data.to_vec()).map_err(|_| {
                    AppError::bad_request(
                        "bad_form",
                        format!("the form field {name:?} is not UTF-8"),
                    )
                })?;
                up.fields.insert(name, Zeroizing::new(text));
            }
        }
    }
    Ok(up)
}

/// The session of an upload form whose CSRF token is right, and the upload.
pub(super) async fn posted_upload(
    st: &AppState,
    headers: &HeaderMap,
    mp: Multipart,
) -> Result<(Signed, Upload), Response> {
    let up = read_upload(mp).await.map_err(error_page)?;
    let s = posted(st, headers, up.text("csrf")).await?;
    Ok((s, up))
}

async fn import_form(State(st): State<S>, headers: HeaderMap) -> Response {
    match session(&st, &headers).await {
        Ok(s) => import_page(&s, None).into_response(),
        Err(r) => r,
    }
}

fn import_page(s: &Signed, alert: Option<Alert>) -> Page {
    layout(
        "Import",
        Some(s),
        html! {
            h1 { "Import a certificate" }
            @if let Some(a) = &alert { (a.markup()) }
            form.stack method="post" action="/ui/import" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(s.csrf());
                label for="files" { "Files: certificate, key and chain, in any formats and any mix (PEM, DER, PKCS#12, PKCS#7, encrypted keys)" }
                input #files type="file" name="files" multiple required;
                label for="passphrase" { "Passphrase of a PKCS#12 file or an encrypted key (if any)" }
                input #passphrase type="password" name="passphrase" autocomplete="off";
                label for="name" { "Name in the inventory (empty: the certificate's first hostname)" }
                input #name type="text" name="name" maxlength="64" pattern="[A-Za-z0-9*][A-Za-z0-9._*-]*";
                div.checks {
                    input #make_default type="checkbox" name="make_default" value="yes";
                    label for="make_default" { "Make it the default certificate" }
                    input #allow_incomplete type="checkbox" name="allow_incomplete" value="yes";
                    label for="allow_incomplete" { "Accept an incomplete chain" }
                    input #allow_expired type="checkbox" name="allow_expired" value="yes";
                    label for="allow_expired" { "Accept an expired certificate" }
                }
                button type="submit" { "Preview" }
            }
            p.hint { "Nothing is imported until you confirm the preview." }
        },
    )
}

async fn preview(State(st): State<S>, headers: HeaderMap, mp: Multipart) -> Response {
    let (s, up) = match posted_upload(&st, &headers, mp).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let src = up.source();
    let assembled =
        crate::api::certs::cpu_bound(&st, move || crate::api::certs::assemble_reporting(&src))
            .await;
    let refused = |s: &Signed, e: AppError| {
        let (status, _, message, hint) = e.parts();
        (
            status,
            import_page(s, Some(Alert::Refused { message, hint })),
        )
            .into_response()
    };
    let (bundle, files) = match assembled {
        Ok(x) => x,
        Err(e) => return refused(&s, e),
    };
    let name = match up.text("name").trim() {
        "" => crate::api::certs::default_name(&bundle),
        n => n.to_string(),
    };
    let report = InspectReport::new(&bundle, files);
    let nb = crate::api::certs::new_bundle(&st, &bundle, name.clone());
    drop(bundle);
    let make_default = up.checked("make_default");
    // The checks the import will meet, on a copy of the state (see `api::certs::import`).
    let mut copy = (*st.sm.inventory()).clone();
    let req = crate::inventory::Request::new(
        s.actor.as_str(),
        now(),
        Command::Import {
            bundle: nb.clone(),
            make_default,
        },
    );
    let already = match crate::inventory::apply(&mut copy, &req) {
        Ok(Outcome::AlreadyPresent { name, .. }) => Some(name),
        Ok(_) => None,
        Err(r) => return refused(&s, AppError::Refused(r)),
    };
    let id = stage(Staged {
        session: s.session_hash(),
        bundle: nb,
        make_default,
        at: Instant::now(),
    });
    preview_page(&s, &name, &report, already.as_deref(), make_default, &id).into_response()
}

fn preview_page(
    s: &Signed,
    name: &str,
    r: &InspectReport,
    already: Option<&str>,
    make_default: bool,
    id: &str,
) -> Page {
    layout(
        "Import",
        Some(s),
        html! {
            h1 { "Preview: " (name) }
            @if let Some(existing) = already {
                p.warn role="status" { "This very bundle is already in the inventory as " code { (existing) } "; importing changes nothing." }
            }
            section aria-labelledby="leaf-h" {
                h2 #leaf-h { "Leaf" }
                dl.facts {
                    dt { "Subject" } dd { (r.chain[0].subject) }
                    dt { "Hostnames" } dd { @if r.hostnames.is_empty() { "(none)" } @else { (r.hostnames.join(", ")) } }
                    @if !r.ip_addresses.is_empty() { dt { "IP addresses" } dd { (r.ip_addresses.join(", ")) } }
                    dt { "Key" } dd { (display_key(r.key)) " (matches the leaf)" }
                    dt { "Valid" } dd { (r.not_before) " → " (r.not_after) }
                    dt { "Chain" } dd { (completeness_text(r.completeness)) }
                    dt { "Bundle id" } dd { code { (r.id.to_hex()) } }
                    dt { "Default" } dd { @if make_default { "becomes the default certificate" } @else { "no change" } }
                }
            }
            section aria-labelledby="chain-h" {
                h2 #chain-h { "Chain order" }
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Role" } th scope="col" { "Subject" } th scope="col" { "Issuer" } th scope="col" { "Not after" } th scope="col" { "SHA-256" } } }
                    tbody {
                        @for (i, c) in r.chain.iter().enumerate() {
                            tr {
                                td { (i) }
                                td { (serde_json::to_value(c.role).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()) }
                                td { (c.subject) }
                                td { (c.issuer) }
                                td { (c.not_after) }
                                td { code.fp { (c.sha256) } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="files-h" {
                h2 #files-h { "Files" }
                ul { @for f in &r.files { li { (f.name) ": " (f.format) ", " (f.certificates) " certificate(s), " (f.keys) " key(s)" } } }
            }
            section aria-labelledby="warn-h" {
                h2 #warn-h { "Warnings" }
                @if r.warnings.is_empty() { p.good { "None." } }
                @else { ul.warnings { @for w in &r.warnings { li.warn { (w.message) " " small { "[" (w.code) "]" } } } } }
            }
            div.actions {
                form method="post" action="/ui/import/commit" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    input type="hidden" name="staged" value=(id);
                    button type="submit" { "Import " (name) }
                }
                a.button.secondary href="/ui/import" { "Cancel" }
            }
        },
    )
}

#[derive(Deserialize)]
struct CommitForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    staged: String,
}

async fn commit(State(st): State<S>, headers: HeaderMap, Form(f): Form<CommitForm>) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(staged) = unstage(&f.staged, &s.session_hash()) else {
        return (
            StatusCode::CONFLICT,
            import_page(
                &s,
                Some(Alert::Refused {
                    message: "this preview is no longer here (it expired after 15 minutes, was already imported, or another node leads now)".into(),
                    hint: Some("upload the files again".into()),
                }),
            ),
        )
            .into_response();
    };
    let command = Command::Import {
        bundle: staged.bundle,
        make_default: staged.make_default,
    };
    match st.propose(&s.actor, command).await {
        Ok((Outcome::Imported { name, .. }, _)) => {
            Redirect::to(&format!("/ui/certs/{name}?done=imported")).into_response()
        }
        Ok((Outcome::AlreadyPresent { name, .. }, _)) => {
            Redirect::to(&format!("/ui/certs/{name}?done=present")).into_response()
        }
        Ok((other, _)) => error_page(AppError::Internal(format!("import answered {other:?}"))),
        Err(e) => {
            let (status, _, message, hint) = e.parts();
            (
                status,
                import_page(&s, Some(Alert::Refused { message, hint })),
            )
                .into_response()
        }
    }
}

async fn rotate_form(
    State(st): State<S>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    match session(&st, &headers).await {
        Ok(s) => rotate_page(&s, &name, None).into_response(),
        Err(r) => r,
    }
}

fn rotate_page(s: &Signed, name: &str, alert: Option<Alert>) -> Page {
    layout(
        "Rotate",
        Some(s),
        html! {
            p.crumbs { a href="/ui/certs" { "Certificates" } " / " a href={ "/ui/certs/" (name) } { (name) } " /" }
            h1 { "Rotate " (name) }
            @if let Some(a) = &alert { (a.markup()) }
            p { "The new bundle takes over every hostname, the default and the console role this one has, on every node at once; this one is kept, retired." }
            form.stack method="post" action={ "/ui/certs/" (name) "/rotate" } enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(s.csrf());
                label for="files" { "Files of the new certificate, key and chain" }
                input #files type="file" name="files" multiple required;
                label for="passphrase" { "Passphrase of a PKCS#12 file or an encrypted key (if any)" }
                input #passphrase type="password" name="passphrase" autocomplete="off";
                div.checks {
                    input #force type="checkbox" name="force" value="yes";
                    label for="force" { "Rotate even if the new certificate does not cover every hostname this one serves" }
                    input #allow_incomplete type="checkbox" name="allow_incomplete" value="yes";
                    label for="allow_incomplete" { "Accept an incomplete chain" }
                }
                button type="submit" { "Rotate" }
            }
        },
    )
}

async fn rotate(
    State(st): State<S>,
    headers: HeaderMap,
    Path(name): Path<String>,
    mp: Multipart,
) -> Response {
    let (s, up) = match posted_upload(&st, &headers, mp).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = RotateRequest {
        source: up.source(),
        name: None,
        force: up.checked("force"),
    };
    let done = crate::api::certs::rotate(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Path(name.clone()),
        Json(body),
    )
    .await;
    match done {
        Ok(Json(r)) => Redirect::to(&format!("/ui/certs/{}?done=rotated", r.new)).into_response(),
        Err(e) => {
            let (status, _, message, hint) = e.parts();
            (
                status,
                rotate_page(&s, &name, Some(Alert::Refused { message, hint })),
            )
                .into_response()
        }
    }
}

async fn export_form(
    State(st): State<S>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    match session(&st, &headers).await {
        Ok(s) => export_page(&s, &name, None).into_response(),
        Err(r) => r,
    }
}

fn export_page(s: &Signed, name: &str, alert: Option<Alert>) -> Page {
    layout(
        "Export",
        Some(s),
        html! {
            p.crumbs { a href="/ui/certs" { "Certificates" } " / " a href={ "/ui/certs/" (name) } { (name) } " /" }
            h1 { "Export " (name) }
            @if let Some(a) = &alert { (a.markup()) }
            form.stack method="post" action={ "/ui/certs/" (name) "/export" } {
                input type="hidden" name="csrf" value=(s.csrf());
                fieldset {
                    legend { "What to export" }
                    div.checks {
                        input #fmt-p12 type="radio" name="format" value="p12" checked;
                        label for="fmt-p12" { "PKCS#12 (.p12): certificate, chain and private key, under a passphrase" }
                        input #fmt-pem type="radio" name="format" value="pem";
                        label for="fmt-pem" { "PEM: the certificates only (no key, no passphrase)" }
                    }
                }
                label for="passphrase" { "Passphrase (PKCS#12)" }
                input #passphrase type="password" name="passphrase" autocomplete="new-password" minlength=(MIN_PASSPHRASE_CHARS) aria-describedby="strength";
                label for="passphrase2" { "The passphrase again" }
                input #passphrase2 type="password" name="passphrase2" autocomplete="new-password" minlength=(MIN_PASSPHRASE_CHARS);
                p #strength .hint { "At least " (MIN_PASSPHRASE_CHARS) " characters; a few random words are best. It alone protects the key once the file leaves the cluster. The key is encrypted with AES-256 under PBKDF2-SHA256 at 600,000 iterations." }
                div.checks {
                    input #legacy type="checkbox" name="legacy" value="yes" aria-describedby="legacy-warning";
                    label for="legacy" { "Legacy PKCS#12 (3DES and SHA-1) for systems that cannot read the modern format" }
                }
                p #legacy-warning .warn { (crate::bundle::export::LEGACY_WARNING) }
                button type="submit" { "Download" }
            }
        },
    )
}

#[derive(Deserialize)]
struct ExportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    passphrase: String,
    #[serde(default)]
    passphrase2: String,
    #[serde(default)]
    legacy: String,
}

async fn export(
    State(st): State<S>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(mut f): Form<ExportForm>,
) -> Response {
    let passphrase = Zeroizing::new(std::mem::take(&mut f.passphrase));
    let passphrase2 = Zeroizing::new(std::mem::take(&mut f.passphrase2));
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let again = |s: &Signed, status: StatusCode, message: String, hint: Option<String>| {
        (
            status,
            export_page(s, &name, Some(Alert::Refused { message, hint })),
        )
            .into_response()
    };
    let format = match f.format.as_str() {
        "pem" => ExportFormat::Pem,
        _ => ExportFormat::P12,
    };
    if format == ExportFormat::P12 && *passphrase != *passphrase2 {
        return again(
            &s,
            StatusCode::BAD_REQUEST,
            "the two passphrases differ".into(),
            Some("type the same passphrase into both fields".into()),
        );
    }
    let body = ExportRequest {
        format,
        passphrase: (format == ExportFormat::P12).then(|| passphrase.to_string()),
        legacy: !f.legacy.is_empty() && format == ExportFormat::P12,
        ..Default::default()
    };
    let done = crate::api::certs::export(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Path(name.clone()),
        Json(body),
    )
    .await;
    let out = match done {
        Ok(Json(out)) => out,
        Err(e) => {
            let (status, _, message, hint) = e.parts();
            return again(&s, status, message, hint);
        }
    };
    let (ext, mime) = match format {
        ExportFormat::P12 => ("p12", "application/x-pkcs12"),
        ExportFormat::Pem => ("pem", "application/x-pem-file"),
    };
    super::pages::download(out.data, mime, &format!("{name}.{ext}"))
}
