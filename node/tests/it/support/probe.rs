//! Clients of the serve port: the real `openssl s_client` (certificate, protocol and answer
//! page of one connection) and a rustls client for handshake loops, which verifies the
//! handshake signature against the served leaf but accepts any leaf, and records it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

/// How long one `openssl` run or one handshake may take before it counts as failed.
const ONE_CONNECTION: Duration = Duration::from_secs(20);

/// A TLS protocol version to force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tls {
    V12,
    V13,
}

impl Tls {
    pub(crate) const BOTH: [Tls; 2] = [Tls::V12, Tls::V13];

    fn flag(self) -> &'static str {
        match self {
            Tls::V12 => "-tls1_2",
            Tls::V13 => "-tls1_3",
        }
    }

    /// How `openssl s_client` names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tls::V12 => "TLSv1.2",
            Tls::V13 => "TLSv1.3",
        }
    }
}

/// Runs `cmd` with `stdin` fed in, for at most [`ONE_CONNECTION`].
fn run_with_input(mut cmd: Command, stdin: &[u8]) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        // A refused handshake may end the process before it reads its input.
        let _ = input.write_all(stdin);
    }
    // Read the pipes on threads so a chatty child never blocks on a full pipe.
    let out = child.stdout.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut s, &mut v);
            v
        })
    });
    let err = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut s, &mut v);
            v
        })
    });
    let deadline = Instant::now() + ONE_CONNECTION;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: still running after {ONE_CONNECTION:?}"));
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

/// What one `openssl s_client` connection printed.
#[derive(Debug, Clone)]
pub(crate) struct SClient {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for SClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "openssl s_client {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            if self.success { "succeeded" } else { "failed" },
            self.stdout,
            self.stderr
        )
    }
}

/// `openssl s_client -connect 127.0.0.1:PORT` with `-servername SNI` (or `-noservername`)
/// and the forced version; sends one HTTP request and reads until the server closes.
pub(crate) async fn s_client(port: u16, sni: Option<&str>, tls: Tls) -> SClient {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    cmd.args([tls.flag(), "-ign_eof"]);
    let request = format!(
        "GET / HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        sni.unwrap_or("127.0.0.1")
    );
    let out = tokio::task::spawn_blocking(move || run_with_input(cmd, request.as_bytes()))
        .await
        .expect("openssl runner thread");
    match out {
        Ok(o) => SClient {
            success: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Err(e) => SClient {
            success: false,
            stdout: String::new(),
            stderr: e,
        },
    }
}

/// A certificate as `openssl x509` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct X509Text {
    /// `CN = ...`, without the `subject=` prefix.
    pub subject: String,
    pub issuer: String,
    /// The subjectAltName extension's value, e.g. `DNS:a.test, DNS:b.test`.
    pub sans: String,
}

/// `openssl x509 -noout -subject -issuer -ext subjectAltName` on one PEM certificate.
pub(crate) async fn x509_text(pem: &str) -> Result<X509Text, String> {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "x509",
        "-noout",
        "-subject",
        "-issuer",
        "-ext",
        "subjectAltName",
    ]);
    let pem = pem.to_string();
    let o = tokio::task::spawn_blocking(move || run_with_input(cmd, pem.as_bytes()))
        .await
        .expect("openssl runner thread")?;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        return Err(format!(
            "openssl x509 failed: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let sans = text
        .lines()
        .skip_while(|l| !l.contains("Subject Alternative Name"))
        .nth(1)
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    Ok(X509Text {
        subject: field("subject="),
        issuer: field("issuer="),
        sans,
    })
}

/// One successful connection through `openssl s_client`: the served leaf, the negotiated
/// protocol and the answer page.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub leaf_pem: String,
    pub leaf_der: Vec<u8>,
    pub leaf: X509Text,
    /// `TLSv1.2` / `TLSv1.3`.
    pub protocol: String,
    /// Everything after the end of the response head.
    pub page: String,
    /// The `x-certraft-certificate` header.
    pub certificate_header: String,
}

impl SClient {
    /// The served leaf, protocol and page; `Err` (with the whole output) when the handshake
    /// failed or something is missing.
    pub(crate) async fn served(&self) -> Result<Served, String> {
        let fail = |why: &str| format!("{why}\n{self}");
        if !self.success {
            return Err(fail("the connection failed"));
        }
        let begin = "-----BEGIN CERTIFICATE-----";
        let end = "-----END CERTIFICATE-----";
        let start = self
            .stdout
            .find(begin)
            .ok_or_else(|| fail("no server certificate printed"))?;
        let stop = self.stdout[start..]
            .find(end)
            .ok_or_else(|| fail("unterminated certificate"))?
            + start
            + end.len();
        let leaf_pem = format!("{}\n", &self.stdout[start..stop]);
        let leaf_der = pem::parse(&leaf_pem)
            .map_err(|e| fail(&format!("served certificate is not PEM: {e}")))?
            .contents()
            .to_vec();
        let leaf = x509_text(&leaf_pem).await.map_err(|e| fail(&e))?;
        let protocol = self
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Protocol  :"))
            .map(|p| p.trim().to_string())
            .ok_or_else(|| fail("no negotiated protocol printed"))?;
        let head_end = self
            .stdout
            .find("\r\n\r\n")
            .ok_or_else(|| fail("no HTTP answer"))?;
        let head = &self.stdout[..head_end];
        let certificate_header = head
            .lines()
            .find_map(|l| l.strip_prefix("x-certraft-certificate:"))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| fail("no x-certraft-certificate header"))?;
        let page = self.stdout[head_end + 4..]
            .lines()
            .take_while(|l| !l.starts_with("closed") && !l.starts_with("---"))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(Served {
            leaf_pem,
            leaf_der,
            leaf,
            protocol,
            page,
            certificate_header,
        })
    }
}

// ---- rustls handshakes -------------------------------------------------------------------

/// A rustls client for full handshakes (no resumption) with TLS 1.2 and 1.3 offered.
pub(crate) fn any_leaf_client() -> Arc<ClientConfig> {
    // The node's own trust-anything-but-check-the-signature config (used by joiners for
    // their first request): the serve port answers with whatever the inventory holds.
    let mut config = certraft::raft::tls::fingerprint_probe_config();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One full handshake with 127.0.0.1:`port` sending `sni` (none for `None`); the served
/// leaf's DER.
pub(crate) async fn handshake(
    config: &Arc<ClientConfig>,
    port: u16,
    sni: Option<&str>,
) -> Result<Vec<u8>, String> {
    let mut chain = handshake_chain(config, port, sni).await?;
    Ok(chain.swap_remove(0))
}

/// As [`handshake`]; every certificate the server sent, leaf first (never empty).
pub(crate) async fn handshake_chain(
    config: &Arc<ClientConfig>,
    port: u16,
    sni: Option<&str>,
) -> Result<Vec<Vec<u8>>, String> {
    let what = format!("handshake with 127.0.0.1:{port} for SNI {sni:?}");
    let server_name = match sni {
        Some(name) => {
            ServerName::try_from(name.to_string()).map_err(|e| format!("{what}: bad name: {e}"))?
        }
        // An IP address as the server name: rustls sends no SNI.
        None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let work = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("{what}: connect: {e}"))?;
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let chain: Vec<Vec<u8>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_vec())
            .collect();
        if chain.is_empty() {
            return Err(format!("{what}: no server certificate"));
        }
        Ok(chain)
    };
    tokio::time::timeout(ONE_CONNECTION, work)
        .await
        .map_err(|_| format!("{what}: no answer within {ONE_CONNECTION:?}"))?
}
