//! A scripted admin endpoint: real TLS (a throwaway CA from rcgen, a server certificate for
//! 127.0.0.1), canned HTTP answers one per connection, and a record of every request, so the
//! CLI's client can be tested without a node.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;

use super::{certraft, Certraft};

/// The token written to the token file; no output may ever contain it.
pub(crate) const TOKEN: &str = "test-admin-token-c2VjcmV0";

/// One canned answer: status and JSON (or any) body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

pub(crate) fn answer(status: u16, body: impl Into<String>) -> Answer {
    Answer {
        status,
        body: body.into(),
    }
}

/// `answer(200, json)`, from any serializable value (the DTOs themselves).
pub(crate) fn ok_json(value: &impl serde::Serialize) -> Answer {
    answer(200, serde_json::to_string(value).expect("encodable"))
}

/// `{"error":{…}}` with this status.
pub(crate) fn api_error(status: u16, code: &str, message: &str, hint: Option<&str>) -> Answer {
    let mut error = serde_json::json!({"code": code, "message": message});
    if let Some(h) = hint {
        error["hint"] = h.into();
    }
    answer(status, serde_json::json!({ "error": error }).to_string())
}

/// What the CLI sent.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {self:?}"))
    }
}

/// The CA the mock's certificate chains to.
pub(crate) enum Trust {
    /// The CA file given to the CLI issued the server certificate.
    Same,
    /// The CA file given to the CLI is another CA (verification must fail).
    Other,
    /// The right CA, but `revoked-nodes.txt` beside the CA file lists the server's
    /// certificate as that of removed node 3 (the CLI must refuse before sending anything).
    Revoked,
}

pub(crate) struct MockAdmin {
    pub url: String,
    pub ca_file: PathBuf,
    pub token_file: PathBuf,
    /// Holds the files above; also a scratch dir for the test.
    pub dir: TempDir,
    requests: Receiver<Recorded>,
}

impl MockAdmin {
    /// Serves `answers` in order, one per connection, then stops accepting.
    pub(crate) fn serve(answers: Vec<Answer>) -> MockAdmin {
        MockAdmin::serve_with(Trust::Same, answers)
    }

    pub(crate) fn serve_with(trust: Trust, answers: Vec<Answer>) -> MockAdmin {
        let dir = tempfile::tempdir().expect("temp dir");
        let revoked = matches!(trust, Trust::Revoked);
        let (server_chain, server_key, ca_pem) = pki(trust);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write ca.pem");
        if revoked {
            use sha2::Digest;
            let sha: String = sha2::Sha256::digest(server_chain[0].as_ref())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(
                dir.path().join(certraft::api::dto::REVOKED_NODES_FILE),
                format!("# removed members\n{sha} node-3\n"),
            )
            .expect("write revoked-nodes.txt");
        }
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write admin.token");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(server_chain, server_key)
            .expect("server certificate");
        let config = Arc::new(config);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().expect("local addr").port()
        );
        let (tx, rx) = mpsc::channel();
        // Ends after the last answer; the test reads what it recorded through `rx`.
        std::thread::spawn(move || {
            for answer in answers {
                let Ok((tcp, _)) = listener.accept() else {
                    return;
                };
                if let Some(recorded) = serve_one(&config, tcp, &answer) {
                    if tx.send(recorded).is_err() {
                        return;
                    }
                }
            }
        });
        MockAdmin {
            url,
            ca_file,
            token_file,
            dir,
            requests: rx,
        }
    }

    /// `certraft --server URL --ca-file CA --token-file TOKEN <args>`.
    pub(crate) fn certraft<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
    ) -> Certraft {
        certraft(["--server", &self.url])
            .arg("--ca-file")
            .arg(&self.ca_file)
            .arg("--token-file")
            .arg(&self.token_file)
            .args(args)
    }

    /// The next request the CLI made; panics after 10 s without one.
    #[track_caller]
    pub(crate) fn request(&self) -> Recorded {
        match self.requests.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => panic!("the CLI sent no request within 10 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("the mock served all its answers"),
        }
    }

    /// Asserts the CLI sent nothing (more).
    #[track_caller]
    pub(crate) fn no_request(&self) {
        if let Ok(r) = self.requests.try_recv() {
            panic!("unexpected request: {r:?}");
        }
    }
}

/// A TLS session: read one request, write the answer, close.
fn serve_one(
    config: &Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    answer: &Answer,
) -> Option<Recorded> {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let conn = rustls::ServerConnection::new(config.clone()).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let response = format!(
        "HTTP/1.1 {} Mock\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        answer.status,
        answer.body.len(),
        answer.body
    );
    tls.write_all(response.as_bytes()).ok()?;
    tls.flush().ok()?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

/// The server's chain and key, and the CA PEM to give the CLI.
fn pki(trust: Trust) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String) {
    let ca = |cn: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        (cert, Issuer::new(params, key))
    };
    let (ca_cert, issuer) = ca("mock cluster CA");
    let server_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let server_cert = params.signed_by(&server_key, &issuer).expect("signed");
    let given_ca = match trust {
        Trust::Same | Trust::Revoked => to_pem(&ca_cert),
        Trust::Other => to_pem(&ca("another cluster CA").0),
    };
    (
        vec![server_cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        given_ca,
    )
}

fn to_pem(cert: &rcgen::Certificate) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", cert.der().to_vec()))
}
