//! `certraft-node`: the appliance daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use certraft::config::{LogFormat, RunArgs};
use certraft::datadir::{new_admin_token, token_hash, DataDir};
use certraft::raft::NodeInfo;

/// certraft appliance node: keeps the replicated TLS certificate inventory and serves the
/// right certificate per SNI.
///
/// Quick start (one node, everything in ./certraft-data):
///   certraft-node run
///   certraft cert list            # on the same machine: uses ./certraft-data
///
/// Add a node to a cluster:
///   certraft cluster join-token --role voter > token   # on a member; writes crj1....
///   certraft-node run --data-dir /var/lib/certraft2 --admin 127.0.0.1:9453 \
///     --cluster 127.0.0.1:9454 --serve 127.0.0.1:8453 \
///     --join https://127.0.0.1:9443 --join-token-file token
#[derive(Parser, Debug)]
#[command(
    name = "certraft-node",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the node. With an empty data dir and no --join it bootstraps a one-node cluster
    /// (cluster CA, data key, node certificate, first admin token written to
    /// DATA/admin.token, printed on a terminal or with --print-token). With --join it joins an existing
    /// cluster (a voter or witness also gets its own DATA/admin.token). Restarting with the
    /// same data dir resumes; no flag is needed. SIGTERM stops it gracefully.
    ///
    /// Options come from flags, then CERTRAFT_* environment variables, then --config FILE.
    Run(Box<RunArgs>),
    /// Break-glass when a majority of voters is permanently lost: make this (stopped) node a
    /// one-node cluster that keeps every entry it holds. Start it afterwards with `run`, then
    /// add fresh nodes with join tokens. The lost nodes must never be restarted with their old
    /// data dirs: their certificates are revoked by the recovery.
    ///
    /// It refuses, changing nothing, unless --dead names every other voter of the last
    /// membership this node knows, and while any of them answers on its cluster or admin
    /// port (a recovered node beside a live majority would be a second cluster):
    ///
    ///   certraft-node recover --data-dir /var/lib/certraft --force-single-node --dead 2,3
    #[command(verbatim_doc_comment)]
    Recover {
        #[arg(long, value_name = "DIR", default_value = "certraft-data")]
        data_dir: PathBuf,
        /// Required: confirms that the other voters are gone for good.
        #[arg(long)]
        force_single_node: bool,
        /// The ids of the other voters, all of them, that are gone for good (comma-separated).
        #[arg(long, value_name = "IDS", value_delimiter = ',')]
        dead: Vec<u64>,
        /// Recover even if something answers at a dead voter's address (an address reused by
        /// another machine). Never use it while that voter may still run.
        #[arg(long)]
        even_if_answering: bool,
    },
    /// Probe this node's admin port, for container and service-manager health checks: exit 0
    /// when `GET /healthz` (with --ready: `/readyz`, i.e. a leader is known) answers 200 over
    /// HTTPS verified against DATA/ca.pem; else exit 1 saying why.
    ///
    ///   certraft-node health --data-dir /data --admin 0.0.0.0:9443
    #[command(verbatim_doc_comment)]
    Health {
        /// The node's data dir (for the cluster CA, ca.pem).
        #[arg(
            long,
            env = "CERTRAFT_DATA_DIR",
            value_name = "DIR",
            default_value = "certraft-data"
        )]
        data_dir: PathBuf,
        /// The admin listener as configured; an unspecified IP (0.0.0.0, ::) is probed on
        /// loopback.
        #[arg(
            long,
            env = "CERTRAFT_ADMIN",
            value_name = "ADDR",
            default_value = "127.0.0.1:9443"
        )]
        admin: std::net::SocketAddr,
        /// Healthy only while the node knows a leader (`/readyz`).
        #[arg(long)]
        ready: bool,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 3)]
        timeout: u64,
    },
    /// Offline: make a new admin token when every token is lost. Writes it to
    /// DATA/admin.token (0600) and prints it; the node replicates it to the whole cluster as
    /// soon as it runs again and a leader is reachable. The node must be stopped.
    AdminToken {
        #[arg(long, value_name = "DIR", default_value = "certraft-data")]
        data_dir: PathBuf,
        /// Name recorded as the actor of everything done with this token; a name already in
        /// use is refused [default: recovered-<unix time>].
        #[arg(long)]
        name: Option<String>,
    },
    /// Offline: reset the web console's certificate to the node certificate, when the
    /// console certificate (`certraft console cert`) locks browsers or tools out and no CLI
    /// can reach the cluster to undo it. The node must be stopped.
    ///
    /// It leaves a marker in the data dir. When the node starts again, its admin port
    /// presents only its node certificate (cluster CA) to every client, whatever the
    /// replicated setting, so it is reachable by its address even with its peers down; and
    /// it clears the console certificate cluster-wide as soon as it reaches the leader (a
    /// voter or witness; a traffic node only waits for `certraft console reset`). Once that
    /// is committed, the marker goes. Undo: set a console certificate again with
    /// `certraft console cert NAME --hostname H`.
    ///
    ///   certraft-node console-reset --data-dir /var/lib/certraft
    #[command(verbatim_doc_comment)]
    ConsoleReset {
        #[arg(long, value_name = "DIR", default_value = "certraft-data")]
        data_dir: PathBuf,
    },
    /// Offline: move this node's unseal key out of its data dir to FILE (mode 0600), so a
    /// copy of the data dir alone opens nothing; the key is checked to open the node's
    /// secrets from FILE before it leaves the data dir. Start the node with
    /// `--unseal-key-file FILE` (CERTRAFT_UNSEAL_KEY_FILE) from then on. The node must be
    /// stopped.
    ///
    /// Example: certraft-node unseal-key-move --data-dir /var/lib/certraft --to /etc/certraft/unseal.key
    UnsealKeyMove {
        #[arg(long, value_name = "DIR", default_value = "certraft-data")]
        data_dir: PathBuf,
        /// Where the key goes (must not exist yet).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CERTRAFT_LOG")
        // openraft logs every failed replication RPC at ERROR; certraft's network logs an
        // unreachable member itself, at WARN and rate-limited (raft/network.rs).
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,openraft=warn,openraft::replication=off")
        });
    // Colours only on a terminal (and not under NO_COLOR): `docker logs` and the journal
    // get plain text.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(args) => {
            let config = match (*args).resolve() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logs(config.log_format);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(certraft::node::run(config, CancellationToken::new())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "certraft-node stopped with an error");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Recover {
            data_dir,
            force_single_node,
            dead,
            even_if_answering,
        } => {
            if !force_single_node {
                eprintln!("error: recover rewrites the cluster membership; pass --force-single-node to confirm the other voters are gone for good");
                return ExitCode::from(2);
            }
            let dd = DataDir::new(&data_dir);
            let identity = match dd.identity() {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let membership = match certraft::store::last_membership(&dd.raft_path()) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let others = certraft::recover::other_voters(&membership, identity.node_id);
            match certraft::recover::guard(&others, &dead, even_if_answering) {
                Ok(warnings) => {
                    for w in warnings {
                        eprintln!("warning: {w}; recovering anyway (--even-if-answering)");
                    }
                }
                Err(certraft::recover::Refusal::Usage(m)) => {
                    eprintln!("error: {m}");
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            let info = NodeInfo {
                cluster_addr: String::new(),
                admin_addr: String::new(),
                role: Some(identity.role),
                // Set again from the node certificate when the node starts.
                cert_sha256: None,
            };
            match certraft::store::force_single_node(&dd.raft_path(), identity.node_id, info) {
                Ok(r) => {
                    let index =
                        |i: Option<u64>| i.map(|i| i.to_string()).unwrap_or_else(|| "none".into());
                    println!(
                        "node {} is now a one-node cluster with {} bundles, keeping every entry it held up to log index {} (it knew entries up to {} to be committed; entries only the lost voters held are gone). The certificates of nodes {} are revoked. Start it with `certraft-node run --data-dir {}`, then add fresh nodes with join tokens",
                        identity.node_id,
                        r.bundles,
                        index(r.last_index),
                        index(r.committed_before),
                        if others.is_empty() { "none".to_string() } else { others.iter().map(|v| v.id.to_string()).collect::<Vec<_>>().join(",") },
                        data_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Health {
            data_dir,
            admin,
            ready,
            timeout,
        } => match health(&data_dir, admin, ready, timeout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::UnsealKeyMove { data_dir, to } => {
            let dd = DataDir::new(&data_dir);
            if !dd.is_initialized() {
                eprintln!(
                    "error: {} holds no certraft node; pass --data-dir of an existing node",
                    data_dir.display()
                );
                return ExitCode::FAILURE;
            }
            if let Err(e) = certraft::store::open(&dd.raft_path()) {
                eprintln!("error: {e}; stop certraft-node before moving its unseal key");
                return ExitCode::FAILURE;
            }
            match dd.move_unseal_key(&to) {
                Ok(()) => {
                    eprintln!(
                        "moved the unseal key to {}; start the node with --unseal-key-file {} (or CERTRAFT_UNSEAL_KEY_FILE) from now on",
                        to.display(),
                        to.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::ConsoleReset { data_dir } => console_reset(&data_dir),
        Cmd::AdminToken { data_dir, name } => {
            let name = name.unwrap_or_else(|| format!("recovered-{}", certraft::clock::unix_now()));
            if !certraft::inventory::valid_name(&name) {
                eprintln!("error: --name {name:?} is not a valid token name: use 1-64 letters, digits, '.', '-' or '_', starting with a letter or a digit");
                return ExitCode::from(2);
            }
            let dd = DataDir::new(&data_dir);
            if !dd.is_initialized() {
                eprintln!(
                    "error: {} holds no certraft node; pass --data-dir of an existing node",
                    data_dir.display()
                );
                return ExitCode::FAILURE;
            }
            if let Err(e) = certraft::store::open(&dd.raft_path()) {
                eprintln!("error: {e}; stop certraft-node before making a token offline");
                return ExitCode::FAILURE;
            }
            let token = new_admin_token();
            let result = dd
                .write_pending_admin_token(&name, &token_hash(&token))
                .and_then(|_| dd.write_admin_token(&token));
            match result {
                Ok(path) => {
                    println!("{}", token.as_str());
                    eprintln!(
                        "wrote {}; it becomes valid cluster-wide once this node runs again and reaches a leader",
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `certraft-node console-reset`: leaves the marker that a stopped node finishes at its
/// next start (`node/console_reset.rs`).
fn console_reset(data_dir: &std::path::Path) -> ExitCode {
    let dd = DataDir::new(data_dir);
    if !dd.is_initialized() {
        eprintln!(
            "error: {} holds no certraft node; pass --data-dir of an existing node",
            data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = certraft::store::open(&dd.raft_path()) {
        eprintln!("error: {e}; stop certraft-node before resetting its console certificate");
        return ExitCode::FAILURE;
    }
    match dd.write_console_reset() {
        Ok(path) => {
            println!(
                "wrote {}: when this node starts, its admin port presents only its node certificate (cluster CA), and it clears the console certificate cluster-wide as soon as it reaches the leader (a traffic node waits for `certraft console reset` instead); the marker goes once that is committed",
                path.display()
            );
            println!(
                "next: start the node (`certraft-node run --data-dir {}`), then check with `certraft console show`",
                data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `certraft-node health`: one verified HTTPS GET to the local admin port.
fn health(
    data_dir: &std::path::Path,
    mut admin: std::net::SocketAddr,
    ready: bool,
    timeout: u64,
) -> Result<(), String> {
    if admin.ip().is_unspecified() {
        admin.set_ip(if admin.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let ca = DataDir::new(data_dir)
        .pem_cert("ca.pem")
        .map_err(|e| format!("{e} (is --data-dir / CERTRAFT_DATA_DIR the node's data dir?)"))?;
    let tls = certraft::raft::tls::admin_client_config(&ca).map_err(|e| e.to_string())?;
    let path = if ready { "readyz" } else { "healthz" };
    let url = format!("https://{admin}/{path}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(std::time::Duration::from_secs(timeout))
            .build()
            .map_err(|e| e.to_string())?;
        let r = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{url} answered {status}: {}", body.trim()))
        }
    })
}
