//! The cluster commands, the binary, without a node: usage errors, where the server, token
//! and CA come from, exit codes for every kind of failure, and each command's request and
//! output against a scripted TLS endpoint (`support::admin`).
//!
//! Every run has stdin null and no `CERTRAFT_*` variable unless the test sets it.

use crate::support::admin::{answer, api_error, ok_json, MockAdmin, Trust, TOKEN};
use crate::support::*;
use base64::Engine;
use certraft::api::dto::{
    CertList, CertSummary, ClusterStatus, DefaultCert, Done, ExportFormat, ExportResponse,
    ImportOutcome, ImportResponse, JoinTokenResponse, Member,
};
use certraft::inventory::NodeRole;
use certraft_cluster_tests::ports::free_port;

/// Asserts no output of `run` contains the admin token.
#[track_caller]
fn token_not_shown(run: &Run) {
    assert!(!run.prints(TOKEN), "the token was printed: {run}");
}

fn summary(name: &str, hosts: &[&str], is_default: bool) -> CertSummary {
    CertSummary {
        name: name.into(),
        id: "ab".repeat(32),
        hostnames: hosts.iter().map(|h| h.to_string()).collect(),
        subject: format!("CN={}", hosts.first().unwrap_or(&name)),
        issuer: "CN=certraft test intermediate".into(),
        not_before: "2024-01-01T00:00:00Z".into(),
        not_after: "2099-12-31T23:59:59Z".into(),
        not_after_unix: 4_102_444_799,
        status: "active".into(),
        is_default,
        key: "ec-p256".into(),
        completeness: "no-root".into(),
        imported_at: "2025-01-01T00:00:00Z".into(),
        imported_by: "admin".into(),
    }
}

// ---------------------------------------------------------------------------------------
// 1. Usage: exit 2 before anything is sent.
// ---------------------------------------------------------------------------------------

/// Missing or malformed arguments are usage errors (exit 2), as JSON with --json.
#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["cert", "export", "www"],
        &["cert", "import"],
        &["cert", "rotate", "www"],
        &["cert", "list", "--expiring-within", "30"],
        &["cert", "list", "--expiring-within", "soon"],
        &["cluster", "remove", "node-four"],
        &["cluster", "join-token", "--role", "king"],
        &["cluster", "join-token", "--ttl", "0s"],
        &["backup", "create"],
        &["cert", "list", "--timeout", "0"],
        &["cert", "list", "--server", "http://127.0.0.1:9443"],
        &[
            "cert", "export", "www", "--out", "x.pem", "--format", "pem", "--legacy",
        ],
    ];
    for args in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = certraft(*args).current_dir(dir.path()).run();
        run.exits(2);
        assert!(run.stderr.contains("error:"), "{run}");

        let run = certraft(["--json"])
            .args(*args)
            .current_dir(dir.path())
            .run();
        run.exits(2);
        let (code, message, _) = run.json_error_hint();
        assert!(code == "usage" || code == "invalid_server", "{run}");
        assert!(!message.is_empty(), "{run}");
    }
}

/// `--server` must be HTTPS: the message says so and shows the https URL to use.
#[test]
fn plain_http_server_is_refused() {
    let run = certraft(["cert", "list", "--server", "http://10.0.0.1:9443"]).run();
    run.exits(2);
    assert!(run.stderr.contains("HTTPS only"), "{run}");
    assert!(run.stderr.contains("https://10.0.0.1:9443"), "{run}");
}

/// Every command's --help teaches: a purpose, and examples.
#[test]
fn help_has_examples_for_every_command() {
    let commands: &[&[&str]] = &[
        &[],
        &["inspect"],
        &["cert"],
        &["cert", "import"],
        &["cert", "list"],
        &["cert", "show"],
        &["cert", "export"],
        &["cert", "default"],
        &["cert", "rotate"],
        &["cert", "remove"],
        &["cluster"],
        &["cluster", "status"],
        &["cluster", "join-token"],
        &["cluster", "remove"],
        &["audit"],
        &["backup"],
        &["backup", "create"],
        &["backup", "restore"],
    ];
    for command in commands {
        let run = certraft(*command).arg("--help").run();
        run.exits(0);
        assert!(run.stdout.contains("Examples:"), "no examples: {run}");
        let example = format!("certraft {}", command.join(" "));
        assert!(
            run.stdout.contains(example.trim()),
            "no example of itself: {run}"
        );
        assert!(run.stdout.contains("Usage:"), "{run}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Credentials: CA (exit 2 when none), token (exit 4 when none), data dir discovery.
// ---------------------------------------------------------------------------------------

/// No --ca-file and no ca.pem in the data dir: exit 2, telling the user to pass --ca-file
/// or run on the appliance. Verification is never skipped.
#[test]
fn no_ca_anywhere_exits_2() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let data = tempfile::tempdir().expect("temp dir");
    let run = certraft(["cert", "list"])
        .env("CERTRAFT_TOKEN", "abc")
        .env("CERTRAFT_DATA_DIR", data.path())
        .current_dir(cwd.path())
        .run();
    run.exits(2);
    assert!(run.stderr.contains("--ca-file"), "{run}");
    assert!(run.stderr.contains("appliance"), "{run}");
    assert!(
        run.stderr
            .contains(&data.path().join("ca.pem").display().to_string()),
        "names where it looked: {run}"
    );
}

/// No --token-file, no CERTRAFT_TOKEN, no admin.token in the data dir: exit 4, naming where
/// it looked.
#[test]
fn no_token_anywhere_exits_4() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let data = tempfile::tempdir().expect("temp dir");
    let run = certraft(["cert", "list", "--ca-file"])
        .arg(fixture("root.pem"))
        .env("CERTRAFT_DATA_DIR", data.path())
        .current_dir(cwd.path())
        .run();
    run.exits(4);
    assert!(run.stderr.contains("--token-file"), "{run}");
    assert!(run.stderr.contains("CERTRAFT_TOKEN"), "{run}");
    assert!(
        run.stderr
            .contains(&data.path().join("admin.token").display().to_string()),
        "{run}"
    );

    let run = certraft(["--json", "cluster", "status", "--ca-file"])
        .arg(fixture("root.pem"))
        .current_dir(cwd.path())
        .run();
    run.exits(4);
    let (code, _, _) = run.json_error_hint();
    assert_eq!(code, "no_token", "{run}");
}

/// A --token-file that does not exist is an authentication failure (exit 4) naming it.
#[test]
fn missing_token_file_exits_4() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.token");
    let run = certraft(["cert", "list", "--ca-file"])
        .arg(fixture("root.pem"))
        .arg("--token-file")
        .arg(&missing)
        .run();
    run.exits(4);
    assert!(run.stderr.contains(&missing.display().to_string()), "{run}");
}

/// A CA file that holds no certificate is a usage error naming the file.
#[test]
fn ca_file_without_certificate_exits_2() {
    let run = certraft(["cert", "list", "--token-file"])
        .arg(fixture("pass.txt"))
        .arg("--ca-file")
        .arg(fixture("ec256.key"))
        .run();
    run.exits(2);
    assert!(run.stderr.contains(&fixture_str("ec256.key")), "{run}");
}

/// On the appliance: ca.pem and admin.token come from $CERTRAFT_DATA_DIR, or from
/// ./certraft-data, with no flag.
#[test]
fn credentials_come_from_the_data_dir() {
    let list = CertList {
        certs: vec![],
        default: None,
    };
    for via_env in [true, false] {
        let mock = MockAdmin::serve(vec![ok_json(&list)]);
        let cwd = tempfile::tempdir().expect("temp dir");
        let data = if via_env {
            mock.dir.path().to_path_buf()
        } else {
            let data = cwd.path().join("certraft-data");
            std::fs::create_dir(&data).expect("mkdir");
            std::fs::copy(&mock.ca_file, data.join("ca.pem")).expect("copy ca");
            std::fs::copy(&mock.token_file, data.join("admin.token")).expect("copy token");
            data
        };
        let mut cmd = certraft(["cert", "list", "--server", &mock.url]).current_dir(cwd.path());
        if via_env {
            cmd = cmd.env("CERTRAFT_DATA_DIR", &data);
        }
        let run = cmd.run();
        run.exits(0);
        let request = mock.request();
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        token_not_shown(&run);
    }
}

/// CERTRAFT_TOKEN is used when there is no --token-file; the token file wins over it.
#[test]
fn token_sources_in_order() {
    let list = CertList {
        certs: vec![],
        default: None,
    };
    let mock = MockAdmin::serve(vec![ok_json(&list), ok_json(&list)]);
    let cwd = tempfile::tempdir().expect("temp dir");
    certraft(["cert", "list", "--server", &mock.url, "--ca-file"])
        .arg(&mock.ca_file)
        .env("CERTRAFT_TOKEN", "from-env")
        .current_dir(cwd.path())
        .run()
        .exits(0);
    assert_eq!(
        mock.request().header("authorization"),
        Some("Bearer from-env")
    );
    mock.certraft(["cert", "list"])
        .env("CERTRAFT_TOKEN", "from-env")
        .run()
        .exits(0);
    assert_eq!(
        mock.request().header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

// ---------------------------------------------------------------------------------------
// 3. Transport and HTTP failures → exit codes.
// ---------------------------------------------------------------------------------------

/// Nothing listening at --server: exit 3, naming the URL and the next step.
#[test]
fn unreachable_server_exits_3() {
    let url = format!("https://127.0.0.1:{}", free_port());
    let run = certraft(["cluster", "status", "--server", &url, "--ca-file"])
        .arg(fixture("root.pem"))
        .env("CERTRAFT_TOKEN", "abc")
        .run();
    run.exits(3);
    assert!(run.stderr.contains(&url), "{run}");
    assert!(run.stderr.contains("--server"), "{run}");

    let run = certraft(["--json", "cert", "list", "--server", &url, "--ca-file"])
        .arg(fixture("root.pem"))
        .env("CERTRAFT_TOKEN", "abc")
        .run();
    run.exits(3);
    let (code, message, _) = run.json_error_hint();
    assert_eq!(code, "unreachable");
    assert!(message.contains(&url), "{run}");
}

/// A server whose certificate the CA file did not issue: exit 1, naming the CA file.
#[test]
fn certificate_from_another_ca_exits_1() {
    let mock = MockAdmin::serve_with(Trust::Other, vec![answer(200, "{}"), answer(200, "{}")]);
    let run = mock.certraft(["cert", "list"]).run();
    run.exits(1);
    assert!(
        run.stderr.contains(&mock.ca_file.display().to_string()),
        "{run}"
    );
    assert!(run.stderr.contains("hint:"), "{run}");
    let run = mock.certraft(["--json", "cert", "list"]).run();
    run.exits(1);
    assert_eq!(run.json_error_hint().0, "tls_verification_failed", "{run}");
}

/// Regression (issue 19, review item 10): a server presenting the certificate of a removed
/// member (listed in `revoked-nodes.txt` beside the CA file) is refused inside the handshake:
/// exit 1 naming the node, and the server receives no request, so no token. The same server
/// without the list gets the request with the token: the list is what stops it.
#[test]
fn a_removed_members_certificate_is_refused_before_the_token_is_sent() {
    let mock = MockAdmin::serve_with(Trust::Revoked, vec![answer(200, "{}"), answer(200, "{}")]);
    let run = mock.certraft(["--json", "cert", "list"]).run();
    run.exits(1);
    let (code, message, hint) = run.json_error_hint();
    assert_eq!(code, "removed_member", "{run}");
    assert!(message.contains("removed cluster member node 3"), "{run}");
    assert!(message.contains("token was not sent"), "{run}");
    assert!(hint.is_some_and(|h| h.contains("cluster status")), "{run}");
    mock.no_request();

    std::fs::remove_file(mock.dir.path().join(certraft::api::dto::REVOKED_NODES_FILE))
        .expect("remove the list");
    let run = mock.certraft(["cert", "list"]).run();
    assert_eq!(
        mock.request().header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str()),
        "{run}"
    );
}

/// HTTP answers map to exit codes: 401/403 → 4, 503/504 → 3, other 4xx/5xx → 1; the
/// server's code, message and hint are shown as they are; the token never is.
#[test]
fn http_errors_map_to_exit_codes() {
    let table: &[(u16, &str, i32)] = &[
        (401, "unauthorized", 4),
        (403, "forbidden", 4),
        (404, "not_found", 1),
        (409, "is_default", 1),
        (422, "key_mismatch", 1),
        (400, "bad_request", 1),
        (503, "no_leader", 3),
        (504, "timeout", 3),
        (500, "internal", 1),
    ];
    for &(status, code, exit) in table {
        let mock = MockAdmin::serve(vec![
            api_error(
                status,
                code,
                &format!("{code} happened to www"),
                Some("do the next thing"),
            ),
            api_error(status, code, &format!("{code} happened to www"), None),
        ]);
        let run = mock.certraft(["cert", "remove", "www"]).run();
        run.exits(exit);
        assert!(
            run.stderr
                .contains(&format!("error: {code} happened to www")),
            "{run}"
        );
        assert!(run.stderr.contains("hint: do the next thing"), "{run}");
        token_not_shown(&run);

        let run = mock.certraft(["--json", "cert", "remove", "www"]).run();
        run.exits(exit);
        let (got, message, hint) = run.json_error_hint();
        assert_eq!(got, code, "{run}");
        if exit == 4 {
            // Which token was refused is said; the token itself never is.
            let token_file = mock.token_file.display().to_string();
            assert_eq!(
                message,
                format!("{code} happened to www; the token came from token file {token_file}")
            );
            let hint = hint.unwrap_or_else(|| panic!("{status} without a hint: {run}"));
            assert!(hint.contains("token"), "{run}");
        } else {
            assert_eq!(message, format!("{code} happened to www"));
        }
        token_not_shown(&run);
    }
}

/// An error answer that is not the API's JSON still gets an exit code and a message with
/// the status and the URL.
#[test]
fn non_json_error_answers() {
    let mock = MockAdmin::serve(vec![answer(502, "bad gateway"), answer(404, "")]);
    let run = mock.certraft(["cert", "list"]).run();
    run.exits(3);
    assert!(run.stderr.contains("502"), "{run}");
    assert!(run.stderr.contains(&mock.url), "{run}");
    let run = mock.certraft(["--json", "cert", "show", "www"]).run();
    run.exits(1);
    assert_eq!(run.json_error_hint().0, "not_found", "{run}");
}

// ---------------------------------------------------------------------------------------
// 4. Each command: what it sends, what it prints.
// ---------------------------------------------------------------------------------------

/// `cert list`: a table with the default mark; --json is the server's answer; -q the names.
#[test]
fn cert_list_outputs() {
    let list = CertList {
        certs: vec![
            summary("api", &["api.example.test"], false),
            summary("www", &["www.example.test", "example.test"], true),
        ],
        default: Some("www".into()),
    };
    let mock = MockAdmin::serve(vec![ok_json(&list), ok_json(&list), ok_json(&list)]);

    let run = mock.certraft(["cert", "list"]).run();
    run.exits(0);
    let request = mock.request();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("GET", "/api/v1/certs")
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run}");
    assert!(
        lines[0].contains("NAME") && lines[0].contains("STATUS"),
        "{run}"
    );
    assert!(lines[2].starts_with("*  www"), "{run}");
    assert!(lines[2].contains("certraft test intermediate"), "{run}");
    assert!(lines[2].contains("2099-12-31"), "{run}");

    let run = mock.certraft(["--json", "cert", "list"]).run();
    run.exits(0);
    assert_eq!(
        run.json(),
        serde_json::to_value(&list).expect("json"),
        "{run}"
    );

    let run = mock.certraft(["-q", "cert", "list"]).run();
    run.exits(0);
    assert_eq!(run.stdout, "api\nwww\n", "{run}");
}

/// `cert list --expiring-within`: only those expiring within the window, soonest first.
#[test]
fn cert_list_expiring_within() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let mut soon = summary("soon", &["soon.example.test"], false);
    soon.not_after_unix = now + 10 * 86_400;
    let mut expired = summary("expired", &["old.example.test"], false);
    expired.not_after_unix = now - 86_400;
    let later = summary("later", &["later.example.test"], false);
    let list = CertList {
        certs: vec![soon, later, expired],
        default: None,
    };
    let mock = MockAdmin::serve(vec![ok_json(&list), ok_json(&list)]);
    let run = mock
        .certraft(["-q", "cert", "list", "--expiring-within", "30d"])
        .run();
    run.exits(0);
    assert_eq!(run.stdout, "expired\nsoon\n", "{run}");
    let run = mock
        .certraft(["--json", "cert", "list", "--expiring-within", "1h"])
        .run();
    run.exits(0);
    let names: Vec<String> = run.json()["certs"]
        .as_array()
        .expect("certs")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["expired"], "{run}");
}

/// `cert import`: the local check runs first; the raw files go base64 with the passphrase;
/// it prints name and id (-q: the id).
#[test]
fn cert_import_sends_files_and_passphrase() {
    let response = ImportResponse {
        outcome: ImportOutcome::Imported,
        name: "ec256.example.test".into(),
        id: "cd".repeat(32),
        hostnames: vec!["ec256.example.test".into()],
        not_after: "2099-12-31T23:59:59Z".into(),
        completeness: "no-root".into(),
        warnings: vec!["the chain ends at an intermediate".into()],
        index: Some(7),
    };
    let mock = MockAdmin::serve(vec![
        ok_json(&response),
        ok_json(&response),
        ok_json(&response),
    ]);
    let run = mock
        .certraft(["cert", "import", "--default", "--name", "web"])
        .fixtures(&["ec256.p12"])
        .passphrase_fixture("pass.txt")
        .run();
    run.exits(0);
    assert!(run.stdout.contains("ec256.example.test"), "{run}");
    assert!(run.stdout.contains(&"cd".repeat(32)), "{run}");
    assert!(run.stderr.contains("warning: the chain ends"), "{run}");
    let request = mock.request();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("POST", "/api/v1/certs")
    );
    let body = request.json();
    assert_eq!(body["name"], "web");
    assert_eq!(body["make_default"], true);
    assert_eq!(body["dry_run"], false);
    assert_eq!(body["passphrase"], passphrase());
    let data = base64::engine::general_purpose::STANDARD
        .decode(body["files"][0]["data"].as_str().expect("base64 data"))
        .expect("base64");
    assert_eq!(data, std::fs::read(fixture("ec256.p12")).expect("fixture"));
    assert_eq!(body["files"][0]["name"], fixture_str("ec256.p12"));

    let run = mock
        .certraft(["-q", "cert", "import", "--dry-run"])
        .fixtures(&["leaf-ec256.pem", "ec256.key", "inter.pem"])
        .env(ENV_PASSPHRASE, "at hand but not needed")
        .run();
    run.exits(0);
    assert_eq!(run.stdout, format!("{}\n", "cd".repeat(32)), "{run}");
    let body = mock.request().json();
    assert_eq!(body["dry_run"], true);
    assert!(
        body.get("passphrase").is_none(),
        "no passphrase was needed: {body}"
    );
    assert_eq!(body["files"].as_array().map(Vec::len), Some(3));

    // An encrypted PEM key needs it: the passphrase from the environment is sent.
    mock.certraft(["cert", "import"])
        .fixtures(&["leaf-ec256.pem", "ec256.enc-pbkdf2.pem"])
        .env(ENV_PASSPHRASE, passphrase())
        .run()
        .exits(0);
    assert_eq!(mock.request().json()["passphrase"], passphrase());
}

/// Files import would refuse are refused locally (exit 1, inspect's code); nothing is sent.
#[test]
fn cert_import_refuses_locally_first() {
    let mock = MockAdmin::serve(vec![answer(200, "{}")]);
    let run = mock
        .certraft(["--json", "cert", "import"])
        .fixtures(&["leaf-ec256.pem", "ec384.key"])
        .run();
    run.exits(1);
    assert_eq!(run.json_error_hint().0, "key_mismatch", "{run}");
    let run = mock
        .certraft(["cert", "import"])
        .fixtures(&["ec256.p12"])
        .run();
    run.exits(1);
    assert!(run.stderr.contains("--passphrase-file"), "{run}");
    mock.no_request();
}

/// `cert export`: writes the answer's bytes, mode 0600; refuses an existing --out without
/// --force before asking anything; p12 needs a passphrase.
#[test]
fn cert_export_writes_a_private_file() {
    let response = ExportResponse {
        format: ExportFormat::P12,
        data: b"not really pkcs12".to_vec(),
        warnings: vec![],
    };
    let mock = MockAdmin::serve(vec![ok_json(&response), ok_json(&response)]);
    let out = mock.dir.path().join("www.p12");
    let run = mock
        .certraft(["cert", "export", "www", "--legacy", "--out"])
        .arg(&out)
        .passphrase_fixture("pass.txt")
        .run();
    run.exits(0);
    assert!(run.stderr.contains("warning:"), "legacy warns: {run}");
    assert_eq!(std::fs::read(&out).expect("written"), b"not really pkcs12");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let request = mock.request();
    assert_eq!(request.target, "/api/v1/certs/www/export");
    let body = request.json();
    assert_eq!(body["format"], "p12");
    assert_eq!(body["legacy"], true);
    assert_eq!(body["passphrase"], passphrase());

    // Exists, no --force: refused before any request.
    let run = mock
        .certraft(["--json", "cert", "export", "www", "--out"])
        .arg(&out)
        .passphrase_fixture("pass.txt")
        .run();
    run.exits(1);
    assert_eq!(run.json_error_hint().0, "out_exists", "{run}");
    mock.no_request();

    // p12 with no passphrase anywhere and no terminal.
    let fresh = mock.dir.path().join("fresh.p12");
    let run = mock
        .certraft(["cert", "export", "www", "--out"])
        .arg(&fresh)
        .run();
    run.exits(1);
    assert!(run.stderr.contains("--passphrase-file"), "{run}");
    assert!(!fresh.exists());

    // --force replaces.
    let run = mock
        .certraft(["-q", "cert", "export", "www", "--force", "--out"])
        .arg(&out)
        .env(ENV_PASSPHRASE, "another passphrase")
        .run();
    run.exits(0);
    assert_eq!(mock.request().json()["passphrase"], "another passphrase");
}

/// Names are sent as one percent-encoded path segment.
#[test]
fn names_are_path_segments() {
    let done = Done {
        message: "removed *.example.test".into(),
        index: Some(9),
    };
    let mock = MockAdmin::serve(vec![ok_json(&done)]);
    let run = mock
        .certraft(["cert", "remove", "*.example.test/x", "--force"])
        .run();
    run.exits(0);
    assert!(run.stdout.contains("removed *.example.test"), "{run}");
    let request = mock.request();
    assert_eq!(request.method, "DELETE");
    assert_eq!(
        request.target,
        "/api/v1/certs/*.example.test%2Fx?force=true"
    );
}

/// `cert default`: GET without a name, PUT with one.
#[test]
fn cert_default_shows_and_sets() {
    let mock = MockAdmin::serve(vec![
        ok_json(&DefaultCert { default: None }),
        ok_json(&DefaultCert {
            default: Some("www".into()),
        }),
    ]);
    let run = mock.certraft(["cert", "default"]).run();
    run.exits(0);
    assert!(run.stdout.contains("no cluster-wide default"), "{run}");
    assert_eq!(mock.request().method, "GET");
    let run = mock.certraft(["-q", "cert", "default", "www"]).run();
    run.exits(0);
    assert_eq!(run.stdout, "www\n");
    let request = mock.request();
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("PUT", "/api/v1/default")
    );
    assert_eq!(request.json(), serde_json::json!({"name": "www"}));
}

/// `cluster join-token`: only the token on stdout; expiry on stderr unless -q.
#[test]
fn join_token_prints_only_the_token() {
    let response = JoinTokenResponse {
        token: "crj1.s3cret.abcdef".into(),
        role: NodeRole::Learner,
        expires_at: "2030-01-01T00:00:00Z".into(),
    };
    let mock = MockAdmin::serve(vec![ok_json(&response), ok_json(&response)]);
    let run = mock
        .certraft(["cluster", "join-token", "--role", "learner", "--ttl", "15m"])
        .run();
    run.exits(0);
    assert_eq!(run.stdout, "crj1.s3cret.abcdef\n", "{run}");
    assert!(run.stderr.contains("2030-01-01T00:00:00Z"), "{run}");
    let request = mock.request();
    assert_eq!(request.target, "/api/v1/cluster/join-tokens");
    assert_eq!(
        request.json(),
        serde_json::json!({"ttl_secs": 900, "role": "learner"})
    );
    let run = mock.certraft(["-q", "cluster", "join-token"]).run();
    run.exits(0);
    assert_eq!(run.stdout, "crj1.s3cret.abcdef\n", "{run}");
    assert_eq!(run.stderr, "", "{run}");
    assert_eq!(mock.request().json()["ttl_secs"], 3600);
}

/// `cluster status`: summary and member table with the leader marked.
#[test]
fn cluster_status_table() {
    let member = |id: u64, health: &str| Member {
        id,
        role: "voter".into(),
        voting: true,
        cluster_addr: format!("10.0.0.{id}:9444"),
        admin_addr: format!("10.0.0.{id}:9443"),
        matched: Some(12),
        health: health.into(),
    };
    let status = ClusterStatus {
        cluster_id: "c1".into(),
        node_id: 1,
        leader: Some(2),
        term: 3,
        last_log_index: Some(12),
        last_applied: Some(12),
        committed: Some(12),
        members: vec![member(1, "ok"), member(2, "leader")],
        ca_fingerprint: "ef".repeat(32),
        features: vec![],
    };
    let mock = MockAdmin::serve(vec![ok_json(&status), ok_json(&status)]);
    let run = mock.certraft(["cluster", "status"]).run();
    run.exits(0);
    assert!(run.stdout.contains("leader:    node 2 (term 3)"), "{run}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("*  2") && l.contains("10.0.0.2:9443")),
        "{run}"
    );
    assert_eq!(mock.request().target, "/api/v1/cluster");
    let run = mock.certraft(["-q", "cluster", "status"]).run();
    assert_eq!(run.stdout, "2\n", "{run}");
}

/// `backup create`: needs a passphrase, writes the file 0600, refuses to clobber.
#[test]
fn backup_create_and_restore() {
    let backup = serde_json::json!({
        "data": base64::engine::general_purpose::STANDARD.encode(b"sealed backup"),
        "bundles": 2,
    });
    let restored = serde_json::json!({
        "restored": ["www"],
        "already_present": ["api"],
        "default": "www",
    });
    let mock = MockAdmin::serve(vec![
        answer(200, backup.to_string()),
        answer(200, restored.to_string()),
    ]);
    let out = mock.dir.path().join("site.backup");
    let run = mock
        .certraft(["backup", "create", "--out"])
        .arg(&out)
        .passphrase_fixture("pass.txt")
        .run();
    run.exits(0);
    assert_eq!(std::fs::read(&out).expect("written"), b"sealed backup");
    assert_eq!(mock.request().json()["passphrase"], passphrase());

    let run = mock
        .certraft(["backup", "restore"])
        .arg(&out)
        .passphrase_fixture("pass.txt")
        .run();
    run.exits(0);
    assert!(run.stdout.contains("www"), "{run}");
    assert!(run.stdout.contains("already present"), "{run}");
    let body = mock.request().json();
    assert_eq!(body["passphrase"], passphrase());
    assert_eq!(
        body["data"],
        base64::engine::general_purpose::STANDARD.encode(b"sealed backup")
    );

    let run = mock
        .certraft(["backup", "create", "--out"])
        .arg(&out)
        .passphrase_fixture("pass.txt")
        .run();
    run.exits(1);
    assert!(run.stderr.contains("--force"), "{run}");
    mock.no_request();
}

/// Issue 13: the compiler, not a feature flag, keeps server code out of the CLI. Its
/// dependency tree (normal edges, as a whole-workspace build resolves it) holds the pure
/// core and no Raft, storage, HTTP-server or node crate.
#[test]
fn the_cli_links_no_server_code() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "certraft-cli",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tree.lines().any(|l| l.starts_with("certraft-core ")),
        "{tree}"
    );
    for server in [
        "openraft ",
        "redb ",
        "axum ",
        "certraft-node ",
        "tracing-subscriber ",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(server)),
            "the CLI depends on {server}:\n{tree}"
        );
    }
}
