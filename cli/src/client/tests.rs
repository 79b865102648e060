//! Unit tests of `client.rs` (kept beside it so the module itself stays readable).

use super::*;

/// `--server` spellings: accepted ones keep the user's text for messages; plain HTTP and
/// URLs with credentials or queries are usage errors.
#[test]
fn server_urls() {
    for (text, expect) in [
        ("https://127.0.0.1:9443", Some("https://127.0.0.1:9443/")),
        (
            "https://node1.example:9443/",
            Some("https://node1.example:9443/"),
        ),
        ("node1.example:9443", Some("https://node1.example:9443/")),
        (
            "https://proxy.example/certraft",
            Some("https://proxy.example/certraft"),
        ),
        ("http://127.0.0.1:9443", None),
        ("https://user:pw@node1:9443", None),
        ("https://node1:9443/?x=1", None),
        ("", None),
    ] {
        match (parse_server(text), expect) {
            (Ok((url, _)), Some(want)) => assert_eq!(url.as_str(), want, "{text}"),
            (Err(f), None) => assert_eq!(f.exit, Exit::Usage, "{text}"),
            (got, want) => panic!("{text}: got {:?}, want {want:?}", got.map(|(u, _)| u)),
        }
    }
}

/// API paths are built from segments: names are percent-encoded, a path prefix is kept.
#[test]
fn urls_encode_names_and_keep_prefixes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    let token = dir.path().join("token");
    std::fs::write(&ca, test_ca_pem()).expect("write ca");
    std::fs::write(&token, "secret\n").expect("write token");
    for (server, path, want) in [
        (
            "https://127.0.0.1:9443",
            vec!["certs", "*.example.test"],
            "https://127.0.0.1:9443/api/v1/certs/*.example.test",
        ),
        (
            "https://127.0.0.1:9443/",
            vec!["certs", "a/b c?"],
            "https://127.0.0.1:9443/api/v1/certs/a%2Fb%20c%3F",
        ),
        (
            "https://proxy.example/certraft/",
            vec!["cluster"],
            "https://proxy.example/certraft/api/v1/cluster",
        ),
    ] {
        let client = Client::connect(&ConnectArgs {
            server: server.into(),
            token_file: Some(token.clone()),
            ca_file: Some(ca.clone()),
            timeout: 5,
        })
        .unwrap_or_else(|f| panic!("{server}: {}", f.message));
        let url = client.url(&path, &[]).expect("url");
        assert_eq!(url.as_str(), want);
    }
}

/// The token file's first line, trimmed; an empty file is an authentication failure that
/// names the file.
#[test]
fn token_file_first_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("admin.token");
    std::fs::write(&path, "  tok-123 \r\nsecond line\n").expect("write");
    let (token, _) =
        find_token(Some(&path), dir.path()).unwrap_or_else(|f| panic!("{}", f.message));
    assert_eq!(&*token.0, "tok-123");

    std::fs::write(&path, "\n").expect("write");
    let err = find_token(Some(&path), dir.path()).err().expect("empty");
    assert_eq!(err.exit, Exit::Auth);
    assert!(
        err.message.contains(&path.display().to_string()),
        "{}",
        err.message
    );
}

use crate::trust::tests::test_ca_pem;
