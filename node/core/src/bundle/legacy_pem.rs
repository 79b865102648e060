//! Traditional OpenSSL PEM key encryption: an `RSA PRIVATE KEY`, `EC PRIVATE KEY` (or,
//! rarely, `PRIVATE KEY`) block with `Proc-Type: 4,ENCRYPTED` and `DEK-Info: CIPHER,IVHEX`
//! headers, as `openssl rsa -aes256`, `openssl ec -des3` and many older tools write.
//!
//! The key is OpenSSL's `EVP_BytesToKey` with MD5 and one iteration over the passphrase and
//! the first 8 bytes of the IV (the salt); the cipher is CBC with PKCS#7 padding
//! ([`cipher`](super::cipher)). The plaintext is the DER the PEM label names.
//!
//! Limits: the derivation is one MD5 per 16 key bytes, cheap whatever the file says, but it
//! is still charged to the file's [`KdfBudget`] as `Kdf::Pbkdf2 { iterations: 1 }`, so an
//! encrypted PEM key counts as one derivation like every other encrypted key.

use md5::{Digest, Md5};
use pkcs8::der::asn1::AnyRef;
use pkcs8::der::{Decode, Tag, Tagged};
use zeroize::Zeroizing;

use super::cipher::{self, Cipher, CipherError};
use super::formats::{FormatError, KdfSite};
use super::key::{Passphrase, PrivateKey};
use super::limits::{Kdf, KdfBudget};

/// What a refused or wrongly-decrypted key is called in messages.
const WHAT: &str = "the encrypted private key";

/// One PEM block encrypted the traditional way, as the PEM reader found it.
pub(super) struct EncryptedBlock<'a> {
    /// The file's name, for messages.
    pub(super) file: &'a str,
    /// The block's position in the file, from 1.
    pub(super) index: usize,
    /// The PEM label: which DER the plaintext is.
    pub(super) label: &'a str,
    /// The `DEK-Info` header's value, if there is one.
    pub(super) dek_info: Option<&'a str>,
    /// The base64-decoded ciphertext.
    pub(super) ciphertext: &'a [u8],
}

/// Whether a block's `Proc-Type` header says it is encrypted (`4,ENCRYPTED`).
pub(super) fn is_encrypted(proc_type: Option<&str>) -> bool {
    proc_type.is_some_and(|v| {
        v.split(',')
            .any(|part| part.trim().eq_ignore_ascii_case("ENCRYPTED"))
    })
}

/// Decrypts and loads one traditionally encrypted key.
///
/// The header is checked first (an unknown cipher or a bad IV is an error whether or not a
/// passphrase was given), then the derivation is charged to `budget`, then a missing
/// passphrase gives [`FormatError::PassphraseRequired`]. Bad padding, or a plaintext that is
/// not one DER SEQUENCE, is a wrong passphrase; a plaintext that is DER but not a usable key
/// is reported as the key error it is.
pub(super) fn read_key(
    block: &EncryptedBlock<'_>,
    passphrase: Option<&Passphrase>,
    budget: &mut KdfBudget,
) -> Result<PrivateKey, FormatError> {
    let file = block.file;
    let bad_block = |detail: String| FormatError::BadPemBlock {
        file: file.into(),
        index: block.index,
        label: block.label.into(),
        detail,
    };
    let (cipher, iv) = dek_info(block.dek_info).map_err(|e| match e {
        DekError::UnknownCipher(cipher) => FormatError::UnsupportedPemCipher {
            file: file.into(),
            cipher,
        },
        DekError::Malformed(detail) => bad_block(detail),
    })?;
    let block_len = cipher.iv_len();
    if block.ciphertext.is_empty() || block.ciphertext.len() % block_len != 0 {
        return Err(bad_block(format!(
            "the encrypted key is {} bytes, not a whole number of {}'s {block_len}-byte blocks; the file is damaged",
            block.ciphertext.len(),
            cipher.name()
        )));
    }
    budget
        .charge(Kdf::Pbkdf2 { iterations: 1 })
        .map_err(|limit| FormatError::KdfLimit {
            file: file.into(),
            site: KdfSite::EncryptedKey { der: false },
            limit,
        })?;
    let Some(passphrase) = passphrase else {
        return Err(FormatError::PassphraseRequired {
            file: file.into(),
            what: WHAT,
        });
    };
    let wrong = || FormatError::WrongPassphrase {
        file: file.into(),
        what: WHAT,
    };
    // The salt is the IV's first 8 bytes; every cipher here has an IV of 8 or 16 bytes.
    let salt = iv
        .get(..8)
        .ok_or_else(|| bad_block("the IV is too short".into()))?;
    let key = evp_bytes_to_key(passphrase.expose().as_bytes(), salt, cipher.key_len());
    let plain = cipher::decrypt(cipher, &key, &iv, block.ciphertext).map_err(|e| match e {
        CipherError::BadDecrypt => wrong(),
        other => bad_block(other.to_string()),
    })?;
    if !is_one_sequence(&plain) {
        return Err(wrong());
    }
    let loaded = match block.label {
        "RSA PRIVATE KEY" => PrivateKey::from_pkcs1_der(&plain),
        "EC PRIVATE KEY" => PrivateKey::from_sec1_der(&plain),
        _ => PrivateKey::from_pkcs8_der(&plain),
    };
    loaded.map_err(|source| FormatError::Key {
        file: file.into(),
        source,
    })
}

/// Whether `der` is exactly one DER SEQUENCE: what every key encoding is, and what a
/// wrong passphrase's garbage (even with padding that happens to check out) is not.
fn is_one_sequence(der: &[u8]) -> bool {
    AnyRef::from_der(der).is_ok_and(|any| any.tag() == Tag::Sequence)
}

/// Why a `DEK-Info` header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DekError {
    /// A cipher this reader does not decrypt, by the name the header gives.
    UnknownCipher(String),
    /// The header is missing or cannot be read; the detail says which part.
    Malformed(String),
}

/// The cipher and IV a `DEK-Info: CIPHER,IVHEX` header names.
fn dek_info(value: Option<&str>) -> Result<(Cipher, Vec<u8>), DekError> {
    let malformed = |detail: String| DekError::Malformed(detail);
    let value = value.ok_or_else(|| {
        malformed(
            "it has a `Proc-Type: 4,ENCRYPTED` header but no `DEK-Info` header naming its cipher and IV"
                .into(),
        )
    })?;
    let (name, iv_hex) = value.split_once(',').ok_or_else(|| {
        malformed(format!(
            "its DEK-Info header `{}` is not `CIPHER,IV` (for example `AES-256-CBC,` and 32 hex digits)",
            shown(value)
        ))
    })?;
    let (name, iv_hex) = (name.trim(), iv_hex.trim());
    let cipher = match name.to_ascii_uppercase().as_str() {
        "AES-128-CBC" => Cipher::Aes128Cbc,
        "AES-192-CBC" => Cipher::Aes192Cbc,
        "AES-256-CBC" => Cipher::Aes256Cbc,
        "DES-EDE3-CBC" => Cipher::DesEde3Cbc,
        "DES-CBC" => Cipher::DesCbc,
        _ => return Err(DekError::UnknownCipher(shown(name))),
    };
    let iv = hex::decode(iv_hex).map_err(|_| {
        malformed(format!(
            "the IV in its DEK-Info header (`{}`) is not hexadecimal",
            shown(iv_hex)
        ))
    })?;
    if iv.len() != cipher.iv_len() {
        return Err(malformed(format!(
            "its DEK-Info header gives a {}-byte IV; {} needs {} bytes ({} hex digits)",
            iv.len(),
            cipher.name(),
            cipher.iv_len(),
            cipher.iv_len() * 2
        )));
    }
    Ok((cipher, iv))
}

/// A header value as shown in a message: printable ASCII only, at most 60 characters. The
/// cipher name and IV are not secret, but the header is attacker-controlled text.
fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(60)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if value.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one iteration: `D1 = MD5(pass ‖ salt)`,
/// `Di = MD5(Di-1 ‖ pass ‖ salt)`, concatenated and cut to `len` bytes.
fn evp_bytes_to_key(pass: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut previous: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    while out.len() < len {
        let mut md5 = Md5::new();
        md5.update(previous.as_slice());
        md5.update(pass);
        md5.update(salt);
        let digest = md5.finalize();
        previous = Zeroizing::new(digest.to_vec());
        out.extend_from_slice(&previous);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests;
