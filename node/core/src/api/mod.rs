//! The admin API's wire types, shared by the node's server and the CLI.

pub mod dto;
mod dto_acme;
mod dto_console;
mod dto_issuing;
