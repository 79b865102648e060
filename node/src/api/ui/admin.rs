//! The console's cluster pages: nodes (join tokens, removal), the audit log (filtered and
//! paged on the server) and backup (create as a download, restore from an upload).

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use maud::html;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::pages::{layout, query_string, Alert, Page};
use super::transfer::posted_upload;
use super::{posted, session, Signed};
use crate::api::dto::{
    BackupRequest, ClusterStatus, JoinTokenRequest, JoinTokenResponse, RestoreRequest,
    RestoreResponse, MIN_PASSPHRASE_CHARS,
};
use crate::api::server::{Actor, S};
use crate::bundle::assemble::fmt_time;
use crate::inventory::NodeRole;

/// Audit records per page.
const AUDIT_ROWS: usize = 100;

pub(super) fn routes() -> Router<S> {
    Router::new()
        .route("/nodes", get(nodes))
        .route("/nodes/join-token", post(join_token))
        .route("/nodes/{id}/remove", post(remove_node))
        .route("/audit", get(audit))
        .route("/backup", get(backup_form).post(backup))
        .route("/backup/restore", post(restore))
}

async fn status(st: &S) -> Result<ClusterStatus, Response> {
    crate::api::cluster::cluster_status(State(st.clone()))
        .await
        .map(|Json(s)| s)
        .map_err(super::error_page)
}

async fn nodes(State(st): State<S>, headers: HeaderMap) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match status(&st).await {
        Ok(status) => nodes_page(&s, &status, None, None).into_response(),
        Err(r) => r,
    }
}

fn nodes_page(
    s: &Signed,
    status: &ClusterStatus,
    alert: Option<Alert>,
    token: Option<&JoinTokenResponse>,
) -> Page {
    let leader_admin = status
        .members
        .iter()
        .find(|m| Some(m.id) == status.leader)
        .map(|m| m.admin_addr.clone())
        .unwrap_or_else(|| "LEADER:9443".into());
    layout(
        "Nodes",
        Some(s),
        html! {
            h1 { "Nodes" }
            @if let Some(a) = &alert { (a.markup()) }
            @if let Some(t) = token {
                section.created aria-labelledby="token-h" {
                    h2 #token-h { "Join token for a " (role_name(t.role)) }
                    p { "Single use, valid until " (t.expires_at) ". It is shown only now. On the new node, run:" }
                    pre.copy tabindex="0" aria-label="The commands to run on the new node" {
                        "printf '%s\\n' '" (t.token) "' > join.token\n"
                        "certraft-node run --data-dir DATA --admin ADDR:9443 --cluster ADDR:9444 --serve ADDR:443 \\\n"
                        "  --join https://" (leader_admin) " --join-token-file join.token"
                    }
                    p.hint { "ADDR is the new node's address; DATA its data directory. The token binds this cluster's CA, so the new node cannot be sent to another cluster." }
                }
            }
            section aria-labelledby="members-h" {
                h2 #members-h { "Members" }
                table {
                    thead { tr { th scope="col" { "Node" } th scope="col" { "Role" } th scope="col" { "Admin address" } th scope="col" { "Cluster address" } th scope="col" { "Health" } th scope="col" { span.visually-hidden { "Remove" } } } }
                    tbody {
                        @for m in &status.members {
                            tr {
                                td { (m.id) @if Some(m.id) == status.leader { " " span.badge { "leader" } } }
                                td { (m.role) }
                                td { code { (m.admin_addr) } }
                                td { code { (m.cluster_addr) } }
                                td { (m.health) }
                                td {
                                    form.inline method="post" action={ "/ui/nodes/" (m.id) "/remove" } {
                                        input type="hidden" name="csrf" value=(s.csrf());
                                        input id={ "confirm-" (m.id) } type="checkbox" name="confirm" value="yes" required;
                                        label for={ "confirm-" (m.id) } { "confirm" }
                                        button.danger type="submit" aria-label={ "Remove node " (m.id) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="add-h" {
                h2 #add-h { "Add a node" }
                form.stack method="post" action="/ui/nodes/join-token" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    label for="role" { "Role" }
                    select #role name="role" {
                        option value="voter" selected { "voter: holds a copy and votes" }
                        option value="learner" { "traffic node (learner): serves, does not vote" }
                        option value="witness" { "witness: votes, holds no keys" }
                    }
                    label for="ttl" { "Valid for (minutes)" }
                    input #ttl type="number" name="ttl_minutes" min="1" max="10080" value="60";
                    button type="submit" { "Create join token" }
                }
            }
        },
    )
}

fn role_name(r: NodeRole) -> &'static str {
    match r {
        NodeRole::Voter => "voter",
        NodeRole::Learner => "traffic node (learner)",
        NodeRole::Witness => "witness",
    }
}

#[derive(Deserialize)]
struct JoinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    ttl_minutes: Option<u64>,
}

async fn join_token(State(st): State<S>, headers: HeaderMap, Form(f): Form<JoinForm>) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let role = match f.role.as_str() {
        "learner" => NodeRole::Learner,
        "witness" => NodeRole::Witness,
        _ => NodeRole::Voter,
    };
    let req = JoinTokenRequest {
        ttl_secs: Some(f.ttl_minutes.unwrap_or(60).saturating_mul(60)),
        role,
    };
    let made = crate::api::cluster::create_join_token(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Json(req),
    )
    .await;
    let status = match status(&st).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match made {
        Ok(Json(t)) => nodes_page(&s, &status, None, Some(&t)).into_response(),
        Err(e) => {
            let (code, _, message, hint) = e.parts();
            (
                code,
                nodes_page(&s, &status, Some(Alert::Refused { message, hint }), None),
            )
                .into_response()
        }
    }
}

async fn remove_node(
    State(st): State<S>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = crate::api::cluster::remove_node(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Path(id),
    )
    .await;
    let status = match status(&st).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match done {
        Ok(_) => nodes_page(
            &s,
            &status,
            Some(Alert::Done("The node was removed.")),
            None,
        )
        .into_response(),
        Err(e) => {
            let (code, _, message, hint) = e.parts();
            (
                code,
                nodes_page(&s, &status, Some(Alert::Refused { message, hint }), None),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    /// Matched (case-insensitive) within the action's text.
    #[serde(default)]
    action: String,
    #[serde(default)]
    refused: bool,
    #[serde(default)]
    page: usize,
}

impl AuditQuery {
    fn link(&self, page: usize) -> String {
        let mut pairs = Vec::new();
        if !self.actor.is_empty() {
            pairs.push(("actor", self.actor.clone()));
        }
        if !self.action.is_empty() {
            pairs.push(("action", self.action.clone()));
        }
        if self.refused {
            pairs.push(("refused", "true".into()));
        }
        if page > 1 {
            pairs.push(("page", page.to_string()));
        }
        format!("/ui/audit{}", query_string(&pairs))
    }
}

async fn audit(State(st): State<S>, headers: HeaderMap, Query(q): Query<AuditQuery>) -> Response {
    let s = match session(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let inv = st.sm.inventory();
    let action = q.action.to_ascii_lowercase();
    let hits: Vec<_> = inv
        .audit
        .iter()
        .rev()
        .filter(|a| q.actor.is_empty() || a.actor == q.actor)
        .filter(|a| action.is_empty() || a.what.to_ascii_lowercase().contains(&action))
        .filter(|a| !q.refused || a.refused)
        .collect();
    let mut actors: Vec<&str> = inv.audit.iter().map(|a| a.actor.as_str()).collect();
    actors.sort_unstable();
    actors.dedup();
    let pages = hits.len().div_ceil(AUDIT_ROWS).max(1);
    let page = q.page.clamp(1, pages);
    let rows = hits.iter().skip((page - 1) * AUDIT_ROWS).take(AUDIT_ROWS);
    layout(
        "Audit",
        Some(&s),
        html! {
            h1 { "Audit log" }
            form.filter method="get" action="/ui/audit" role="search" {
                label for="actor" { "Who" }
                select #actor name="actor" {
                    option value="" { "anyone" }
                    @for a in &actors { option value=(a) selected[*a == q.actor] { (a) } }
                }
                label for="action" { "What (contains)" }
                input #action type="search" name="action" value=(q.action) placeholder="import, export, rotate…";
                input #refused type="checkbox" name="refused" value="true" checked[q.refused];
                label for="refused" { "refused only" }
                button type="submit" { "Apply" }
            }
            p.hint { (hits.len()) " record(s), newest first; page " (page) " of " (pages) "." }
            section {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Result" } } }
                    tbody {
                        @for a in rows {
                            tr {
                                td { (fmt_time(a.at)) }
                                td { (a.actor) }
                                td { (a.what) }
                                td class=(if a.refused { "bad" } else { "" }) { (a.result) }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if page > 1 { a href=(q.link(page - 1)) rel="prev" { "← Newer" } }
                @if page < pages { a href=(q.link(page + 1)) rel="next" { "Older →" } }
            }
        },
    )
    .into_response()
}

async fn backup_form(State(st): State<S>, headers: HeaderMap) -> Response {
    match session(&st, &headers).await {
        Ok(s) => backup_page(&s, None, None).into_response(),
        Err(r) => r,
    }
}

fn backup_page(s: &Signed, alert: Option<Alert>, restored: Option<&RestoreResponse>) -> Page {
    layout(
        "Backup",
        Some(s),
        html! {
            h1 { "Backup and restore" }
            @if let Some(a) = &alert { (a.markup()) }
            @if let Some(r) = restored {
                section.created aria-labelledby="restored-h" {
                    h2 #restored-h { "Restored" }
                    p { (r.restored.len()) " bundle(s) imported, " (r.already_present.len()) " already present." }
                    @if !r.restored.is_empty() { p { "Imported: " (r.restored.join(", ")) } }
                }
            }
            section aria-labelledby="create-h" {
                h2 #create-h { "Create a backup" }
                p { "Every bundle with its key, the default, and the settings, in one file encrypted under your passphrase. Keep the file and the passphrase apart." }
                form.stack method="post" action="/ui/backup" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    label for="bp" { "Passphrase" }
                    input #bp type="password" name="passphrase" autocomplete="new-password" minlength=(MIN_PASSPHRASE_CHARS) required aria-describedby="bp-hint";
                    label for="bp2" { "The passphrase again" }
                    input #bp2 type="password" name="passphrase2" autocomplete="new-password" minlength=(MIN_PASSPHRASE_CHARS) required;
                    p #bp-hint .hint { "At least " (MIN_PASSPHRASE_CHARS) " characters; a few random words are best." }
                    button type="submit" { "Download backup" }
                }
            }
            section aria-labelledby="restore-h" {
                h2 #restore-h { "Restore" }
                p { "Adds the backup's bundles that are not here yet; nothing present is replaced or removed." }
                form.stack method="post" action="/ui/backup/restore" enctype="multipart/form-data" {
                    input type="hidden" name="csrf" value=(s.csrf());
                    label for="bf" { "Backup file" }
                    input #bf type="file" name="files" required;
                    label for="rp" { "Its passphrase" }
                    input #rp type="password" name="passphrase" autocomplete="off" required;
                    button type="submit" { "Restore" }
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct BackupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    passphrase: String,
    #[serde(default)]
    passphrase2: String,
}

async fn backup(
    State(st): State<S>,
    headers: HeaderMap,
    Form(mut f): Form<BackupForm>,
) -> Response {
    let passphrase = Zeroizing::new(std::mem::take(&mut f.passphrase));
    let passphrase2 = Zeroizing::new(std::mem::take(&mut f.passphrase2));
    let s = match posted(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let refused = |s: &Signed, status: StatusCode, message: String, hint: Option<String>| {
        (
            status,
            backup_page(s, Some(Alert::Refused { message, hint }), None),
        )
            .into_response()
    };
    if *passphrase != *passphrase2 {
        return refused(
            &s,
            StatusCode::BAD_REQUEST,
            "the two passphrases differ".into(),
            Some("type the same passphrase into both fields".into()),
        );
    }
    let made = crate::api::backup::backup(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Json(BackupRequest {
            passphrase: passphrase.to_string(),
            allow_weak_passphrase: false,
        }),
    )
    .await;
    match made {
        Ok(Json(b)) => {
            let date = &fmt_time(crate::clock::unix_now())[..10];
            super::pages::download(
                b.data,
                "application/octet-stream",
                &format!("certraft-{date}.backup"),
            )
        }
        Err(e) => {
            let (status, _, message, hint) = e.parts();
            refused(&s, status, message, hint)
        }
    }
}

async fn restore(State(st): State<S>, headers: HeaderMap, mp: Multipart) -> Response {
    let (s, up) = match posted_upload(&st, &headers, mp).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(file) = up.files.first() else {
        return (
            StatusCode::BAD_REQUEST,
            backup_page(
                &s,
                Some(Alert::Refused {
                    message: "no backup file was uploaded".into(),
                    hint: Some("choose the file `certraft backup create` or this page made".into()),
                }),
                None,
            ),
        )
            .into_response();
    };
    let done = crate::api::backup::restore(
        State(st.clone()),
        Extension(Actor(s.actor.clone())),
        Json(RestoreRequest {
            data: file.data.clone(),
            passphrase: up.text("passphrase").to_string(),
        }),
    )
    .await;
    match done {
        Ok(Json(r)) => backup_page(&s, None, Some(&r)).into_response(),
        Err(e) => {
            let (status, _, message, hint) = e.parts();
            (
                status,
                backup_page(&s, Some(Alert::Refused { message, hint }), None),
            )
                .into_response()
        }
    }
}
