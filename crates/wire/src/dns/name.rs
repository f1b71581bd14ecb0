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
/// Capacity of [`NameBuf`]: the longest rendering is a 255-byte name of four labels whose
/// 250 bytes all need a four-byte `\DDD` escape, 1003 bytes, plus the leading dot the
/// renderer writes before skipping it.
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
        if self.write_lower_plain(out) {
            return Ok(());
        }
        self.write_lower_general(out)
    }

    /// [`Self::write_lower`] for any name: renders whole runs, with escapes.
    fn write_lower_general(&self, out: &mut NameBuf) -> Result<(), DnsError> {
        out.clear();
        match self.walk(|run| out.push_run(run)) {
            Ok(_) => {
                out.finish();
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }

    /// Fast path of [`Self::write_lower`] for the usual name: one run of labels (no
    /// compression pointer) with no byte that needs an escape. Copies the run in words,
    /// turns its length bytes into dots, then lower-cases and checks it eight bytes at a
    /// time. Returns false when the name needs anything else (the general path then
    /// renders it or reports the error; `out` is left for that path to clear).
    #[inline]
    fn write_lower_plain(&self, out: &mut NameBuf) -> bool {
        const L: u64 = 0x0101_0101_0101_0101;
        const H: u64 = 0x8080_8080_8080_8080;
        let msg = self.msg;
        let start = self.offset;
        // Pass 1: the labels up to the root label. Each step advances at least two bytes
        // through the message, so the loop is bounded by the message length; the wire
        // length is checked once after it (a longer name only costs its own walk).
        let mut pos = start;
        let mut labels = 0u32;
        loop {
            let Some(&len) = msg.get(pos) else {
                return false;
            };
            // 1..=0x3F is an ordinary label: one comparison on the common path.
            if len.wrapping_sub(1) < 0x3F {
                pos += 1 + usize::from(len);
                labels += 1;
                continue;
            }
            if len != 0 {
                return false;
            }
            break;
        }
        // The wire length (this run plus the root label) must stay within 255 bytes.
        if pos - start >= MAX_NAME_WIRE_LEN {
            return false;
        }
        // The rendered text is the run itself with its length bytes as dots.
        let n = pos - start;
        let Some(run) = msg.get(start..pos) else {
            return false;
        };
        let Some(text) = out.buf.get_mut(..n) else {
            return false;
        };
        text.copy_from_slice(run);
        let mut p = 0;
        while let Some(d) = text.get_mut(p) {
            p += 1 + usize::from(*d);
            *d = b'.';
        }
        // Lower-case in words; the last word reaches into the buffer's slack, which is
        // filled with a byte that renders as itself first, so no word needs masking. Every
        // byte must render as itself, and the only dots must be the ones written above (a dot
        // inside a label needs an escape).
        let Some(pad) = out.buf.get_mut(n..).and_then(|r| r.first_chunk_mut::<8>()) else {
            return false;
        };
        *pad = [b'a'; 8];
        let mut bad = 0u64;
        // Dots per byte lane (one 0x80 per dot moved to the lane's low bit). A name has at
        // most 254 text bytes, so the lanes and their running sums stay below 256 and one
        // multiply at the end sums them into the top byte without a carry out of it.
        let mut dot_lanes = 0u64;
        let mut i = 0;
        while i < n {
            let Some(word) = out.buf.get_mut(i..).and_then(|r| r.first_chunk_mut::<8>()) else {
                return false;
            };
            let x = u64::from_le_bytes(*word);
            let x7 = x & !H;
            let ge = |c: u64| (x7 + (0x80 - c) * L) & H;
            let is = |c: u64| !((x7 ^ (c * L)) + 0x7F * L) & H;
            let upper = ge(0x41) & !ge(0x5B);
            *word = (x | (upper >> 2)).to_le_bytes();
            bad |= (x & H) | (!ge(0x21) & H) | ge(0x7F) | is(0x5C);
            dot_lanes += is(0x2E) >> 7;
            i += 8;
        }
        let dots = (dot_lanes.wrapping_mul(L) >> 56) as u32;
        if bad != 0 || dots != labels {
            return false;
        }
        out.start = usize::from(n > 0);
        out.len = n;
        true
    }

    /// Validates the name and calls `on_run(run)` for each contiguous run of labels (a run
    /// ends at the root label or at a compression pointer; `run` holds the labels with their
    /// length bytes), so the renderer can work on whole runs. Returns the uncompressed wire
    /// length.
    ///
    /// Pointers must point strictly before the start of the run that led to them, so offsets
    /// decrease at every jump and no loop is possible; jumps are also capped at
    /// [`MAX_POINTER_JUMPS`] and the uncompressed length at [`MAX_NAME_WIRE_LEN`].
    fn walk(&self, mut on_run: impl FnMut(&'a [u8])) -> Result<usize, DnsError> {
        let msg = self.msg;
        let mut pos = self.offset;
        let mut run_start = pos;
        let mut wire = 1usize; // the root label
        let mut jumps = 0usize;
        // Every iteration reads a label (at most MAX_LABELS) or follows a pointer (at most
        // MAX_POINTER_JUMPS), so this bound is never the reason to stop.
        for _ in 0..(MAX_LABELS + MAX_POINTER_JUMPS + 1) {
            let len = *msg.get(pos).ok_or(DnsError::NameTruncated)?;
            if len != 0 && len < 0x40 {
                let l = usize::from(len);
                wire += 1 + l;
                if wire > MAX_NAME_WIRE_LEN {
                    return Err(DnsError::NameTooLong);
                }
                pos += 1 + l;
                continue;
            }
            // End of a run: its label bytes all precede `pos`, which was readable.
            if pos > run_start {
                on_run(msg.get(run_start..pos).unwrap_or_default());
            }
            match len & 0xC0 {
                0x00 => return Ok(wire),
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

/// Lower-cases eight bytes at once (SWAR) and reports whether any of them needs an escape.
///
/// Returns the lower-cased word and a value that is non-zero when some byte is outside
/// `!`..=`~` or is `.` or `\\`; the word is only meaningful when that value is zero.
#[inline]
fn lower_plain8(x: u64) -> (u64, u64) {
    const L: u64 = 0x0101_0101_0101_0101;
    const H: u64 = 0x8080_8080_8080_8080;
    // With every byte below 0x80, `x + (0x80 - n) * L` sets a byte's high bit exactly when
    // that byte is >= n, and no carry crosses into the next byte.
    let high = x & H;
    let x7 = x & !H;
    let ge = |n: u64| (x7 + (0x80 - n) * L) & H;
    let eq = |c: u64| {
        let t = x7 ^ (c * L);
        !(t + 0x7F * L) & H
    };
    let upper = ge(0x41) & !ge(0x5B);
    let odd = high | !ge(0x21) & H | ge(0x7F) | eq(0x2E) | eq(0x5C);
    (x | (upper >> 2), odd)
}

/// Fixed-size stack buffer holding a rendered name (see the module doc for the text form).
#[derive(Clone)]
pub struct NameBuf {
    /// Rendered text lives in `buf[start..len]`; `start` becomes 1 to skip the leading dot
    /// every run-rendered name begins with. The slack past [`NAME_TEXT_MAX`] lets the
    /// eight-byte loop run over the end of the text.
    buf: [u8; NAME_TEXT_MAX + SLACK],
    start: usize,
    len: usize,
}

/// Room after the text for whole eight-byte words.
const SLACK: usize = 16;

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
            buf: [0; NAME_TEXT_MAX + SLACK],
            start: 0,
            len: 0,
        }
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.start = 0;
        self.len = 0;
    }

    /// The text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..self.len).unwrap_or_default()
    }

    /// The text (always ASCII).
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed, so the conversion cannot fail.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// Length of the text in bytes.
    pub fn len(&self) -> usize {
        self.len.saturating_sub(self.start)
    }

    /// True for the root name (or before anything was written).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the leading dot of a non-root name (runs are rendered as `.label.label`).
    fn finish(&mut self) {
        self.start = usize::from(self.len > 0);
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

    /// Appends a run of labels (length bytes included) as `.label.label…`.
    ///
    /// Fast path: copy the run, mask its length bytes with a plain letter, lower-case it
    /// eight bytes at a time in place while collecting the bytes that would need an escape,
    /// then turn the length bytes into dots. Runs with escape-worthy bytes are rendered again
    /// byte by byte.
    #[inline]
    fn push_run(&mut self, run: &[u8]) {
        let base = self.len;
        let end = base + run.len();
        if let Some(dst) = self.buf.get_mut(base..end) {
            dst.copy_from_slice(run);
            self.mark_lengths(run, base, b'a');
            let mut odd = 0u64;
            let mut i = base;
            // Whole words, the last one reaching into the slack (its extra bytes are ignored).
            while i < end {
                let Some(word) = self.buf.get_mut(i..).and_then(|r| r.first_chunk_mut::<8>())
                else {
                    odd = 1;
                    break;
                };
                let (lower, bad) = lower_plain8(u64::from_le_bytes(*word));
                *word = lower.to_le_bytes();
                let valid = end - i;
                odd |= if valid >= 8 {
                    bad
                } else {
                    bad & ((1u64 << (valid * 8)) - 1)
                };
                i += 8;
            }
            if odd == 0 {
                self.mark_lengths(run, base, b'.');
                self.len = end;
                return;
            }
        }
        self.len = base;
        let mut p = 0;
        while let Some(&l) = run.get(p) {
            self.push(b'.');
            let l = usize::from(l);
            for &b in run.get(p + 1..p + 1 + l).unwrap_or_default() {
                self.push_escaped(b);
            }
            p += 1 + l;
        }
    }

    /// Overwrites the positions of the run's length bytes (copied at `base`) with `with`.
    #[inline]
    fn mark_lengths(&mut self, run: &[u8], base: usize, with: u8) {
        // Each iteration moves past one label, so this is bounded by the run length.
        let mut p = 0;
        while let Some(&l) = run.get(p) {
            if let Some(d) = self.buf.get_mut(base + p) {
                *d = with;
            }
            p += 1 + usize::from(l);
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

#[cfg(test)]
mod tests {
    use super::{Name, NameBuf, lower_plain8};
    use proptest::prelude::*;

    /// Both renderers on the same name: same result, same text.
    fn same_rendering(msg: &[u8], offset: usize) {
        let name = Name::from_message(msg, offset);
        let (mut fast, mut general) = (NameBuf::new(), NameBuf::new());
        let a = name.write_lower(&mut fast);
        let b = name.write_lower_general(&mut general);
        assert_eq!(a, b, "{msg:02x?} at {offset}");
        assert_eq!(
            fast.as_bytes(),
            general.as_bytes(),
            "{msg:02x?} at {offset}"
        );
    }

    #[test]
    fn fast_path_renders_plain_and_compressed_names() {
        let msg = b"\x07Example\x03COM\x00\x03www\xc0\x00\x01\xff\x00\x02a.\x00";
        let name = Name::from_message(msg, 0);
        let mut buf = NameBuf::new();
        name.write_lower(&mut buf).unwrap();
        assert_eq!(buf.as_str(), "example.com");
        Name::from_message(msg, 13).write_lower(&mut buf).unwrap();
        assert_eq!(buf.as_str(), "www.example.com");
        Name::from_message(msg, 19).write_lower(&mut buf).unwrap();
        assert_eq!(buf.as_str(), "\\255");
        Name::from_message(msg, 22).write_lower(&mut buf).unwrap();
        assert_eq!(buf.as_str(), "a\\.");
        Name::from_message(msg, 12).write_lower(&mut buf).unwrap();
        assert_eq!(buf.as_str(), "");
        for off in 0..msg.len() + 2 {
            same_rendering(msg, off);
        }
    }

    /// Byte-wise reference: lower-case form of bytes needing no escape, 0 for the others.
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

    /// Byte-wise reference for `lower_plain8`.
    fn reference(bytes: [u8; 8]) -> ([u8; 8], bool) {
        let mut out = [0u8; 8];
        let mut odd = false;
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = LOWER_PLAIN[usize::from(b)];
            odd |= *o == 0;
        }
        (out, odd)
    }

    fn check(bytes: [u8; 8]) {
        let (lower, odd) = lower_plain8(u64::from_le_bytes(bytes));
        let (want, want_odd) = reference(bytes);
        assert_eq!(odd != 0, want_odd, "{bytes:02x?}");
        if !want_odd {
            assert_eq!(lower.to_le_bytes(), want, "{bytes:02x?}");
        }
    }

    #[test]
    fn swar_matches_table_on_every_single_byte() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = *b"abcdefgh";
                bytes[pos] = b;
                check(bytes);
            }
        }
        let (lower, odd) = lower_plain8(u64::from_le_bytes(*b"WwW-Z_@["));
        assert_eq!(odd, 0);
        assert_eq!(&lower.to_le_bytes(), b"www-z_@[");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn fast_path_matches_general(
            msg in proptest::collection::vec(
                prop_oneof![0u8..8, Just(0xc0u8), any::<u8>(), Just(b'A'), Just(b'z')],
                0..48,
            ),
            offset in 0usize..50,
        ) {
            same_rendering(&msg, offset);
        }

        /// Well-formed runs of labels at any offset, with few or no bytes after the root
        /// label: the fast path renders every name with no byte that needs an escape (the
        /// random messages above rarely hold one longer than a word), and agrees with the
        /// general path on all of them.
        #[test]
        fn fast_path_renders_label_runs(
            prefix in proptest::collection::vec(any::<u8>(), 0..20),
            labels in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        60 => prop_oneof![b'a'..=b'z', b'A'..=b'Z', b'0'..=b'9', Just(b'-')],
                        1 => prop_oneof![Just(b'.'), Just(b'\\'), Just(b' '), Just(0xffu8), Just(0u8)],
                    ],
                    1..24,
                ),
                0..12,
            ),
            tail in proptest::collection::vec(any::<u8>(), 0..6),
        ) {
            let mut msg = prefix.clone();
            for l in &labels {
                msg.push(l.len() as u8);
                msg.extend_from_slice(l);
            }
            msg.push(0);
            msg.extend_from_slice(&tail);
            same_rendering(&msg, prefix.len());
            let plain = labels.iter().flatten().all(|&b| (b'!'..=b'~').contains(&b) && b != b'.' && b != b'\\');
            let wire: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
            let mut buf = NameBuf::new();
            let fast = Name::from_message(&msg, prefix.len()).write_lower_plain(&mut buf);
            prop_assert_eq!(fast, plain && wire <= 255);
            if fast {
                let want: Vec<String> = labels.iter().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect();
                let want = want.join(".");
                prop_assert_eq!(buf.as_bytes(), want.as_bytes());
            }
        }

        #[test]
        fn swar_matches_table(bytes in any::<[u8; 8]>()) {
            check(bytes);
        }

        #[test]
        fn swar_matches_table_on_printable(bytes in any::<[u8; 8]>().prop_map(|b| b.map(|x| 0x20 + x % 0x60))) {
            check(bytes);
        }
    }
}
