//! The guard in front of `certraft-node recover --force-single-node` (issue 22): the
//! operator names every other voter of the last known membership as dead (`--dead`), and
//! none of them may answer on its cluster or admin port, because a recovered node beside a
//! live majority is a second cluster that never meets the first (split brain).

use std::collections::BTreeSet;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::raft::NodeInfo;

/// How long one address gets to accept a TCP connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why `recover` will not run; the text says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Exit 2: the command line does not name the dead voters exactly.
    #[error("{0}")]
    Usage(String),
    /// Exit 1: a voter named dead answers.
    #[error("{0}")]
    Answering(String),
}

/// Another voter of the last known membership.
#[derive(Debug, Clone)]
pub struct Voter {
    pub id: u64,
    pub info: NodeInfo,
}

impl Voter {
    fn label(&self) -> String {
        format!(
            "node {} (cluster {}, admin {})",
            self.id,
            or_unknown(&self.info.cluster_addr),
            or_unknown(&self.info.admin_addr)
        )
    }
}

fn or_unknown(addr: &str) -> &str {
    if addr.is_empty() {
        "unknown"
    } else {
        addr
    }
}

/// The voters of `membership` other than `me`.
pub fn other_voters(membership: &openraft::Membership<u64, NodeInfo>, me: u64) -> Vec<Voter> {
    membership
        .voter_ids()
        .filter(|id| *id != me)
        .map(|id| Voter {
            id,
            info: membership.get_node(&id).cloned().unwrap_or_default(),
        })
        .collect()
}

/// Checks `dead` against `others`: every other voter named, nothing else named.
pub fn check_named(others: &[Voter], dead: &[u64]) -> Result<(), Refusal> {
    let named: BTreeSet<u64> = dead.iter().copied().collect();
    let voters: BTreeSet<u64> = others.iter().map(|v| v.id).collect();
    let unknown: Vec<String> = named.difference(&voters).map(u64::to_string).collect();
    if !unknown.is_empty() {
        return Err(Refusal::Usage(format!(
            "--dead names {} but the last known membership's other voters are {}; name exactly those",
            unknown.join(","),
            list(&voters)
        )));
    }
    let missing: Vec<&Voter> = others.iter().filter(|v| !named.contains(&v.id)).collect();
    if !missing.is_empty() {
        let labels: Vec<String> = missing.iter().map(|v| v.label()).collect();
        return Err(Refusal::Usage(format!(
            "the last known membership also has {}; if every one is gone for good (and will never run again with its data dir), say so: --dead {}",
            labels.join(", "),
            list(&voters)
        )));
    }
    Ok(())
}

fn list(ids: &BTreeSet<u64>) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The `(voter, address)` pairs where something accepts a TCP connection within
/// [`PROBE_TIMEOUT`]; all addresses are probed at once.
pub fn answering(others: &[Voter]) -> Vec<(u64, String)> {
    let probes: Vec<_> = others
        .iter()
        .flat_map(|v| {
            [v.info.cluster_addr.clone(), v.info.admin_addr.clone()]
                .into_iter()
                .filter(|a| !a.is_empty())
                .map(move |addr| (v.id, addr))
        })
        .map(|(id, addr)| {
            std::thread::spawn(move || {
                let up = addr
                    .to_socket_addrs()
                    .map(|mut addrs| {
                        addrs.any(|a| TcpStream::connect_timeout(&a, PROBE_TIMEOUT).is_ok())
                    })
                    .unwrap_or(false);
                up.then_some((id, addr))
            })
        })
        .collect();
    probes
        .into_iter()
        .filter_map(|p| p.join().ok().flatten())
        .collect()
}

/// The whole guard: names checked, then the probes. `even_if_answering` (the named
/// override) turns an answering voter into a warning the caller prints.
pub fn guard(
    others: &[Voter],
    dead: &[u64],
    even_if_answering: bool,
) -> Result<Vec<String>, Refusal> {
    check_named(others, dead)?;
    let up = answering(others);
    if up.is_empty() {
        return Ok(Vec::new());
    }
    let lines: Vec<String> = up
        .iter()
        .map(|(id, addr)| format!("node {id} answers at {addr}"))
        .collect();
    if even_if_answering {
        return Ok(lines);
    }
    Err(Refusal::Answering(format!(
        "{}: a voter named dead is running, and a recovered node beside it would be a second cluster that never meets the first (both accepting writes). Nothing was changed. Stop it for good first; if what answers there is not that node (the address was reused), pass --even-if-answering",
        lines.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voter(id: u64, cluster: &str) -> Voter {
        Voter {
            id,
            info: NodeInfo {
                cluster_addr: cluster.into(),
                ..NodeInfo::default()
            },
        }
    }

    /// `--dead` must name exactly the other voters: missing ones are listed with their
    /// addresses and the flag to pass; an id that is not a voter is refused.
    #[test]
    fn dead_must_name_exactly_the_other_voters() {
        let others = [voter(2, "10.0.0.2:9444"), voter(3, "10.0.0.3:9444")];
        assert!(check_named(&others, &[2, 3]).is_ok());
        assert!(check_named(&[], &[]).is_ok());
        match check_named(&others, &[2]) {
            Err(Refusal::Usage(m)) => {
                assert!(m.contains("node 3 (cluster 10.0.0.3:9444"), "{m}");
                assert!(m.contains("--dead 2,3"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        match check_named(&others, &[2, 3, 7]) {
            Err(Refusal::Usage(m)) => assert!(m.contains("names 7"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// A listening address counts as answering; a closed one does not.
    #[test]
    fn a_listening_voter_answers_and_stops_the_guard() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().to_string();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let others = [voter(2, &open), voter(3, &closed)];
        assert_eq!(answering(&others), vec![(2, open.clone())]);
        match guard(&others, &[2, 3], false) {
            Err(Refusal::Answering(m)) => {
                assert!(m.contains(&format!("node 2 answers at {open}")), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(guard(&others, &[2, 3], true).unwrap().len(), 1);
        drop(listener);
    }
}
