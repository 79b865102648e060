//! `apply` for issue 14's commands: pending CSRs, the local issuer, issued and renewed
//! certificates, notify targets and the notice outbox. Pure like the rest of `apply`.

use super::apply::{import, rotate, short};
use super::issuance::*;
use super::model::*;
use super::request::*;

pub(super) fn apply_issuance(inv: &mut Inventory, req: &Request) -> Response {
    match &req.command {
        Command::CreateCsr { csr } => {
            if !valid_name(&csr.name) {
                return Err(Refusal::InvalidName {
                    name: csr.name.clone(),
                });
            }
            if inv.issuance.csrs.contains_key(&csr.name) {
                return Err(Refusal::CsrNameTaken {
                    name: csr.name.clone(),
                });
            }
            inv.issuance.csrs.insert(csr.name.clone(), csr.clone());
            Ok(Outcome::CsrCreated {
                name: csr.name.clone(),
            })
        }
        Command::RemoveCsr { name } => {
            inv.issuance
                .csrs
                .remove(name)
                .ok_or_else(|| Refusal::CsrNotFound { name: name.clone() })?;
            Ok(Outcome::CsrRemoved { name: name.clone() })
        }
        Command::CompleteCsr {
            csr,
            bundle,
            make_default,
            force,
        } => {
            if !inv.issuance.csrs.contains_key(csr) {
                return Err(Refusal::CsrNotFound { name: csr.clone() });
            }
            let existing = inv
                .bundles
                .get(&bundle.name)
                .filter(|b| b.status == BundleStatus::Active && b.sealed.id != bundle.sealed.id)
                .is_some();
            let outcome = if existing {
                let name = bundle.name.clone();
                let outcome = rotate(inv, &name, bundle, *force, req)?;
                // Completed by an outside CA: the cluster does not renew it.
                inv.issuance.managed.remove(&name);
                if *make_default {
                    inv.default = Some(name);
                }
                outcome
            } else {
                import(inv, bundle, *make_default, req)?
            };
            inv.issuance.csrs.remove(csr);
            Ok(outcome)
        }
        Command::SetLocalIssuer { issuer } => {
            if inv.issuance.local_issuer.is_some() {
                return Ok(Outcome::LocalIssuerSet { created: false });
            }
            inv.issuance.local_issuer = Some(issuer.clone());
            Ok(Outcome::LocalIssuerSet { created: true })
        }
        Command::Issue {
            bundle,
            managed,
            make_default,
        } => {
            let outcome = import(inv, bundle, *make_default, req)?;
            if let Outcome::Imported { name, .. } = &outcome {
                inv.issuance.managed.insert(name.clone(), managed.clone());
            }
            Ok(outcome)
        }
        Command::Renew {
            name,
            expect_id,
            new,
        } => {
            if !inv.issuance.managed.contains_key(name) {
                return Err(Refusal::NotManaged { name: name.clone() });
            }
            let current = inv
                .bundles
                .get(name)
                .ok_or_else(|| Refusal::NotFound { name: name.clone() })?;
            if current.sealed.id != *expect_id {
                return Err(Refusal::AlreadyRenewed {
                    name: name.clone(),
                    expected: short(expect_id),
                });
            }
            let outcome = rotate(inv, name, new, Force::Yes, req)?;
            renewed(inv, name, &outcome, hex::encode(expect_id), new, req);
            Ok(outcome)
        }
        Command::RenewalFailed {
            name,
            expect_id,
            error,
            retry_at,
        } => {
            let current = inv.bundles.get(name).map(|b| b.sealed.id);
            let Some(managed) = inv.issuance.managed.get_mut(name) else {
                return Err(Refusal::NotManaged { name: name.clone() });
            };
            if current != Some(*expect_id) {
                return Err(Refusal::AlreadyRenewed {
                    name: name.clone(),
                    expected: short(expect_id),
                });
            }
            let r = &mut managed.renewal;
            r.last_attempt = Some(req.at);
            r.last_result = Some(error.clone());
            r.retry_at = Some(*retry_at);
            r.consecutive_failures += 1;
            let failures = r.consecutive_failures;
            queue(
                inv,
                req.at,
                NoticeEvent::RenewalFailed {
                    name: name.clone(),
                    error: error.clone(),
                    consecutive_failures: failures,
                    retry_at: *retry_at,
                },
            );
            Ok(Outcome::RenewalRecorded { name: name.clone() })
        }
        Command::AddNotifyTarget { target } => {
            if !valid_name(&target.name) {
                return Err(Refusal::InvalidName {
                    name: target.name.clone(),
                });
            }
            if inv.issuance.notify_targets.contains_key(&target.name) {
                return Err(Refusal::NotifyNameTaken {
                    name: target.name.clone(),
                });
            }
            inv.issuance
                .notify_targets
                .insert(target.name.clone(), target.clone());
            Ok(Outcome::NotifyTargetAdded {
                name: target.name.clone(),
            })
        }
        Command::RemoveNotifyTarget { name } => {
            inv.issuance
                .notify_targets
                .remove(name)
                .ok_or_else(|| Refusal::NotifyNotFound { name: name.clone() })?;
            inv.issuance.notices.retain(|_, n| n.target != *name);
            inv.issuance.expiry_noticed.remove(name);
            Ok(Outcome::NotifyTargetRemoved { name: name.clone() })
        }
        Command::QueueExpiryNotices { notices } => {
            let mut queued = 0;
            for n in notices {
                if !inv.issuance.notify_targets.contains_key(&n.target) {
                    continue;
                }
                let done = inv
                    .issuance
                    .expiry_noticed
                    .entry(n.target.clone())
                    .or_default()
                    .entry(n.bundle_id.clone())
                    .or_default();
                let NoticeEvent::Expiring { threshold_secs, .. } = &n.event else {
                    continue;
                };
                if done.contains(threshold_secs) {
                    continue;
                }
                for t in &n.thresholds {
                    if !done.contains(t) {
                        done.push(*t);
                    }
                }
                push_notice(inv, req.at, n.target.clone(), n.event.clone());
                queued += 1;
            }
            prune_expiry_noticed(inv);
            Ok(Outcome::NoticesQueued { queued })
        }
        Command::NoticesDelivered { ids } => {
            let before = inv.issuance.notices.len();
            for id in ids {
                inv.issuance.notices.remove(id);
            }
            Ok(Outcome::NoticesDelivered {
                removed: before - inv.issuance.notices.len(),
            })
        }
        _ => super::acme_apply::apply_acme(inv, req),
    }
}

/// After a renewal rotated `name` to `new`: prunes the expired leftovers of earlier
/// renewals (each would otherwise stay for good), records the success and queues the
/// `renewed` notice.
pub(super) fn renewed(
    inv: &mut Inventory,
    name: &str,
    outcome: &Outcome,
    old_id: String,
    new: &NewBundle,
    req: &Request,
) {
    if let Outcome::Rotated { retired_as, .. } = outcome {
        let prefix = format!("{name}~");
        let stale: Vec<String> = inv
            .bundles
            .range(prefix.clone()..)
            .take_while(|(n, _)| n.starts_with(&prefix))
            .filter(|(n, b)| {
                *n != retired_as && b.status == BundleStatus::Retired && b.meta.not_after < req.at
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in stale {
            inv.bundles.remove(&n);
        }
    }
    if let Some(managed) = inv.issuance.managed.get_mut(name) {
        let r = &mut managed.renewal;
        r.last_attempt = Some(req.at);
        r.last_result = Some("ok".into());
        r.retry_at = None;
        r.consecutive_failures = 0;
        r.renewals += 1;
    }
    queue(
        inv,
        req.at,
        NoticeEvent::Renewed {
            name: name.to_string(),
            old_id,
            new_id: hex::encode(new.sealed.id),
            not_after: new.meta.not_after,
        },
    );
}

/// Queues `event` for every notify target.
pub(super) fn queue(inv: &mut Inventory, at: i64, event: NoticeEvent) {
    let targets: Vec<String> = inv.issuance.notify_targets.keys().cloned().collect();
    for target in targets {
        push_notice(inv, at, target, event.clone());
    }
}

fn push_notice(inv: &mut Inventory, at: i64, target: String, event: NoticeEvent) {
    let iss = &mut inv.issuance;
    iss.next_notice_id += 1;
    let id = iss.next_notice_id;
    iss.notices.insert(
        id,
        Notice {
            id,
            target,
            event,
            created_at: at,
        },
    );
    while iss.notices.len() > NOTICE_OUTBOX_CAPACITY {
        iss.notices.pop_first();
    }
}

/// Forgets the thresholds recorded for bundles no longer in the inventory.
fn prune_expiry_noticed(inv: &mut Inventory) {
    let bundles = &inv.bundles;
    let present = |id: &str| {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(id, &mut raw).is_ok() && bundles.by_id(&raw).is_some()
    };
    for per_bundle in inv.issuance.expiry_noticed.values_mut() {
        per_bundle.retain(|id, _| present(id));
    }
}

#[cfg(test)]
pub(crate) mod tests;
