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

/// 2025-06-15: inside every tools leaf's validity (2024–2099).
const TOOLS_NOW: i64 = 1_750_000_000;

/// Messy PEM as operators paste it and as tools write it (BOM, CRLF, trailing blanks, prose,
/// `openssl pkcs12 -nodes` Bag Attributes, certtool's text dump before its key): each file
/// (with its `extra` file from `expected.tsv`) gives the right key and certificates, and they
/// assemble into the expected leaf and its 2 chain certificates.
#[test]
fn messy_pem_from_real_tools_reads_whole() {
    use crate::bundle::assemble::{assemble, AssembleOptions};
    use crate::bundle::key::KeyKind;
    macro_rules! tools {
        ($name:literal) => {
            (
                $name,
                &include_bytes!(concat!("../../../../tests/fixtures/tools/", $name))[..],
            )
        };
    }
    let p256 = ("p256.tools.test", KeyKind::EcP256);
    let rsa = ("rsa.tools.test", KeyKind::Rsa { bits: 2048 });
    let none: Option<(&str, &[u8])> = None;
    let cases = [
        (tools!("messy-p256-crlf.pem"), none, 3, p256),
        (tools!("messy-p256-bom.pem"), none, 3, p256),
        (tools!("messy-p256-trailing-ws.pem"), none, 3, p256),
        (tools!("messy-p256-prose.pem"), none, 3, p256),
        (tools!("messy-rsa-everything.pem"), none, 3, rsa),
        (tools!("openssl-p256-nodes-dump.pem"), none, 3, p256),
        (
            tools!("certtool-ec.key"),
            Some(tools!("certtool-ec-fullchain.pem")),
            0,
            ("certtool-p256.tools.test", KeyKind::EcP256),
        ),
        (
            tools!("certtool-rsa.key"),
            Some(tools!("certtool-rsa-fullchain.pem")),
            0,
            ("certtool-rsa.tools.test", KeyKind::Rsa { bits: 2048 }),
        ),
    ];
    let mut failures = Vec::new();
    for ((name, bytes), extra, certs, (leaf, kind)) in cases {
        let parsed = match parse_file(name, bytes, None) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if parsed.certs.len() != certs || parsed.keys.len() != 1 || !parsed.ignored.is_empty() {
            failures.push(format!(
                "{name}: {} certs, {} keys, ignored {:?}",
                parsed.certs.len(),
                parsed.keys.len(),
                parsed.ignored
            ));
            continue;
        }
        let mut files = vec![parsed];
        if let Some((extra_name, extra)) = extra {
            files.push(parse_file(extra_name, extra, None).unwrap());
        }
        match assemble(files, AssembleOptions::default(), TOOLS_NOW) {
            Ok(b) if b.leaf().dns_names == [leaf] && b.key().kind() == kind => {
                if b.chain().len() != 2 {
                    failures.push(format!("{name}: chain of {}", b.chain().len()));
                }
            }
            Ok(b) => failures.push(format!("{name}: leaf {:?}", b.leaf().dns_names)),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The normaliser changes only whitespace: BOM, line ends, blanks at line ends.
#[test]
fn pem_normaliser_changes_only_whitespace() {
    let cases: [(&[u8], &[u8]); 7] = [
        (b"", b""),
        (b"\xEF\xBB\xBFa\nb\n", b"a\nb\n"),
        (b"a\r\nb\r\n", b"a\nb\n"),
        (b"a\rb\r", b"a\nb\n"),
        (b"a \t \nb\t\r\n \n", b"a\nb\n\n"),
        (b"  lead stays\n", b"  lead stays\n"),
        (b"no newline at end  ", b"no newline at end"),
    ];
    for (input, want) in cases {
        assert_eq!(
            normalize_pem(input),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Headers with blanks after them (the blank line that ends them then holds spaces) and CRLF
/// line ends: the encrypted key's headers are still found.
#[test]
fn encrypted_pem_headers_survive_crlf_and_trailing_blanks() {
    let original = include_bytes!("../../../../tests/fixtures/tools/openssl-p256-trad-des3.pem");
    let messy: Vec<u8> = std::str::from_utf8(original)
        .unwrap()
        .lines()
        .flat_map(|l| format!("{l} \t\r\n").into_bytes())
        .collect();
    let pass = Passphrase::new("tools-test-pass");
    let parsed = parse_file("k.pem", &messy, Some(&pass)).unwrap();
    assert_eq!(parsed.keys.len(), 1);
}

/// A BEGIN line without its block is still refused after normalisation: no block is lost.
#[test]
fn cut_block_in_messy_pem_is_still_refused() {
    let text = include_bytes!("../../../../tests/fixtures/tools/messy-rsa-everything.pem");
    let cut = &text[..text.len() - 200];
    let err = parse_file("cut.pem", cut, None).unwrap_err();
    assert_eq!(err.code(), "malformed_pem", "{err}");
}

/// Every row of the tools manifest that is not a PKCS#12 file (those are the `pkcs12`
/// module's) gives the outcome `expected.tsv` states: the key kind, the leaf's DNS name and
/// the number of chain certificates.
#[test]
fn tools_manifest_rows_outside_pkcs12_give_the_stated_outcome() {
    use crate::bundle::assemble::{assemble, AssembleOptions};
    use crate::bundle::key::KeyKind;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tools");
    let manifest = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, extra, pass, _tool, _construct, expect] = cols[..] else {
            panic!("bad manifest line {line:?}");
        };
        if file.ends_with(".p12") {
            continue;
        }
        let passphrase = (pass != "-").then(|| {
            Passphrase::from_file_contents(&std::fs::read(dir.join(pass)).unwrap()).unwrap()
        });
        let mut files = Vec::new();
        for name in std::iter::once(file).chain(extra.split(',').filter(|e| *e != "-")) {
            match parse_file(
                name,
                &std::fs::read(dir.join(name)).unwrap(),
                passphrase.as_ref(),
            ) {
                Ok(p) => files.push(p),
                Err(e) => failures.push(format!("{file}: {name}: {e}")),
            }
        }
        checked += 1;
        let parts: Vec<&str> = expect.split(':').collect();
        let ["ok", kind, leaf, chain] = parts[..] else {
            failures.push(format!("{file}: unexpected expectation {expect}"));
            continue;
        };
        if files.len() != 1 + extra.split(',').filter(|e| *e != "-").count() {
            continue;
        }
        let want_kind = match kind {
            "ec-p256" => KeyKind::EcP256,
            "ec-p384" => KeyKind::EcP384,
            _ => KeyKind::Rsa { bits: 2048 },
        };
        match assemble(files, AssembleOptions::default(), TOOLS_NOW) {
            Ok(b)
                if b.key().kind() == want_kind
                    && b.leaf().dns_names == [leaf]
                    && b.chain().len().to_string() == chain => {}
            Ok(b) => failures.push(format!(
                "{file}: {:?} {:?} chain {}",
                b.key().kind(),
                b.leaf().dns_names,
                b.chain().len()
            )),
            Err(e) => failures.push(format!("{file}: {e}")),
        }
    }
    assert!(checked >= 35, "only {checked} rows");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A BER PKCS#12 file (NSS pk12util: indefinite lengths from the outer SEQUENCE on) goes to
/// the PKCS#12 reader instead of being called "binary data that is not DER".
#[test]
fn ber_pkcs12_is_sniffed_as_pkcs12() {
    let bytes = include_bytes!("../../../../tests/fixtures/tools/pk12util-p256.p12");
    assert!(bytes.starts_with(&[0x30, 0x80]));
    let pass = Passphrase::new("tools-test-pass");
    match parse_file("nss.p12", bytes, Some(&pass)) {
        Ok(parsed) => assert_eq!(parsed.format, FileFormat::Pkcs12),
        Err(e) => assert!(
            !matches!(
                e,
                FormatError::Unrecognized { .. } | FormatError::Corrupt { .. }
            ),
            "{e}"
        ),
    }
}
