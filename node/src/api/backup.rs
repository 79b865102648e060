//! Backup and restore routes.

use axum::extract::State;
use axum::{Extension, Json};

use super::certs::check_strength;
use super::dto::*;
use super::error::AppError;
use super::server::*;
use crate::bundle::Passphrase;
use crate::clock::unix_now as now;
use crate::inventory::{Command, NewBundle, Outcome};

pub(super) async fn backup(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<BackupRequest>,
) -> Result<Json<BackupResponse>, AppError> {
    check_strength(&body.passphrase, body.allow_weak_passphrase, "backup")?;
    let inv = st.read_barrier().await?;
    let passphrase = Passphrase::new(body.passphrase.as_str());
    let keyring = st.keyring.clone();
    let count = inv.bundles.len();
    let data =
        tokio::task::spawn_blocking(move || crate::backup::create(&inv, &keyring, &passphrase))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::bad_request(e.code(), e.to_string()))?;
    tracing::info!(by = %actor.0, bundles = count, "backup created");
    st.record(
        &actor.0,
        format!("backup of {count} bundles with their keys"),
    )
    .await;
    Ok(Json(BackupResponse {
        data,
        bundles: count,
    }))
}

/// Bundles per Raft entry when restoring a backup (about 40 KiB per entry for P-256).
pub(super) const RESTORE_ENTRY_BUNDLES: usize = 32;

/// A restore's bundles cut into entries of at most [`RESTORE_ENTRY_BUNDLES`] bundles and
/// half of [`MAX_ENTRY_BYTES`] of sealed records each (large RSA chains fill an entry sooner).
pub(super) fn restore_entries(bundles: &[NewBundle]) -> Vec<&[NewBundle]> {
    let budget = MAX_ENTRY_BYTES / 2;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, b) in bundles.iter().enumerate() {
        let size = b.sealed.blob.len() + 512;
        if i > start && (i - start >= RESTORE_ENTRY_BUNDLES || bytes + size > budget) {
            out.push(&bundles[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < bundles.len() {
        out.push(&bundles[start..]);
    }
    out
}

pub(super) async fn restore(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<RestoreRequest>,
) -> Result<Json<RestoreResponse>, AppError> {
    let passphrase = Passphrase::new(body.passphrase.as_str());
    let keyring = st.keyring.clone();
    let _turn = tokio::time::timeout(st.timeout, st.parsing.acquire())
        .await
        .map_err(|_| {
            AppError::NoLeader("this node is busy parsing other uploads; retry shortly".into())
        })?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let (bundles, default) = tokio::task::spawn_blocking(move || {
        crate::backup::open(&body.data, &passphrase, &keyring, now())
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(|e| AppError::bad_request(e.code(), e.to_string()))?;
    drop(_turn);
    // Refuse a name clash before anything commits (apply checks again, per entry).
    {
        let inv = st.sm.inventory();
        for b in &bundles {
            if inv.by_id(&b.sealed.id).is_some() {
                continue;
            }
            if let Some(existing) = inv.bundles.get(&b.name) {
                return Err(AppError::from(crate::inventory::Refusal::NameTaken {
                    name: b.name.clone(),
                    existing: hex::encode(&existing.id()[..6]),
                }));
            }
        }
    }
    // Many small entries rather than one large one: openraft gives each AppendEntries one
    // heartbeat interval (100 ms) to be sent, fsynced and answered, and a multi-megabyte
    // entry misses that on every retry, stalling replication. Each entry is idempotent by
    // bundle id, so a restore cut short by a failover is finished by running it again.
    let (mut restored, mut already_present) = (Vec::new(), Vec::new());
    for chunk in restore_entries(&bundles) {
        let (outcome, _) = st
            .propose(
                &actor.0,
                Command::Restore {
                    bundles: chunk.to_vec(),
                    default: default.clone(),
                },
            )
            .await?;
        let Outcome::Restored {
            restored: r,
            already_present: a,
        } = outcome
        else {
            return Err(AppError::Internal(format!("restore answered {outcome:?}")));
        };
        restored.extend(r);
        already_present.extend(a);
    }
    let inv = st.sm.inventory();
    Ok(Json(RestoreResponse {
        restored,
        already_present,
        default: inv.default.clone(),
    }))
}
