//! The SNI serving plane (SPEC §4): the serve port terminates TLS 1.2/1.3 with the
//! certificate the replicated inventory names for each SNI.
//!
//! - [`index`]: the pure `CertIndex` (selection rules, incremental updates, cheap clones).
//! - [`console`]: the admin port's resolver: the node certificate, or the console
//!   certificate for the console hostnames (issue 16).
//! - This module: [`Serving::apply`], which the store calls inside its apply with each
//!   [`ServingDelta`] (the touched bundles only) and which publishes the next index
//!   generation with one atomic pointer swap; the connection handler that reads it without a
//!   lock; and the listener.
//!
//! Invariants: sees only `bundle`, the index and the store's deltas; never Raft or the API.
//! Served is part of applied: when the state machine reports log index N applied, every
//! handshake that starts afterwards sees the index as of N. A handshake in flight keeps the
//! `CertifiedKey` it resolved.

pub mod challenge;
pub mod console;
pub mod index;
mod page;
pub mod proxy;
mod random;
pub mod tickets;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bundle::Keyring;
use crate::inventory::ServingDelta;
use index::{CertIndex, Matched, Served};

use crate::clock::unix_now as now;

/// Handshake outcomes, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub exact: AtomicU64,
    pub wildcard: AtomicU64,
    pub default: AtomicU64,
    pub node_cert: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    /// Closed at accept because `max_connections` were open, all past their handshake.
    pub over_limit: AtomicU64,
    /// Closed before the end of their handshake to make room for a newcomer.
    pub evicted: AtomicU64,
}

/// What the serve port answers from: the current index generation and the fallbacks.
pub struct Serving {
    index: ArcSwap<CertIndex>,
    /// SPEC §4 rule 4: the node's own certificate when no default was ever set.
    node_cert: Arc<CertifiedKey>,
    /// Refuse a handshake whose SNI matches nothing with `unrecognized_name`.
    pub strict_sni: bool,
    /// This node's id, for the answer page.
    pub node_id: u64,
    pub counters: Counters,
    /// The Raft log index the published generation reflects.
    pub applied: AtomicU64,
    /// Where decrypted connections go; `None`: answer with the small page.
    pub upstream: Option<proxy::Upstream>,
    /// At most this many connections at once: a newcomer takes the slot of the oldest one
    /// still in its handshake, and is closed at accept when every one is past it.
    pub max_connections: usize,
    /// Session tickets under the cluster-wide keys.
    pub tickets: Arc<tickets::ClusterTicketer>,
    /// Opens the sealed bundles and ticket keys the store hands over.
    keyring: Arc<Keyring>,
    /// The ACME challenges this node answers (HTTP port and `acme-tls/1`).
    challenges: ArcSwap<challenge::Challenges>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ix = self.index.load();
        write!(
            f,
            "Serving(node {}, {} certificates, generation {})",
            self.node_id,
            ix.len(),
            ix.generation
        )
    }
}

/// How the serve port behaves (from the node's configuration).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub strict_sni: bool,
    pub upstream: Option<proxy::Upstream>,
    pub max_connections: usize,
}

/// The certificate chosen for one handshake.
#[derive(Debug, Clone)]
pub struct Choice {
    pub matched: Option<Matched>,
    /// The bundle name, or `None` for the node certificate.
    pub name: Option<String>,
    pub key: Arc<CertifiedKey>,
}

impl Serving {
    pub fn new(
        node_id: u64,
        node_cert: Arc<CertifiedKey>,
        keyring: Arc<Keyring>,
        options: ServeOptions,
    ) -> Arc<Self> {
        Arc::new(Serving {
            index: ArcSwap::from_pointee(CertIndex::default()),
            node_cert,
            strict_sni: options.strict_sni,
            node_id,
            counters: Counters::default(),
            applied: AtomicU64::new(0),
            upstream: options.upstream,
            max_connections: options.max_connections,
            tickets: Arc::new(tickets::ClusterTicketer::default()),
            keyring,
            challenges: ArcSwap::from_pointee(challenge::Challenges::default()),
        })
    }

    /// The ACME challenges answered now.
    pub fn challenges(&self) -> arc_swap::Guard<Arc<challenge::Challenges>> {
        self.challenges.load()
    }

    pub fn index(&self) -> arc_swap::Guard<Arc<CertIndex>> {
        self.index.load()
    }

    /// SPEC §4 for one SNI: the index's choice, else (no default ever set) the node
    /// certificate, else — under `strict_sni` — a refusal.
    pub fn choose(&self, sni: Option<&str>) -> Result<Choice, Refusal> {
        let ix = self.index.load();
        match ix.select(sni, now()) {
            Some((m, s)) if !(self.strict_sni && m == Matched::Default && sni.is_some()) => {
                match s.key.get() {
                    (Ok(key), _) => Ok(Choice {
                        matched: Some(m),
                        name: Some(s.name.clone()),
                        key,
                    }),
                    (Err(e), fresh) => {
                        if fresh {
                            // Validated at import, so this is damage or a keyring gap: the
                            // rest keeps serving; say which bundle and why (once).
                            tracing::error!(bundle = %s.name, error = %e, "cannot serve bundle");
                        }
                        Err(Refusal::Unusable)
                    }
                }
            }
            Some(_) => Err(Refusal::UnknownName),
            None if self.strict_sni && sni.is_some() => Err(Refusal::UnknownName),
            None => Ok(Choice {
                matched: None,
                name: None,
                key: self.node_cert.clone(),
            }),
        }
    }

    /// Applies one delta to a copy of the current index and publishes it with one pointer
    /// swap. Cheap enough to run inside the state machine's apply: keys are filed sealed and
    /// opened on their first handshake ([`index::ServedKey`]), and only the shards the delta
    /// touches are copied.
    pub fn apply(&self, delta: ServingDelta) {
        let changes = delta.full
            || !delta.upserts.is_empty()
            || !delta.removes.is_empty()
            || self.index.load().default_name() != delta.default.as_deref();
        if changes {
            let mut ix = if delta.full {
                let mut fresh = CertIndex::default();
                fresh.generation = self.index.load().generation + 1;
                fresh
            } else {
                CertIndex::clone(&self.index.load())
            };
            for name in &delta.removes {
                ix.remove(name);
            }
            for b in delta.upserts {
                ix.upsert(
                    &b.meta.hostnames,
                    Served {
                        name: b.name,
                        not_before: b.meta.not_before,
                        not_after: b.meta.not_after,
                        key: index::ServedKey::sealed(b.sealed, self.keyring.clone()),
                    },
                );
            }
            ix.set_default(delta.default);
            self.index.store(Arc::new(ix));
        }
        if let Some(keys) = &delta.ticket_keys {
            self.tickets.set(keys, &self.keyring);
        }
        if let Some(list) = delta.challenges {
            let next = challenge::Challenges::build(list, &self.challenges.load());
            self.challenges.store(Arc::new(next));
        }
        if let Some(a) = delta.applied {
            self.applied.store(a, Ordering::Release);
        }
    }
}

/// Why a handshake gets no certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `strict_sni` and the name matches nothing: `unrecognized_name`.
    UnknownName,
    /// The chosen bundle does not open (damage or a missing data key): the handshake fails.
    Unusable,
}

thread_local! {
    /// The certificate chosen for the connection being set up on this thread. Set just
    /// before rustls reads the ClientHello into a connection (which asks the resolver
    /// synchronously, on this thread) and taken by [`Pinned`]: no per-connection config.
    static PINNED: std::cell::RefCell<Option<Arc<CertifiedKey>>> =
        const { std::cell::RefCell::new(None) };
}

/// The serve port's resolver: hands rustls the certificate decided once per connection,
/// before the handshake, so the page, the metrics and the handshake agree even if a commit
/// lands in between.
#[derive(Debug)]
struct Pinned;

impl ResolvesServerCert for Pinned {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        PINNED.with(|p| p.borrow_mut().take())
    }
}

/// Reads the ClientHello of `accepted` into a connection that presents `key` (see
/// [`PINNED`]); on refusal, the alert rustls wants sent.
fn pinned_connection(
    accepted: rustls::server::Accepted,
    config: &Arc<rustls::ServerConfig>,
    key: &Arc<CertifiedKey>,
) -> Result<rustls::ServerConnection, rustls::server::AcceptedAlert> {
    PINNED.with(|p| *p.borrow_mut() = Some(key.clone()));
    let conn = accepted.into_connection(config.clone());
    PINNED.with(|p| p.borrow_mut().take());
    conn.map_err(|(_, alert)| alert)
}

/// Starts the handshake of `start` with `key` (see [`PINNED`]).
fn start_with(
    start: tokio_rustls::StartHandshake<tokio::net::TcpStream>,
    config: &Arc<rustls::ServerConfig>,
    key: &Arc<CertifiedKey>,
) -> tokio_rustls::Accept<tokio::net::TcpStream> {
    PINNED.with(|p| *p.borrow_mut() = Some(key.clone()));
    let accept = start.into_stream(config.clone());
    // Cleared whether or not rustls got as far as asking.
    PINNED.with(|p| p.borrow_mut().take());
    accept
}

/// The serve port's TLS config: TLS 1.2 and 1.3, certificates from the index.
pub fn server_config(serving: Arc<Serving>) -> Arc<rustls::ServerConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.secure_random = &random::Pooled;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Pinned));
    // Stateless tickets under cluster-wide keys: a client resumes on any node.
    config.ticketer = serving.tickets.clone();
    // The proxied upstream is plain TCP and cannot tell us what it speaks: offer only what
    // the operator listed (default HTTP/1.1); the page answer speaks HTTP/1.1.
    config.alpn_protocols = match &serving.upstream {
        Some(up) => up.alpn.iter().map(|p| p.as_bytes().to_vec()).collect(),
        None => vec![b"http/1.1".to_vec()],
    };
    Arc::new(config)
}

/// The serve port's config for TLS-ALPN-01 validation handshakes (RFC 8737): only
/// `acme-tls/1`, the challenge certificate pinned as for any other connection.
fn acme_tls_config() -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .expect("ring supports TLS 1.2 and 1.3")
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Pinned));
    config.alpn_protocols = vec![challenge::ACME_TLS_ALPN.to_vec()];
    Arc::new(config)
}

/// A TLS alert record: fatal `unrecognized_name` (112), sent in the clear before any
/// handshake message, as RFC 6066 asks for an SNI the server does not serve.
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// A fatal `internal_error` (80) alert record, for a chosen bundle that does not open.
const INTERNAL_ERROR_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50];

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves TLS on `listener` until cancelled: strict-SNI refusals, then the handshake with the
/// resolver, then a small HTTP answer naming the node and the certificate.
pub async fn serve(
    listener: TcpListener,
    serving: Arc<Serving>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let config = server_config(serving.clone());
    let acme_config = acme_tls_config();
    // Full: a newcomer takes the slot of the oldest connection still before the end of its
    // handshake (a trickling or silent client); a finished handshake is never evicted.
    let room = crate::slots::Room::new(serving.max_connections);
    let accept_errors = crate::log_limit::RateLimitedLog::new(Duration::from_secs(10));
    loop {
        let tcp = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    if let Some(suppressed) = accept_errors.admit(std::time::Instant::now()) {
                        tracing::warn!(error = %e, suppressed, "serve port: accept failed; raise the open-files limit (ulimit -n) if this repeats");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(ticket) = room.admit() else {
            serving.counters.over_limit.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let serving = serving.clone();
        let config = config.clone();
        let acme_config = acme_config.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let c = &serving.counters;
            let work = async {
                let Some((start, mut tcp_back)) = read_client_hello(tcp).await else {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let sni = start.client_hello().server_name().map(str::to_string);
                if challenge::wants_acme_tls(&start.client_hello()) {
                    // A CA validating TLS-ALPN-01: the challenge certificate, then close.
                    let key = sni
                        .as_deref()
                        .and_then(|s| serving.challenges().alpn_key(s));
                    let Some(key) = key else {
                        let _ = tcp_back.shutdown().await;
                        return;
                    };
                    let start = tokio_rustls::StartHandshake::from_parts(start, tcp_back);
                    let done = tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        start_with(start, &acme_config, &key),
                    )
                    .await;
                    if let Ok(Ok(mut tls)) = done {
                        let _ = tls.shutdown().await;
                    }
                    return;
                }
                let choice = match serving.choose(sni.as_deref()) {
                    Ok(choice) => choice,
                    Err(refusal) => {
                        let alert = match refusal {
                            Refusal::UnknownName => {
                                c.rejected.fetch_add(1, Ordering::Relaxed);
                                &UNRECOGNIZED_NAME_ALERT
                            }
                            Refusal::Unusable => {
                                c.failed.fetch_add(1, Ordering::Relaxed);
                                &INTERNAL_ERROR_ALERT
                            }
                        };
                        let _ = tcp_back.write_all(alert).await;
                        let _ = tcp_back.shutdown().await;
                        return;
                    }
                };
                let count = || {
                    // Handshaken: this connection is a client now, never evicted.
                    ticket.handshaken.store(true, Ordering::Release);
                    ticket.busy.fetch_add(1, Ordering::AcqRel);
                    match choice.matched {
                        Some(Matched::Exact) => &c.exact,
                        Some(Matched::Wildcard) => &c.wildcard,
                        Some(Matched::Default) => &c.default,
                        None => &c.node_cert,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                };
                let Some(up) = &serving.upstream else {
                    let conn = match pinned_connection(start, &config, &choice.key) {
                        Ok(conn) => conn,
                        Err(mut alert) => {
                            c.failed.fetch_add(1, Ordering::Relaxed);
                            let mut out = Vec::new();
                            let _ = alert.write(&mut out);
                            let _ = tcp_back.write_all(&out).await;
                            return;
                        }
                    };
                    let sni = sni.as_deref();
                    if let Err(page::Ended::Handshake) =
                        page::serve(conn, tcp_back, &serving, &choice, sni, count).await
                    {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                };
                let start = tokio_rustls::StartHandshake::from_parts(start, tcp_back);
                let tls = match tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    start_with(start, &config, &choice.key),
                )
                .await
                {
                    Ok(Ok(t)) => t,
                    _ => {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                count();
                if let Err(e) = proxy::relay(tls, up).await {
                    tracing::debug!(error = %e, "proxied connection ended");
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {},
                _ = work => {},
                _ = ticket.evicted.cancelled() => {
                    c.evicted.fetch_add(1, Ordering::Relaxed);
                },
            }
        });
    }
}

/// Reads until rustls has the whole ClientHello; `None` if the peer sent no valid one (the
/// alert rustls wants to send is sent) or did not finish within [`HANDSHAKE_TIMEOUT`] in all:
/// the deadline is for the whole ClientHello, so a client trickling one byte at a time does
/// not hold a connection slot for longer than that.
async fn read_client_hello(
    tcp: tokio::net::TcpStream,
) -> Option<(rustls::server::Accepted, tokio::net::TcpStream)> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, read_client_hello_inner(tcp))
        .await
        .ok()?
}

async fn read_client_hello_inner(
    mut tcp: tokio::net::TcpStream,
) -> Option<(rustls::server::Accepted, tokio::net::TcpStream)> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            acceptor.read_tls(&mut chunk).ok()?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Some((accepted, tcp)),
            Ok(None) => continue,
            Err((_, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write(&mut out);
                let _ = tcp.write_all(&out).await;
                return None;
            }
        }
    }
}
