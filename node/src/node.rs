//! Wiring: bootstrap or join, then Raft, the cluster and admin listeners and the background
//! duties (membership → TLS allow-list, promotion of caught-up voters, replicating an
//! offline-made admin token). Owns the shutdown token and the task tracker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{ChangeMembers, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::join::{JoinGrant, JoinRequest};
use crate::api::server::AppState;
use crate::bundle::{DataKey, Keyring};
use crate::config::Config;
use crate::datadir::{new_admin_token, token_hash, DataDir, DataDirError, Identity, Secrets};
use crate::inventory::{AdminToken, Command, NodeRole, Request};
use crate::pki::ClusterCa;
use crate::raft::network::Network;
use crate::raft::tls::{self, Members, NodeIdentity};
use crate::raft::{NodeInfo, Raft};

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

/// What an operator reads when this node's Raft core has stopped: the cause (openraft's
/// fatal error, e.g. a storage write that failed with "No space left on device") and what
/// to do. The node keeps serving the certificates it had; it takes no part in the cluster
/// until restarted.
pub fn raft_stopped(node_id: u64, fatal: &openraft::error::Fatal<u64>) -> String {
    format!(
        "the Raft core of node {node_id} stopped: {}; this node keeps serving the certificates it had but takes no writes and no part in the cluster. Fix the cause (free space in the data dir if the disk is full), then restart the node: it catches up from the others",
        describe_fatal(fatal)
    )
}

/// openraft's fatal error without its debug dump of the snapshot or log id involved: the
/// operation ("Write Snapshot", "Write Logs") and the cause from the OS.
fn describe_fatal(fatal: &openraft::error::Fatal<u64>) -> String {
    let openraft::error::Fatal::StorageError(e) = fatal else {
        return fatal.to_string();
    };
    let Some(io) = e.clone().into_io() else {
        return e.to_string();
    };
    let text = io.to_string();
    let operation = text
        .strip_prefix("when ")
        .and_then(|t| t.split(['(', ':']).next())
        .map(str::trim)
        .unwrap_or("an operation");
    match std::error::Error::source(&io) {
        Some(cause) => format!("storage failed ({operation}): {cause}"),
        None => format!("storage failed: {text}"),
    }
}

/// Logs, once, that the Raft core stopped and why (see [`raft_stopped`]).
async fn watch_raft(
    raft: Raft,
    node_id: u64,
    data_dir: std::path::PathBuf,
    cancel: CancellationToken,
) {
    let mut rx = raft.metrics();
    loop {
        // openraft records the fatal error in the metrics, then drops their sender: look
        // once more after the channel closes.
        let closed = tokio::select! {
            changed = rx.changed() => changed.is_err(),
            _ = cancel.cancelled() => return,
        };
        if let Err(fatal) = &rx.borrow_and_update().running_state {
            tracing::error!(data_dir = %data_dir.display(), "{}", raft_stopped(node_id, fatal));
            return;
        }
        if closed {
            return;
        }
    }
}

use crate::clock::unix_now as now;

fn cert_hosts(config: &Config) -> Vec<String> {
    let mut hosts = vec![
        config.advertise.clone(),
        "localhost".into(),
        "127.0.0.1".into(),
    ];
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Creates a new one-node cluster in an empty data dir. Returns the first admin token (to
/// print once); it is written to `DATA/admin.token` and replicated on first start.
/// Present from the first write of a bootstrap until Raft is initialized.
const BOOTSTRAP_PENDING: &str = "bootstrap.pending";

/// Crash injection for the bootstrap tests (issue 22): with `CERTRAFT_TEST_CRASH_AT=STEP` the
/// process aborts right after STEP, as a power cut there would leave it. Steps: `marker`,
/// `token`, `identity`, `initialized`.
fn crash_point(step: &str) {
    if std::env::var("CERTRAFT_TEST_CRASH_AT").is_ok_and(|s| s == step) {
        eprintln!("certraft: crash injected after bootstrap step {step} (CERTRAFT_TEST_CRASH_AT)");
        std::process::abort();
    }
}

fn bootstrap(config: &Config, dd: &DataDir) -> Result<zeroize::Zeroizing<String>, NodeError> {
    dd.create()?;
    crate::datadir::write_atomic(&dd.path(BOOTSTRAP_PENDING), b"", 0o600)?;
    crash_point("marker");
    let (unseal, generated) = dd.unseal_key(config.unseal_key_file.as_deref(), true)?;
    if generated {
        tracing::warn!(
            path = %dd.path("unseal.key").display(),
            "generated an unseal key inside the data dir; for real deployments keep it elsewhere (--unseal-key-file) so a copy of the data dir alone cannot be unsealed"
        );
    }
    let node_id = config.node_id.unwrap_or(1);
    let cluster_id = crate::datadir::random_hex(8).to_string();
    let ca = ClusterCa::generate(&cluster_id)?;
    let issued = ca.issue_node_cert(node_id, &cert_hosts(config))?;
    let secrets = Secrets {
        keyring: Keyring::new(DataKey::generate(1)),
        ca,
        node_cert_der: issued.cert_der.clone(),
        node_key_pkcs8: issued.key_pkcs8.clone(),
    };
    let identity = Identity {
        cluster_id,
        node_id,
        role: NodeRole::Voter,
    };
    let token = new_admin_token();
    dd.write_pending_admin_token("admin", &token_hash(&token))?;
    dd.write_admin_token(&token)?;
    crash_point("token");
    dd.write_node(&identity, &secrets, &unseal)?;
    crash_point("identity");
    Ok(token)
}

/// Joins an existing cluster: verifies it by the CA fingerprint the token binds, proves the
/// token, stores what the cluster grants. Returns the members to trust until Raft tells more.
async fn join(config: &Config, dd: &DataDir) -> Result<BTreeMap<u64, NodeInfo>, NodeError> {
    let Some(j) = &config.join else {
        return Err(NodeError::Other("join without --join".into()));
    };
    let fail = |detail: String| NodeError::Join {
        url: j.url.clone(),
        detail,
    };
    // 1. The CA, fetched without trust, then checked against the fingerprint in the token.
    let insecure = tls::fingerprint_probe_config();
    let probe = reqwest::Client::builder()
        .use_preconfigured_tls(insecure)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let ca_pem = probe
        .get(format!("{}/api/v1/trust", j.url))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            fail(format!(
                "cannot fetch the cluster CA: {e}; check the URL and that the node is up"
            ))
        })?
        .bytes()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let ca_der = pem::parse(&ca_pem[..])
        .map_err(|e| fail(format!("the node answered no CA certificate: {e}")))?
        .contents()
        .to_vec();
    let fp: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&ca_der).into();
    if fp != j.token.ca_sha256 {
        return Err(fail(format!(
            "the cluster at this URL has CA sha256 {}, but the join token is for CA {}; this is not the cluster the token was made for",
            hex::encode(fp),
            hex::encode(j.token.ca_sha256)
        )));
    }
    // 2. From here on the server is verified against that CA.
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls::admin_client_config(&ca_der)?)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    // The node key is made here and never leaves this machine: the leader signs a CSR.
    let (csr, node_key) = crate::pki::node_key_and_csr()?;
    let req = JoinRequest {
        secret: j.token.secret.to_string(),
        csr,
        node_id: config.node_id,
        role: config.role,
        cluster_addr: config.advertised(config.cluster),
        admin_addr: config.advertised(config.admin),
    };
    let resp = client
        .post(format!("{}/api/v1/cluster/join", j.url))
        .json(&req)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<crate::api::dto::ErrorBody>(&body)
            .map(|b| b.error.message)
            .unwrap_or(body);
        return Err(fail(format!("{status}: {msg}")));
    }
    let grant: JoinGrant = resp.json().await.map_err(|e| fail(e.to_string()))?;
    if <sha2::Sha256 as sha2::Digest>::digest(&grant.ca_cert).as_slice() != fp {
        return Err(fail(
            "the grant names a different CA than the one verified".into(),
        ));
    }
    dd.create()?;
    let (unseal, generated) = dd.unseal_key(config.unseal_key_file.as_deref(), true)?;
    if generated {
        tracing::warn!(path = %dd.path("unseal.key").display(), "generated an unseal key inside the data dir; keep it elsewhere (--unseal-key-file) for real deployments");
    }
    let keyring = Keyring::import_secret(&zeroize::Zeroizing::new(grant.keyring))
        .map_err(|e| fail(e.to_string()))?;
    // Only nodes that may lead (voters, witnesses) are given the CA key.
    let ca = match grant.ca_key {
        Some(key) => ClusterCa::load(
            &grant.cluster_id,
            grant.ca_cert,
            zeroize::Zeroizing::new(key),
        )?,
        None => ClusterCa::public(grant.ca_cert),
    };
    if crate::pki::node_id_of(&grant.node_cert) != Some(grant.node_id) {
        return Err(fail(format!(
            "the node certificate granted does not name node {}",
            grant.node_id
        )));
    }
    let secrets = Secrets {
        keyring,
        ca,
        node_cert_der: grant.node_cert,
        node_key_pkcs8: node_key,
    };
    let identity = Identity {
        cluster_id: grant.cluster_id,
        node_id: grant.node_id,
        role: grant.role,
    };
    dd.write_node(&identity, &secrets, &unseal)?;
    tracing::info!(node = identity.node_id, role = ?identity.role, "joined the cluster; waiting to be caught up");
    Ok(grant.members)
}

/// Runs a node until SIGTERM/SIGINT (or `stop` fires).
pub async fn run(config: Config, stop: CancellationToken) -> Result<(), NodeError> {
    let dd = DataDir::new(&config.data_dir);
    let mut fresh_bootstrap = false;
    let mut join_members = BTreeMap::new();
    if !dd.is_initialized() {
        if config.join.is_some() {
            join_members = join(&config, &dd).await?;
        } else {
            let token = bootstrap(&config, &dd)?;
            fresh_bootstrap = true;
            println!(
                "certraft: bootstrapped a new one-node cluster in {}",
                dd.root().display()
            );
            println!(
                "certraft: first admin token (shown once; also in {}):",
                dd.path("admin.token").display()
            );
            println!("{}", token.as_str());
        }
    } else if config.join.is_some() {
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
            let serving = crate::tls::Serving::new(node_id, node_cert, keyring.clone(), options);
            let sink = serving.clone();
            sm.attach_serving(Box::new(move |delta| sink.apply(delta)));
            Some(serving)
        }
    };
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
            .build()
            .map_err(|e| NodeError::Other(e.to_string()))?,
        timeout: Duration::from_secs(10),
        serving: serving_plane,
        failures: Default::default(),
        parsing: tokio::sync::Semaphore::new(crate::api::server::parse_concurrency()),
        body_budget: tokio::sync::Semaphore::new(crate::api::server::BODY_BUDGET_KIB),
    });

    tracker.spawn(crate::http::serve_tls(
        "cluster",
        cluster_listener,
        tls::cluster_server_config(&ca_der, &me, members.clone())?,
        crate::raft::network::router(raft.clone(), members.clone())
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
        tls::admin_server_config(&me)?,
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
        sm.clone(),
        state.keyring.clone(),
        cancel.clone(),
    ));
    tracker.spawn(audit_failed_sign_ins(state.clone(), cancel.clone()));
    tracker.spawn(enable_features(state.clone(), cancel.clone()));
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

/// Keeps the cluster port's allow-list equal to the Raft membership. A joining node keeps
/// the grant's members until it has received a membership of its own.
async fn track_membership(raft: Raft, members: Members, have_own: bool, cancel: CancellationToken) {
    let mut rx = raft.metrics();
    let mut seen_own = have_own;
    loop {
        {
            let m = rx.borrow_and_update();
            let ids: Vec<u64> = m
                .membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect();
            if ids.contains(&m.id) {
                seen_own = true;
            }
            if seen_own && !ids.is_empty() {
                let mut allowed = tls::members_of(m.membership_config.membership());
                allowed.entry(m.id).or_insert(tls::Member {
                    cert_sha256: None,
                    voter: false,
                });
                members.set(allowed);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

/// Keeps `DATA/revoked-nodes.txt` equal to the replicated list of removed members'
/// certificates (one SHA-256 hex per line), so the CLI next to `ca.pem` refuses a removed
/// node's certificate before it sends a token (issue 19), and gives the cluster port the
/// list, so a removed node is told why it is refused (issue 22). Checked after every apply.
async fn publish_revoked(
    raft: Raft,
    sm: crate::store::StateMachineStore,
    members: Members,
    path: std::path::PathBuf,
    cancel: CancellationToken,
) {
    let mut rx = raft.metrics();
    let (mut written, mut given) = (None, None);
    loop {
        let inv = sm.inventory();
        let now = (inv.revoked_node_certs.clone(), inv.epoch);
        if given.as_ref() != Some(&now) {
            members.set_revoked(&now.0, now.1);
            given = Some(now);
        }
        let revoked = &inv.revoked_node_certs;
        if written.as_ref() != Some(revoked) {
            let mut text = String::from(
                "# certraft: certificates of removed cluster members (SHA-256). Kept current by\n# certraft-node; the certraft CLI refuses a server presenting one. Copy it beside\n# ca.pem wherever the CLI runs.\n",
            );
            for (sha, node) in revoked {
                text.push_str(&format!("{sha} node-{node}\n"));
            }
            match crate::datadir::write_atomic(&path, text.as_bytes(), 0o644) {
                Ok(()) => written = Some(revoked.clone()),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the revoked-certificate list; retrying on the next change")
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

/// On the leader: learners that joined as voters or witnesses become voters once their
/// replicated log is within a few entries of the leader's. Also records this node's own
/// addresses in the membership when they changed (a restart with new flags, or `recover`,
/// which does not know them).
async fn promote_caught_up(raft: Raft, self_info: NodeInfo, cancel: CancellationToken) {
    const MAX_LAG: u64 = 16;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        let m = raft.metrics().borrow().clone();
        if m.current_leader != Some(m.id) {
            continue;
        }
        let membership = m.membership_config.membership();
        if membership.get_node(&m.id).is_some_and(|n| n != &self_info) {
            let change = ChangeMembers::SetNodes(BTreeMap::from([(m.id, self_info.clone())]));
            match raft.change_membership(change, true).await {
                Ok(_) => tracing::info!(info = %self_info, "recorded this node's addresses"),
                Err(e) => tracing::warn!(error = %e, "could not record this node's addresses"),
            }
            continue;
        }
        let Some(repl) = &m.replication else { continue };
        let last = m.last_log_index.unwrap_or(0);
        let voters: Vec<u64> = membership.voter_ids().collect();
        let ready: std::collections::BTreeSet<u64> = membership
            .nodes()
            .filter(|(id, info)| {
                !voters.contains(id)
                    && matches!(info.role, Some(NodeRole::Voter) | Some(NodeRole::Witness))
                    && repl
                        .get(id)
                        .cloned()
                        .flatten()
                        .is_some_and(|l| last.saturating_sub(l.index) <= MAX_LAG)
            })
            .map(|(id, _)| *id)
            .collect();
        if ready.is_empty() {
            continue;
        }
        match raft
            .change_membership(ChangeMembers::AddVoterIds(ready.clone()), true)
            .await
        {
            Ok(_) => {
                tracing::info!(nodes = ?ready, "promoted caught-up nodes to voters");
                // Who votes is security-relevant: each promotion is audited (issue 19).
                for id in &ready {
                    let req = Request::new(
                        "certraft-node",
                        now(),
                        Command::Record {
                            what: format!("promote node {id} to voter"),
                            result: "ok".into(),
                        },
                    );
                    match tokio::time::timeout(Duration::from_secs(10), raft.client_write(req))
                        .await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(node = id, error = %e, "promotion not audited")
                        }
                        Err(_) => tracing::warn!(
                            node = id,
                            "promotion not audited: no commit within 10 s"
                        ),
                    }
                }
            }
            Err(e) => tracing::warn!(nodes = ?ready, error = %e, "promotion failed; retrying"),
        }
    }
}

/// Replicates the admin token made at bootstrap or by `certraft-node admin-token`, once a
/// leader can commit it; then forgets the pending file. A follower hands it to the leader
/// over the cluster port, which accepts it only from a voter and only under a new name.
async fn replicate_pending_token(
    state: Arc<AppState>,
    dd: DataDir,
    network: Network,
    cancel: CancellationToken,
) {
    let Some((name, hash)) = dd.pending_admin_token() else {
        return;
    };
    let proposal = crate::raft::network::AdminTokenProposal {
        name: name.clone(),
        secret_sha256: hash,
    };
    let mut warned = false;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let m = state.raft.metrics().borrow().clone();
        use crate::raft::network::ProposeError;
        let result: Result<(), ProposeError> = match m.current_leader {
            Some(leader) if leader == m.id => {
                let req = Request::new(
                    "certraft-node",
                    now(),
                    Command::CreateAdminToken {
                        token: AdminToken {
                            name: name.clone(),
                            secret_sha256: hash,
                            created_at: now(),
                            created_by: format!("node {} (certraft-node)", m.id),
                        },
                    },
                );
                match tokio::time::timeout(Duration::from_secs(10), state.raft.client_write(req))
                    .await
                {
                    Ok(Ok(resp)) => match resp.data {
                        Some(Err(refusal)) => Err(ProposeError::NotAllowed(refusal.to_string())),
                        _ => Ok(()),
                    },
                    Ok(Err(e)) => Err(ProposeError::Failed(e.to_string())),
                    Err(_) => Err(ProposeError::Failed("no commit within 10 s".into())),
                }
            }
            // A follower hands it to the leader over the cluster port (mutual TLS).
            Some(leader) => match m.membership_config.membership().get_node(&leader) {
                Some(info) => {
                    let client = openraft::network::RaftNetworkFactory::new_client(
                        &mut network.clone(),
                        leader,
                        info,
                    )
                    .await;
                    client.propose_admin_token(&proposal).await
                }
                None => Err(ProposeError::Failed(format!(
                    "leader {leader} has no known address yet"
                ))),
            },
            None => Err(ProposeError::Failed("no leader known yet".into())),
        };
        match result {
            Ok(()) => {
                dd.clear_pending_admin_token();
                tracing::info!(token = %name, "admin token replicated");
                return;
            }
            Err(e @ ProposeError::NotAllowed(_)) => {
                tracing::error!(token = %name, "the admin token made offline was refused: {e}");
                dd.clear_pending_admin_token();
                return;
            }
            Err(e) if !warned && m.current_leader.is_some() => {
                warned = true;
                tracing::warn!(token = %name, error = %e, "admin token not replicated yet; retrying");
            }
            Err(e) => tracing::debug!(token = %name, error = %e, "admin token not replicated yet"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Once a minute: the failed sign-ins this node saw become one audit record (on the leader,
/// through Raft) or one log line (elsewhere), never one entry per attempt.
async fn audit_failed_sign_ins(state: Arc<AppState>, cancel: CancellationToken) {
    // Tests shorten the interval; operators have no reason to.
    let every = std::env::var("CERTRAFT_FAILURE_AUDIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
        }
        let Some(summary) = state.failures.take_summary() else {
            continue;
        };
        let leading = state.raft.metrics().borrow().current_leader == Some(state.node_id);
        if leading {
            let record = Command::Record {
                what: format!("node {}: {summary}", state.node_id),
                result: "refused".into(),
            };
            if let Err(e) = state.propose("certraft-node", record).await {
                tracing::warn!(%summary, error = ?e, "failed sign-ins not audited");
            }
        } else {
            tracing::warn!(%summary, "failed sign-ins on this node's admin port in the last minute");
        }
    }
}

/// On the leader: proposes each [`crate::inventory::Feature`] not yet on; the gate in
/// `AppState::propose` lets it through only once every member reports it can apply it, and
/// answers `upgrade_required` (logged once a minute) until then.
async fn enable_features(state: Arc<AppState>, cancel: CancellationToken) {
    let waiting = crate::log_limit::RateLimitedLog::new(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if state.raft.metrics().borrow().current_leader != Some(state.node_id) {
            continue;
        }
        let on = state.sm.inventory().features.clone();
        for feature in crate::inventory::Feature::ALL {
            if on.contains(&feature) {
                continue;
            }
            match state
                .propose("certraft-node", Command::EnableFeature { feature })
                .await
            {
                Ok(_) => tracing::info!(
                    feature = feature.name(),
                    "every member can apply it: feature enabled"
                ),
                Err(crate::api::error::AppError::UpgradeRequired(why)) => {
                    if waiting.admit(std::time::Instant::now()).is_some() {
                        tracing::info!(feature = feature.name(), %why, "feature waits for every member to be upgraded");
                    }
                }
                Err(e) => {
                    tracing::debug!(feature = feature.name(), error = ?e, "feature not enabled yet")
                }
            }
        }
    }
}

/// How often the leader adds a new session-ticket key (three are kept).
const TICKET_KEY_ROTATION_SECS: i64 = 12 * 3600;

/// On the leader: adds a session-ticket key when there is none or the newest is older than
/// [`TICKET_KEY_ROTATION_SECS`].
async fn rotate_ticket_keys(
    raft: Raft,
    sm: crate::store::StateMachineStore,
    keyring: Arc<Keyring>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let m = raft.metrics().borrow().clone();
        if m.current_leader != Some(m.id) {
            continue;
        }
        let inv = sm.inventory();
        let newest = inv.ticket_keys.last();
        if newest.is_some_and(|k| now() - k.created_at < TICKET_KEY_ROTATION_SECS) {
            continue;
        }
        let id = newest.map(|k| k.id + 1).unwrap_or(1);
        let req = Request::new(
            "certraft-node",
            now(),
            Command::AddTicketKey {
                key: crate::tls::tickets::new_key(id, &keyring, now()),
            },
        );
        match tokio::time::timeout(Duration::from_secs(10), raft.client_write(req)).await {
            Ok(Ok(_)) => tracing::info!(key = id, "rotated the session-ticket key"),
            Ok(Err(e)) => tracing::debug!(error = %e, "session-ticket key rotation deferred"),
            Err(_) => tracing::debug!("session-ticket key rotation timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{AnyError, StorageIOError};

    #[test]
    fn a_full_disk_is_reported_by_operation_and_os_error_without_debug_dumps() {
        let enospc = std::io::Error::from_raw_os_error(28);
        let signature = openraft::storage::SnapshotSignature {
            last_log_id: None,
            last_membership_log_id: None,
            snapshot_id: "T4-N3-850-16".into(),
        };
        let fatal = openraft::error::Fatal::StorageError(
            StorageIOError::write_snapshot(Some(signature), AnyError::new(&enospc)).into(),
        );
        let text = raft_stopped(2, &fatal);
        assert!(
            text.starts_with("the Raft core of node 2 stopped: storage failed (Write Snapshot): "),
            "{text}"
        );
        assert!(
            text.contains("No space left on device (os error 28)"),
            "{text}"
        );
        assert!(!text.contains("SnapshotSignature"), "{text}");
        assert!(text.contains("restart the node"), "{text}");

        let logs = openraft::error::Fatal::StorageError(
            StorageIOError::write_logs(AnyError::new(&enospc)).into(),
        );
        assert!(
            raft_stopped(1, &logs).contains("storage failed (Write Logs): "),
            "{}",
            raft_stopped(1, &logs)
        );
    }
}
