//! Shared helpers for the integration tests: fixture loading and one-call assembly, import
//! bodies ([`uploads`]), real node processes ([`cluster`]), clients of their serve ports
//! ([`probe`]) and of their cluster ports ([`peer`]).

#![allow(dead_code)]

pub(crate) mod cluster;
pub(crate) mod peer;
pub(crate) mod probe;
pub(crate) mod uploads;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use certraft::bundle::{assemble, parse_file, AssembleOptions, Bundle, ParsedFile, Passphrase};

pub(crate) fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {}: {e}; run node/tests/fixtures/generate.sh",
            path.display()
        )
    })
}

pub(crate) fn passphrase() -> Passphrase {
    Passphrase::from_file_contents(&fixture("pass.txt")).expect("pass.txt is UTF-8")
}

pub(crate) fn wrong_passphrase() -> Passphrase {
    Passphrase::from_file_contents(&fixture("wrong-pass.txt")).expect("wrong-pass.txt is UTF-8")
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Parses fixtures; the first error's code on failure.
pub(crate) fn parse_all(
    names: &[&str],
    pass: Option<&Passphrase>,
) -> Result<Vec<ParsedFile>, String> {
    names
        .iter()
        .map(|n| parse_file(n, &fixture(n), pass).map_err(|e| e.code().to_string()))
        .collect()
}

/// Parses and assembles fixtures as import would; the error code on refusal.
pub(crate) fn bundle_of(
    names: &[&str],
    pass: Option<&Passphrase>,
    options: AssembleOptions,
) -> Result<Bundle, String> {
    let files = parse_all(names, pass)?;
    assemble(files, options, now()).map_err(|e| e.code().to_string())
}

/// The bundle the fixtures `fullchain-ec256.pem` + `ec256.key` make.
pub(crate) fn ec256_bundle() -> Bundle {
    bundle_of(
        &["fullchain-ec256.pem", "ec256.key"],
        None,
        AssembleOptions::default(),
    )
    .expect("ec256 fixture bundle")
}

/// True when the `openssl` command is installed; under CI=true it must be.
pub(crate) fn have_openssl() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "openssl is required under CI=true"
        );
        eprintln!("skipping: the openssl command is not installed");
    }
    ok
}
