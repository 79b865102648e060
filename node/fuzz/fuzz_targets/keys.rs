//! Any bytes as a decrypted private key: PKCS#8, SEC1 and PKCS#1, the parsers a decrypted
//! PKCS#12 bag, an encrypted PKCS#8 key or a traditional encrypted PEM key end in (a fuzzer
//! cannot forge ciphertext that decrypts, so they are fuzzed here directly). EC keys without
//! their public key go through the public-key derivation. Must not panic.
#![no_main]

use certraft_core::bundle::PrivateKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PrivateKey::from_pkcs8_der(data);
    let _ = PrivateKey::from_sec1_der(data);
    let _ = PrivateKey::from_pkcs1_der(data);
});
