//! The admin port's certificates (issue 16, "the console's own certificate"): the node
//! certificate from the cluster CA for every client, except one that asks by SNI for a
//! console hostname of the applied inventory, which gets that bundle's chain and key so a
//! browser sees a certificate it trusts.
//!
//! - [`pick`]: the decision, pure and table-tested.
//! - [`AdminCerts`]: the rustls resolver the admin port's config holds. The store hands it
//!   the console setting inside `apply` (the `console` field of a [`ServingDelta`]), so a
//!   committed change is presented without a restart and, as on the serve port, applied
//!   implies presented. The bundle's key is opened on the first handshake that asks for it
//!   and kept while the setting names the same bundle ([`ServedKey`]), never per handshake.
//!
//! Invariants: the CLI and the peers, which connect by node address (an IP address sends no
//! SNI; a name the node certificate carries, such as the advertised host or `localhost`,
//! always gets the node certificate), keep the node certificate whatever the setting; no
//! client certificate is asked for on the admin port, as before; a console bundle that does
//! not open (damage, a keyring gap) is logged once and the node certificate is presented
//! instead, so the console stays reachable; after `certraft-node console-reset` (the reset
//! flag) the setting is ignored until the reset is finished.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::index::{normalize, ServedKey};
use crate::bundle::Keyring;
use crate::inventory::{ConsoleServed, ServingDelta};

/// Which certificate one admin-port handshake gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    Node,
    Console,
}

/// The admin port's choice for a ClientHello naming `sni`: the console certificate only
/// when `sni` (case-insensitive, trailing dot ignored) is one of `console`'s hostnames, is
/// not a name the node certificate carries (`node_names`, lowercase), and no reset is
/// pending; the node certificate otherwise.
pub fn pick(
    sni: Option<&str>,
    node_names: &[String],
    console: Option<&[String]>,
    reset: bool,
) -> Presented {
    let (Some(sni), Some(hostnames), false) = (sni, console, reset) else {
        return Presented::Node;
    };
    let sni = normalize(sni);
    if node_names.contains(&sni) || !hostnames.contains(&sni) {
        return Presented::Node;
    }
    Presented::Console
}

/// The console certificate as the admin port holds it.
struct ConsoleKey {
    name: String,
    id: [u8; 32],
    hostnames: Vec<String>,
    /// Shared with the next generation while the bundle stays the same.
    key: Arc<ServedKey>,
}

/// The admin port's resolver: the node certificate, or the console certificate for its
/// hostnames (see [`pick`]).
pub struct AdminCerts {
    node: Arc<CertifiedKey>,
    /// The DNS names of the node certificate, lowercase.
    node_names: Vec<String>,
    console: ArcSwapOption<ConsoleKey>,
    keyring: Arc<Keyring>,
    /// `certraft-node console-reset` was run: present the node certificate to everyone
    /// until the reset is finished ([`AdminCerts::end_reset`]).
    reset: AtomicBool,
}

impl std::fmt::Debug for AdminCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.setting() {
            Some((name, hostnames)) => write!(
                f,
                "AdminCerts(console {name} for {}{})",
                hostnames.join(", "),
                if self.reset_pending() {
                    ", ignored until the reset is finished"
                } else {
                    ""
                }
            ),
            None => f.write_str("AdminCerts(node certificate only)"),
        }
    }
}

impl AdminCerts {
    /// `node` is the node certificate and key, `node_cert_der` its certificate (for the names
    /// it carries); `reset`: a `console-reset` marker was found at start.
    pub fn new(
        node: Arc<CertifiedKey>,
        node_cert_der: &[u8],
        keyring: Arc<Keyring>,
        reset: bool,
    ) -> Arc<Self> {
        let node_names = crate::bundle::cert::parse_cert(node_cert_der)
            .map(|c| c.dns_names.iter().map(|n| normalize(n)).collect())
            .unwrap_or_default();
        Arc::new(AdminCerts {
            node,
            node_names,
            console: ArcSwapOption::empty(),
            keyring,
            reset: AtomicBool::new(reset),
        })
    }

    /// Takes the console setting from an applied delta, when it carries one. Called by the
    /// store inside `apply`: cheap, no key is opened here.
    pub fn apply(&self, delta: &ServingDelta) {
        if let Some(console) = &delta.console {
            self.set(console.as_ref());
        }
    }

    fn set(&self, console: Option<&ConsoleServed>) {
        let current = self.console.load_full();
        let next = console.map(|c| {
            let id = c.bundle.id();
            let key = match current.as_ref().filter(|k| k.id == id) {
                Some(same) => same.key.clone(),
                None => Arc::new(ServedKey::sealed(
                    c.bundle.sealed.clone(),
                    self.keyring.clone(),
                )),
            };
            Arc::new(ConsoleKey {
                name: c.bundle.name.clone(),
                id,
                hostnames: c.hostnames.iter().map(|h| normalize(h)).collect(),
                key,
            })
        });
        let changed = match (&current, &next) {
            (Some(a), Some(b)) => a.id != b.id || a.hostnames != b.hostnames || a.name != b.name,
            (None, None) => false,
            _ => true,
        };
        if changed {
            match &next {
                Some(k) => tracing::info!(
                    bundle = %k.name,
                    hostnames = %k.hostnames.join(","),
                    ignored_until_reset_finishes = self.reset_pending(),
                    "admin port: console certificate set"
                ),
                None => tracing::info!(
                    "admin port: no console certificate; the node certificate for every client"
                ),
            }
        }
        self.console.store(next);
    }

    /// The console certificate as applied (name, hostnames), whether or not a reset hides it.
    pub fn setting(&self) -> Option<(String, Vec<String>)> {
        self.console
            .load()
            .as_ref()
            .map(|k| (k.name.clone(), k.hostnames.clone()))
    }

    /// Whether a `console-reset` is still unfinished (the setting is ignored).
    pub fn reset_pending(&self) -> bool {
        self.reset.load(Ordering::Acquire)
    }

    /// The reset is finished (the cleared setting is committed): honour the setting again.
    pub fn end_reset(&self) {
        self.reset.store(false, Ordering::Release);
    }
}

impl ResolvesServerCert for AdminCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let console = self.console.load();
        let hostnames = console.as_ref().map(|k| k.hostnames.as_slice());
        let presented = pick(
            hello.server_name(),
            &self.node_names,
            hostnames,
            self.reset_pending(),
        );
        match (presented, console.as_ref()) {
            (Presented::Console, Some(k)) => match k.key.get() {
                (Ok(key), _) => Some(key),
                (Err(e), fresh) => {
                    if fresh {
                        tracing::error!(bundle = %k.name, error = %e, "admin port: the console certificate does not open; presenting the node certificate instead (`certraft console cert OTHER --hostname H`, or `certraft console reset`)");
                    }
                    Some(self.node.clone())
                }
            },
            _ => Some(self.node.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The admin port's choice for each ClientHello: only a console hostname, not shadowed by
    /// a name of the node certificate and with no reset pending, gets the console certificate.
    #[test]
    fn only_a_console_hostname_gets_the_console_certificate() {
        let node = vec!["node1.example.test".to_string(), "localhost".to_string()];
        let console = vec![
            "console.example.test".to_string(),
            "node1.example.test".to_string(),
        ];
        use Presented::*;
        let table: &[(Option<&str>, bool, bool, Presented)] = &[
            // (SNI, console set, reset pending, presented)
            (Some("console.example.test"), true, false, Console),
            (Some("CONSOLE.Example.Test."), true, false, Console),
            (Some("console.example.test"), false, false, Node),
            (Some("console.example.test"), true, true, Node),
            (Some("other.example.test"), true, false, Node),
            (Some("x.console.example.test"), true, false, Node),
            (Some("node1.example.test"), true, false, Node),
            (Some("localhost"), true, false, Node),
            (None, true, false, Node),
        ];
        for (sni, set, reset, want) in table {
            let c = set.then_some(console.as_slice());
            assert_eq!(pick(*sni, &node, c, *reset), *want, "{sni:?} {set} {reset}");
        }
    }
}
