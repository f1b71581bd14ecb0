//! DNS names inside a message: bounded decompression and rendering to lower-case text in a
//! stack buffer. It does not intern, allocate or compare names.
//!
//! Text form (PcapPlusPlus/pktvisor style): labels joined with `.`, ASCII lower-cased, no
//! trailing dot, the root name is the empty string. Bytes that would make the text ambiguous
//! or unprintable use zone-file escapes (RFC 1035 §5.1, as `dig` prints them): `\.` for a dot
//! inside a label, `\\` for a backslash, and `\DDD` (three decimal digits) for every byte
//! outside `!`..=`~` (so a space is `\032` and 0xFF is `\255`). The text is therefore always
//! ASCII and valid UTF-8.

use super::DnsError;

/// Longest uncompressed name on the wire (RFC 1035 §2.3.4).
pub const MAX_NAME_WIRE_LEN: usize = 255;
/// Most compression pointers followed while reading one name.
pub const MAX_POINTER_JUMPS: usize = 128;
/// Most labels (including the root label) a legal name can have.
pub(super) const MAX_LABELS: usize = 128;
/// Capacity of [`NameBuf`]: a 255-byte name whose 253 label bytes all need a four-byte
/// `\DDD` escape renders to 1012 bytes.
pub const NAME_TEXT_MAX: usize = 1024;

/// A name at some offset of a message (the message is kept to follow compression pointers).
#[derive(Debug, Clone, Copy)]
pub struct Name<'a> {
    msg: &'a [u8],
    offset: usize,
}

impl<'a> Name<'a> {
    /// The name starting at `offset` of `msg`. Nothing is checked until it is read.
    pub fn from_message(msg: &'a [u8], offset: usize) -> Self {
        Name { msg, offset }
    }

    /// Offset of the name's first byte in the message.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Uncompressed wire length (including the root label), validating the name.
    pub fn wire_len(&self) -> Result<usize, DnsError> {
        self.walk(|_| {})
    }

    /// Renders the name as lower-case text into `out` (cleared first; left empty on error).
    pub fn write_lower(&self, out: &mut NameBuf) -> Result<(), DnsError> {
        out.clear();
        let res = self.walk(|label| out.push_label(label));
        if res.is_err() {
            out.clear();
        }
        res.map(|_| ())
    }

    /// Calls `on_label` for each label in order; returns the uncompressed wire length.
    ///
    /// Pointers must point strictly before the start of the run of labels that led to them,
    /// so offsets decrease at every jump and no loop is possible; jumps are also capped at
    /// [`MAX_POINTER_JUMPS`] and the uncompressed length at [`MAX_NAME_WIRE_LEN`].
    fn walk(&self, mut on_label: impl FnMut(&'a [u8])) -> Result<usize, DnsError> {
        let msg = self.msg;
        let mut pos = self.offset;
        let mut run_start = pos;
        let mut wire = 1usize; // the root label
        let mut jumps = 0usize;
        // Every iteration reads a label (at most MAX_LABELS) or follows a pointer (at most
        // MAX_POINTER_JUMPS), so this bound is never the reason to stop.
        for _ in 0..=(MAX_LABELS + MAX_POINTER_JUMPS) {
            let len = *msg.get(pos).ok_or(DnsError::NameTruncated)?;
            match len & 0xC0 {
                0x00 if len == 0 => return Ok(wire),
                0x00 => {
                    let l = usize::from(len);
                    let label = msg
                        .get(pos + 1..pos + 1 + l)
                        .ok_or(DnsError::NameTruncated)?;
                    wire += 1 + l;
                    if wire > MAX_NAME_WIRE_LEN {
                        return Err(DnsError::NameTooLong);
                    }
                    on_label(label);
                    pos += 1 + l;
                }
                0xC0 => {
                    let lo = *msg.get(pos + 1).ok_or(DnsError::NameTruncated)?;
                    let target = usize::from(len & 0x3F) << 8 | usize::from(lo);
                    if target >= run_start {
                        return Err(DnsError::BadPointer);
                    }
                    jumps += 1;
                    if jumps > MAX_POINTER_JUMPS {
                        return Err(DnsError::TooManyPointers);
                    }
                    pos = target;
                    run_start = target;
                }
                other => return Err(DnsError::BadLabelType(other)),
            }
        }
        Err(DnsError::NameTooLong)
    }
}

/// Lower-case form of every byte that needs no escape, 0 for those that do.
const LOWER_PLAIN: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = b'!';
    while b <= b'~' {
        if b != b'.' && b != b'\\' {
            t[b as usize] = b.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Fixed-size stack buffer holding a rendered name (see the module doc for the text form).
#[derive(Clone)]
pub struct NameBuf {
    buf: [u8; NAME_TEXT_MAX],
    len: usize,
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NameBuf").field(&self.as_str()).finish()
    }
}

impl NameBuf {
    /// An empty buffer.
    pub const fn new() -> Self {
        NameBuf {
            buf: [0; NAME_TEXT_MAX],
            len: 0,
        }
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// The text (always ASCII).
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed, so the conversion cannot fail.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// Length of the text in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for the root name (or before anything was written).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one byte; the capacity covers the longest legal name, so nothing is dropped
    /// for names that passed validation.
    #[inline]
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// Appends a label (preceded by a dot unless it is the first one; labels are never empty).
    #[inline]
    fn push_label(&mut self, label: &[u8]) {
        if self.len > 0 {
            self.push(b'.');
        }
        let start = self.len;
        // Fast path: copy and lower-case the whole label in one pass, then check it needed no
        // escape; only labels with odd bytes are redone byte by byte.
        if let Some(dst) = self.buf.get_mut(start..start + label.len()) {
            let mut odd = 0u8;
            for (d, &s) in dst.iter_mut().zip(label) {
                let m = LOWER_PLAIN[usize::from(s)];
                odd |= u8::from(m == 0);
                *d = m;
            }
            if odd == 0 {
                self.len = start + label.len();
                return;
            }
        }
        for &b in label {
            self.push_escaped(b);
        }
    }

    #[inline]
    fn push_escaped(&mut self, b: u8) {
        match b {
            b'.' | b'\\' => {
                self.push(b'\\');
                self.push(b);
            }
            b'!'..=b'~' => self.push(b.to_ascii_lowercase()),
            _ => {
                self.push(b'\\');
                self.push(b'0' + b / 100);
                self.push(b'0' + (b / 10) % 10);
                self.push(b'0' + b % 10);
            }
        }
    }
}

impl AsRef<[u8]> for NameBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for NameBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for NameBuf {}
