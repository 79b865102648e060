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
pub mod backup;
pub mod bundle;
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod datadir;
#[cfg(feature = "server")]
pub mod http;
pub mod inventory;
#[cfg(feature = "server")]
pub mod log_limit;
#[cfg(feature = "server")]
pub mod node;
#[cfg(feature = "server")]
pub mod pki;
#[cfg(feature = "server")]
pub mod raft;
#[cfg(feature = "server")]
pub mod recover;
#[cfg(feature = "server")]
pub mod slots;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod tls;
