//! Zero-copy DNS message parser: reads the header, the first question, whether the answer
//! section holds an RRSIG and the EDNS OPT record, all by borrowing the message bytes.
//!
//! It is not a general DNS library: it builds no record list, decodes no RDATA other than OPT,
//! never allocates and never panics. A message is rejected only when its 12-byte header is
//! missing; every later problem (a section running past the end, an unreadable name) is
//! recorded in [`Faults`] and parsing keeps what it already read, so callers can still count
//! the message the way pktvisor does.
//!
//! Names are rendered as text (lower case, no trailing dot, root = empty string) by
//! [`Name::write_lower`] into a stack buffer ([`NameBuf`]). Aggregation of names into
//! qname2/qname3 ([`aggregate_qname`]) and the public suffix list ([`PublicSuffixList`])
//! live in submodules.

mod aggregate;
mod name;
mod psl;
mod tables;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{BitOr, BitOrAssign};

pub use aggregate::{aggregate_qname, aggregate_qname_str};
pub use name::{MAX_NAME_WIRE_LEN, MAX_POINTER_JUMPS, NAME_TEXT_MAX, Name, NameBuf};
pub use psl::{PublicSuffixList, Sections};
pub use tables::{qtype_from_name, qtype_name, rcode_from_name, rcode_name};

/// Size of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// RR type of the EDNS pseudo-record (RFC 6891).
pub const TYPE_OPT: u16 = 41;
/// RR type of DNSSEC signatures (RFC 4034).
pub const TYPE_RRSIG: u16 = 46;
/// EDNS option code of the client subnet option (RFC 7871).
pub const OPTION_CLIENT_SUBNET: u16 = 8;

/// Why a DNS message or name could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The message is shorter than the fixed header.
    #[error("message of {0} bytes is shorter than the 12-byte dns header")]
    ShortHeader(usize),
    /// A name's labels run past the end of the message.
    #[error("name runs past the end of the message")]
    NameTruncated,
    /// A compression pointer does not point before the labels that led to it.
    #[error("name compression pointer does not point backwards")]
    BadPointer,
    /// A name follows more compression pointers than [`MAX_POINTER_JUMPS`].
    #[error("name follows too many compression pointers")]
    TooManyPointers,
    /// The uncompressed name is longer than 255 bytes.
    #[error("name is longer than 255 bytes")]
    NameTooLong,
    /// A label uses one of the reserved label types 0x40 or 0x80 (the value is kept).
    #[error("name uses reserved label type {0:#04x}")]
    BadLabelType(u8),
}

/// Set of problems found while walking a message (a small bit set; empty for clean messages).
///
/// The walk stops at the first section that cannot be read, so at most one `*_TRUNCATED`
/// flag is set and later sections are not inspected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Faults(u16);

impl Faults {
    /// No fault.
    pub const NONE: Faults = Faults(0);
    /// The question section runs past the end of the message or holds an unreadable name.
    pub const QUESTION_TRUNCATED: Faults = Faults(1);
    /// The first question's name is malformed (bad pointer, too long, reserved label type).
    pub const QUESTION_BAD_NAME: Faults = Faults(1 << 1);
    /// The answer section runs past the end of the message or holds an unreadable owner name.
    pub const ANSWER_TRUNCATED: Faults = Faults(1 << 2);
    /// The authority section runs past the end of the message or holds an unreadable owner name.
    pub const AUTHORITY_TRUNCATED: Faults = Faults(1 << 3);
    /// The additional section runs past the end of the message or holds an unreadable owner name.
    pub const ADDITIONAL_TRUNCATED: Faults = Faults(1 << 4);
    /// The OPT record has a non-root owner name or its options run past its RDATA.
    pub const OPT_MALFORMED: Faults = Faults(1 << 5);
    /// More than one OPT record; only the first one is used.
    pub const MULTIPLE_OPT: Faults = Faults(1 << 6);
    /// Bytes follow the last record the header announced.
    pub const TRAILING_BYTES: Faults = Faults(1 << 7);

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// True when no fault is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: Faults) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when the walk stopped early because some section could not be read.
    pub const fn is_truncated(self) -> bool {
        self.0
            & (Self::QUESTION_TRUNCATED.0
                | Self::ANSWER_TRUNCATED.0
                | Self::AUTHORITY_TRUNCATED.0
                | Self::ADDITIONAL_TRUNCATED.0)
            != 0
    }
}

impl BitOr for Faults {
    type Output = Faults;
    fn bitor(self, rhs: Faults) -> Faults {
        Faults(self.0 | rhs.0)
    }
}

impl BitOrAssign for Faults {
    fn bitor_assign(&mut self, rhs: Faults) {
        self.0 |= rhs.0;
    }
}

/// The first question of a message.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The question name (possibly compressed; render it with [`Name::write_lower`]).
    pub name: Name<'a>,
    /// QTYPE, kept as a number (see [`qtype_name`]).
    pub qtype: u16,
    /// QCLASS, kept as a number.
    pub qclass: u16,
}

/// EDNS(0) information from the OPT pseudo-record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size (the OPT CLASS field).
    pub udp_size: u16,
    /// Upper 8 bits of the extended RCODE (full rcode = `extended_rcode << 4 | header rcode`).
    pub extended_rcode: u8,
    /// EDNS version.
    pub version: u8,
    /// The DO ("DNSSEC OK") bit.
    pub dnssec_ok: bool,
    /// The first client subnet option, when present and well formed.
    pub ecs: Option<ClientSubnet>,
}

/// EDNS client subnet option (RFC 7871).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// Address family: 1 = IPv4, 2 = IPv6 (others are not decoded).
    pub family: u16,
    /// SOURCE PREFIX-LENGTH.
    pub source_prefix: u8,
    /// SCOPE PREFIX-LENGTH.
    pub scope_prefix: u8,
    /// The address bytes carried by the option, zero-padded to the family's full width.
    pub addr: IpAddr,
}

/// Where the first question sits in the message.
#[derive(Debug, Clone, Copy)]
struct QuestionPos {
    name_offset: usize,
    qtype: u16,
    qclass: u16,
}

/// Where the OPT record sits in the message.
#[derive(Debug, Clone, Copy)]
struct OptPos {
    class: u16,
    ttl: u32,
    rdata_start: usize,
    rdata_end: usize,
}

/// A parsed DNS message borrowing its bytes.
///
/// Everything the accessors return was located by one bounded walk in [`parse`]; the
/// accessors themselves are cheap.
#[derive(Debug, Clone, Copy)]
pub struct DnsMessage<'a> {
    msg: &'a [u8],
    header: [u8; HEADER_LEN],
    question: Option<QuestionPos>,
    opt: Option<OptPos>,
    rrsig_answer: bool,
    faults: Faults,
}

#[inline]
fn be16(msg: &[u8], pos: usize) -> Option<u16> {
    let b = msg.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Skips a (possibly compressed) name without following pointers.
///
/// Returns the offset after the name, whether it ended with a compression pointer and the
/// wire length of the labels read (root byte included). `None` when the name runs past the
/// end, uses a reserved label type or has more labels than any legal name can (the loop is
/// bounded by that count).
#[inline]
fn skip_name(msg: &[u8], start: usize) -> Option<(usize, bool, usize)> {
    let mut pos = start;
    // A 255-byte name has at most 127 one-byte labels plus the root label.
    for _ in 0..name::MAX_LABELS {
        let len = *msg.get(pos)?;
        if len == 0 {
            return Some((pos + 1, false, pos + 1 - start));
        }
        if len < 0x40 {
            pos += 1 + usize::from(len);
            continue;
        }
        if len >= 0xC0 {
            msg.get(pos + 1)?;
            return Some((pos + 2, true, pos + 1 - start));
        }
        return None;
    }
    None
}

/// Fixed fields of a resource record and where the next one starts.
struct Rr {
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_start: usize,
    rdata_end: usize,
}

#[inline]
fn read_rr(msg: &[u8], pos: usize) -> Option<Rr> {
    let (p, _, _) = skip_name(msg, pos)?;
    let fixed = msg.get(p..p.checked_add(10)?)?;
    let &[t0, t1, c0, c1, l0, l1, l2, l3, r0, r1] = fixed else {
        return None;
    };
    let rdata_start = p + 10;
    let rdata_end = rdata_start.checked_add(usize::from(u16::from_be_bytes([r0, r1])))?;
    if rdata_end > msg.len() {
        return None;
    }
    Some(Rr {
        rtype: u16::from_be_bytes([t0, t1]),
        class: u16::from_be_bytes([c0, c1]),
        ttl: u32::from_be_bytes([l0, l1, l2, l3]),
        rdata_start,
        rdata_end,
    })
}

/// Parses a DNS message. Fails only when the 12-byte header is missing; everything else that
/// is wrong is reported by [`DnsMessage::faults`].
pub fn parse(msg: &[u8]) -> Result<DnsMessage<'_>, DnsError> {
    let Some(header) = msg.first_chunk::<HEADER_LEN>() else {
        return Err(DnsError::ShortHeader(msg.len()));
    };
    let mut m = DnsMessage {
        msg,
        header: *header,
        question: None,
        opt: None,
        rrsig_answer: false,
        faults: Faults::NONE,
    };
    m.walk();
    Ok(m)
}

impl<'a> DnsMessage<'a> {
    /// Walks every section once. Each loop iteration consumes at least five bytes or stops,
    /// so the walk is bounded by the message length whatever the header counts say.
    fn walk(&mut self) {
        let msg = self.msg;
        let mut pos = HEADER_LEN;
        for i in 0..self.qdcount() {
            let Some((p, compressed, wire_len)) = skip_name(msg, pos) else {
                self.faults |= Faults::QUESTION_TRUNCATED;
                return;
            };
            let (Some(qtype), Some(qclass)) = (be16(msg, p), be16(msg, p + 2)) else {
                self.faults |= Faults::QUESTION_TRUNCATED;
                return;
            };
            if i == 0 {
                // An uncompressed name was fully checked by the skip; only compressed ones
                // need the pointer-following walk.
                let valid = if compressed {
                    Name::from_message(msg, pos).wire_len().is_ok()
                } else {
                    wire_len <= MAX_NAME_WIRE_LEN
                };
                if valid {
                    self.question = Some(QuestionPos {
                        name_offset: pos,
                        qtype,
                        qclass,
                    });
                } else {
                    self.faults |= Faults::QUESTION_BAD_NAME;
                }
            }
            pos = p + 4;
        }
        for _ in 0..self.ancount() {
            let Some(rr) = read_rr(msg, pos) else {
                self.faults |= Faults::ANSWER_TRUNCATED;
                return;
            };
            self.rrsig_answer |= rr.rtype == TYPE_RRSIG;
            pos = rr.rdata_end;
        }
        for _ in 0..self.nscount() {
            let Some(rr) = read_rr(msg, pos) else {
                self.faults |= Faults::AUTHORITY_TRUNCATED;
                return;
            };
            pos = rr.rdata_end;
        }
        for _ in 0..self.arcount() {
            let Some(rr) = read_rr(msg, pos) else {
                self.faults |= Faults::ADDITIONAL_TRUNCATED;
                return;
            };
            if rr.rtype == TYPE_OPT {
                if self.opt.is_some() {
                    self.faults |= Faults::MULTIPLE_OPT;
                } else {
                    // RFC 6891: the OPT owner name must be root.
                    if msg.get(pos) != Some(&0) {
                        self.faults |= Faults::OPT_MALFORMED;
                    }
                    self.opt = Some(OptPos {
                        class: rr.class,
                        ttl: rr.ttl,
                        rdata_start: rr.rdata_start,
                        rdata_end: rr.rdata_end,
                    });
                }
            }
            pos = rr.rdata_end;
        }
        if pos < msg.len() {
            self.faults |= Faults::TRAILING_BYTES;
        }
    }

    /// The message bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.msg
    }

    /// Message ID.
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.header[0], self.header[1]])
    }

    /// QR bit: true for responses.
    pub fn is_response(&self) -> bool {
        self.header[2] & 0x80 != 0
    }

    /// OPCODE (4 bits).
    pub fn opcode(&self) -> u8 {
        (self.header[2] >> 3) & 0x0F
    }

    /// Authoritative answer bit.
    pub fn aa(&self) -> bool {
        self.header[2] & 0x04 != 0
    }

    /// Truncation bit.
    pub fn tc(&self) -> bool {
        self.header[2] & 0x02 != 0
    }

    /// Recursion desired bit.
    pub fn rd(&self) -> bool {
        self.header[2] & 0x01 != 0
    }

    /// Recursion available bit.
    pub fn ra(&self) -> bool {
        self.header[3] & 0x80 != 0
    }

    /// Authentic data bit (RFC 4035).
    pub fn ad(&self) -> bool {
        self.header[3] & 0x20 != 0
    }

    /// Checking disabled bit (RFC 4035).
    pub fn cd(&self) -> bool {
        self.header[3] & 0x10 != 0
    }

    /// Header RCODE (4 bits; the EDNS extension is in [`Edns::extended_rcode`]).
    pub fn rcode(&self) -> u8 {
        self.header[3] & 0x0F
    }

    /// Question count from the header.
    pub fn qdcount(&self) -> u16 {
        u16::from_be_bytes([self.header[4], self.header[5]])
    }

    /// Answer count from the header.
    pub fn ancount(&self) -> u16 {
        u16::from_be_bytes([self.header[6], self.header[7]])
    }

    /// Authority count from the header.
    pub fn nscount(&self) -> u16 {
        u16::from_be_bytes([self.header[8], self.header[9]])
    }

    /// Additional count from the header.
    pub fn arcount(&self) -> u16 {
        u16::from_be_bytes([self.header[10], self.header[11]])
    }

    /// The first question, when it could be read and its name is well formed.
    pub fn question(&self) -> Option<Question<'a>> {
        self.question.map(|q| Question {
            name: Name::from_message(self.msg, q.name_offset),
            qtype: q.qtype,
            qclass: q.qclass,
        })
    }

    /// True when the answer section holds at least one RRSIG record (among the records that
    /// could be read).
    pub fn has_rrsig_answer(&self) -> bool {
        self.rrsig_answer
    }

    /// EDNS data from the first OPT record of the additional section, if any.
    pub fn edns(&self) -> Option<Edns> {
        let opt = self.opt?;
        let [ext, version, flags, _] = opt.ttl.to_be_bytes();
        let rdata = self.msg.get(opt.rdata_start..opt.rdata_end)?;
        Some(Edns {
            udp_size: opt.class,
            extended_rcode: ext,
            version,
            dnssec_ok: flags & 0x80 != 0,
            ecs: find_client_subnet(rdata),
        })
    }

    /// Problems found while walking the message.
    ///
    /// Includes [`Faults::OPT_MALFORMED`] when the OPT options run past its RDATA (checked
    /// here rather than in [`parse`] because only EDNS users pay for reading the options).
    pub fn faults(&self) -> Faults {
        let mut f = self.faults;
        if let Some(opt) = self.opt
            && let Some(rdata) = self.msg.get(opt.rdata_start..opt.rdata_end)
            && !options_well_formed(rdata)
        {
            f |= Faults::OPT_MALFORMED;
        }
        f
    }

    /// Message size in bytes.
    pub fn len(&self) -> usize {
        self.msg.len()
    }

    /// Always false: a parsed message holds at least its header.
    pub fn is_empty(&self) -> bool {
        self.msg.is_empty()
    }
}

/// True when the EDNS options exactly fill the RDATA.
fn options_well_formed(rdata: &[u8]) -> bool {
    let mut pos = 0;
    // Each option takes at least 4 bytes, so this runs at most rdata.len() / 4 times.
    while pos < rdata.len() {
        let Some(len) = be16(rdata, pos + 2) else {
            return false;
        };
        pos += 4 + usize::from(len);
    }
    pos == rdata.len()
}

/// Finds and decodes the first client subnet option in OPT RDATA.
fn find_client_subnet(rdata: &[u8]) -> Option<ClientSubnet> {
    let mut pos = 0;
    while pos < rdata.len() {
        let code = be16(rdata, pos)?;
        let len = usize::from(be16(rdata, pos + 2)?);
        let body = rdata.get(pos + 4..pos + 4 + len)?;
        if code == OPTION_CLIENT_SUBNET {
            return decode_client_subnet(body);
        }
        pos += 4 + len;
    }
    None
}

/// Decodes a client subnet option body; the address is whatever bytes follow the prefix
/// lengths (normally ceil(source_prefix / 8) of them), zero-padded.
fn decode_client_subnet(body: &[u8]) -> Option<ClientSubnet> {
    let (&[f0, f1, source_prefix, scope_prefix], addr) = body.split_first_chunk::<4>()?;
    let family = u16::from_be_bytes([f0, f1]);
    let addr = match family {
        1 => {
            let mut a = [0u8; 4];
            a.get_mut(..addr.len())?.copy_from_slice(addr);
            IpAddr::V4(Ipv4Addr::from(a))
        }
        2 => {
            let mut a = [0u8; 16];
            a.get_mut(..addr.len())?.copy_from_slice(addr);
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return None,
    };
    Some(ClientSubnet {
        family,
        source_prefix,
        scope_prefix,
        addr,
    })
}

/// Fuzzing body: parses `data` and exercises every accessor, name rendering and aggregation.
/// Must never panic whatever the input.
pub fn fuzz_parse(data: &[u8]) {
    let Ok(m) = parse(data) else {
        return;
    };
    let header = (
        m.id(),
        m.is_response(),
        m.opcode(),
        m.rcode(),
        m.aa(),
        m.tc(),
        m.rd(),
        m.ra(),
        m.ad(),
        m.cd(),
        m.qdcount(),
        m.ancount(),
        m.nscount(),
        m.arcount(),
        m.len(),
    );
    std::hint::black_box(header);
    std::hint::black_box((m.has_rrsig_answer(), m.edns(), m.faults().bits()));
    let mut buf = NameBuf::new();
    if let Some(q) = m.question() {
        std::hint::black_box((qtype_name(q.qtype), q.qclass));
        if q.name.write_lower(&mut buf).is_ok() {
            let text = buf.as_bytes();
            let psl_len = PublicSuffixList::builtin().suffix_len(text);
            std::hint::black_box(aggregate_qname(text, psl_len));
            std::hint::black_box(aggregate_qname(text, 0));
        }
    }
    // Names can start anywhere a pointer might land: render a few arbitrary offsets too.
    for offset in [HEADER_LEN, data.len() / 2, data.len().saturating_sub(2)] {
        let _ = Name::from_message(data, offset).write_lower(&mut buf);
        std::hint::black_box(buf.as_str());
    }
    std::hint::black_box(rcode_name(u16::from(m.rcode())));
}

#[cfg(test)]
mod tests;
