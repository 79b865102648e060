//! The web console's pages (issue 16) in a real browser: import a PKCS#12 through the form
//! with its preview, see it on another node, export it and read the download with
//! `openssl`, rotate it, make it the default, be refused its removal with the guard's
//! reason; every page visited once with a screenshot under
//! `target/tmp/ui-pages/screenshots/`. And over HTTP: what a hostile page or a broken form
//! sends is refused with a page that says why.

use std::path::Path;
use std::time::Duration;

use certraft_cluster_tests::browser::{keys, Browser};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::support::cluster::{Cluster, Options};
use crate::support::fixtures_dir;
use crate::support::uploads::fixture_passphrase;

const LIMIT: Duration = Duration::from_secs(30);

/// Waits until the browser's URL path (and query) ends with `tail`.
async fn at(b: &Browser, what: &str, tail: &str) {
    b.wait_for(what, LIMIT, || async {
        let now = b.url().await;
        if now.ends_with(tail) {
            return Ok(());
        }
        // What the page says went wrong, if anything.
        let page = b.page_source().await;
        let alert = page
            .find("role=\"alert\"")
            .map(|at| page[at..].chars().take(600).collect::<String>())
            .unwrap_or_default();
        Err(format!("{now} {alert}"))
    })
    .await;
}

/// Waits until the page's source contains `text`.
async fn shows(b: &Browser, what: &str, text: &str) -> String {
    b.wait_for(what, LIMIT, || async {
        let page = b.page_source().await;
        if page.contains(text) {
            Ok(page)
        } else {
            Err(format!("no {text:?} yet at {}", b.url().await))
        }
    })
    .await
}

/// The subject line `openssl s_client` prints for the admin port at `addr`, asked with
/// `servername` (or no SNI).
fn admin_subject(addr: &str, servername: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", addr]);
    match servername {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("no subject line")
        .to_string()
}

/// Waits until the admin port at `addr`, asked for `sni`, presents a certificate whose
/// subject line contains `subject`.
async fn presents(c: &Cluster, addr: &str, sni: &str, subject: &str) {
    let what = format!("{addr} presenting {subject:?} for {sni}");
    c.wait_for(&what, LIMIT, || async {
        let seen = admin_subject(addr, Some(sni));
        if seen.contains(subject) {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
}

/// Asserts every visible form control on the page has a label (or an `aria-label`).
async fn unlabelled(b: &Browser, path: &str) {
    let script = "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]\
        .filter(e => !(e.id && document.querySelector('label[for=\"' + e.id + '\"]')) && !e.getAttribute('aria-label'))\
        .map(e => e.name);";
    let missing = b.execute(script, &[]).await;
    assert_eq!(
        missing,
        serde_json::json!([]),
        "{path}: controls without a label"
    );
}

async fn submit(b: &Browser, form: &str) {
    b.find(&format!("{form} button[type=submit]"))
        .await
        .click()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_manages_certificates_in_a_real_browser() {
    let c = Cluster::start(3, Options::default()).await;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-pages");
    let ca_pem = pem::encode(&pem::Pem::new("CERTIFICATE", c.ca_der.clone()));
    let Some(b) = Browser::start_trusting(&out, &ca_pem).await else {
        return;
    };
    let leader = c.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let other = (0..3)
        .find(|&i| i != leader && i != follower)
        .expect("another");
    let on = |i: usize, path: &str| format!("{}{path}", c.nodes[i].admin_url());
    let fx = fixtures_dir();
    let pass = fixture_passphrase();
    let name = "ec256.example.test";

    // Sign in on a follower, by keyboard alone (the token field has the focus).
    b.goto(&on(follower, "/ui/sign-in")).await;
    b.find("#token").await;
    b.keys(&format!("{}{}", c.token.trim(), keys::ENTER)).await;
    at(&b, "the overview", "/ui").await;

    // Import a PKCS#12 with its passphrase: the preview first, then the commit.
    b.goto(&on(follower, "/ui/import")).await;
    b.screenshot("import").await;
    b.find("#files")
        .await
        .send_keys(&fx.join("ec256.p12").display().to_string())
        .await;
    b.find("#passphrase").await.send_keys(&pass).await;
    submit(&b, "form[action='/ui/import']").await;
    let preview = shows(&b, "the import preview", "Preview: ").await;
    assert!(
        preview.contains(name) && preview.contains("Chain order") && preview.contains("leaf"),
        "{preview}"
    );
    assert!(
        !preview.contains(&pass),
        "the preview echoes the passphrase"
    );
    b.screenshot("import-preview").await;
    submit(&b, "form[action='/ui/import/commit']").await;
    at(&b, "the imported certificate", "?done=imported").await;
    let detail = b.page_source().await;
    assert!(
        detail.contains("Imported.") && detail.contains("Chain (leaf first)"),
        "{detail}"
    );
    b.screenshot("certificate").await;

    // Listed on another node's console (same host, another port: the cookie goes along).
    b.goto(&on(other, "/ui")).await;
    shows(&b, "the overview on another node", "Latest changes").await;
    b.screenshot("overview").await;
    b.goto(&on(other, "/ui/certs")).await;
    shows(&b, "the certificate listed on another node", name).await;
    b.screenshot("certificates").await;
    b.goto(&on(other, "/ui/certs?q=nothing-matches-this")).await;
    shows(&b, "an empty filter", "Nothing matches.").await;

    // Export as PKCS#12 (the passphrase typed twice) and read the download with openssl.
    b.goto(&on(other, &format!("/ui/certs/{name}/export")))
        .await;
    b.screenshot("export").await;
    let export_pass = "correct horse battery staple";
    b.find("#passphrase").await.send_keys(export_pass).await;
    b.find("#passphrase2")
        .await
        .send_keys("something else entirely")
        .await;
    submit(&b, "form[action$='/export']").await;
    shows(&b, "the mismatch refused", "the two passphrases differ").await;
    b.find("#passphrase").await.send_keys(export_pass).await;
    b.find("#passphrase2").await.send_keys(export_pass).await;
    submit(&b, "form[action$='/export']").await;
    let file = b.wait_for_download(&format!("{name}.p12"), LIMIT).await;
    let read = std::process::Command::new("openssl")
        .args(["pkcs12", "-in"])
        .arg(&file)
        .args(["-passin", &format!("pass:{export_pass}"), "-nokeys"])
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success() && text.contains(name),
        "openssl read the export: {text}{}",
        String::from_utf8_lossy(&read.stderr)
    );

    // Rotate to the wildcard bundle.
    b.goto(&on(follower, &format!("/ui/certs/{name}/rotate")))
        .await;
    b.screenshot("rotate").await;
    let files = ["leaf-wild.pem", "wild.key", "inter.pem"]
        .map(|f| fx.join(f).display().to_string())
        .join("\n");
    b.find("#files").await.send_keys(&files).await;
    submit(&b, "form[action$='/rotate']").await;
    // *.wild.example.test covers neither of its names: the guard says so...
    let refused = shows(&b, "the rotation guard", "Refused: ").await;
    assert!(refused.contains("www.ec256.example.test"), "{refused}");
    b.screenshot("rotate-refused").await;
    // ...and the operator insists.
    b.find("#files").await.send_keys(&files).await;
    b.find("#force").await.click().await;
    submit(&b, "form[action$='/rotate']").await;
    at(&b, "the rotated certificate", "?done=rotated").await;
    let rotated = b.page_source().await;
    assert!(rotated.contains("*.wild.example.test"), "{rotated}");

    // Make it the default; then its removal is refused with the guard's reason.
    submit(&b, "form[action$='/default']").await;
    at(&b, "the default set", "?done=default").await;
    b.find("#confirm-remove").await.click().await;
    submit(&b, "form.remove").await;
    let refused = shows(&b, "the refused removal", "Refused: ").await;
    assert!(refused.contains("default"), "{refused}");
    b.screenshot("remove-refused").await;
    let api = c.api(leader).get("/api/v1/default").await.text;
    assert!(api.contains(name), "{api}");

    // The console's own certificate, chosen on the page: browsers asking another node's
    // admin port for wild.example.test get it; a client without that name, the node's.
    b.find("#console-hosts")
        .await
        .send_keys("wild.example.test")
        .await;
    submit(&b, "form[action$='/console']").await;
    at(&b, "the console set", "?done=console").await;
    let page = b.page_source().await;
    assert!(
        page.contains("admin port: the console certificate for wild.example.test"),
        "{page}"
    );
    b.screenshot("console").await;
    let admin = c.nodes[other].admin_url();
    let addr = admin.trim_start_matches("https://").trim_end_matches('/');
    presents(&c, addr, "wild.example.test", "wild.example.test").await;
    let plain = admin_subject(addr, None);
    assert!(plain.contains("certraft node"), "{plain}");
    // Back to the node certificate, from the same page.
    submit(&b, "form[action='/ui/console/reset']").await;
    at(&b, "the console reset", "?done=console-reset").await;
    presents(&c, addr, "wild.example.test", "certraft node").await;

    // Every other page, once, with a screenshot.
    for (path, file, text) in [
        ("/ui/nodes", "nodes", "Add a node"),
        ("/ui/audit", "audit", "Audit log"),
        ("/ui/backup", "backup", "Create a backup"),
        ("/ui/csrs", "csrs", "New request"),
        ("/ui/issuers", "issuers", "Issue a certificate"),
    ] {
        b.goto(&on(follower, path)).await;
        shows(&b, path, text).await;
        unlabelled(&b, path).await;
        b.screenshot(file).await;
    }
    for path in [
        "/ui/import",
        "/ui/certs",
        &format!("/ui/certs/{name}"),
        &format!("/ui/certs/{name}/export"),
        &format!("/ui/certs/{name}/rotate"),
    ] {
        b.goto(&on(follower, path)).await;
        unlabelled(&b, path).await;
    }
    // A join token: shown once with the command to run.
    b.goto(&on(follower, "/ui/nodes")).await;
    submit(&b, "form[action='/ui/nodes/join-token']").await;
    let token = shows(&b, "the join token", "crj1.").await;
    assert!(token.contains("--join-token-file join.token"), "{token}");
    b.screenshot("join-token").await;
    // A CSR: made by the cluster, shown with its PEM.
    b.goto(&on(follower, "/ui/csrs")).await;
    b.find("#csr-name").await.send_keys("shop").await;
    b.find("#cn").await.send_keys("shop.example.test").await;
    submit(&b, "form[action='/ui/csrs']").await;
    shows(&b, "the new CSR", "BEGIN CERTIFICATE REQUEST").await;
    b.screenshot("csr").await;
    // Filtered audit: the export is there, by the admin token's name.
    b.goto(&on(follower, "/ui/audit?action=export")).await;
    let audit = shows(&b, "the filtered audit", "export ec256.example.test").await;
    assert!(!audit.contains("sign-in as"), "{audit}");
    // Narrow window: the table page still renders.
    b.set_window_size(480, 800).await;
    b.goto(&on(follower, "/ui/certs")).await;
    shows(&b, "the narrow table", name).await;
    b.screenshot("certificates-narrow").await;
    b.set_window_size(1280, 800).await;
}

/// A multipart/form-data body of (field, file name, bytes) parts, and its content type.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "certraft-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("content-disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\ncontent-type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("content-disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Signs in over HTTP; answers the cookie and a page's CSRF token.
async fn http_session(c: &Cluster, http: &reqwest::Client, i: usize) -> (String, String) {
    let r = http
        .post(format!("{}/ui/sign-in", c.nodes[i].admin_url()))
        .form(&[("token", c.token.trim())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_string();
    let page = http
        .get(format!("{}/ui/certs", c.nodes[i].admin_url()))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = page[at..].split('"').next().expect("its value").to_string();
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread")]
async fn console_forms_refuse_cross_site_and_broken_posts_with_a_reason() {
    let c = Cluster::start(1, Options::default()).await;
    let tls = certraft::raft::tls::admin_client_config(&c.ca_der).expect("cluster CA");
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = c.nodes[0].admin_url();
    let (cookie, csrf) = http_session(&c, &http, 0).await;
    let post = |path: &str| http.post(format!("{base}{path}")).header(COOKIE, &cookie);

    // A cross-site form, even with the right token (as if it had leaked): refused.
    let r = post("/ui/nodes/join-token")
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("role", "voter")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("another site"));
    let r = post("/ui/nodes/join-token")
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The same origin, the right token: a join token.
    let r = post("/ui/nodes/join-token")
        .header("origin", base.trim_end_matches('/'))
        .form(&[("csrf", csrf.as_str()), ("role", "learner")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("crj1."));

    // A multipart body that is not one: a page with the reason, nothing imported.
    let r = post("/ui/import")
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nnot a part")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = r.text().await.unwrap();
    assert!(page.contains("could not be read"), "{page}");
    // A garbage file: the parser's refusal and its hint, on the import page.
    let (kind, body) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("files", Some("x.pem"), b"hello"),
    ]);
    let r = post("/ui/import")
        .header("content-type", kind)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Refused: ") && page.contains("certraft inspect"),
        "{page}"
    );
    // A text field over its cap.
    let long = "n".repeat(5000);
    let (kind, body) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("name", None, long.as_bytes()),
    ]);
    let r = post("/ui/import")
        .header("content-type", kind)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A commit of a preview that does not exist (or another session's).
    let r = post("/ui/import/commit")
        .form(&[("csrf", csrf.as_str()), ("staged", "0123")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("upload the files again"));
    // An export of a name that is not there.
    let r = post("/ui/certs/nope/export")
        .form(&[("csrf", csrf.as_str()), ("format", "pem")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("nope"));

    // Every page: the headers, and never the token.
    for path in [
        "/ui",
        "/ui/certs",
        "/ui/certs?sort=expiry&desc=true&page=99",
        "/ui/import",
        "/ui/nodes",
        "/ui/audit?actor=x&action=y&refused=true",
        "/ui/backup",
        "/ui/csrs",
        "/ui/issuers",
    ] {
        let r = http
            .get(format!("{base}{path}"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert!(
            h.get("content-security-policy")
                .is_some_and(|v| v.to_str().unwrap().contains("default-src 'none'")),
            "{path}"
        );
        assert_eq!(h.get("cache-control").unwrap(), "no-store", "{path}");
        let page = r.text().await.unwrap();
        assert!(!page.contains(c.token.trim()), "{path} carries the token");
        assert!(!page.contains("<script"), "{path} has script");
        // Without the cookie: to sign in.
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers().get(LOCATION).unwrap(), "/ui/sign-in");
    }
}

/// The forms a browser test does not drive, over HTTP as a browser posts them: issue from
/// the cluster's CA, download a backup and restore it after a removal, make a CSR and
/// download it for openssl.
#[tokio::test(flavor = "multi_thread")]
async fn console_issue_backup_restore_and_csr_forms_round_trip() {
    let c = Cluster::start(1, Options::default()).await;
    let tls = certraft::raft::tls::admin_client_config(&c.ca_der).expect("cluster CA");
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = c.nodes[0].admin_url();
    let (cookie, csrf) = http_session(&c, &http, 0).await;
    let post = |path: &str, form: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(form);
        http.post(format!("{base}{path}"))
            .header(COOKIE, &cookie)
            .form(&all)
            .send()
    };
    let location = |r: &reqwest::Response| {
        r.headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };

    // Issue from the cluster's own CA.
    let form = [
        ("name", "shop"),
        ("sans", "shop.example.test, www.shop.example.test"),
        ("issuer", "local"),
        ("key", "ec-p256"),
        ("days", "30"),
    ];
    let r = post("/ui/issue", &form).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(location(&r), "/ui/certs/shop?done=issued");

    // A backup: refused under a short or mismatched passphrase, else a download.
    let r = post(
        "/ui/backup",
        &[("passphrase", "short"), ("passphrase2", "short")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("at least 12"));
    let pass = "a backup passphrase of some length";
    let r = post(
        "/ui/backup",
        &[
            ("passphrase", pass),
            ("passphrase2", "another one entirely"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post("/ui/backup", &[("passphrase", pass), ("passphrase2", pass)])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let disposition = r
        .headers()
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"certraft-")
            && disposition.ends_with(".backup\""),
        "{disposition}"
    );
    let backup = r.bytes().await.unwrap().to_vec();
    assert!(!backup.windows(pass.len()).any(|w| w == pass.as_bytes()));

    // Remove the bundle, then restore the backup through the upload form.
    // The only certificate for its names: refused with the reason, then forced.
    let r = post("/ui/certs/shop/remove", &[("confirm", "yes")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("the only certificate serving"));
    let r = post(
        "/ui/certs/shop/remove",
        &[("confirm", "yes"), ("force", "yes")],
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    let r = c.api(0).get("/api/v1/certs/shop").await;
    assert_eq!(r.status, 404, "{r}");
    let (kind, body) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("files", Some("nightly.backup"), &backup),
        ("passphrase", None, pass.as_bytes()),
    ]);
    let r = http
        .post(format!("{base}/ui/backup/restore"))
        .header(COOKIE, &cookie)
        .header("content-type", kind)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("1 bundle(s) imported") && page.contains("shop"),
        "{page}"
    );
    let r = c.api(0).get("/api/v1/certs/shop").await;
    assert_eq!(r.status, 200, "{r}");

    // A CSR made by the cluster, downloaded and read by openssl.
    let r = post(
        "/ui/csrs",
        &[
            ("name", "api"),
            ("common_name", "api.example.test"),
            ("sans", "api2.example.test"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(location(&r), "/ui/csrs/api");
    let r = http
        .get(format!("{base}/ui/csrs/api/csr.pem"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers().get("content-disposition").unwrap(),
        "attachment; filename=\"api.csr.pem\""
    );
    let pem = r.text().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api.csr.pem");
    std::fs::write(&file, &pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-noout", "-verify", "-subject", "-in"])
        .arg(&file)
        .output()
        .expect("openssl req");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("api.example.test"),
        "{text}"
    );
}
