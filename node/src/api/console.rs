//! The console certificate routes (issue 16): `GET`, `PUT` and `DELETE /api/v1/console`,
//! and the uses of a bundle that `cert show` lists. The rules (an active bundle covering
//! every hostname, the remove and rotate guards) are `apply`'s (`inventory/console.rs`);
//! this file adds the one check that needs the membership: a console hostname must not be a
//! member's admin address, which the CLI and the peers use and which keeps the node
//! certificate.

use axum::extract::State;
use axum::{Extension, Json};

use super::dto::*;
use super::error::AppError;
use super::server::*;
use crate::bundle::assemble::fmt_time;
use crate::inventory::{BundleUse, Command, Inventory, Outcome};

/// The setting as the API shows it.
fn status_of(inv: &Inventory) -> ConsoleStatus {
    let Some(c) = inv.console.as_ref() else {
        return ConsoleStatus::default();
    };
    let bundle = inv.bundles.get(&c.name);
    ConsoleStatus {
        name: Some(c.name.clone()),
        hostnames: c.hostnames.clone(),
        id: bundle.map(|b| hex::encode(b.id())),
        not_after: bundle.map(|b| fmt_time(b.meta.not_after)),
        ..ConsoleStatus::default()
    }
}

pub(super) async fn get_console(State(st): State<S>) -> Result<Json<ConsoleStatus>, AppError> {
    let inv = st.read_barrier().await?;
    Ok(Json(status_of(&inv)))
}

pub(super) async fn set_console(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<SetConsoleRequest>,
) -> Result<Json<ConsoleStatus>, AppError> {
    refuse_node_addresses(&st, &body.hostnames)?;
    let command = Command::SetConsole {
        name: body.name,
        hostnames: body.hostnames,
    };
    let (outcome, index) = st.propose(&actor.0, command).await?;
    if !matches!(outcome, Outcome::ConsoleSet { .. }) {
        return Err(AppError::Internal(format!(
            "set console answered {outcome:?}"
        )));
    }
    Ok(Json(ConsoleStatus {
        index: Some(index),
        ..status_of(&st.sm.inventory())
    }))
}

pub(super) async fn clear_console(
    State(st): State<S>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<ConsoleStatus>, AppError> {
    let (outcome, index) = st.propose(&actor.0, Command::ClearConsole).await?;
    let Outcome::ConsoleCleared { was } = outcome else {
        return Err(AppError::Internal(format!(
            "clear console answered {outcome:?}"
        )));
    };
    Ok(Json(ConsoleStatus {
        was,
        index: Some(index),
        ..ConsoleStatus::default()
    }))
}

/// A hostname the CLI or a peer reaches a member by (its advertised admin host, or
/// `localhost`) keeps the node certificate on that member whatever the setting (see
/// `tls::console::pick`), so it is refused here, saying why.
fn refuse_node_addresses(st: &AppState, hostnames: &[String]) -> Result<(), AppError> {
    let mut hosts: Vec<(String, String)> = st
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, n)| (host_of(&n.admin_addr), format!("node {id}'s admin address")))
        .collect();
    hosts.push(("localhost".into(), "every node's own name".into()));
    for h in hostnames {
        let h = crate::bundle::cert::normalize_hostname(h);
        if let Some((_, whose)) = hosts.iter().find(|(host, _)| *host == h) {
            return Err(AppError::BadRequest {
                code: "console_hostname_is_node_address",
                message: format!(
                    "{h} is {whose}, which the CLI and the peers use and which always gets the node certificate; a console hostname must be another name"
                ),
                hint: Some(
                    "give the console its own DNS name (e.g. console.example.com) pointing at the nodes".into(),
                ),
            });
        }
    }
    Ok(())
}

/// `host` of `host:port` (IPv6 brackets dropped), lowercase.
fn host_of(addr: &str) -> String {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Every use of bundle `name`, for `cert show` (and the UI).
pub(crate) fn uses(inv: &Inventory, name: &str, now: i64) -> Vec<CertUse> {
    inv.uses_of(name, now)
        .into_iter()
        .map(|u| match u {
            BundleUse::Serving(hostnames) => CertUse {
                kind: "serving".into(),
                description: format!(
                    "serve port: the certificate chosen for {}",
                    hostnames.join(", ")
                ),
                hostnames,
            },
            BundleUse::Default => CertUse {
                kind: "default".into(),
                hostnames: Vec::new(),
                description:
                    "serve port: the cluster-wide default (no SNI, or a name no certificate covers)"
                        .into(),
            },
            BundleUse::Console(hostnames) => CertUse {
                kind: "console".into(),
                description: format!(
                    "admin port: the console certificate for {} (`certraft console show`)",
                    hostnames.join(", ")
                ),
                hostnames,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::host_of;

    /// The host of an admin address, as the membership records it.
    #[test]
    fn host_of_an_admin_address() {
        for (addr, host) in [
            ("127.0.0.1:9443", "127.0.0.1"),
            ("Node1.Example.com:9443", "node1.example.com"),
            ("[::1]:9443", "::1"),
            ("node1", "node1"),
        ] {
            assert_eq!(host_of(addr), host, "{addr}");
        }
    }
}
