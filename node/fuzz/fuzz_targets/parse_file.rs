//! Any bytes, as any file, with or without a passphrase: parse, then assemble. Must not panic.
#![no_main]

use certraft_core::bundle::{assemble, parse_file, AssembleOptions, Passphrase};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (flag, bytes) = data.split_first().unwrap_or((&0, data));
    let pass = Passphrase::new("correct horse battery staple");
    let pass = (flag & 1 == 1).then_some(&pass);
    if let Ok(file) = parse_file("fuzz", bytes, pass) {
        let _ = assemble(vec![file], AssembleOptions::default(), 1_800_000_000);
    }
});
