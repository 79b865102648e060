//! Configuration: flags, then `CERTRAFT_*` environment, then the TOML file, then defaults —
//! resolved once into a validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::inventory::NodeRole;

/// `certraft-node run` options. Every one may also come from `CERTRAFT_<NAME>` or the file.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// TOML file with any of the options below (keys as the long flag, with '_' for '-').
    #[arg(long, env = "CERTRAFT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where this node keeps its state [default: ./certraft-data].
    #[arg(long, env = "CERTRAFT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// This node's id when bootstrapping (default 1) or joining (default: the cluster picks).
    #[arg(long, env = "CERTRAFT_NODE_ID", value_name = "N")]
    pub node_id: Option<u64>,
    /// TLS serving (SNI) listener [default: 127.0.0.1:8443].
    #[arg(long, env = "CERTRAFT_SERVE", value_name = "ADDR")]
    pub serve: Option<SocketAddr>,
    /// Plain-HTTP listener that answers ACME HTTP-01 challenges and redirects everything
    /// else to https [default: 127.0.0.1:8080]; `off` for none. Inside the image, set it to
    /// `0.0.0.0:80`-style so the CA reaches it.
    #[arg(long, env = "CERTRAFT_HTTP", value_name = "ADDR|off")]
    pub http: Option<String>,
    /// Admin HTTPS API listener [default: 127.0.0.1:9443].
    #[arg(long, env = "CERTRAFT_ADMIN", value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Cluster (Raft RPC, mutual TLS) listener [default: 127.0.0.1:9444].
    #[arg(long, env = "CERTRAFT_CLUSTER", value_name = "ADDR")]
    pub cluster: Option<SocketAddr>,
    /// Host name or IP other nodes and clients use to reach this node [default: the listen IP].
    #[arg(long, env = "CERTRAFT_ADVERTISE", value_name = "HOST")]
    pub advertise: Option<String>,
    /// Admin URL of any member, to join its cluster (needs --join-token-file or
    /// --join-token).
    #[arg(long, env = "CERTRAFT_JOIN", value_name = "URL")]
    pub join: Option<String>,
    /// The token from `certraft cluster join-token` (single use; binds the cluster CA). On
    /// the command line it is visible to other users in /proc: prefer --join-token-file or
    /// CERTRAFT_JOIN_TOKEN.
    #[arg(
        long,
        env = "CERTRAFT_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        conflicts_with = "join_token_file"
    )]
    pub join_token: Option<String>,
    /// File whose first line is the join token.
    #[arg(long, env = "CERTRAFT_JOIN_TOKEN_FILE", value_name = "FILE")]
    pub join_token_file: Option<PathBuf>,
    /// What to join as; the token's role decides when this is absent.
    #[arg(long, env = "CERTRAFT_ROLE", value_name = "ROLE", value_parser = parse_role)]
    pub role: Option<NodeRole>,
    /// File holding the 32-byte key that seals this node's keyring [default: DATA/unseal.key,
    /// generated with a warning].
    #[arg(long, env = "CERTRAFT_UNSEAL_KEY_FILE", value_name = "FILE")]
    pub unseal_key_file: Option<PathBuf>,
    /// `human` or `json`.
    #[arg(long, env = "CERTRAFT_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Refuse handshakes whose SNI matches no certificate (alert `unrecognized_name`)
    /// instead of answering with the cluster default.
    #[arg(long, env = "CERTRAFT_STRICT_SNI")]
    pub strict_sni: bool,
    /// On bootstrap, print the first admin token on stdout also when stdout is not a
    /// terminal (it is always written to DATA/admin.token, mode 0600, and printed on a
    /// terminal). Off by default: such a stdout is `docker logs` or the journal, where a token
    /// stays readable for good.
    #[arg(long, env = "CERTRAFT_PRINT_TOKEN")]
    pub print_token: bool,
    /// After the handshake, relay the connection to this TCP `host:port` (else answer with a
    /// small page naming the node and the certificate).
    #[arg(long, env = "CERTRAFT_UPSTREAM", value_name = "HOST:PORT")]
    pub upstream: Option<String>,
    /// Serve-port connections open at once; more are closed at accept [default: 10000].
    #[arg(long, env = "CERTRAFT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Close a proxied connection after this many seconds without a byte [default: 300].
    #[arg(long, env = "CERTRAFT_IDLE_TIMEOUT", value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// ALPN protocols to offer when proxying, comma-separated, as the upstream speaks them
    /// [default: http/1.1]; e.g. `h2,http/1.1`.
    #[arg(
        long,
        env = "CERTRAFT_UPSTREAM_ALPN",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub upstream_alpn: Option<Vec<String>>,
}

fn parse_role(s: &str) -> Result<NodeRole, String> {
    match s {
        "voter" => Ok(NodeRole::Voter),
        "learner" => Ok(NodeRole::Learner),
        "witness" => Ok(NodeRole::Witness),
        other => Err(format!(
            "unknown role {other:?}: use voter, learner or witness"
        )),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
struct FileConfig {
    data_dir: Option<PathBuf>,
    node_id: Option<u64>,
    serve: Option<SocketAddr>,
    http: Option<String>,
    admin: Option<SocketAddr>,
    cluster: Option<SocketAddr>,
    advertise: Option<String>,
    join: Option<String>,
    join_token: Option<String>,
    role: Option<String>,
    unseal_key_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    strict_sni: Option<bool>,
    upstream: Option<String>,
    max_connections: Option<usize>,
    idle_timeout: Option<u64>,
    upstream_alpn: Option<Vec<String>>,
}

/// The validated configuration of a running node.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub node_id: Option<u64>,
    pub serve: SocketAddr,
    pub http: HttpListen,
    pub admin: SocketAddr,
    pub cluster: SocketAddr,
    pub advertise: String,
    pub join: Option<Join>,
    /// `--join` was given with an empty token: a new node must not start (it would
    /// bootstrap a cluster of its own); an initialized one ignores it.
    pub join_token_empty: bool,
    pub role: Option<NodeRole>,
    pub unseal_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub strict_sni: bool,
    /// Print the first admin token on bootstrap (`--print-token`).
    pub print_token: bool,
    pub upstream: Option<String>,
    pub max_connections: usize,
    pub idle_timeout_secs: u64,
    pub upstream_alpn: Vec<String>,
}

/// The HTTP port (`--http`): ACME HTTP-01 answers and a redirect to https.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    /// Configured: failing to bind it stops the node, like any other listener.
    Configured(SocketAddr),
    /// The default, 127.0.0.1:8080: a port already taken is logged, not fatal (several
    /// nodes on one host, or a web server already there).
    Default(SocketAddr),
    Off,
}

impl HttpListen {
    fn parse(text: Option<&str>) -> Result<HttpListen, ConfigError> {
        match text.map(str::trim) {
            None => Ok(HttpListen::Default(SocketAddr::from((
                [127, 0, 0, 1],
                8080,
            )))),
            Some("off" | "none") => Ok(HttpListen::Off),
            Some(a) => a
                .parse()
                .map(HttpListen::Configured)
                .map_err(|_| ConfigError::Http {
                    value: a.to_string(),
                }),
        }
    }
}

/// `--join URL --join-token TOKEN`, parsed.
#[derive(Clone)]
pub struct Join {
    pub url: String,
    pub token: JoinToken,
}

impl std::fmt::Debug for Join {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Join({}, token for CA {})",
            self.url,
            hex::encode(self.token.ca_sha256)
        )
    }
}

/// A join token: `crj1.<secret>.<sha256 of the cluster CA, hex>`.
#[derive(Clone)]
pub struct JoinToken {
    pub secret: zeroize::Zeroizing<String>,
    pub ca_sha256: [u8; 32],
}

impl JoinToken {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::BadJoinToken;
        let mut parts = text.trim().split('.');
        let (Some("crj1"), Some(secret), Some(fp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let ca_sha256: [u8; 32] = hex::decode(fp)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(bad)?;
        if secret.len() < 32 {
            return Err(bad());
        }
        Ok(JoinToken {
            secret: zeroize::Zeroizing::new(secret.to_string()),
            ca_sha256,
        })
    }

    pub fn format(secret: &str, ca_sha256: &[u8; 32]) -> String {
        format!("crj1.{secret}.{}", hex::encode(ca_sha256))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--http {value:?} is not an address; give HOST:PORT (e.g. 0.0.0.0:80) or `off`")]
    Http { value: String },
    #[error("cannot read the config file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("the config file {path} is not valid: {detail}")]
    Parse { path: String, detail: String },
    #[error("the join token is not a certraft join token (crj1.<secret>.<ca-sha256>); copy it whole from `certraft cluster join-token`")]
    BadJoinToken,
    #[error(
        "cannot read the join token file {path}: {detail}; check the path and its permissions"
    )]
    JoinTokenFile { path: String, detail: String },
    #[error("--join needs --join-token-file (or --join-token), and a join token needs --join")]
    JoinPair,
    #[error("{flag} {addr} listens on every interface, so other nodes cannot be told where it is; pass --advertise HOST")]
    NeedAdvertise {
        flag: &'static str,
        addr: SocketAddr,
    },
    #[error("{0}")]
    Role(String),
}

impl RunArgs {
    /// Merges flags/env (already in `self`, clap puts flags over env) over the file.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let role = match (self.role, file.role) {
            (Some(r), _) => Some(r),
            (None, Some(r)) => Some(parse_role(&r).map_err(ConfigError::Role)?),
            (None, None) => None,
        };
        let addr = |flag: Option<SocketAddr>, file: Option<SocketAddr>, port: u16| {
            flag.or(file)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)))
        };
        let serve = addr(self.serve, file.serve, 8443);
        let http = HttpListen::parse(self.http.as_deref().or(file.http.as_deref()))?;
        let admin = addr(self.admin, file.admin, 9443);
        let cluster = addr(self.cluster, file.cluster, 9444);
        let advertise = match self.advertise.or(file.advertise) {
            Some(a) => a,
            None => {
                for (flag, a) in [("--cluster", cluster), ("--admin", admin)] {
                    if a.ip().is_unspecified() {
                        return Err(ConfigError::NeedAdvertise { flag, addr: a });
                    }
                }
                cluster.ip().to_string()
            }
        };
        let token_from_file = match self.join_token_file.as_ref() {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::JoinTokenFile {
                        path: path.display().to_string(),
                        detail: e.to_string(),
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let token = token_from_file.or(self.join_token).or(file.join_token);
        // An empty token (a compose file's `${TOKEN:-}` with nothing set) is not a parse
        // error here: a node that already belongs to a cluster ignores its join settings,
        // and one that does not is refused at start with what to do (`join_token_empty`).
        let join_token_empty = token.as_deref().is_some_and(|t| t.trim().is_empty());
        let join = match (self.join.or(file.join), token) {
            (Some(_), Some(_)) if join_token_empty => None,
            (Some(url), Some(token)) => Some(Join {
                url: url.trim_end_matches('/').to_string(),
                token: JoinToken::parse(&token)?,
            }),
            (None, None) => None,
            _ => return Err(ConfigError::JoinPair),
        };
        Ok(Config {
            join_token_empty,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("certraft-data")),
            node_id: self.node_id.or(file.node_id),
            serve,
            http,
            admin,
            cluster,
            advertise,
            join,
            role,
            unseal_key_file: self.unseal_key_file.or(file.unseal_key_file),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            strict_sni: self.strict_sni || file.strict_sni.unwrap_or(false),
            print_token: self.print_token,
            upstream: self.upstream.or(file.upstream),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(10_000)
                .max(1),
            idle_timeout_secs: self
                .idle_timeout
                .or(file.idle_timeout)
                .unwrap_or(300)
                .max(1),
            upstream_alpn: self
                .upstream_alpn
                .or(file.upstream_alpn)
                .unwrap_or_else(|| vec!["http/1.1".into()]),
        })
    }
}

impl Config {
    /// `host:port` as other nodes reach `addr`.
    pub fn advertised(&self, addr: SocketAddr) -> String {
        if self.advertise.contains(':') && !self.advertise.starts_with('[') {
            format!("[{}]:{}", self.advertise, addr.port())
        } else {
            format!("{}:{}", self.advertise, addr.port())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags win over the file; the file wins over defaults; unknown keys are refused.
    #[test]
    fn flags_override_file_and_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "admin = \"127.0.0.1:7000\"\ncluster = \"127.0.0.1:7001\"\nrole = \"witness\"\n",
        )
        .unwrap();
        let args = RunArgs {
            config: Some(path.clone()),
            cluster: Some("127.0.0.1:8001".parse().unwrap()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.admin.port(), 7000);
        assert_eq!(c.cluster.port(), 8001);
        assert_eq!(c.serve.port(), 8443);
        assert_eq!(c.role, Some(NodeRole::Witness));
        assert_eq!(c.data_dir, PathBuf::from("certraft-data"));
        assert_eq!(c.advertised(c.admin), "127.0.0.1:7000");
        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        let err = RunArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    /// `--join-token-file` reads the token's first line (a token on argv is visible in
    /// /proc); a missing file is named in the error.
    #[test]
    fn the_join_token_comes_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let t = JoinToken::format(&"cd".repeat(16), &[9; 32]);
        std::fs::write(&path, format!("{t}\n")).unwrap();
        let args = RunArgs {
            join: Some("https://127.0.0.1:9443/".into()),
            join_token_file: Some(path),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        let j = c.join.unwrap();
        assert_eq!(
            (j.url.as_str(), j.token.ca_sha256),
            ("https://127.0.0.1:9443", [9; 32])
        );
        let err = RunArgs {
            join: Some("https://127.0.0.1:9443".into()),
            join_token_file: Some(dir.path().join("absent")),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    /// A join token round-trips; anything else is refused with the expected shape named.
    #[test]
    fn join_tokens_parse_and_bind_the_ca() {
        let t = JoinToken::format(&"ab".repeat(16), &[7; 32]);
        let parsed = JoinToken::parse(&t).unwrap();
        assert_eq!(parsed.ca_sha256, [7; 32]);
        assert!(JoinToken::parse("crj1.short.00").is_err());
        assert!(JoinToken::parse("nonsense").is_err());
    }
}
