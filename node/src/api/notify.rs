//! Notify targets: webhooks that receive expiry and renewal notices (add, list, remove,
//! test). Their HMAC secrets are sealed under the core keyring before they enter the log.

use axum::extract::{Path, State};
use axum::{Extension, Json};

use super::dto::*;
use super::error::AppError;
use super::server::*;
use crate::bundle::assemble::fmt_time;
use crate::clock::unix_now as now;
use crate::inventory::{Command, NotifyTarget, Refusal, DEFAULT_BEFORE_SECS};
use crate::issuing::notify;

/// The most expiry thresholds one target has, and the widest.
const MAX_THRESHOLDS: usize = 10;
const MAX_THRESHOLD_SECS: i64 = 400 * 86_400;
/// Bounds on a given secret and on a target's CA file.
const MIN_SECRET_BYTES: usize = 16;
const MAX_SECRET_BYTES: usize = 1024;
const MAX_CA_PEM_BYTES: usize = 64 << 10;

fn bad(message: String, hint: &str) -> AppError {
    AppError::BadRequest {
        code: "invalid_input",
        message,
        hint: Some(hint.into()),
    }
}

pub(super) async fn add(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<NotifyAddRequest>,
) -> Result<Json<NotifyAddResponse>, AppError> {
    if !crate::inventory::valid_name(&body.name) {
        return Err(AppError::Refused(Refusal::InvalidName { name: body.name }));
    }
    notify::check_url(&body.url).map_err(|m| {
        bad(
            m,
            "give the receiver's https:// URL, e.g. --url https://hooks.example.com/certraft",
        )
    })?;
    let mut before = body
        .before_secs
        .clone()
        .unwrap_or_else(|| DEFAULT_BEFORE_SECS.to_vec());
    before.sort_unstable_by(|a, b| b.cmp(a));
    before.dedup();
    if before.is_empty()
        || before.len() > MAX_THRESHOLDS
        || before.iter().any(|t| !(1..=MAX_THRESHOLD_SECS).contains(t))
    {
        return Err(bad(
            format!("expiry thresholds {before:?} (seconds): give 1–{MAX_THRESHOLDS} of them, each between 1 s and 400 days"),
            "e.g. --before 30d,14d,7d,1d (the default)",
        ));
    }
    if let Some(ca) = &body.ca_pem {
        let blocks = pem::parse_many(ca).unwrap_or_default();
        if ca.len() > MAX_CA_PEM_BYTES
            || blocks.is_empty()
            || blocks.iter().any(|b| {
                b.tag() != "CERTIFICATE" || crate::bundle::cert::parse_cert(b.contents()).is_err()
            })
        {
            return Err(bad(
                format!("the receiver's CA file ({} bytes) is not PEM certificates (at most {MAX_CA_PEM_BYTES} bytes)", ca.len()),
                "give the CA certificate(s) that issued the receiver's certificate, PEM",
            ));
        }
    }
    let core = st
        .core
        .clone()
        .ok_or_else(|| AppError::from(crate::issuing::IssuingError::NoCoreKey))?;
    let (secret, generated) = match &body.secret {
        Some(s) => {
            let s = s.trim().to_string();
            if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&s.len()) {
                return Err(bad(
                    format!(
                        "the secret has {} bytes; give {MIN_SECRET_BYTES}–{MAX_SECRET_BYTES}",
                        s.len()
                    ),
                    "e.g. `openssl rand -hex 32 > hook.secret` and --secret-file hook.secret",
                ));
            }
            (zeroize::Zeroizing::new(s), None)
        }
        None => {
            use aes_gcm::aead::rand_core::RngCore;
            let mut raw = [0u8; 32];
            aes_gcm::aead::OsRng.fill_bytes(&mut raw);
            let s = zeroize::Zeroizing::new(hex::encode(raw));
            (s.clone(), Some(s))
        }
    };
    let created_at = now();
    let target = NotifyTarget {
        name: body.name.clone(),
        url: body.url.clone(),
        sealed_secret: core.seal(
            NotifyTarget::secret_record(&body.name, created_at).as_bytes(),
            secret.as_bytes(),
        ),
        ca_pem: body.ca_pem.clone(),
        before_secs: before,
        created_at,
        created_by: actor.0.clone(),
    };
    let (_, index) = st
        .propose(&actor.0, Command::AddNotifyTarget { target })
        .await?;
    Ok(Json(NotifyAddResponse {
        name: body.name,
        generated_secret: generated.map(|s| s.to_string()),
        index: Some(index),
    }))
}

pub(super) async fn list(State(st): State<S>) -> Result<Json<NotifyList>, AppError> {
    let inv = st.read_barrier().await?;
    let targets = inv
        .issuance
        .notify_targets
        .values()
        .map(|t| NotifyTargetInfo {
            name: t.name.clone(),
            url: t.url.clone(),
            before_secs: t.before_secs.clone(),
            has_ca: t.ca_pem.is_some(),
            pending: inv
                .issuance
                .notices
                .values()
                .filter(|n| n.target == t.name)
                .count(),
            created_at: fmt_time(t.created_at),
            created_by: t.created_by.clone(),
        })
        .collect();
    Ok(Json(NotifyList { targets }))
}

pub(super) async fn remove(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Done>, AppError> {
    let (_, index) = st
        .propose(&actor.0, Command::RemoveNotifyTarget { name: name.clone() })
        .await?;
    Ok(Json(Done {
        message: format!("removed notify target {name} and its queued notices"),
        index: Some(index),
    }))
}

/// Opens a target's HMAC secret (core keyring).
pub(crate) fn open_secret(
    core: &crate::bundle::Keyring,
    target: &NotifyTarget,
) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::bundle::SealError> {
    core.open(
        NotifyTarget::secret_record(&target.name, target.created_at).as_bytes(),
        &target.sealed_secret,
    )
}

pub(super) async fn test(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<NotifyTestResponse>, AppError> {
    let inv = st.read_barrier().await?;
    let target = inv
        .issuance
        .notify_targets
        .get(&name)
        .cloned()
        .ok_or_else(|| AppError::Refused(Refusal::NotifyNotFound { name: name.clone() }))?;
    drop(inv);
    let core = st
        .core
        .clone()
        .ok_or_else(|| AppError::from(crate::issuing::IssuingError::NoCoreKey))?;
    let secret = open_secret(&core, &target)?;
    let client = notify::client_for(&target)
        .map_err(|m| bad(m, "fix the target: remove it and add it again"))?;
    let at = now();
    let started = std::time::Instant::now();
    let result = notify::post(
        &client,
        &target,
        &secret,
        &format!("{}/test-{at}", st.cluster_id),
        "test",
        notify::test_body(&st.cluster_id, &name, at),
        at,
    )
    .await;
    st.record(
        &actor.0,
        format!(
            "test notify target {name}: {}",
            match &result {
                Ok(status) => format!("answered {status}"),
                Err(e) => e.clone(),
            }
        ),
    )
    .await;
    match result {
        Ok(status) => Ok(Json(NotifyTestResponse {
            name,
            status,
            millis: started.elapsed().as_millis() as u64,
        })),
        Err(e) => Err(AppError::Upstream {
            code: "receiver_failed",
            message: format!("the test notice to {} failed: {e}", target.url),
            hint: Some(format!(
                "check that the receiver is up and reachable from the leader, that its certificate chains to a public root or to the CA given with --receiver-ca-file, and that it answers 2xx; real notices to {name} keep being retried meanwhile"
            )),
        }),
    }
}
