//! TLS client fingerprints: JA3 (Salesforce: MD5 of the decimal ClientHello field lists) and
//! JA4 (FoxIO: `t13d1516h2_8daaf6152771_e5627efa2ab1`, truncated SHA-256 of the sorted cipher
//! and extension lists). GREASE values are ignored in both, as the specifications say.
//!
//! Both are computed without allocating: the hash input is streamed into the hasher, and JA4's
//! sorted lists live in fixed arrays on the stack (a hello with more than [`MAX_LIST`] ciphers
//! or extensions, which no real client sends, is fingerprinted on its first [`MAX_LIST`]).

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::{ClientHello, EXT_ALPN, EXT_SERVER_NAME, is_grease};

/// Most cipher suites or extensions JA4 sorts.
pub const MAX_LIST: usize = 512;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A JA3 fingerprint: 32 lower-case hex digits of the MD5 of the JA3 string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ja3(pub [u8; 32]);

impl Ja3 {
    /// The fingerprint as text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl core::fmt::Debug for Ja3 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JA4 fingerprint (36 ASCII characters).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ja4(pub [u8; 36]);

impl Ja4 {
    /// The fingerprint as text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl core::fmt::Debug for Ja4 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes `v` in decimal.
fn decimal(v: u16, out: &mut dyn FnMut(&[u8])) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    out(buf.get(i..).unwrap_or_default());
}

/// Writes a `-`-joined decimal list.
fn dash_list(values: impl Iterator<Item = u16>, out: &mut dyn FnMut(&[u8])) {
    let mut first = true;
    for v in values {
        if !first {
            out(b"-");
        }
        first = false;
        decimal(v, out);
    }
}

/// Writes the JA3 string of a ClientHello (`771,4865-4866,0-23,29-23,0`) piece by piece:
/// version, ciphers, extension types, supported groups, EC point formats, GREASE removed.
pub fn ja3_string(ch: &ClientHello<'_>, out: &mut dyn FnMut(&[u8])) {
    decimal(ch.version, out);
    out(b",");
    dash_list(ch.ciphers().filter(|c| !is_grease(*c)), out);
    out(b",");
    dash_list(
        ch.extensions()
            .map(|e| e.ext_type)
            .filter(|t| !is_grease(*t)),
        out,
    );
    out(b",");
    dash_list(ch.supported_groups().filter(|g| !is_grease(*g)), out);
    out(b",");
    dash_list(ch.ec_point_formats().iter().map(|&p| u16::from(p)), out);
}

/// The JA3 fingerprint of a ClientHello.
pub fn ja3(ch: &ClientHello<'_>) -> Ja3 {
    let mut h = Md5::new();
    ja3_string(ch, &mut |b| h.update(b));
    let digest = h.finalize();
    let mut out = [0u8; 32];
    for (i, byte) in digest.iter().enumerate() {
        if let Some(pair) = out.get_mut(2 * i..2 * i + 2) {
            pair.copy_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
        }
    }
    Ja3(out)
}

/// JA4's two-character version code.
fn version_code(v: u16) -> [u8; 2] {
    match v {
        0x0304 => *b"13",
        0x0303 => *b"12",
        0x0302 => *b"11",
        0x0301 => *b"10",
        0x0300 => *b"s3",
        0x0002 => *b"s2",
        0xfeff => *b"d1",
        0xfefd => *b"d2",
        0xfefc => *b"d3",
        _ => *b"00",
    }
}

/// A two-digit count, capped at 99.
fn count2(n: usize) -> [u8; 2] {
    let n = n.min(99) as u8;
    [b'0' + n / 10, b'0' + n % 10]
}

/// JA4's ALPN characters: first and last of the first protocol name, or of its hex form when
/// either end is not ASCII alphanumeric; `00` without one.
fn alpn_chars(first: Option<&[u8]>) -> [u8; 2] {
    let Some(p) = first else { return *b"00" };
    let (Some(&a), Some(&z)) = (p.first(), p.last()) else {
        return *b"00";
    };
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        [a, z]
    } else {
        [HEX[usize::from(a >> 4)], HEX[usize::from(z & 0xf)]]
    }
}

/// Four lower-case hex digits of `v`.
fn hex4(v: u16) -> [u8; 4] {
    [
        HEX[usize::from(v >> 12)],
        HEX[usize::from((v >> 8) & 0xf)],
        HEX[usize::from((v >> 4) & 0xf)],
        HEX[usize::from(v & 0xf)],
    ]
}

/// Feeds a comma-joined hex list to `h`.
fn hash_hex_list(h: &mut Sha256, values: &[u16]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            h.update(b",");
        }
        h.update(hex4(*v));
    }
}

/// Writes the first 12 hex digits of a SHA-256 digest.
fn hash12(h: Sha256, out: &mut [u8]) {
    let d = h.finalize();
    for (i, byte) in d.iter().take(6).enumerate() {
        if let Some(pair) = out.get_mut(2 * i..2 * i + 2) {
            pair.copy_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
        }
    }
}

/// Copies the non-GREASE values of `it` into `buf` (at most its length); returns how many
/// values there were in all and how many were kept.
fn collect(it: impl Iterator<Item = u16>, buf: &mut [u16; MAX_LIST]) -> (usize, usize) {
    let mut total = 0usize;
    let mut kept = 0usize;
    for v in it.filter(|v| !is_grease(*v)) {
        if let Some(slot) = buf.get_mut(kept) {
            *slot = v;
            kept += 1;
        }
        total += 1;
    }
    (total, kept)
}

/// The JA4 fingerprint of a ClientHello carried over TCP (`t`).
pub fn ja4(ch: &ClientHello<'_>) -> Ja4 {
    let mut out = [b'0'; 36];
    let mut ciphers = [0u16; MAX_LIST];
    let mut exts = [0u16; MAX_LIST];
    let (n_ciphers, kept_ciphers) = collect(ch.ciphers(), &mut ciphers);
    let (n_exts, kept_exts) = collect(ch.extensions().map(|e| e.ext_type), &mut exts);
    let mut a = [0u8; 10];
    a[0] = b't';
    a[1..3].copy_from_slice(&version_code(ch.highest_version()));
    a[3] = if ch.has_extension(EXT_SERVER_NAME) {
        b'd'
    } else {
        b'i'
    };
    a[4..6].copy_from_slice(&count2(n_ciphers));
    a[6..8].copy_from_slice(&count2(n_exts));
    a[8..10].copy_from_slice(&alpn_chars(ch.alpn().next()));
    out[..10].copy_from_slice(&a);
    out[10] = b'_';
    out[23] = b'_';

    let ciphers = ciphers.get_mut(..kept_ciphers).unwrap_or_default();
    ciphers.sort_unstable();
    if !ciphers.is_empty() {
        let mut h = Sha256::new();
        hash_hex_list(&mut h, ciphers);
        hash12(h, &mut out[11..23]);
    }

    let exts = exts.get_mut(..kept_exts).unwrap_or_default();
    exts.sort_unstable();
    let mut n = 0usize;
    for i in 0..exts.len() {
        let v = exts.get(i).copied().unwrap_or(0);
        if v != EXT_SERVER_NAME && v != EXT_ALPN {
            if let Some(slot) = exts.get_mut(n) {
                *slot = v;
            }
            n += 1;
        }
    }
    let exts = exts.get(..n).unwrap_or_default();
    if !exts.is_empty() {
        let mut h = Sha256::new();
        hash_hex_list(&mut h, exts);
        let mut first = true;
        // Signature algorithms keep their order and GREASE stays out.
        for s in ch.signature_algorithms().filter(|s| !is_grease(*s)) {
            h.update(if first { b"_" } else { b"," });
            first = false;
            h.update(hex4(s));
        }
        hash12(h, &mut out[24..36]);
    }
    Ja4(out)
}
