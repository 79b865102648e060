//! The on-disk and on-wire encodings of Raft entries and snapshots: one place, versioned.
//!
//! ```text
//! entry:    [0x01 = ENTRY_FORMAT_V1] CBOR(Request)
//! snapshot: [0x01 = SNAPSHOT_FORMAT_V1] CBOR(Inventory)
//! ```
//!
//! CBOR (RFC 8949) is self-describing, so tagged enums and fields added later with
//! `#[serde(default)]` decode; sealed blobs are CBOR byte strings (`serde_bytes`), not arrays.
//! postcard was tried first: it cannot decode internally tagged enums.

use super::model::Inventory;
use super::request::Request;

pub const ENTRY_FORMAT_V1: u8 = 1;
pub const SNAPSHOT_FORMAT_V1: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} has format version {version}, which this build does not know; upgrade certraft-node")]
    UnknownVersion { what: &'static str, version: u8 },
    #[error("{what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

pub fn encode_request(req: &Request) -> Vec<u8> {
    encode(ENTRY_FORMAT_V1, req)
}

/// The size of `req` as a log entry, in bytes: what the proposer checks against its bound.
pub fn encoded_len(req: &Request) -> usize {
    encode_request(req).len()
}

pub fn decode_request(bytes: &[u8]) -> Result<Request, CodecError> {
    decode("log entry", ENTRY_FORMAT_V1, bytes)
}

pub fn encode_snapshot(inv: &Inventory) -> Vec<u8> {
    encode(SNAPSHOT_FORMAT_V1, inv)
}

/// SHA-256 of the snapshot encoding: the divergence check (issue 22). Everything `apply`
/// reads is in the encoding (derived indexes are functions of it), so two replicas at the
/// same applied index must show the same digest.
pub fn digest(inv: &Inventory) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(encode_snapshot(inv)).into()
}

pub fn decode_snapshot(bytes: &[u8]) -> Result<Inventory, CodecError> {
    decode("snapshot", SNAPSHOT_FORMAT_V1, bytes)
}

fn encode<T: serde::Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    // Serialising plain owned data into a Vec cannot fail: no I/O, no unsupported types.
    ciborium::into_writer(value, &mut out).expect("CBOR encodes inventory types into a Vec");
    out
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    version: u8,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let (&v, body) = bytes.split_first().ok_or(CodecError::Empty { what })?;
    if v != version {
        return Err(CodecError::UnknownVersion { what, version: v });
    }
    ciborium::from_reader(body).map_err(|e| CodecError::Corrupt {
        what,
        detail: e.to_string(),
    })
}
