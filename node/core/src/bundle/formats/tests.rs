//! Unit tests of `formats.rs` (kept beside it so the module itself stays readable).

use std::time::{Duration, Instant};

use super::*;
use crate::bundle::crafted::{
    cert_bag, encrypted_pkcs8, named_cert, passphrase, pbes2_alg, pbkdf2_params, pem_of, pfx,
    pfx_with_container, pfx_with_encrypted_bags, pfx_with_mac, pkcs12_pbe_alg, real_key_bag,
    scrypt_params, secret_bag, shrouded_key_bag, BOMB_ITERATIONS, PBE_SHA1_3DES, PBE_SHA1_RC2_40,
};
use crate::bundle::limits::{
    KdfLimit, MAX_CERTS_PER_FILE, MAX_KDF_RUNS_PER_FILE, MAX_KEYS_PER_FILE, MAX_SCRYPT_MEMORY,
};

enum Want {
    Kdf(KdfSite, KdfLimit),
    Code(&'static str),
    /// Read without running the derivation: this many certificates and keys, and a note of
    /// what was skipped (if any).
    Read {
        certs: usize,
        keys: usize,
        skipped: Option<&'static str>,
    },
}

fn iterations(kdf: &'static str, iterations: u64) -> KdfLimit {
    KdfLimit::Iterations {
        kdf,
        iterations,
        max: MAX_KDF_ITERATIONS,
    }
}

fn tebibyte_scrypt() -> KdfLimit {
    KdfLimit::ScryptMemory {
        n: 1 << 30,
        r: 8,
        memory: 1 << 40,
        max: MAX_SCRYPT_MEMORY,
    }
}

/// The key derivation bombs, each refused with the site and the values found, in well
/// under a second. Regression test for the security review's findings: a 300-byte scrypt
/// PKCS#8 (N=2^30) made the importer allocate 1 TiB and abort; PBKDF2 and PKCS#12
/// iteration counts of 2^31-1 froze it. Without the pre-flight each of these aborts the
/// test process or runs for many minutes. Each derivation is checked right before it runs.
#[test]
fn kdf_bombs_are_refused_before_any_derivation() {
    let loop_leaf = named_cert("loop a", "loop b");
    let loop_other = named_cert("loop b", "loop a");
    let many_runs: Vec<Vec<u8>> = (0..=MAX_KDF_RUNS_PER_FILE)
        .map(|_| real_key_bag(&loop_leaf.1))
        .collect();
    let many_certs: Vec<Vec<u8>> = (0..=MAX_CERTS_PER_FILE)
        .map(|_| cert_bag(&loop_leaf.0, false))
        .collect();
    let pkcs8_der = KdfSite::EncryptedKey { der: true };
    let cases: Vec<(&str, Vec<u8>, Option<Passphrase>, Want)> = vec![
        (
            "PKCS#8 DER, scrypt N=2^30",
            encrypted_pkcs8(scrypt_params(1 << 30, 8, 1)),
            Some(passphrase()),
            Want::Kdf(pkcs8_der, tebibyte_scrypt()),
        ),
        (
            "PKCS#8 DER, scrypt N=2^30, no passphrase",
            encrypted_pkcs8(scrypt_params(1 << 30, 8, 1)),
            None,
            Want::Kdf(pkcs8_der, tebibyte_scrypt()),
        ),
        (
            "PKCS#8 PEM, scrypt N=2^30",
            pem_of(
                "ENCRYPTED PRIVATE KEY",
                &encrypted_pkcs8(scrypt_params(1 << 30, 8, 1)),
            ),
            Some(passphrase()),
            Want::Kdf(KdfSite::EncryptedKey { der: false }, tebibyte_scrypt()),
        ),
        (
            "PKCS#8 DER, scrypt p=17",
            encrypted_pkcs8(scrypt_params(1 << 14, 8, 17)),
            Some(passphrase()),
            Want::Kdf(pkcs8_der, KdfLimit::ScryptParallelism { p: 17, max: 16 }),
        ),
        (
            "PKCS#8 DER, PBKDF2 2^31-1",
            encrypted_pkcs8(pbkdf2_params(BOMB_ITERATIONS as u32)),
            Some(passphrase()),
            Want::Kdf(pkcs8_der, iterations("PBKDF2", BOMB_ITERATIONS)),
        ),
        (
            "PKCS#12 MAC 2^31-1",
            pfx_with_mac(BOMB_ITERATIONS),
            Some(passphrase()),
            Want::Kdf(
                KdfSite::Pkcs12Mac,
                iterations("the PKCS#12 KDF", BOMB_ITERATIONS),
            ),
        ),
        (
            "PKCS#12 MAC 2^64-1, no passphrase",
            pfx_with_mac(u64::MAX),
            None,
            Want::Kdf(KdfSite::Pkcs12Mac, iterations("the PKCS#12 KDF", u64::MAX)),
        ),
        (
            "PKCS#12 shrouded key bag, PBES2 PBKDF2 2^31-1",
            pfx(&[&shrouded_key_bag(
                &pbes2_alg(pbkdf2_params(BOMB_ITERATIONS as u32)),
                &[0; 48],
            )]),
            Some(passphrase()),
            Want::Kdf(KdfSite::Pkcs12Bag, iterations("PBKDF2", BOMB_ITERATIONS)),
        ),
        (
            "PKCS#12 shrouded key bag, PBES2 scrypt N=2^30",
            pfx(&[&shrouded_key_bag(
                &pbes2_alg(scrypt_params(1 << 30, 8, 1)),
                &[0; 48],
            )]),
            None,
            Want::Kdf(KdfSite::Pkcs12Bag, tebibyte_scrypt()),
        ),
        (
            "PKCS#12 shrouded key bag, 3DES 2^31-1",
            pfx(&[&shrouded_key_bag(
                &pkcs12_pbe_alg(PBE_SHA1_3DES, BOMB_ITERATIONS),
                &[0; 48],
            )]),
            Some(passphrase()),
            Want::Kdf(
                KdfSite::Pkcs12Bag,
                iterations("the PKCS#12 KDF", BOMB_ITERATIONS),
            ),
        ),
        (
            "PKCS#12 secret bag wrapping a key, PBKDF2 2^31-1",
            pfx(&[&secret_bag(&pbes2_alg(pbkdf2_params(
                BOMB_ITERATIONS as u32,
            )))]),
            Some(passphrase()),
            // certraft does not open secret bags: the wrapped key's derivation never runs.
            Want::Read {
                certs: 0,
                keys: 0,
                skipped: Some("a PKCS#12 secret bag"),
            },
        ),
        (
            "PKCS#12 encrypted container, RC2-40 2^31-1",
            pfx_with_container(&pkcs12_pbe_alg(PBE_SHA1_RC2_40, BOMB_ITERATIONS), &[0; 48]),
            Some(passphrase()),
            Want::Kdf(
                KdfSite::Pkcs12Container,
                iterations("the PKCS#12 KDF", BOMB_ITERATIONS),
            ),
        ),
        (
            "PKCS#12 scrypt bag inside an encrypted container",
            pfx_with_encrypted_bags(&[&shrouded_key_bag(
                &pbes2_alg(scrypt_params(1 << 30, 8, 1)),
                &[0; 48],
            )]),
            Some(passphrase()),
            Want::Kdf(KdfSite::Pkcs12NestedBag, tebibyte_scrypt()),
        ),
        (
            "PKCS#12 3DES bag inside an encrypted container",
            pfx_with_encrypted_bags(&[&shrouded_key_bag(
                &pkcs12_pbe_alg(PBE_SHA1_3DES, BOMB_ITERATIONS),
                &[0; 48],
            )]),
            Some(passphrase()),
            Want::Kdf(
                KdfSite::Pkcs12NestedBag,
                iterations("the PKCS#12 KDF", BOMB_ITERATIONS),
            ),
        ),
        (
            // The nested bomb cannot be seen without the passphrase, and is never run.
            "PKCS#12 scrypt bag inside an encrypted container, no passphrase",
            pfx_with_encrypted_bags(&[&shrouded_key_bag(
                &pbes2_alg(scrypt_params(1 << 30, 8, 1)),
                &[0; 48],
            )]),
            None,
            Want::Code("passphrase_required"),
        ),
        (
            "PKCS#12 with one key bag too many",
            pfx(&many_runs.iter().map(Vec::as_slice).collect::<Vec<_>>()),
            Some(passphrase()),
            Want::Kdf(
                KdfSite::Pkcs12Bag,
                KdfLimit::TooManyRuns {
                    runs: MAX_KDF_RUNS_PER_FILE + 1,
                    max: MAX_KDF_RUNS_PER_FILE,
                },
            ),
        ),
        (
            "PKCS#12 with one certificate too many",
            pfx(&many_certs.iter().map(Vec::as_slice).collect::<Vec<_>>()),
            Some(passphrase()),
            Want::Code("too_many_certificates"),
        ),
        (
            // p12-keystore followed issuer names for ever and grew a vector until the
            // process ran out of memory; certraft's reader does not follow them at all (the
            // assembler orders chains, bounded).
            "PKCS#12 whose certificates are each other's issuer",
            pfx_with_encrypted_bags(&[
                &real_key_bag(&loop_leaf.1),
                &cert_bag(&loop_leaf.0, true),
                &cert_bag(&loop_other.0, false),
            ]),
            Some(passphrase()),
            Want::Read {
                certs: 2,
                keys: 1,
                skipped: None,
            },
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, pass, want) in &cases {
        let started = Instant::now();
        let got = parse_file("bomb", bytes, pass.as_ref());
        let elapsed = started.elapsed();
        let ok = match (want, &got) {
            (
                Want::Kdf(site, limit),
                Err(FormatError::KdfLimit {
                    site: s, limit: l, ..
                }),
            ) => s == site && l == limit,
            (Want::Code(code), Err(e)) => e.code() == *code,
            (
                Want::Read {
                    certs,
                    keys,
                    skipped,
                },
                Ok(p),
            ) => {
                p.certs.len() == *certs
                    && p.keys.len() == *keys
                    && skipped.is_none_or(|s| p.ignored.iter().any(|i| i == s))
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: got {got:?}"));
        } else if elapsed > Duration::from_secs(2) {
            failures.push(format!("{name}: took {elapsed:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A file over 1 MiB is refused unread; one of exactly 1 MiB is read.
#[test]
fn file_size_cap() {
    let cert = include_bytes!("../../../../tests/fixtures/leaf-ec256.pem");
    let padded = |len: usize| {
        let mut v = cert.to_vec();
        v.resize(len, b'\n');
        v
    };
    assert!(parse_file("f.pem", &padded(MAX_FILE_BYTES), None).is_ok());
    let err = parse_file("f.pem", &padded(MAX_FILE_BYTES + 1), None).unwrap_err();
    assert_eq!(err.code(), "too_large");
    assert_eq!(
        err.to_string(),
        "f.pem: the file is 1048577 bytes; certraft reads at most 1048576 bytes from one \
         file (certificates, keys and PKCS#12 files are a few KiB); check that this is the \
         right file"
    );
}

/// PEM files: 64 certificates and 8 keys are read; one more of either is refused before
/// any is parsed.
#[test]
fn pem_certificate_and_key_counts() {
    let cert = include_bytes!("../../../../tests/fixtures/leaf-ec256.pem");
    let key = include_bytes!("../../../../tests/fixtures/ec256.key");
    let repeat = |block: &[u8], n: usize| block.repeat(n);
    let cases = [
        (repeat(cert, MAX_CERTS_PER_FILE), None),
        (
            repeat(cert, MAX_CERTS_PER_FILE + 1),
            Some("too_many_certificates"),
        ),
        (repeat(key, MAX_KEYS_PER_FILE), None),
        (repeat(key, MAX_KEYS_PER_FILE + 1), Some("too_many_keys")),
    ];
    for (bytes, want) in cases {
        let got = parse_file("many.pem", &bytes, None);
        assert_eq!(got.as_ref().err().map(|e| e.code()), want, "{got:?}");
    }
}

/// The scrypt refusal says what was asked, what is allowed and what to run instead.
#[test]
fn kdf_refusal_names_the_values_and_the_next_step() {
    let der = encrypted_pkcs8(scrypt_params(1 << 30, 8, 1));
    let err = parse_file("key.p8", &der, Some(&passphrase())).unwrap_err();
    assert_eq!(err.code(), "kdf_limit");
    assert_eq!(
        err.to_string(),
        "key.p8: the encrypted private key asks for scrypt N=1073741824, r=8, which needs \
         1 TiB of memory; certraft accepts at most 256 MiB (128·N·r); re-encrypt it with \
         PBKDF2: `openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 600000 -inform DER -in key.p8 \
         -out key-pbkdf2.pem`"
    );
    let err = parse_file("site.p12", &pfx_with_mac(BOMB_ITERATIONS), None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("site.p12: the PKCS#12 MAC asks for the PKCS#12 KDF with 2147483647")
            && msg.contains("at most 10000000")
            && msg.contains("openssl pkcs12 -in site.p12 -nodes -out bundle.pem"),
        "{msg}"
    );
    let nested = pfx_with_encrypted_bags(&[&shrouded_key_bag(
        &pbes2_alg(scrypt_params(1 << 30, 8, 1)),
        &[0; 48],
    )]);
    let msg = parse_file("site.p12", &nested, Some(&passphrase()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(
            "site.p12: a PKCS#12 bag inside an encrypted container asks for scrypt \
             N=1073741824, r=8, which needs 1 TiB of memory"
        ) && msg.contains("export it again with OpenSSL's defaults (PBKDF2, 2048 iterations)"),
        "{msg}"
    );
}
