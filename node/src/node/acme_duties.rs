//! The leader's ACME duty (issue 15), shaped by [`while_leading`]: for every ACME-managed
//! certificate, open an order when one is needed (first certificate, renewal, after a
//! failed order), carry an open order on, and record every step through Raft:
//!
//! 1. `OpenAcmeOrder`: the key (made first, sealed under the core keyring), the order URL and
//!    its challenges. Every serving node answers them once it applies this entry.
//! 2. The CA is told to validate only after every serving member (traffic nodes included,
//!    witnesses serve nothing) reports, in `/readyz`, that it has applied that entry.
//! 3. Finalize with a CSR for the recorded key, download, assemble, `FinishAcmeOrder` (refused
//!    unless that order is still the open one: one order, one bundle).
//! 4. A failure is `AcmeFailed` with its backoff (the order dropped when the CA will not
//!    validate it); with `--fallback local`, a local-issuer certificate stands in
//!    (`ServeFallback`) until ACME succeeds.
//!
//! A new leader reads the open order from the state and asks the CA where it stands, so it
//! carries the same order on; the only second order is one opened by a leader that died
//! between the CA's answer and the commit of step 1 (its order is abandoned at the CA).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{Account, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::duties::while_leading;
// The tick and the crash injection (`CERTRAFT_TEST_CRASH_AT=acme-after-open@ID`) are the
// issuing duties' own.
use super::issuing_duties::{crash_point, tick};
use crate::api::error::AppError;
use crate::api::server::AppState;
use crate::bundle::Keyring;
use crate::clock::unix_now as now;
use crate::inventory::{
    acme_backoff, acme_step, fallback_now, AcmeChallenge, AcmeIssuer, AcmeOrder, AcmeStep,
    BundleStatus, ChallengeKind, Command, Current, Managed,
};
use crate::issuing::acme::{self, AcmeError};

/// Orders worked on at once (`CERTRAFT_ACME_ORDERS_IN_FLIGHT`, 1–1024), and started per pass
/// at most. Eight keep a CA's validation latency hidden (37 certificates/s against a local
/// pebble) without hammering it: Debian's pebble 2.4 deadlocks under 32 concurrent orders.
const ORDERS_IN_FLIGHT: usize = 8;
const ORDERS_PER_PASS: usize = 1024;
/// How long one pass polls an order for validation and issuance.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(60));

/// The accounts this leader opened, by issuer name (with the issuer's `created_at`).
pub(super) type Accounts = Arc<tokio::sync::Mutex<HashMap<String, (i64, Account)>>>;

/// On the leader: drives every ACME-managed certificate (see the module docs).
pub(super) async fn drive_orders(state: Arc<AppState>, cancel: CancellationToken) {
    let (raft, me) = (state.raft.clone(), state.node_id);
    let accounts: Accounts = Arc::default();
    let ari_checks: super::acme_ari::Checks = Arc::default();
    while_leading(raft, me, tick(), cancel, || async {
        let Some(core) = state.core.clone() else {
            return;
        };
        let inv = state.sm.inventory();
        if inv.issuance.acme_issuers.is_empty() {
            return;
        }
        let any_ari = inv.issuance.acme_issuers.values().any(|i| i.ari);
        let t = now();
        let work: Vec<(String, Managed, Option<Current>, AcmeIssuer)> = inv
            .issuance
            .managed
            .iter()
            .filter(|(_, m)| m.is_acme())
            .filter_map(|(name, m)| {
                let current = current_of(&inv, name, m);
                match acme_step(name, m, current, t) {
                    AcmeStep::WaitUntil(_) => None,
                    AcmeStep::Open | AcmeStep::Resume => {
                        let issuer = inv.issuance.acme_issuers.get(&m.issuer)?.clone();
                        Some((name.clone(), m.clone(), current, issuer))
                    }
                }
            })
            .take(ORDERS_PER_PASS)
            .collect();
        drop(inv);
        if any_ari {
            super::acme_ari::check(&state, &core, &accounts, &ari_checks).await;
        }
        if work.is_empty() {
            return;
        }
        let in_flight = std::env::var("CERTRAFT_ACME_ORDERS_IN_FLIGHT")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| (1..=1024).contains(n))
            .unwrap_or(ORDERS_IN_FLIGHT);
        let mut running = JoinSet::new();
        for (name, managed, current, issuer) in work {
            while running.len() >= in_flight {
                running.join_next().await;
            }
            let (state, core, accounts) = (state.clone(), core.clone(), accounts.clone());
            running.spawn(acme::noting_retry_after(async move {
                let order_url = managed.order.as_ref().map(|o| o.url.clone());
                let outcome = match account_for(&accounts, &issuer, &core).await {
                    Ok(account) => {
                        let first =
                            advance(&state, &core, &account, &name, &managed, current).await;
                        match first {
                            Err((_, e)) if e.account_unknown() => {
                                // The CA lost the account: the same key is registered again
                                // and the attempt made once more (an order of the forgotten
                                // account is then dropped as the CA answers for it).
                                match register_again(&state, &accounts, &issuer, &core, &account)
                                    .await
                                {
                                    Ok(account) => {
                                        advance(&state, &core, &account, &name, &managed, current)
                                            .await
                                    }
                                    Err(e) => Err((None, e)),
                                }
                            }
                            other => other,
                        }
                    }
                    Err(e) => Err((None, e)),
                };
                if let Err((url, e)) = outcome {
                    failed(
                        &state,
                        &core,
                        &name,
                        &managed,
                        current,
                        url.or(order_url),
                        e,
                    )
                    .await;
                }
            }));
        }
        while running.join_next().await.is_some() {}
    })
    .await;
}

fn challenge_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
    }
}

/// The current bundle of an ACME-managed certificate, as [`acme_step`] sees it.
fn current_of(inv: &crate::inventory::Inventory, name: &str, m: &Managed) -> Option<Current> {
    let b = inv
        .bundles
        .get(name)
        .filter(|b| b.status == BundleStatus::Active)?;
    Some(Current {
        not_before: b.meta.not_before,
        not_after: b.meta.not_after,
        id: b.id(),
        fallback: m.on_fallback,
    })
}

/// The account of `issuer`, opened once per leadership and issuer.
pub(super) async fn account_for(
    accounts: &Accounts,
    issuer: &AcmeIssuer,
    core: &Keyring,
) -> Result<Account, AcmeError> {
    let mut map = accounts.lock().await;
    if let Some((created, a)) = map.get(&issuer.name) {
        if *created == issuer.created_at {
            return Ok(a.clone());
        }
    }
    let a = acme::account(issuer, core).await?;
    map.insert(issuer.name.clone(), (issuer.created_at, a.clone()));
    Ok(a)
}

/// Registers `issuer`'s key again when the CA answered `accountDoesNotExist` for `stale`,
/// once per issuer however many orders saw it, and records the new account through Raft.
async fn register_again(
    st: &AppState,
    accounts: &Accounts,
    issuer: &AcmeIssuer,
    core: &Keyring,
    stale: &Account,
) -> Result<Account, AcmeError> {
    let mut map = accounts.lock().await;
    if let Some((created, a)) = map.get(&issuer.name) {
        if *created == issuer.created_at && a.id() != stale.id() {
            return Ok(a.clone()); // another order of this pass registered it already
        }
    }
    let (account, sealed_credentials) = acme::register_again(issuer, core).await?;
    tracing::warn!(issuer = %issuer.name, old = %stale.id(), new = %account.id(), "the CA no longer knew the account; its key was registered again");
    st.propose(
        "certraft-node",
        Command::AcmeAccountRegistered {
            name: issuer.name.clone(),
            created_at: issuer.created_at,
            account_url: account.id().to_string(),
            sealed_credentials,
        },
    )
    .await
    .map_err(|e| {
        AcmeError::Local(format!(
            "the account registered again was not recorded: {e:?}"
        ))
    })?;
    map.insert(issuer.name.clone(), (issuer.created_at, account.clone()));
    Ok(account)
}

type StepError = (Option<String>, AcmeError);

/// The CA offers no challenge of the certificate's type for `domain` (http-01 for a
/// wildcard, say): the order cannot succeed.
fn not_offered(url: &str, domain: String, m: &Managed) -> StepError {
    (
        Some(url.to_string()),
        AcmeError::Invalid {
            domain,
            kind: m.challenge.unwrap_or_default().to_string(),
            detail: "the CA does not offer this challenge type for it".into(),
        },
    )
}

fn at(url: &str) -> impl Fn(instant_acme::Error) -> StepError + '_ {
    move |e| (Some(url.to_string()), AcmeError::from_acme(url, e))
}

/// Opens an order if none is open, then carries it as far as it goes in this pass.
async fn advance(
    st: &AppState,
    core: &Arc<Keyring>,
    account: &Account,
    name: &str,
    m: &Managed,
    current: Option<Current>,
) -> Result<(), StepError> {
    let record = match &m.order {
        Some(o) => o.clone(),
        None => open(st, core, account, name, m, current).await?,
    };
    let url = record.url.clone();
    let mut order = account.order(url.clone()).await.map_err(at(&url))?;
    let status = order.state().status;
    if status == OrderStatus::Pending {
        super::acme_applied::wait_applied(st).await;
        let kind = challenge_type(m.challenge.unwrap_or_default());
        let mut authzs = order.authorizations();
        while let Some(authz) = authzs.next().await {
            let mut authz = authz.map_err(at(&url))?;
            if authz.status != instant_acme::AuthorizationStatus::Pending {
                continue;
            }
            let domain = authz.identifier().to_string();
            let Some(mut challenge) = authz.challenge(kind.clone()) else {
                return Err(not_offered(&url, domain, m));
            };
            if challenge.status == instant_acme::ChallengeStatus::Pending {
                challenge.set_ready().await.map_err(at(&url))?;
            }
        }
    }
    let status = match order.state().status {
        OrderStatus::Pending => order.poll_ready(&POLL).await.map_err(at(&url))?,
        s => s,
    };
    if status == OrderStatus::Invalid {
        return Err((Some(url.clone()), invalid_reason(&mut order, m).await));
    }
    let key = open_order_key(core, name, &record).map_err(|e| (Some(url.clone()), e))?;
    if order.state().status == OrderStatus::Ready {
        let csr = csr_der(&key, &m.sans).map_err(|e| (Some(url.clone()), e))?;
        order.finalize_csr(&csr).await.map_err(at(&url))?;
    }
    let chain = order.poll_certificate(&POLL).await.map_err(at(&url))?;
    let new = assemble(st, &key, &chain, name)
        .await
        .map_err(|e| (Some(url.clone()), e))?;
    match st
        .propose(
            "certraft-node",
            Command::FinishAcmeOrder {
                name: name.to_string(),
                order_url: url.clone(),
                new,
            },
        )
        .await
    {
        Ok(_) => {
            tracing::info!(cert = %name, order = %url, "acme certificate issued and served");
            Ok(())
        }
        Err(AppError::Refused(r)) => {
            tracing::debug!(cert = %name, refusal = %r, "acme order already finished");
            Ok(())
        }
        Err(e) => Err((
            Some(url),
            AcmeError::Local(format!("the certificate was not committed: {e:?}")),
        )),
    }
}

/// Opens a new order: the key first (so any leader finalizes with it), then the order and
/// its challenges, committed in one `OpenAcmeOrder`.
async fn open(
    st: &AppState,
    core: &Arc<Keyring>,
    account: &Account,
    name: &str,
    m: &Managed,
    current: Option<Current>,
) -> Result<AcmeOrder, StepError> {
    let key_type = m.key_type;
    let key = crate::api::certs::keygen_bound(st, move || {
        Ok(crate::issuing::keygen::generate(key_type)?.pkcs8)
    })
    .await
    .map_err(|e| (None, AcmeError::Local(format!("key generation: {e:?}"))))?;
    let identifiers: Vec<Identifier> = m.sans.iter().map(|s| Identifier::Dns(s.clone())).collect();
    // No `replaces` (RFC 9773 §5) even where the CA offers renewal information: instant-acme
    // 0.8 fails `new_order` when the CA's answer does not echo it, after the CA created the
    // order, and the retry would be a second order for the name.
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| (None, AcmeError::from_acme("newOrder", e)))?;
    let url = order.url().to_string();
    let kind = m.challenge.unwrap_or_default();
    let want = challenge_type(kind);
    let mut challenges = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.map_err(at(&url))?;
        if authz.status != instant_acme::AuthorizationStatus::Pending {
            continue;
        }
        let domain = authz.identifier().to_string();
        let Some(challenge) = authz.challenge(want.clone()) else {
            return Err(not_offered(&url, domain, m));
        };
        challenges.push(AcmeChallenge {
            kind,
            domain: domain.trim_start_matches("*.").to_ascii_lowercase(),
            token: challenge.token.clone(),
            key_authorization: challenge.key_authorization().as_str().to_string(),
        });
    }
    let opened_at = now();
    let record = AcmeOrder {
        issuer: m.issuer.clone(),
        url: url.clone(),
        replaces: current.map(|c| hex::encode(c.id)),
        key_type,
        sealed_key: core.seal(AcmeOrder::key_record(name, opened_at).as_bytes(), &key),
        challenges,
        opened_at,
    };
    st.propose(
        "certraft-node",
        Command::OpenAcmeOrder {
            name: name.to_string(),
            expect_id: current.map(|c| hex::encode(c.id)),
            order: record.clone(),
        },
    )
    .await
    .map_err(|e| {
        (
            None,
            AcmeError::Local(format!("the order {url} was not recorded: {e:?}")),
        )
    })?;
    tracing::info!(cert = %name, order = %url, "acme order opened");
    crash_point("acme-after-open", st.node_id);
    Ok(record)
}

/// Why an order ended `invalid`: the first failed challenge's error.
async fn invalid_reason(order: &mut instant_acme::Order, m: &Managed) -> AcmeError {
    let kind = m.challenge.unwrap_or_default().to_string();
    let mut authzs = order.authorizations();
    while let Some(Ok(authz)) = authzs.next().await {
        let domain = authz.identifier().to_string();
        for c in &authz.challenges {
            if let Some(p) = &c.error {
                return AcmeError::Invalid {
                    domain,
                    kind,
                    detail: p.detail.clone().unwrap_or_else(|| format!("{p:?}")),
                };
            }
        }
    }
    AcmeError::Invalid {
        domain: m.sans.join(", "),
        kind,
        detail: "the order became invalid".into(),
    }
}

fn open_order_key(
    core: &Keyring,
    name: &str,
    record: &AcmeOrder,
) -> Result<crate::issuing::keygen::NewKey, AcmeError> {
    let pkcs8 = core
        .open(
            AcmeOrder::key_record(name, record.opened_at).as_bytes(),
            &record.sealed_key,
        )
        .map_err(|e| AcmeError::Local(format!("the order's key does not open: {e}")))?;
    crate::issuing::keygen::load(record.key_type, Zeroizing::new(pkcs8.to_vec()))
        .map_err(|e| AcmeError::Local(e.to_string()))
}

fn csr_der(key: &crate::issuing::keygen::NewKey, sans: &[String]) -> Result<Vec<u8>, AcmeError> {
    let cn = sans.first().cloned().unwrap_or_default();
    let pem_text = crate::issuing::keygen::csr_pem(key, &cn, sans)
        .map_err(|e| AcmeError::Local(e.to_string()))?;
    pem::parse(pem_text)
        .map(|p| p.contents().to_vec())
        .map_err(|e| AcmeError::Local(e.to_string()))
}

/// The CA's chain and the order's key as a validated, sealed bundle.
async fn assemble(
    st: &AppState,
    key: &crate::issuing::keygen::NewKey,
    chain_pem: &str,
    name: &str,
) -> Result<crate::inventory::NewBundle, AcmeError> {
    let pkcs8 = key.pkcs8.clone();
    let chain = chain_pem.as_bytes().to_vec();
    let keyring = st.keyring.clone();
    let name = name.to_string();
    crate::api::certs::keygen_bound(st, move || {
        let parsed = vec![
            crate::bundle::parse_file("order.key", &pkcs8, None)?,
            crate::bundle::parse_file("acme-chain.pem", &chain, None)?,
        ];
        let bundle = crate::bundle::assemble(parsed, Default::default(), now())?;
        Ok(crate::inventory::NewBundle {
            name,
            sealed: bundle.seal(&keyring),
            meta: crate::inventory::BundleMeta::of(&bundle),
        })
    })
    .await
    .map_err(|e| {
        AcmeError::Local(format!(
            "the CA's certificate does not make a valid bundle: {e:?}"
        ))
    })
}

/// Records a failed attempt (its backoff, the order dropped if the CA will not validate
/// it), and puts the local fallback in place when the certificate asked for it.
async fn failed(
    st: &AppState,
    core: &Arc<Keyring>,
    name: &str,
    m: &Managed,
    current: Option<Current>,
    order_url: Option<String>,
    e: AcmeError,
) {
    let failures = m.renewal.consecutive_failures + 1;
    let mut backoff = acme_backoff(failures, acme::retry_after(), e.rate_limited());
    // Tests compress the backoff (`CERTRAFT_TEST_ACME_BACKOFF_SECS`), as they do the ticks.
    if let Some(cap) = std::env::var("CERTRAFT_TEST_ACME_BACKOFF_SECS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        backoff = backoff.min(cap.max(1));
    }
    let retry_at = now() + backoff;
    let error = e.to_string();
    tracing::warn!(cert = %name, %error, failures, retry_at, "acme attempt failed; backing off");
    let drop_order = e.order_dead() && order_url.is_some();
    let recorded = st
        .propose(
            "certraft-node",
            Command::AcmeFailed {
                name: name.to_string(),
                order_url: order_url.clone(),
                drop_order,
                error,
                retry_at,
            },
        )
        .await;
    if let Err(e) = recorded {
        tracing::debug!(cert = %name, error = ?e, "acme failure not recorded");
        return;
    }
    if !fallback_now(m, current, retry_at) {
        return;
    }
    let Some(issuer) = st.sm.inventory().issuance.local_issuer.clone() else {
        tracing::warn!(cert = %name, "no local issuer yet for the fallback");
        return;
    };
    let (core, keyring, n) = (core.clone(), st.keyring.clone(), name.to_string());
    let mut spec = m.clone();
    if spec.lifetime_secs <= 0 {
        spec.lifetime_secs = 30 * 86_400;
    }
    let made = crate::api::certs::keygen_bound(st, move || {
        Ok(crate::issuing::issue_managed(
            &issuer,
            &core,
            &keyring,
            &n,
            &spec,
            now(),
        )?)
    })
    .await;
    let new = match made {
        Ok(new) => new,
        Err(e) => {
            tracing::warn!(cert = %name, error = ?e, "the local fallback could not be issued");
            return;
        }
    };
    match st
        .propose(
            "certraft-node",
            Command::ServeFallback {
                name: name.to_string(),
                expect_id: current.map(|c| hex::encode(c.id)),
                new,
            },
        )
        .await
    {
        Ok(_) => {
            tracing::warn!(cert = %name, "serving a certificate from the local issuer until ACME succeeds")
        }
        Err(e) => tracing::debug!(cert = %name, error = ?e, "fallback not applied"),
    }
}
