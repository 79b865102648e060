//! Integration tests, one binary: the bundle engine on real OpenSSL-made fixtures
//! (`tests/fixtures/generate.sh`) through the public library API, and real `certraft-node`
//! processes forming clusters (`support::cluster`).

// Tests: `unwrap` is how a test says "this cannot fail here".
#![allow(clippy::unwrap_used)]

mod acme;
mod cluster;
mod console;
mod formats;
mod issuing;
mod properties;
mod proxy;
mod security;
mod serving;
mod support;
mod tidy;
mod trust;
mod ui;
mod ui_pages;
mod upgrade;
mod wire_fuzz;
