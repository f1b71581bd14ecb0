//! Streaming, zero-copy decoding of pcap and pcapng capture files.
//!
//! [`CaptureDecoder`] is a pure state machine: the caller hands it the bytes it has, and it
//! answers with one decoded unit (file header, pcapng block or pcap record), or asks for more.
//! It does no I/O and never allocates per record (only an `IDB` grows the bounded interface
//! table). It does not decode the link layer: that is [`crate::packet`].

use thiserror::Error;

/// Largest pcap record or pcapng block accepted; anything bigger is treated as corruption so a
/// hostile length field cannot make a reader buffer gigabytes.
pub const MAX_UNIT_LEN: usize = 64 * 1024 * 1024;

/// Largest number of interfaces one pcapng section may describe.
pub const MAX_INTERFACES: usize = 4096;

/// Slack allowed above the header snaplen for a pcap record's captured length: some writers
/// set a small or zero snaplen and still store full frames, so only wildly larger records are
/// rejected.
const SNAPLEN_SLACK: u32 = 256 * 1024;

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAP_MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_OPB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;

/// The link-layer header type of captured frames (the `LINKTYPE_*` registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1).
    Ethernet,
    /// `LINKTYPE_NULL` (0): 4-byte address family in the capturing host's byte order.
    Null,
    /// `LINKTYPE_LOOP` (108): 4-byte address family in network byte order.
    Loop,
    /// `LINKTYPE_RAW` (101), or the historical 12 and 14: bare IPv4 or IPv6.
    Raw,
    /// `LINKTYPE_IPV4` (228).
    Ipv4,
    /// `LINKTYPE_IPV6` (229).
    Ipv6,
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture v1.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux "cooked" capture v2.
    LinuxSll2,
    /// Any other link type, kept as its number.
    Other(u32),
}

impl LinkType {
    /// Maps a `LINKTYPE_*` number to a link type.
    pub fn from_linktype(n: u32) -> Self {
        match n {
            1 => Self::Ethernet,
            0 => Self::Null,
            108 => Self::Loop,
            101 | 12 | 14 => Self::Raw,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            other => Self::Other(other),
        }
    }

    /// The `LINKTYPE_*` number (raw IP maps back to 101).
    pub fn number(&self) -> u32 {
        match self {
            Self::Ethernet => 1,
            Self::Null => 0,
            Self::Loop => 108,
            Self::Raw => 101,
            Self::Ipv4 => 228,
            Self::Ipv6 => 229,
            Self::LinuxSll => 113,
            Self::LinuxSll2 => 276,
            Self::Other(n) => *n,
        }
    }
}

/// One captured frame, borrowed from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Capture time, nanoseconds since the Unix epoch (0 when the format stores none).
    pub ts_ns: u64,
    /// Link type of `data`.
    pub link: LinkType,
    /// pcapng interface id (0 for pcap).
    pub interface: u32,
    /// The captured bytes (possibly shorter than the frame on the wire).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
}

/// Outcome of one [`CaptureDecoder::next`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// The buffer does not hold a complete unit; call again with more bytes.
    NeedMore,
    /// A frame; drop `consumed` bytes before the next call.
    Record {
        /// Bytes of the buffer this unit used.
        consumed: usize,
        /// The frame.
        record: Record<'a>,
    },
    /// A unit carrying no frame (file header, interface description, statistics, ...).
    Skipped {
        /// Bytes of the buffer this unit used.
        consumed: usize,
    },
}

/// Like [`Record`] but with the frame given as a range of the buffer, so a caller that owns
/// and refills the buffer can decode without holding a borrow across refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpan {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Link type of the frame.
    pub link: LinkType,
    /// pcapng interface id (0 for pcap).
    pub interface: u32,
    /// Offset of the captured bytes in the buffer given to [`CaptureDecoder::next_span`].
    pub data_start: usize,
    /// Number of captured bytes.
    pub data_len: usize,
    /// Length of the frame on the wire.
    pub orig_len: u32,
}

/// Outcome of one [`CaptureDecoder::next_span`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStep {
    /// The buffer does not hold a complete unit.
    NeedMore,
    /// A frame located inside the buffer.
    Record {
        /// Bytes of the buffer this unit used.
        consumed: usize,
        /// Where the frame is.
        record: RecordSpan,
    },
    /// A unit carrying no frame.
    Skipped {
        /// Bytes of the buffer this unit used.
        consumed: usize,
    },
}

/// Why a capture could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The input does not start with a pcap magic or a pcapng section header.
    #[error("not a pcap or pcapng capture")]
    NotACapture,
    /// A header or length field is impossible; the rest of the input cannot be trusted.
    #[error("corrupt capture: {0}")]
    Corrupt(&'static str),
}

/// How raw timestamp units convert to nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsScale {
    /// Units are coarser than a nanosecond by this factor.
    Mul(u64),
    /// Units are finer than a nanosecond by this factor.
    Div(u64),
    /// Units are 2^-n seconds.
    Pow2(u32),
}

impl TsScale {
    /// Builds the scale from a pcapng `if_tsresol` byte.
    fn from_tsresol(v: u8) -> Self {
        let n = u32::from(v & 0x7f);
        if v & 0x80 != 0 {
            Self::Pow2(n)
        } else if n <= 9 {
            Self::Mul(10u64.pow(9 - n))
        } else if n <= 19 {
            Self::Div(10u64.pow(n - 9))
        } else {
            // Finer than 10^-19 s cannot be represented in u64 units at all.
            Self::Div(u64::MAX)
        }
    }

    fn to_ns(self, units: u64) -> u64 {
        match self {
            Self::Mul(m) => units.saturating_mul(m),
            Self::Div(d) => units / d,
            Self::Pow2(n) => {
                if n >= 64 + 30 {
                    0
                } else {
                    let ns = (u128::from(units) * 1_000_000_000) >> n;
                    u64::try_from(ns).unwrap_or(u64::MAX)
                }
            }
        }
    }
}

/// One pcapng interface (IDB) as far as frame decoding needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    scale: TsScale,
    offset_s: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PcapState {
    big_endian: bool,
    nanos: bool,
    /// Kuznetzov's modified pcap adds 8 bytes to every record header.
    modified: bool,
    snaplen: u32,
    link: LinkType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Format {
    Start,
    Pcap(PcapState),
    Pcapng { big_endian: bool },
}

/// Stateful decoder of a pcap or pcapng byte stream.
///
/// Feed it the unread bytes from the start of the next unit; it never looks past the unit it
/// decodes.
#[derive(Debug, Clone)]
pub struct CaptureDecoder {
    format: Format,
    interfaces: Vec<Interface>,
}

impl Default for CaptureDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn read_u16(buf: &[u8], at: usize, be: bool) -> Option<u16> {
    let b: [u8; 2] = buf.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if be {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

fn read_u32(buf: &[u8], at: usize, be: bool) -> Option<u32> {
    let b: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

fn read_u64(buf: &[u8], at: usize, be: bool) -> Option<u64> {
    let b: [u8; 8] = buf.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if be {
        u64::from_be_bytes(b)
    } else {
        u64::from_le_bytes(b)
    })
}

/// Reads a field the caller already proved present; a miss would be a decoder bug, which is
/// reported as corruption rather than a panic.
fn need<T>(v: Option<T>) -> Result<T, CaptureError> {
    v.ok_or(CaptureError::Corrupt("field outside its block"))
}

impl CaptureDecoder {
    /// A decoder expecting a file header.
    pub fn new() -> Self {
        Self {
            format: Format::Start,
            interfaces: Vec::new(),
        }
    }

    /// True once a pcap file header or a pcapng section header has been decoded.
    pub fn header_seen(&self) -> bool {
        self.format != Format::Start
    }

    /// Decodes the next unit at the start of `buf` (file header, pcapng block, or pcap record).
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<Step<'a>, CaptureError> {
        Ok(match self.next_span(buf)? {
            SpanStep::NeedMore => Step::NeedMore,
            SpanStep::Skipped { consumed } => Step::Skipped { consumed },
            SpanStep::Record { consumed, record } => {
                let end = record.data_start.saturating_add(record.data_len);
                let data = need(buf.get(record.data_start..end))?;
                Step::Record {
                    consumed,
                    record: Record {
                        ts_ns: record.ts_ns,
                        link: record.link,
                        interface: record.interface,
                        data,
                        orig_len: record.orig_len,
                    },
                }
            }
        })
    }

    /// Same as [`CaptureDecoder::next`], but locates the frame by offsets into `buf`.
    pub fn next_span(&mut self, buf: &[u8]) -> Result<SpanStep, CaptureError> {
        match self.format {
            Format::Start => self.file_header(buf),
            Format::Pcap(st) => Self::pcap_record(st, buf),
            Format::Pcapng { .. } => self.pcapng_block(buf),
        }
    }

    fn file_header(&mut self, buf: &[u8]) -> Result<SpanStep, CaptureError> {
        let Some(magic) = read_u32(buf, 0, false) else {
            return Ok(SpanStep::NeedMore);
        };
        if magic == PCAPNG_SHB {
            return self.pcapng_block(buf);
        }
        let (big_endian, nanos, modified) = match (magic, magic.swap_bytes()) {
            (PCAP_MAGIC_US, _) => (false, false, false),
            (PCAP_MAGIC_NS, _) => (false, true, false),
            (PCAP_MAGIC_KUZNETZOV, _) => (false, false, true),
            (_, PCAP_MAGIC_US) => (true, false, false),
            (_, PCAP_MAGIC_NS) => (true, true, false),
            (_, PCAP_MAGIC_KUZNETZOV) => (true, false, true),
            _ => return Err(CaptureError::NotACapture),
        };
        if buf.len() < 24 {
            return Ok(SpanStep::NeedMore);
        }
        let major = need(read_u16(buf, 4, big_endian))?;
        if major != 2 {
            return Err(CaptureError::Corrupt("unsupported pcap version"));
        }
        let snaplen = need(read_u32(buf, 16, big_endian))?;
        // The upper bits of the link type field carry FCS information, not the type.
        let link = LinkType::from_linktype(need(read_u32(buf, 20, big_endian))? & 0xffff);
        self.format = Format::Pcap(PcapState {
            big_endian,
            nanos,
            modified,
            snaplen,
            link,
        });
        Ok(SpanStep::Skipped { consumed: 24 })
    }

    fn pcap_record(st: PcapState, buf: &[u8]) -> Result<SpanStep, CaptureError> {
        let hdr = if st.modified { 24 } else { 16 };
        if buf.len() < hdr {
            return Ok(SpanStep::NeedMore);
        }
        let be = st.big_endian;
        let sec = need(read_u32(buf, 0, be))?;
        let frac = need(read_u32(buf, 4, be))?;
        let caplen = need(read_u32(buf, 8, be))?;
        let orig_len = need(read_u32(buf, 12, be))?;
        if caplen as usize > MAX_UNIT_LEN - hdr {
            return Err(CaptureError::Corrupt("record length too large"));
        }
        if caplen > st.snaplen.max(65_535).saturating_add(SNAPLEN_SLACK) {
            return Err(CaptureError::Corrupt("record length exceeds snaplen"));
        }
        let total = hdr + caplen as usize;
        if buf.len() < total {
            return Ok(SpanStep::NeedMore);
        }
        let frac_ns = if st.nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        Ok(SpanStep::Record {
            consumed: total,
            record: RecordSpan {
                ts_ns: u64::from(sec) * 1_000_000_000 + frac_ns,
                link: st.link,
                interface: 0,
                data_start: hdr,
                data_len: caplen as usize,
                orig_len,
            },
        })
    }

    fn pcapng_block(&mut self, buf: &[u8]) -> Result<SpanStep, CaptureError> {
        let Some(block_type) = read_u32(buf, 0, false) else {
            return Ok(SpanStep::NeedMore);
        };
        // The SHB type is a byte palindrome, so it reads the same in either order; its byte
        // order mark decides the order of everything up to the next SHB.
        let be = if block_type == PCAPNG_SHB {
            let Some(bom) = read_u32(buf, 8, false) else {
                return Ok(SpanStep::NeedMore);
            };
            match (bom, bom.swap_bytes()) {
                (PCAPNG_BOM, _) => false,
                (_, PCAPNG_BOM) => true,
                _ => {
                    return Err(if self.header_seen() {
                        CaptureError::Corrupt("bad section byte order mark")
                    } else {
                        CaptureError::NotACapture
                    });
                }
            }
        } else {
            match self.format {
                Format::Pcapng { big_endian } => big_endian,
                _ => return Err(CaptureError::NotACapture),
            }
        };
        let block_type = if be {
            block_type.swap_bytes()
        } else {
            block_type
        };
        let Some(len) = read_u32(buf, 4, be) else {
            return Ok(SpanStep::NeedMore);
        };
        let len = len as usize;
        if len < 12 {
            return Err(CaptureError::Corrupt("block shorter than its header"));
        }
        if !len.is_multiple_of(4) {
            return Err(CaptureError::Corrupt("block length not a multiple of 4"));
        }
        if len > MAX_UNIT_LEN {
            return Err(CaptureError::Corrupt("block length too large"));
        }
        if buf.len() < len {
            return Ok(SpanStep::NeedMore);
        }
        if need(read_u32(buf, len - 4, be))? as usize != len {
            return Err(CaptureError::Corrupt("block trailer length mismatch"));
        }
        // Body without the 8-byte header and the 4-byte trailer.
        let body = need(buf.get(8..len - 4))?;
        let skipped = Ok(SpanStep::Skipped { consumed: len });
        match block_type {
            PCAPNG_SHB => {
                if len < 28 {
                    return Err(CaptureError::Corrupt("section header too short"));
                }
                let major = need(read_u16(body, 4, be))?;
                if major != 1 {
                    return Err(CaptureError::Corrupt("unsupported pcapng version"));
                }
                self.format = Format::Pcapng { big_endian: be };
                // Interface ids are scoped to their section.
                self.interfaces.clear();
                skipped
            }
            PCAPNG_IDB => {
                self.interface_block(body, be)?;
                skipped
            }
            PCAPNG_EPB | PCAPNG_OPB => {
                if body.len() < 20 {
                    return Err(CaptureError::Corrupt("packet block too short"));
                }
                let interface = if block_type == PCAPNG_EPB {
                    need(read_u32(body, 0, be))?
                } else {
                    u32::from(need(read_u16(body, 0, be))?)
                };
                let hi = u64::from(need(read_u32(body, 4, be))?);
                let lo = u64::from(need(read_u32(body, 8, be))?);
                let caplen = need(read_u32(body, 12, be))? as usize;
                let orig_len = need(read_u32(body, 16, be))?;
                if caplen > body.len() - 20 {
                    return Err(CaptureError::Corrupt("packet data exceeds its block"));
                }
                let iface = self.interface(interface)?;
                Ok(SpanStep::Record {
                    consumed: len,
                    record: RecordSpan {
                        ts_ns: iface_ts(&iface, (hi << 32) | lo),
                        link: iface.link,
                        interface,
                        data_start: 8 + 20,
                        data_len: caplen,
                        orig_len,
                    },
                })
            }
            PCAPNG_SPB => {
                let orig_len = need(read_u32(body, 0, be))?;
                let iface = self.interface(0)?;
                let room = body.len() - 4;
                let mut caplen = (orig_len as usize).min(room);
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                Ok(SpanStep::Record {
                    consumed: len,
                    record: RecordSpan {
                        ts_ns: 0,
                        link: iface.link,
                        interface: 0,
                        data_start: 8 + 4,
                        data_len: caplen,
                        orig_len,
                    },
                })
            }
            _ => skipped,
        }
    }

    fn interface(&self, id: u32) -> Result<Interface, CaptureError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .copied()
            .ok_or(CaptureError::Corrupt("packet for an undeclared interface"))
    }

    fn interface_block(&mut self, body: &[u8], be: bool) -> Result<(), CaptureError> {
        if body.len() < 8 {
            return Err(CaptureError::Corrupt("interface block too short"));
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(CaptureError::Corrupt("too many interfaces"));
        }
        let mut iface = Interface {
            link: LinkType::from_linktype(u32::from(need(read_u16(body, 0, be))?)),
            snaplen: need(read_u32(body, 4, be))?,
            // Default resolution is microseconds.
            scale: TsScale::Mul(1000),
            offset_s: 0,
        };
        // Options: code, length, value padded to 4 bytes. Each step advances by at least 4,
        // so the walk is bounded by the block length.
        let mut at = 8usize;
        while let (Some(code), Some(olen)) = (read_u16(body, at, be), read_u16(body, at + 2, be)) {
            let olen = usize::from(olen);
            let value = body.get(at + 4..at + 4 + olen);
            match (code, value) {
                (0, _) => break,
                (9, Some(&[v, ..])) => iface.scale = TsScale::from_tsresol(v),
                (14, Some(v)) if v.len() == 8 => {
                    iface.offset_s = need(read_u64(v, 0, be))? as i64;
                }
                // A truncated option ends the option list; the interface itself is usable.
                (_, None) => break,
                _ => {}
            }
            at += 4 + olen.div_ceil(4) * 4;
        }
        self.interfaces.push(iface);
        Ok(())
    }
}

fn iface_ts(iface: &Interface, units: u64) -> u64 {
    let ns = iface.scale.to_ns(units);
    let off_ns = iface.offset_s.saturating_mul(1_000_000_000);
    if off_ns >= 0 {
        ns.saturating_add(off_ns as u64)
    } else {
        ns.saturating_sub(off_ns.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a classic pcap header.
    fn pcap_header(magic: u32, be: bool, snaplen: u32, link: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() })
        };
        let w16 = |v: &mut Vec<u8>, x: u16| {
            v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() })
        };
        w32(&mut v, magic);
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, snaplen);
        w32(&mut v, link);
        v
    }

    fn pcap_record(be: bool, sec: u32, frac: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [sec, frac, data.len() as u32, data.len() as u32 + 10] {
            v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
        }
        v.extend_from_slice(data);
        v
    }

    /// Decodes every unit of `buf`, returning (ts, link, iface, data) of each record.
    /// (timestamp, link type, interface, data) of one decoded record.
    type Owned = (u64, LinkType, u32, Vec<u8>);

    fn decode_all(buf: &[u8]) -> Result<Vec<Owned>, CaptureError> {
        let mut d = CaptureDecoder::new();
        let mut out = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            match d.next(&buf[at..])? {
                Step::NeedMore => return Err(CaptureError::Corrupt("test: truncated")),
                Step::Skipped { consumed } => at += consumed,
                Step::Record { consumed, record } => {
                    out.push((
                        record.ts_ns,
                        record.link,
                        record.interface,
                        record.data.to_vec(),
                    ));
                    at += consumed;
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn linktype_numbers_round_trip() {
        for n in [0, 1, 101, 108, 113, 228, 229, 276, 147] {
            assert_eq!(LinkType::from_linktype(n).number(), n);
        }
        assert_eq!(LinkType::from_linktype(12), LinkType::Raw);
        assert_eq!(LinkType::from_linktype(14), LinkType::Raw);
        assert_eq!(LinkType::from_linktype(147), LinkType::Other(147));
    }

    #[test]
    fn pcap_both_orders_and_resolutions() {
        for be in [false, true] {
            for (magic, mul) in [(PCAP_MAGIC_US, 1000u64), (PCAP_MAGIC_NS, 1)] {
                let mut f = pcap_header(magic, be, 65535, 1);
                f.extend(pcap_record(be, 10, 20, b"abc"));
                f.extend(pcap_record(be, 11, 0, b"defg"));
                let recs = decode_all(&f).unwrap();
                assert_eq!(recs.len(), 2);
                assert_eq!(recs[0].0, 10_000_000_000 + 20 * mul);
                assert_eq!(recs[0].1, LinkType::Ethernet);
                assert_eq!(recs[0].3, b"abc");
                assert_eq!(recs[1].0, 11_000_000_000);
                assert_eq!(recs[1].3, b"defg");
            }
        }
    }

    #[test]
    fn pcap_need_more_until_complete() {
        let mut f = pcap_header(PCAP_MAGIC_US, false, 65535, 101);
        f.extend(pcap_record(false, 1, 2, b"hello"));
        let mut d = CaptureDecoder::new();
        assert_eq!(d.next(&f[..3]).unwrap(), Step::NeedMore);
        assert_eq!(d.next(&f[..23]).unwrap(), Step::NeedMore);
        assert_eq!(d.next(&f).unwrap(), Step::Skipped { consumed: 24 });
        let rest = &f[24..];
        for cut in 0..rest.len() {
            assert_eq!(d.next(&rest[..cut]).unwrap(), Step::NeedMore);
        }
        match d.next(rest).unwrap() {
            Step::Record { consumed, record } => {
                assert_eq!(consumed, 21);
                assert_eq!(record.data, b"hello");
                assert_eq!(record.orig_len, 15);
                assert_eq!(record.link, LinkType::Raw);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn pcap_modified_header_is_24_bytes() {
        let mut f = pcap_header(PCAP_MAGIC_KUZNETZOV, false, 65535, 1);
        let mut r = pcap_record(false, 5, 6, b"");
        r.extend_from_slice(&[0u8; 8]);
        r.extend_from_slice(b"xyz");
        // Fix the caplen for the 3 data bytes.
        r[8..12].copy_from_slice(&3u32.to_le_bytes());
        f.extend(r);
        let recs = decode_all(&f).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].3, b"xyz");
        assert_eq!(recs[0].0, 5_000_006_000);
    }

    #[test]
    fn pcap_rejects_absurd_lengths() {
        let mut f = pcap_header(PCAP_MAGIC_US, false, 65535, 1);
        let mut r = pcap_record(false, 1, 1, b"");
        r[8..12].copy_from_slice(&(100u32 << 20).to_le_bytes());
        f.extend(r);
        let mut d = CaptureDecoder::new();
        d.next(&f).unwrap();
        assert_eq!(
            d.next(&f[24..]),
            Err(CaptureError::Corrupt("record length too large"))
        );
        let mut f = pcap_header(PCAP_MAGIC_US, false, 1500, 1);
        let mut r = pcap_record(false, 1, 1, b"");
        r[8..12].copy_from_slice(&(2u32 << 20).to_le_bytes());
        f.extend(r);
        let mut d = CaptureDecoder::new();
        d.next(&f).unwrap();
        assert_eq!(
            d.next(&f[24..]),
            Err(CaptureError::Corrupt("record length exceeds snaplen"))
        );
    }

    #[test]
    fn not_a_capture() {
        let mut d = CaptureDecoder::new();
        assert_eq!(
            d.next(b"GET / HTTP/1.1\r\n\r\n"),
            Err(CaptureError::NotACapture)
        );
        let mut d = CaptureDecoder::new();
        assert_eq!(
            d.next(b"\x06\0\0\0\x20\0\0\0"),
            Err(CaptureError::NotACapture)
        );
    }

    /// pcapng block builder.
    fn block(be: bool, ty: u32, body: &[u8]) -> Vec<u8> {
        let w = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let padded = body.len().div_ceil(4) * 4;
        let len = (12 + padded) as u32;
        let mut v = Vec::new();
        v.extend_from_slice(&w(ty));
        v.extend_from_slice(&w(len));
        v.extend_from_slice(body);
        v.resize(8 + padded, 0);
        v.extend_from_slice(&w(len));
        v
    }

    fn shb(be: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&if be {
            PCAPNG_BOM.to_be_bytes()
        } else {
            PCAPNG_BOM.to_le_bytes()
        });
        let w16 = |x: u16| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        b.extend_from_slice(&w16(1));
        b.extend_from_slice(&w16(0));
        b.extend_from_slice(&(-1i64).to_le_bytes());
        block(be, PCAPNG_SHB, &b)
    }

    fn idb(be: bool, link: u16, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let w16 = |x: u16| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let mut b = Vec::new();
        b.extend_from_slice(&w16(link));
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&if be {
            0u32.to_be_bytes()
        } else {
            0u32.to_le_bytes()
        });
        for (code, val) in opts {
            b.extend_from_slice(&w16(*code));
            b.extend_from_slice(&w16(val.len() as u16));
            b.extend_from_slice(val);
            b.resize(b.len().div_ceil(4) * 4, 0);
        }
        b.extend_from_slice(&[0, 0, 0, 0]);
        block(be, PCAPNG_IDB, &b)
    }

    fn epb(be: bool, iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        let w = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let mut b = Vec::new();
        b.extend_from_slice(&w(iface));
        b.extend_from_slice(&w((ts >> 32) as u32));
        b.extend_from_slice(&w(ts as u32));
        b.extend_from_slice(&w(data.len() as u32));
        b.extend_from_slice(&w(data.len() as u32));
        b.extend_from_slice(data);
        block(be, PCAPNG_EPB, &b)
    }

    #[test]
    fn pcapng_interfaces_resolutions_and_sections() {
        for be in [false, true] {
            let off = if be {
                100i64.to_be_bytes()
            } else {
                100i64.to_le_bytes()
            };
            let mut f = shb(be);
            f.extend(idb(be, 1, &[(9, &[9])]));
            f.extend(idb(be, 101, &[(9, &[0x80 | 10]), (14, &off)]));
            f.extend(block(be, 5, &[1, 2, 3, 4])); // ISB: skipped
            f.extend(epb(be, 0, 1_500_000_000_123_456_789, b"eth"));
            f.extend(epb(be, 1, 1024 * 3 + 512, b"raw"));
            // A second section in the other byte order resets the interface table.
            f.extend(shb(!be));
            f.extend(idb(!be, 113, &[]));
            f.extend(epb(!be, 0, 7, b"sll"));
            let mut spb = Vec::new();
            spb.extend_from_slice(&if !be {
                5u32.to_be_bytes()
            } else {
                5u32.to_le_bytes()
            });
            spb.extend_from_slice(b"simpl");
            f.extend(block(!be, PCAPNG_SPB, &spb));
            let recs = decode_all(&f).unwrap();
            assert_eq!(recs.len(), 4);
            assert_eq!(
                recs[0],
                (
                    1_500_000_000_123_456_789,
                    LinkType::Ethernet,
                    0,
                    b"eth".to_vec()
                )
            );
            assert_eq!(
                recs[1],
                (
                    100_000_000_000 + 3_500_000_000,
                    LinkType::Raw,
                    1,
                    b"raw".to_vec()
                )
            );
            assert_eq!(recs[2], (7_000, LinkType::LinuxSll, 0, b"sll".to_vec()));
            assert_eq!(recs[3], (0, LinkType::LinuxSll, 0, b"simpl".to_vec()));
        }
    }

    #[test]
    fn pcapng_unknown_interface_and_bad_lengths() {
        let mut f = shb(false);
        f.extend(epb(false, 0, 1, b"x"));
        assert_eq!(
            decode_all(&f),
            Err(CaptureError::Corrupt("packet for an undeclared interface"))
        );
        let mut f = shb(false);
        let mut b = idb(false, 1, &[]);
        b[4] = 13; // not a multiple of 4
        f.extend(b);
        assert_eq!(
            decode_all(&f),
            Err(CaptureError::Corrupt("block length not a multiple of 4"))
        );
        let mut f = shb(false);
        let mut b = idb(false, 1, &[]);
        let n = b.len();
        b[n - 4] = 0; // trailer mismatch
        f.extend(b);
        assert_eq!(
            decode_all(&f),
            Err(CaptureError::Corrupt("block trailer length mismatch"))
        );
    }

    #[test]
    fn pcapng_interface_table_is_bounded() {
        let mut f = shb(false);
        let one = idb(false, 1, &[]);
        for _ in 0..=MAX_INTERFACES {
            f.extend_from_slice(&one);
        }
        assert_eq!(
            decode_all(&f),
            Err(CaptureError::Corrupt("too many interfaces"))
        );
    }

    #[test]
    fn tsresol_conversions() {
        assert_eq!(TsScale::from_tsresol(6).to_ns(5), 5_000);
        assert_eq!(TsScale::from_tsresol(9).to_ns(5), 5);
        assert_eq!(TsScale::from_tsresol(12).to_ns(5_000), 5);
        assert_eq!(TsScale::from_tsresol(0x80 | 1).to_ns(3), 1_500_000_000);
        assert_eq!(
            TsScale::from_tsresol(0x80 | 30).to_ns(1 << 30),
            1_000_000_000
        );
        assert_eq!(TsScale::from_tsresol(0x80 | 127).to_ns(u64::MAX), 0);
        assert_eq!(TsScale::from_tsresol(0).to_ns(u64::MAX), u64::MAX);
        assert_eq!(TsScale::from_tsresol(100).to_ns(1 << 40), 0);
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn never_panics_on_arbitrary_bytes(prefix in 0usize..3, body in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut buf = match prefix {
                    0 => vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0],
                    1 => vec![0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a],
                    _ => vec![],
                };
                buf.extend(body);
                let mut d = CaptureDecoder::new();
                let mut at = 0;
                for _ in 0..1000 {
                    match d.next(&buf[at..]) {
                        Ok(Step::Skipped { consumed }) | Ok(Step::Record { consumed, .. }) => {
                            prop_assert!(consumed > 0 && consumed <= buf.len() - at);
                            at += consumed;
                        }
                        Ok(Step::NeedMore) | Err(_) => break,
                    }
                }
            }
        }
    }
}
