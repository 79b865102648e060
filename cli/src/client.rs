//! The admin API client: where the server, token and cluster CA come from, one verified
//! HTTPS connection, and the one mapping from transport and HTTP errors to [`Failure`]s.
//!
//! The admin endpoint is always verified against the cluster CA; there is no way to skip it.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certraft::api::dto::{ErrorBody, API_PREFIX};
use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::fail::{Exit, Failure};

pub(crate) const DEFAULT_SERVER: &str = "https://127.0.0.1:9443";
pub(crate) const ENV_SERVER: &str = "CERTRAFT_SERVER";
pub(crate) const ENV_TOKEN: &str = "CERTRAFT_TOKEN";
pub(crate) const ENV_DATA_DIR: &str = "CERTRAFT_DATA_DIR";
/// The node's default data dir, relative to where it runs.
pub(crate) const DEFAULT_DATA_DIR: &str = "./certraft-data";
const TOKEN_FILE: &str = "admin.token";
const CA_FILE: &str = "ca.pem";

/// How to reach the cluster: global options of every cluster command.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Cluster connection")]
pub(crate) struct ConnectArgs {
    /// Admin endpoint (HTTPS) of any node of the cluster; writes are forwarded to the leader.
    #[arg(long, global = true, value_name = "URL", env = ENV_SERVER, default_value = DEFAULT_SERVER)]
    pub server: String,
    /// File whose first line is an admin token (else $CERTRAFT_TOKEN, else admin.token in
    /// $CERTRAFT_DATA_DIR or ./certraft-data).
    #[arg(long, global = true, value_name = "F")]
    pub token_file: Option<PathBuf>,
    /// The cluster CA (PEM) the admin endpoint's certificate is verified against (else ca.pem
    /// in $CERTRAFT_DATA_DIR or ./certraft-data). Copy DATA/ca.pem from any node, with
    /// DATA/revoked-nodes.txt beside it: certificates of removed members listed there are
    /// refused before the token is sent.
    #[arg(long, global = true, value_name = "F")]
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for the cluster's answer (a write waits for a majority of voters).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// An admin token. Never printed: no `Debug`, no `Display`.
struct Token(Zeroizing<String>);

/// Where the token came from, for messages (never the token itself).
#[derive(Debug, Clone)]
enum TokenSource {
    File(PathBuf),
    Env,
    DataDir(PathBuf),
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::File(p) => write!(f, "token file {}", p.display()),
            TokenSource::Env => write!(f, "${ENV_TOKEN}"),
            TokenSource::DataDir(p) => write!(f, "token file {} (from the data dir)", p.display()),
        }
    }
}

/// A successful answer: the typed body and the JSON exactly as the server sent it.
pub(crate) struct Reply<T> {
    pub body: T,
    pub raw: serde_json::Value,
}

/// A connection to one node's admin API.
pub(crate) struct Client {
    http: Http,
    base: Url,
    /// `--server` as the user knows it, for messages.
    server: String,
    ca_file: PathBuf,
    token_source: TokenSource,
    auth: HeaderValue,
    timeout: Duration,
}

/// How long the CLI waits for a request that generates a key (see the node's
/// `KEYGEN_DEADLINE`), unless `--timeout` is longer.
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(180);

fn method_generates_keys(method: &Method, path: &[&str]) -> bool {
    *method == Method::POST && matches!(path, ["issue"] | ["csrs"])
}

impl Client {
    /// Resolves the server, the cluster CA and the token, and builds the verified client.
    /// Nothing is sent yet.
    pub(crate) fn connect(args: &ConnectArgs) -> Result<Client, Failure> {
        let (base, server) = parse_server(&args.server)?;
        let data_dir = data_dir();
        let ca_file = find_ca(args.ca_file.as_deref(), &data_dir, &server)?;
        let tls = crate::trust::tls_config(&ca_file)?;
        let (token, token_source) = find_token(args.token_file.as_deref(), &data_dir)?;
        let mut auth = HeaderValue::from_str(&Zeroizing::new(format!("Bearer {}", &*token.0)))
            .map_err(|_| {
                Failure::auth(
                    "invalid_token",
                    format!("the {token_source} holds characters an admin token cannot have; give the token exactly as certraft-node printed it"),
                )
            })?;
        auth.set_sensitive(true);
        let timeout = Duration::from_secs(args.timeout);
        let http = Http::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("certraft-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Failure::refused(
                    "client_setup_failed",
                    format!("cannot set up the HTTPS client: {}", chain(&e)),
                )
            })?;
        Ok(Client {
            http,
            base,
            server,
            ca_file,
            token_source,
            auth,
            timeout,
        })
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, path: &[&str]) -> Result<Reply<T>, Failure> {
        self.send(Method::GET, path, &[], None::<&()>)
    }

    pub(crate) fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: &B,
    ) -> Result<Reply<T>, Failure> {
        self.send(Method::POST, path, &[], Some(body))
    }

    pub(crate) fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: &B,
    ) -> Result<Reply<T>, Failure> {
        self.send(Method::PUT, path, &[], Some(body))
    }

    pub(crate) fn delete<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Reply<T>, Failure> {
        self.send(Method::DELETE, path, query, None::<&()>)
    }

    /// One request to `API_PREFIX/path…` (each element one percent-encoded segment).
    fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<Reply<T>, Failure> {
        let url = self.url(path, query)?;
        let what = Request {
            method: method.clone(),
            path: url.path().to_string(),
        };
        let mut request: RequestBuilder = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        // Generating a key (RSA-4096 takes seconds of CPU) may wait for its turn on a busy
        // leader: the node allows such a request up to 150 s, so the CLI waits that long.
        if method_generates_keys(&what.method, path) {
            request = request.timeout(self.timeout.max(KEYGEN_TIMEOUT));
        }
        let response = request
            .send()
            .map_err(|e| self.transport_failure(&e, &what))?;
        let status = response.status();
        let text = response
            .text()
            .map_err(|e| self.transport_failure(&e, &what))?;
        if !status.is_success() {
            return Err(self.status_failure(status, &text, &what));
        }
        let unreadable = |e: serde_json::Error| {
            Failure::refused(
                "unexpected_response",
                format!(
                    "{} answered {what} with a body certraft cannot read ({e}); are the CLI and the node the same version?",
                    self.server
                ),
            )
        };
        let raw: serde_json::Value = serde_json::from_str(&text).map_err(unreadable)?;
        let body = T::deserialize(&raw).map_err(unreadable)?;
        Ok(Reply { body, raw })
    }

    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Url, Failure> {
        let mut url = self.base.clone();
        {
            // An https URL always has a path to extend; `parse_server` refused anything else.
            let mut segments = url.path_segments_mut().map_err(|()| {
                Failure::usage(
                    "invalid_server",
                    format!(
                        "--server {}: not a URL certraft can add a path to; use https://HOST:9443",
                        self.server
                    ),
                )
            })?;
            segments
                .pop_if_empty()
                .extend(API_PREFIX.split('/').filter(|s| !s.is_empty()))
                .extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// No HTTP answer: TLS verification (exit 1), timeout or connection (exit 3).
    fn transport_failure(&self, e: &reqwest::Error, what: &Request) -> Failure {
        let server = &self.server;
        let ca = self.ca_file.display();
        if let Some(tls) = find_in_chain::<rustls::Error>(e) {
            return match tls {
                rustls::Error::InvalidCertificate(cert) => {
                    use rustls::CertificateError as C;
                    if let C::Other(other) = cert {
                        if let Some(removed) = other.0.downcast_ref::<crate::trust::RemovedMember>() {
                            return Failure::refused(
                                "removed_member",
                                format!("{server} presented {removed}; the admin token was not sent"),
                            )
                            .with_hint(format!(
                                "the node at {server} was removed from the cluster (or something holding its old key answers there); point --server at a current member (`certraft cluster status` on any node lists them)"
                            ));
                        }
                    }
                    let next = match cert {
                        C::NotValidForName | C::NotValidForNameContext { .. } => {
                            "the node's certificate does not name the host in --server; use the address the node advertises (its node certificate names it), e.g. --server https://HOST:9443".to_string()
                        }
                        C::UnknownIssuer | C::BadSignature => format!(
                            "{server} is not a node of the cluster whose CA is in {ca}, or {ca} is stale; copy DATA/ca.pem from a node of this cluster and pass --ca-file"
                        ),
                        _ => format!(
                            "check the node's clock and certificate; the CA used is {ca} (--ca-file)"
                        ),
                    };
                    Failure::refused(
                        "tls_verification_failed",
                        format!("the certificate of {server} failed verification against the CA in {ca}: {tls}"),
                    )
                    .with_hint(next)
                }
                _ => Failure::refused(
                    "tls_handshake_failed",
                    format!("TLS handshake with {server} (verifying against the CA in {ca}) failed: {tls}"),
                )
                .with_hint(format!("is {server} the admin port (HTTPS, default 9443) of a certraft node?")),
            };
        }
        if e.is_timeout() {
            return Failure::unreachable(
                "timeout",
                format!(
                    "{server} did not answer {what} within {}s; the node may be overloaded or cut off from the cluster; check `certraft cluster status`, or raise --timeout",
                    self.timeout.as_secs()
                ),
            );
        }
        let refused = causes(e)
            .filter_map(|err| err.downcast_ref::<std::io::Error>())
            .any(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        let cause = if refused {
            "connection refused".to_string()
        } else {
            root_cause(e)
        };
        if e.is_connect() {
            Failure::unreachable(
                "unreachable",
                format!("cannot reach {server}: {cause}; is certraft-node running there? pass --server URL or set {ENV_SERVER}"),
            )
        } else {
            Failure::unreachable(
                "unreachable",
                format!("{what} to {server} failed: {cause}; check the node is up (`certraft cluster status`) and retry"),
            )
        }
    }

    /// An HTTP error answer: the server's `{"error":…}` when it sent one.
    fn status_failure(&self, status: StatusCode, text: &str, what: &Request) -> Failure {
        let exit = match status.as_u16() {
            401 | 403 => Exit::Auth,
            502..=504 => Exit::Unreachable,
            _ => Exit::Refused,
        };
        let default_hint = match status.as_u16() {
            401 => Some(format!(
                "pass --token-file F or set {ENV_TOKEN} with a current admin token (all lost? run `certraft-node admin-token --data-dir DIR` on a node)"
            )),
            403 => Some("use an admin token (--token-file F or $CERTRAFT_TOKEN)".to_string()),
            502 | 503 => Some(
                "the cluster has no leader now: a majority of voters must be up and connected; check `certraft cluster status` on each node, then retry".to_string(),
            ),
            504 => Some(
                "the cluster did not commit in time; check `certraft cluster status`, retry, or raise --timeout".to_string(),
            ),
            _ => None,
        };
        let mut failure = match serde_json::from_str::<ErrorBody>(text) {
            Ok(ErrorBody { error }) => Failure {
                exit,
                code: error.code,
                message: error.message,
                hint: error.hint.or(default_hint),
            },
            Err(_) => {
                let code = match status.as_u16() {
                    401 => "unauthorized".to_string(),
                    403 => "forbidden".to_string(),
                    404 => "not_found".to_string(),
                    503 => "no_leader".to_string(),
                    504 => "timeout".to_string(),
                    n => format!("http_{n}"),
                };
                let snippet: String = text.trim().chars().take(200).collect();
                let body = if snippet.is_empty() {
                    String::new()
                } else {
                    format!(": {snippet}")
                };
                Failure {
                    exit,
                    code,
                    message: format!("{} answered {what} with {status}{body}", self.server),
                    hint: default_hint.or_else(|| {
                        Some(format!(
                            "is {} a certraft node of the same version as this CLI?",
                            self.server
                        ))
                    }),
                }
            }
        };
        if exit == Exit::Auth {
            // Which token was refused, never the token itself.
            failure.message = format!(
                "{}; the token came from {}",
                failure.message.trim_end_matches('.'),
                self.token_source
            );
        }
        failure
    }
}

/// `GET /api/v1/certs`, for messages.
struct Request {
    method: Method,
    path: String,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// `--server`: an https URL; `HOST:PORT` alone means `https://HOST:PORT`.
fn parse_server(text: &str) -> Result<(Url, String), Failure> {
    let trimmed = text.trim().trim_end_matches('/');
    let full = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("https://{trimmed}")
    };
    let url = Url::parse(&full).map_err(|e| {
        Failure::usage(
            "invalid_server",
            format!("--server {text:?} is not a URL ({e}); use https://HOST:9443"),
        )
    })?;
    if url.scheme() != "https" {
        return Err(Failure::usage(
            "invalid_server",
            format!("--server {text}: the admin API is HTTPS only (verified against the cluster CA); use https://{}", url.host_str().map(|h| format!("{h}:{}", url.port().unwrap_or(9443))).unwrap_or_else(|| "HOST:9443".into())),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
        return Err(Failure::usage(
            "invalid_server",
            format!("--server {text}: no host; use https://HOST:9443"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(Failure::usage(
            "invalid_server",
            format!("--server {text}: give only scheme, host, port (and a path prefix, behind a proxy); use https://HOST:9443"),
        ));
    }
    Ok((url, full))
}

/// `$CERTRAFT_DATA_DIR`, else `./certraft-data`.
fn data_dir() -> PathBuf {
    std::env::var_os(ENV_DATA_DIR)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// `--ca-file`, else `DATA/ca.pem`; none is a usage error, never "skip verification".
fn find_ca(given: Option<&Path>, data_dir: &Path, server: &str) -> Result<PathBuf, Failure> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let path = data_dir.join(CA_FILE);
    if path.is_file() {
        return Ok(path);
    }
    Err(Failure::usage(
        "no_ca",
        format!(
            "no cluster CA to verify {server} against: --ca-file is not given and {} does not exist; pass --ca-file F with a copy of DATA/ca.pem from any node, or run on the appliance (or set {ENV_DATA_DIR} to its data dir)",
            path.display()
        ),
    ))
}

/// `--token-file`, else `$CERTRAFT_TOKEN`, else `DATA/admin.token`: the first line, trimmed.
fn find_token(given: Option<&Path>, data_dir: &Path) -> Result<(Token, TokenSource), Failure> {
    if let Some(path) = given {
        let source = TokenSource::File(path.to_path_buf());
        return Ok((read_token_file(path, &source)?, source));
    }
    match std::env::var(ENV_TOKEN) {
        Ok(text) => {
            let token = first_line(&text);
            if token.is_empty() {
                return Err(Failure::auth(
                    "no_token",
                    format!("${ENV_TOKEN} is set but empty; set it to an admin token, or pass --token-file F"),
                ));
            }
            Ok((Token(token), TokenSource::Env))
        }
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::auth(
            "invalid_token",
            format!(
                "${ENV_TOKEN} is not UTF-8 text; set it to an admin token, or pass --token-file F"
            ),
        )),
        Err(std::env::VarError::NotPresent) => {
            let path = data_dir.join(TOKEN_FILE);
            if !path.is_file() {
                return Err(Failure::auth(
                    "no_token",
                    format!(
                        "no admin token: --token-file is not given, ${ENV_TOKEN} is not set, and {} does not exist; pass --token-file F, set {ENV_TOKEN}, or run on the appliance (or set {ENV_DATA_DIR} to its data dir)",
                        path.display()
                    ),
                ));
            }
            let source = TokenSource::DataDir(path.clone());
            Ok((read_token_file(&path, &source)?, source))
        }
    }
}

fn read_token_file(path: &Path, source: &TokenSource) -> Result<Token, Failure> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        Failure::auth(
            "token_file_unreadable",
            format!("cannot read {source}: {e}; check the path and its permissions (the node writes DATA/admin.token, mode 0600)"),
        )
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Failure::auth(
            "invalid_token",
            format!("{source} is not UTF-8 text; it should hold the admin token on its first line"),
        )
    })?;
    let token = first_line(text);
    if token.is_empty() {
        return Err(Failure::auth(
            "no_token",
            format!("{source} is empty; it should hold the admin token on its first line"),
        ));
    }
    Ok(Token(token))
}

fn first_line(text: &str) -> Zeroizing<String> {
    Zeroizing::new(text.lines().next().unwrap_or("").trim().to_string())
}

/// Every error in `e`'s source chain, looking inside `io::Error`s too: TLS errors arrive
/// wrapped in (nested) `io::Error`s, whose `source()` skips the wrapped error itself.
fn causes<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&err: &&'a (dyn StdError + 'static)| {
        match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        }
    })
}

/// The first error of type `E` among [`causes`].
fn find_in_chain<'a, E: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    causes(e).find_map(|err| err.downcast_ref::<E>())
}

/// The innermost error's message: what actually went wrong, without the URL wrappers.
fn root_cause(e: &(dyn StdError + 'static)) -> String {
    causes(e)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Every message in the chain, `: `-separated.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut current = e.source();
    while let Some(err) = current {
        parts.push(err.to_string());
        current = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests;
