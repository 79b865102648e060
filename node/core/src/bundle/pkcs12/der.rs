//! Just enough DER for PKCS#12, without a schema: the tags and object identifiers the reader
//! uses, a reader of single elements, a BER-to-DER normaliser, and a writer of the few
//! structures the tests build.

use pkcs8::der::asn1::ObjectIdentifier;

pub(in crate::bundle) const SEQUENCE: u8 = 0x30;
#[cfg(test)]
pub(in crate::bundle) const SET: u8 = 0x31;
pub(in crate::bundle) const INTEGER: u8 = 0x02;
pub(in crate::bundle) const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
/// `[0]` constructed: EXPLICIT wrappers.
pub(in crate::bundle) const CONTEXT_0: u8 = 0xa0;
/// `[0]` primitive: the IMPLICIT OCTET STRING of an `EncryptedContentInfo`.
pub(in crate::bundle) const CONTEXT_0_PRIMITIVE: u8 = 0x80;
/// Constructed bit of an identifier octet.
pub(in crate::bundle) const CONSTRUCTED: u8 = 0x20;

pub(in crate::bundle) const DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub(in crate::bundle) const ENCRYPTED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
pub(in crate::bundle) const SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
pub(in crate::bundle) const CERT_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
pub(in crate::bundle) const X509_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
#[cfg(test)]
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");

/// An element that is not what the structure named `.0` needs there.
#[derive(Debug)]
pub(in crate::bundle) struct Malformed(pub(super) &'static str);

/// One DER element: its identifier octet, the whole encoding and the contents.
#[derive(Debug, Clone, Copy)]
pub(in crate::bundle) struct Tlv<'a> {
    pub(in crate::bundle) tag: u8,
    pub(in crate::bundle) raw: &'a [u8],
    pub(in crate::bundle) body: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The first element of `input` and what follows it. Definite lengths of up to four
    /// octets, non-minimal ones included: everything the der crate reads, and more.
    pub(in crate::bundle) fn split(input: &'a [u8]) -> Option<(Tlv<'a>, &'a [u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // high tag numbers: nowhere in PKCS#12
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let header = input.len() - rest.len();
        let tlv = Tlv {
            tag,
            raw: &input[..header + len],
            body: &rest[..len],
        };
        Some((tlv, &rest[len..]))
    }

    /// `input` as exactly one element with this tag.
    pub(in crate::bundle) fn only(
        input: &'a [u8],
        tag: u8,
        what: &'static str,
    ) -> Result<Tlv<'a>, Malformed> {
        match Tlv::split(input) {
            Some((tlv, [])) if tlv.tag == tag => Ok(tlv),
            _ => Err(Malformed(what)),
        }
    }

    /// The elements of a constructed value: all of them, or [`Malformed`] if one does not parse.
    pub(in crate::bundle) fn children(
        &self,
        what: &'static str,
    ) -> Result<Vec<Tlv<'a>>, Malformed> {
        let mut out = Vec::new();
        let mut rest = self.body;
        while !rest.is_empty() {
            let (tlv, next) = Tlv::split(rest).ok_or(Malformed(what))?;
            out.push(tlv);
            rest = next;
        }
        Ok(out)
    }

    pub(in crate::bundle) fn oid(&self) -> Option<ObjectIdentifier> {
        (self.tag == OID)
            .then(|| ObjectIdentifier::from_bytes(self.body).ok())
            .flatten()
    }

    /// The element inside an EXPLICIT `[0]` wrapper.
    pub(in crate::bundle) fn explicit_0(&self, what: &'static str) -> Result<Tlv<'a>, Malformed> {
        if self.tag != CONTEXT_0 {
            return Err(Malformed(what));
        }
        match Tlv::split(self.body) {
            Some((inner, [])) => Ok(inner),
            _ => Err(Malformed(what)),
        }
    }
}

/// An INTEGER's value, saturated: negative counts give 0
/// (no iterations run), counts beyond `u64` give `u64::MAX` (refused).
pub(in crate::bundle) fn integer(body: &[u8]) -> u64 {
    match body.first() {
        None => 0,
        Some(b) if b & 0x80 != 0 => 0,
        Some(_) => {
            let digits = body.iter().skip_while(|b| **b == 0).collect::<Vec<_>>();
            if digits.len() > 8 {
                u64::MAX
            } else {
                digits
                    .iter()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(**b))
            }
        }
    }
}

/// One DER element with this identifier octet around the concatenated `parts`.
pub(in crate::bundle) fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
pub(in crate::bundle) fn oid(oid: ObjectIdentifier) -> Vec<u8> {
    tlv(OID, &[oid.as_bytes()])
}

#[cfg(test)]
/// A `data` ContentInfo around `content`.
pub(in crate::bundle) fn data(content: &[u8]) -> Vec<u8> {
    tlv(
        SEQUENCE,
        &[
            &oid(DATA),
            &tlv(CONTEXT_0, &[&tlv(OCTET_STRING, &[content])]),
        ],
    )
}

#[cfg(test)]
/// A SafeBag of this type and value, with a localKeyId attribute when `local_key_id`.
pub(in crate::bundle) fn safe_bag(
    id: ObjectIdentifier,
    value: &[u8],
    local_key_id: bool,
) -> Vec<u8> {
    let attributes = tlv(
        SET,
        &[&tlv(
            SEQUENCE,
            &[
                &oid(LOCAL_KEY_ID),
                &tlv(SET, &[&tlv(OCTET_STRING, &[b"certraft-probe"])]),
            ],
        )],
    );
    let attributes: &[u8] = if local_key_id { &attributes } else { &[] };
    tlv(SEQUENCE, &[&oid(id), &tlv(CONTEXT_0, &[value]), attributes])
}

#[cfg(test)]
/// A shrouded key bag: `EncryptedPrivateKeyInfo { algorithm, OCTET STRING ciphertext }`.
pub(in crate::bundle) fn shrouded_key_bag(algorithm: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    safe_bag(
        SHROUDED_KEY_BAG,
        &tlv(SEQUENCE, &[algorithm, &tlv(OCTET_STRING, &[ciphertext])]),
        true,
    )
}

#[cfg(test)]
/// A certificate bag holding `cert`.
pub(in crate::bundle) fn cert_bag(cert: &[u8], local_key_id: bool) -> Vec<u8> {
    safe_bag(
        CERT_BAG,
        &tlv(
            SEQUENCE,
            &[
                &oid(X509_CERTIFICATE),
                &tlv(CONTEXT_0, &[&tlv(OCTET_STRING, &[cert])]),
            ],
        ),
        local_key_id,
    )
}

#[cfg(test)]
/// A MAC-less PFX whose one plain container holds `bags`.
pub(in crate::bundle) fn pfx(bags: &[&[u8]]) -> Vec<u8> {
    let safe_contents = tlv(SEQUENCE, bags);
    let auth_safe = tlv(SEQUENCE, &[&data(&safe_contents)]);
    tlv(SEQUENCE, &[&tlv(INTEGER, &[&[3]]), &data(&auth_safe)])
}

/// Deepest nesting [`to_der`] follows; real PKCS#12 and PKCS#7 files nest about 12 deep.
const MAX_BER_DEPTH: usize = 40;

/// `input`, one BER element, re-encoded as DER where it matters to a reader: indefinite
/// lengths become definite and constructed OCTET STRINGs become one primitive OCTET STRING
/// (NSS, Windows and certtool write BER). The contents of primitive elements are copied as
/// they are, so a MAC over an OCTET STRING's value still checks out. Anything after the
/// element is an error.
pub(in crate::bundle) fn to_der(input: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(input.len());
    let rest = ber_element(input, 0, &mut out)?;
    if rest.is_empty() {
        Ok(out)
    } else {
        Err(Malformed("bytes after the end of the structure"))
    }
}

/// Normalises one element from the front of `input` into `out`; returns what follows.
fn ber_element<'a>(
    input: &'a [u8],
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<&'a [u8], Malformed> {
    if depth > MAX_BER_DEPTH {
        return Err(Malformed("nesting deeper than any real file"));
    }
    let (&tag, rest) = input.split_first().ok_or(Malformed("truncated element"))?;
    if tag & 0x1f == 0x1f {
        return Err(Malformed("high tag number"));
    }
    let (&first, rest) = rest.split_first().ok_or(Malformed("truncated length"))?;
    let constructed = tag & CONSTRUCTED != 0;
    // Definite: the contents and what follows; indefinite: contents run to an end-of-contents.
    let (body, after, indefinite) = if first == 0x80 {
        if !constructed {
            return Err(Malformed("indefinite length on a primitive element"));
        }
        (rest, &[][..], true)
    } else if first < 0x80 {
        let len = usize::from(first);
        if rest.len() < len {
            return Err(Malformed("length past the end of the data"));
        }
        (&rest[..len], &rest[len..], false)
    } else {
        let n = usize::from(first & 0x7f);
        if n > 4 || rest.len() < n {
            return Err(Malformed("unsupported length encoding"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let rest = &rest[n..];
        if rest.len() < len {
            return Err(Malformed("length past the end of the data"));
        }
        (&rest[..len], &rest[len..], false)
    };
    if !constructed {
        out.extend_from_slice(&tlv(tag, &[body]));
        return Ok(after);
    }
    let mut inner = Vec::with_capacity(body.len());
    let mut cursor = body;
    loop {
        if indefinite {
            if let Some(next) = cursor.strip_prefix(&[0, 0]) {
                cursor = next;
                break;
            }
            if cursor.is_empty() {
                return Err(Malformed("missing end-of-contents"));
            }
        } else if cursor.is_empty() {
            break;
        }
        cursor = ber_element(cursor, depth + 1, &mut inner)?;
    }
    let after = if indefinite { cursor } else { after };
    if tag == OCTET_STRING | CONSTRUCTED {
        // A constructed OCTET STRING: its (now primitive) segments, concatenated.
        let mut value = Vec::new();
        let mut segs = &inner[..];
        while !segs.is_empty() {
            let (seg, next) = Tlv::split(segs).ok_or(Malformed("OCTET STRING segment"))?;
            if seg.tag != OCTET_STRING {
                return Err(Malformed("OCTET STRING segment"));
            }
            value.extend_from_slice(seg.body);
            segs = next;
        }
        out.extend_from_slice(&tlv(OCTET_STRING, &[&value]));
    } else {
        out.extend_from_slice(&tlv(tag, &[&inner]));
    }
    Ok(after)
}
