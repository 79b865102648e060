//! The browser harness (`certraft_cluster_tests::browser`): headless chromium under
//! chromedriver against a small HTTPS site served here, whose certificate a test CA signs
//! that the browser is told to trust (not `acceptInsecureCerts`).

// Tests: `unwrap` is how a test says "this cannot fail here".
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certraft_cluster_tests::browser::{keys, Browser, Cookie};
use certraft_cluster_tests::process::poll_blocking;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA made for the test and the server certificates it signs.
struct TestCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: pem::encode(&pem::Pem::new("CERTIFICATE", cert.der().to_vec())),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate naming IP `ip` only: its chain (leaf, CA) and key.
    fn server(&self, ip: &str) -> (Vec<rustls::pki_types::CertificateDer<'static>>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![ip.to_string()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        let ca = pem::parse(&self.pem).unwrap().contents().to_vec();
        (vec![leaf.der().clone(), ca.into()], key.serialize_der())
    }
}

/// A small HTTPS site on 127.0.0.1, one HTTP/1.1 request per connection; stops when
/// dropped. Its certificate, from `ca`, names the IP address `named`.
struct Site {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Site {
    async fn start(ca: &TestCa, named: &str) -> Site {
        let (chain, key) = ca.server(named);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()))
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                // Each connection ends with its answer or after 10 s (chromium opens
                // speculative connections that never send a request).
                tokio::spawn(tokio::time::timeout(Duration::from_secs(10), async move {
                    let mut tls = acceptor.accept(tcp).await.ok()?;
                    let request = read_request(&mut tls).await?;
                    tls.write_all(&answer(&request)).await.ok()?;
                    tls.shutdown().await.ok()
                }));
            }
        });
        Site { port, task }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

/// One request: head (at most 16 KiB) and a `Content-Length` body (at most 1 MiB).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Request> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&data, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 || data.len() > 16 * 1024 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut request = Request {
        method,
        path,
        headers,
        body: data[head_end + 4..].to_vec(),
    };
    let length: usize = request.header("content-length").parse().unwrap_or(0);
    if length > 1 << 20 {
        return None;
    }
    while request.body.len() < length {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        request.body.extend_from_slice(&buf[..n]);
    }
    Some(request)
}

/// The contents of the download.
const REPORT: &str = "certraft report\nline two\n";

/// The site's pages.
fn answer(r: &Request) -> Vec<u8> {
    let html = |title: &str, body: &str| {
        format!(
            "<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head><body>{body}</body></html>"
        )
    };
    let (status, extra, content_type, body) = match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/form") => (
            "200 OK",
            String::new(),
            "text/html; charset=utf-8",
            html(
                "Form",
                "<form method=post action=/submit enctype=multipart/form-data>\
                 <label>Note <input id=note name=note value=prefilled></label>\
                 <label>File <input id=file name=upload type=file></label>\
                 <button id=send type=submit>Send</button></form>",
            ),
        ),
        ("POST", "/submit") => {
            let parts = multipart(r.header("content-type"), &r.body);
            let mut body = String::from("<dl>");
            for (name, file_name, content) in parts {
                let content = escape(&String::from_utf8_lossy(&content));
                match file_name {
                    Some(f) => body.push_str(&format!(
                        "<dt>{name}</dt><dd id=got-{name}-name>{}</dd><dd id=got-{name}-body><pre>{content}</pre></dd>",
                        escape(&f)
                    )),
                    None => body.push_str(&format!("<dt>{name}</dt><dd id=got-{name}>{content}</dd>")),
                }
            }
            body.push_str("</dl>");
            (
                "200 OK",
                String::new(),
                "text/html; charset=utf-8",
                html("Received", &body),
            )
        }
        ("GET", "/cookie") => (
            "200 OK",
            "Set-Cookie: certraft_session=s3cr3t; Path=/; Secure; HttpOnly; SameSite=Strict\r\n"
                .to_string(),
            "text/html; charset=utf-8",
            html("Cookie set", "<p>set</p>"),
        ),
        ("GET", "/echo-cookies") => (
            "200 OK",
            String::new(),
            "text/html; charset=utf-8",
            html(
                "Cookies",
                &format!("<pre id=cookies>{}</pre>", escape(r.header("cookie"))),
            ),
        ),
        ("GET", "/download") => (
            "200 OK",
            "Content-Disposition: attachment; filename=\"report.txt\"\r\n".to_string(),
            "text/plain",
            REPORT.to_string(),
        ),
        ("GET", "/keys") => (
            "200 OK",
            String::new(),
            "text/html; charset=utf-8",
            html(
                "Keys",
                "<a id=first href=/landed?via=first>First</a> \
                 <a id=second href=/landed?via=second>Second</a>",
            ),
        ),
        ("GET", p) if p.starts_with("/landed") => (
            "200 OK",
            String::new(),
            "text/html; charset=utf-8",
            html("Landed", "<p id=landed>landed</p>"),
        ),
        _ => (
            "404 Not Found",
            String::new(),
            "text/plain",
            "not found".to_string(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The parts of a `multipart/form-data` body: (name, file name, contents).
fn multipart(content_type: &str, body: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    let Some((_, boundary)) = content_type.split_once("boundary=") else {
        return Vec::new();
    };
    let delimiter = format!("--{}", boundary.trim_matches('"'));
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let Some(end) = find(rest, delimiter.as_bytes()) else {
            break;
        };
        let part = rest[..end].strip_prefix(b"\r\n").unwrap_or(&rest[..end]);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let param = |key: &str| {
            let at = head.find(&format!("{key}=\""))? + key.len() + 2;
            let len = head[at..].find('"')?;
            Some(head[at..at + len].to_string())
        };
        // `name=` also ends `filename=`: look for the name as its own parameter.
        let name = param("; name").unwrap_or_default();
        parts.push((name, param("filename"), part[split + 4..].to_vec()));
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The width and height of a PNG file, after checking its signature.
fn png_size(path: &Path) -> (u32, u32) {
    let png = std::fs::read(path).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    // The IHDR chunk comes first: length, "IHDR", width, height.
    assert_eq!(&png[12..16], b"IHDR");
    (be(16), be(20))
}

/// Processes whose command line mentions `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

/// A fresh directory for the browser's screenshots, downloads and log, kept after the test
/// for a look at what it saw.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser_harness");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A browser told to trust the test CA fills and submits a form with a file upload, keeps
/// and sends cookies, downloads an attachment, is driven by the keyboard alone, takes
/// screenshots at two widths, and still refuses a server the CA did not sign or that its
/// certificate does not name; a missing or bad selector is an error naming it and the
/// page. Once the browser is dropped no chromium process is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_trusting_the_test_ca_drives_a_site_and_leaves_no_process() {
    let started = Instant::now();
    let ca = TestCa::new("certraft browser test CA");
    let site = Site::start(&ca, "127.0.0.1").await;
    let misnamed = Site::start(&ca, "127.0.0.2").await;
    let stranger = Site::start(&TestCa::new("a CA the browser does not trust"), "127.0.0.1").await;
    let out = out_dir();
    let Some(b) = Browser::start_trusting(&out, &ca.pem).await else {
        return;
    };
    eprintln!(
        "chromium {} up in {:?}; artifacts in {}",
        b.version(),
        started.elapsed(),
        out.display()
    );

    // The form: a text field cleared and typed into, a file uploaded, the echo read back.
    b.goto(&site.url("/form")).await;
    assert_eq!(b.title().await, "Form");
    let note = b.find("#note").await;
    assert_eq!(note.property("value").await, "prefilled");
    assert_eq!(note.attr("name").await.as_deref(), Some("note"));
    assert_eq!(note.attr("placeholder").await, None);
    note.clear().await;
    let typed = "héllo <wörld> & \"friends\"";
    note.send_keys(typed).await;
    assert_eq!(note.property("value").await, typed);
    let upload = out.join("upload.txt");
    std::fs::write(&upload, "line one\nline twö\n").unwrap();
    b.find("#file")
        .await
        .send_keys(upload.to_str().unwrap())
        .await;
    let wide = b.screenshot("form-wide").await;
    b.find("#send").await.click().await;
    assert_eq!(b.find("#got-note").await.text().await, typed);
    assert_eq!(b.find("#got-upload-name").await.text().await, "upload.txt");
    assert_eq!(
        b.find("#got-upload-body").await.text().await,
        "line one\nline twö"
    );
    assert_eq!(b.title().await, "Received");
    assert!(b.page_source().await.contains("<dl>"));
    let inner = b.execute("return window.innerWidth;", &[]).await;
    assert_eq!(png_size(&wide).0, inner.as_u64().unwrap() as u32);
    assert_eq!(png_size(&wide).0, 1280);

    // Cookies: one the server sets (HttpOnly), one the test adds; both reach the server.
    b.goto(&site.url("/cookie")).await;
    let session = b
        .cookie("certraft_session")
        .await
        .expect("the server's cookie");
    assert_eq!(session.value, "s3cr3t");
    assert_eq!(session.http_only, Some(true));
    assert_eq!(session.secure, Some(true));
    assert_eq!(session.same_site.as_deref(), Some("Strict"));
    b.add_cookie(&Cookie::new("added", "by-the-test")).await;
    b.goto(&site.url("/echo-cookies")).await;
    let sent = b.find("#cookies").await.text().await;
    assert!(sent.contains("certraft_session=s3cr3t"), "{sent}");
    assert!(sent.contains("added=by-the-test"), "{sent}");
    b.delete_cookies().await;
    assert_eq!(b.cookies().await, Vec::new());
    b.goto(&site.url("/echo-cookies")).await;
    assert_eq!(b.find("#cookies").await.text().await, "");

    // A download lands in the downloads dir.
    b.goto(&site.url("/download")).await;
    let report = b
        .wait_for_download("report.txt", Duration::from_secs(10))
        .await;
    assert_eq!(std::fs::read_to_string(&report).unwrap(), REPORT);

    // The keyboard alone: Tab to the first link, Tab to the second, Enter follows it.
    b.goto(&site.url("/keys")).await;
    b.keys(keys::TAB).await;
    assert_eq!(b.active().await.attr("id").await.as_deref(), Some("first"));
    b.keys(keys::TAB).await;
    assert_eq!(b.active().await.attr("id").await.as_deref(), Some("second"));
    b.keys(keys::ENTER).await;
    let landed = b
        .wait_for(
            "the second link's page",
            Duration::from_secs(10),
            || async {
                let url = b.url().await;
                if url.ends_with("/landed?via=second") {
                    Ok(url)
                } else {
                    Err(format!("at {url}"))
                }
            },
        )
        .await;
    assert_eq!(landed, site.url("/landed?via=second"));

    // A narrow window: the page lays out at 480 px and the screenshot is that wide.
    b.set_window_size(480, 800).await;
    b.goto(&site.url("/form")).await;
    assert_eq!(
        b.execute("return window.innerWidth;", &[]).await,
        serde_json::json!(480)
    );
    let narrow = b.screenshot("form-narrow").await;
    assert_eq!(png_size(&narrow).0, 480);

    // What must fail does: a server the CA did not sign, a name the certificate does not
    // hold, a selector that matches nothing, a selector that is not CSS.
    let refused = b.try_goto(&stranger.url("/form")).await.unwrap_err();
    assert!(refused.contains("ERR_CERT_AUTHORITY_INVALID"), "{refused}");
    let refused = b.try_goto(&misnamed.url("/form")).await.unwrap_err();
    assert!(
        refused.contains("ERR_CERT_COMMON_NAME_INVALID"),
        "{refused}"
    );
    b.goto(&site.url("/form")).await;
    let missing = b
        .try_find("#nope", Duration::from_millis(300))
        .await
        .err()
        .expect("no element #nope");
    assert!(missing.contains("`#nope`"), "{missing}");
    assert!(missing.contains(&site.url("/form")), "{missing}");
    let bad = b
        .try_find("[[", Duration::from_secs(10))
        .await
        .err()
        .expect("`[[` is not CSS");
    assert!(bad.contains("invalid selector"), "{bad}");

    // Nothing outlives the browser.
    let profile = b.profile_dir().to_string_lossy().into_owned();
    assert!(
        !processes_naming(&profile).is_empty(),
        "chromium names its profile"
    );
    drop(b);
    poll_blocking(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || match processes_naming(&profile) {
            left if left.is_empty() => Ok(()),
            left => Err(format!("{left:#?}")),
        },
    )
    .unwrap_or_else(|left| panic!("processes left after the browser was dropped: {left}"));
    eprintln!("browser harness test took {:?}", started.elapsed());
}
