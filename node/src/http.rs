//! One HTTPS accept loop for the admin and cluster ports: TLS handshake, then HTTP/1.1 into an
//! axum router. Each connection is a task on the node's tracker and stops gracefully when the
//! node's cancellation token fires.
//!
//! Every connection is bounded ([`Limits`]): a whole-handshake deadline, a header-read
//! deadline that is also the idle limit between requests (hyper starts it whenever it waits
//! for a request head), a lifetime after which the connection is closed between requests,
//! and caps on connections per listener and per source address. On the cluster port, a
//! connection whose peer stops being a member is closed the moment the membership changes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::log_limit::RateLimitedLog;
use crate::pki::{cert_sha256, node_id_of};
use crate::raft::tls::Members;

/// The node named by the client certificate of this connection (cluster port only), and the
/// SHA-256 of that certificate, so each request can be checked against the membership.
#[derive(Debug, Clone, Copy)]
pub struct PeerNode {
    pub id: u64,
    pub cert_sha256: [u8; 32],
}

/// The TCP peer of this connection.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections on this listener; one more is closed at accept.
    pub max_connections: usize,
    /// Open connections from one source address.
    pub max_per_source: usize,
    /// From accept to a finished TLS handshake.
    pub handshake: Duration,
    /// To read a request's head, and the longest a connection may sit idle between requests.
    pub header_read: Duration,
    /// After this a connection is closed once its request in flight is answered.
    pub lifetime: Duration,
}

impl Limits {
    /// The admin port: operators, the CLI, other nodes forwarding (each forward is a fresh
    /// connection). 256 connections leave room under a 1,024-descriptor limit for the other
    /// ports and the store.
    pub const ADMIN: Limits = Limits {
        max_connections: 256,
        max_per_source: 64,
        handshake: Duration::from_secs(5),
        header_read: Duration::from_secs(15),
        lifetime: Duration::from_secs(600),
    };
    /// The cluster port: a few pooled connections per member. Its cap is separate from the
    /// admin port's, so a flood there never takes the room Raft needs.
    pub const CLUSTER: Limits = Limits {
        max_connections: 256,
        max_per_source: 32,
        handshake: Duration::from_secs(5),
        header_read: Duration::from_secs(30),
        lifetime: Duration::from_secs(600),
    };
}

/// Open connections per source address; a slot is given back when its guard drops.
#[derive(Clone, Default)]
struct PerSource(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct Slot {
    table: PerSource,
    ip: IpAddr,
}

impl PerSource {
    fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        // Held for a counter update only.
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = t.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` over TLS until `cancel` fires. With `members` (the cluster
/// port), a connection is closed as soon as its peer is no longer admitted.
#[allow(clippy::too_many_arguments)]
pub async fn serve_tls(
    what: &'static str,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    members: Option<Members>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let acceptor = TlsAcceptor::from(tls);
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_source = PerSource::default();
    let accept_errors = RateLimitedLog::new(Duration::from_secs(10));
    let over_cap = RateLimitedLog::new(Duration::from_secs(10));
    loop {
        let (tcp, remote) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (EMFILE) repeats for as long as the cause lasts:
                    // one line per interval, and a pause so the loop does not spin.
                    if let Some(suppressed) = accept_errors.admit(Instant::now()) {
                        tracing::warn!(port = what, error = %e, suppressed, "accept failed; raise the open-files limit (ulimit -n) if this repeats");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Some(suppressed) = over_cap.admit(Instant::now()) {
                tracing::warn!(port = what, %remote, limit = limits.max_connections, suppressed, "connection refused: the port is at its connection limit");
            }
            continue;
        };
        let Some(slot) = per_source.take(remote.ip(), limits.max_per_source) else {
            if let Some(suppressed) = over_cap.admit(Instant::now()) {
                tracing::warn!(port = what, %remote, limit = limits.max_per_source, suppressed, "connection refused: this source is at its connection limit");
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let cancel = cancel.clone();
        let members = members.clone();
        tracker.spawn(async move {
            let _held = (permit, slot);
            let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(port = what, %remote, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| {
                    Some(PeerNode {
                        id: node_id_of(c)?,
                        cert_sha256: cert_sha256(c),
                    })
                });
            let mut router = router.layer(axum::Extension(ClientAddr(remote)));
            if let Some(p) = peer {
                router = router.layer(axum::Extension(p));
            }
            let mut membership = members.as_ref().map(Members::subscribe);
            let service = TowerToHyperService::new(router);
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            let lifetime = tokio::time::sleep(limits.lifetime);
            tokio::pin!(lifetime);
            let mut draining = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(port = what, %remote, error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    _ = cancel.cancelled(), if !draining => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                        return;
                    }
                    _ = &mut lifetime, if !draining => {
                        // Closed between requests; the client opens a new connection.
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    changed = changed(&mut membership) => {
                        if changed.is_err() {
                            membership = None;
                            continue;
                        }
                        let admitted = match (&members, peer) {
                            (Some(m), Some(p)) => m.admits_sha256(p.id, &p.cert_sha256),
                            _ => false,
                        };
                        if !admitted {
                            tracing::info!(port = what, %remote, node = ?peer.map(|p| p.id), "closing the connection of a node that is no longer a member");
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Waits for the next membership change; never, without a membership to watch.
async fn changed(
    rx: &mut Option<tokio::sync::watch::Receiver<u64>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-source slots are capped and given back when a connection ends.
    #[test]
    fn per_source_slots_are_capped_and_returned() {
        let table = PerSource::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<Slot> = (0..3).map(|_| table.take(a, 3).unwrap()).collect();
        assert!(table.take(a, 3).is_none(), "a fourth from one source");
        assert!(table.take(b, 3).is_some(), "another source is unaffected");
        drop(held);
        let again = table.take(a, 3);
        assert!(again.is_some());
        assert_eq!(table.0.lock().unwrap().get(&a), Some(&1));
        drop(again);
        assert!(table.0.lock().unwrap().is_empty(), "no entry left behind");
    }
}
