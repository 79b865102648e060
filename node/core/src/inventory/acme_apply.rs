//! `apply` for issue 15's commands: ACME accounts, the one order in flight per certificate,
//! its outcome, and the local fallback. Pure like the rest of `apply`.

use super::apply::{import, rotate, short};
use super::issuance_apply::{queue, renewed};
use super::model::*;
use super::request::*;

pub(super) fn apply_acme(inv: &mut Inventory, req: &Request) -> Response {
    match &req.command {
        Command::AddAcmeIssuer { issuer } => {
            if !valid_name(&issuer.name) {
                return Err(Refusal::InvalidName {
                    name: issuer.name.clone(),
                });
            }
            if issuer.name == super::issuance::LOCAL_ISSUER
                || inv.issuance.acme_issuers.contains_key(&issuer.name)
            {
                return Err(Refusal::IssuerNameTaken {
                    name: issuer.name.clone(),
                });
            }
            inv.issuance
                .acme_issuers
                .insert(issuer.name.clone(), issuer.clone());
            Ok(Outcome::IssuerAdded {
                name: issuer.name.clone(),
            })
        }
        Command::RemoveIssuer { name } => {
            if !inv.issuance.acme_issuers.contains_key(name) {
                return Err(Refusal::IssuerNotFound { name: name.clone() });
            }
            let users: Vec<String> = inv
                .issuance
                .managed
                .iter()
                .filter(|(_, m)| m.issuer == *name)
                .map(|(n, _)| n.clone())
                .collect();
            if !users.is_empty() {
                return Err(Refusal::IssuerInUse {
                    name: name.clone(),
                    users,
                });
            }
            inv.issuance.acme_issuers.remove(name);
            Ok(Outcome::IssuerRemoved { name: name.clone() })
        }
        Command::AcmeAccountRegistered {
            name,
            created_at,
            account_url,
            sealed_credentials,
        } => {
            let Some(issuer) = inv
                .issuance
                .acme_issuers
                .get_mut(name)
                .filter(|i| i.created_at == *created_at)
            else {
                return Err(Refusal::IssuerNotFound { name: name.clone() });
            };
            issuer.account_url = account_url.clone();
            issuer.sealed_credentials = sealed_credentials.clone();
            Ok(Outcome::IssuerAdded { name: name.clone() })
        }
        Command::ManageAcme {
            name,
            managed,
            make_default,
        } => {
            if !valid_name(name) {
                return Err(Refusal::InvalidName { name: name.clone() });
            }
            if !inv.issuance.acme_issuers.contains_key(&managed.issuer) {
                return Err(Refusal::IssuerNotFound {
                    name: managed.issuer.clone(),
                });
            }
            if let Some(existing) = inv.bundles.get(name) {
                return Err(Refusal::NameTaken {
                    name: name.clone(),
                    existing: short(&existing.id()),
                });
            }
            if inv.issuance.managed.contains_key(name) {
                return Err(Refusal::NameTaken {
                    name: name.clone(),
                    existing: "a certificate being obtained".into(),
                });
            }
            let mut m = managed.clone();
            m.order = None;
            m.on_fallback = false;
            m.make_default = *make_default;
            inv.issuance.managed.insert(name.clone(), m);
            Ok(Outcome::AcmeManaged { name: name.clone() })
        }
        Command::OpenAcmeOrder {
            name,
            expect_id,
            order,
        } => {
            let current = current_id(inv, name);
            let m = acme_managed(inv, name)?;
            if let Some(open) = &m.order {
                return Err(Refusal::OrderOpen {
                    name: name.clone(),
                    url: open.url.clone(),
                });
            }
            if current != *expect_id {
                return Err(Refusal::AlreadyRenewed {
                    name: name.clone(),
                    expected: expect_id.clone().unwrap_or_else(|| "none".into()),
                });
            }
            m.order = Some(order.clone());
            Ok(Outcome::OrderRecorded { name: name.clone() })
        }
        Command::FinishAcmeOrder {
            name,
            order_url,
            new,
        } => {
            let m = acme_managed(inv, name)?;
            if m.order.as_ref().map(|o| &o.url) != Some(order_url) {
                return Err(Refusal::OrderGone {
                    name: name.clone(),
                    url: order_url.clone(),
                });
            }
            let make_default = m.make_default;
            let old_id = current_id(inv, name);
            let outcome = put(inv, name, new, make_default, req)?;
            if let Some(m) = inv.issuance.managed.get_mut(name) {
                m.order = None;
                m.on_fallback = false;
                m.ari_window_start = None;
                m.make_default = false;
            }
            match old_id {
                Some(old) => renewed(inv, name, &outcome, old, new, req),
                None => {
                    if let Some(m) = inv.issuance.managed.get_mut(name) {
                        let r = &mut m.renewal;
                        r.last_attempt = Some(req.at);
                        r.last_result = Some("ok".into());
                        r.retry_at = None;
                        r.consecutive_failures = 0;
                    }
                }
            }
            Ok(outcome)
        }
        Command::AcmeFailed {
            name,
            order_url,
            drop_order,
            error,
            retry_at,
        } => {
            let m = acme_managed(inv, name)?;
            let open = m.order.as_ref().map(|o| o.url.clone());
            if order_url.is_some() && open != *order_url {
                return Err(Refusal::OrderGone {
                    name: name.clone(),
                    url: order_url.clone().unwrap_or_default(),
                });
            }
            if *drop_order {
                m.order = None;
            }
            let r = &mut m.renewal;
            r.last_attempt = Some(req.at);
            r.last_result = Some(error.clone());
            r.retry_at = Some(*retry_at);
            r.consecutive_failures += 1;
            let failures = r.consecutive_failures;
            queue(
                inv,
                req.at,
                super::issuance::NoticeEvent::RenewalFailed {
                    name: name.clone(),
                    error: error.clone(),
                    consecutive_failures: failures,
                    retry_at: *retry_at,
                },
            );
            Ok(Outcome::RenewalRecorded { name: name.clone() })
        }
        Command::ServeFallback {
            name,
            expect_id,
            new,
        } => {
            let current = current_id(inv, name);
            let m = acme_managed(inv, name)?;
            if current != *expect_id {
                return Err(Refusal::AlreadyRenewed {
                    name: name.clone(),
                    expected: expect_id.clone().unwrap_or_else(|| "none".into()),
                });
            }
            let make_default = m.make_default;
            let outcome = put(inv, name, new, make_default, req)?;
            if let Some(m) = inv.issuance.managed.get_mut(name) {
                m.on_fallback = true;
                m.make_default = false;
            }
            queue(
                inv,
                req.at,
                super::issuance::NoticeEvent::FallbackServed {
                    name: name.clone(),
                    old_id: current.unwrap_or_default(),
                    new_id: hex::encode(new.sealed.id),
                    not_after: new.meta.not_after,
                },
            );
            Ok(outcome)
        }
        Command::SetRenewalWindow { name, id, start } => {
            let current = current_id(inv, name);
            let m = acme_managed(inv, name)?;
            if current.as_ref() != Some(id) {
                return Err(Refusal::AlreadyRenewed {
                    name: name.clone(),
                    expected: id.clone(),
                });
            }
            m.ari_window_start = Some(*start);
            Ok(Outcome::RenewalRecorded { name: name.clone() })
        }
        other => unreachable!(
            "apply_acme is called for issue 15's commands only, not {}",
            other.describe()
        ),
    }
}

/// The id (hex) of the active bundle `name`, if any.
fn current_id(inv: &Inventory, name: &str) -> Option<String> {
    inv.bundles
        .get(name)
        .filter(|b| b.status == BundleStatus::Active)
        .map(|b| hex::encode(b.id()))
}

/// The ACME-managed certificate `name`.
fn acme_managed<'a>(
    inv: &'a mut Inventory,
    name: &str,
) -> Result<&'a mut super::issuance::Managed, Refusal> {
    match inv.issuance.managed.get_mut(name) {
        Some(m) if m.is_acme() => Ok(m),
        _ => Err(Refusal::NotManaged {
            name: name.to_string(),
        }),
    }
}

/// `new` as `name`: imported when the name holds no active bundle, else rotated over it.
fn put(
    inv: &mut Inventory,
    name: &String,
    new: &NewBundle,
    make_default: bool,
    req: &Request,
) -> Response {
    let active = inv
        .bundles
        .get(name)
        .is_some_and(|b| b.status == BundleStatus::Active);
    if active {
        rotate(inv, name, new, Force::Yes, req)
    } else {
        import(inv, new, make_default, req)
    }
}

#[cfg(test)]
mod tests;
