//! The console's own certificate (issue 16): which inventory bundle the admin port presents
//! to clients that ask for one of the console hostnames by SNI, so a browser sees a
//! certificate it trusts. Every other client (the CLI, the peers, a browser by node address)
//! keeps the node certificate from the cluster CA.
//!
//! Invariant, kept by every command `apply` runs: while [`Inventory::console`] is set, it
//! names an *active* bundle that covers each of its hostnames (SPEC §4 matching, a wildcard
//! over one label). So the bundle cannot be removed (refused even with `--force`: the next
//! step is `certraft console cert OTHER` or `certraft console reset`); a rotation hands the
//! role to the new bundle, as it does the default, and is refused when the new bundle does
//! not cover every console hostname unless forced — then the console keeps only the
//! hostnames the new bundle covers, and falls back to the node certificate when none is left.

use serde::{Deserialize, Serialize};

use crate::bundle::cert::{is_dns_name, normalize_hostname};

use super::model::*;
use super::request::*;

/// The most hostnames one console certificate answers for: a console has a name or two
/// (the appliance's, an alias), not a site's worth.
pub const MAX_CONSOLE_HOSTNAMES: usize = 8;

/// The console certificate setting: bundle `name` for `hostnames` (lowercase, no trailing
/// dot, no wildcard, in the order given, without repeats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleCert {
    pub name: String,
    pub hostnames: Vec<String>,
}

/// What the admin port needs to present the console certificate: its hostnames and the
/// bundle (sealed) it names, as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleServed {
    pub hostnames: Vec<String>,
    pub bundle: StoredBundle,
}

/// One use of a bundle, for `cert show` and the UI: what depends on it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleUse {
    /// The serve port chooses it for these hostnames (SPEC §4 order).
    Serving(Vec<String>),
    /// The cluster-wide default.
    Default,
    /// The admin port presents it for these console hostnames.
    Console(Vec<String>),
}

impl Inventory {
    /// The console certificate and its bundle, when one is set (see the module invariant).
    pub fn console_served(&self) -> Option<ConsoleServed> {
        let c = self.console.as_ref()?;
        let bundle = self.bundles.get(&c.name)?;
        Some(ConsoleServed {
            hostnames: c.hostnames.clone(),
            bundle: bundle.clone(),
        })
    }

    /// What the admin port presents, as comparable data: the setting and its bundle's id.
    pub fn console_key(&self) -> Option<(ConsoleCert, [u8; 32])> {
        let c = self.console.as_ref()?;
        Some((c.clone(), self.bundles.get(&c.name)?.id()))
    }

    /// Every use of bundle `name` at `now`: hostnames it serves, the default role, the
    /// console role. Empty: nothing depends on it.
    pub fn uses_of(&self, name: &str, now: i64) -> Vec<BundleUse> {
        let mut uses = Vec::new();
        if let Some(b) = self.bundles.get(name) {
            let serving: Vec<String> = b
                .meta
                .hostnames
                .iter()
                .filter(|h| self.serving(h, now) == Some(name))
                .cloned()
                .collect();
            if !serving.is_empty() {
                uses.push(BundleUse::Serving(serving));
            }
        }
        if self.default.as_deref() == Some(name) {
            uses.push(BundleUse::Default);
        }
        if let Some(c) = self.console.as_ref().filter(|c| c.name == name) {
            uses.push(BundleUse::Console(c.hostnames.clone()));
        }
        uses
    }
}

/// The console hostnames as kept: normalised, without repeats, each checked.
pub fn console_hostnames(given: &[String]) -> Result<Vec<String>, Refusal> {
    if given.is_empty() || given.len() > MAX_CONSOLE_HOSTNAMES {
        return Err(Refusal::ConsoleHostnameCount { count: given.len() });
    }
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for h in given {
        let n = normalize_hostname(h);
        // A name, never an address: clients send no SNI for an IP address.
        let address = n.parse::<std::net::IpAddr>().is_ok();
        if n.starts_with("*.") || address || !is_dns_name(&n) {
            return Err(Refusal::InvalidConsoleHostname {
                hostname: escape_controls(h),
            });
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

pub(super) fn apply_console(inv: &mut Inventory, req: &Request) -> Response {
    match &req.command {
        Command::SetConsole { name, hostnames } => {
            let hostnames = console_hostnames(hostnames)?;
            let b = inv
                .bundles
                .get(name)
                .ok_or_else(|| Refusal::NotFound { name: name.clone() })?;
            if b.status == BundleStatus::Retired {
                return Err(Refusal::ConsoleRetired { name: name.clone() });
            }
            let missing: Vec<String> = hostnames
                .iter()
                .filter(|h| !b.meta.covers(h))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Refusal::ConsoleNotCovered {
                    name: name.clone(),
                    missing,
                    covers: b.meta.hostnames.clone(),
                });
            }
            inv.console = Some(ConsoleCert {
                name: name.clone(),
                hostnames: hostnames.clone(),
            });
            Ok(Outcome::ConsoleSet {
                name: name.clone(),
                hostnames,
            })
        }
        Command::ClearConsole => Ok(Outcome::ConsoleCleared {
            was: inv.console.take().map(|c| c.name),
        }),
        other => unreachable!(
            "apply_console is called for the console's commands only, not {}",
            other.describe()
        ),
    }
}

/// The remove guard: the console's bundle stays, `--force` or not.
pub(super) fn guard_remove(inv: &Inventory, name: &str) -> Result<(), Refusal> {
    match &inv.console {
        Some(c) if c.name == name => Err(Refusal::IsConsole {
            name: name.to_string(),
            hostnames: c.hostnames.clone(),
        }),
        _ => Ok(()),
    }
}

/// The rotate guard, before anything changes: the new bundle must cover every console
/// hostname OLD answers for, unless forced.
pub(super) fn guard_rotate(
    inv: &Inventory,
    old: &str,
    new: &NewBundle,
    force: Force,
) -> Result<(), Refusal> {
    let Some(c) = inv.console.as_ref().filter(|c| c.name == old) else {
        return Ok(());
    };
    let missing: Vec<String> = c
        .hostnames
        .iter()
        .filter(|h| !new.meta.covers(h))
        .cloned()
        .collect();
    if missing.is_empty() || force == Force::Yes {
        return Ok(());
    }
    Err(Refusal::RotationLosesConsole {
        old: old.to_string(),
        missing,
    })
}

/// After OLD was rotated to `new`: the console follows to the new name, keeping the
/// hostnames `new` covers; none left (a forced rotation) puts the node certificate back.
pub(super) fn follow_rotation(inv: &mut Inventory, old: &str, new: &NewBundle) {
    let Some(c) = inv.console.as_mut().filter(|c| c.name == old) else {
        return;
    };
    c.name = new.name.clone();
    c.hostnames.retain(|h| new.meta.covers(h));
    if c.hostnames.is_empty() {
        inv.console = None;
    }
}

#[cfg(test)]
mod tests;
