//! The `certraft` CLI's integration tests, one binary: `inspect.rs` (the fixture table
//! through the binary, offline), `commands.rs` (the cluster commands against a scripted
//! TLS endpoint, `support/admin.rs`), `e2e.rs` (against real `certraft-node` processes,
//! `support/node.rs`), `tools.rs` (the tools corpus: files made by keytool, certtool,
//! pk12util, Python cryptography and OpenSSL, inspected and imported into a real node),
//! `issuing.rs` (CSRs with openssl as the CA, `cert issue`, the local issuer, webhooks),
//! `console.rs` (the console certificate against a real node, seen by `openssl s_client`).

// Tests: `unwrap` is how a test says "this cannot fail here".
#![allow(clippy::unwrap_used)]

mod commands;
mod console;
mod e2e;
mod inspect;
mod issuing;
mod support;
mod tools;
