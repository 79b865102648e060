//! What the serving plane needs to know after each applied batch: the new state of the
//! bundles a batch touched, and the default. Pure data, built from the inventory; the store
//! hands it to the serve port's index inside `apply`.

use super::model::*;
use super::request::*;

/// What one applied batch changed for serving: the new state of every touched bundle (only
/// those), and the default. `full` after a snapshot install: every bundle is listed.
#[derive(Debug, Default)]
pub struct ServingDelta {
    /// Active bundles to serve (as they are now).
    pub upserts: Vec<StoredBundle>,
    /// Names to stop serving (removed or retired).
    pub removes: Vec<String>,
    pub default: Option<String>,
    pub full: bool,
    /// The log index this delta brings the index to.
    pub applied: Option<u64>,
    /// The session-ticket keys, when they changed (always in a full delta).
    pub ticket_keys: Option<Vec<TicketKey>>,
    /// Every ACME challenge to answer, when they may have changed (always in a full delta).
    pub challenges: Option<Vec<super::acme::AcmeChallenge>>,
    /// The console certificate, when it may have changed (always in a full delta): what the
    /// admin port presents for the console hostnames now; `Some(None)`: none is set, the node
    /// certificate for everyone.
    pub console: Option<Option<super::console::ConsoleServed>>,
}

impl ServingDelta {
    pub fn of_names<'a>(inv: &Inventory, names: impl IntoIterator<Item = &'a String>) -> Self {
        let mut d = ServingDelta {
            default: inv.default.clone(),
            ..Default::default()
        };
        for name in names {
            match inv.bundles.get(name) {
                Some(b) if b.status == BundleStatus::Active => d.upserts.push(b.clone()),
                _ => d.removes.push(name.clone()),
            }
        }
        d
    }

    pub fn full(inv: &Inventory) -> Self {
        let mut d = Self::of_names(inv, inv.bundles.keys());
        d.full = true;
        d.ticket_keys = Some(inv.ticket_keys.clone());
        d.challenges = Some(inv.issuance.challenges());
        d.console = Some(inv.console_served());
        d
    }
}

/// The bundle names whose serving state a committed command changed (the default aside):
/// what the serving index must re-read after applying it. Refusals touch nothing.
pub fn touched(command: &Command, response: &Response) -> Vec<String> {
    let Ok(outcome) = response else {
        return Vec::new();
    };
    match (command, outcome) {
        (Command::Import { bundle, .. }, _) => vec![bundle.name.clone()],
        (Command::Remove { name, .. }, _) => vec![name.clone()],
        (
            Command::Rotate { .. },
            Outcome::Rotated {
                old,
                retired_as,
                new,
            },
        ) => vec![old.clone(), retired_as.clone(), new.clone()],
        (Command::Restore { bundles, .. }, _) => bundles.iter().map(|b| b.name.clone()).collect(),
        (Command::Issue { bundle, .. }, _) => vec![bundle.name.clone()],
        (
            Command::CompleteCsr { .. } | Command::Renew { .. },
            Outcome::Rotated {
                old,
                retired_as,
                new,
            },
        ) => vec![old.clone(), retired_as.clone(), new.clone()],
        (Command::CompleteCsr { bundle, .. }, Outcome::Imported { .. }) => {
            vec![bundle.name.clone()]
        }
        (
            Command::FinishAcmeOrder { .. } | Command::ServeFallback { .. },
            Outcome::Rotated {
                old,
                retired_as,
                new,
            },
        ) => vec![old.clone(), retired_as.clone(), new.clone()],
        (
            Command::FinishAcmeOrder { new, .. } | Command::ServeFallback { new, .. },
            Outcome::Imported { .. },
        ) => vec![new.name.clone()],
        _ => Vec::new(),
    }
}
