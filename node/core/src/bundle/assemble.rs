//! Bundle assembly: from whatever files the operator gave to one validated [`Bundle`].
//!
//! Pure and synchronous: the caller passes the parsed files and the current time.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cert::CertInfo;
use super::formats::ParsedFile;
use super::key::{KeyKind, PrivateKey};
use super::limits::{MAX_BUNDLE_DER_BYTES, MAX_CERTS_PER_BUNDLE, MAX_SAN_NAMES_PER_CERT};

/// Seconds before expiry at which a leaf gets an "expiring soon" warning.
pub const EXPIRY_WARNING_SECS: i64 = 30 * 24 * 3600;

/// Checks an operator may waive. The defaults refuse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssembleOptions {
    /// Accept a chain with a gap (`--allow-incomplete`).
    pub allow_incomplete: bool,
    /// Accept a leaf outside its validity window (`--allow-expired`).
    pub allow_expired: bool,
}

/// How far the chain reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Completeness {
    /// Ends at a self-signed root.
    Complete,
    /// Ends at an intermediate whose issuer is absent (usual: clients hold the root).
    NoRoot,
    /// No chain at all: clients may not build a path.
    LeafOnly,
    /// Some certificates do not link: an intermediate is missing between them.
    Broken,
}

impl fmt::Display for Completeness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Completeness::Complete => "complete",
            Completeness::NoRoot => "no-root",
            Completeness::LeafOnly => "leaf-only",
            Completeness::Broken => "broken",
        })
    }
}

/// Content-derived identity: identical leaf and chain give the identical id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId(pub [u8; 32]);

impl BundleId {
    /// SHA-256 over a domain tag and the length-prefixed DER of leaf and chain, in order.
    /// The private key is determined by the leaf's public key, so it is not hashed.
    pub fn of_certs<'a>(certs: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut h = Sha256::new();
        h.update(b"certraft-bundle-id-v1\0");
        for der in certs {
            h.update((der.len() as u64).to_be_bytes());
            h.update(der);
        }
        BundleId(h.finalize().into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for BundleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Something accepted but worth the operator's attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

fn warn(code: &'static str, message: String) -> Warning {
    Warning { code, message }
}

/// Why the files do not make a bundle. Nothing is written when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    #[error("no private key in {} ({certs} certificate(s) found); add the key file that belongs to the certificate", files.join(", "))]
    NoKey { files: Vec<String>, certs: usize },
    #[error("no certificate in these files; add the certificate issued for the private key in {key_file} ({key_kind})")]
    NoCertificate { key_file: String, key_kind: KeyKind },
    #[error("more than one private key: {}; give exactly one key per bundle", keys.join(", "))]
    MultipleKeys { keys: Vec<String> },
    #[error("no certificate in these files matches the private key in {key_file} ({key_kind}); certificates given: {}; add the certificate issued for this key", certs.join(", "))]
    KeyMismatch {
        key_file: String,
        key_kind: KeyKind,
        certs: Vec<String>,
    },
    #[error("broken chain: it stops at {stops_at}, whose issuer {missing_issuer} is not among the files, and {} do(es) not link to it; add the missing intermediate, remove unrelated certificates, or pass --allow-incomplete", unlinked.join(", "))]
    BrokenChain {
        stops_at: String,
        missing_issuer: String,
        unlinked: Vec<String>,
    },
    #[error("the certificate {leaf} in {file} expired on {not_after}; renew it, or pass --allow-expired to import it anyway")]
    Expired {
        leaf: String,
        file: String,
        not_after: String,
    },
    #[error("the certificate {leaf} in {file} is not valid before {not_before}; wait until then, or pass --allow-expired to import it anyway")]
    NotYetValid {
        leaf: String,
        file: String,
        not_before: String,
    },
    #[error("{found} certificates were given; a bundle takes at most {max} (a leaf and its chain are usually 2–4); give only the leaf and its chain, not a CA bundle")]
    TooManyCertificates { found: usize, max: usize },
    #[error("the certificate {cert} in {file} has {found} subject alternative names; certraft serves at most {max} per certificate; split the names over several certificates")]
    TooManyNames {
        cert: String,
        file: String,
        found: usize,
        max: usize,
    },
    #[error("{what} is {size} bytes of DER; certraft serves at most {max} bytes of leaf and chain together (every handshake sends them); leave out the root and any certificate clients do not need")]
    TooLarge {
        what: String,
        size: usize,
        max: usize,
    },
}

impl AssembleError {
    /// A stable machine-readable code, as used in JSON output and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            AssembleError::NoKey { .. } => "no_key",
            AssembleError::NoCertificate { .. } => "no_certificate",
            AssembleError::MultipleKeys { .. } => "multiple_keys",
            AssembleError::KeyMismatch { .. } => "key_mismatch",
            AssembleError::BrokenChain { .. } => "broken_chain",
            AssembleError::Expired { .. } => "expired",
            AssembleError::NotYetValid { .. } => "not_yet_valid",
            AssembleError::TooManyCertificates { .. } => "too_many_certificates",
            AssembleError::TooManyNames { .. } => "too_many_names",
            AssembleError::TooLarge { .. } => "too_large",
        }
    }
}

/// A validated bundle: one private key, the leaf it belongs to, and the ordered chain.
#[derive(Debug)]
pub struct Bundle {
    id: BundleId,
    key: PrivateKey,
    leaf: CertInfo,
    chain: Vec<CertInfo>,
    completeness: Completeness,
    warnings: Vec<Warning>,
}

impl Bundle {
    pub fn id(&self) -> BundleId {
        self.id
    }
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }
    pub fn leaf(&self) -> &CertInfo {
        &self.leaf
    }
    /// Intermediates then root, in issuing order, without the leaf.
    pub fn chain(&self) -> &[CertInfo] {
        &self.chain
    }
    pub fn completeness(&self) -> Completeness {
        self.completeness
    }
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
    pub fn hostnames(&self) -> Vec<String> {
        self.leaf.hostnames()
    }
    /// Leaf then chain.
    pub fn certs(&self) -> impl Iterator<Item = &CertInfo> {
        std::iter::once(&self.leaf).chain(self.chain.iter())
    }

    /// The serving-ready form: the signing key and what a handshake sends of leaf + chain
    /// ([`super::record::served_chain`]: no trust anchor at the end).
    pub fn certified_key(&self) -> rustls::sign::CertifiedKey {
        let ders: Vec<Vec<u8>> = self.certs().map(|c| c.der.clone()).collect();
        rustls::sign::CertifiedKey::new(super::record::served_chain(&ders), self.key.signing_key())
    }
}

struct Sourced<T> {
    item: T,
    file: String,
}

/// Assembles one bundle from parsed files. `now` is seconds since the Unix epoch.
pub fn assemble(
    files: Vec<ParsedFile>,
    options: AssembleOptions,
    now: i64,
) -> Result<Bundle, AssembleError> {
    let mut warnings = Vec::new();
    let file_names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let mut keys: Vec<Sourced<PrivateKey>> = Vec::new();
    let mut certs: Vec<Sourced<CertInfo>> = Vec::new();
    for file in files {
        for ignored in &file.ignored {
            warnings.push(warn(
                "ignored_content",
                format!("{}: {ignored} was ignored", file.name),
            ));
        }
        for key in file.keys {
            // The same key given twice (say in a PKCS#12 and a PEM) is one key.
            if !keys.iter().any(|k| k.item.spki() == key.spki()) {
                keys.push(Sourced {
                    item: key,
                    file: file.name.clone(),
                });
            }
        }
        for cert in file.certs {
            certs.push(Sourced {
                item: cert,
                file: file.name.clone(),
            });
        }
    }

    check_sizes(&certs)?;

    let key = match keys.len() {
        0 => {
            return Err(AssembleError::NoKey {
                files: file_names,
                certs: certs.len(),
            })
        }
        1 => keys.pop().expect("len is 1"),
        _ => {
            return Err(AssembleError::MultipleKeys {
                keys: keys
                    .iter()
                    .map(|k| format!("{} ({})", k.file, k.item.kind()))
                    .collect(),
            })
        }
    };

    // Duplicates: keep the first copy of each certificate.
    let mut seen = HashSet::new();
    let mut unique: Vec<Sourced<CertInfo>> = Vec::new();
    for c in certs {
        if seen.insert(c.item.sha256.clone()) {
            unique.push(c);
        } else {
            warnings.push(warn(
                "duplicate_certificate",
                format!(
                    "{} appears more than once (again in {}); the copy was ignored",
                    c.item.display_name(),
                    c.file
                ),
            ));
        }
    }
    if unique.is_empty() {
        return Err(AssembleError::NoCertificate {
            key_file: key.file,
            key_kind: key.item.kind(),
        });
    }

    // The leaf: the certificate whose public key matches the private key.
    let (mut matching, mut others): (Vec<_>, Vec<_>) = unique
        .into_iter()
        .partition(|c| c.item.spki == key.item.spki());
    if matching.is_empty() {
        return Err(AssembleError::KeyMismatch {
            key_file: key.file,
            key_kind: key.item.kind(),
            certs: others
                .iter()
                .map(|c| format!("{} ({})", c.item.display_name(), c.file))
                .collect(),
        });
    }
    // Several certificates for one key (renewals): currently valid first, then the latest.
    matching.sort_by_key(|c| {
        let valid = c.item.not_before <= now && now <= c.item.not_after;
        (
            std::cmp::Reverse(valid),
            std::cmp::Reverse(c.item.not_after),
        )
    });
    let Sourced {
        item: leaf,
        file: leaf_file,
    } = matching.remove(0);
    for other in matching {
        warnings.push(warn(
            "superseded_certificate",
            format!(
                "{} (serial {}, in {}) is for the same key but not the newest valid one; it was left out",
                other.item.display_name(),
                other.item.serial,
                other.file
            ),
        ));
    }

    // Order the chain by signature, from the leaf upwards.
    let mut chain: Vec<CertInfo> = Vec::new();
    let mut reached_root = false;
    loop {
        let current = chain.last().unwrap_or(&leaf);
        if current.is_self_issued() && current.signature_verifies_with(&current.spki) {
            reached_root = true;
            break;
        }
        let Some(pos) = others.iter().position(|c| current.is_signed_by(&c.item)) else {
            for c in others
                .iter()
                .filter(|c| c.item.subject_raw == current.issuer_raw)
            {
                warnings.push(warn(
                    "issuer_signature_mismatch",
                    format!(
                        "{} in {} has the issuer's name of {} but did not sign it (a re-keyed or different CA?)",
                        c.item.display_name(),
                        c.file,
                        current.display_name()
                    ),
                ));
            }
            break;
        };
        chain.push(others.remove(pos).item);
    }
    let last = chain.last().unwrap_or(&leaf);

    // What is left over did not link: unrelated, or above a gap.
    let (ca_left, unrelated): (Vec<_>, Vec<_>) = others
        .into_iter()
        .partition(|c| !reached_root && (c.item.is_ca || c.item.is_self_issued()));
    for c in &unrelated {
        warnings.push(warn(
            "unrelated_certificate",
            format!(
                "{} in {} is not part of this certificate's chain; it was left out",
                c.item.display_name(),
                c.file
            ),
        ));
    }
    let completeness = if reached_root {
        Completeness::Complete
    } else if !ca_left.is_empty() {
        let unlinked: Vec<String> = ca_left
            .iter()
            .map(|c| format!("{} ({})", c.item.display_name(), c.file))
            .collect();
        if !options.allow_incomplete {
            return Err(AssembleError::BrokenChain {
                stops_at: last.display_name(),
                missing_issuer: last.issuer.clone(),
                unlinked,
            });
        }
        warnings.push(warn(
            "broken_chain",
            format!(
                "the chain stops at {} (issuer {} missing); {} left out",
                last.display_name(),
                last.issuer,
                unlinked.join(", ")
            ),
        ));
        Completeness::Broken
    } else if chain.is_empty() {
        warnings.push(warn(
            "leaf_only",
            "no chain was given: clients that do not already hold the intermediate may fail to build a path; add the intermediate certificate(s)".into(),
        ));
        Completeness::LeafOnly
    } else {
        Completeness::NoRoot
    };
    if reached_root && chain.is_empty() {
        warnings.push(warn(
            "self_signed",
            format!(
                "{} is self-signed: only clients that trust it directly will accept it",
                leaf.display_name()
            ),
        ));
    }

    // Validity window.
    if leaf.not_after < now {
        let not_after = fmt_time(leaf.not_after);
        if !options.allow_expired {
            return Err(AssembleError::Expired {
                leaf: leaf.display_name(),
                file: leaf_file,
                not_after,
            });
        }
        warnings.push(warn(
            "expired",
            format!("the certificate expired on {not_after}"),
        ));
    } else if leaf.not_before > now {
        let not_before = fmt_time(leaf.not_before);
        if !options.allow_expired {
            return Err(AssembleError::NotYetValid {
                leaf: leaf.display_name(),
                file: leaf_file,
                not_before,
            });
        }
        warnings.push(warn(
            "not_yet_valid",
            format!("the certificate is not valid before {not_before}"),
        ));
    } else if leaf.not_after - now < EXPIRY_WARNING_SECS {
        warnings.push(warn(
            "expiring_soon",
            format!(
                "the certificate expires on {}, in less than 30 days",
                fmt_time(leaf.not_after)
            ),
        ));
    }
    for c in &chain {
        if c.not_after < now {
            warnings.push(warn(
                "chain_expired",
                format!(
                    "chain certificate {} expired on {}",
                    c.display_name(),
                    fmt_time(c.not_after)
                ),
            ));
        }
    }

    // Other things an operator should know.
    for c in std::iter::once(&leaf).chain(chain.iter()) {
        if c.uses_sha1() && !c.is_self_issued() {
            warnings.push(warn(
                "sha1_signature",
                format!(
                    "{} is signed with SHA-1, which clients reject",
                    c.display_name()
                ),
            ));
        }
    }
    if leaf.is_ca {
        warnings.push(warn(
            "leaf_is_ca",
            format!(
                "{} is a CA certificate, not a server certificate",
                leaf.display_name()
            ),
        ));
    }
    if leaf.server_auth == Some(false) {
        warnings.push(warn(
            "no_server_auth",
            format!(
                "{} is not issued for TLS servers (no serverAuth extended key usage)",
                leaf.display_name()
            ),
        ));
    }
    if leaf.hostnames().is_empty() {
        warnings.push(warn(
            "no_hostnames",
            format!(
                "{} names no DNS host; it can only serve as the default certificate",
                leaf.display_name()
            ),
        ));
    }

    let size: usize = std::iter::once(&leaf)
        .chain(chain.iter())
        .map(|c| c.der.len())
        .sum();
    if size > MAX_BUNDLE_DER_BYTES {
        return Err(AssembleError::TooLarge {
            what: format!(
                "the leaf {} and its chain of {} certificate(s) together",
                leaf.display_name(),
                chain.len()
            ),
            size,
            max: MAX_BUNDLE_DER_BYTES,
        });
    }

    let id = BundleId::of_certs(
        std::iter::once(leaf.der.as_slice()).chain(chain.iter().map(|c| c.der.as_slice())),
    );
    Ok(Bundle {
        id,
        key: key.item,
        leaf,
        chain,
        completeness,
        warnings,
    })
}

/// The caps of [`limits`](super::limits) on what was given, checked before the chain is
/// ordered (which verifies signatures pairwise, so its cost grows with the square of the count
/// and with each certificate's size).
fn check_sizes(certs: &[Sourced<CertInfo>]) -> Result<(), AssembleError> {
    if certs.len() > MAX_CERTS_PER_BUNDLE {
        return Err(AssembleError::TooManyCertificates {
            found: certs.len(),
            max: MAX_CERTS_PER_BUNDLE,
        });
    }
    for c in certs {
        let names = c.item.dns_names.len() + c.item.ip_addresses.len();
        if names > MAX_SAN_NAMES_PER_CERT {
            return Err(AssembleError::TooManyNames {
                cert: c.item.display_name(),
                file: c.file.clone(),
                found: names,
                max: MAX_SAN_NAMES_PER_CERT,
            });
        }
        if c.item.der.len() > MAX_BUNDLE_DER_BYTES {
            return Err(AssembleError::TooLarge {
                what: format!("the certificate {} in {}", c.item.display_name(), c.file),
                size: c.item.der.len(),
                max: MAX_BUNDLE_DER_BYTES,
            });
        }
    }
    Ok(())
}

/// RFC 3339 in UTC, for messages and reports.
pub fn fmt_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests;
