//! The pre-flight walk: every key derivation and certificate of a PKCS#12 file that p12-keystore
//! would reach, found before it runs (see the [parent module](super) for what and why).

use pkcs8::der::asn1::ObjectIdentifier;
use pkcs8::der::Decode;

use super::der::{
    integer, Malformed, Tlv, CERT_BAG, CONSTRUCTED, CONTEXT_0_PRIMITIVE, DATA, ENCRYPTED_DATA,
    INTEGER, OCTET_STRING, SEQUENCE, X509_CERTIFICATE,
};
use crate::bundle::formats::{FormatError, KdfSite};
use crate::bundle::limits::{Kdf, KdfBudget, KdfLimit, MAX_CERTS_PER_FILE};

const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
/// `pkcs-12PbeIds`: pbeWithSHAAnd128BitRC4 (.1) to pbeWithSHAAnd40BitRC2-CBC (.6).
const PKCS12_PBE_ARC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1");

/// How deep the scan for algorithm identifiers descends. p12-keystore finds its parameters
/// at most 7 levels below a `SafeContents`; deeper elements are certificate internals.
const MAX_SCAN_DEPTH: usize = 32;

/// Why the pre-flight refuses a file.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Not the PKCS#12 structure p12-keystore reads.
    Malformed(String),
    Kdf {
        site: KdfSite,
        limit: KdfLimit,
    },
    TooManyCertificates(usize),
    IssuerLoop(Vec<String>),
}

impl Refusal {
    pub(super) fn into_format_error(self, file: &str) -> FormatError {
        let file = file.to_string();
        match self {
            Refusal::Malformed(detail) => FormatError::Pkcs12 { file, detail },
            Refusal::Kdf { site, limit } => FormatError::KdfLimit { file, site, limit },
            Refusal::TooManyCertificates(found) => FormatError::TooManyCertificates {
                file,
                found,
                max: MAX_CERTS_PER_FILE,
            },
            Refusal::IssuerLoop(names) => FormatError::Pkcs12IssuerLoop { file, names },
        }
    }
}

impl From<Malformed> for Refusal {
    fn from(Malformed(what): Malformed) -> Refusal {
        Refusal::Malformed(format!("the file is malformed ({what})"))
    }
}

fn malformed(what: &'static str) -> Refusal {
    Malformed(what).into()
}

/// The key derivation an `AlgorithmIdentifier` asks for, if it is a PBES2 or PKCS#12 PBE
/// one whose parameters decode as p12-keystore decodes them (if they do not, p12-keystore
/// fails before deriving anything).
fn pbe_kdf(alg: Tlv<'_>) -> Option<Kdf> {
    if alg.tag != SEQUENCE {
        return None;
    }
    let children = alg.leading_children();
    let oid = children.first()?.oid()?;
    let params = children.get(1)?;
    if oid == PBES2 {
        let params = pkcs5::pbes2::Parameters::from_der(params.raw).ok()?;
        return Some(Kdf::of_pbes2(&params.kdf));
    }
    if oid.parent() == Some(PKCS12_PBE_ARC) {
        // pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }
        if params.tag != SEQUENCE {
            return None;
        }
        let fields = params.leading_children();
        let iterations = fields.get(1).filter(|f| f.tag == INTEGER)?;
        return Some(Kdf::Pkcs12 {
            iterations: integer(iterations.body),
        });
    }
    None
}

/// Charges every PBE algorithm identifier at or below `tlv` to `budget`.
fn scan(tlv: Tlv<'_>, depth: usize, budget: &mut KdfBudget, site: KdfSite) -> Result<(), Refusal> {
    if depth > MAX_SCAN_DEPTH {
        return Ok(());
    }
    if let Some(kdf) = pbe_kdf(tlv) {
        budget
            .charge(kdf)
            .map_err(|limit| Refusal::Kdf { site, limit })?;
    }
    if tlv.tag & CONSTRUCTED != 0 || tlv.tag == OCTET_STRING {
        for child in tlv.leading_children() {
            scan(child, depth + 1, budget, site)?;
        }
    }
    Ok(())
}

/// An encrypted container: its algorithm identifier (DER) and ciphertext.
#[derive(Debug)]
pub(super) struct Container<'a> {
    pub(super) algorithm: &'a [u8],
    pub(super) ciphertext: &'a [u8],
}

/// What the walk has found so far: derivations charged and certificates seen.
#[derive(Debug, Clone, Default)]
pub(super) struct Seen {
    budget: KdfBudget,
    certs: Vec<Vec<u8>>,
}

/// What [`read`] found in the parts of the file that are not encrypted.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    /// The encrypted containers, to open with each candidate passphrase.
    pub(super) containers: Vec<Container<'a>>,
    /// The derivations and certificates of the plain parts.
    pub(super) seen: Seen,
}

/// Walks the parts of a PFX that need no passphrase; refuses it if a derivation there is
/// over the caps. No key derivation runs.
pub(super) fn read(der: &[u8]) -> Result<Plan<'_>, Refusal> {
    let pfx = Tlv::only(der, SEQUENCE, "not a single DER SEQUENCE")?;
    let fields = pfx.children("PFX")?;
    let [version, auth_safe, rest @ ..] = fields.as_slice() else {
        return Err(malformed("PFX"));
    };
    if version.tag != INTEGER || integer(version.body) != 3 || rest.len() > 1 {
        return Err(malformed("PFX"));
    }
    let mut seen = Seen::default();
    // p12-keystore checks the MAC first, whatever follows.
    if let Some(mac) = rest.first() {
        if mac.tag != SEQUENCE {
            return Err(malformed("MacData"));
        }
        // MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING,
        //                        iterations INTEGER DEFAULT 1 }
        let iterations = mac
            .children("MacData")?
            .iter()
            .rfind(|f| f.tag == INTEGER)
            .map_or(1, |f| integer(f.body));
        seen.budget
            .charge(Kdf::Pkcs12 { iterations })
            .map_err(|limit| Refusal::Kdf {
                site: KdfSite::Pkcs12Mac,
                limit,
            })?;
    }
    let content = data_content(*auth_safe, "authenticated safe")?.ok_or_else(|| {
        Refusal::Malformed(
            "its authenticated safe is not `data` (public-key integrity mode is not supported)"
                .into(),
        )
    })?;
    let safes = Tlv::only(content, SEQUENCE, "AuthenticatedSafe")?;
    let mut containers = Vec::new();
    for info in safes.children("AuthenticatedSafe")? {
        if let Some(contents) = data_content(info, "ContentInfo")? {
            seen.walk(contents, KdfSite::Pkcs12Bag)?;
            continue;
        }
        containers.push(encrypted_content(info, &mut seen.budget)?);
    }
    if seen.certs.len() > MAX_CERTS_PER_FILE {
        return Err(Refusal::TooManyCertificates(seen.certs.len()));
    }
    Ok(Plan { containers, seen })
}

/// The OCTET STRING contents of a `data` ContentInfo; `None` for any other content type.
fn data_content<'a>(info: Tlv<'a>, what: &'static str) -> Result<Option<&'a [u8]>, Refusal> {
    if info.tag != SEQUENCE {
        return Err(malformed(what));
    }
    let fields = info.children(what)?;
    let [content_type, content] = fields.as_slice() else {
        return Err(malformed(what));
    };
    if content_type.oid() != Some(DATA) {
        return Ok(None);
    }
    let octets = content.explicit_0(what)?;
    if octets.tag != OCTET_STRING {
        return Err(malformed(what));
    }
    Ok(Some(octets.body))
}

/// An `encryptedData` ContentInfo's algorithm (charged to `budget`) and ciphertext.
fn encrypted_content<'a>(info: Tlv<'a>, budget: &mut KdfBudget) -> Result<Container<'a>, Refusal> {
    const WHAT: &str = "EncryptedData";
    let fields = info.children(WHAT)?;
    let [content_type, content] = fields.as_slice() else {
        return Err(malformed(WHAT));
    };
    match content_type.oid() {
        Some(ENCRYPTED_DATA) => {}
        Some(oid) => {
            return Err(Refusal::Malformed(format!(
                "it holds a container of type {oid}; certraft reads data and encryptedData"
            )))
        }
        None => return Err(malformed(WHAT)),
    }
    // EncryptedData ::= SEQUENCE { version, EncryptedContentInfo, [1] attrs OPTIONAL }
    // EncryptedContentInfo ::= SEQUENCE { contentType, AlgorithmIdentifier,
    //                                     [0] IMPLICIT OCTET STRING OPTIONAL }
    let data = content.explicit_0(WHAT)?;
    if data.tag != SEQUENCE {
        return Err(malformed(WHAT));
    }
    let info = *data.children(WHAT)?.get(1).ok_or_else(|| malformed(WHAT))?;
    if info.tag != SEQUENCE {
        return Err(malformed(WHAT));
    }
    let fields = info.children(WHAT)?;
    let (algorithm, ciphertext) = match fields.as_slice() {
        [_, alg] => (*alg, &[][..]),
        [_, alg, ct] if ct.tag == CONTEXT_0_PRIMITIVE => (*alg, ct.body),
        _ => return Err(malformed(WHAT)),
    };
    if algorithm.tag != SEQUENCE {
        return Err(malformed(WHAT));
    }
    if let Some(kdf) = pbe_kdf(algorithm) {
        budget.charge(kdf).map_err(|limit| Refusal::Kdf {
            site: KdfSite::Pkcs12Container,
            limit,
        })?;
    }
    Ok(Container {
        algorithm: algorithm.raw,
        ciphertext,
    })
}

impl Seen {
    /// Walks one `SafeContents`: records its certificate bags and charges every key
    /// derivation found in it.
    fn walk(&mut self, safe_contents: &[u8], site: KdfSite) -> Result<(), Refusal> {
        const WHAT: &str = "SafeContents";
        let bags = Tlv::only(safe_contents, SEQUENCE, WHAT)?;
        for bag in bags.children(WHAT)? {
            if bag.tag != SEQUENCE {
                return Err(malformed("SafeBag"));
            }
            // SafeBag ::= SEQUENCE { bagId, [0] EXPLICIT bagValue, bagAttributes OPTIONAL }
            let fields = bag.children("SafeBag")?;
            let (Some(id), Some(value)) = (fields.first(), fields.get(1)) else {
                return Err(malformed("SafeBag"));
            };
            if id.oid() == Some(CERT_BAG) {
                // CertBag ::= SEQUENCE { certId, [0] EXPLICIT OCTET STRING }
                let cert_bag = value.explicit_0("CertBag")?;
                if cert_bag.tag != SEQUENCE {
                    return Err(malformed("CertBag"));
                }
                let fields = cert_bag.children("CertBag")?;
                let [cert_id, cert_value] = fields.as_slice() else {
                    return Err(malformed("CertBag"));
                };
                if cert_id.oid() == Some(X509_CERTIFICATE) {
                    let octets = cert_value.explicit_0("CertBag")?;
                    if octets.tag != OCTET_STRING {
                        return Err(malformed("CertBag"));
                    }
                    self.certs.push(octets.body.to_vec());
                    if self.certs.len() > MAX_CERTS_PER_FILE {
                        return Err(Refusal::TooManyCertificates(self.certs.len()));
                    }
                }
            }
        }
        scan(bags, 0, &mut self.budget, site)
    }

    /// Walks the plaintext of an encrypted container, as [`read`] walks a plain one.
    pub(super) fn walk_nested(&mut self, safe_contents: &[u8]) -> Result<(), Refusal> {
        self.walk(safe_contents, KdfSite::Pkcs12NestedBag)
    }

    /// Refuses certificates whose issuer names form a loop (see the [parent module](super)). Names are
    /// compared as p12-keystore compares them: x509-parser's rendering.
    pub(super) fn check_issuers(&self) -> Result<(), Refusal> {
        let names: Vec<(String, String)> = self
            .certs
            .iter()
            .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
            .map(|(_, c)| (c.subject().to_string(), c.issuer().to_string()))
            .filter(|(subject, issuer)| subject != issuer)
            .collect();
        match issuer_loop(&names) {
            Some(path) => Err(Refusal::IssuerLoop(path)),
            None => Ok(()),
        }
    }
}

/// A loop in "is issued by" among certificates that are not self-issued, as the subjects
/// along it (the first repeated at the end); `None` if there is none. A superset of the
/// loops p12-keystore's walk can enter: it follows the first match, this any match.
fn issuer_loop(names: &[(String, String)]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        at: usize,
        names: &[(String, String)],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[at] = Mark::OnPath;
        path.push(at);
        for next in (0..names.len()).filter(|j| names[*j].0 == names[at].1) {
            match marks[next] {
                Mark::OnPath => {
                    let start = path.iter().position(|p| *p == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|i| names[*i].0.clone()).collect();
                    cycle.push(names[next].0.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, names, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[at] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; names.len()];
    for start in 0..names.len() {
        if marks[start] == Mark::New {
            if let Some(cycle) = visit(start, names, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}
