//! Randomness for the serve port's public per-handshake values.
//!
//! A TLS 1.3 handshake here asks for randomness seven times outside the key exchange and
//! signature (server random; per ticket: nonce, age_add and the ticket's AEAD nonce), each a
//! getrandom(2) call with ring's `SystemRandom`, together about 2% of a handshake. Every one
//! of those values goes on the wire, so drawing them from a per-thread pool of OS randomness
//! (refilled 4 KiB at a time, used bytes wiped) gives nothing away. Ephemeral key shares and
//! ECDSA nonces do not come from here: ring draws those straight from the OS.

use std::cell::RefCell;
use std::sync::OnceLock;

use rustls::crypto::{GetRandomFailed, SecureRandom};

const POOL: usize = 4096;
/// Larger requests bypass the pool.
const MAX_FROM_POOL: usize = 64;

thread_local! {
    static BYTES: RefCell<(Box<[u8; POOL]>, usize)> = RefCell::new((Box::new([0; POOL]), POOL));
}

/// ring's `SystemRandom` (getrandom(2)), as rustls's ring provider hands it out.
fn os() -> &'static dyn SecureRandom {
    static OS: OnceLock<&'static dyn SecureRandom> = OnceLock::new();
    *OS.get_or_init(|| rustls::crypto::ring::default_provider().secure_random)
}

/// OS randomness through a per-thread pool (see the module docs for what it may serve).
#[derive(Debug)]
pub(super) struct Pooled;

impl SecureRandom for Pooled {
    fn fill(&self, out: &mut [u8]) -> Result<(), GetRandomFailed> {
        if out.len() > MAX_FROM_POOL {
            return os().fill(out);
        }
        BYTES.with_borrow_mut(|(pool, used)| {
            if *used + out.len() > POOL {
                os().fill(&mut pool[..])?;
                *used = 0;
            }
            let take = &mut pool[*used..*used + out.len()];
            out.copy_from_slice(take);
            take.fill(0);
            *used += out.len();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_distinct_across_refills_and_never_repeat_bytes_handed_out() {
        let mut seen = std::collections::HashSet::new();
        // 3 pools' worth in 32-byte draws, plus odd sizes and a bypass.
        for i in 0..(3 * POOL / 32) {
            let mut b = [0u8; 32];
            Pooled.fill(&mut b).unwrap();
            assert!(seen.insert(b), "draw {i} repeated an earlier one");
        }
        let mut odd = [0u8; 7];
        Pooled.fill(&mut odd).unwrap();
        let mut big = [0u8; 200];
        Pooled.fill(&mut big).unwrap();
        assert!(big.iter().any(|&x| x != 0));
        BYTES.with_borrow(|(pool, used)| {
            assert!(
                pool[..*used].iter().all(|&x| x == 0),
                "used bytes are wiped"
            );
        });
    }
}
