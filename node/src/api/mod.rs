//! The admin API: the axum router, its layers and handlers by concern, the one error→HTTP
//! mapping, and the wire types ([`dto`], from the pure core, shared with the CLI).

mod acme;
pub mod auth;
mod backup;
pub(crate) mod certs;
mod cluster;
mod console;
pub mod error;
pub mod forward;
pub mod gate;
pub mod issuing;
pub mod join;
mod layers;
pub(crate) mod notify;
mod ops;
pub mod server;
mod ui;

/// The wire types live in the pure core (the CLI uses them without the server).
pub use certraft_core::api::dto;
