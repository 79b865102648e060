//! One HTTPS accept loop for the admin and cluster ports: TLS handshake, then HTTP/1.1 into an
//! axum router. Each connection is a task on the node's tracker and stops gracefully when the
//! node's cancellation token fires.
//!
//! Every connection is bounded ([`Limits`]): a whole-handshake deadline, a header-read
//! deadline that is also the idle limit between requests (hyper starts it whenever it waits
//! for a request head), a lifetime after which the connection is closed between requests,
//! and caps on connections per source address and per listener. A full listener makes room
//! for a newcomer by closing its oldest connection that is not serving a request (one still
//! in its handshake first), so an idle flood from many addresses cannot lock real clients
//! out. On the cluster port, a
//! connection whose peer stops being a member is closed the moment the membership changes.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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
use crate::slots::{PerSource, Room};

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
    /// admin port's, so a flood there never takes the room Raft needs. 64 per source leaves
    /// room for clusters whose members share one address (tests on loopback, a NAT).
    pub const CLUSTER: Limits = Limits {
        max_connections: 256,
        max_per_source: 64,
        handshake: Duration::from_secs(5),
        header_read: Duration::from_secs(30),
        lifetime: Duration::from_secs(600),
    };
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
    let room = Room::new(limits.max_connections);
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
        let Some(slot) = per_source.take(remote.ip(), limits.max_per_source) else {
            if let Some(suppressed) = over_cap.admit(Instant::now()) {
                tracing::warn!(port = what, %remote, limit = limits.max_per_source, suppressed, "connection refused: this source is at its connection limit");
            }
            continue;
        };
        let Some(ticket) = room.admit() else {
            if let Some(suppressed) = over_cap.admit(Instant::now()) {
                tracing::warn!(port = what, %remote, limit = limits.max_connections, suppressed, "connection refused: every connection slot is serving a request");
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let cancel = cancel.clone();
        let members = members.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let handshake = tokio::time::timeout(limits.handshake, acceptor.accept(tcp));
            let tls = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(port = what, %remote, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => return,
                },
                _ = ticket.evicted.cancelled() => return,
            };
            ticket.handshaken.store(true, Ordering::Release);
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
            // Requests in flight keep the connection from being evicted.
            let busy = ticket.busy.clone();
            let mut router = router
                .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let busy = busy.clone();
                    async move {
                        busy.fetch_add(1, Ordering::AcqRel);
                        let resp = next.run(req).await;
                        busy.fetch_sub(1, Ordering::AcqRel);
                        resp
                    }
                }))
                .layer(axum::Extension(ClientAddr(remote)));
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
                    _ = ticket.evicted.cancelled(), if !draining => {
                        // A newer connection needed the slot; this one is idle.
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
                        if !admitted && !draining {
                            // Gracefully: the answer to a request already in flight still
                            // goes out (the append that carried the membership change itself,
                            // which a leader removing itself needs to commit it); every later
                            // request is refused by `authorize`, and the connection closes.
                            tracing::info!(port = what, %remote, node = ?peer.map(|p| p.id), "closing the connection of a node that is no longer a member");
                            draining = true;
                            conn.as_mut().graceful_shutdown();
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
