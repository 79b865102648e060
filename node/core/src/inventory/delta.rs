//! What the serving plane needs to know after each applied batch: the new state of the
//! bundles a batch touched, and the default. Pure data, built from the inventory; the store
//! hands it to the serve port's index inside `apply`.

use super::model::*;

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
        d
    }
}
