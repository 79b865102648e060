//! The legacy and current block ciphers encrypted key files use, decryption only: AES-CBC
//! (128/192/256), DES-CBC, two- and three-key 3DES-CBC, RC2-CBC (any effective key size) and
//! RC4. One function per shape, so the PKCS#12 reader, the PBES2 decryptor and the
//! traditional (`Proc-Type: 4,ENCRYPTED`) PEM reader share them.
//!
//! A wrong key shows up as bad padding (CBC) or as garbage the caller cannot parse; both are
//! [`CipherError::BadDecrypt`], which callers report as a wrong passphrase. Nothing here
//! returns plaintext that failed its padding check.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use zeroize::Zeroizing;

/// A cipher a key file can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    DesCbc,
    /// Three-key triple DES (DES-EDE3-CBC).
    DesEde3Cbc,
    /// Two-key triple DES (K1, K2, K1), PKCS#12's `pbeWithSHAAnd2-KeyTripleDES-CBC`.
    DesEde2Cbc,
    /// RC2-CBC with this effective key size in bits (40 or 128 in practice).
    Rc2Cbc {
        effective_bits: usize,
    },
    /// RC4 with a key of this many bytes (5 or 16 in practice).
    Rc4 {
        key_len: usize,
    },
}

impl Cipher {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Cbc => 16,
            Cipher::Aes192Cbc => 24,
            Cipher::Aes256Cbc => 32,
            Cipher::DesCbc => 8,
            Cipher::DesEde3Cbc => 24,
            Cipher::DesEde2Cbc => 16,
            Cipher::Rc2Cbc { effective_bits } => effective_bits.div_ceil(8),
            Cipher::Rc4 { key_len } => key_len,
        }
    }

    /// IV length in bytes (the block size; 0 for the stream cipher).
    pub fn iv_len(self) -> usize {
        match self {
            Cipher::Aes128Cbc | Cipher::Aes192Cbc | Cipher::Aes256Cbc => 16,
            Cipher::DesCbc | Cipher::DesEde3Cbc | Cipher::DesEde2Cbc | Cipher::Rc2Cbc { .. } => 8,
            Cipher::Rc4 { .. } => 0,
        }
    }

    /// A short name for messages (`AES-256-CBC`, `RC2-40-CBC`, …).
    pub fn name(self) -> String {
        match self {
            Cipher::Aes128Cbc => "AES-128-CBC".into(),
            Cipher::Aes192Cbc => "AES-192-CBC".into(),
            Cipher::Aes256Cbc => "AES-256-CBC".into(),
            Cipher::DesCbc => "DES-CBC".into(),
            Cipher::DesEde3Cbc => "DES-EDE3-CBC".into(),
            Cipher::DesEde2Cbc => "2-key DES-EDE-CBC".into(),
            Cipher::Rc2Cbc { effective_bits } => format!("RC2-{effective_bits}-CBC"),
            Cipher::Rc4 { key_len } => format!("RC4-{}", key_len * 8),
        }
    }
}

/// Why a decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// The padding did not check out: almost always a wrong key (passphrase).
    #[error("decryption failed (wrong passphrase, or a damaged file)")]
    BadDecrypt,
    /// The key or IV has the wrong length for the cipher (a malformed file).
    #[error("{cipher} needs a {want}-byte {what}; the file gives {got} bytes")]
    BadLength {
        cipher: String,
        what: &'static str,
        want: usize,
        got: usize,
    },
}

/// Decrypts `data` with `cipher` under `key` and `iv`, removing the PKCS#7 padding of the
/// CBC modes. The plaintext is zeroized on drop (it is usually a private key).
pub fn decrypt(
    cipher: Cipher,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    let length = |what, want, got| CipherError::BadLength {
        cipher: cipher.name(),
        what,
        want,
        got,
    };
    if key.len() != cipher.key_len() {
        return Err(length("key", cipher.key_len(), key.len()));
    }
    if iv.len() != cipher.iv_len() {
        return Err(length("IV", cipher.iv_len(), iv.len()));
    }
    let mut buf = Zeroizing::new(data.to_vec());
    let bad = |_| CipherError::BadDecrypt;
    let plain_len = match cipher {
        Cipher::Aes128Cbc => cbc_decrypt::<aes::Aes128>(key, iv, &mut buf).map_err(bad)?,
        Cipher::Aes192Cbc => cbc_decrypt::<aes::Aes192>(key, iv, &mut buf).map_err(bad)?,
        Cipher::Aes256Cbc => cbc_decrypt::<aes::Aes256>(key, iv, &mut buf).map_err(bad)?,
        Cipher::DesCbc => cbc_decrypt::<des::Des>(key, iv, &mut buf).map_err(bad)?,
        Cipher::DesEde3Cbc => cbc_decrypt::<des::TdesEde3>(key, iv, &mut buf).map_err(bad)?,
        Cipher::DesEde2Cbc => cbc_decrypt::<des::TdesEde2>(key, iv, &mut buf).map_err(bad)?,
        Cipher::Rc2Cbc { effective_bits } => {
            let rc2 = rc2::Rc2::new_with_eff_key_len(key, effective_bits);
            let dec = cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, iv)
                .map_err(|_| length("IV", 8, iv.len()))?;
            dec.decrypt_padded_mut::<Pkcs7>(&mut buf)
                .map_err(|_| CipherError::BadDecrypt)?
                .len()
        }
        Cipher::Rc4 { key_len } => {
            rc4_apply(key_len, key, &mut buf)?;
            buf.len()
        }
    };
    buf.truncate(plain_len);
    Ok(buf)
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize, ()>
where
    C: cbc::cipher::BlockDecrypt + cbc::cipher::BlockCipher + KeyInit,
{
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(drop)?;
    dec.decrypt_padded_mut::<Pkcs7>(buf)
        .map(|plain| plain.len())
        .map_err(drop)
}

fn rc4_apply(key_len: usize, key: &[u8], buf: &mut [u8]) -> Result<(), CipherError> {
    use rc4::consts::{U16, U5};
    match key_len {
        5 => rc4::Rc4::<U5>::new_from_slice(key)
            .map_err(|_| CipherError::BadDecrypt)?
            .apply_keystream(buf),
        16 => rc4::Rc4::<U16>::new_from_slice(key)
            .map_err(|_| CipherError::BadDecrypt)?
            .apply_keystream(buf),
        other => {
            return Err(CipherError::BadLength {
                cipher: "RC4".into(),
                what: "key",
                want: 16,
                got: other,
            })
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockEncryptMut;

    fn encrypt<C>(key: &[u8], iv: &[u8], plain: &[u8]) -> Vec<u8>
    where
        C: cbc::cipher::BlockEncrypt + cbc::cipher::BlockCipher + KeyInit,
    {
        cbc::Encryptor::<C>::new_from_slices(key, iv)
            .unwrap()
            .encrypt_padded_vec_mut::<Pkcs7>(plain)
    }

    /// Each CBC cipher round-trips, and a wrong key is a bad decrypt (or, rarely, padding
    /// that happens to check out: then the plaintext differs).
    #[test]
    fn cbc_ciphers_decrypt_and_refuse_a_wrong_key() {
        let plain = b"a private key, more or less".to_vec();
        let cases: Vec<(Cipher, Vec<u8>)> = vec![
            (
                Cipher::Aes128Cbc,
                encrypt::<aes::Aes128>(&[1; 16], &[2; 16], &plain),
            ),
            (
                Cipher::Aes192Cbc,
                encrypt::<aes::Aes192>(&[1; 24], &[2; 16], &plain),
            ),
            (
                Cipher::Aes256Cbc,
                encrypt::<aes::Aes256>(&[1; 32], &[2; 16], &plain),
            ),
            (
                Cipher::DesCbc,
                encrypt::<des::Des>(&[1; 8], &[2; 8], &plain),
            ),
            (
                Cipher::DesEde3Cbc,
                encrypt::<des::TdesEde3>(&[1; 24], &[2; 8], &plain),
            ),
            (
                Cipher::DesEde2Cbc,
                encrypt::<des::TdesEde2>(&[1; 16], &[2; 8], &plain),
            ),
        ];
        for (cipher, ct) in cases {
            let key = vec![1; cipher.key_len()];
            let iv = vec![2; cipher.iv_len()];
            assert_eq!(
                *decrypt(cipher, &key, &iv, &ct).unwrap(),
                plain,
                "{cipher:?}"
            );
            let wrong = vec![9; cipher.key_len()];
            match decrypt(cipher, &wrong, &iv, &ct) {
                Err(CipherError::BadDecrypt) => {}
                Ok(p) => assert_ne!(*p, plain, "{cipher:?}"),
                Err(e) => panic!("{cipher:?}: {e}"),
            }
            assert!(matches!(
                decrypt(cipher, &key[1..], &iv, &ct),
                Err(CipherError::BadLength { what: "key", .. })
            ));
        }
    }

    /// RC2-40 and RC4 against their published test vectors (RFC 2268 §5, RFC 6229).
    #[test]
    fn rc2_and_rc4_match_published_vectors() {
        // RFC 2268: key 88bca90e90875a, effective 64 bits, plain 0x00..., cipher 6ccf4308974c267f.
        use cbc::cipher::BlockEncrypt;
        let rc2 = rc2::Rc2::new_with_eff_key_len(&[0x88, 0xbc, 0xa9, 0x0e, 0x90, 0x87, 0x5a], 64);
        let mut block = cbc::cipher::generic_array::GenericArray::from([0u8; 8]);
        rc2.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), "6ccf4308974c267f");
        // RFC 6229: 40-bit key 0102030405, keystream starts b2396305f03dc027.
        let mut buf = [0u8; 8];
        rc4_apply(5, &[1, 2, 3, 4, 5], &mut buf).unwrap();
        assert_eq!(hex::encode(buf), "b2396305f03dc027");
    }
}
