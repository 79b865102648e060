//! certraft-node: one appliance of a certraft cluster.
//!
//! Layout (ARCHITECTURE.md has the invariants); dependencies point one way, down this list:
//!
//! - [`bundle`]: certificate bundles — every input format, chain assembly and validation,
//!   sealing, PKCS#12/PEM export. Synchronous and I/O-free; shared with the `certraft` CLI.
//! - [`inventory`]: the replicated state and its pure `apply`; [`backup`]: the backup file;
//!   [`clock`]: the one wall clock; [`api::dto`]: the admin API's wire types. All shared
//!   with the CLI.
//! - With the `server` feature: [`store`] (redb log and state machine), [`raft`] (types,
//!   transport, mutual-TLS membership), [`tls`] (the SNI serving plane), [`api`] (the
//!   admin API), [`node`] (start-up, duties, wiring), and the leaves they use: [`config`],
//!   [`datadir`], [`pki`], [`http`], [`slots`], [`log_limit`], [`recover`].

pub mod api;
pub mod config;
pub mod datadir;
pub mod http;
pub mod issuing;
pub mod log_limit;
pub mod node;
pub mod pki;
pub mod raft;
pub mod recover;
pub mod slots;
pub mod store;
pub mod tls;

/// The pure core, re-exported so `certraft::bundle` and the rest keep their paths.
pub use certraft_core::{backup, bundle, clock, inventory};
