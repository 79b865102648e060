//! Routes for keys born in the cluster: pending CSRs (create, list, show, complete, remove),
//! the local issuer, `cert issue`, and the public issuing-CA bundle clients pull.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sha2::{Digest, Sha256};

use super::certs::{cpu_bound, keygen_bound, new_bundle};
use super::dto::*;
use super::error::AppError;
use super::server::*;
use crate::bundle::assemble::fmt_time;
use crate::bundle::{assemble, AssembleError, AssembleOptions};
use crate::clock::unix_now as now;
use crate::inventory::{
    renewal_due, renewal_seed, renewal_step, Command, Force, Inventory, LocalIssuer, Managed,
    Outcome, PendingCsr, Refusal, RenewalStep, StoredBundle, DEFAULT_RENEW_AT_PERMILLE,
    LOCAL_ISSUER,
};
use crate::issuing::{keygen, local};

fn csr_info(c: &PendingCsr, index: Option<u64>) -> CsrInfo {
    CsrInfo {
        name: c.name.clone(),
        key: c.key_type,
        common_name: c.common_name.clone(),
        sans: c.sans.clone(),
        csr_pem: c.csr_pem.clone(),
        spki_sha256: c.spki_sha256.clone(),
        created_at: fmt_time(c.created_at),
        created_by: c.created_by.clone(),
        index,
    }
}

fn invalid_name(name: &str) -> AppError {
    AppError::Refused(Refusal::InvalidName {
        name: name.to_string(),
    })
}

pub(super) async fn create_csr(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<CsrCreateRequest>,
) -> Result<Json<CsrInfo>, AppError> {
    if !crate::inventory::valid_name(&body.name) {
        return Err(invalid_name(&body.name));
    }
    keygen::check_cn(&body.common_name)?;
    let sans = keygen::check_sans(&body.sans)?;
    // Checked before a key is made (seconds of CPU for RSA-4096); `apply` checks again.
    if st.sm.inventory().issuance.csrs.contains_key(&body.name) {
        return Err(AppError::Refused(Refusal::CsrNameTaken { name: body.name }));
    }
    let (key_type, cn, sans2) = (body.key, body.common_name.clone(), sans.clone());
    let (pkcs8, csr_pem, spki) = keygen_bound(&st, move || {
        let key = keygen::generate(key_type)?;
        let pem = keygen::csr_pem(&key, &cn, &sans2)?;
        let spki = keygen::spki_der(&key);
        Ok((key.pkcs8, pem, spki))
    })
    .await?;
    let created_at = now();
    let csr = PendingCsr {
        name: body.name.clone(),
        key_type,
        common_name: body.common_name,
        sans,
        csr_pem,
        spki_sha256: hex::encode(Sha256::digest(&spki)),
        sealed_key: st.keyring.seal(
            PendingCsr::key_record(&body.name, created_at).as_bytes(),
            &pkcs8,
        ),
        created_at,
        created_by: actor.0.clone(),
    };
    let info = csr_info(&csr, None);
    let (_, index) = st.propose(&actor.0, Command::CreateCsr { csr }).await?;
    Ok(Json(CsrInfo {
        index: Some(index),
        ..info
    }))
}

pub(super) async fn list_csrs(State(st): State<S>) -> Result<Json<CsrList>, AppError> {
    let inv = st.read_barrier().await?;
    Ok(Json(CsrList {
        csrs: inv
            .issuance
            .csrs
            .values()
            .map(|c| csr_info(c, None))
            .collect(),
    }))
}

fn find_csr(inv: &Inventory, name: &str) -> Result<PendingCsr, AppError> {
    inv.issuance.csrs.get(name).cloned().ok_or_else(|| {
        AppError::Refused(Refusal::CsrNotFound {
            name: name.to_string(),
        })
    })
}

pub(super) async fn show_csr(
    State(st): State<S>,
    Path(name): Path<String>,
) -> Result<Json<CsrInfo>, AppError> {
    let inv = st.read_barrier().await?;
    Ok(Json(csr_info(&find_csr(&inv, &name)?, None)))
}

pub(super) async fn remove_csr(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Done>, AppError> {
    let (_, index) = st
        .propose(&actor.0, Command::RemoveCsr { name: name.clone() })
        .await?;
    Ok(Json(Done {
        message: format!("removed csr {name}; its key is gone"),
        index: Some(index),
    }))
}

pub(super) async fn complete_csr(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Json(body): Json<CsrCompleteRequest>,
) -> Result<Json<CsrCompleteResponse>, AppError> {
    let inv = st.read_barrier().await?;
    let csr = find_csr(&inv, &name)?;
    drop(inv);
    if body.files.is_empty() {
        return Err(AppError::bad_request(
            "no_files",
            format!("no certificate given; pass the certificate the CA issued for csr {name}, and its chain"),
        ));
    }
    if body.files.len() > MAX_UPLOAD_FILES {
        return Err(AppError::TooLarge(format!(
            "{} files were uploaded; a certificate and its chain take at most {MAX_UPLOAD_FILES}",
            body.files.len()
        )));
    }
    let pkcs8 = st.keyring.open(
        PendingCsr::key_record(&csr.name, csr.created_at).as_bytes(),
        &csr.sealed_key,
    )?;
    let files = body.files.clone();
    let options = AssembleOptions {
        allow_incomplete: body.allow_incomplete,
        allow_expired: body.allow_expired,
    };
    let csr2 = csr.clone();
    let bundle = cpu_bound(&st, move || {
        let mut parsed = vec![crate::bundle::parse_file("pending.key", &pkcs8, None)?];
        for f in &files {
            let p = crate::bundle::parse_file(&f.name, &f.data, None)?;
            if !p.keys.is_empty() {
                return Err(AppError::BadRequest {
                    code: "unexpected_key",
                    message: format!("{} holds a private key; csr {}'s key is already in the cluster and is the one used", f.name, csr2.name),
                    hint: Some("give only the certificate the CA issued and its chain".into()),
                });
            }
            parsed.push(p);
        }
        assemble(parsed, options, now()).map_err(|e| match e {
            AssembleError::KeyMismatch { certs, .. } => AppError::Invalid {
                code: "key_mismatch",
                message: format!(
                    "no certificate given belongs to csr {}'s key ({}, public key SHA-256 {}); certificates given: {}; complete it with the certificate the CA issued for this CSR",
                    csr2.name,
                    csr2.key_type,
                    &csr2.spki_sha256[..16],
                    certs.join(", ")
                ),
            },
            other => other.into(),
        })
    })
    .await?;
    let bundle_name = body.bundle_name.clone().unwrap_or_else(|| csr.name.clone());
    let warnings: Vec<String> = bundle
        .warnings()
        .iter()
        .map(|w| w.message.clone())
        .collect();
    let nb = new_bundle(&st, &bundle, bundle_name);
    let force = if body.force { Force::Yes } else { Force::No };
    let (outcome, index) = st
        .propose(
            &actor.0,
            Command::CompleteCsr {
                csr: name,
                bundle: nb,
                make_default: body.make_default,
                force,
            },
        )
        .await?;
    let (outcome, name, retired_as) = match outcome {
        Outcome::Imported { name, .. } => ("imported", name, None),
        Outcome::AlreadyPresent { name, .. } => ("already_present", name, None),
        Outcome::Rotated {
            new, retired_as, ..
        } => ("rotated", new, Some(retired_as)),
        other => return Err(AppError::Internal(format!("complete answered {other:?}"))),
    };
    Ok(Json(CsrCompleteResponse {
        outcome: outcome.into(),
        name,
        id: bundle.id().to_hex(),
        hostnames: bundle.hostnames(),
        not_after: fmt_time(bundle.leaf().not_after),
        completeness: serde_json::to_value(bundle.completeness())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        retired_as,
        warnings,
        index: Some(index),
    }))
}

/// The local issuer, made (and committed) first if the cluster has none yet. Two leaders
/// racing both propose one; `apply` keeps the first, and both answer with it.
pub(crate) async fn ensure_local_issuer(st: &AppState) -> Result<LocalIssuer, AppError> {
    if let Some(issuer) = st.sm.inventory().issuance.local_issuer.clone() {
        return Ok(issuer);
    }
    let core = core_keyring(st)?;
    let cluster_id = st.cluster_id.clone();
    let issuer = keygen_bound(st, move || Ok(local::create(&cluster_id, &core, now())?)).await?;
    st.propose("certraft-node", Command::SetLocalIssuer { issuer })
        .await?;
    st.sm
        .inventory()
        .issuance
        .local_issuer
        .clone()
        .ok_or_else(|| AppError::Internal("the local issuer was committed but is absent".into()))
}

fn core_keyring(st: &AppState) -> Result<Arc<crate::bundle::Keyring>, AppError> {
    st.core
        .clone()
        .ok_or_else(|| crate::issuing::IssuingError::NoCoreKey.into())
}

fn issuer_pem(issuer: &LocalIssuer) -> String {
    crate::issuing::pem_lf("CERTIFICATE", issuer.cert_der.clone())
}

pub(super) async fn local_issuer(State(st): State<S>) -> Result<Json<IssuerInfo>, AppError> {
    st.read_barrier().await?;
    let issuer = ensure_local_issuer(&st).await?;
    let managed = st
        .sm
        .inventory()
        .issuance
        .managed
        .values()
        .filter(|m| m.issuer == LOCAL_ISSUER)
        .count();
    Ok(Json(IssuerInfo {
        name: LOCAL_ISSUER.into(),
        subject: issuer.subject.clone(),
        not_after: fmt_time(issuer.not_after),
        sha256: hex::encode(Sha256::digest(&issuer.cert_der)),
        pem: issuer_pem(&issuer),
        managed,
    }))
}

/// `GET /api/v1/trust/issuers`, no token: the CAs that issue the cluster's certificates, for
/// clients to trust (node-local: any node answers from its applied state).
pub(super) async fn trust_issuers(State(st): State<S>) -> Response {
    let inv = st.sm.inventory();
    let Some(issuer) = inv.issuance.local_issuer.as_ref() else {
        return AppError::NotFound {
            code: "no_issuer",
            message: "this cluster has not made its local issuer yet".into(),
            hint: Some(
                "the leader makes it within seconds of start; or run `certraft issuer local`"
                    .into(),
            ),
        }
        .into_response();
    };
    (
        [
            (
                "content-type",
                HeaderValue::from_static("application/x-pem-file"),
            ),
            ("cache-control", HeaderValue::from_static("max-age=300")),
        ],
        issuer_pem(issuer),
    )
        .into_response()
}

pub(super) async fn issue(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<IssueRequest>,
) -> Result<Response, AppError> {
    if !crate::inventory::valid_name(&body.name) {
        return Err(invalid_name(&body.name));
    }
    let sans = keygen::check_sans(&body.sans)?;
    let issuer_name = body.issuer.clone().unwrap_or_else(|| LOCAL_ISSUER.into());
    if issuer_name != LOCAL_ISSUER {
        return super::acme::issue(&st, &actor, &body, sans)
            .await
            .map(IntoResponse::into_response);
    }
    if body.challenge.is_some() || body.fallback.is_some() {
        return Err(AppError::bad_request(
            "invalid_input",
            "--challenge and --fallback are for certificates from an ACME issuer (--issuer NAME)",
        ));
    }
    let lifetime = body.lifetime_secs.unwrap_or(DEFAULT_ISSUE_LIFETIME_SECS);
    if !(MIN_ISSUE_LIFETIME_SECS..=MAX_ISSUE_LIFETIME_SECS).contains(&lifetime) {
        return Err(AppError::bad_request(
            "invalid_input",
            format!("a lifetime of {lifetime} s is outside {MIN_ISSUE_LIFETIME_SECS} s – 398 days; pass --days 1..398 (or --lifetime 10m for a test)"),
        ));
    }
    let permille = body.renew_at_permille.unwrap_or(DEFAULT_RENEW_AT_PERMILLE);
    if !(100..=950).contains(&permille) {
        return Err(AppError::bad_request(
            "invalid_input",
            format!("renewal at {permille}‰ of the lifetime is outside 100–950‰ (default 667: two thirds)"),
        ));
    }
    if let Some(existing) = st.sm.inventory().bundles.get(&body.name) {
        let id = hex::encode(&existing.sealed.id[..6]);
        return Err(AppError::Conflict {
            code: "name_taken",
            message: format!("the name {} is already used by bundle {id}", body.name),
            hint: Some(format!(
                "choose another name, or `certraft cert remove {}` first; a certificate the cluster issued is renewed by itself (`certraft cert show {}`)",
                body.name, body.name
            )),
        });
    }
    let issuer = ensure_local_issuer(&st).await?;
    let core = core_keyring(&st)?;
    let managed = Managed {
        issuer: issuer_name,
        sans,
        key_type: body.key,
        lifetime_secs: lifetime,
        renew_at_permille: permille,
        ..Default::default()
    };
    let (keyring, name, m) = (st.keyring.clone(), body.name.clone(), managed.clone());
    let nb = keygen_bound(&st, move || {
        Ok(crate::issuing::issue_managed(
            &issuer,
            &core,
            &keyring,
            &name,
            &m,
            now(),
        )?)
    })
    .await?;
    let resp = ImportResponse {
        outcome: ImportOutcome::Imported,
        name: nb.name.clone(),
        id: hex::encode(nb.sealed.id),
        hostnames: nb.meta.hostnames.clone(),
        not_after: fmt_time(nb.meta.not_after),
        completeness: serde_json::to_value(nb.meta.completeness)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        warnings: Vec::new(),
        index: None,
    };
    let (_, index) = st
        .propose(
            &actor.0,
            Command::Issue {
                bundle: nb,
                managed,
                make_default: body.make_default,
            },
        )
        .await?;
    Ok(Json(ImportResponse {
        index: Some(index),
        ..resp
    })
    .into_response())
}

/// `cert show`'s renewal block for a certificate the cluster issued.
pub(super) fn renewal_info(inv: &Inventory, b: &StoredBundle) -> Option<RenewalInfo> {
    let m = inv.issuance.managed.get(&b.name)?;
    let due = renewal_due(
        b.meta.not_before,
        b.meta.not_after,
        m.renew_at_permille,
        &renewal_seed(&b.name, &b.id()),
    );
    let next = match renewal_step(due, &m.renewal, now()) {
        RenewalStep::WaitUntil(at) => at,
        RenewalStep::Renew => now(),
    };
    Some(RenewalInfo {
        issuer: m.issuer.clone(),
        key: m.key_type,
        lifetime_secs: m.lifetime_secs,
        renew_at_permille: m.renew_at_permille,
        next_attempt: fmt_time(next),
        next_attempt_unix: next,
        last_attempt: m.renewal.last_attempt.map(fmt_time),
        last_result: m.renewal.last_result.clone(),
        consecutive_failures: m.renewal.consecutive_failures,
        renewals: m.renewal.renewals,
        acme: super::acme::state_of(inv, &b.name),
    })
}
