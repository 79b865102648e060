//! The admin API: wire types shared with the CLI ([`dto`]) and, with the `server` feature,
//! the axum router and its one error→HTTP mapping.

#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
mod backup;
#[cfg(feature = "server")]
mod certs;
#[cfg(feature = "server")]
mod cluster;
pub mod dto;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod forward;
#[cfg(feature = "server")]
pub mod gate;
#[cfg(feature = "server")]
pub mod join;
#[cfg(feature = "server")]
mod layers;
#[cfg(feature = "server")]
mod ops;
#[cfg(feature = "server")]
pub mod server;
