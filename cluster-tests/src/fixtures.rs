//! The OpenSSL-made certificates of `fixtures/` (see `fixtures/generate.sh`): registers
//! `reg-0`..`reg-5`, each with versions 0..3 for `reg-K.cluster.test`.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Value};

pub const KEYS: usize = 6;
pub const VERSIONS: u32 = 4;

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The bundle name of register `k`.
pub fn name(k: usize) -> String {
    format!("reg-{k}")
}

/// The host name register `k`'s certificates are for.
pub fn host(k: usize) -> String {
    format!("reg-{k}.cluster.test")
}

fn read(file: &str) -> Vec<u8> {
    let path = dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with cluster-tests/fixtures/generate.sh",
            path.display()
        )
    })
}

/// The leaf DER of version `v` of register `k`.
pub fn leaf(k: usize, v: u32) -> Vec<u8> {
    crate::client::pem_der(&read(&format!("reg-{k}-v{v}.pem"))).expect("fixture PEM")
}

/// The body of `POST /api/v1/certs` importing version `v` as register `k`.
pub fn import_body(k: usize, v: u32) -> Value {
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
    json!({
        "name": name(k),
        "files": [
            {"name": format!("reg-{k}-v{v}.pem"), "data": b64(read(&format!("reg-{k}-v{v}.pem")))},
            {"name": format!("reg-{k}-v{v}.key"), "data": b64(read(&format!("reg-{k}-v{v}.key")))},
        ],
    })
}

/// The body importing `default.pem` as bundle `default` and making it the cluster default.
pub fn default_body() -> Value {
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
    json!({
        "name": "default",
        "make_default": true,
        "files": [
            {"name": "default.pem", "data": b64(read("default.pem"))},
            {"name": "default.key", "data": b64(read("default.key"))},
        ],
    })
}

/// The default bundle's leaf DER.
pub fn default_leaf() -> Vec<u8> {
    crate::client::pem_der(&read("default.pem")).expect("fixture PEM")
}
