//! The web console (issue 16) over HTTP, as a browser speaks to it: sign in on a follower,
//! the session works on every node, forms need the session's CSRF token, signing out ends
//! the session everywhere, every page carries the security headers and none carries the
//! token. (The real-browser suite comes with the pages: `certraft_cluster_tests::browser`.)

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};

use crate::support::cluster::{Cluster, Options};

/// A client that trusts the cluster CA and shows redirects instead of following them.
fn browser_like(c: &Cluster) -> Client {
    let tls = certraft::raft::tls::admin_client_config(&c.ca_der).expect("cluster CA");
    Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn get(http: &Client, c: &Cluster, i: usize, path: &str, cookie: Option<&str>) -> Response {
    let mut req = http.get(format!("{}{path}", c.nodes[i].admin_url()));
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    req.send().await.expect("GET")
}

async fn post_form(
    http: &Client,
    c: &Cluster,
    i: usize,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Response {
    let mut req = http
        .post(format!("{}{path}", c.nodes[i].admin_url()))
        .form(form);
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    req.send().await.expect("POST")
}

fn assert_page_headers(r: &Response, what: &str) {
    let h = r.headers();
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{what}: {csp}"
    );
    assert_eq!(
        h.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}"
    );
    assert_eq!(
        h.get("x-content-type-options").map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}"
    );
}

fn location(r: &Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The CSRF token in a page's sign-out form.
fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().expect("its value").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_session_opened_on_a_follower_works_everywhere_until_signed_out() {
    let c = Cluster::start(
        3,
        Options::default().env("CERTRAFT_FAILURE_AUDIT_SECS", "1"),
    )
    .await;
    let leader = c.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let other = (0..3)
        .find(|&i| i != leader && i != follower)
        .expect("another");
    let http = browser_like(&c);

    // No session: every page sends the browser to sign in; the sign-in page is a form.
    let r = get(&http, &c, follower, "/ui", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.headers());
    assert_eq!(location(&r), "/ui/sign-in");
    assert_page_headers(&r, "redirect");
    let r = get(&http, &c, follower, "/ui/sign-in", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_page_headers(&r, "sign-in page");
    assert!(r
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/html")));
    let page = r.text().await.unwrap();
    assert!(page.contains("type=\"password\" name=\"token\""), "{page}");
    assert!(!page.contains("<script"), "no script at all");

    // A wrong token: refused on the page, the typed value not echoed.
    let wrong = "cra1_0000000000000000000000000000000000000000000000000000000000000000";
    let r = post_form(
        &http,
        &c,
        follower,
        "/ui/sign-in",
        None,
        &[("token", wrong)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(SET_COOKIE).is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("not an admin token"), "{page}");
    assert!(!page.contains(wrong), "the typed token is not echoed");

    // An empty form: told what to type, no session.
    let r = post_form(&http, &c, follower, "/ui/sign-in", None, &[("token", "")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert!(r.text().await.unwrap().contains("type the admin token"));

    // The right token on a follower: a session cookie, not the token.
    let r = post_form(
        &http,
        &c,
        follower,
        "/ui/sign-in",
        None,
        &[("token", &c.token)],
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(location(&r), "/ui");
    let set = r
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/ui",
        "Max-Age=",
    ] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.contains(c.token.trim()), "the cookie is not the token");
    let cookie = set.split(';').next().expect("name=value").to_string();

    // The session works on every node, and no page carries the token.
    let mut csrf = String::new();
    for i in [other, leader, follower] {
        let r = get(&http, &c, i, "/ui", Some(&cookie)).await;
        assert_eq!(r.status(), StatusCode::OK, "node {i}");
        assert_page_headers(&r, "overview");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("Overview") && page.contains("Leader: node"),
            "{page}"
        );
        assert!(
            !page.contains(c.token.trim()),
            "node {i}'s page carries the token"
        );
        csrf = csrf_in(&page);
    }
    let css = get(&http, &c, other, "/ui/static/app.css", None).await;
    assert_eq!(css.status(), StatusCode::OK);

    // A forged cross-site post (no or a wrong CSRF token) is refused and changes nothing.
    for form in [vec![], vec![("csrf", "forged")]] {
        let r = post_form(&http, &c, other, "/ui/sign-out", Some(&cookie), &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{form:?}");
    }
    let r = get(&http, &c, leader, "/ui", Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::OK, "still signed in");

    // Signing out on one node ends the session on every node.
    let r = post_form(
        &http,
        &c,
        other,
        "/ui/sign-out",
        Some(&cookie),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/sign-in");
    for i in 0..3 {
        c.wait_for(
            "the sign-out applied",
            crate::support::cluster::PATIENCE,
            || async {
                let r = get(&http, &c, i, "/ui", Some(&cookie)).await;
                if r.status() == StatusCode::SEE_OTHER {
                    Ok(())
                } else {
                    Err(format!("node {i}: {}", r.status()))
                }
            },
        )
        .await;
    }
    let audit = c.api(leader).get("/api/v1/audit").await.text;
    assert!(audit.contains("web console sign-in as"), "{audit}");
    assert!(audit.contains("web console sign-out"), "{audit}");
    // The wrong token typed on the follower: counted there, against the browser's address,
    // and audited through the leader as that node's.
    let failed = format!(
        "node {}: 1 failed sign-ins with a wrong admin token from 127.0.0.1",
        c.nodes[follower].id
    );
    c.wait_for(
        "the follower's failed sign-in in the audit log",
        crate::support::cluster::PATIENCE,
        || async {
            let audit = c.api(leader).get("/api/v1/audit").await.text;
            if audit.contains(&failed) {
                Ok(())
            } else {
                Err(audit.chars().rev().take(600).collect::<String>())
            }
        },
    )
    .await;
}

/// The console in a real browser (headless chromium): redirected to sign in, signed in on a
/// follower by typing the token, the overview on another node with the same cookie (cookies
/// go by host), signed out with the button; the old cookie, put back, no longer signs in.
/// Screenshots of each page land in `target/tmp/ui-browser/screenshots/`.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_a_real_browser_signs_in_on_a_follower_and_out_everywhere() {
    use certraft_cluster_tests::browser::Browser;
    let c = Cluster::start(3, Options::default()).await;
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-browser");
    let ca_pem = pem::encode(&pem::Pem::new("CERTIFICATE", c.ca_der.clone()));
    let Some(b) = Browser::start_trusting(&out, &ca_pem).await else {
        return;
    };
    let leader = c.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let other = (0..3)
        .find(|&i| i != leader && i != follower)
        .expect("another");
    let limit = std::time::Duration::from_secs(20);
    let at = |url: &'static str| {
        let b = &b;
        move || async move {
            let now = b.url().await;
            if now.ends_with(url) {
                Ok(())
            } else {
                Err(now)
            }
        }
    };

    b.goto(&format!("{}/ui", c.nodes[follower].admin_url()))
        .await;
    b.wait_for("the sign-in page", limit, at("/ui/sign-in"))
        .await;
    b.screenshot("sign-in").await;
    b.find("#token").await.send_keys(&c.token).await;
    b.find("form.signin button[type=submit]")
        .await
        .click()
        .await;
    b.wait_for("the overview", limit, at("/ui")).await;
    let page = b.page_source().await;
    assert!(
        page.contains("Overview") && page.contains("Latest changes"),
        "{page}"
    );
    assert!(!page.contains(c.token.trim()), "the page carries the token");
    b.screenshot("overview").await;
    let session = b
        .cookie("certraft_session")
        .await
        .expect("the session cookie");
    assert_eq!(session.http_only, Some(true), "{session:?}");
    assert_eq!(session.secure, Some(true), "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"), "{session:?}");
    // No script can read it.
    let seen = b.execute("return document.cookie;", &[]).await;
    assert_eq!(seen.as_str(), Some(""), "{seen}");

    // Another node, same browser: signed in already.
    b.goto(&format!("{}/ui", c.nodes[other].admin_url())).await;
    b.wait_for("the overview on another node", limit, at("/ui"))
        .await;
    b.set_window_size(480, 800).await;
    b.screenshot("overview-narrow").await;
    b.set_window_size(1280, 800).await;

    b.find("form.signout button[type=submit]")
        .await
        .click()
        .await;
    b.wait_for(
        "the sign-in page after signing out",
        limit,
        at("/ui/sign-in"),
    )
    .await;
    // The old cookie, put back, signs no one in on any node.
    for i in 0..3 {
        b.goto(&format!("{}/ui/sign-in", c.nodes[i].admin_url()))
            .await;
        let mut old = session.clone();
        old.domain = None;
        b.add_cookie(&old).await;
        b.goto(&format!("{}/ui", c.nodes[i].admin_url())).await;
        b.wait_for(
            &format!("node {i} refusing the old cookie"),
            limit,
            at("/ui/sign-in"),
        )
        .await;
    }
}
