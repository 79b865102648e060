//! Any bytes as a sealed bundle record: refused, never a panic.
#![no_main]

use certraft_core::bundle::{DataKey, Keyring, SealedBundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keyring = Keyring::new(DataKey::from_bytes(1, [7; 32]));
    let id = [0u8; 32];
    let sealed = SealedBundle {
        id,
        blob: data.to_vec().into(),
    };
    // Forging an AES-GCM tag is out of reach: every input must be refused.
    assert!(sealed.open(&keyring).is_err());
});
