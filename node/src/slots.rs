//! Connection slots for every listener (admin, cluster and serve ports): a per-listener
//! [`Room`] that makes space for a newcomer by closing the oldest connection that is not
//! serving anything (one still in its TLS handshake first), and [`PerSource`] caps per
//! address. Bookkeeping only: the listener decides what "busy" means for its connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// A listener's connection slots. When they are all taken, a new connection takes the slot
/// of the oldest one that is *not serving a request* (still in its TLS handshake, or idle
/// between requests), which is closed: connections that only hold a slot (slowloris, an
/// idle flood from many addresses) are the ones that lose it, and a real client, whose
/// connection is busy from its handshake on, gets in.
pub struct Room {
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
pub struct Ticket {
    room: Arc<Room>,
    seq: u64,
    /// Fires when a newer connection took this one's slot.
    pub evicted: CancellationToken,
    /// Requests in flight on this connection (it is not evicted while one is).
    pub busy: Arc<AtomicUsize>,
    /// Set once the TLS handshake is done: connections still in theirs go first.
    pub handshaken: Arc<AtomicBool>,
}

impl Room {
    pub fn new(max: usize) -> Arc<Room> {
        Arc::new(Room {
            max,
            state: Mutex::new(RoomState::default()),
        })
    }

    /// A slot for a new connection, evicting the oldest idle one when full; `None` when
    /// every connection is busy with a request.
    pub fn admit(self: &Arc<Room>) -> Option<Ticket> {
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
pub struct PerSource(Arc<Mutex<HashMap<IpAddr, usize>>>);

pub struct Slot {
    table: PerSource,
    ip: IpAddr,
}

impl PerSource {
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
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

/// Descriptors kept for everything but the serve port: the admin and cluster ports' caps
/// ([`crate::http::Limits`]), plus the store, logs, outgoing peer and upstream connections.
pub const RESERVED_DESCRIPTORS: u64 = (crate::http::Limits::ADMIN.max_connections
    + crate::http::Limits::CLUSTER.max_connections) as u64
    + 256;

/// The fewest serve-port connections ever configured by the fit below.
const MIN_SERVE: u64 = 16;

/// What [`fit_open_files`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit now in force (raised to the hard limit where it was lower).
    pub limit: u64,
    /// The serve port's connection cap that fits under it.
    pub serve_max: usize,
}

/// Raises this process's open-files soft limit to its hard limit, then fits the serve port's
/// cap under it with [`RESERVED_DESCRIPTORS`] kept for the other ports, so a serve-port flood
/// can never take the descriptors Raft and the admin API need.
pub fn fit_open_files(serve_max: usize) -> OpenFiles {
    let limit = raise_open_files_limit();
    OpenFiles {
        limit,
        serve_max: serve_fit(limit, serve_max),
    }
}

fn serve_fit(limit: u64, serve_max: usize) -> usize {
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS).max(MIN_SERVE);
    usize::try_from(room).map_or(serve_max, |room| serve_max.min(room))
}

#[cfg(unix)]
fn raise_open_files_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let (current, maximum) = (
        now.current.unwrap_or(u64::MAX),
        now.maximum.unwrap_or(u64::MAX),
    );
    if current < maximum {
        let raised = Rlimit {
            current: now.maximum,
            maximum: now.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return maximum;
        }
    }
    current
}

#[cfg(not(unix))]
fn raise_open_files_limit() -> u64 {
    u64::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serve port's cap fits under the open-files limit with room kept for the rest.
    #[test]
    fn the_serve_port_fits_under_the_open_files_limit() {
        assert_eq!(serve_fit(1_048_576, 10_000), 10_000);
        assert_eq!(
            serve_fit(1_024, 10_000),
            (1_024 - RESERVED_DESCRIPTORS) as usize
        );
        assert_eq!(serve_fit(100, 10_000), MIN_SERVE as usize);
        assert_eq!(serve_fit(u64::MAX, 7), 7);
    }

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
