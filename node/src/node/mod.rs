//! Wiring: bootstrap or join, then Raft, the cluster and admin listeners and the background
//! duties (membership → TLS allow-list, promotion of caught-up voters, replicating an
//! offline-made admin token). Owns the shutdown token and the task tracker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::SnapshotPolicy;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::server::AppState;
use crate::config::Config;
use crate::datadir::{DataDir, DataDirError};
use crate::inventory::NodeRole;
use crate::raft::network::Network;
use crate::raft::tls::{self, Members, NodeIdentity};
use crate::raft::{NodeInfo, Raft};

mod acme_applied;
mod acme_ari;
mod acme_duties;
mod console_reset;
mod duties;
mod issuing_duties;
mod startup;

use duties::*;
use startup::*;

/// Why the node could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] crate::store::OpenStoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("cannot listen on {what} {addr}: {detail}; is another process using the port? pass --{what} ADDR")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        detail: String,
    },
    #[error("Raft failed to start: {0}")]
    Raft(String),
    #[error("joining via {url} failed: {detail}")]
    Join { url: String, detail: String },
    #[error("the join token is empty (CERTRAFT_JOIN_TOKEN, --join-token or its file holds nothing), so this new node cannot join; make one on a member with `certraft cluster join-token --role ROLE` and start the node with it (images/up.sh does this for the compose examples)")]
    EmptyJoinToken,
    #[error("{0}")]
    Other(String),
}

/// Timing of the Raft core. After a leader was seen, openraft 0.9 waits its lease
/// (`election_timeout_max`) plus this node's election timeout (drawn once per process from
/// the range) before standing, checked on a tick every 1.5 heartbeats (150 ms): a dead
/// leader is replaced 0.6–0.95 s after its last heartbeat. When the survivor that stands
/// first holds a shorter log than the other, it is refused, and the other's first try is
/// refused too (openraft's votes of one term do not compare), so the other wins on its
/// second try: up to ~1.5 s. That case is what the 2 s failover goal has to cover (BENCHMARKS.md,
/// "Cluster under faults"). A follower stands only after 600 ms without a heartbeat.
pub fn raft_config(snapshot_every: u64) -> Result<Arc<openraft::Config>, NodeError> {
    let c = openraft::Config {
        cluster_name: "certraft".into(),
        heartbeat_interval: 100,
        election_timeout_min: 200,
        election_timeout_max: 400,
        install_snapshot_timeout: 2000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 0,
        // Purge the log behind each snapshot; a small snapshot interval (tests) purges as
        // often, not only once 256 entries lie behind it.
        purge_batch_size: snapshot_every.clamp(1, 256),
        snapshot_max_chunk_size: 1 << 20,
        // openraft 0.9 gives each AppendEntries one heartbeat interval (100 ms) to be sent,
        // fsynced and answered, and retries a timed-out batch whole after a 500 ms backoff:
        // a batch too big for a loaded follower never gets through (seen with 64 restore
        // entries, 2.5 MB, on a busy 2-core host: the follower stayed behind for minutes).
        // 16 entries of at most ~40 KiB (a restore entry) is ~640 KB.
        max_payload_entries: 16,
        ..Default::default()
    };
    Ok(Arc::new(
        c.validate().map_err(|e| NodeError::Raft(e.to_string()))?,
    ))
}

/// Runs a node until SIGTERM/SIGINT (or `stop` fires).
pub async fn run(config: Config, stop: CancellationToken) -> Result<(), NodeError> {
    let dd = DataDir::new(&config.data_dir);
    let mut fresh_bootstrap = false;
    let mut join_members = BTreeMap::new();
    if !dd.is_initialized() {
        if config.join_token_empty {
            return Err(NodeError::EmptyJoinToken);
        }
        if config.join.is_some() {
            join_members = join(&config, &dd).await?;
        } else {
            let token = bootstrap(&config, &dd)?;
            fresh_bootstrap = true;
            println!(
                "certraft: bootstrapped a new one-node cluster in {}",
                dd.root().display()
            );
            // SPEC §2: printed once, for the operator at a terminal; never into a log (SPEC
            // §6): stdout that is not a terminal is `docker logs` or the journal, where a
            // token would stay readable for good, so there only --print-token prints it.
            use std::io::IsTerminal;
            if config.print_token || std::io::stdout().is_terminal() {
                println!(
                    "certraft: first admin token (shown once; also in {}):",
                    dd.path("admin.token").display()
                );
                println!("{}", token.as_str());
            } else {
                println!(
                    "certraft: first admin token written to {} (mode 0600; not printed: stdout is not a terminal; --print-token prints it)",
                    dd.path("admin.token").display()
                );
            }
        }
    } else if config.join.is_some() || config.join_token_empty {
        tracing::warn!("the data dir already belongs to a cluster; --join is ignored");
    }
    let identity = dd.identity()?;
    let (unseal, _) = dd.unseal_key(config.unseal_key_file.as_deref(), false)?;
    let secrets = dd.load_secrets(&unseal)?;
    drop(unseal);
    let node_id = identity.node_id;
    let me = Arc::new(NodeIdentity {
        cert_der: secrets.node_cert_der.clone(),
        key_pkcs8: secrets.node_key_pkcs8.clone(),
    });
    let ca_der = Arc::new(secrets.ca.cert_der().to_vec());

    let (log, sm) = crate::store::open(&dd.raft_path())?;
    let keyring = Arc::new(secrets.keyring);
    // Raised to the hard limit for every role; the serve port's cap fits under it.
    let open_files = crate::slots::fit_open_files(config.max_connections);
    // The admin port's certificates: the node certificate, or the console certificate for
    // its hostnames (every role has an admin port). A `console-reset` marker hides the
    // setting until the reset is finished.
    let admin_certs = crate::tls::console::AdminCerts::new(
        me.certified_key()?,
        &me.cert_der,
        keyring.clone(),
        dd.console_reset_pending(),
    );
    // Witnesses vote and keep the log but serve no TLS. The serving plane is attached before
    // Raft starts, so the replay of the committed log reaches the index.
    let serving_plane = match identity.role {
        NodeRole::Witness => None,
        _ => {
            let node_key = crate::bundle::PrivateKey::from_pkcs8_der(&me.key_pkcs8)
                .map_err(|e| NodeError::Other(format!("this node's key is unusable: {e}")))?;
            let node_cert = Arc::new(rustls::sign::CertifiedKey::new(
                vec![me.cert_der.clone().into()],
                node_key.signing_key(),
            ));
            let options = crate::tls::ServeOptions {
                strict_sni: config.strict_sni,
                upstream: config
                    .upstream
                    .clone()
                    .map(|addr| crate::tls::proxy::Upstream {
                        addr,
                        connect_timeout: Duration::from_secs(5),
                        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
                        alpn: config.upstream_alpn.clone(),
                    }),
                max_connections: {
                    let fit = open_files;
                    if fit.serve_max < config.max_connections {
                        tracing::warn!(
                            open_files_limit = fit.limit,
                            configured = config.max_connections,
                            serving = fit.serve_max,
                            reserved = crate::slots::RESERVED_DESCRIPTORS,
                            "the open-files limit leaves room for fewer serve-port connections than --max-connections asks; raise it (ulimit -n, or LimitNOFILE= in the unit) to serve more"
                        );
                    }
                    fit.serve_max
                },
            };
            Some(crate::tls::Serving::new(
                node_id,
                node_cert,
                keyring.clone(),
                options,
            ))
        }
    };
    // Inside `apply`: the admin port's console certificate, then the serve port's index.
    let (admin_sink, serve_sink) = (admin_certs.clone(), serving_plane.clone());
    sm.attach_serving(Box::new(move |delta| {
        admin_sink.apply(&delta);
        if let Some(serving) = &serve_sink {
            serving.apply(delta);
        }
    }));
    let snapshot_every = std::env::var("CERTRAFT_SNAPSHOT_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let network = Network::new(ca_der.clone(), me.clone());
    let raft = Raft::new(
        node_id,
        raft_config(snapshot_every)?,
        network.clone(),
        log,
        sm.clone(),
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;

    let self_info = NodeInfo {
        cluster_addr: config.advertised(config.cluster),
        admin_addr: config.advertised(config.admin),
        role: Some(identity.role),
        cert_sha256: Some(hex::encode(crate::pki::cert_sha256(&me.cert_der))),
    };
    // A bootstrap is finished only once Raft is initialized: `bootstrap.pending` is written
    // before anything else of it and removed after, so a crash in between (node.json written,
    // the store still empty) is resumed here instead of leaving a node that never becomes
    // ready (issue 22).
    let resume_bootstrap = !fresh_bootstrap && dd.path(BOOTSTRAP_PENDING).exists();
    if resume_bootstrap {
        tracing::warn!("resuming a bootstrap that was interrupted (a crash before the one-node cluster was initialized)");
    }
    if fresh_bootstrap || resume_bootstrap {
        match raft
            .initialize(BTreeMap::from([(node_id, self_info.clone())]))
            .await
        {
            Ok(()) => {}
            // Already initialized: the crash came after Raft had it on disk.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) if resume_bootstrap => {}
            Err(e) => return Err(NodeError::Raft(e.to_string())),
        }
        crash_point("initialized");
        let _ = std::fs::remove_file(dd.path(BOOTSTRAP_PENDING));
    }

    // Who may connect to the cluster port: the membership Raft knows, plus (while joining)
    // the members the grant named.
    let members = Members::new(
        join_members
            .iter()
            .map(|(id, info)| {
                (
                    *id,
                    tls::member_of(info, info.role != Some(NodeRole::Learner)),
                )
            })
            .chain([(node_id, tls::member_of(&self_info, true))]),
    );
    let cancel = stop.child_token();
    let tracker = TaskTracker::new();

    // Witnesses vote and keep the log but serve no TLS.
    let serve_listener = match identity.role {
        NodeRole::Witness => None,
        _ => Some(bind("serve", config.serve).await?),
    };
    // The HTTP port (ACME HTTP-01, redirect to https): on every node that serves.
    let http_listener = match (&identity.role, config.http) {
        (NodeRole::Witness, _) | (_, crate::config::HttpListen::Off) => None,
        (_, crate::config::HttpListen::Configured(addr)) => Some(bind("http", addr).await?),
        (_, crate::config::HttpListen::Default(addr)) => match bind("http", addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "the HTTP port is not open, so this node answers no ACME http-01 challenge; pass --http ADDR (or --http off)");
                None
            }
        },
    };
    let cluster_listener = bind("cluster", config.cluster).await?;
    let admin_listener = bind("admin", config.admin).await?;
    tracing::info!(
        node = node_id,
        serve = %config.serve,
        cluster = %config.cluster,
        admin = %config.admin,
        cluster_id = %identity.cluster_id,
        "certraft-node running"
    );

    if let (Some(listener), Some(serving)) = (http_listener, &serving_plane) {
        tracker.spawn(crate::tls::challenge::serve_http(
            listener,
            serving.clone(),
            config.serve.port(),
            cancel.clone(),
            tracker.clone(),
        ));
    }
    if let (Some(listener), Some(serving)) = (serve_listener, &serving_plane) {
        tracker.spawn(crate::tls::serve(
            listener,
            serving.clone(),
            cancel.clone(),
            tracker.clone(),
        ));
    }
    let state = Arc::new(AppState {
        raft: raft.clone(),
        sm: sm.clone(),
        keyring,
        core: crate::issuing::local::core_keyring(&secrets.ca).map(Arc::new),
        ca: Arc::new(secrets.ca),
        cluster_id: identity.cluster_id.clone(),
        node_id,
        // Forwarding to the leader: give up connecting quickly and ask again who leads.
        // No pooled connections: a request is only written on a connection made for it, so
        // a leader that died shows as a failed connect (nothing sent: safely retried), not
        // as a pooled socket that never answers (outcome unknown after the whole deadline).
        peers: reqwest::Client::builder()
            .use_preconfigured_tls(tls::member_admin_client_config(&ca_der, members.clone())?)
            .connect_timeout(crate::api::forward::PEER_CONNECT_TIMEOUT)
            .pool_max_idle_per_host(0)
            // A proxy answers the leader's redirect to the client as it is (the console's
            // sign-in answers 303 with the session cookie).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NodeError::Other(e.to_string()))?,
        timeout: Duration::from_secs(10),
        serving: serving_plane,
        failures: Default::default(),
        parsing: tokio::sync::Semaphore::new(crate::api::server::parse_concurrency()),
        keygen: tokio::sync::Semaphore::new(crate::api::server::parse_concurrency()),
        body_budget: tokio::sync::Semaphore::new(crate::api::server::BODY_BUDGET_KIB),
    });

    tracker.spawn(crate::http::serve_tls(
        "cluster",
        cluster_listener,
        tls::cluster_server_config(&ca_der, &me, members.clone())?,
        crate::raft::network::router(
            raft.clone(),
            members.clone(),
            console_reset::hook(state.clone()),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        crate::http::Limits::CLUSTER,
        Some(members.clone()),
        cancel.clone(),
        tracker.clone(),
    ));
    if fresh_bootstrap || resume_bootstrap {
        // The token just printed must be valid as soon as the admin port answers: commit it
        // first (the one-node cluster elects itself at once).
        replicate_pending_token(state.clone(), dd.clone(), network.clone(), cancel.clone()).await;
    }
    tracker.spawn(crate::http::serve_tls(
        "admin",
        admin_listener,
        tls::admin_server_config(admin_certs.clone())?,
        crate::api::server::router(state.clone()),
        crate::http::Limits::ADMIN,
        None,
        cancel.clone(),
        tracker.clone(),
    ));
    let members_for_revoked = members.clone();
    tracker.spawn(track_membership(
        raft.clone(),
        members,
        join_members.is_empty(),
        cancel.clone(),
    ));
    tracker.spawn(watch_raft(
        raft.clone(),
        node_id,
        dd.root().to_path_buf(),
        cancel.clone(),
    ));
    tracker.spawn(publish_revoked(
        raft.clone(),
        sm.clone(),
        members_for_revoked,
        dd.path(crate::api::dto::REVOKED_NODES_FILE),
        cancel.clone(),
    ));
    tracker.spawn(promote_caught_up(raft.clone(), self_info, cancel.clone()));
    tracker.spawn(rotate_ticket_keys(
        raft.clone(),
        node_id,
        sm.clone(),
        state.keyring.clone(),
        cancel.clone(),
    ));
    tracker.spawn(audit_failed_sign_ins(
        state.clone(),
        network.clone(),
        cancel.clone(),
    ));
    tracker.spawn(enable_features(state.clone(), cancel.clone()));
    tracker.spawn(issuing_duties::ensure_local_issuer(
        state.clone(),
        cancel.clone(),
    ));
    tracker.spawn(issuing_duties::renew_due(state.clone(), cancel.clone()));
    tracker.spawn(acme_duties::drive_orders(state.clone(), cancel.clone()));
    tracker.spawn(issuing_duties::queue_expiry_notices(
        state.clone(),
        cancel.clone(),
    ));
    tracker.spawn(issuing_duties::deliver_notices(
        state.clone(),
        cancel.clone(),
    ));
    tracker.spawn(console_reset::finish(
        state.clone(),
        admin_certs,
        dd.clone(),
        network.clone(),
        identity.role,
        cancel.clone(),
    ));
    tracker.spawn(replicate_pending_token(
        state,
        dd.clone(),
        network,
        cancel.clone(),
    ));

    let signals = shutdown_signal();
    tokio::select! {
        _ = signals => tracing::info!("shutdown signal received; stopping"),
        _ = stop.cancelled() => {},
    }
    cancel.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    raft.shutdown()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(what: &'static str, addr: std::net::SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr).await.map_err(|e| NodeError::Bind {
        what,
        addr,
        detail: e.to_string(),
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
