//! Certificate routes: list, show, import (with dry run), rotate, remove, export, the
//! default, and the audit log.

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::dto::*;
use super::error::AppError;
use super::server::*;
use crate::bundle::assemble::fmt_time;
use crate::bundle::{
    assemble, export_pem, export_pem_with_key, export_pkcs12, AssembleOptions, Bundle, ParsedFile,
    Passphrase, PemKey, Pkcs12Profile,
};
use crate::clock::unix_now as now;
use crate::inventory::{
    BundleMeta, BundleStatus, Command, Inventory, NewBundle, Outcome, StoredBundle,
};

pub(super) fn status_of(b: &StoredBundle, now: i64) -> &'static str {
    match b.status {
        BundleStatus::Retired => "retired",
        BundleStatus::Active if b.meta.not_after < now => "expired",
        BundleStatus::Active if b.meta.not_before > now => "not-yet-valid",
        BundleStatus::Active => "active",
    }
}

pub(super) fn key_text(meta: &BundleMeta) -> String {
    serde_json::to_value(meta.key)
        .ok()
        .and_then(|v| {
            let alg = v.get("algorithm")?.as_str()?.to_string();
            Some(match v.get("bits").and_then(|b| b.as_u64()) {
                Some(bits) => format!("{alg}-{bits}"),
                None => alg,
            })
        })
        .unwrap_or_default()
}

pub(super) fn summary(inv: &Inventory, b: &StoredBundle, now: i64) -> CertSummary {
    CertSummary {
        name: b.name.clone(),
        id: hex::encode(b.id()),
        hostnames: b.meta.hostnames.clone(),
        subject: b.meta.subject.clone(),
        issuer: b.meta.issuer.clone(),
        not_before: fmt_time(b.meta.not_before),
        not_after: fmt_time(b.meta.not_after),
        not_after_unix: b.meta.not_after,
        status: status_of(b, now).into(),
        is_default: inv.default.as_deref() == Some(b.name.as_str()),
        key: key_text(&b.meta),
        completeness: serde_json::to_value(b.meta.completeness)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        imported_at: fmt_time(b.imported_at),
        imported_by: b.imported_by.clone(),
    }
}

pub(super) async fn list_certs(State(st): State<S>) -> Result<Json<CertList>, AppError> {
    let inv = st.read_barrier().await?;
    let now = now();
    Ok(Json(CertList {
        certs: inv
            .bundles
            .values()
            .map(|b| summary(&inv, b, now))
            .collect(),
        default: inv.default.clone(),
    }))
}

pub(super) fn find<'a>(inv: &'a Inventory, name: &str) -> Result<&'a StoredBundle, AppError> {
    inv.bundles.get(name).ok_or_else(|| {
        AppError::Refused(crate::inventory::Refusal::NotFound {
            name: name.to_string(),
        })
    })
}

pub(super) async fn show_cert(
    State(st): State<S>,
    Path(name): Path<String>,
) -> Result<Json<CertDetail>, AppError> {
    let inv = st.read_barrier().await?;
    let b = find(&inv, &name)?;
    let now = now();
    let material = b.sealed.open(&st.keyring)?;
    let mut chain = Vec::new();
    let mut warnings = Vec::new();
    for der in material.certs() {
        if let Ok(c) = crate::bundle::cert::parse_cert(der) {
            chain.push(ChainCert {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                not_after: fmt_time(c.not_after),
                sha256: c.sha256.clone(),
            });
        }
    }
    if b.meta.not_after < now + 30 * 86_400 && b.meta.not_after >= now {
        warnings.push(format!("expires {}", fmt_time(b.meta.not_after)));
    }
    let serving = b
        .meta
        .hostnames
        .iter()
        .filter(|h| inv.serving(h, now) == Some(b.name.as_str()))
        .cloned()
        .collect();
    Ok(Json(CertDetail {
        summary: summary(&inv, b, now),
        chain,
        serving,
        uses: super::console::uses(&inv, &b.name, now),
        warnings,
        renewal: super::issuing::renewal_info(&inv, b),
    }))
}

/// Parses and assembles uploaded files exactly as `certraft inspect` does, on the blocking
/// pool and at most [`parse_concurrency`] at a time: parsing runs password KDFs (capped, but
/// seconds at the cap), which must never hold the async workers that answer `/healthz`,
/// serve TLS and send Raft heartbeats. Waiting for a turn is bounded by the node's timeout.
pub(super) async fn assemble_uploaded(
    st: &AppState,
    src: BundleSource,
) -> Result<Bundle, AppError> {
    cpu_bound(st, move || assemble_source(&src)).await
}

/// Runs parsing (password KDFs) on the blocking pool, at most [`parse_concurrency`] at a
/// time, waiting for a turn at most the node's timeout: it must never hold the async
/// workers that serve TLS and send Raft heartbeats.
pub(crate) async fn cpu_bound<T, F>(st: &AppState, work: F) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    in_lane(&st.parsing, st.timeout, "parsing uploads", work).await
}

/// As [`cpu_bound`], in the key-generation lane (key generation and signing for issues,
/// CSRs and renewals), waiting for a turn at most [`super::server::KEYGEN_QUEUE_WAIT`].
pub(crate) async fn keygen_bound<T, F>(st: &AppState, work: F) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    in_lane(
        &st.keygen,
        super::server::KEYGEN_QUEUE_WAIT,
        "generating keys",
        work,
    )
    .await
}

async fn in_lane<T, F>(
    lane: &tokio::sync::Semaphore,
    wait: std::time::Duration,
    doing: &str,
    work: F,
) -> Result<T, AppError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let _turn = tokio::time::timeout(wait, lane.acquire())
        .await
        .map_err(|_| {
            AppError::NoLeader(format!(
                "this node has been busy {doing} ({} at a time) for {}s; retry shortly",
                parse_concurrency(),
                wait.as_secs()
            ))
        })?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::Internal(format!("CPU-bound work failed: {e}")))?
}

pub(super) fn assemble_source(src: &BundleSource) -> Result<Bundle, AppError> {
    assemble_reporting(src).map(|(bundle, _)| bundle)
}

/// As [`assemble_source`], with what each file held (`certraft inspect`'s file list).
pub(super) fn assemble_reporting(
    src: &BundleSource,
) -> Result<(Bundle, Vec<crate::bundle::report::FileSummary>), AppError> {
    if src.files.is_empty() {
        return Err(AppError::bad_request(
            "no_files",
            "no files were uploaded; pass the certificate and key files",
        ));
    }
    // The per-file caps (size, KDF work) would multiply with the file count.
    if src.files.len() > MAX_UPLOAD_FILES {
        return Err(AppError::TooLarge(format!(
            "{} files were uploaded; a bundle is made from at most {MAX_UPLOAD_FILES} (a certificate, a key and a chain usually take one to three)",
            src.files.len()
        )));
    }
    let passphrase = src.passphrase.as_ref().map(|p| Passphrase::new(p.as_str()));
    let mut parsed: Vec<ParsedFile> = Vec::with_capacity(src.files.len());
    for f in &src.files {
        parsed.push(crate::bundle::parse_file(
            &f.name,
            &f.data,
            passphrase.as_ref(),
        )?);
    }
    let files = parsed
        .iter()
        .map(crate::bundle::report::FileSummary::of)
        .collect();
    let options = AssembleOptions {
        allow_incomplete: src.allow_incomplete,
        allow_expired: src.allow_expired,
    };
    Ok((assemble(parsed, options, now())?, files))
}

pub(super) fn default_name(b: &Bundle) -> String {
    let id = b.id().to_hex();
    b.hostnames()
        .into_iter()
        .find(|h| crate::inventory::valid_name(h))
        .unwrap_or_else(|| format!("bundle-{}", &id[..12]))
}

pub(super) fn new_bundle(st: &AppState, bundle: &Bundle, name: String) -> NewBundle {
    NewBundle {
        name,
        sealed: bundle.seal(&st.keyring),
        meta: BundleMeta::of(bundle),
    }
}

pub(super) async fn import(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<ImportRequest>,
) -> Result<Json<ImportResponse>, AppError> {
    let bundle = assemble_uploaded(&st, body.source.clone()).await?;
    let name = body.name.clone().unwrap_or_else(|| default_name(&bundle));
    let warnings: Vec<String> = bundle
        .warnings()
        .iter()
        .map(|w| w.message.clone())
        .collect();
    let mut resp = ImportResponse {
        outcome: ImportOutcome::DryRun,
        name: name.clone(),
        id: bundle.id().to_hex(),
        hostnames: bundle.hostnames(),
        not_after: fmt_time(bundle.leaf().not_after),
        completeness: serde_json::to_value(bundle.completeness())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        warnings,
        index: None,
    };
    let nb = new_bundle(&st, &bundle, name);
    let command = Command::Import {
        bundle: nb,
        make_default: body.make_default,
    };
    if body.dry_run {
        // The very checks a real import meets: `apply` on a copy of the current state (cheap:
        // the bundle maps are shared until written), so a dry run never disagrees with it.
        let mut copy = (*st.read_barrier().await?).clone();
        let req = crate::inventory::Request::new(actor.0.as_str(), now(), command);
        match crate::inventory::apply(&mut copy, &req)? {
            Outcome::Imported { .. } => {}
            Outcome::AlreadyPresent { name, .. } => {
                resp.outcome = ImportOutcome::AlreadyPresent;
                resp.name = name;
            }
            other => return Err(AppError::Internal(format!("import answered {other:?}"))),
        }
        return Ok(Json(resp));
    }
    let (outcome, index) = st.propose(&actor.0, command).await?;
    resp.index = Some(index);
    match outcome {
        Outcome::Imported { name, .. } => {
            resp.outcome = ImportOutcome::Imported;
            resp.name = name;
        }
        Outcome::AlreadyPresent { name, .. } => {
            resp.outcome = ImportOutcome::AlreadyPresent;
            resp.name = name;
        }
        other => return Err(AppError::Internal(format!("import answered {other:?}"))),
    }
    Ok(Json(resp))
}

pub(super) async fn rotate(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(old): Path<String>,
    Json(body): Json<RotateRequest>,
) -> Result<Json<RotateResponse>, AppError> {
    let bundle = assemble_uploaded(&st, body.source.clone()).await?;
    let name = body.name.clone().unwrap_or_else(|| old.clone());
    let warnings = bundle
        .warnings()
        .iter()
        .map(|w| w.message.clone())
        .collect();
    let id = bundle.id().to_hex();
    let nb = new_bundle(&st, &bundle, name);
    let force = if body.force {
        crate::inventory::Force::Yes
    } else {
        crate::inventory::Force::No
    };
    let (outcome, index) = st
        .propose(
            &actor.0,
            Command::Rotate {
                old,
                new: nb,
                force,
            },
        )
        .await?;
    match outcome {
        Outcome::Rotated {
            old,
            retired_as,
            new,
        } => Ok(Json(RotateResponse {
            old,
            retired_as,
            new,
            id,
            warnings,
            index: Some(index),
        })),
        Outcome::AlreadyPresent { name, .. } => Err(AppError::BadRequest {
            code: "already_present",
            message: format!("this bundle is already in the inventory as {name}; nothing was rotated"),
            hint: Some(format!("to serve it instead of the old one, `certraft cert default {name}` or remove the old bundle")),
        }),
        other => Err(AppError::Internal(format!("rotate answered {other:?}"))),
    }
}

#[derive(Default, Deserialize)]
pub(super) struct ForceQuery {
    #[serde(default)]
    pub(super) force: bool,
}

pub(super) async fn remove_cert(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Query(q): Query<ForceQuery>,
) -> Result<Json<Done>, AppError> {
    let force = if q.force {
        crate::inventory::Force::Yes
    } else {
        crate::inventory::Force::No
    };
    let (_, index) = st
        .propose(
            &actor.0,
            Command::Remove {
                name: name.clone(),
                force,
            },
        )
        .await?;
    Ok(Json(Done {
        message: format!("removed {name}"),
        index: Some(index),
    }))
}

/// Refuses a passphrase too short to protect keys that leave the cluster, unless asked.
pub(super) fn check_strength(
    passphrase: &str,
    allow_weak: bool,
    what: &str,
) -> Result<(), AppError> {
    if allow_weak || strong_enough(passphrase) {
        return Ok(());
    }
    Err(AppError::BadRequest {
        code: "weak_passphrase",
        message: format!(
            "the {what} passphrase has {} characters; at least {MIN_PASSPHRASE_CHARS} are required, because it alone protects the private keys once the file leaves the cluster",
            passphrase.chars().count()
        ),
        hint: Some("use a longer passphrase (a few random words), or pass --allow-weak-passphrase if the receiving system cannot take one".into()),
    })
}

pub(super) async fn export(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Json(body): Json<ExportRequest>,
) -> Result<Json<ExportResponse>, AppError> {
    let encrypted_key = body.format == ExportFormat::Pem && body.with_key && !body.unencrypted_key;
    if body.with_key && body.format != ExportFormat::Pem {
        return Err(AppError::BadRequest {
            code: "usage",
            message: "with_key applies to the PEM format (a PKCS#12 export always holds the key)"
                .into(),
            hint: Some("drop --with-key, or use --format pem".into()),
        });
    }
    if let (true, Some(p)) = (
        body.format == ExportFormat::P12 || encrypted_key,
        body.passphrase.as_ref(),
    ) {
        check_strength(p, body.allow_weak_passphrase, "export")?;
    }
    let inv = st.read_barrier().await?;
    let b = find(&inv, &name)?;
    let material = b.sealed.open(&st.keyring)?;
    let parts = crate::bundle::ExportParts::from(&material);
    let mut warnings = Vec::new();
    let data = match body.format {
        ExportFormat::Pem if !body.with_key => export_pem(&parts).into_bytes(),
        ExportFormat::Pem => {
            let key = if body.unencrypted_key {
                warnings.push(crate::bundle::export::UNENCRYPTED_KEY_WARNING.to_string());
                None
            } else {
                let Some(p) = body.passphrase.as_ref() else {
                    return Err(AppError::BadRequest {
                        code: "passphrase_required",
                        message: "a PEM export with the key encrypts it and needs a passphrase".into(),
                        hint: Some("pass --passphrase-file F or set CERTRAFT_PASSPHRASE; or --unencrypted-key for a plain key (not advised)".into()),
                    });
                };
                Some(Passphrase::new(p.as_str()))
            };
            // PBKDF2 at 600,000 iterations is CPU work: keep it off the async workers.
            let parts_owned = (material.key_pkcs8().to_vec(), material.certs().to_vec());
            tokio::task::spawn_blocking(move || {
                let pkcs8 = Zeroizing::new(parts_owned.0);
                let parts = crate::bundle::ExportParts {
                    key_pkcs8: &pkcs8,
                    certs: parts_owned.1.iter().map(Vec::as_slice).collect(),
                };
                let how = match &key {
                    Some(p) => PemKey::Encrypted(p),
                    None => PemKey::Plain,
                };
                export_pem_with_key(&parts, how).map(String::into_bytes)
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??
        }
        ExportFormat::P12 => {
            let Some(p) = body.passphrase.as_ref() else {
                return Err(AppError::BadRequest {
                    code: "passphrase_required",
                    message: "PKCS#12 export needs a passphrase".into(),
                    hint: Some("pass --passphrase-file F or set CERTRAFT_PASSPHRASE".into()),
                });
            };
            let passphrase = Passphrase::new(p.as_str());
            let profile = if body.legacy {
                warnings.push(crate::bundle::export::LEGACY_WARNING.to_string());
                Pkcs12Profile::Legacy
            } else {
                Pkcs12Profile::Modern
            };
            // PBKDF2 at 600,000 iterations is CPU work: keep it off the async workers.
            let parts_owned = (material.key_pkcs8().to_vec(), material.certs().to_vec());
            let name2 = name.clone();
            tokio::task::spawn_blocking(move || {
                let key = Zeroizing::new(parts_owned.0);
                let parts = crate::bundle::ExportParts {
                    key_pkcs8: &key,
                    certs: parts_owned.1.iter().map(Vec::as_slice).collect(),
                };
                export_pkcs12(&parts, &name2, &passphrase, profile)
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??
        }
    };
    let what = match body.format {
        ExportFormat::Pem if body.unencrypted_key => {
            format!("export {name} with its key unencrypted (PEM)")
        }
        ExportFormat::Pem if body.with_key => format!("export {name} with its key encrypted (PEM)"),
        ExportFormat::Pem => format!("export {name} (certificates only, PEM)"),
        ExportFormat::P12 if body.legacy => format!("export {name} with its key (legacy PKCS#12)"),
        ExportFormat::P12 => format!("export {name} with its key (PKCS#12)"),
    };
    st.record(&actor.0, what).await;
    Ok(Json(ExportResponse {
        format: body.format,
        data,
        warnings,
    }))
}

pub(super) async fn get_default(State(st): State<S>) -> Result<Json<DefaultCert>, AppError> {
    let inv = st.read_barrier().await?;
    Ok(Json(DefaultCert {
        default: inv.default.clone(),
    }))
}

pub(super) async fn set_default(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<SetDefault>,
) -> Result<Json<DefaultCert>, AppError> {
    st.propose(
        &actor.0,
        Command::SetDefault {
            name: body.name.clone(),
        },
    )
    .await?;
    Ok(Json(DefaultCert {
        default: Some(body.name),
    }))
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    /// The most recent `limit` records (all when absent).
    limit: Option<usize>,
}

pub(super) async fn audit(
    State(st): State<S>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditList>, AppError> {
    let inv = st.read_barrier().await?;
    let skip = q
        .limit
        .map(|l| inv.audit.len().saturating_sub(l))
        .unwrap_or(0);
    Ok(Json(AuditList {
        records: inv.audit[skip..].to_vec(),
    }))
}
