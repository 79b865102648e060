//! Reading a PKCS#12 (PFX) file: certraft's own reader, written for files from every tool
//! operators use (OpenSSL 1.x/3.x, Java keytool, GnuTLS certtool, NSS pk12util, Python
//! cryptography, Windows) and for hostile ones.
//!
//! - BER is accepted anywhere ([`der::to_der`] first): NSS and Windows write indefinite
//!   lengths and constructed OCTET STRINGs.
//! - Integrity: the MAC (HMAC with SHA-1/224/256/384/512 over the PKCS#12 KDF, or PBMAC1 of
//!   RFC 9579), or none. Public-key integrity (`signedData`) is refused by name.
//! - Privacy: plain `data` containers and `encryptedData` ones under any scheme [`pbe`]
//!   knows (PKCS#12 PBE: 3DES, 2-key 3DES, RC2-40/128, RC4; PBES2: PBKDF2 with any HMAC-SHA
//!   PRF or scrypt, AES-128/192/256-CBC, 3DES, DES).
//! - Bags: key bags, shrouded key bags, certificate bags (X.509), nested `safeContents`
//!   bags; CRL, secret and unknown bags are noted and skipped. Friendly names and local key
//!   ids are not needed: the assembler matches keys to certificates by public key.
//!
//! **Cost**: every key derivation's parameters are checked against the caps and counted
//! ([`KdfBudget`]) immediately before it runs, so nothing over a cap ever runs and one
//! attempt runs at most [`MAX_KDF_RUNS_PER_FILE`](super::limits::MAX_KDF_RUNS_PER_FILE).
//! The file is tried with the given passphrase, then the empty one (a common export default).

pub(super) mod der;

use std::fmt;

use zeroize::Zeroizing;

use self::der::{
    integer, to_der, Malformed, Tlv, CERT_BAG, CONTEXT_0, CONTEXT_0_PRIMITIVE, DATA,
    ENCRYPTED_DATA, INTEGER, OCTET_STRING, SEQUENCE, SHROUDED_KEY_BAG, X509_CERTIFICATE,
};
use super::cert::{parse_cert, CertInfo};
use super::cipher::CipherError;
use super::formats::{FormatError, KdfSite, ParsedFile};
use super::key::{Passphrase, PrivateKey};
use super::limits::{KdfBudget, KdfLimit, MAX_CERTS_PER_FILE};
use super::pbe::{algorithm, bmp_password, Hash, Pbmac1, Scheme, SchemeError, PBMAC1_OID};
use pkcs8::der::asn1::ObjectIdentifier;

const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SAFE_CONTENTS_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.6");
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// How deep `safeContents` bags may nest (real files: never).
const MAX_BAG_DEPTH: usize = 4;

/// Why one attempt (one candidate passphrase) failed.
enum Failure {
    /// The passphrase does not fit: the MAC fails, or decryption gives garbage.
    WrongPassphrase,
    /// The file itself is the problem, whatever the passphrase.
    Refused(Refusal),
}

/// What is wrong with the file, turned into a [`FormatError`] naming it.
#[derive(Debug)]
enum Refusal {
    Malformed(String),
    Unsupported(String),
    Kdf { site: KdfSite, limit: KdfLimit },
    TooManyCertificates(usize),
    Key(super::key::KeyError),
}

impl From<Malformed> for Failure {
    fn from(Malformed(what): Malformed) -> Failure {
        Failure::Refused(Refusal::Malformed(what.into()))
    }
}

fn malformed(what: &str) -> Failure {
    Failure::Refused(Refusal::Malformed(what.into()))
}

impl From<SchemeError> for Failure {
    fn from(e: SchemeError) -> Failure {
        Failure::Refused(match e {
            SchemeError::Malformed(what) => Refusal::Malformed(what.into()),
            SchemeError::Unsupported(what) => Refusal::Unsupported(what),
        })
    }
}

impl Refusal {
    fn into_format_error(self, file: &str) -> FormatError {
        let file = file.to_string();
        match self {
            Refusal::Malformed(what) => FormatError::Pkcs12 {
                detail: format!("the file is malformed ({what}); export it again from its source"),
                file,
            },
            Refusal::Unsupported(what) => FormatError::Pkcs12 {
                detail: format!(
                    "it uses {what}, which certraft does not read; convert it with `openssl pkcs12 -in {file} -nodes -out bundle.pem` (keep bundle.pem private) and import that"
                ),
                file,
            },
            Refusal::Kdf { site, limit } => FormatError::KdfLimit { file, site, limit },
            Refusal::TooManyCertificates(found) => FormatError::TooManyCertificates {
                file,
                found,
                max: MAX_CERTS_PER_FILE,
            },
            Refusal::Key(source) => FormatError::Key { file, source },
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::WrongPassphrase => f.write_str("WrongPassphrase"),
            Failure::Refused(r) => write!(f, "Refused({r:?})"),
        }
    }
}

/// Reads a PKCS#12 file into `out`.
pub(super) fn parse(
    out: &mut ParsedFile,
    input: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<(), FormatError> {
    const WHAT: &str = "the PKCS#12 file";
    let file = out.name.clone();
    let refused = |r: Refusal| r.into_format_error(&file);
    let pfx = Pfx::read(input).map_err(|f| match f {
        Failure::Refused(r) => refused(r),
        Failure::WrongPassphrase => refused(Refusal::Malformed("PFX".into())),
    })?;
    let mut candidates: Vec<&str> = Vec::new();
    if let Some(p) = passphrase {
        candidates.push(p.expose());
    }
    if passphrase.is_none_or(|p| !p.is_empty()) {
        candidates.push("");
    }
    for candidate in candidates {
        match pfx.open(candidate) {
            Ok(found) => {
                out.certs.extend(found.certs);
                out.keys.extend(found.keys);
                out.ignored.extend(found.ignored);
                return Ok(());
            }
            Err(Failure::WrongPassphrase) => continue,
            Err(Failure::Refused(r)) => return Err(refused(r)),
        }
    }
    if passphrase.is_none() {
        Err(FormatError::PassphraseRequired { file, what: WHAT })
    } else {
        Err(FormatError::WrongPassphrase { file, what: WHAT })
    }
}

/// The parts of a PFX, read without any key derivation.
struct Pfx {
    /// The `AuthenticatedSafe` (the MAC covers exactly these bytes).
    auth_safe: Vec<u8>,
    mac: Option<MacData>,
}

/// `MacData`: the algorithm, the expected tag, the salt and count of the PKCS#12 KDF.
struct MacData {
    algorithm: MacAlgorithm,
    tag: Vec<u8>,
    salt: Vec<u8>,
    iterations: u64,
}

enum MacAlgorithm {
    Hmac(Hash),
    Pbmac1(Pbmac1),
}

/// What one opened file holds.
#[derive(Default)]
struct Found {
    certs: Vec<CertInfo>,
    keys: Vec<PrivateKey>,
    ignored: Vec<String>,
}

impl Pfx {
    fn read(input: &[u8]) -> Result<Pfx, Failure> {
        let der = to_der(input)?;
        let pfx = Tlv::only(&der, SEQUENCE, "not a single PFX SEQUENCE")?;
        let fields = pfx.children("PFX")?;
        let [version, auth_safe, rest @ ..] = fields.as_slice() else {
            return Err(malformed("PFX"));
        };
        if version.tag != INTEGER || integer(version.body) != 3 || rest.len() > 1 {
            return Err(malformed("PFX version (must be 3)"));
        }
        let ci = auth_safe.children("authSafe")?;
        let content_type = ci.first().and_then(Tlv::oid);
        if content_type == Some(SIGNED_DATA) {
            return Err(Failure::Refused(Refusal::Unsupported(
                "public-key integrity mode (a signed authSafe)".into(),
            )));
        }
        let [oid, content] = ci.as_slice() else {
            return Err(malformed("authSafe ContentInfo"));
        };
        if oid.oid() != Some(DATA) {
            return Err(malformed("authSafe content type (must be data)"));
        }
        let octets = content.explicit_0("authSafe content")?;
        if octets.tag != OCTET_STRING {
            return Err(malformed("authSafe content"));
        }
        let mac = rest.first().map(MacData::read).transpose()?;
        Ok(Pfx {
            auth_safe: octets.body.to_vec(),
            mac,
        })
    }

    /// Checks the MAC and reads every container and bag with `passphrase`.
    fn open(&self, passphrase: &str) -> Result<Found, Failure> {
        let mut budget = KdfBudget::default();
        let mac_ok = match &self.mac {
            Some(mac) => {
                if !mac.verifies(passphrase, &self.auth_safe, &mut budget)? {
                    return Err(Failure::WrongPassphrase);
                }
                true
            }
            None => false,
        };
        let mut reader = Reader {
            passphrase,
            budget,
            mac_ok,
            found: Found::default(),
        };
        let safe = to_der(&self.auth_safe)?;
        let safe = Tlv::only(&safe, SEQUENCE, "AuthenticatedSafe")?;
        for ci in safe.children("AuthenticatedSafe")? {
            reader.container(&ci)?;
        }
        Ok(reader.found)
    }
}

impl MacData {
    fn read(tlv: &Tlv<'_>) -> Result<MacData, Failure> {
        let fields = tlv.children("MacData")?;
        let (digest_info, salt, count) = match fields.as_slice() {
            [d, s] => (d, s, None),
            [d, s, c] => (d, s, Some(c)),
            _ => return Err(malformed("MacData")),
        };
        let di = digest_info.children("MAC DigestInfo")?;
        let [alg, tag] = di.as_slice() else {
            return Err(malformed("MAC DigestInfo"));
        };
        if tag.tag != OCTET_STRING || salt.tag != OCTET_STRING {
            return Err(malformed("MacData"));
        }
        let (oid, params) = algorithm(alg).ok_or(malformed("MAC algorithm"))?;
        let algorithm = if oid == PBMAC1_OID {
            let params = params.ok_or(malformed("PBMAC1 parameters"))?;
            MacAlgorithm::Pbmac1(Pbmac1::parse(&params)?)
        } else {
            MacAlgorithm::Hmac(Hash::of_digest(&oid).ok_or_else(|| {
                Failure::Refused(Refusal::Unsupported(format!("a MAC with digest {oid}")))
            })?)
        };
        let iterations = match count {
            Some(c) if c.tag == INTEGER => integer(c.body),
            Some(_) => return Err(malformed("MAC iteration count")),
            None => 1,
        };
        Ok(MacData {
            algorithm,
            tag: tag.body.to_vec(),
            salt: salt.body.to_vec(),
            iterations,
        })
    }

    /// Whether the MAC checks out under `passphrase` (after charging its derivation).
    fn verifies(
        &self,
        passphrase: &str,
        data: &[u8],
        budget: &mut KdfBudget,
    ) -> Result<bool, Failure> {
        let charge = |budget: &mut KdfBudget, kdf| {
            budget.charge(kdf).map_err(|limit| {
                Failure::Refused(Refusal::Kdf {
                    site: KdfSite::Pkcs12Mac,
                    limit,
                })
            })
        };
        match &self.algorithm {
            MacAlgorithm::Hmac(hash) => {
                charge(
                    budget,
                    super::limits::Kdf::Pkcs12 {
                        iterations: self.iterations,
                    },
                )?;
                let verify = |bmp: &[u8]| {
                    let key =
                        hash.pkcs12_kdf(bmp, &self.salt, 3, self.iterations, hash.output_len());
                    hash.hmac_verifies(&key, data, &self.tag)
                };
                if verify(&bmp_password(passphrase)) {
                    return Ok(true);
                }
                // An empty passphrase is written either as the BMPString terminator alone
                // (OpenSSL) or as no bytes at all (some Java and Windows versions).
                Ok(passphrase.is_empty() && verify(&[]))
            }
            MacAlgorithm::Pbmac1(p) => {
                charge(budget, p.kdf())?;
                Ok(p.verifies(passphrase, data, &self.tag))
            }
        }
    }
}

/// One attempt's walk over the containers and bags.
struct Reader<'p> {
    passphrase: &'p str,
    budget: KdfBudget,
    /// The MAC checked out: a later decryption failure is a damaged file, not a wrong
    /// passphrase.
    mac_ok: bool,
    found: Found,
}

impl Reader<'_> {
    /// One `ContentInfo` of the `AuthenticatedSafe`.
    fn container(&mut self, ci: &Tlv<'_>) -> Result<(), Failure> {
        let fields = ci.children("ContentInfo")?;
        let [oid, content] = fields.as_slice() else {
            return Err(malformed("ContentInfo"));
        };
        match oid.oid() {
            Some(DATA) => {
                let octets = content.explicit_0("data content")?;
                if octets.tag != OCTET_STRING {
                    return Err(malformed("data content"));
                }
                self.safe_contents(octets.body, false, 0)
            }
            Some(ENCRYPTED_DATA) => {
                let ed = content.explicit_0("EncryptedData")?;
                let ed_fields = ed.children("EncryptedData")?;
                let [_version, eci, ..] = ed_fields.as_slice() else {
                    return Err(malformed("EncryptedData"));
                };
                let eci = eci.children("EncryptedContentInfo")?;
                let [_type, alg, body @ ..] = eci.as_slice() else {
                    return Err(malformed("EncryptedContentInfo"));
                };
                let ciphertext = match body {
                    [c] if c.tag == CONTEXT_0_PRIMITIVE => c.body.to_vec(),
                    // BER: a constructed [0] of OCTET STRING segments.
                    [c] if c.tag == CONTEXT_0 => {
                        let mut all = Vec::new();
                        for seg in c.children("encrypted content")? {
                            if seg.tag != OCTET_STRING {
                                return Err(malformed("encrypted content"));
                            }
                            all.extend_from_slice(seg.body);
                        }
                        all
                    }
                    // An empty container (no encryptedContent) holds nothing.
                    [] => return Ok(()),
                    _ => return Err(malformed("encrypted content")),
                };
                let plain = self.decrypt(alg, &ciphertext, KdfSite::Pkcs12Container)?;
                self.safe_contents(&plain, true, 0)
            }
            Some(other) => {
                self.found
                    .ignored
                    .push(format!("a PKCS#12 container of type {other}"));
                Ok(())
            }
            None => Err(malformed("ContentInfo type")),
        }
    }

    /// Derives and decrypts, charging the derivation first; garbage is a wrong passphrase
    /// unless the MAC has already proven the passphrase right.
    fn decrypt(
        &mut self,
        alg: &Tlv<'_>,
        data: &[u8],
        site: KdfSite,
    ) -> Result<Zeroizing<Vec<u8>>, Failure> {
        let scheme = Scheme::parse(alg)?;
        self.budget
            .charge(scheme.kdf())
            .map_err(|limit| Failure::Refused(Refusal::Kdf { site, limit }))?;
        match scheme.decrypt(self.passphrase, data) {
            Ok(plain) => Ok(plain),
            Err(CipherError::BadDecrypt) if !self.mac_ok => Err(Failure::WrongPassphrase),
            Err(e) => Err(malformed(&format!(
                "{} does not decrypt: {e}",
                scheme.describe()
            ))),
        }
    }

    /// A `SafeContents`: a SEQUENCE of bags (BER allowed).
    fn safe_contents(
        &mut self,
        bytes: &[u8],
        encrypted: bool,
        depth: usize,
    ) -> Result<(), Failure> {
        if depth > MAX_BAG_DEPTH {
            return Err(malformed("safeContents bags nested too deep"));
        }
        let der = match to_der(bytes) {
            Ok(der) => der,
            // Decrypted garbage: the passphrase was wrong (without a MAC to say so first).
            Err(_) if encrypted && !self.mac_ok => return Err(Failure::WrongPassphrase),
            Err(e) => return Err(e.into()),
        };
        let seq = match Tlv::only(&der, SEQUENCE, "SafeContents") {
            Ok(seq) => seq,
            Err(_) if encrypted && !self.mac_ok => return Err(Failure::WrongPassphrase),
            Err(e) => return Err(e.into()),
        };
        for bag in seq.children("SafeContents")? {
            self.bag(&bag, encrypted, depth)?;
        }
        Ok(())
    }

    fn bag(&mut self, bag: &Tlv<'_>, encrypted: bool, depth: usize) -> Result<(), Failure> {
        let fields = bag.children("SafeBag")?;
        let [id, value, ..] = fields.as_slice() else {
            return Err(malformed("SafeBag"));
        };
        let value = value.explicit_0("SafeBag value")?;
        match id.oid() {
            Some(KEY_BAG) => self.key(value.raw, false),
            Some(SHROUDED_KEY_BAG) => {
                let epki = value.children("EncryptedPrivateKeyInfo")?;
                let [alg, data] = epki.as_slice() else {
                    return Err(malformed("EncryptedPrivateKeyInfo"));
                };
                if data.tag != OCTET_STRING {
                    return Err(malformed("EncryptedPrivateKeyInfo"));
                }
                let site = if encrypted {
                    KdfSite::Pkcs12NestedBag
                } else {
                    KdfSite::Pkcs12Bag
                };
                let plain = self.decrypt(alg, data.body, site)?;
                self.key(&plain, true)
            }
            Some(CERT_BAG) => {
                let cb = value.children("CertBag")?;
                let [kind, cert] = cb.as_slice() else {
                    return Err(malformed("CertBag"));
                };
                if kind.oid() != Some(X509_CERTIFICATE) {
                    self.found
                        .ignored
                        .push("a PKCS#12 certificate bag that is not X.509".into());
                    return Ok(());
                }
                let octets = cert.explicit_0("CertBag value")?;
                if octets.tag != OCTET_STRING {
                    return Err(malformed("CertBag value"));
                }
                if self.found.certs.len() >= MAX_CERTS_PER_FILE {
                    return Err(Failure::Refused(Refusal::TooManyCertificates(
                        self.found.certs.len() + 1,
                    )));
                }
                let cert = parse_cert(octets.body).map_err(|detail| {
                    Failure::Refused(Refusal::Malformed(format!(
                        "it holds an unreadable certificate: {detail}"
                    )))
                })?;
                self.found.certs.push(cert);
                Ok(())
            }
            Some(SAFE_CONTENTS_BAG) => self.safe_contents(value.raw, encrypted, depth + 1),
            Some(other) => {
                self.found.ignored.push(format!(
                    "a PKCS#12 {} bag",
                    match other.to_string().as_str() {
                        "1.2.840.113549.1.12.10.1.4" => "CRL".to_string(),
                        "1.2.840.113549.1.12.10.1.5" => "secret".to_string(),
                        o => o.to_string(),
                    }
                ));
                Ok(())
            }
            None => Err(malformed("SafeBag type")),
        }
    }

    /// A PKCS#8 key from a (decrypted) key bag.
    fn key(&mut self, pkcs8: &[u8], decrypted: bool) -> Result<(), Failure> {
        match PrivateKey::from_pkcs8_der(pkcs8) {
            Ok(key) => {
                self.found.keys.push(key);
                Ok(())
            }
            // Decrypted garbage that happened to pass the padding check.
            Err(_) if decrypted && !self.mac_ok => Err(Failure::WrongPassphrase),
            Err(e) => Err(Failure::Refused(Refusal::Key(e))),
        }
    }
}

#[cfg(test)]
mod tests;
