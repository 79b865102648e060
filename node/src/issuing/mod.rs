//! Certificates born in the cluster (issue 14): keys and CSRs made on the leader
//! ([`keygen`]), the cluster's local issuer ([`local`]) and the webhook notices
//! ([`notify`]). The leader's duties that renew and notify live in `node/issuing_duties.rs`.
//!
//! Keys are generated on the blocking pool, sealed before they enter a Raft entry, and never
//! leave the cluster in the clear. Secrets only a leader needs (the local issuer's key,
//! webhook HMAC secrets) are sealed under the core keyring, which a traffic node cannot
//! derive. Every change goes through Raft, so a new leader resumes where the last stopped.

pub mod acme;
pub mod keygen;
pub mod local;
pub mod notify;

use crate::bundle::Keyring;
use crate::inventory::{KeyType, LocalIssuer, Managed, NewBundle};

/// Why a key, CSR or certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssuingError {
    #[error("{0}")]
    BadInput(String),
    #[error("generating a {key_type} key failed: {detail}")]
    KeyGeneration { key_type: KeyType, detail: String },
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("the local issuer's key cannot be used: {0}")]
    IssuerKey(String),
    #[error("the issued certificate does not make a valid bundle: {0}")]
    Assemble(String),
    #[error("this node holds no cluster CA key (a traffic node never does), so it cannot issue; the leader issues")]
    NoCoreKey,
}

impl IssuingError {
    pub fn code(&self) -> &'static str {
        match self {
            IssuingError::BadInput(_) => "invalid_input",
            IssuingError::KeyGeneration { .. } => "key_generation_failed",
            IssuingError::Sign(_) => "signing_failed",
            IssuingError::IssuerKey(_) => "issuer_key_unusable",
            IssuingError::Assemble(_) => "issued_bundle_invalid",
            IssuingError::NoCoreKey => "no_core_key",
        }
    }
}

/// Makes a new key and a certificate for `managed` under the local issuer, and seals the
/// bundle under `keyring`: the one path of `cert issue` and of every renewal. CPU-bound.
pub fn issue_managed(
    issuer: &LocalIssuer,
    core: &Keyring,
    keyring: &Keyring,
    name: &str,
    managed: &Managed,
    now: i64,
) -> Result<NewBundle, IssuingError> {
    let key = keygen::generate(managed.key_type)?;
    let spec = local::LeafSpec {
        sans: managed.sans.clone(),
        key_type: managed.key_type,
        lifetime_secs: managed.lifetime_secs,
    };
    let bundle = local::issue(issuer, core, &key, &spec, now)?;
    Ok(NewBundle {
        name: name.to_string(),
        sealed: bundle.seal(keyring),
        meta: crate::inventory::BundleMeta::of(&bundle),
    })
}

/// `der` as PEM with `\n` line endings (the `pem` crate's default is `\r\n`, which some
/// tools and diff-based config management mind).
pub fn pem_lf(tag: &str, der: Vec<u8>) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
