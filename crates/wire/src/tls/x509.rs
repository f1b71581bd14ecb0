//! The few fields of an X.509 certificate wirelens reports: the subject and issuer common
//! names and the subject alternative DNS names. A minimal DER walker, not a certificate
//! parser: nothing is validated beyond the structure it walks, and every length is checked
//! against the bytes it claims.

use super::TlsError;

/// DER tag of SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// DER tag of SET.
const SET: u8 = 0x31;
/// DER tag of OBJECT IDENTIFIER.
const OID: u8 = 0x06;
/// `id-at-commonName` (2.5.4.3), encoded.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// `id-ce-subjectAltName` (2.5.29.17), encoded.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// Most nested elements a walk looks at, so hostile input bounds the work.
const MAX_ELEMENTS: usize = 256;

/// One DER element.
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
}

/// Reads one DER element from the front of `b`; returns it and the rest.
fn tlv(b: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlsError> {
    let (&tag, rest) = b.split_first().ok_or(TlsError::Truncated("der"))?;
    if tag & 0x1f == 0x1f {
        // High tag numbers never occur in the fields walked here.
        return Err(TlsError::Malformed("der tag"));
    }
    let (&l0, rest) = rest.split_first().ok_or(TlsError::Truncated("der"))?;
    let (len, rest) = if l0 < 0x80 {
        (usize::from(l0), rest)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 {
            return Err(TlsError::Malformed("der length"));
        }
        let (lb, rest) = rest.split_at_checked(n).ok_or(TlsError::Truncated("der"))?;
        (
            lb.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x)),
            rest,
        )
    };
    let (value, rest) = rest
        .split_at_checked(len)
        .ok_or(TlsError::Truncated("der"))?;
    Ok((Tlv { tag, value }, rest))
}

/// Reads an element that must have tag `tag`.
fn expect(b: &[u8], tag: u8) -> Result<(Tlv<'_>, &[u8]), TlsError> {
    let (t, rest) = tlv(b)?;
    if t.tag != tag {
        return Err(TlsError::Malformed("der structure"));
    }
    Ok((t, rest))
}

/// The fields of a certificate wirelens reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertFields<'a> {
    /// The subject's DER `Name`.
    pub subject: &'a [u8],
    /// The issuer's DER `Name`.
    pub issuer: &'a [u8],
    /// The `subjectAltName` extension's `GeneralNames`, if present.
    pub san: Option<&'a [u8]>,
}

impl<'a> CertFields<'a> {
    /// Walks a DER certificate to its subject, issuer and subjectAltName.
    pub fn parse(der: &'a [u8]) -> Result<Self, TlsError> {
        let (cert, _) = expect(der, SEQUENCE)?;
        let (tbs, _) = expect(cert.value, SEQUENCE)?;
        let mut r = tbs.value;
        let (first, rest) = tlv(r)?;
        // [0] EXPLICIT version is optional (absent means v1).
        r = if first.tag == 0xa0 { rest } else { r };
        let (_serial, rest) = tlv(r)?;
        let (_sig_alg, rest) = expect(rest, SEQUENCE)?;
        let (issuer, rest) = expect(rest, SEQUENCE)?;
        let (_validity, rest) = expect(rest, SEQUENCE)?;
        let (subject, rest) = expect(rest, SEQUENCE)?;
        let (_spki, mut rest) = expect(rest, SEQUENCE)?;
        let mut san = None;
        // Optional issuerUniqueID [1], subjectUniqueID [2], extensions [3].
        for _ in 0..3 {
            if rest.is_empty() {
                break;
            }
            let (t, next) = tlv(rest)?;
            rest = next;
            if t.tag == 0xa3 {
                san = find_san(t.value)?;
            }
        }
        Ok(Self {
            subject: subject.value,
            issuer: issuer.value,
            san,
        })
    }

    /// The subject's common name (the last CN attribute, as most tools show it).
    pub fn subject_cn(&self) -> Option<&'a [u8]> {
        common_name(self.subject)
    }

    /// The issuer's common name.
    pub fn issuer_cn(&self) -> Option<&'a [u8]> {
        common_name(self.issuer)
    }

    /// The DNS names of the subjectAltName extension.
    pub fn dns_names(&self) -> DnsNames<'a> {
        DnsNames {
            rest: self.san.unwrap_or_default(),
            left: MAX_ELEMENTS,
        }
    }
}

/// Finds the subjectAltName value inside `[3] { SEQUENCE OF Extension }`.
fn find_san(explicit: &[u8]) -> Result<Option<&[u8]>, TlsError> {
    let (exts, _) = expect(explicit, SEQUENCE)?;
    let mut rest = exts.value;
    for _ in 0..MAX_ELEMENTS {
        if rest.is_empty() {
            break;
        }
        let (ext, next) = expect(rest, SEQUENCE)?;
        rest = next;
        let (oid, mut body) = expect(ext.value, OID)?;
        if oid.value != OID_SAN {
            continue;
        }
        let (mut t, mut after) = tlv(body)?;
        if t.tag == 0x01 {
            // critical BOOLEAN
            body = after;
            (t, after) = tlv(body)?;
        }
        let _ = after;
        if t.tag != 0x04 {
            return Err(TlsError::Malformed("der structure"));
        }
        let (names, _) = expect(t.value, SEQUENCE)?;
        return Ok(Some(names.value));
    }
    Ok(None)
}

/// The value of the last commonName attribute of a DER `Name` (a SEQUENCE of SETs of
/// AttributeTypeAndValue).
fn common_name(name: &[u8]) -> Option<&[u8]> {
    let mut found = None;
    let mut rest = name;
    for _ in 0..MAX_ELEMENTS {
        if rest.is_empty() {
            break;
        }
        let (set, next) = expect(rest, SET).ok()?;
        rest = next;
        let mut inner = set.value;
        for _ in 0..MAX_ELEMENTS {
            if inner.is_empty() {
                break;
            }
            let (atv, next) = expect(inner, SEQUENCE).ok()?;
            inner = next;
            let (oid, value) = expect(atv.value, OID).ok()?;
            if oid.value == OID_CN {
                let (v, _) = tlv(value).ok()?;
                found = Some(v.value);
            }
        }
    }
    found
}

/// Iterates the `dNSName` entries of a `GeneralNames` value.
#[derive(Clone, Copy)]
pub struct DnsNames<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for DnsNames<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        while self.left > 0 && !self.rest.is_empty() {
            self.left -= 1;
            let (t, next) = tlv(self.rest).ok()?;
            self.rest = next;
            // [2] IMPLICIT IA5String
            if t.tag == 0x82 {
                return Some(t.value);
            }
        }
        None
    }
}
