//! PKCS#7 / CMS "certs-only" files (`.p7b`, `.p7c`, PEM `PKCS7` or `CMS`): the certificates
//! of a `SignedData`, in file order (the assembler orders the chain itself).
//!
//! ```text
//! ContentInfo ::= SEQUENCE { contentType OID (signedData), content [0] EXPLICIT SignedData }
//! SignedData  ::= SEQUENCE { version INTEGER, digestAlgorithms SET, encapContentInfo SEQUENCE,
//!                            certificates [0] IMPLICIT SET OF CertificateChoices OPTIONAL,
//!                            crls [1] IMPLICIT SET OPTIONAL, signerInfos SET }
//! ```
//!
//! certtool, NSS and Windows write BER (indefinite lengths), so this module has its own small
//! BER reader: depth-bounded, panic-free on any input, reading only what the walk above needs.
//! Plain X.509 certificates are taken; other `CertificateChoices` (attribute certificates and
//! the like) and CRLs are noted in [`ParsedFile::ignored`]. Signatures, if any, are not checked:
//! a certs-only file has none, and a signed message's signature says nothing about a bundle.

use pkcs8::der::asn1::ObjectIdentifier;

use super::cert::parse_cert;
use super::formats::{FormatError, ParsedFile};
use super::limits::MAX_CERTS_PER_FILE;

/// `id-signedData`, 1.2.840.113549.1.7.2, as its DER encoding (tag, length, value).
const SIGNED_DATA_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];

/// How deep the BER reader follows nested indefinite-length elements. A certificate is about
/// ten levels deep inside a SignedData; nothing legitimate comes near this.
const MAX_DEPTH: usize = 32;

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_1: u8 = 0xa1;
const CONSTRUCTED: u8 = 0x20;

/// Where the PKCS#7 bytes came from, for the conversion hint in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// A whole DER/BER file.
    Der,
    /// The contents of a PEM `PKCS7` or `CMS` block.
    Pem,
}

/// Whether `bytes` starts like a PKCS#7 `ContentInfo` of type signedData: a SEQUENCE header
/// (definite or indefinite length) followed by the signedData OID.
pub(super) fn is_pkcs7(bytes: &[u8]) -> bool {
    let Some((&SEQUENCE, rest)) = bytes.split_first() else {
        return false;
    };
    let Some((&first, rest)) = rest.split_first() else {
        return false;
    };
    // Short form and indefinite length: no length octets follow; long form: `first & 0x7f`.
    let skip = if first <= 0x80 {
        0
    } else {
        usize::from(first & 0x7f)
    };
    rest.get(skip..)
        .is_some_and(|body| body.starts_with(&SIGNED_DATA_OID))
}

/// Reads the certificates of a PKCS#7 `SignedData` into `out`, checking their number against
/// [`MAX_CERTS_PER_FILE`] (with the certificates already read from the same file) first.
pub(super) fn parse(out: &mut ParsedFile, bytes: &[u8], source: Source) -> Result<(), FormatError> {
    let file = out.name.clone();
    let invalid = |detail: String| FormatError::Pkcs7 {
        file: file.clone(),
        detail,
        der: source == Source::Der,
    };
    let found = certificates(bytes).map_err(|m| invalid(m.to_string()))?;
    let plain = found.entries.iter().filter(|e| e.is_certificate()).count();
    if plain == 0 {
        return Err(FormatError::Pkcs7NoCertificates { file });
    }
    let total = out.certs.len().saturating_add(plain);
    if total > MAX_CERTS_PER_FILE {
        return Err(FormatError::TooManyCertificates {
            file,
            found: total,
            max: MAX_CERTS_PER_FILE,
        });
    }
    for (i, entry) in found.entries.iter().enumerate() {
        let number = i + 1;
        match entry {
            Entry::Certificate(der) => out.certs.push(parse_cert(der).map_err(|e| {
                invalid(format!(
                    "certificate {number} of its certificates field is not a valid X.509 certificate ({e})"
                ))
            })?),
            Entry::Other(tag) => out.ignored.push(format!(
                "PKCS#7 certificates entry {number} ({}: not an X.509 certificate)",
                choice_name(*tag)
            )),
        }
    }
    if found.crls {
        out.ignored
            .push("PKCS#7 CRLs (revocation lists are not part of a bundle)".into());
    }
    Ok(())
}

/// The `CertificateChoices` alternative a tag stands for, for notes.
fn choice_name(tag: u8) -> &'static str {
    match tag {
        CONTEXT_0 => "an extended certificate",
        CONTEXT_1 => "a version 1 attribute certificate",
        0xa2 => "a version 2 attribute certificate",
        0xa3 => "a certificate in another format",
        _ => "an unknown kind of entry",
    }
}

/// One element of the `certificates` SET.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry<'a> {
    /// A plain X.509 `Certificate` (a SEQUENCE): its whole encoding.
    Certificate(&'a [u8]),
    /// Any other `CertificateChoices` alternative, by its tag.
    Other(u8),
}

impl Entry<'_> {
    fn is_certificate(&self) -> bool {
        matches!(self, Entry::Certificate(_))
    }
}

/// What the walk found in a SignedData.
#[derive(Debug)]
struct Found<'a> {
    entries: Vec<Entry<'a>>,
    /// Whether the `crls` field is present.
    crls: bool,
}

/// The part of a PKCS#7 file that is not what it must be, named for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Malformed {
    #[error("its {0} is truncated or not valid DER/BER")]
    Unreadable(&'static str),
    #[error("its {what} is not {want} (found tag 0x{tag:02x})")]
    Tag {
        what: &'static str,
        want: &'static str,
        tag: u8,
    },
    #[error("its {0} is missing")]
    Missing(&'static str),
    #[error("it is a PKCS#7 ContentInfo of type {0}, not signedData (1.2.840.113549.1.7.2), so it holds no certificate list")]
    NotSignedData(String),
}

/// Walks ContentInfo → SignedData → certificates.
fn certificates(bytes: &[u8]) -> Result<Found<'_>, Malformed> {
    let (content_info, _trailing) =
        Tlv::split(bytes, 0).ok_or(Malformed::Unreadable("ContentInfo"))?;
    content_info.expect(SEQUENCE, "ContentInfo", "a SEQUENCE")?;
    let mut fields = content_info.children("ContentInfo")?.into_iter();
    let content_type = fields.next().ok_or(Malformed::Missing("contentType"))?;
    content_type.expect(OID, "contentType", "an OBJECT IDENTIFIER")?;
    if content_type.raw != SIGNED_DATA_OID {
        let name = ObjectIdentifier::from_bytes(content_type.body)
            .map_or_else(|_| "(an unreadable OID)".to_string(), |oid| oid.to_string());
        return Err(Malformed::NotSignedData(name));
    }
    let wrapper = fields
        .next()
        .ok_or(Malformed::Missing("signedData content"))?;
    wrapper.expect(CONTEXT_0, "signedData content", "an EXPLICIT [0]")?;
    let signed_data = match wrapper.children("signedData content")?.as_slice() {
        [one] => *one,
        [] => return Err(Malformed::Missing("SignedData")),
        [_, ..] => return Err(Malformed::Unreadable("signedData content")),
    };
    signed_data.expect(SEQUENCE, "SignedData", "a SEQUENCE")?;
    let mut fields = signed_data.children("SignedData")?.into_iter().peekable();
    let version = fields
        .next()
        .ok_or(Malformed::Missing("SignedData version"))?;
    version.expect(INTEGER, "SignedData version", "an INTEGER")?;
    let digests = fields
        .next()
        .ok_or(Malformed::Missing("SignedData digestAlgorithms"))?;
    digests.expect(SET, "SignedData digestAlgorithms", "a SET")?;
    let encap = fields
        .next()
        .ok_or(Malformed::Missing("SignedData encapContentInfo"))?;
    encap.expect(SEQUENCE, "SignedData encapContentInfo", "a SEQUENCE")?;
    let mut entries = Vec::new();
    // certificates [0] IMPLICIT SET OF: context tag 0, constructed. A primitive [0] is a
    // malformed certificates field, not a missing one.
    if fields.peek().is_some_and(|f| f.tag & !CONSTRUCTED == 0x80) {
        let certs = fields
            .next()
            .ok_or(Malformed::Missing("certificates field"))?;
        certs.expect(CONTEXT_0, "certificates field", "a SET (IMPLICIT [0])")?;
        for entry in certs.children("certificates field")? {
            entries.push(match entry.tag {
                SEQUENCE => Entry::Certificate(entry.raw),
                other => Entry::Other(other),
            });
        }
    }
    let crls = fields.peek().is_some_and(|f| f.tag & !CONSTRUCTED == 0x81);
    Ok(Found { entries, crls })
}

/// One BER element: its identifier octet, its whole encoding and its contents (without the
/// end-of-contents octets of an indefinite length).
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    raw: &'a [u8],
    body: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The first element of `input` and what follows it. Definite lengths of up to four
    /// octets, and indefinite lengths on constructed elements, whose contents are read
    /// element by element (at most [`MAX_DEPTH`] levels down) up to their end-of-contents.
    fn split(input: &'a [u8], depth: usize) -> Option<(Tlv<'a>, &'a [u8])> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // high tag numbers: nowhere in PKCS#7's certificate path
        }
        let (&first, rest) = rest.split_first()?;
        let (body, after) = match first {
            0x80 => {
                if tag & CONSTRUCTED == 0 {
                    return None; // BER allows indefinite lengths only on constructed elements
                }
                let mut cursor = rest;
                while !cursor.starts_with(&[0, 0]) {
                    cursor = Tlv::split(cursor, depth + 1)?.1;
                }
                let body = rest.get(..rest.len() - cursor.len())?;
                (body, cursor.get(2..)?)
            }
            short if short < 0x80 => {
                let len = usize::from(short);
                (rest.get(..len)?, rest.get(len..)?)
            }
            long => {
                let n = usize::from(long & 0x7f);
                if n > 4 {
                    return None;
                }
                let octets = rest.get(..n)?;
                let len = octets
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                let rest = rest.get(n..)?;
                (rest.get(..len)?, rest.get(len..)?)
            }
        };
        let raw = input.get(..input.len() - after.len())?;
        Some((Tlv { tag, raw, body }, after))
    }

    /// The elements of a constructed value, or [`Malformed::Unreadable`] naming `what`.
    fn children(&self, what: &'static str) -> Result<Vec<Tlv<'a>>, Malformed> {
        if self.tag & CONSTRUCTED == 0 {
            return Err(Malformed::Unreadable(what));
        }
        let mut out = Vec::new();
        let mut rest = self.body;
        while !rest.is_empty() {
            let (tlv, next) = Tlv::split(rest, 1).ok_or(Malformed::Unreadable(what))?;
            out.push(tlv);
            rest = next;
        }
        Ok(out)
    }

    /// Checks that this element has tag `tag`; else an error naming `what` and what it must be.
    fn expect(&self, tag: u8, what: &'static str, want: &'static str) -> Result<(), Malformed> {
        if self.tag == tag {
            Ok(())
        } else {
            Err(Malformed::Tag {
                what,
                want,
                tag: self.tag,
            })
        }
    }
}

#[cfg(test)]
mod tests;
