//! The leader's duties for certificates born in the cluster (issue 14), each shaped by
//! [`while_leading`]: make the local issuer once; renew what falls due; queue expiry notices
//! as certificates cross their targets' thresholds; deliver queued notices. Every effect is a
//! Raft entry (`Renew`, `RenewalFailed`, `QueueExpiryNotices`, `NoticesDelivered`), so a new
//! leader resumes exactly where the old one stopped: `Renew` names the bundle it replaces,
//! and a second proposal for the same renewal is refused by `apply`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::duties::while_leading;
use crate::api::error::AppError;
use crate::api::server::AppState;
use crate::clock::unix_now as now;
use crate::inventory::{
    crossed_thresholds, renewal_backoff, renewal_due, renewal_seed, renewal_step, BundleStatus,
    Command, ExpiryNotice, Managed, NoticeEvent, RenewalStep,
};
use crate::issuing::notify;

/// How often the renewal and notice duties look (tests shorten it; one pass is cheap).
pub(super) fn tick() -> Duration {
    let ms = std::env::var("CERTRAFT_ISSUING_TICK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    Duration::from_millis(ms)
}

/// Renewals in flight at once (key generation itself is bounded by the parsing semaphore;
/// this keeps proposals pipelined through Raft).
const RENEWALS_IN_FLIGHT: usize = 32;
/// Renewals started per pass, at most.
const RENEWALS_PER_PASS: usize = 1024;

/// Crash injection for the renewal tests: `CERTRAFT_TEST_CRASH_AT=renew-before-commit@ID`
/// (the bundle is made, not proposed) or `renew-after-commit@ID` (committed, nothing after
/// it), on node `ID` only, so the leader that takes over renews without crashing too.
pub(super) fn crash_point(step: &str, node_id: u64) {
    if std::env::var("CERTRAFT_TEST_CRASH_AT").is_ok_and(|s| s == format!("{step}@{node_id}")) {
        eprintln!("certraft: crash injected at {step} (CERTRAFT_TEST_CRASH_AT)");
        std::process::abort();
    }
}

/// On the leader: makes the cluster's local issuer once every member can apply it.
pub(super) async fn ensure_local_issuer(state: Arc<AppState>, cancel: CancellationToken) {
    let (raft, me) = (state.raft.clone(), state.node_id);
    while_leading(raft, me, tick(), cancel, || async {
        if state.sm.inventory().issuance.local_issuer.is_some() || state.core.is_none() {
            return;
        }
        match crate::api::issuing::ensure_local_issuer(&state).await {
            Ok(issuer) => {
                tracing::info!(subject = %issuer.subject, "made the cluster's local issuer")
            }
            Err(AppError::UpgradeRequired(_)) => {}
            Err(e) => tracing::debug!(error = ?e, "local issuer not made yet"),
        }
    })
    .await;
}

/// On the leader: renews every managed certificate that is due, by a `Renew` entry that
/// names the bundle it replaces; a failure becomes a `RenewalFailed` entry with its backoff.
pub(super) async fn renew_due(state: Arc<AppState>, cancel: CancellationToken) {
    let (raft, me) = (state.raft.clone(), state.node_id);
    while_leading(raft, me, tick(), cancel, || async {
        let inv = state.sm.inventory();
        let Some(issuer) = inv.issuance.local_issuer.clone() else {
            return;
        };
        let Some(core) = state.core.clone() else {
            return;
        };
        let t = now();
        let due: Vec<(String, [u8; 32], Managed)> = inv
            .issuance
            .managed
            .iter()
            .filter(|(_, m)| !m.is_acme())
            .filter_map(|(name, m)| {
                let b = inv.bundles.get(name)?;
                if b.status != BundleStatus::Active {
                    return None;
                }
                let at = renewal_due(
                    b.meta.not_before,
                    b.meta.not_after,
                    m.renew_at_permille,
                    &renewal_seed(name, &b.id()),
                );
                (renewal_step(at, &m.renewal, t) == RenewalStep::Renew)
                    .then(|| (name.clone(), b.id(), m.clone()))
            })
            .take(RENEWALS_PER_PASS)
            .collect();
        drop(inv);
        if due.is_empty() {
            return;
        }
        tracing::info!(count = due.len(), "renewing certificates that fell due");
        let mut running = JoinSet::new();
        for (name, expect_id, managed) in due {
            while running.len() >= RENEWALS_IN_FLIGHT {
                running.join_next().await;
            }
            let (state, issuer, core) = (state.clone(), issuer.clone(), core.clone());
            running.spawn(async move {
                renew_one(&state, &issuer, &core, name, expect_id, managed).await;
            });
        }
        while running.join_next().await.is_some() {}
    })
    .await;
}

async fn renew_one(
    state: &AppState,
    issuer: &crate::inventory::LocalIssuer,
    core: &Arc<crate::bundle::Keyring>,
    name: String,
    expect_id: [u8; 32],
    managed: Managed,
) {
    let (i, c, k, n, m) = (
        issuer.clone(),
        core.clone(),
        state.keyring.clone(),
        name.clone(),
        managed.clone(),
    );
    let made = crate::api::certs::keygen_bound(state, move || {
        if std::env::var("CERTRAFT_TEST_RENEW_FAIL").is_ok_and(|v| v == n) {
            return Err(AppError::Internal(
                "renewal failure injected (CERTRAFT_TEST_RENEW_FAIL)".into(),
            ));
        }
        Ok(crate::issuing::issue_managed(&i, &c, &k, &n, &m, now())?)
    })
    .await;
    let command = match made {
        Ok(new) => {
            crash_point("renew-before-commit", state.node_id);
            Command::Renew {
                name: name.clone(),
                expect_id,
                new,
            }
        }
        Err(e) => {
            let error = match &e {
                AppError::Internal(m) => m.clone(),
                other => format!("{other:?}"),
            };
            let failures = managed.renewal.consecutive_failures + 1;
            let retry_at = now() + renewal_backoff(failures, managed.lifetime_secs);
            tracing::warn!(cert = %name, %error, failures, retry_at, "renewal failed; backing off");
            Command::RenewalFailed {
                name: name.clone(),
                expect_id,
                error,
                retry_at,
            }
        }
    };
    let renewing = matches!(command, Command::Renew { .. });
    match state.propose("certraft-node", command).await {
        Ok(_) if renewing => {
            crash_point("renew-after-commit", state.node_id);
            tracing::info!(cert = %name, "renewed")
        }
        Ok(_) => {}
        Err(AppError::Refused(r)) => {
            tracing::debug!(cert = %name, refusal = %r, "renewal not applied")
        }
        Err(e) => {
            tracing::warn!(cert = %name, error = ?e, "renewal outcome not committed; the next pass looks again")
        }
    }
}

/// On the leader: queues one notice per target for every expiry threshold a certificate
/// has crossed and that was not queued before (recorded through Raft, so exactly once
/// cluster-wide, whoever leads).
pub(super) async fn queue_expiry_notices(state: Arc<AppState>, cancel: CancellationToken) {
    let (raft, me) = (state.raft.clone(), state.node_id);
    // A pass reads every bundle for every target: five ticks apart.
    while_leading(raft, me, tick() * 5, cancel, || async {
        let inv = state.sm.inventory();
        if inv.issuance.notify_targets.is_empty() {
            return;
        }
        let t = now();
        let mut notices = Vec::new();
        for target in inv.issuance.notify_targets.values() {
            let done = inv.issuance.expiry_noticed.get(&target.name);
            for b in inv.bundles.values() {
                if b.status != BundleStatus::Active {
                    continue;
                }
                let id = hex::encode(b.id());
                let already: &[i64] = done
                    .and_then(|d| d.get(&id))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                if let Some((tightest, thresholds)) =
                    crossed_thresholds(&target.before_secs, b.meta.not_after, t, already)
                {
                    notices.push(ExpiryNotice {
                        target: target.name.clone(),
                        bundle_id: id.clone(),
                        event: NoticeEvent::Expiring {
                            name: b.name.clone(),
                            id,
                            hostnames: b.meta.hostnames.clone(),
                            not_after: b.meta.not_after,
                            threshold_secs: tightest,
                        },
                        thresholds,
                    });
                }
                if notices.len() >= 256 {
                    break;
                }
            }
        }
        drop(inv);
        if notices.is_empty() {
            return;
        }
        let count = notices.len();
        match state
            .propose("certraft-node", Command::QueueExpiryNotices { notices })
            .await
        {
            Ok(_) => tracing::info!(count, "queued expiry notices"),
            Err(e) => tracing::debug!(error = ?e, "expiry notices not queued yet"),
        }
    })
    .await;
}

/// Per target, how long delivery waits after failures (leader-local: a new leader retries at
/// once, which at worst repeats a notice its receiver dedupes by delivery id).
#[derive(Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

/// The longest wait between two attempts at a target that keeps failing.
const MAX_DELIVERY_BACKOFF: Duration = Duration::from_secs(30);

/// On the leader: posts queued notices, oldest first, one target at a time each (a receiver
/// that hangs holds up only its own notices, for at most the POST timeout), and removes the
/// delivered ones from the outbox through Raft.
pub(super) async fn deliver_notices(state: Arc<AppState>, cancel: CancellationToken) {
    let (raft, me) = (state.raft.clone(), state.node_id);
    let backoff = Arc::new(std::sync::Mutex::new(HashMap::<String, Backoff>::new()));
    while_leading(raft, me, tick(), cancel, || async {
        let inv = state.sm.inventory();
        if inv.issuance.notices.is_empty() {
            return;
        }
        let Some(core) = state.core.clone() else {
            return;
        };
        let mut by_target: HashMap<String, Vec<crate::inventory::Notice>> = HashMap::new();
        for n in inv.issuance.notices.values() {
            let list = by_target.entry(n.target.clone()).or_default();
            if list.len() < 64 {
                list.push(n.clone());
            }
        }
        let mut running = JoinSet::new();
        for (name, notices) in by_target {
            let Some(target) = inv.issuance.notify_targets.get(&name).cloned() else {
                continue;
            };
            {
                let b = backoff.lock().expect("backoff lock");
                if b.get(&name)
                    .and_then(|b| b.until)
                    .is_some_and(|u| Instant::now() < u)
                {
                    continue;
                }
            }
            let secret = match crate::api::notify::open_secret(&core, &target) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(target = %name, error = %e, "the notify target's secret does not open; remove and add it again");
                    continue;
                }
            };
            let cluster_id = state.cluster_id.clone();
            running.spawn(async move {
                let mut delivered = Vec::new();
                let mut error = None;
                match notify::client_for(&target) {
                    Err(e) => error = Some(e),
                    Ok(client) => {
                        for n in notices {
                            let body = notify::body(&cluster_id, &n);
                            let delivery = notify::delivery_id(&cluster_id, n.id);
                            match notify::post(&client, &target, &secret, &delivery, notify::kind(&n.event), body, now()).await {
                                Ok(_) => delivered.push(n.id),
                                Err(e) => {
                                    error = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                }
                (name, delivered, error)
            });
        }
        drop(inv);
        let mut delivered = Vec::new();
        while let Some(Ok((name, ids, error))) = running.join_next().await {
            delivered.extend(ids);
            let mut map = backoff.lock().expect("backoff lock");
            let b = map.entry(name.clone()).or_default();
            match error {
                None => *b = Backoff::default(),
                Some(e) => {
                    b.failures += 1;
                    let wait = Duration::from_secs(1u64 << b.failures.min(6)).min(MAX_DELIVERY_BACKOFF);
                    b.until = Some(Instant::now() + wait);
                    if b.failures == 1 || b.failures % 10 == 0 {
                        tracing::warn!(target = %name, error = %e, failures = b.failures, retry_in = ?wait, "notice not delivered; retrying");
                    }
                }
            }
        }
        if delivered.is_empty() {
            return;
        }
        if let Err(e) = state
            .propose("certraft-node", Command::NoticesDelivered { ids: delivered })
            .await
        {
            tracing::warn!(error = ?e, "delivered notices not recorded; they may be sent again (receivers dedupe by x-certraft-delivery)");
        }
    })
    .await;
}
