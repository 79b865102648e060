//! Stateless TLS session tickets under cluster-wide keys, so a client resumes on any node.
//!
//! The keys come from the replicated inventory (sealed there under the keyring; the leader
//! adds a new one periodically and the oldest beyond three is dropped). The newest key issues
//! tickets; every kept key decrypts. Ticket format (version 1):
//! `[key id: u32 BE][nonce: 12][AES-256-GCM(ticket state)]`, AAD `certraft-ticket-v1` + id.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use arc_swap::ArcSwap;
use rustls::server::ProducesTickets;

use crate::bundle::Keyring;
use crate::inventory::TicketKey;

const AAD: &[u8] = b"certraft-ticket-v1";
/// The lifetime hint sent to clients: 12 hours (keys rotate every 12 h and three are kept).
pub const TICKET_LIFETIME_SECS: u32 = 12 * 3600;

/// The opened keys, newest last.
#[derive(Default)]
struct Keys(Vec<(u32, Aes256Gcm)>);

#[derive(Default)]
pub struct ClusterTicketer {
    keys: ArcSwap<Keys>,
}

impl std::fmt::Debug for ClusterTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u32> = self.keys.load().0.iter().map(|(id, _)| *id).collect();
        write!(f, "ClusterTicketer(key ids {ids:?}, keys <redacted>)")
    }
}

fn aad(id: u32) -> Vec<u8> {
    let mut a = AAD.to_vec();
    a.extend_from_slice(&id.to_be_bytes());
    a
}

impl ClusterTicketer {
    /// Replaces the keys with `keys`, opened with the keyring. A key that does not open is
    /// skipped (and logged by id); the rest keep working.
    pub fn set(&self, keys: &[TicketKey], keyring: &Keyring) {
        let mut opened = Vec::with_capacity(keys.len());
        for k in keys {
            match keyring.open(TicketKey::record_id(k.id).as_bytes(), &k.sealed) {
                Ok(bytes) if bytes.len() == 32 => {
                    if let Ok(cipher) = Aes256Gcm::new_from_slice(&bytes) {
                        opened.push((k.id, cipher));
                    }
                }
                Ok(_) => tracing::error!(key = k.id, "session-ticket key has the wrong length"),
                Err(e) => {
                    tracing::error!(key = k.id, error = %e, "session-ticket key did not open")
                }
            }
        }
        opened.sort_by_key(|(id, _)| *id);
        self.keys.store(Arc::new(Keys(opened)));
    }

    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.load().0.iter().map(|(id, _)| *id).collect()
    }
}

impl ProducesTickets for ClusterTicketer {
    fn enabled(&self) -> bool {
        !self.keys.load().0.is_empty()
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let (id, cipher) = keys.0.last()?;
        // Public on the wire, so from the handshake pool (see `random`).
        let mut nonce = Nonce::default();
        rustls::crypto::SecureRandom::fill(&super::random::Pooled, &mut nonce).ok()?;
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &aad(*id),
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(4 + 12 + sealed.len());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < 4 + 12 + 16 {
            return None;
        }
        let id = u32::from_be_bytes(ticket[..4].try_into().ok()?);
        let keys = self.keys.load();
        let (_, cipher) = keys.0.iter().find(|(k, _)| *k == id)?;
        cipher
            .decrypt(
                Nonce::from_slice(&ticket[4..16]),
                Payload {
                    msg: &ticket[16..],
                    aad: &aad(id),
                },
            )
            .ok()
    }
}

/// A new sealed ticket key with `id`, for the leader to propose.
pub fn new_key(id: u32, keyring: &Keyring, now: i64) -> TicketKey {
    let key = Aes256Gcm::generate_key(&mut OsRng);
    TicketKey {
        id,
        sealed: keyring.seal(TicketKey::record_id(id).as_bytes(), &key),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::DataKey;

    /// A ticket from the newest key decrypts on another ticketer with the same keys (another
    /// node), still after a rotation while its key is kept, and not after its key is dropped;
    /// a flipped byte is refused.
    #[test]
    fn tickets_cross_nodes_and_rotations() {
        let ring = Keyring::new(DataKey::generate(1));
        let k1 = new_key(1, &ring, 0);
        let a = ClusterTicketer::default();
        let b = ClusterTicketer::default();
        assert!(!a.enabled());
        a.set(std::slice::from_ref(&k1), &ring);
        b.set(std::slice::from_ref(&k1), &ring);
        let t = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&t).unwrap(), b"session state");
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.decrypt(&bad).is_none());
        let k2 = new_key(2, &ring, 1);
        b.set(&[k1.clone(), k2.clone()], &ring);
        assert_eq!(b.decrypt(&t).unwrap(), b"session state");
        assert_eq!(&b.encrypt(b"x").unwrap()[..4], &2u32.to_be_bytes());
        b.set(&[k2], &ring);
        assert!(b.decrypt(&t).is_none());
    }
}
