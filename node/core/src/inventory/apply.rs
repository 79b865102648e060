//! `apply`: one committed request → the next inventory state and the proposer's response.

use super::model::*;
use super::request::*;

/// Applies one committed request. Deterministic: the same inventory and request give the same
/// result on every node. A refusal leaves the inventory unchanged except for the audit record.
pub fn apply(inv: &mut Inventory, req: &Request) -> Response {
    // Older versions are applied as they always were; a newer one never reaches here (the
    // store stops its apply first), so this refusal is for a malformed 0 or a test.
    let result = if req.version == 0 || req.version > REQUEST_VERSION {
        Err(Refusal::UnknownVersion {
            version: req.version,
        })
    } else {
        apply_command(inv, req)
    };
    inv.audit.push(AuditRecord {
        at: req.at,
        actor: escape_controls(&req.actor),
        what: escape_controls(&req.command.describe()),
        result: match (&result, &req.command) {
            (Ok(_), Command::Record { result, .. }) => escape_controls(result),
            (Ok(_), _) => "ok".into(),
            (Err(r), _) => r.code().into(),
        },
        refused: result.is_err(),
    });
    while inv.audit.len() > AUDIT_CAPACITY {
        // Refused records go first: they cannot push out the record of a change.
        let oldest_refused = inv.audit.iter().position(|a| a.refused);
        inv.audit.remove(oldest_refused.unwrap_or(0));
    }
    result
}

/// Records as revoked the certificate of every member in `before` that `after` no longer
/// holds under the same certificate. `before` and `after` are `(node id, certificate
/// SHA-256 hex)` of two consecutive memberships; pure like [`apply`], so every replica that
/// applies the same membership entries holds the same list.
pub fn revoke_removed(inv: &mut Inventory, before: &[(u64, String)], after: &[(u64, String)]) {
    for (id, sha) in before {
        if !after.iter().any(|(_, kept)| kept == sha) {
            inv.revoked_node_certs.insert(sha.clone(), *id);
        }
    }
}

pub(super) fn short(id: &[u8; 32]) -> String {
    hex::encode(&id[..6])
}

fn apply_command(inv: &mut Inventory, req: &Request) -> Response {
    match &req.command {
        Command::Import {
            bundle,
            make_default,
        } => import(inv, bundle, *make_default, req),
        Command::Remove { name, force } => {
            let Some(b) = inv.bundles.get(name) else {
                // A certificate still being obtained over ACME has no bundle yet: removing
                // it stops that (its open order is abandoned at the CA).
                if inv.issuance.managed.remove(name).is_some() {
                    return Ok(Outcome::Removed { name: name.clone() });
                }
                return Err(Refusal::NotFound { name: name.clone() });
            };
            // Never forced away: the admin port would lose the certificate browsers trust.
            super::console::guard_remove(inv, name)?;
            if *force == Force::No {
                if inv.default.as_deref() == Some(name.as_str()) {
                    return Err(Refusal::IsDefault { name: name.clone() });
                }
                if b.status == BundleStatus::Active {
                    let orphaned: Vec<String> = b
                        .meta
                        .hostnames
                        .iter()
                        .filter(|h| inv.servers_of(h, name) == 0)
                        .cloned()
                        .collect();
                    if !orphaned.is_empty() {
                        return Err(Refusal::OnlyServer {
                            name: name.clone(),
                            hostnames: orphaned,
                        });
                    }
                }
            }
            inv.bundles.remove(name);
            inv.issuance.managed.remove(name);
            if inv.default.as_deref() == Some(name.as_str()) {
                inv.default = None;
            }
            Ok(Outcome::Removed { name: name.clone() })
        }
        Command::SetDefault { name } => {
            let b = inv
                .bundles
                .get(name)
                .ok_or_else(|| Refusal::NotFound { name: name.clone() })?;
            if b.status == BundleStatus::Retired {
                return Err(Refusal::Retired { name: name.clone() });
            }
            inv.default = Some(name.clone());
            Ok(Outcome::DefaultSet { name: name.clone() })
        }
        Command::Rotate { old, new, force } => {
            let outcome = rotate(inv, old, new, *force, req)?;
            // The operator took the name over: the cluster no longer renews it.
            if new.name == *old {
                inv.issuance.managed.remove(old);
            }
            Ok(outcome)
        }
        Command::CreateJoinToken { token } => {
            inv.join_tokens
                .retain(|t| t.expires_at >= req.at && t.used_by.is_none());
            inv.join_tokens.push(token.clone());
            Ok(Outcome::JoinTokenCreated)
        }
        Command::ConsumeJoinToken {
            secret_sha256,
            requested,
            floor,
        } => {
            // Node ids are never reused: a removed node's id (and with it any certificate
            // issued for it) can never be admitted again.
            let highest = inv.highest_node_id.max(*floor);
            let node_id = match requested {
                Some(id) if *id <= highest => {
                    return Err(Refusal::NodeIdUsed {
                        requested: *id,
                        highest,
                    })
                }
                Some(id) => *id,
                None => highest.checked_add(1).ok_or(Refusal::NodeIdUsed {
                    requested: highest,
                    highest,
                })?,
            };
            let token = inv
                .join_tokens
                .iter_mut()
                .find(|t| {
                    &t.secret_sha256 == secret_sha256
                        && t.used_by.is_none()
                        && t.expires_at >= req.at
                })
                .ok_or(Refusal::JoinTokenInvalid)?;
            token.used_by = Some(node_id);
            let role = token.role;
            inv.highest_node_id = inv.highest_node_id.max(node_id);
            Ok(Outcome::JoinTokenConsumed { role, node_id })
        }
        Command::CreateAdminToken { token } => {
            if !valid_name(&token.name) {
                return Err(Refusal::InvalidName {
                    name: token.name.clone(),
                });
            }
            if inv.admin_tokens.iter().any(|t| t.name == token.name) {
                return Err(Refusal::TokenNameTaken {
                    name: token.name.clone(),
                });
            }
            inv.admin_tokens.push(token.clone());
            Ok(Outcome::AdminTokenCreated {
                name: token.name.clone(),
            })
        }
        Command::Record { .. } => Ok(Outcome::Recorded),
        Command::EnableFeature { feature } => {
            inv.features.insert(*feature);
            Ok(Outcome::FeatureEnabled { feature: *feature })
        }
        Command::AddTicketKey { key } => {
            inv.ticket_keys.retain(|k| k.id != key.id);
            inv.ticket_keys.push(key.clone());
            inv.ticket_keys.sort_by_key(|k| k.id);
            let excess = inv.ticket_keys.len().saturating_sub(TICKET_KEYS_KEPT);
            inv.ticket_keys.drain(..excess);
            Ok(Outcome::TicketKeyAdded { id: key.id })
        }
        Command::Restore { bundles, default } => {
            let mut restored = Vec::new();
            let mut already_present = Vec::new();
            // The same bundle twice in one entry (a backup of a source that held it under
            // two names) is restored once, under its first name; the later ones count as
            // already present. Decided here, so every replica decides the same.
            let mut first_name: std::collections::HashMap<[u8; 32], &str> =
                std::collections::HashMap::new();
            for b in bundles {
                if !valid_name(&b.name) {
                    return Err(Refusal::InvalidName {
                        name: b.name.clone(),
                    });
                }
                if let Some(existing) = inv.by_id(&b.sealed.id) {
                    already_present.push(existing.name.clone());
                } else if let Some(first) = first_name.get(&b.sealed.id) {
                    already_present.push((*first).to_string());
                } else if restored.contains(&b.name) {
                    return Err(Refusal::NameTaken {
                        name: b.name.clone(),
                        existing: short(&b.sealed.id),
                    });
                } else if let Some(existing) = inv.bundles.get(&b.name) {
                    return Err(Refusal::NameTaken {
                        name: b.name.clone(),
                        existing: short(&existing.id()),
                    });
                } else {
                    first_name.insert(b.sealed.id, &b.name);
                    restored.push(b.name.clone());
                }
            }
            for b in bundles {
                if first_name.get(&b.sealed.id) == Some(&b.name.as_str()) {
                    inv.bundles.insert(b.name.clone(), stored(b, req));
                }
            }
            if inv.default.is_none() {
                if let Some(d) = default.as_ref().filter(|d| inv.bundles.contains_key(*d)) {
                    inv.default = Some(d.clone());
                }
            }
            Ok(Outcome::Restored {
                restored,
                already_present,
            })
        }
        Command::OpenUiSession { .. } | Command::CloseUiSession { .. } => {
            super::ui::apply_ui(inv, req)
        }
        Command::SetConsole { .. } | Command::ClearConsole => {
            super::console::apply_console(inv, req)
        }
        _ => super::issuance_apply::apply_issuance(inv, req),
    }
}

/// Imports `bundle` (idempotent by bundle id; a name is never taken over).
pub(super) fn import(
    inv: &mut Inventory,
    bundle: &NewBundle,
    make_default: bool,
    req: &Request,
) -> Response {
    if !valid_name(&bundle.name) {
        return Err(Refusal::InvalidName {
            name: bundle.name.clone(),
        });
    }
    let id = hex::encode(bundle.sealed.id);
    if let Some(existing) = inv.by_id(&bundle.sealed.id) {
        let name = existing.name.clone();
        if make_default && existing.status == BundleStatus::Active {
            inv.default = Some(name.clone());
        }
        return Ok(Outcome::AlreadyPresent { name, id });
    }
    if let Some(existing) = inv.bundles.get(&bundle.name) {
        return Err(Refusal::NameTaken {
            name: bundle.name.clone(),
            existing: short(&existing.id()),
        });
    }
    inv.bundles.insert(bundle.name.clone(), stored(bundle, req));
    if make_default {
        inv.default = Some(bundle.name.clone());
    }
    Ok(Outcome::Imported {
        name: bundle.name.clone(),
        id,
    })
}

/// Rotates `old` to `new` in one step: `new` takes every hostname and the default role of
/// `old`, which is kept, retired, under a derived name.
pub(super) fn rotate(
    inv: &mut Inventory,
    old: &String,
    new: &NewBundle,
    force: Force,
    req: &Request,
) -> Response {
    let old_b = inv
        .bundles
        .get(old)
        .ok_or_else(|| Refusal::NotFound { name: old.clone() })?;
    if old_b.status == BundleStatus::Retired {
        return Err(Refusal::Retired { name: old.clone() });
    }
    if !valid_name(&new.name) {
        return Err(Refusal::InvalidName {
            name: new.name.clone(),
        });
    }
    if let Some(existing) = inv.by_id(&new.sealed.id) {
        return Ok(Outcome::AlreadyPresent {
            name: existing.name.clone(),
            id: hex::encode(new.sealed.id),
        });
    }
    if new.name != *old {
        if let Some(existing) = inv.bundles.get(&new.name) {
            return Err(Refusal::NameTaken {
                name: new.name.clone(),
                existing: short(&existing.id()),
            });
        }
    }
    let missing: Vec<String> = old_b
        .meta
        .hostnames
        .iter()
        .filter(|h| !new.meta.covers(h))
        .cloned()
        .collect();
    // The console's guard first: its refusal names the admin port's hostnames.
    super::console::guard_rotate(inv, old, new, force)?;
    if !missing.is_empty() && force == Force::No {
        return Err(Refusal::RotationLosesHostnames {
            old: old.clone(),
            missing,
        });
    }
    // One atomic step: OLD is kept as retired under a derived name, NEW takes its place.
    let mut retired = inv.bundles.remove(old).expect("checked above");
    let mut retired_as = format!("{old}~{}", short(&retired.id()));
    let mut n = 1;
    while inv.bundles.contains_key(&retired_as) {
        n += 1;
        retired_as = format!("{old}~{}-{n}", short(&retired.id()));
    }
    retired.status = BundleStatus::Retired;
    retired.name = retired_as.clone();
    inv.bundles.insert(retired_as.clone(), retired);
    inv.bundles.insert(new.name.clone(), stored(new, req));
    if inv.default.as_deref() == Some(old.as_str()) {
        inv.default = Some(new.name.clone());
    }
    super::console::follow_rotation(inv, old, new);
    Ok(Outcome::Rotated {
        old: old.clone(),
        retired_as,
        new: new.name.clone(),
    })
}

pub(super) fn stored(b: &NewBundle, req: &Request) -> StoredBundle {
    StoredBundle {
        name: b.name.clone(),
        sealed: b.sealed.clone(),
        meta: b.meta.clone(),
        status: BundleStatus::Active,
        imported_at: req.at,
        imported_by: req.actor.clone(),
    }
}
