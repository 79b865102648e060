//! certraft's pure core, shared by `certraft-node` and the `certraft` CLI: no async, no
//! sockets, no Raft, no server dependency at all (the CLI links only this).
//!
//! - [`bundle`]: certificate bundles — every input format, chain assembly and validation,
//!   sealing, PKCS#12/PEM export.
//! - [`inventory`]: the replicated state, its requests and the pure `apply`.
//! - [`backup`]: the versioned, passphrase-sealed backup file.
//! - [`api::dto`]: the admin API's wire types and route table.
//! - [`clock`]: the one wall clock (never read by `apply`).

pub mod api;
pub mod backup;
pub mod bundle;
pub mod clock;
pub mod inventory;
