//! Unit tests of `legacy_pem.rs`: every traditional PEM encryption OpenSSL writes, from the
//! real files of `node/tests/fixtures/tools/`, and the header errors.

use super::*;
use crate::bundle::assemble::{assemble, AssembleOptions};
use crate::bundle::cert::parse_cert;
use crate::bundle::formats::parse_file;
use crate::bundle::key::KeyKind;

/// 2025-06-15: inside every tools leaf's validity (2024–2099).
const NOW: i64 = 1_750_000_000;

fn pass() -> Passphrase {
    Passphrase::from_file_contents(include_bytes!("../../../../tests/fixtures/tools/pass.txt"))
        .unwrap()
}

/// The SPKI of the first certificate of a PEM file.
fn leaf_spki(text: &[u8]) -> Vec<u8> {
    let block = pem::parse_many(text)
        .unwrap()
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .unwrap();
    parse_cert(block.contents()).unwrap().spki
}

const RSA_LEAF: &[u8] = include_bytes!("../../../../tests/fixtures/tools/base-rsa.pem");
const P256_LEAF: &[u8] = include_bytes!("../../../../tests/fixtures/tools/base-p256.pem");
const RSA_CHAIN: &[u8] = include_bytes!("../../../../tests/fixtures/tools/base-rsa-fullchain.pem");
const P256_CHAIN: &[u8] =
    include_bytes!("../../../../tests/fixtures/tools/base-p256-fullchain.pem");

/// A file name, its bytes, and the leaf and full chain of its key.
type TradFile = (&'static str, &'static [u8], &'static [u8], &'static [u8]);

/// The ten `openssl rsa -traditional -<c>` / `openssl ec -<c>` files: name, bytes, the leaf
/// and full chain of their key.
fn trad_files() -> Vec<TradFile> {
    macro_rules! trad {
        ($name:literal, $leaf:expr, $chain:expr) => {
            (
                $name,
                &include_bytes!(concat!("../../../../tests/fixtures/tools/", $name))[..],
                $leaf,
                $chain,
            )
        };
    }
    vec![
        trad!("openssl-rsa-trad-aes128.pem", RSA_LEAF, RSA_CHAIN),
        trad!("openssl-rsa-trad-aes192.pem", RSA_LEAF, RSA_CHAIN),
        trad!("openssl-rsa-trad-aes256.pem", RSA_LEAF, RSA_CHAIN),
        trad!("openssl-rsa-trad-des3.pem", RSA_LEAF, RSA_CHAIN),
        trad!("openssl-rsa-trad-des.pem", RSA_LEAF, RSA_CHAIN),
        trad!("openssl-p256-trad-aes128.pem", P256_LEAF, P256_CHAIN),
        trad!("openssl-p256-trad-aes192.pem", P256_LEAF, P256_CHAIN),
        trad!("openssl-p256-trad-aes256.pem", P256_LEAF, P256_CHAIN),
        trad!("openssl-p256-trad-des3.pem", P256_LEAF, P256_CHAIN),
        trad!("openssl-p256-trad-des.pem", P256_LEAF, P256_CHAIN),
    ]
}

/// EVP_BytesToKey(MD5, 1 iteration) against OpenSSL itself:
/// `openssl enc -aes-256-cbc -pass pass:tools-test-pass -S 0102030405060708 -P -md md5`
/// prints key E0BA…4414 and IV 4EB3…0A04, the first 48 bytes of the derivation.
#[test]
fn evp_bytes_to_key_matches_openssl() {
    let out = evp_bytes_to_key(b"tools-test-pass", &[1, 2, 3, 4, 5, 6, 7, 8], 48);
    assert_eq!(
        hex::encode_upper(out.as_slice()),
        "E0BA9FA89530EF67849D3E0CEBCA2959B73E8C72742C897BC0012052318C4414\
         4EB3CC22EFCA68C9858A14C9083F0A04"
    );
    let des = evp_bytes_to_key(b"tools-test-pass", &[1, 2, 3, 4, 5, 6, 7, 8], 8);
    assert_eq!(hex::encode_upper(des.as_slice()), "E0BA9FA89530EF67");
}

/// Every cipher OpenSSL offers for traditional PEM (AES-128/192/256-CBC, DES-EDE3-CBC,
/// DES-CBC), RSA and P-256: the key decrypts under pass.txt to the key of its certificate,
/// and assembles with the full chain as `expected.tsv` says.
#[test]
fn traditional_pem_keys_decrypt_to_their_certificates_key() {
    let mut failures = Vec::new();
    for (name, bytes, leaf, chain) in trad_files() {
        let parsed = match parse_file(name, bytes, Some(&pass())) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if parsed.keys.len() != 1 || parsed.keys[0].spki() != leaf_spki(leaf) {
            failures.push(format!("{name}: key does not match its leaf"));
            continue;
        }
        let files = vec![parsed, parse_file("fullchain.pem", chain, None).unwrap()];
        match assemble(files, AssembleOptions::default(), NOW) {
            Ok(b) if b.chain().len() == 2 => {}
            Ok(b) => failures.push(format!("{name}: chain of {}", b.chain().len())),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A wrong passphrase is `wrong_passphrase` (bad padding or garbage), no passphrase is
/// `passphrase_required`, for every cipher; neither message shows the passphrase.
#[test]
fn traditional_pem_keys_need_the_right_passphrase() {
    let wrong = Passphrase::new("not-the-pass");
    for (name, bytes, _, _) in trad_files() {
        let err = parse_file(name, bytes, Some(&wrong)).unwrap_err();
        assert_eq!(err.code(), "wrong_passphrase", "{name}: {err}");
        assert!(
            err.to_string().starts_with(&format!(
                "{name}: wrong passphrase for the encrypted private key"
            )),
            "{err}"
        );
        assert!(!err.to_string().contains("not-the-pass"));
        let err = parse_file(name, bytes, None).unwrap_err();
        assert_eq!(err.code(), "passphrase_required", "{name}: {err}");
    }
}

/// `openssl pkcs12` without `-nodes`: Bag Attributes text around three certificates and an
/// `ENCRYPTED PRIVATE KEY` (PBES2) reads and assembles to the RSA leaf and its chain.
#[test]
fn openssl_pkcs12_dump_with_encrypted_key_reads() {
    let bytes = include_bytes!("../../../../tests/fixtures/tools/openssl-rsa-pkcs12-dump-enc.pem");
    let parsed = parse_file("dump.pem", bytes, Some(&pass())).unwrap();
    assert_eq!((parsed.certs.len(), parsed.keys.len()), (3, 1));
    let b = assemble(vec![parsed], AssembleOptions::default(), NOW).unwrap();
    assert_eq!(b.leaf().dns_names, ["rsa.tools.test"]);
    assert_eq!(b.key().kind(), KeyKind::Rsa { bits: 2048 });
    assert_eq!(b.chain().len(), 2);
}

/// `openssl-p256-trad-aes128.pem` with its DEK-Info header replaced by `dek`.
fn with_dek_info(dek: &str) -> Vec<u8> {
    let text = std::str::from_utf8(include_bytes!(
        "../../../../tests/fixtures/tools/openssl-p256-trad-aes128.pem"
    ))
    .unwrap();
    text.lines()
        .map(|l| {
            if l.starts_with("DEK-Info:") {
                dek.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// Header faults are refused naming the header and what is wrong, with or without a
/// passphrase; an unknown cipher names the cipher and the conversion command.
#[test]
fn bad_dek_info_headers_are_refused_naming_the_header() {
    let original = include_bytes!("../../../../tests/fixtures/tools/openssl-p256-trad-aes128.pem");
    let iv = std::str::from_utf8(original)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("DEK-Info: AES-128-CBC,"))
        .unwrap()
        .to_string();
    let no_dek: Vec<u8> = std::str::from_utf8(original)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("DEK-Info:"))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "unknown cipher",
            with_dek_info(&format!("DEK-Info: CAMELLIA-256-CBC,{iv}")),
            "unsupported_pem_cipher",
            "k.pem: the key is encrypted with CAMELLIA-256-CBC (its DEK-Info header), which certraft does not decrypt",
        ),
        (
            "unknown cipher, next step",
            with_dek_info(&format!("DEK-Info: BF-CBC,{}", &iv[..16])),
            "unsupported_pem_cipher",
            "convert it with `openssl pkey -in k.pem -out key.pem`",
        ),
        (
            "IV not hex",
            with_dek_info("DEK-Info: AES-128-CBC,ZZ94F8299B13795DBD7E32F8EC43EDE4"),
            "malformed_pem",
            "the IV in its DEK-Info header (`ZZ94F8299B13795DBD7E32F8EC43EDE4`) is not hexadecimal",
        ),
        (
            "IV too short",
            with_dek_info(&format!("DEK-Info: AES-128-CBC,{}", &iv[..16])),
            "malformed_pem",
            "its DEK-Info header gives a 8-byte IV; AES-128-CBC needs 16 bytes (32 hex digits)",
        ),
        (
            "no comma",
            with_dek_info("DEK-Info: AES-128-CBC"),
            "malformed_pem",
            "its DEK-Info header `AES-128-CBC` is not `CIPHER,IV`",
        ),
        (
            "no DEK-Info",
            no_dek,
            "malformed_pem",
            "PEM block 1 (EC PRIVATE KEY) is not a valid EC PRIVATE KEY: it has a `Proc-Type: 4,ENCRYPTED` header but no `DEK-Info` header",
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, code, needle) in &cases {
        for pass in [Some(pass()), None] {
            match parse_file("k.pem", bytes, pass.as_ref()) {
                Err(e) if e.code() == *code && e.to_string().contains(needle) => {}
                other => {
                    failures.push(format!("{name} (passphrase {}): {other:?}", pass.is_some()))
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A ciphertext that is not whole cipher blocks is a damaged file, not a wrong passphrase.
#[test]
fn ciphertext_of_partial_blocks_is_a_damaged_file() {
    let block = EncryptedBlock {
        file: "k.pem",
        index: 1,
        label: "RSA PRIVATE KEY",
        dek_info: Some("DES-EDE3-CBC,0102030405060708"),
        ciphertext: &[0; 12],
    };
    let err = read_key(&block, Some(&pass()), &mut KdfBudget::default()).unwrap_err();
    assert_eq!(err.code(), "malformed_pem");
    assert!(
        err.to_string().contains(
            "the encrypted key is 12 bytes, not a whole number of DES-EDE3-CBC's 8-byte blocks"
        ),
        "{err}"
    );
}

/// Each decryption is one run of the file's key-derivation budget.
#[test]
fn each_traditional_key_is_charged_to_the_budget() {
    let bytes = include_bytes!("../../../../tests/fixtures/tools/openssl-p256-trad-des.pem");
    let block = pem::parse(&bytes[..]).unwrap();
    let encrypted = EncryptedBlock {
        file: "k.pem",
        index: 1,
        label: "EC PRIVATE KEY",
        dek_info: block.headers().get("DEK-Info"),
        ciphertext: block.contents(),
    };
    let mut budget = KdfBudget::default();
    read_key(&encrypted, Some(&pass()), &mut budget).unwrap();
    read_key(&encrypted, None, &mut budget).unwrap_err();
    assert_eq!(budget.runs(), 2);
}

/// `Proc-Type` is read as OpenSSL writes it, in any case; other values are not encryption.
#[test]
fn proc_type_encrypted_is_recognised() {
    for (value, want) in [
        (Some("4,ENCRYPTED"), true),
        (Some("4, encrypted"), true),
        (Some("4,MIC-ONLY"), false),
        (None, false),
    ] {
        assert_eq!(is_encrypted(value), want, "{value:?}");
    }
}

proptest::proptest! {
    /// Any DEK-Info value and ciphertext give a key or an error, never a panic.
    #[test]
    fn arbitrary_headers_and_ciphertext_never_panic(
        dek in "[ -~]{0,80}",
        known in proptest::sample::select(vec!["AES-128-CBC", "AES-256-CBC", "DES-CBC", "DES-EDE3-CBC"]),
        iv in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
        ciphertext in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96),
        label in proptest::sample::select(vec!["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"]),
    ) {
        let with_iv = format!("{known},{}", hex::encode(&iv));
        for dek_info in [Some(dek.as_str()), Some(with_iv.as_str()), None] {
            let block = EncryptedBlock { file: "k.pem", index: 1, label, dek_info, ciphertext: &ciphertext };
            let _ = read_key(&block, Some(&pass()), &mut KdfBudget::default());
            let _ = read_key(&block, None, &mut KdfBudget::default());
        }
    }
}
