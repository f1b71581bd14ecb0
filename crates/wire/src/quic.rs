//! QUIC long-header packets up to the client's ClientHello: header parsing (RFC 9000 §17.2,
//! versions 1 and 2, and drafts 29 to 32 of 1), Initial packet protection removal with keys every observer can derive
//! from the Destination Connection ID (`initial`: RFC 9001 §5, RFC 9369), the frames an
//! Initial may carry, and CRYPTO stream reassembly across coalesced packets and several
//! Initials ([`CryptoBuf`]), whose first message is handed to [`crate::tls::ClientHello`].
//!
//! It is not a QUIC implementation: short-header (1-RTT) packets, Handshake and 0-RTT payloads
//! are opaque by design (their keys are secret), and packet numbers are used as sent (Initial
//! packet numbers start at 0, so the truncated form is the full one for the first flights).
//! Decryption writes into a caller-provided buffer; nothing allocates per packet.

pub mod initial;

use thiserror::Error;

pub use initial::{InitialKeys, decrypt_initial, has_initial_keys, initial_keys, seal_initial};

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// Longest connection ID in versions 1 and 2.
pub const MAX_CID_LEN: usize = 20;

/// Why a datagram could not be read as QUIC, or an Initial not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum QuicError {
    /// The first byte is not a long header with the fixed bit.
    #[error("not a long header")]
    NotLongHeader,
    /// The packet ends before a field it announces.
    #[error("truncated")]
    Truncated,
    /// A connection ID is longer than the version allows.
    #[error("bad connection id length")]
    BadCid,
    /// No initial keys are known for the version.
    #[error("unsupported version {0:#010x}")]
    UnsupportedVersion(u32),
    /// The AEAD tag did not verify (not a client Initial, or not this connection's keys).
    #[error("decryption failed")]
    Decrypt,
    /// The output buffer is smaller than the packet.
    #[error("buffer too small")]
    BufferTooSmall,
    /// A frame that may not appear in an Initial packet, or a malformed frame.
    #[error("bad frame")]
    BadFrame,
    /// CRYPTO data beyond what is buffered, or too many holes.
    #[error("crypto stream overflow")]
    CryptoOverflow,
}

impl QuicError {
    /// Stable snake_case name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            QuicError::NotLongHeader => "not_long_header",
            QuicError::Truncated => "truncated",
            QuicError::BadCid => "bad_cid",
            QuicError::UnsupportedVersion(_) => "unsupported_version",
            QuicError::Decrypt => "decrypt",
            QuicError::BufferTooSmall => "buffer_too_small",
            QuicError::BadFrame => "bad_frame",
            QuicError::CryptoOverflow => "crypto_overflow",
        }
    }
}

/// A variable-length integer (RFC 9000 §16) at the start of `b`, and its length.
pub fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in bytes.get(1..).unwrap_or_default() {
        v = v << 8 | u64::from(x);
    }
    Some((v, len))
}

/// Long-header packet types, independent of their version-specific encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
    /// Version 0: a Version Negotiation packet.
    VersionNegotiation,
}

/// A long-header packet at the start of a datagram (RFC 9000 §17.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongHeader<'a> {
    /// First byte as sent (its low bits are header-protected).
    pub first: u8,
    pub version: u32,
    pub dcid: &'a [u8],
    pub scid: &'a [u8],
    pub ptype: PacketType,
    /// Initial packets' token (empty otherwise).
    pub token: &'a [u8],
    /// Offset of the (protected) packet number.
    pub pn_offset: usize,
    /// Bytes of this packet in the datagram; coalesced packets follow it.
    pub len: usize,
}

/// Whether `v` is a version this module reads: 1, 2, or a draft of 1 (`0xff0000xx`, whose
/// headers are the same; their Initials use other salts and are not opened).
pub fn is_known_version(v: u32) -> bool {
    v == VERSION_1 || v == VERSION_2 || v & 0xffff_ff00 == 0xff00_0000
}

fn packet_type(version: u32, first: u8) -> PacketType {
    let bits = (first >> 4) & 3;
    if version == 0 {
        return PacketType::VersionNegotiation;
    }
    // RFC 9369 §3.2 rotates the type codes.
    let bits = if version == VERSION_2 {
        (bits + 3) & 3
    } else {
        bits
    };
    match bits {
        0 => PacketType::Initial,
        1 => PacketType::ZeroRtt,
        2 => PacketType::Handshake,
        _ => PacketType::Retry,
    }
}

/// Parses the long header at the start of `b`.
pub fn long_header(b: &[u8]) -> Result<LongHeader<'_>, QuicError> {
    let first = *b.first().ok_or(QuicError::Truncated)?;
    if first & 0x80 == 0 {
        return Err(QuicError::NotLongHeader);
    }
    let v = b.get(1..5).ok_or(QuicError::Truncated)?;
    let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    if version != 0 && first & 0x40 == 0 {
        return Err(QuicError::NotLongHeader);
    }
    let dlen = usize::from(*b.get(5).ok_or(QuicError::Truncated)?);
    if dlen > MAX_CID_LEN && is_known_version(version) {
        return Err(QuicError::BadCid);
    }
    let dcid = b.get(6..6 + dlen).ok_or(QuicError::Truncated)?;
    let mut at = 6 + dlen;
    let slen = usize::from(*b.get(at).ok_or(QuicError::Truncated)?);
    if slen > MAX_CID_LEN && is_known_version(version) {
        return Err(QuicError::BadCid);
    }
    let scid = b.get(at + 1..at + 1 + slen).ok_or(QuicError::Truncated)?;
    at += 1 + slen;
    let ptype = packet_type(version, first);
    let mut token: &[u8] = &[];
    match ptype {
        PacketType::VersionNegotiation | PacketType::Retry => {
            return Ok(LongHeader {
                first,
                version,
                dcid,
                scid,
                ptype,
                token,
                pn_offset: at,
                len: b.len(),
            });
        }
        PacketType::Initial => {
            let (tlen, n) = varint(b.get(at..).unwrap_or_default()).ok_or(QuicError::Truncated)?;
            at += n;
            let tlen = usize::try_from(tlen).map_err(|_| QuicError::Truncated)?;
            token = b
                .get(at..at.saturating_add(tlen))
                .ok_or(QuicError::Truncated)?;
            at += tlen;
        }
        PacketType::ZeroRtt | PacketType::Handshake => {}
    }
    let (plen, n) = varint(b.get(at..).unwrap_or_default()).ok_or(QuicError::Truncated)?;
    at += n;
    let len = usize::try_from(plen)
        .ok()
        .and_then(|p| p.checked_add(at))
        .filter(|&l| l <= b.len())
        .ok_or(QuicError::Truncated)?;
    Ok(LongHeader {
        first,
        version,
        dcid,
        scid,
        ptype,
        token,
        pn_offset: at,
        len,
    })
}

/// A frame of an Initial packet's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A run of PADDING bytes.
    Padding,
    Ping,
    Ack,
    Crypto {
        offset: u64,
        data: &'a [u8],
    },
    ConnectionClose,
}

/// Iterates the frames of a decrypted Initial payload; stops at the first error.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    b: &'a [u8],
    failed: bool,
}

impl<'a> Frames<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            b: payload,
            failed: false,
        }
    }

    fn take_varint(&mut self) -> Option<u64> {
        let (v, n) = varint(self.b)?;
        self.b = self.b.get(n..)?;
        Some(v)
    }

    fn next_frame(&mut self) -> Option<Frame<'a>> {
        let t = self.take_varint()?;
        match t {
            0x00 => {
                let n = self.b.iter().position(|&x| x != 0).unwrap_or(self.b.len());
                self.b = self.b.get(n..)?;
                Some(Frame::Padding)
            }
            0x01 => Some(Frame::Ping),
            0x02 | 0x03 => {
                let _largest = self.take_varint()?;
                let _delay = self.take_varint()?;
                let ranges = self.take_varint()?;
                let _first = self.take_varint()?;
                // Each range is two varints of at least one byte: bounded by the payload.
                if ranges > self.b.len() as u64 {
                    return None;
                }
                for _ in 0..ranges {
                    self.take_varint()?;
                    self.take_varint()?;
                }
                if t == 0x03 {
                    for _ in 0..3 {
                        self.take_varint()?;
                    }
                }
                Some(Frame::Ack)
            }
            0x06 => {
                let offset = self.take_varint()?;
                let len = usize::try_from(self.take_varint()?).ok()?;
                let data = self.b.get(..len)?;
                self.b = self.b.get(len..)?;
                Some(Frame::Crypto { offset, data })
            }
            0x1c => {
                let _code = self.take_varint()?;
                let _frame = self.take_varint()?;
                let len = usize::try_from(self.take_varint()?).ok()?;
                self.b = self.b.get(len..)?;
                Some(Frame::ConnectionClose)
            }
            _ => None,
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, QuicError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.b.is_empty() {
            return None;
        }
        match self.next_frame() {
            Some(f) => Some(Ok(f)),
            None => {
                self.failed = true;
                Some(Err(QuicError::BadFrame))
            }
        }
    }
}

/// Most disjoint CRYPTO ranges held while waiting for a hole to fill.
///
/// Chrome scatters its ClientHello over many small CRYPTO frames in random order ("chaos
/// protection"); 16 holes cover what it sends and keep the buffer's bookkeeping fixed.
const MAX_RANGES: usize = 16;

/// The start of a CRYPTO stream, reassembled from frames in any order, with a fixed capacity
/// chosen at construction (the only allocation).
#[derive(Debug, Clone)]
pub struct CryptoBuf {
    data: Vec<u8>,
    /// Received `[start, end)` ranges, disjoint, unordered.
    ranges: [(u32, u32); MAX_RANGES],
    n: usize,
}

/// Where the first handshake message of a [`CryptoBuf`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello<'a> {
    /// Not all of it has arrived.
    Incomplete,
    /// The whole message: its type and body.
    Complete { msg_type: u8, body: &'a [u8] },
    /// Longer than the buffer.
    TooLong,
}

impl CryptoBuf {
    /// A buffer for the first `capacity` bytes of a CRYPTO stream.
    pub fn new(capacity: usize) -> Self {
        Self {
            data: vec![0; capacity.min(u32::MAX as usize)],
            ranges: [(0, 0); MAX_RANGES],
            n: 0,
        }
    }

    /// Forgets everything received.
    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Places CRYPTO data at `offset`; retransmitted and overlapping bytes are fine.
    pub fn add(&mut self, offset: u64, data: &[u8]) -> Result<(), QuicError> {
        if data.is_empty() {
            return Ok(());
        }
        let start = usize::try_from(offset).map_err(|_| QuicError::CryptoOverflow)?;
        let end = start
            .checked_add(data.len())
            .filter(|&e| e <= self.data.len())
            .ok_or(QuicError::CryptoOverflow)?;
        if let Some(dst) = self.data.get_mut(start..end) {
            dst.copy_from_slice(data);
        }
        let (mut s, mut e) = (start as u32, end as u32);
        let mut i = 0;
        // Each pass removes a range or advances: bounded by MAX_RANGES.
        while i < self.n {
            let (rs, re) = self.ranges.get(i).copied().unwrap_or((0, 0));
            if rs <= e && s <= re {
                s = s.min(rs);
                e = e.max(re);
                self.n -= 1;
                let last = self.ranges.get(self.n).copied().unwrap_or((0, 0));
                if let Some(r) = self.ranges.get_mut(i) {
                    *r = last;
                }
            } else {
                i += 1;
            }
        }
        let slot = self
            .ranges
            .get_mut(self.n)
            .ok_or(QuicError::CryptoOverflow)?;
        *slot = (s, e);
        self.n += 1;
        Ok(())
    }

    /// The bytes received in order from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        let end = self
            .ranges
            .iter()
            .take(self.n)
            .find(|r| r.0 == 0)
            .map_or(0, |r| r.1 as usize);
        self.data.get(..end).unwrap_or_default()
    }

    /// The first handshake message, when complete.
    pub fn first_message(&self) -> Hello<'_> {
        let c = self.contiguous();
        let Some(h) = c.get(..4) else {
            return Hello::Incomplete;
        };
        let len = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
        if len + 4 > self.data.len() {
            return Hello::TooLong;
        }
        match c.get(4..4 + len) {
            Some(body) => Hello::Complete {
                msg_type: h[0],
                body,
            },
            None => Hello::Incomplete,
        }
    }
}

/// What [`open_client_initials`] found in one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InitialsSeen {
    /// Initial packets (any version).
    pub initials: u32,
    /// Initials opened with the client keys of their Destination Connection ID.
    pub opened: u32,
    /// Initials of versions 1 or 2 that did not open with those keys (server Initials, or
    /// client Initials after the server chose a connection ID).
    pub not_opened: u32,
    /// Initials of other versions (drafts), not opened.
    pub unsupported: u32,
    /// Opened Initials whose frames were malformed or whose CRYPTO data did not fit.
    pub bad_payload: u32,
}

/// The long-header packets of a datagram, coalesced ones included (RFC 9000 §12.2): each
/// header with the packet's bytes. Stops at the first header that does not parse (a
/// short-header packet or garbage) and after a Retry or Version Negotiation packet, which
/// take the rest of the datagram.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
}

impl<'a> Packets<'a> {
    pub fn new(datagram: &'a [u8]) -> Self {
        Self { rest: datagram }
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = (LongHeader<'a>, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        // Every packet is at least a header long: the iteration is bounded by the datagram.
        let h = long_header(self.rest).ok()?;
        let packet = self.rest.get(..h.len).unwrap_or_default();
        self.rest = if matches!(h.ptype, PacketType::Retry | PacketType::VersionNegotiation) {
            &[]
        } else {
            self.rest.get(h.len..).unwrap_or_default()
        };
        Some((h, packet))
    }
}

/// Adds the CRYPTO frames of a decrypted Initial payload to `crypto`. Returns `false` when
/// the frames are malformed or CRYPTO data does not fit (what did fit is kept).
pub fn add_crypto_frames(payload: &[u8], crypto: &mut CryptoBuf) -> bool {
    let mut ok = true;
    for f in Frames::new(payload) {
        match f {
            Ok(Frame::Crypto { offset, data }) => ok &= crypto.add(offset, data).is_ok(),
            Ok(_) => {}
            Err(_) => ok = false,
        }
    }
    ok
}

/// Opens every client Initial of a datagram (coalesced packets included) with the keys of its
/// own Destination Connection ID and adds their CRYPTO frames to `crypto`. `scratch` receives
/// each decrypted packet (1500 bytes is enough for a usual datagram; a packet larger than it
/// is counted as not opened). `want(dcid)` is asked before decrypting; answering `false`
/// skips the packet (the connection is already read). Initials sent with another DCID than
/// the one that keys them (after the server chose one) do not open here: a reader that
/// follows connections remembers the original keys and uses [`decrypt_initial`] itself.
pub fn open_client_initials(
    datagram: &[u8],
    scratch: &mut [u8],
    crypto: &mut CryptoBuf,
    want: &mut dyn FnMut(&LongHeader<'_>) -> bool,
) -> InitialsSeen {
    let mut seen = InitialsSeen::default();
    for (h, packet) in Packets::new(datagram) {
        if h.ptype != PacketType::Initial {
            continue;
        }
        seen.initials += 1;
        match initial_keys(h.version, h.dcid, false) {
            Err(_) => seen.unsupported += 1,
            Ok(_) if !want(&h) => {}
            Ok(keys) => match decrypt_initial(packet, &h, &keys, scratch) {
                Err(_) => seen.not_opened += 1,
                Ok((_, payload)) => {
                    seen.opened += 1;
                    if !add_crypto_frames(payload, crypto) {
                        seen.bad_payload += 1;
                    }
                }
            },
        }
    }
    seen
}

/// Fuzzing entry point: header parsing, opening and frame walking never panic.
pub fn fuzz_quic(data: &[u8]) {
    let mut scratch = [0u8; 2048];
    let mut crypto = CryptoBuf::new(4096);
    let _ = open_client_initials(data, &mut scratch, &mut crypto, &mut |_| true);
    let _ = crypto.first_message();
    for f in Frames::new(data).take(1000) {
        if let Ok(Frame::Crypto { offset, data }) = f {
            let _ = crypto.add(offset, data);
        }
    }
    let _ = crypto.contiguous();
}

#[cfg(test)]
mod tests;
