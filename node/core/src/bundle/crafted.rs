//! Crafted inputs for the unit tests of [`formats`](super::formats) and `pkcs12`: encrypted
//! PKCS#8 keys and PKCS#12 files built field by field, with whatever key-derivation parameters
//! a test asks for, bombs included. Nothing here derives a key unless a test opens the result.

use pkcs5::pbes2::{self, Kdf as Pbes2Kdf, Pbkdf2Params, Pbkdf2Prf, ScryptParams};
use pkcs8::der::asn1::ObjectIdentifier;
use pkcs8::der::Encode;

pub(super) use super::pkcs12::der::{cert_bag, pfx, shrouded_key_bag};
use super::pkcs12::der::{
    data, oid, safe_bag, tlv, CONTEXT_0, CONTEXT_0_PRIMITIVE, DATA, ENCRYPTED_DATA, INTEGER,
    OCTET_STRING, SEQUENCE, SHROUDED_KEY_BAG,
};
use super::Passphrase;

/// The passphrase every crafted file that is really encrypted is encrypted with.
pub(super) const PASS: &str = "correct horse battery staple";
pub(super) const PBE_SHA1_3DES: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
pub(super) const PBE_SHA1_RC2_40: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const SECRET_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.5");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// The iteration count of the review's PBKDF2 and PKCS#12 bombs, `2^31 - 1`.
pub(super) const BOMB_ITERATIONS: u64 = (1 << 31) - 1;

pub(super) fn passphrase() -> Passphrase {
    Passphrase::new(PASS)
}

/// A DER INTEGER.
fn int(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut body = bytes[skip..].to_vec();
    if body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    tlv(INTEGER, &[&body])
}

/// PBES2 parameters with PBKDF2-HMAC-SHA256 and AES-256-CBC.
pub(super) fn pbkdf2_params(iterations: u32) -> pbes2::Parameters<'static> {
    pbes2::Parameters {
        kdf: Pbes2Kdf::Pbkdf2(Pbkdf2Params {
            salt: &[7; 16],
            iteration_count: iterations,
            key_length: None,
            prf: Pbkdf2Prf::HmacWithSha256,
        }),
        encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: &[9; 16] },
    }
}

/// PBES2 parameters with scrypt and AES-256-CBC.
pub(super) fn scrypt_params(n: u64, r: u16, p: u16) -> pbes2::Parameters<'static> {
    pbes2::Parameters {
        kdf: Pbes2Kdf::Scrypt(ScryptParams {
            salt: &[7; 16],
            cost_parameter: n,
            block_size: r,
            parallelization: p,
            key_length: None,
        }),
        encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: &[9; 16] },
    }
}

/// The AlgorithmIdentifier DER of PBES2 with these parameters.
pub(super) fn pbes2_alg(params: pbes2::Parameters<'_>) -> Vec<u8> {
    pkcs5::EncryptionScheme::Pbes2(params).to_der().unwrap()
}

/// The AlgorithmIdentifier DER of a PKCS#12 PBE cipher with this iteration count.
pub(super) fn pkcs12_pbe_alg(cipher: ObjectIdentifier, iterations: u64) -> Vec<u8> {
    tlv(
        SEQUENCE,
        &[
            &oid(cipher),
            &tlv(
                SEQUENCE,
                &[&tlv(OCTET_STRING, &[&[5; 8]]), &int(iterations)],
            ),
        ],
    )
}

/// An encrypted PKCS#8 key with these PBES2 parameters and 48 bytes of "ciphertext".
pub(super) fn encrypted_pkcs8(params: pbes2::Parameters<'_>) -> Vec<u8> {
    pkcs8::EncryptedPrivateKeyInfo {
        encryption_algorithm: pkcs5::EncryptionScheme::Pbes2(params),
        encrypted_data: &[0x5a; 48],
    }
    .to_der()
    .unwrap()
}

pub(super) fn pem_of(label: &str, der: &[u8]) -> Vec<u8> {
    pem::encode(&pem::Pem::new(label, der.to_vec())).into_bytes()
}

/// `MacData` with SHA-256 and this iteration count (the digest is zeros: never checked,
/// since its key is never derived).
fn mac_data(iterations: u64) -> Vec<u8> {
    let digest_alg = tlv(SEQUENCE, &[&oid(SHA256), &[0x05, 0x00]]);
    tlv(
        SEQUENCE,
        &[
            &tlv(SEQUENCE, &[&digest_alg, &tlv(OCTET_STRING, &[&[0; 32]])]),
            &tlv(OCTET_STRING, &[&[1; 8]]),
            &int(iterations),
        ],
    )
}

/// A PFX with a MAC of this iteration count around one empty plain container.
pub(super) fn pfx_with_mac(iterations: u64) -> Vec<u8> {
    let auth_safe = tlv(SEQUENCE, &[&data(&tlv(SEQUENCE, &[]))]);
    tlv(
        SEQUENCE,
        &[&int(3), &data(&auth_safe), &mac_data(iterations)],
    )
}

/// A MAC-less PFX with one encrypted container of this algorithm and ciphertext.
pub(super) fn pfx_with_container(algorithm: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let encrypted_content_info = tlv(
        SEQUENCE,
        &[
            &oid(DATA),
            algorithm,
            &tlv(CONTEXT_0_PRIMITIVE, &[ciphertext]),
        ],
    );
    let encrypted_data = tlv(SEQUENCE, &[&int(0), &encrypted_content_info]);
    let info = tlv(
        SEQUENCE,
        &[&oid(ENCRYPTED_DATA), &tlv(CONTEXT_0, &[&encrypted_data])],
    );
    let auth_safe = tlv(SEQUENCE, &[&info]);
    tlv(SEQUENCE, &[&int(3), &data(&auth_safe)])
}

/// A secret bag wrapping an encrypted key, as Java keystores write them.
pub(super) fn secret_bag(algorithm: &[u8]) -> Vec<u8> {
    let epki = tlv(SEQUENCE, &[algorithm, &tlv(OCTET_STRING, &[&[0x5a; 48]])]);
    let value = tlv(
        SEQUENCE,
        &[
            &oid(SHROUDED_KEY_BAG),
            &tlv(CONTEXT_0, &[&tlv(OCTET_STRING, &[&epki])]),
        ],
    );
    safe_bag(SECRET_BAG, &value, false)
}

/// A certificate and its PKCS#8 key, named `subject` and issued in the name of `issuer`
/// (signed by a throwaway key: no one checks the signature here).
pub(super) fn named_cert(subject: &str, issuer: &str) -> (Vec<u8>, Vec<u8>) {
    let dn = |cn: &str| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let issuer_key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::new(dn(issuer), issuer_key);
    let cert = dn(subject).signed_by(&key, &issuer).unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

/// A shrouded key bag really encrypted with `PASS` (PBKDF2 with 1 iteration).
pub(super) fn real_key_bag(pkcs8: &[u8]) -> Vec<u8> {
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(1, &[3; 16], &[4; 16]).unwrap();
    let ciphertext = params.encrypt(PASS, pkcs8).unwrap();
    shrouded_key_bag(&pbes2_alg(params), &ciphertext)
}

/// A MAC-less PFX whose one encrypted container (PBKDF2 with 1 iteration, encrypted with
/// `PASS`) holds `bags`: what is inside is visible only after decrypting.
pub(super) fn pfx_with_encrypted_bags(bags: &[&[u8]]) -> Vec<u8> {
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(1, &[1; 16], &[2; 16]).unwrap();
    let ciphertext = params.encrypt(PASS, &tlv(SEQUENCE, bags)).unwrap();
    pfx_with_container(&pbes2_alg(params), &ciphertext)
}
