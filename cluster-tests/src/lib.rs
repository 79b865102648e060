//! certraft cluster tests: real `certraft-node` processes (and, where a Docker engine runs,
//! containers) driven through the admin API under faults, served certificates checked with
//! real TLS handshakes on every node, and every client operation checked for per-key
//! linearizability.
//!
//! - [`cluster`], [`faults`]: process and container clusters, and the faults done to them.
//! - [`browser`]: headless chromium under chromedriver (WebDriver) for the web console's tests.
//! - [`cases`]: the one table of fixture cases the node's and the CLI's tests both run.
//! - [`docker`]: the engine, private networks, iptables partitions.
//! - [`client`]: the admin API client and the TLS prober.
//! - [`fixtures`]: the OpenSSL-made certificates the registers hold.
//! - [`history`]: the recorder and the seeded generator.
//! - [`hostile`]: a traffic node turned hostile, attacking every member during a run.
//! - [`workload`]: register clients, handshake loops, the write probe.
//! - [`checker`]: the Wing–Gong linearizability check.
//! - [`verify`]: convergence of what every node serves after healing.
//! - [`run`]: a test run: workload around the faults, checks after healing.
//! - [`process`], [`ports`], [`logs`]: one `certraft-node` process (binary, command line,
//!   logs, signals, polling), free loopback ports and node log tails: the one harness the
//!   node's and the CLI's integration tests and the benches build on (as a dev-dependency).

pub mod ari;
pub mod browser;
pub mod cases;
pub mod checker;
pub mod client;
pub mod cluster;
pub mod docker;
pub mod faults;
pub mod fixtures;
pub mod history;
pub mod hostile;
pub mod logs;
pub mod pebble;
pub mod ports;
pub mod process;
pub mod run;
pub mod verify;
pub mod workload;
