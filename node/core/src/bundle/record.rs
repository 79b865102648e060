//! The sealed bundle record: how a bundle rests on disk and travels in the Raft log.
//!
//! Plaintext payload, version 1 (then sealed by [`Keyring::seal`] with the bundle id as AAD):
//!
//! ```text
//! [0]                payload version (1)
//! u32 BE + bytes     private key, PKCS#8 DER
//! u16 BE             certificate count (leaf first, then the chain in issuing order)
//! (u32 BE + bytes)*  certificate DER
//! ```

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::assemble::{Bundle, BundleId};
use super::key::load_signing_key;
use super::seal::{Keyring, SealError};

pub const BUNDLE_PAYLOAD_V1: u8 = 1;

/// A bundle as stored and replicated: its id in the clear, everything else sealed.
///
/// The sealed bytes are shared (`Arc`): the inventory, the serving index and each serving
/// delta hold the same allocation, so 100,000 bundles rest in memory once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBundle {
    pub id: [u8; 32],
    #[serde(with = "shared_bytes")]
    pub blob: Arc<[u8]>,
}

/// Serde for `Arc<[u8]>` as a CBOR byte string (the same wire form as `serde_bytes`).
mod shared_bytes {
    use std::sync::Arc;

    pub(super) fn serialize<S: serde::Serializer>(v: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        serde_bytes::serialize(&v[..], s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<[u8]>, D::Error> {
        let v: serde_bytes::ByteBuf = serde::Deserialize::deserialize(d)?;
        Ok(Arc::from(v.into_vec()))
    }
}

impl fmt::Debug for SealedBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealedBundle({}, {} sealed bytes)",
            hex::encode(self.id),
            self.blob.len()
        )
    }
}

/// Why a sealed bundle did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("sealed bundle {id} opened but its payload is malformed ({detail}); restore it from a healthy node or a backup")]
    Payload { id: String, detail: String },
    #[error("sealed bundle {id} holds a key rustls cannot load ({detail})")]
    Key { id: String, detail: String },
}

impl OpenError {
    pub fn code(&self) -> &'static str {
        match self {
            OpenError::Seal(e) => e.code(),
            OpenError::Payload { .. } => "sealed_payload_malformed",
            OpenError::Key { .. } => "sealed_key_unusable",
        }
    }
}

/// The opened contents of a sealed bundle: key and certificates, without re-validation.
pub struct BundleMaterial {
    pub id: BundleId,
    key_pkcs8: Zeroizing<Vec<u8>>,
    certs: Vec<Vec<u8>>,
}

impl fmt::Debug for BundleMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleMaterial")
            .field("id", &self.id)
            .field("key_pkcs8", &"<redacted>")
            .field("certs", &self.certs.len())
            .finish()
    }
}

impl BundleMaterial {
    pub fn key_pkcs8(&self) -> &[u8] {
        &self.key_pkcs8
    }

    /// Leaf first, then the chain.
    pub fn certs(&self) -> &[Vec<u8>] {
        &self.certs
    }

    /// The serving-ready form: the key and [`served_chain`].
    pub fn certified_key(&self) -> Result<CertifiedKey, OpenError> {
        let key = load_signing_key(&self.key_pkcs8).map_err(|detail| OpenError::Key {
            id: self.id.to_hex(),
            detail,
        })?;
        Ok(CertifiedKey::new(served_chain(&self.certs), key))
    }
}

/// What a handshake sends of a bundle's certificates (leaf first): all of them but a trust
/// anchor at the end, that is a self-issued CA certificate after the leaf. RFC 8446 §4.4.2
/// lets a server omit it (a client that trusts it has it already, and one that does not
/// gains nothing from it); sending it costs every handshake its bytes and makes scanners
/// flag "self signed CA in chain". The bundle keeps it: export and `cert show` list it.
/// A leaf alone is sent as it is, self-signed or not.
pub fn served_chain(certs: &[Vec<u8>]) -> Vec<CertificateDer<'static>> {
    let anchor_at_end = match certs.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            super::cert::parse_cert(last).is_ok_and(|c| c.is_ca && c.is_self_issued())
        }
        _ => false,
    };
    let sent = if anchor_at_end {
        &certs[..certs.len() - 1]
    } else {
        certs
    };
    sent.iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect()
}

impl Bundle {
    /// Seals this bundle under the keyring's active data key.
    pub fn seal(&self, keyring: &Keyring) -> SealedBundle {
        let key = self.key().pkcs8_der();
        let certs: Vec<&[u8]> = self.certs().map(|c| c.der.as_slice()).collect();
        let mut payload = Zeroizing::new(Vec::with_capacity(
            8 + key.len() + certs.iter().map(|c| c.len() + 4).sum::<usize>(),
        ));
        payload.push(BUNDLE_PAYLOAD_V1);
        payload.extend_from_slice(&(key.len() as u32).to_be_bytes());
        payload.extend_from_slice(key);
        payload.extend_from_slice(&(certs.len() as u16).to_be_bytes());
        for c in &certs {
            payload.extend_from_slice(&(c.len() as u32).to_be_bytes());
            payload.extend_from_slice(c);
        }
        SealedBundle {
            id: self.id().0,
            blob: keyring.seal(&self.id().0, &payload).into(),
        }
    }
}

impl SealedBundle {
    /// Authenticates, decrypts and decodes. One AES-GCM pass; no password KDF.
    pub fn open(&self, keyring: &Keyring) -> Result<BundleMaterial, OpenError> {
        let payload = keyring.open(&self.id, &self.blob)?;
        let id = BundleId(self.id);
        let bad = |detail: &str| OpenError::Payload {
            id: id.to_hex(),
            detail: detail.into(),
        };
        let mut r = Reader(&payload);
        match r.u8() {
            Some(BUNDLE_PAYLOAD_V1) => {}
            Some(v) => return Err(bad(&format!("unknown payload version {v}"))),
            None => return Err(bad("empty")),
        }
        let key_len = r.u32().ok_or_else(|| bad("no key length"))? as usize;
        let key_pkcs8 = Zeroizing::new(
            r.take(key_len)
                .ok_or_else(|| bad("key cut short"))?
                .to_vec(),
        );
        let count = r.u16().ok_or_else(|| bad("no certificate count"))? as usize;
        if count == 0 {
            return Err(bad("no certificates"));
        }
        let mut certs = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u32().ok_or_else(|| bad("no certificate length"))? as usize;
            certs.push(
                r.take(len)
                    .ok_or_else(|| bad("certificate cut short"))?
                    .to_vec(),
            );
        }
        if !r.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(BundleMaterial {
            id,
            key_pkcs8,
            certs,
        })
    }

    /// Opens straight into the form the TLS listener serves.
    pub fn open_certified(&self, keyring: &Keyring) -> Result<Arc<CertifiedKey>, OpenError> {
        self.open(keyring)?.certified_key().map(Arc::new)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::served_chain;

    fn der(pem_file: &[u8]) -> Vec<u8> {
        pem::parse(pem_file)
            .expect("a PEM certificate")
            .into_contents()
    }

    #[test]
    fn only_a_trust_anchor_at_the_end_is_left_out() {
        let leaf = der(include_bytes!("../../../tests/fixtures/leaf-ec256.pem"));
        let inter = der(include_bytes!("../../../tests/fixtures/inter.pem"));
        let root = der(include_bytes!("../../../tests/fixtures/root.pem"));
        let alone = der(include_bytes!("../../../tests/fixtures/selfsigned.pem"));
        let sent = |certs: &[&Vec<u8>]| {
            let owned: Vec<Vec<u8>> = certs.iter().map(|c| (*c).clone()).collect();
            served_chain(&owned)
                .iter()
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(sent(&[&leaf, &inter, &root]), [leaf.clone(), inter.clone()]);
        assert_eq!(sent(&[&leaf, &inter]), [leaf.clone(), inter.clone()]);
        // A self-signed leaf alone is what the client gets; a root is never the leaf.
        assert_eq!(sent(&[&alone]), std::slice::from_ref(&alone));
        assert_eq!(sent(&[&root]), std::slice::from_ref(&root));
        // Not a CA, or not parseable: sent as it is.
        assert_eq!(sent(&[&leaf, &alone]), [leaf.clone(), alone.clone()]);
        let junk = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        assert_eq!(sent(&[&leaf, &junk]), [leaf, junk]);
    }
}
