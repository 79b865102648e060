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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// A listener's connection slots. When they are all taken, a new connection takes the slot
/// of the oldest one that is *not serving a request* (still in its TLS handshake, or idle
/// between requests), which is closed: connections that only hold a slot (slowloris, an
/// idle flood from many addresses) are the ones that lose it, and a real client, whose
/// connection is busy from its handshake on, gets in.
struct Room {
    max: usize,
    state: Mutex<RoomState>,
}

#[derive(Default)]
struct RoomState {
    open: usize,
    next: u64,
    /// Every open connection by arrival: its close signal, its requests in flight, and
    /// whether its TLS handshake is done.
    conns: std::collections::BTreeMap<u64, (CancellationToken, Arc<AtomicUsize>, Arc<AtomicBool>)>,
}

/// One connection's slot; given back on drop.
struct Ticket {
    room: Arc<Room>,
    seq: u64,
    /// Fires when a newer connection took this one's slot.
    evicted: CancellationToken,
    /// Requests in flight on this connection (it is not evicted while one is).
    busy: Arc<AtomicUsize>,
    /// Set once the TLS handshake is done: connections still in theirs go first.
    handshaken: Arc<AtomicBool>,
}

impl Room {
    fn new(max: usize) -> Arc<Room> {
        Arc::new(Room {
            max,
            state: Mutex::new(RoomState::default()),
        })
    }

    /// A slot for a new connection, evicting the oldest idle one when full; `None` when
    /// every connection is busy with a request.
    fn admit(self: &Arc<Room>) -> Option<Ticket> {
        // Held for bookkeeping only.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.open >= self.max {
            // The oldest still in its handshake (anonymous so far), else the oldest idle.
            let idle = |(_, (_, busy, _)): &(
                &u64,
                &(CancellationToken, Arc<AtomicUsize>, Arc<AtomicBool>),
            )| { busy.load(Ordering::Acquire) == 0 };
            let victim = st
                .conns
                .iter()
                .find(|c| idle(c) && !c.1 .2.load(Ordering::Acquire))
                .or_else(|| st.conns.iter().find(idle))
                .map(|(seq, _)| *seq)?;
            if let Some((token, _, _)) = st.conns.remove(&victim) {
                token.cancel();
                // Its slot passes to the newcomer now: the evicted ticket gives back none.
                st.open -= 1;
            }
        }
        st.open += 1;
        let seq = st.next;
        st.next += 1;
        let (evicted, busy) = (CancellationToken::new(), Arc::new(AtomicUsize::new(0)));
        let handshaken = Arc::new(AtomicBool::new(false));
        st.conns
            .insert(seq, (evicted.clone(), busy.clone(), handshaken.clone()));
        Some(Ticket {
            room: self.clone(),
            seq,
            evicted,
            busy,
            handshaken,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.room.state.lock().unwrap_or_else(|e| e.into_inner());
        // An evicted ticket was already taken out, and its slot given to another.
        if st.conns.remove(&self.seq).is_some() {
            st.open -= 1;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A full room evicts its oldest idle connection for a newcomer, never a busy one, and
    /// refuses only when every connection is serving a request; slots are never lost.
    #[test]
    fn a_full_room_evicts_the_oldest_idle_connection_never_a_busy_one() {
        let room = Room::new(3);
        let a = room.admit().unwrap();
        let b = room.admit().unwrap();
        let c = room.admit().unwrap();
        a.busy.fetch_add(1, Ordering::AcqRel);
        b.handshaken.store(true, Ordering::Release);
        let d = room.admit().unwrap();
        assert!(!a.evicted.is_cancelled(), "a busy connection was evicted");
        assert!(
            c.evicted.is_cancelled(),
            "one still in its handshake goes first"
        );
        assert!(!b.evicted.is_cancelled());
        drop(c);
        d.busy.fetch_add(1, Ordering::AcqRel);
        let e = room.admit().unwrap();
        assert!(b.evicted.is_cancelled(), "then the oldest idle one");
        drop(b);
        e.busy.fetch_add(1, Ordering::AcqRel);
        assert!(room.admit().is_none(), "every slot is busy");
        drop((a, d, e));
        let st = room.state.lock().unwrap();
        assert_eq!((st.open, st.conns.len()), (0, 0));
    }

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
