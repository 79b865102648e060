//! certraft-node: one appliance of a certraft cluster.
//!
//! Layout (see ARCHITECTURE.md for the invariants):
//!
//! - [`bundle`]: certificate bundles — every input format, chain assembly and validation,
//!   sealing, PKCS#12/PEM export. Synchronous and I/O-free; shared with the `certraft` CLI.
//!
//! Replication (openraft), the admin API and the SNI serving plane land in later issues,
//! each in its own module that depends on `bundle`, never the other way round.

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
