//! `certraft-node`: the appliance daemon.
//!
//! This build carries the bundle engine only; `run`, `recover` and `admin-token` arrive with
//! the replicated inventory (see ARCHITECTURE.md).

use clap::Parser;

/// certraft appliance node: keeps the replicated TLS certificate inventory and serves the
/// right certificate per SNI.
///
/// This build contains the bundle engine (formats, validation, sealing, export) used by
/// `certraft inspect`. The node runtime (`certraft-node run`, clustering, serving) is not
/// part of this build yet.
#[derive(Parser, Debug)]
#[command(name = "certraft-node", version, about, long_about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "certraft-node {}: the node runtime is not part of this build yet; \
         use `certraft inspect FILE...` to check bundles (see `certraft-node --help`)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
