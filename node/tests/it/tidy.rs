//! Conventions as checks (issue 13): the module dependency direction ARCHITECTURE.md states,
//! and a doc comment heading every source file. Reads the sources; runs in milliseconds.

use std::path::{Path, PathBuf};

/// Each module (a file or directory under `node/src`) and the crate modules it must never
/// import: the direction ARCHITECTURE.md states. The pure core (`bundle`, `inventory`,
/// `backup`, `clock`, `api::dto`) is another crate and cannot import any of these at all.
const NEVER: &[(&str, &[&str])] = &[
    // The serving plane sees only bundles and the index the store hands it.
    (
        "tls",
        &["raft", "store", "api", "node", "datadir", "config"],
    ),
    (
        "store",
        &["api", "node", "tls", "http", "datadir", "config"],
    ),
    (
        "raft",
        &["api", "node", "store", "tls", "datadir", "config"],
    ),
    ("api", &["node"]),
    ("pki", &["api", "node", "store", "raft", "tls", "http"]),
    ("config", &["api", "node", "store", "raft", "tls", "http"]),
    ("datadir", &["api", "node", "store", "raft", "tls", "http"]),
    (
        "log_limit",
        &[
            "api", "node", "store", "raft", "tls", "http", "pki", "config",
        ],
    ),
    ("recover", &["api", "node", "store", "tls", "http"]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let dir = src.join(module);
    if dir.is_dir() {
        sources(&dir, &mut files);
    }
    assert!(
        !files.is_empty(),
        "no module {module} under {}",
        src.display()
    );
    files
}

/// No module imports against the stated direction (`crate::X` for a forbidden X).
#[test]
fn modules_import_only_down_the_stated_direction() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, never) in NEVER {
        for file in module_files(&src, module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                for forbidden in *never {
                    let pattern = format!("crate::{forbidden}");
                    let hit = line.match_indices(&pattern).any(|(i, _)| {
                        !line[i + pattern.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    });
                    if hit && !line.trim_start().starts_with("//") {
                        violations.push(format!(
                            "{}:{}: `{module}` imports `{forbidden}`: {}",
                            file.strip_prefix(&src).unwrap().display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Every source file of the node and its core starts with a `//!` doc saying what it is.
#[test]
fn every_source_file_says_what_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("core/src"), &mut files);
    let undocumented: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a `//!` doc: {undocumented:?}"
    );
}
