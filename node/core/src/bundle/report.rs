//! The report `certraft inspect` prints: a stable JSON shape and a human rendering.

use std::fmt::Write as _;

use serde::Serialize;

use super::assemble::{fmt_time, Bundle, BundleId, Completeness, Warning};
use super::cert::CertInfo;
use super::formats::{FileFormat, ParsedFile};
use super::key::KeyKind;

/// JSON schema version of [`InspectReport`]; bump on any incompatible change.
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    pub name: String,
    pub format: FileFormat,
    pub certificates: usize,
    pub keys: usize,
}

impl FileSummary {
    pub fn of(file: &ParsedFile) -> Self {
        FileSummary {
            name: file.name.clone(),
            format: file.format,
            certificates: file.certs.len(),
            keys: file.keys.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainRole {
    Leaf,
    Intermediate,
    Root,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainEntry {
    pub role: ChainRole,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub sha256: String,
    pub signature_algorithm: String,
    pub key: Option<KeyKind>,
}

impl ChainEntry {
    fn of(cert: &CertInfo, role: ChainRole) -> Self {
        ChainEntry {
            role,
            subject: cert.subject.clone(),
            issuer: cert.issuer.clone(),
            serial: cert.serial.clone(),
            not_before: fmt_time(cert.not_before),
            not_after: fmt_time(cert.not_after),
            sha256: cert.sha256.clone(),
            signature_algorithm: cert.signature_algorithm.clone(),
            key: cert.key,
        }
    }
}

/// Everything an operator needs to decide on a bundle before importing it.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub report_version: u32,
    pub id: BundleId,
    pub hostnames: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub key: KeyKind,
    pub completeness: Completeness,
    pub not_before: String,
    pub not_after: String,
    pub chain: Vec<ChainEntry>,
    pub warnings: Vec<Warning>,
    pub files: Vec<FileSummary>,
}

impl InspectReport {
    pub fn new(bundle: &Bundle, files: Vec<FileSummary>) -> Self {
        let leaf = bundle.leaf();
        let mut chain = vec![ChainEntry::of(leaf, ChainRole::Leaf)];
        for c in bundle.chain() {
            let role = if c.is_self_issued() {
                ChainRole::Root
            } else {
                ChainRole::Intermediate
            };
            chain.push(ChainEntry::of(c, role));
        }
        InspectReport {
            report_version: REPORT_VERSION,
            id: bundle.id(),
            hostnames: bundle.hostnames(),
            ip_addresses: leaf.ip_addresses.clone(),
            key: bundle.key().kind(),
            completeness: bundle.completeness(),
            not_before: fmt_time(leaf.not_before),
            not_after: fmt_time(leaf.not_after),
            chain,
            warnings: bundle.warnings().to_vec(),
            files,
        }
    }

    /// The human rendering: aligned fields, the chain as a list, warnings last.
    pub fn to_human(&self) -> String {
        let mut s = String::new();
        let leaf = &self.chain[0];
        let _ = writeln!(s, "leaf:          {}", leaf.subject);
        let hosts = if self.hostnames.is_empty() {
            "(none)".to_string()
        } else {
            self.hostnames.join(", ")
        };
        let _ = writeln!(s, "hostnames:     {hosts}");
        if !self.ip_addresses.is_empty() {
            let _ = writeln!(s, "ip addresses:  {}", self.ip_addresses.join(", "));
        }
        let _ = writeln!(
            s,
            "key:           {} (matches the leaf)",
            display_key(self.key)
        );
        let _ = writeln!(s, "valid:         {} → {}", self.not_before, self.not_after);
        let _ = writeln!(s, "completeness:  {}", completeness_text(self.completeness));
        let _ = writeln!(s, "bundle id:     {}", self.id);
        let _ = writeln!(s, "chain:");
        for (i, c) in self.chain.iter().enumerate() {
            let role = match c.role {
                ChainRole::Leaf => "leaf",
                ChainRole::Intermediate => "intermediate",
                ChainRole::Root => "root",
            };
            let _ = writeln!(s, "  {i}. [{role}] {}", c.subject);
            let _ = writeln!(s, "     issuer {}", c.issuer);
            let _ = writeln!(
                s,
                "     {} → {}, {}, sha256 {}",
                c.not_before,
                c.not_after,
                c.signature_algorithm,
                &c.sha256[..16]
            );
        }
        let _ = writeln!(s, "files:");
        for f in &self.files {
            let _ = writeln!(
                s,
                "  {}: {}, {} certificate(s), {} key(s)",
                f.name, f.format, f.certificates, f.keys
            );
        }
        if self.warnings.is_empty() {
            let _ = writeln!(s, "warnings:      none");
        } else {
            let _ = writeln!(s, "warnings:");
            for w in &self.warnings {
                let _ = writeln!(s, "  - {} [{}]", w.message, w.code);
            }
        }
        s
    }
}

/// A key as people name it: "RSA 2048 bits", "ECDSA P-256".
pub fn display_key(k: KeyKind) -> String {
    match k {
        KeyKind::Rsa { bits } => format!("RSA {bits} bits"),
        KeyKind::EcP256 => "ECDSA P-256".into(),
        KeyKind::EcP384 => "ECDSA P-384".into(),
        KeyKind::Ed25519 => "Ed25519".into(),
    }
}

/// What a chain's completeness means for clients, in a sentence fragment.
pub fn completeness_text(c: Completeness) -> &'static str {
    match c {
        Completeness::Complete => "complete (ends at a self-signed root)",
        Completeness::NoRoot => "no-root (ends at an intermediate; clients supply the root)",
        Completeness::LeafOnly => "leaf-only (no chain: clients may fail to build a path)",
        Completeness::Broken => "broken (certificates missing between links)",
    }
}
