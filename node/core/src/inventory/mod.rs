//! The replicated inventory: plain data and the pure `apply` the Raft state machine runs.
//!
//! No async, no clock, no randomness: everything `apply` needs (the acting token, the time)
//! is inside the committed [`Request`], so every node computes the same state from the same
//! log. Every request, accepted or refused, appends one [`AuditRecord`].

mod acme;
mod acme_apply;
mod apply;
pub mod codec;
mod console;
mod delta;
mod describe;
mod issuance;
mod issuance_apply;
mod model;
mod request;
mod ui;

pub use acme::*;
pub use apply::{apply, revoke_removed};
pub use console::*;
pub use delta::{touched, ServingDelta};
pub use issuance::*;
pub use model::*;
pub use request::*;
pub use ui::*;

#[cfg(test)]
mod tests;
