//! The admin API: wire types shared with the CLI ([`dto`]) and, with the `server` feature,
//! the axum router and its one error→HTTP mapping.

pub mod dto;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod server;
