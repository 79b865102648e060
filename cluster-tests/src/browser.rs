//! A real browser for tests of the web console: Debian's headless `chromium` driven by
//! `chromedriver` over the W3C WebDriver protocol, with a small client of our own over
//! reqwest (no WebDriver crate).
//!
//! [`Browser::start`] spawns `chromedriver --port=N` on a free loopback port, in a process
//! group of its own, waits until `/status` says it is ready and opens a session: headless
//! chromium with a fresh profile in a temp dir, `acceptInsecureCerts: false`, downloads
//! going to `OUT_DIR/downloads` without a prompt. Dropping the [`Browser`] deletes the
//! session (chromedriver quits chromium) and kills the group, so no process outlives a test.
//!
//! **Trust.** The browser trusts the public roots chromium ships and nothing else: its
//! `HOME` is a temp dir, so no NSS database of the user running the tests takes part.
//! [`Browser::start_trusting`] adds a CA the way a Linux user would: `certutil` (Debian
//! `libnss3-tools`) creates the NSS database chromium reads, `$HOME/.pki/nssdb`, and adds
//! each certificate of the PEM as a trusted CA (`-t C,,`). The server's chain is then
//! verified as in production: names, validity and key usage included. (The alternative,
//! `--ignore-certificate-errors-spki-list`, pins a key and skips verification; it is not
//! used.)
//!
//! What this chromium (156, Debian bookworm-security) and its chromedriver do, as found by
//! `tests/browser_harness.rs`:
//!
//! - Navigating to a server whose certificate does not verify is *not* a WebDriver error
//!   (the spec's `insecure certificate`): the navigation "succeeds" onto chromium's error
//!   page (`chrome-error://chromewebdata/`, title "Privacy error"). [`Browser::goto`] checks
//!   for that page and panics with the error code the page shows
//!   (`net::ERR_CERT_AUTHORITY_INVALID`, ...); [`Browser::try_goto`] returns it. The error
//!   page for a name the certificate does not hold (`net::ERR_CERT_COMMON_NAME_INVALID`)
//!   comes about 3 s late (chromium's SSL error handler waits before showing it).
//! - The `download.default_directory` preference alone makes downloads land there in
//!   `--headless=new`; no CDP call is needed. A download is written as `NAME.crdownload`
//!   and renamed when complete ([`Browser::wait_for_download`]).
//! - Window sizes down to 480 px wide are honoured; the viewport is the window's width, and
//!   its height less what chromium reserves for its (invisible) window decorations.
//! - chromium starts `chrome_crashpad_handler` processes in sessions of their own; they end
//!   with the browser when the session is deleted (and init reaps them a moment later).
//! - chromedriver keeps an HTTP connection open after its answer even when asked to close.
//! - `/usr/bin/chromium` is Debian's shell wrapper (it adds flags from `/etc/chromium.d`);
//!   its `[: ...: unexpected operator` line and chromium's D-Bus complaints in the log are
//!   harmless.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::logs::Tail;
use crate::ports::free_port;
use crate::process::poll;

/// How long chromedriver gets to answer `/status` as ready.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How often conditions are looked at while waiting.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How often [`Browser::start`] picks a new port when another process took it first.
const START_ATTEMPTS: usize = 3;
/// How long [`Browser::find`] waits for a selector to match, unless changed with
/// [`Browser::set_find_limit`].
const FIND_LIMIT: Duration = Duration::from_secs(10);
/// How long a page load may take (the session's `pageLoad` timeout).
const PAGE_LOAD_LIMIT: Duration = Duration::from_secs(30);
/// How long a script may run (the session's `script` timeout).
const SCRIPT_LIMIT: Duration = Duration::from_secs(10);
/// How long one WebDriver command may take end to end (more than a page load).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// The key under which WebDriver names an element (W3C "web element identifier").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WebDriver key codes for [`Element::send_keys`] and [`Browser::keys`] (W3C WebDriver,
/// "Keyboard actions"); plain characters are typed as they are.
pub mod keys {
    pub const BACKSPACE: &str = "\u{E003}";
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
    pub const SHIFT: &str = "\u{E008}";
    pub const ESCAPE: &str = "\u{E00C}";
    pub const SPACE: &str = "\u{E00D}";
    pub const ARROW_LEFT: &str = "\u{E012}";
    pub const ARROW_UP: &str = "\u{E013}";
    pub const ARROW_RIGHT: &str = "\u{E014}";
    pub const ARROW_DOWN: &str = "\u{E015}";
}

/// An error the driver answered (`{"value":{"error":..,"message":..}}`), or why no answer
/// came, with the command that got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverError {
    /// `METHOD /path` of the command, relative to the session.
    pub command: String,
    /// The W3C error code (`no such element`, `invalid selector`, ...), or `transport` /
    /// `invalid response` when the driver gave no WebDriver answer.
    pub error: String,
    pub message: String,
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // chromedriver appends a long native stack trace after the first line of the message.
        let message = self.message.lines().next().unwrap_or_default();
        write!(f, "{}: {}: {message}", self.command, self.error)
    }
}

impl std::error::Error for DriverError {}

/// A cookie as WebDriver shows it (and takes it in [`Browser::add_cookie`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// `Strict`, `Lax` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// Unix seconds; `None` for a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<u64>,
}

impl Cookie {
    /// A cookie for the current page's host and path `/`, otherwise the browser's defaults.
    pub fn new(name: &str, value: &str) -> Cookie {
        Cookie {
            name: name.into(),
            value: value.into(),
            path: Some("/".into()),
            ..Cookie::default()
        }
    }
}

/// A headless chromium under chromedriver, with one WebDriver session. Dropping it deletes
/// the session and kills chromedriver and whatever chromium processes are left.
pub struct Browser {
    /// `HOME` (with the NSS database) and the chromium profile.
    dir: tempfile::TempDir,
    out_dir: PathBuf,
    port: u16,
    session: String,
    version: String,
    http: reqwest::Client,
    chromedriver: Mutex<Option<Child>>,
    find_limit: Mutex<Duration>,
}

impl Browser {
    /// Starts chromedriver and a headless chromium session that trusts chromium's own public
    /// roots only (see [`Browser::start_trusting`] for a test CA). Screenshots go to
    /// `out_dir/screenshots`, downloads to `out_dir/downloads`, and chromedriver's and
    /// chromium's output to `out_dir/chromedriver.log`; pass a dir that outlives the test
    /// (e.g. under `CARGO_TARGET_TMPDIR`) to look at them after a failure.
    ///
    /// `None` (with the reason on stderr) when `chromium` or `chromedriver` is not
    /// installed, except under `CI=true`, where that panics. Panics with the log when the
    /// driver or the session does not come up.
    pub async fn start(out_dir: &Path) -> Option<Browser> {
        Browser::launch(out_dir, None).await
    }

    /// [`Browser::start`] with the certificates of `ca_pem` (one or more, PEM) trusted as
    /// CAs for TLS servers, in the NSS database chromium reads (made with `certutil`, which
    /// is then needed too). `acceptInsecureCerts` stays false: a server whose chain does not
    /// lead to one of them, or that the chain does not name, gets chromium's error page.
    pub async fn start_trusting(out_dir: &Path, ca_pem: &str) -> Option<Browser> {
        Browser::launch(out_dir, Some(ca_pem)).await
    }

    async fn launch(out_dir: &Path, ca_pem: Option<&str>) -> Option<Browser> {
        let tools = match Tools::find(ca_pem.is_some()) {
            Ok(found) => found,
            Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("browser: CI=true needs the browser tests to run, but {why}")
            }
            Err(why) => {
                eprintln!("browser: skipped: {why}");
                return None;
            }
        };
        for sub in ["screenshots", "downloads"] {
            let dir = out_dir.join(sub);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("browser: create {}: {e}", dir.display()));
        }
        let out_dir = std::fs::canonicalize(out_dir)
            .unwrap_or_else(|e| panic!("browser: {}: {e}", out_dir.display()));
        let dir = tempfile::Builder::new()
            .prefix("browser-")
            .tempdir()
            .expect("create a temp dir for the browser");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("create the browser's HOME");
        if let (Some(pem), Some(certutil)) = (ca_pem, &tools.certutil) {
            trust_in_nss(certutil, &home, pem);
        }
        let log_path = out_dir.join("chromedriver.log");
        let http = driver_client();
        let mut attempt = 1;
        let (port, child) = loop {
            let port = free_port();
            let child = spawn_chromedriver(&tools.chromedriver, port, dir.path(), &log_path);
            let child = Mutex::new(Some(child));
            match wait_ready(&http, port, &child).await {
                Ok(()) => break (port, child),
                Err(why) => {
                    kill_group(&child);
                    let log = read_log(&log_path);
                    if attempt < START_ATTEMPTS && log.contains("ddress already in use") {
                        eprintln!("browser: port {port} was taken, starting chromedriver again");
                        attempt += 1;
                        continue;
                    }
                    panic!(
                        "browser: chromedriver did not come up: {why}\n{}",
                        Tail::of(&log, 40).render("chromedriver")
                    );
                }
            }
        };
        let capabilities = capabilities(&tools.chromium, dir.path(), &out_dir);
        let created = command_at(&http, port, "POST", "/session", Some(capabilities)).await;
        let value = match created {
            Ok(value) => value,
            Err(e) => {
                kill_group(&child);
                panic!(
                    "browser: chromium did not start: {e}\n{}",
                    Tail::of(&read_log(&log_path), 40).render("chromedriver")
                );
            }
        };
        let session = value["sessionId"].as_str().unwrap_or_default().to_string();
        let version = value["capabilities"]["browserVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Some(Browser {
            dir,
            out_dir,
            port,
            session,
            version,
            http,
            chromedriver: child,
            find_limit: Mutex::new(FIND_LIMIT),
        })
    }

    /// chromium's version, as the session reports it (`156.0.8078.114`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The directory given to [`Browser::start`] (made absolute).
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// chromium's profile (`--user-data-dir`), in a temp dir removed on drop; every
    /// chromium process names it on its command line.
    pub fn profile_dir(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// chromedriver's process id, which is also its process group's (chromium's included).
    pub fn chromedriver_pid(&self) -> Option<u32> {
        lock(&self.chromedriver).as_ref().map(Child::id)
    }

    /// Where downloads land: `out_dir/downloads`.
    pub fn downloads_dir(&self) -> PathBuf {
        self.out_dir.join("downloads")
    }

    /// How long [`Browser::find`] and [`Browser::active`] wait (10 s unless changed).
    pub fn set_find_limit(&self, limit: Duration) {
        *lock(&self.find_limit) = limit;
    }

    /// The last lines chromedriver and chromium wrote, for failure messages, less chromium's
    /// complaints that there is no D-Bus (there never is in a container).
    pub fn log(&self) -> String {
        let log = read_log(&self.out_dir.join("chromedriver.log"));
        let kept: Vec<&str> = log.lines().filter(|l| !l.contains("dbus")).collect();
        Tail::of(&kept.join("\n"), 40).render("chromedriver")
    }

    // ---- commands ---------------------------------------------------------------------------

    /// Sends one WebDriver command of this session (`path` relative to
    /// `/session/{id}`, e.g. `/url`) and returns its `value`. `body` `None` sends `{}` for a
    /// POST. The way to anything this module does not wrap.
    pub async fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DriverError> {
        let full = format!("/session/{}{path}", self.session);
        command_at(&self.http, self.port, method, &full, body)
            .await
            .map_err(|mut e| {
                e.command = format!("{method} {path}");
                e
            })
    }

    /// [`Browser::command`], panicking with the error, the page's URL and the log.
    async fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.command(method, path, body).await {
            Ok(v) => v,
            Err(e) => {
                let at = self.command("GET", "/url", None).await;
                let at = at.ok().and_then(|v| v.as_str().map(str::to_string));
                panic!(
                    "browser: {e} (page: {})\n{}",
                    at.as_deref().unwrap_or("?"),
                    self.log()
                )
            }
        }
    }

    // ---- navigation and the page ------------------------------------------------------------

    /// Loads `url` and waits for it (at most 30 s); panics when the driver fails or chromium
    /// shows its error page instead (certificate not trusted, connection refused, ...).
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.try_goto(url).await {
            panic!("browser: {e}\n{}", self.log());
        }
    }

    /// [`Browser::goto`] that returns what went wrong: the driver's error, or chromium's
    /// error page with the code it shows (`net::ERR_CERT_AUTHORITY_INVALID`,
    /// `ERR_CONNECTION_REFUSED`, ...).
    pub async fn try_goto(&self, url: &str) -> Result<(), String> {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await
            .map_err(|e| e.to_string())?;
        // The driver's `/url` answers the URL asked for even when chromium shows its error
        // page instead; the document knows where it is.
        let shown = self
            .execute(
                "const c = document.querySelector('.error-code, #error-code');\
                 return [location.href, document.title, c ? c.textContent.trim() : ''];",
                &[],
            )
            .await;
        let shown: Vec<&str> = (0..3)
            .map(|i| shown[i].as_str().unwrap_or_default())
            .collect();
        if shown[0].starts_with("chrome-error://") {
            return Err(format!(
                "GET {url}: chromium shows its error page \"{}\": {}",
                shown[1], shown[2]
            ));
        }
        Ok(())
    }

    /// The current page's URL (the driver's answer: on chromium's error page, the URL that
    /// failed).
    pub async fn url(&self) -> String {
        let v = self.must("GET", "/url", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The current page's title.
    pub async fn title(&self) -> String {
        let v = self.must("GET", "/title", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The current DOM serialized as HTML.
    pub async fn page_source(&self) -> String {
        let v = self.must("GET", "/source", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` as the body of a function (synchronously: its `return` value is the
    /// answer) with `args` as `arguments`; elements go in as [`Element::to_json`] and come
    /// back as `{"element-6066-…": id}`.
    pub async fn execute(&self, script: &str, args: &[Value]) -> Value {
        let body = json!({ "script": script, "args": args });
        self.must("POST", "/execute/sync", Some(body)).await
    }

    /// Resizes the window (`innerWidth` becomes `width`).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        let body = json!({ "width": width, "height": height });
        self.must("POST", "/window/rect", Some(body)).await;
    }

    /// Types `keys` into whatever has the focus, as a keyboard user would: one key down and
    /// up per character, [`keys`] codes included (`keys::TAB`, `keys::ENTER`).
    pub async fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                let c = c.to_string();
                [
                    json!({ "type": "keyDown", "value": c }),
                    json!({ "type": "keyUp", "value": c }),
                ]
            })
            .collect();
        let body = json!({
            "actions": [{ "type": "key", "id": "keyboard", "actions": actions }]
        });
        self.must("POST", "/actions", Some(body)).await;
        self.must("DELETE", "/actions", None).await;
    }

    // ---- elements ---------------------------------------------------------------------------

    /// The first element matching the CSS selector `css`, waiting for one to appear (10 s
    /// unless [`Browser::set_find_limit`]); panics naming the selector and the page.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let limit = *lock(&self.find_limit);
        match self.try_find(css, limit).await {
            Ok(e) => e,
            Err(e) => panic!("browser: {e}\n{}", self.log()),
        }
    }

    /// [`Browser::find`] with its own limit, returning what went wrong: no match in time, or
    /// at once an error that waiting does not cure (`invalid selector`).
    pub async fn try_find(&self, css: &str, limit: Duration) -> Result<Element<'_>, String> {
        let body = json!({ "using": "css selector", "value": css });
        let found = poll(limit, POLL_EVERY, || async {
            match self.command("POST", "/element", Some(body.clone())).await {
                Ok(v) => Ok(Ok(v)),
                Err(e) if e.error == "no such element" => Err(e.to_string()),
                Err(e) => Ok(Err(e)),
            }
        })
        .await;
        let why = match found {
            Ok(Ok(v)) => return Ok(self.element(&v, css)),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("nothing matched after {limit:?}"),
        };
        let url = self.command("GET", "/url", None).await;
        let url = url.ok().and_then(|v| v.as_str().map(str::to_string));
        Err(format!(
            "no element `{css}` on {}: {why}",
            url.as_deref().unwrap_or("?")
        ))
    }

    /// Every element matching `css` now (no waiting; empty when none does).
    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let body = json!({ "using": "css selector", "value": css });
        let v = self.must("POST", "/elements", Some(body)).await;
        let list = v.as_array().cloned().unwrap_or_default();
        list.iter().map(|v| self.element(v, css)).collect()
    }

    /// The element that has the focus (`document.activeElement`).
    pub async fn active(&self) -> Element<'_> {
        let v = self.must("GET", "/element/active", None).await;
        self.element(&v, ":focus")
    }

    fn element(&self, v: &Value, css: &str) -> Element<'_> {
        let id = v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("browser: the driver answered {v} for an element `{css}`"));
        Element {
            browser: self,
            id: id.to_string(),
            css: css.to_string(),
        }
    }

    // ---- cookies ----------------------------------------------------------------------------

    /// The cookies visible to the current page (HttpOnly ones included).
    pub async fn cookies(&self) -> Vec<Cookie> {
        let v = self.must("GET", "/cookie", None).await;
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("browser: cookies {v}: {e}"))
    }

    /// The current page's cookie called `name`.
    pub async fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().await.into_iter().find(|c| c.name == name)
    }

    /// Adds a cookie for the current page's host (a page of it must be loaded).
    pub async fn add_cookie(&self, cookie: &Cookie) {
        let body = json!({ "cookie": cookie });
        self.must("POST", "/cookie", Some(body)).await;
    }

    /// Deletes every cookie of the current page's host.
    pub async fn delete_cookies(&self) {
        self.must("DELETE", "/cookie", None).await;
    }

    // ---- artifacts --------------------------------------------------------------------------

    /// Saves a PNG of the viewport as `out_dir/screenshots/NAME.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        assert!(
            !name.is_empty() && !name.contains(['/', '\\']) && name != "..",
            "browser: screenshot name {name:?} must be a plain file name"
        );
        let v = self.must("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("browser: screenshot {name}: not base64: {e}"));
        let path = self.out_dir.join("screenshots").join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Waits (at most `limit`) until the download `file_name` is complete in
    /// [`Browser::downloads_dir`] (chromium renames `NAME.crdownload` when done) and returns
    /// its path.
    pub async fn wait_for_download(&self, file_name: &str, limit: Duration) -> PathBuf {
        let path = self.downloads_dir().join(file_name);
        let partial = self.downloads_dir().join(format!("{file_name}.crdownload"));
        self.wait_for(&format!("the download {file_name}"), limit, || async {
            if path.is_file() && !partial.exists() {
                Ok(path.clone())
            } else {
                let there: Vec<String> = std::fs::read_dir(self.downloads_dir())
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                Err(format!(
                    "{} holds {there:?}",
                    self.downloads_dir().display()
                ))
            }
        })
        .await
    }

    /// Looks at `probe` every 50 ms until it answers `Ok`, for at most `limit`; panics with
    /// `what`, the last thing it said and the page's URL when the time is up.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        match poll(limit, POLL_EVERY, probe).await {
            Ok(v) => v,
            Err(last) => {
                let url = self.command("GET", "/url", None).await;
                let url = url.ok().and_then(|v| v.as_str().map(str::to_string));
                panic!(
                    "browser: waited {limit:?} for {what} (page: {}): {last}\n{}",
                    url.as_deref().unwrap_or("?"),
                    self.log()
                )
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver quits chromium (and its crashpad handlers) when the session goes;
        // then the group is killed for whatever is left. Never panics: it runs during
        // unwinding too.
        let path = format!("/session/{}", self.session);
        if let Err(e) = blocking_delete(self.port, &path) {
            eprintln!("browser: DELETE {path}: {e}; killing chromedriver's process group");
        }
        kill_group(&self.chromedriver);
    }
}

/// An element of the current page, found by a selector.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    css: String,
}

impl Element<'_> {
    /// Clicks it (scrolling it into view first); panics when it cannot be clicked.
    pub async fn click(&self) {
        self.must("POST", "click", None).await;
    }

    /// Types `text` into it (focusing it first); [`keys`] codes are keys. For an
    /// `<input type=file>`, `text` is the absolute path of the file to upload.
    pub async fn send_keys(&self, text: &str) {
        self.must("POST", "value", Some(json!({ "text": text })))
            .await;
    }

    /// Empties an input or textarea.
    pub async fn clear(&self) {
        self.must("POST", "clear", None).await;
    }

    /// Its rendered text (`innerText`, whitespace as shown).
    pub async fn text(&self) -> String {
        let v = self.must("GET", "text", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The attribute `name`, `None` when it has none.
    pub async fn attr(&self, name: &str) -> Option<String> {
        let v = self.must("GET", &format!("attribute/{name}"), None).await;
        v.as_str().map(str::to_string)
    }

    /// The DOM property `name` (an input's current `value`, `checked`, ...).
    pub async fn property(&self, name: &str) -> Value {
        self.must("GET", &format!("property/{name}"), None).await
    }

    /// The element as a script argument for [`Browser::execute`].
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    async fn must(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let path = format!("/element/{}/{what}", self.id);
        match self.browser.command(method, &path, body).await {
            Ok(v) => v,
            Err(e) => panic!(
                "browser: element `{}`: {e} (page: {})\n{}",
                self.css,
                self.browser.url().await,
                self.browser.log()
            ),
        }
    }
}

// ---- the processes --------------------------------------------------------------------------

/// The programs found on `PATH` (or in `/usr/bin`).
struct Tools {
    chromedriver: PathBuf,
    chromium: PathBuf,
    certutil: Option<PathBuf>,
}

impl Tools {
    /// The programs, or what is missing and how to get it.
    fn find(certutil: bool) -> Result<Tools, String> {
        let find = |name: &str, package: &str| -> Result<PathBuf, String> {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/bin")])
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| format!("{name} is not installed (apt-get install {package})"))
        };
        Ok(Tools {
            chromedriver: find("chromedriver", "chromium-driver")?,
            chromium: find("chromium", "chromium")?,
            certutil: if certutil {
                Some(find("certutil", "libnss3-tools")?)
            } else {
                None
            },
        })
    }
}

/// Creates `$home/.pki/nssdb` (the NSS database chromium reads on Linux) and adds every
/// certificate of `ca_pem` to it as a CA trusted for TLS servers.
fn trust_in_nss(certutil: &Path, home: &Path, ca_pem: &str) {
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).expect("create the NSS database's directory");
    let db = format!("sql:{}", nssdb.display());
    let run = |args: &[&str]| {
        let out = Command::new(certutil)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("browser: run {}: {e}", certutil.display()));
        assert!(
            out.status.success(),
            "browser: certutil {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-N", "-d", &db, "--empty-password"]);
    let certs = pem::parse_many(ca_pem)
        .unwrap_or_else(|e| panic!("browser: the CA to trust is not PEM: {e}"));
    let certs: Vec<_> = certs.iter().filter(|p| p.tag() == "CERTIFICATE").collect();
    assert!(
        !certs.is_empty(),
        "browser: the CA to trust holds no CERTIFICATE block"
    );
    for (i, cert) in certs.iter().enumerate() {
        let file = home.join(format!("ca-{i}.pem"));
        std::fs::write(&file, pem::encode(cert)).expect("write a CA certificate for certutil");
        let file = file.to_string_lossy().into_owned();
        let name = format!("certraft-test-ca-{i}");
        run(&["-A", "-d", &db, "-n", &name, "-t", "C,,", "-i", &file]);
    }
}

/// Starts `chromedriver --port=PORT` in a process group of its own (which chromium joins),
/// with `HOME` and the XDG dirs in `dir`, its output and chromium's appended to `log`.
fn spawn_chromedriver(bin: &Path, port: u16, dir: &Path, log: &Path) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("browser: open {}: {e}", log.display()));
    let stderr = file.try_clone().expect("clone the log file handle");
    let home = dir.join("home");
    Command::new(bin)
        .arg(format!("--port={port}"))
        .arg("--enable-chrome-logs")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("browser: spawn {}: {e}", bin.display()))
}

/// Waits until chromedriver's `/status` says `ready`, or it exits.
async fn wait_ready(
    http: &reqwest::Client,
    port: u16,
    child: &Mutex<Option<Child>>,
) -> Result<(), String> {
    let ready = poll(START_LIMIT, POLL_EVERY, || async {
        if let Some(Some(status)) = lock(child).as_mut().map(|c| c.try_wait().ok().flatten()) {
            return Ok(Err(format!("chromedriver exited ({status})")));
        }
        let v = command_at(http, port, "GET", "/status", None)
            .await
            .map_err(|e| e.to_string())?;
        if v["ready"] == json!(true) {
            Ok(Ok(()))
        } else {
            Err(format!("/status: {v}"))
        }
    })
    .await;
    match ready {
        Ok(r) => r,
        Err(last) => Err(format!("not ready after {START_LIMIT:?}: {last}")),
    }
}

/// SIGKILL to the whole process group of chromedriver (chromium included), then reaps it.
fn kill_group(child: &Mutex<Option<Child>>) {
    if let Some(mut c) = lock(child).take() {
        // The group's id is chromedriver's pid (`process_group(0)`); it outlives a
        // chromedriver that exited while a member still runs.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", c.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The new-session capabilities: headless chromium with a fresh profile in `dir`, no
/// insecure certificates, downloads into `out_dir/downloads` without asking.
fn capabilities(chromium: &Path, dir: &Path, out_dir: &Path) -> Value {
    let profile = dir.join("profile");
    json!({
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": false,
                "pageLoadStrategy": "normal",
                "timeouts": {
                    "implicit": 0,
                    "pageLoad": PAGE_LOAD_LIMIT.as_millis() as u64,
                    "script": SCRIPT_LIMIT.as_millis() as u64,
                },
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new",
                        // The tests run as root, where chromium's sandbox refuses to start.
                        "--no-sandbox",
                        "--disable-gpu",
                        // Containers often have a tiny /dev/shm.
                        "--disable-dev-shm-usage",
                        "--window-size=1280,800",
                        "--no-first-run",
                        "--no-default-browser-check",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--password-store=basic",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                    "prefs": {
                        "download.default_directory": out_dir.join("downloads"),
                        "download.prompt_for_download": false,
                        "download.directory_upgrade": true,
                        "safebrowsing.enabled": false,
                    },
                },
            },
        },
    })
}

// ---- the wire -------------------------------------------------------------------------------

/// A client for chromedriver's plain-HTTP loopback port (rustls configured only because
/// reqwest wants a TLS config; no proxy).
fn driver_client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .timeout(COMMAND_LIMIT)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("build the WebDriver client")
}

/// One WebDriver command to `http://127.0.0.1:PORT{path}`: its `value`, or the error in it.
async fn command_at(
    http: &reqwest::Client,
    port: u16,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, DriverError> {
    let command = format!("{method} {path}");
    let fail = |error: &str, message: String| DriverError {
        command: command.clone(),
        error: error.into(),
        message,
    };
    let url = format!("http://127.0.0.1:{port}{path}");
    let req = match method {
        "GET" => http.get(&url),
        "DELETE" => http.delete(&url),
        "POST" => http.post(&url).json(&body.unwrap_or_else(|| json!({}))),
        other => return Err(fail("unsupported method", other.to_string())),
    };
    let resp = req
        .send()
        .await
        .map_err(|e| fail("transport", format!("{e:?}")))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| fail("transport", format!("body: {e}")))?;
    parse_answer(status.as_u16(), &text).map_err(|(error, message)| fail(&error, message))
}

/// The `value` of a WebDriver answer, or its `(error, message)`.
fn parse_answer(status: u16, text: &str) -> Result<Value, (String, String)> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        (
            "invalid response".to_string(),
            format!("{status}: {e}: {text}"),
        )
    })?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    match value.get("error").and_then(Value::as_str) {
        Some(error) => {
            let message = value["message"].as_str().unwrap_or_default();
            Err((error.to_string(), message.to_string()))
        }
        None if (200..300).contains(&status) => Ok(value),
        None => Err(("invalid response".into(), format!("{status}: {text}"))),
    }
}

/// `DELETE path` to chromedriver without an async runtime (for `Drop`): plain HTTP/1.1 over
/// a std socket, waiting for the answer (chromedriver answers once chromium has quit).
fn blocking_delete(port: u16, path: &str) -> Result<(), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open despite `Connection: close`: read the head only.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.len() < 64 * 1024 {
        match s.read(&mut buf).map_err(|e| e.to_string())? {
            0 => break,
            n => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    match answer.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => Err(answer.lines().next().unwrap_or("no answer").to_string()),
    }
}

fn read_log(path: &Path) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::parse_answer;
    use serde_json::json;

    /// A WebDriver answer is its `value`, or the error and message in it, whatever the HTTP
    /// status; anything else names the status and the text.
    #[test]
    fn driver_answers_are_values_or_errors() {
        type Want = Result<serde_json::Value, (&'static str, &'static str)>;
        let table: &[(u16, &str, Want)] = &[
            (200, r#"{"value":null}"#, Ok(json!(null))),
            (
                200,
                r#"{"value":{"ready":true}}"#,
                Ok(json!({"ready": true})),
            ),
            (
                404,
                r#"{"value":{"error":"no such element","message":"no such element: x","stacktrace":""}}"#,
                Err(("no such element", "no such element: x")),
            ),
            (
                500,
                r#"{"value":{"error":"unknown error","message":"chrome crashed"}}"#,
                Err(("unknown error", "chrome crashed")),
            ),
            (
                500,
                r#"{"value":null}"#,
                Err(("invalid response", "500: {\"value\":null}")),
            ),
        ];
        for (status, text, want) in table {
            let got = parse_answer(*status, text);
            let want = want
                .clone()
                .map_err(|(e, m)| (e.to_string(), m.to_string()));
            assert_eq!(got, want, "{status} {text}");
        }
        let (error, message) = parse_answer(502, "Bad Gateway").unwrap_err();
        assert_eq!(error, "invalid response");
        assert!(message.starts_with("502: "), "{message}");
    }
}
