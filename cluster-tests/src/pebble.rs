//! A real ACME server for tests: Let's Encrypt's `pebble` (Debian package `pebble`, 2.4.0)
//! with `pebble-challtestsrv` as the DNS server its validation authority asks, both on
//! loopback with free ports and a temp dir of their own, so several instances run side by
//! side in one test process. The ACME listener can bind another address of the host instead
//! ([`PebbleOptions::listen_ip`], e.g. a Docker network's gateway, so that containers reach
//! the CA); its HTTPS certificate, made here, then names that address.
//!
//! What this pebble version offers (checked by running it, see `tests/pebble_harness.rs`):
//!
//! - The directory has `newNonce`, `newAccount`, `newOrder`, `revokeCert`, `keyChange` and
//!   `meta` only: no ACME Renewal Information (`renewalInfo`, ARI) and no certificate
//!   profiles (`meta.profiles`); both came in later pebble releases.
//! - Issued certificates are valid for 157766400 s (5 years) unless the config sets
//!   `certificateValidityPeriod` ([`PebbleOptions::certificate_validity`]); the chain is leaf +
//!   one intermediate, under a root regenerated at every launch.
//! - It logs `Issued certificate serial <hex> for order <id>` per certificate,
//!   `Added order "<id>" to the db` per order and `authz <id> set VALID by completed challenge
//!   <id>` per validation ([`Pebble::issued_count`], [`Pebble::orders_count`],
//!   [`Pebble::validated_count`]).
//! - `pebble-challtestsrv`'s management API (plain HTTP): `POST /add-a` with
//!   `{"host": NAME, "addresses": [IPV4, ...]}` (also `/add-aaaa`, `/clear-a`,
//!   `/set-default-ipv4`, `/set-txt`, `/set-cname`, `/set-servfail`, ...).
//!
//! Pebble keeps everything in memory: [`Pebble::stop`] then [`Pebble::restart`] gives a CA on
//! the same ports with the same HTTPS certificate but no accounts, orders or authorizations,
//! and a new root and intermediate.

use std::fs::{File, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::logs::Tail;
use crate::ports::free_port;
use crate::process::poll;

/// How long `pebble` and `pebble-challtestsrv` get to answer after being started.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How often readiness is probed while waiting.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How often [`Pebble::start`] picks new ports when another process took one first.
const START_ATTEMPTS: usize = 3;

/// The line pebble logs for every certificate it issues.
const ISSUED_LINE: &str = "Issued certificate serial ";
/// The line pebble logs for every order it creates.
const ORDER_LINE: &str = "Added order \"";
/// The line pebble logs for every authorization a challenge validated.
const VALIDATED_LINE: &str = " set VALID by completed challenge ";

/// How to run a [`Pebble`].
#[derive(Debug, Clone, Default)]
pub struct PebbleOptions {
    /// The port pebble's validation authority connects to (on the address the name resolves
    /// to) for HTTP-01 challenges (`httpPort`); 0 picks a free one ([`Pebble::http_port`]).
    pub http_port: u16,
    /// The port it connects to for TLS-ALPN-01 challenges (`tlsPort`); 0 picks a free one
    /// ([`Pebble::tls_port`]).
    pub tls_port: u16,
    /// Percent of good nonces rejected as `badNonce` (`PEBBLE_WFE_NONCEREJECT`); `None`
    /// keeps pebble's default, 5.
    pub nonce_reject: Option<u8>,
    /// Every challenge passes without a validation request (`PEBBLE_VA_ALWAYS_VALID=1`).
    pub always_valid: bool,
    /// Validity of issued certificates (`certificateValidityPeriod`, whole seconds); `None`
    /// keeps pebble's default, 5 years.
    pub certificate_validity: Option<Duration>,
    /// More environment for `pebble` (e.g. `PEBBLE_AUTHZREUSE`, `PEBBLE_CHAIN_LENGTH`).
    pub extra_env: Vec<(String, String)>,
    /// The host address the ACME listener (the directory and everything under it) binds
    /// instead of 127.0.0.1: a Docker network's gateway, say, so that containers on it reach
    /// the CA. The HTTPS certificate names it (besides 127.0.0.1 and localhost) and
    /// [`Pebble::directory_url`] uses it. The management API and challtestsrv stay on
    /// loopback. `None`: 127.0.0.1.
    pub listen_ip: Option<IpAddr>,
}

/// A running `pebble` ACME server and its `pebble-challtestsrv` DNS server; both are killed
/// (SIGKILL) and reaped when it is dropped.
pub struct Pebble {
    /// Config, HTTPS certificate and key, logs.
    dir: tempfile::TempDir,
    pebble_bin: PathBuf,
    config: PathBuf,
    /// The options, with the challenge ports resolved.
    options: PebbleOptions,
    listen_port: u16,
    management_port: u16,
    dns_port: u16,
    challtestsrv_port: u16,
    ca_pem: String,
    client: reqwest::Client,
    pebble: Mutex<Option<Child>>,
    challtestsrv: Mutex<Option<Child>>,
}

/// What the readiness probe found.
enum Ready {
    Up,
    /// A process ended; what the log says about why.
    Exited(String),
}

impl Pebble {
    /// Starts pebble and pebble-challtestsrv and waits until the directory answers over HTTPS
    /// (trusting [`Pebble::ca_pem`]) and challtestsrv's management API answers.
    ///
    /// `None` (with the reason on stderr) when either binary is not installed, except under
    /// `CI=true`, where that panics. Panics with both logs when they do not come up.
    pub async fn start(options: PebbleOptions) -> Option<Pebble> {
        let (pebble_bin, challtestsrv_bin) = match binaries() {
            Ok(found) => found,
            Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("pebble: CI=true needs the ACME tests to run, but {why}")
            }
            Err(why) => {
                eprintln!("pebble: skipped: {why}");
                return None;
            }
        };
        let mut options = options;
        if options.http_port == 0 {
            options.http_port = free_port();
        }
        if options.tls_port == 0 {
            options.tls_port = free_port();
        }
        let mut attempt = 1;
        loop {
            let p = Pebble::spawn(&pebble_bin, &challtestsrv_bin, options.clone());
            match p.wait_ready().await {
                Ok(()) => return Some(p),
                // Another process bound one of the ports between `free_port` and the bind.
                Err(_)
                    if attempt < START_ATTEMPTS && p.log().contains("address already in use") =>
                {
                    eprintln!("pebble: a port was taken, starting again on new ports");
                    attempt += 1;
                }
                Err(e) => panic!("pebble did not come up: {e}\n{}", p.log_tails()),
            }
        }
    }

    /// Writes the config and the HTTPS certificate into a new temp dir, picks the ports and
    /// starts both processes (without waiting for them).
    fn spawn(pebble_bin: &Path, challtestsrv_bin: &Path, options: PebbleOptions) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("pebble-")
            .tempdir()
            .expect("create a temp dir for pebble");
        let mut names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        if let Some(ip) = options.listen_ip.filter(|ip| !ip.is_loopback()) {
            // rcgen makes an IP address SAN of a name that parses as one.
            names.push(ip.to_string());
        }
        let tls =
            rcgen::generate_simple_self_signed(names).expect("generate pebble's HTTPS certificate");
        let ca_pem = pem::encode(&pem::Pem::new("CERTIFICATE", tls.cert.der().to_vec()));
        let key_pem = pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            tls.signing_key.serialize_der(),
        ));
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &ca_pem).expect("write pebble's certificate");
        std::fs::write(&key_path, key_pem).expect("write pebble's key");

        let listen_port = free_port();
        let management_port = free_port();
        let dns_port = free_udp_and_tcp_port();
        let challtestsrv_port = free_port();
        let listen = SocketAddr::new(listen_ip(&options), listen_port);
        let mut config = serde_json::json!({
            "listenAddress": listen.to_string(),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": cert_path,
            "privateKey": key_path,
            "httpPort": options.http_port,
            "tlsPort": options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(validity) = options.certificate_validity {
            config["certificateValidityPeriod"] = validity.as_secs().into();
        }
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(
            &config_path,
            serde_json::to_vec_pretty(&serde_json::json!({ "pebble": config }))
                .expect("serialize pebble's config"),
        )
        .expect("write pebble's config");

        let client = https_client(&ca_pem);
        let challtestsrv_log = dir.path().join("challtestsrv.log");
        let mut cmd = Command::new(challtestsrv_bin);
        cmd.args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{challtestsrv_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            // Unknown names resolve to loopback; no AAAA answers, so the validation
            // authority connects to the IPv4 address a test gave (or 127.0.0.1) only.
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]);
        let challtestsrv = spawn_logged(cmd, &challtestsrv_log, false);

        let p = Pebble {
            dir,
            pebble_bin: pebble_bin.to_path_buf(),
            config: config_path,
            options,
            listen_port,
            management_port,
            dns_port,
            challtestsrv_port,
            ca_pem,
            client,
            pebble: Mutex::new(None),
            challtestsrv: Mutex::new(Some(challtestsrv)),
        };
        p.spawn_pebble(false);
        p
    }

    /// Starts `pebble` with the config, appending to its log when `append`.
    fn spawn_pebble(&self, append: bool) {
        let mut cmd = Command::new(&self.pebble_bin);
        cmd.arg("-config")
            .arg(&self.config)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PEBBLE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("PEBBLE_VA_NOSLEEP", "1");
        if let Some(percent) = self.options.nonce_reject {
            cmd.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        if self.options.always_valid {
            cmd.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        cmd.envs(self.options.extra_env.iter().map(|(k, v)| (k, v)));
        let child = spawn_logged(cmd, &self.pebble_log_path(), append);
        *lock(&self.pebble) = Some(child);
    }

    /// Waits until the directory and challtestsrv's management API answer; `Err` says what
    /// was last seen (a process that ended, or the last probe's failure).
    async fn wait_ready(&self) -> Result<(), String> {
        match poll(START_LIMIT, POLL_EVERY, || self.probe()).await {
            Ok(Ready::Up) => Ok(()),
            Ok(Ready::Exited(why)) => Err(why),
            Err(last) => Err(format!("not ready after {START_LIMIT:?}: {last}")),
        }
    }

    /// One look: has a process ended, does the directory answer, does challtestsrv answer.
    async fn probe(&self) -> Result<Ready, String> {
        for (name, child) in [
            ("pebble", &self.pebble),
            ("pebble-challtestsrv", &self.challtestsrv),
        ] {
            let mut child = lock(child);
            match child.as_mut().map(Child::try_wait) {
                None => return Ok(Ready::Exited(format!("{name} is not running"))),
                Some(Ok(Some(status))) => {
                    return Ok(Ready::Exited(format!("{name} exited ({status})")))
                }
                Some(Ok(None)) => {}
                Some(Err(e)) => return Ok(Ready::Exited(format!("{name}: wait: {e}"))),
            }
        }
        let url = self.directory_url();
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e:?}"))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("GET {url}: body: {e}"))?;
        if !status.is_success() || !body.contains("newOrder") {
            return Err(format!("GET {url}: {status}: {body}"));
        }
        // Any answer will do: the management API has no GET resource of its own.
        let url = self.challtestsrv_url();
        self.client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e:?}"))?;
        Ok(Ready::Up)
    }

    /// The ACME directory: `https://127.0.0.1:PORT/dir`, or at [`PebbleOptions::listen_ip`]
    /// when set. Pebble names its other resources after the address a request came to.
    pub fn directory_url(&self) -> String {
        let at = SocketAddr::new(listen_ip(&self.options), self.listen_port);
        format!("https://{at}/dir")
    }

    /// The port of the ACME listener (the directory's port): a client of the CA sees its
    /// answers come from this port.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Pebble's management API (`/roots/0`, `/intermediates/0`, `/cert-status-by-serial/…`):
    /// `https://127.0.0.1:PORT`, with the same certificate as the directory.
    pub fn management_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.management_port)
    }

    /// pebble-challtestsrv's management API: `http://127.0.0.1:PORT`.
    pub fn challtestsrv_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.challtestsrv_port)
    }

    /// The DNS server pebble asks (pebble-challtestsrv, UDP and TCP): `127.0.0.1:PORT`.
    pub fn dns_server(&self) -> String {
        format!("127.0.0.1:{}", self.dns_port)
    }

    /// The port pebble connects to for HTTP-01 validation.
    pub fn http_port(&self) -> u16 {
        self.options.http_port
    }

    /// The port pebble connects to for TLS-ALPN-01 validation.
    pub fn tls_port(&self) -> u16 {
        self.options.tls_port
    }

    /// PEM of the self-signed certificate (SANs IP 127.0.0.1, DNS localhost, and IP
    /// [`PebbleOptions::listen_ip`] when set) that the directory and the management API
    /// present: an ACME client must trust it. It stays the same across [`Pebble::restart`].
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Makes `host` resolve (A) to `address` for pebble: `POST /add-a` on challtestsrv.
    /// Names without a record resolve to 127.0.0.1, and no name has an AAAA record. Panics
    /// with the logs if challtestsrv does not take it.
    pub async fn add_a(&self, host: &str, address: &str) {
        let body = serde_json::json!({ "host": host, "addresses": [address] });
        self.manage_dns("add-a", body).await;
    }

    /// Forgets every A record of `host` (`add_a` adds to what is there; the default address
    /// answers again until a new one is added).
    pub async fn clear_a(&self, host: &str) {
        self.manage_dns("clear-a", serde_json::json!({ "host": host }))
            .await;
    }

    async fn manage_dns(&self, path: &str, body: serde_json::Value) {
        let url = format!("{}/{path}", self.challtestsrv_url());
        let result = async {
            let resp = self
                .client
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{status}: {text}"))
            }
        }
        .await;
        if let Err(e) = result {
            panic!("POST {url} {body}: {e}\n{}", self.log_tails());
        }
    }

    /// PEM of the root that issues now (`GET /roots/0`) followed by the intermediate that
    /// signs the leaves (`GET /intermediates/0`), from the management API. Pebble makes new
    /// ones at every (re)start. Panics with the logs when pebble does not answer.
    pub async fn roots_pem(&self) -> String {
        let mut out = String::new();
        for path in ["/roots/0", "/intermediates/0"] {
            let url = format!("{}{path}", self.management_url());
            let result = async {
                let resp = self
                    .client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let status = resp.status();
                let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
                if status.is_success() && text.contains("-----BEGIN CERTIFICATE-----") {
                    Ok(text)
                } else {
                    Err(format!("{status}: {text}"))
                }
            }
            .await;
            match result {
                Ok(text) => {
                    out.push_str(text.trim_end());
                    out.push('\n');
                }
                Err(e) => panic!("GET {url}: {e}\n{}", self.log_tails()),
            }
        }
        out
    }

    /// How many certificates pebble has issued since [`Pebble::start`], over every restart:
    /// the `Issued certificate serial … for order …` lines of its log.
    pub fn issued_count(&self) -> usize {
        count_lines(&self.pebble_log(), ISSUED_LINE)
    }

    /// How many orders pebble has created since [`Pebble::start`], over every restart: the
    /// `Added order "…" to the db` lines of its log.
    pub fn orders_count(&self) -> usize {
        count_lines(&self.pebble_log(), ORDER_LINE)
    }

    /// How many authorizations pebble's validation authority has validated since
    /// [`Pebble::start`], over every restart: the `authz … set VALID by completed challenge
    /// …` lines of its log (a reused authorization is not validated again).
    pub fn validated_count(&self) -> usize {
        count_lines(&self.pebble_log(), VALIDATED_LINE)
    }

    /// Kills pebble (SIGKILL) and reaps it: the CA is down (connections to the directory are
    /// refused) until [`Pebble::restart`]. challtestsrv keeps running with its records.
    pub async fn stop(&self) {
        if let Some(mut child) = lock(&self.pebble).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts pebble again (killing it first if it runs) on the same ports with the same
    /// config and HTTPS certificate, and waits until the directory answers. Pebble keeps its
    /// state in memory only: accounts, orders and authorizations are gone, and it issues
    /// under a new root and intermediate ([`Pebble::roots_pem`] again). Its log is appended
    /// to, so the counts go on. Panics with the logs when it does not come up.
    pub async fn restart(&self) {
        self.stop().await;
        self.spawn_pebble(true);
        if let Err(e) = self.wait_ready().await {
            panic!("pebble did not come back: {e}\n{}", self.log_tails());
        }
    }

    /// Everything pebble and challtestsrv wrote so far (stdout and stderr), each under a
    /// header: for failure messages.
    pub fn log(&self) -> String {
        format!(
            "---- pebble ({}) ----\n{}\n---- pebble-challtestsrv ----\n{}",
            self.pebble_log_path().display(),
            self.pebble_log(),
            read_log(&self.dir.path().join("challtestsrv.log")),
        )
    }

    /// The last lines of both logs.
    fn log_tails(&self) -> String {
        let pebble = Tail::of(&self.pebble_log(), 80).render("pebble");
        let challtestsrv = Tail::of(&read_log(&self.dir.path().join("challtestsrv.log")), 30)
            .render("pebble-challtestsrv");
        format!("{pebble}{challtestsrv}")
    }

    fn pebble_log_path(&self) -> PathBuf {
        self.dir.path().join("pebble.log")
    }

    fn pebble_log(&self) -> String {
        read_log(&self.pebble_log_path())
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&self.pebble, &self.challtestsrv] {
            if let Some(mut c) = lock(child).take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// `pebble` and `pebble-challtestsrv` from `PATH` (or `/usr/bin`), or what is missing and
/// how to get it.
fn binaries() -> Result<(PathBuf, PathBuf), String> {
    let find = |name: &str| -> Result<PathBuf, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/bin")])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("{name} is not installed (apt-get install pebble)"))
    };
    Ok((find("pebble")?, find("pebble-challtestsrv")?))
}

/// The address the ACME listener binds.
fn listen_ip(options: &PebbleOptions) -> IpAddr {
    options.listen_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A port free for both UDP and TCP on 127.0.0.1 (challtestsrv's DNS server binds both).
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts `cmd` with stdin closed and stdout and stderr into `log` (appended when `append`).
fn spawn_logged(mut cmd: Command, log: &Path, append: bool) -> Child {
    let file = if append {
        OpenOptions::new().create(true).append(true).open(log)
    } else {
        File::create(log)
    };
    let file = file.unwrap_or_else(|e| panic!("open log {}: {e}", log.display()));
    let stderr = file.try_clone().expect("clone the log file handle");
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// An HTTPS client trusting only `ca_pem` (ring provider), no proxy, no pooled connections
/// (pebble is killed and restarted under it).
pub(crate) fn https_client(ca_pem: &str) -> reqwest::Client {
    let der = pem::parse(ca_pem).expect("pebble's certificate is PEM");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(der.contents().to_vec().into())
        .expect("pebble's certificate as a trust anchor");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("build the HTTPS client")
}

fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
