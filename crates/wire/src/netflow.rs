//! NetFlow v1, v5, v7, v9 and IPFIX (v10) export datagrams: the header, the fixed-format records
//! of v1/v5/v7, and the set structure of v9/IPFIX; templates and the data records they describe
//! are in [`template`]. Also the neutral [`FlowRecord`] that every flow decoder (sFlow too)
//! yields.
//!
//! Zero-copy and allocation-free: everything borrows from the datagram. This module keeps no
//! template cache (that is `flow::templates`, keyed per exporter) and does no I/O. Every length
//! is checked against the bytes present; loops are bounded by the datagram size.

pub mod template;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// Why a NetFlow/IPFIX datagram (or a part of it) could not be decoded.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetflowError {
    /// Fewer bytes than the header of the announced version.
    #[error("datagram shorter than its header")]
    ShortHeader,
    /// A version this decoder does not know (kept as its number).
    #[error("unsupported netflow version {0}")]
    Version(u16),
    /// A set header announces a length below 4 or past the end of the datagram.
    #[error("set length out of bounds")]
    SetLength,
    /// A template record runs past the end of its set.
    #[error("template record truncated")]
    TemplateTruncated,
    /// A template with more fields than a template can hold.
    #[error("template has too many fields")]
    TemplateTooLarge,
    /// A template whose records would be empty (every field zero bytes long).
    #[error("template describes empty records")]
    TemplateEmpty,
    /// A variable-length field runs past the end of its record's set.
    #[error("variable-length field truncated")]
    VarlenTruncated,
}

impl NetflowError {
    /// A stable reason string for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ShortHeader => "short header",
            Self::Version(_) => "unsupported version",
            Self::SetLength => "bad set length",
            Self::TemplateTruncated => "template truncated",
            Self::TemplateTooLarge => "template too large",
            Self::TemplateEmpty => "empty template",
            Self::VarlenTruncated => "variable-length field truncated",
        }
    }
}

/// What the start and end times of a [`FlowRecord`] count from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeBase {
    /// No time in the record.
    #[default]
    None,
    /// Milliseconds of the exporter's uptime (v1/v5/v7/v9 `First`/`Last`).
    Uptime,
    /// Milliseconds since the Unix epoch (IPFIX absolute times).
    UnixMs,
}

/// The network layer of a flow record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowL3 {
    /// No addresses in the record (an options record, or a non-IP sample).
    #[default]
    None,
    Ipv4,
    Ipv6,
}

/// One flow as every exporter format reduces to it: the neutral record the `flow` handler
/// counts. Numbers the exporter did not send stay 0 (`sampling_rate` 0 means "not known").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub l3: FlowL3,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub next_hop: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, ...), kept as a number.
    pub proto: u8,
    /// The IP ToS / traffic class byte (DSCP in the upper six bits, ECN in the lower two).
    pub tos: u8,
    pub tcp_flags: u8,
    pub src_mask: u8,
    pub dst_mask: u8,
    /// Packets as exported (not multiplied by the sampling rate).
    pub packets: u64,
    /// Bytes as exported (not multiplied by the sampling rate).
    pub bytes: u64,
    /// Input interface (ifIndex), 0 when not exported.
    pub in_if: u32,
    /// Output interface (ifIndex), 0 when not exported.
    pub out_if: u32,
    pub src_as: u32,
    pub dst_as: u32,
    /// Flow start and end, in `time_base` units.
    pub start: u64,
    pub end: u64,
    pub time_base: TimeBase,
    /// 1-in-N sampling rate that applies to this record; 0 when unknown (treat as 1).
    pub sampling_rate: u32,
    /// The sampler that selected this record (v9 FLOW_SAMPLER_ID / IPFIX selectorId), 0 if none.
    pub sampler_id: u32,
}

impl Default for FlowRecord {
    fn default() -> Self {
        let zero = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Self {
            l3: FlowL3::None,
            src: zero,
            dst: zero,
            next_hop: zero,
            src_port: 0,
            dst_port: 0,
            proto: 0,
            tos: 0,
            tcp_flags: 0,
            src_mask: 0,
            dst_mask: 0,
            packets: 0,
            bytes: 0,
            in_if: 0,
            out_if: 0,
            src_as: 0,
            dst_as: 0,
            start: 0,
            end: 0,
            time_base: TimeBase::None,
            sampling_rate: 0,
            sampler_id: 0,
        }
    }
}

/// The export format of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V5,
    V7,
    V9,
    Ipfix,
}

impl Version {
    /// The version number on the wire.
    pub fn number(self) -> u16 {
        match self {
            Self::V1 => 1,
            Self::V5 => 5,
            Self::V7 => 7,
            Self::V9 => 9,
            Self::Ipfix => 10,
        }
    }
}

/// A decoded export header and the bytes after it.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    pub version: Version,
    /// Records (v1/v5/v7), records of all sets (v9; often wrong in practice), or 0 (IPFIX).
    pub count: u16,
    /// Exporter uptime in ms (0 for IPFIX).
    pub sys_uptime_ms: u32,
    /// Export time, seconds since the Unix epoch.
    pub unix_secs: u32,
    /// v5/v7: flows seen before this datagram; v9: export packets; IPFIX: data records; v1: 0.
    pub sequence: u32,
    /// v9 source id, IPFIX observation domain, v5 engine type and id (`type << 8 | id`).
    pub domain: u32,
    /// v5 sampling interval (the low 14 bits of the header field); 0 elsewhere.
    pub sampling_interval: u16,
    body: &'a [u8],
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

#[inline]
pub(crate) fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from_bits(be32(b, at))
}

#[inline]
pub(crate) fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    match b.get(at..at + 16) {
        Some(s) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(s);
            Ipv6Addr::from(a)
        }
        None => Ipv6Addr::UNSPECIFIED,
    }
}

/// Record size of the fixed formats.
const V1_RECORD: usize = 48;
const V5_RECORD: usize = 48;
const V7_RECORD: usize = 52;

impl<'a> Datagram<'a> {
    /// Decodes the header of a NetFlow/IPFIX datagram (the UDP payload).
    pub fn parse(buf: &'a [u8]) -> Result<Self, NetflowError> {
        if buf.len() < 4 {
            return Err(NetflowError::ShortHeader);
        }
        let version = be16(buf, 0);
        let (v, hlen) = match version {
            1 => (Version::V1, 16),
            5 => (Version::V5, 24),
            7 => (Version::V7, 24),
            9 => (Version::V9, 20),
            10 => (Version::Ipfix, 16),
            n => return Err(NetflowError::Version(n)),
        };
        if buf.len() < hlen {
            return Err(NetflowError::ShortHeader);
        }
        let mut d = Datagram {
            version: v,
            count: be16(buf, 2),
            sys_uptime_ms: 0,
            unix_secs: 0,
            sequence: 0,
            domain: 0,
            sampling_interval: 0,
            body: &buf[hlen..],
        };
        match v {
            Version::V1 => {
                d.sys_uptime_ms = be32(buf, 4);
                d.unix_secs = be32(buf, 8);
            }
            Version::V5 | Version::V7 => {
                d.sys_uptime_ms = be32(buf, 4);
                d.unix_secs = be32(buf, 8);
                d.sequence = be32(buf, 16);
                if v == Version::V5 {
                    d.domain = u32::from(be16(buf, 20));
                    d.sampling_interval = be16(buf, 22) & 0x3fff;
                }
            }
            Version::V9 => {
                d.sys_uptime_ms = be32(buf, 4);
                d.unix_secs = be32(buf, 8);
                d.sequence = be32(buf, 12);
                d.domain = be32(buf, 16);
            }
            Version::Ipfix => {
                // The IPFIX length field bounds the message; trailing bytes are not part of it.
                let len = usize::from(d.count);
                if len >= hlen && len < buf.len() {
                    d.body = &buf[hlen..len];
                }
                d.count = 0;
                d.unix_secs = be32(buf, 4);
                d.sequence = be32(buf, 8);
                d.domain = be32(buf, 12);
            }
        }
        Ok(d)
    }

    /// The fixed-format records of a v1/v5/v7 datagram (empty for v9/IPFIX). Yields at most
    /// `count` records, fewer when the datagram ends first (see [`Datagram::truncated`]).
    pub fn fixed_records(&self) -> FixedRecords<'a> {
        let size = match self.version {
            Version::V1 => V1_RECORD,
            Version::V5 => V5_RECORD,
            Version::V7 => V7_RECORD,
            _ => 0,
        };
        let n = self
            .body
            .len()
            .checked_div(size)
            .map_or(0, |fit| usize::from(self.count).min(fit));
        FixedRecords {
            body: self.body,
            version: self.version,
            size,
            left: n,
            at: 0,
            sampling: self.sampling_interval,
        }
    }

    /// True when a v1/v5/v7 datagram announces more records than it carries.
    pub fn truncated(&self) -> bool {
        let size = match self.version {
            Version::V1 => V1_RECORD,
            Version::V5 => V5_RECORD,
            Version::V7 => V7_RECORD,
            _ => return false,
        };
        usize::from(self.count) * size > self.body.len()
    }

    /// The sets of a v9/IPFIX datagram (nothing for v1/v5/v7).
    pub fn sets(&self) -> Sets<'a> {
        let ipfix = self.version == Version::Ipfix;
        let rest = if matches!(self.version, Version::V9 | Version::Ipfix) {
            self.body
        } else {
            &[]
        };
        Sets { rest, ipfix }
    }

    /// The sequence number that the next datagram of this exporter should carry, when the
    /// format counts something this datagram carries (records for v5/v7, one packet for v9).
    /// IPFIX counts data records, which only the set walk knows; sFlow has its own.
    pub fn next_sequence(&self) -> Option<u32> {
        match self.version {
            Version::V5 | Version::V7 => Some(self.sequence.wrapping_add(u32::from(self.count))),
            Version::V9 => Some(self.sequence.wrapping_add(1)),
            _ => None,
        }
    }
}

/// Iterator over the fixed-format records of a v1/v5/v7 datagram.
#[derive(Clone, Debug)]
pub struct FixedRecords<'a> {
    body: &'a [u8],
    version: Version,
    size: usize,
    left: usize,
    at: usize,
    sampling: u16,
}

impl Iterator for FixedRecords<'_> {
    type Item = FlowRecord;

    fn next(&mut self) -> Option<FlowRecord> {
        if self.left == 0 {
            return None;
        }
        let r = self.body.get(self.at..self.at + self.size)?;
        self.left -= 1;
        self.at += self.size;
        let mut f = FlowRecord {
            l3: FlowL3::Ipv4,
            src: IpAddr::V4(ipv4_at(r, 0)),
            dst: IpAddr::V4(ipv4_at(r, 4)),
            next_hop: IpAddr::V4(ipv4_at(r, 8)),
            in_if: u32::from(be16(r, 12)),
            out_if: u32::from(be16(r, 14)),
            packets: u64::from(be32(r, 16)),
            bytes: u64::from(be32(r, 20)),
            start: u64::from(be32(r, 24)),
            end: u64::from(be32(r, 28)),
            time_base: TimeBase::Uptime,
            src_port: be16(r, 32),
            dst_port: be16(r, 34),
            ..FlowRecord::default()
        };
        match self.version {
            Version::V1 => {
                f.proto = r[38];
                f.tos = r[39];
                f.tcp_flags = r[40];
            }
            _ => {
                // v5 and v7 share the layout up to the masks.
                f.tcp_flags = r[37];
                f.proto = r[38];
                f.tos = r[39];
                f.src_as = u32::from(be16(r, 40));
                f.dst_as = u32::from(be16(r, 42));
                f.src_mask = r[44];
                f.dst_mask = r[45];
                f.sampling_rate = u32::from(self.sampling);
            }
        }
        Some(f)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// One v9 FlowSet or IPFIX set: its id and its body (after the 4-byte set header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Set<'a> {
    pub id: u16,
    pub body: &'a [u8],
}

/// What a set carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetKind {
    Template,
    OptionsTemplate,
    /// Data described by the template of this id.
    Data(u16),
    /// Reserved ids (v9 2-255, IPFIX 0, 1, 4-255).
    Reserved(u16),
}

impl Set<'_> {
    /// What the set carries, by the rules of its version.
    pub fn kind(&self, ipfix: bool) -> SetKind {
        match (self.id, ipfix) {
            (0, false) | (2, true) => SetKind::Template,
            (1, false) | (3, true) => SetKind::OptionsTemplate,
            (id, _) if id >= 256 => SetKind::Data(id),
            (id, _) => SetKind::Reserved(id),
        }
    }
}

/// Iterator over the sets of a v9/IPFIX datagram; stops after the first malformed set header
/// (yielding its error once).
#[derive(Clone, Debug)]
pub struct Sets<'a> {
    rest: &'a [u8],
    ipfix: bool,
}

impl Sets<'_> {
    /// True when these are IPFIX sets (ids 2/3 for templates), false for v9 FlowSets (0/1).
    pub fn is_ipfix(&self) -> bool {
        self.ipfix
    }
}

impl<'a> Iterator for Sets<'a> {
    type Item = Result<Set<'a>, NetflowError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer than a set header's bytes left: v9 exporters pad datagrams; that is the end.
        if self.rest.len() < 4 {
            self.rest = &[];
            return None;
        }
        let id = be16(self.rest, 0);
        let len = usize::from(be16(self.rest, 2));
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(NetflowError::SetLength));
        }
        let body = &self.rest[4..len];
        self.rest = &self.rest[len..];
        Some(Ok(Set { id, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v5 datagram with `n` records, each `i` numbered into its counters.
    pub(crate) fn v5(n: u16, seq: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&5u16.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&1000u32.to_be_bytes());
        b.extend_from_slice(&1_600_000_000u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&(0x4000u16 | 100).to_be_bytes());
        for i in 0..n {
            let mut r = [0u8; 48];
            r[0..4].copy_from_slice(&[10, 0, 0, 1]);
            r[4..8].copy_from_slice(&[10, 0, 0, 2]);
            r[12..14].copy_from_slice(&3u16.to_be_bytes());
            r[14..16].copy_from_slice(&4u16.to_be_bytes());
            r[16..20].copy_from_slice(&(u32::from(i) + 1).to_be_bytes());
            r[20..24].copy_from_slice(&(100 * (u32::from(i) + 1)).to_be_bytes());
            r[32..34].copy_from_slice(&1234u16.to_be_bytes());
            r[34..36].copy_from_slice(&80u16.to_be_bytes());
            r[37] = 0x12;
            r[38] = 6;
            r[39] = 0xb8;
            r[40..42].copy_from_slice(&65000u16.to_be_bytes());
            r[44] = 24;
            b.extend_from_slice(&r);
        }
        b
    }

    #[test]
    fn v5_records_decode_every_field() {
        let b = v5(2, 77);
        let d = Datagram::parse(&b).unwrap();
        assert_eq!(d.version, Version::V5);
        assert_eq!(d.sequence, 77);
        assert_eq!(d.sampling_interval, 100);
        assert_eq!(d.next_sequence(), Some(79));
        let recs: Vec<_> = d.fixed_records().collect();
        assert_eq!(recs.len(), 2);
        let r = recs[1];
        assert_eq!(r.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(r.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!((r.in_if, r.out_if), (3, 4));
        assert_eq!((r.packets, r.bytes), (2, 200));
        assert_eq!((r.src_port, r.dst_port, r.proto), (1234, 80, 6));
        assert_eq!(
            (r.tcp_flags, r.tos, r.src_as, r.src_mask),
            (0x12, 0xb8, 65000, 24)
        );
        assert_eq!(r.sampling_rate, 100);
    }

    #[test]
    fn truncated_fixed_datagram_yields_what_fits() {
        let mut b = v5(3, 0);
        b.truncate(24 + 48 * 2 + 10);
        let d = Datagram::parse(&b).unwrap();
        assert!(d.truncated());
        assert_eq!(d.fixed_records().count(), 2);
        // A count of 65535 in a short datagram ends when the bytes end.
        let mut b = v5(1, 0);
        b[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(Datagram::parse(&b).unwrap().fixed_records().count(), 1);
    }

    #[test]
    fn bad_headers_are_errors() {
        assert_eq!(
            Datagram::parse(&[0, 5]).unwrap_err(),
            NetflowError::ShortHeader
        );
        assert_eq!(
            Datagram::parse(&[0, 5, 0, 0, 0, 0]).unwrap_err(),
            NetflowError::ShortHeader
        );
        assert_eq!(
            Datagram::parse(&[0, 8, 0, 0]).unwrap_err(),
            NetflowError::Version(8)
        );
    }

    #[test]
    fn sets_stop_at_a_bad_length() {
        let mut b = vec![0, 10, 0, 0];
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&[1, 0, 0, 8, 1, 2, 3, 4]);
        b.extend_from_slice(&[1, 1, 0, 2]);
        let len = b.len() as u16;
        b[2..4].copy_from_slice(&len.to_be_bytes());
        let d = Datagram::parse(&b).unwrap();
        let sets: Vec<_> = d.sets().collect();
        assert_eq!(
            sets[0],
            Ok(Set {
                id: 256,
                body: &[1, 2, 3, 4]
            })
        );
        assert_eq!(sets[1], Err(NetflowError::SetLength));
        assert_eq!(sets.len(), 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any bytes after a valid v9 or IPFIX header: every walk ends, nothing panics, and
        /// no record is longer than the datagram.
        #[test]
        fn arbitrary_sets_end(ipfix: bool, body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let mut b = if ipfix { vec![0, 10, 0, 0] } else { vec![0, 9, 0, 0] };
            b.extend_from_slice(&[0; 12]);
            if !ipfix {
                b.extend_from_slice(&[0; 4]);
            }
            b.extend_from_slice(&body);
            if ipfix {
                let len = b.len().min(usize::from(u16::MAX)) as u16;
                b[2..4].copy_from_slice(&len.to_be_bytes());
            }
            let d = Datagram::parse(&b).unwrap();
            let mut tpl = None;
            for set in d.sets().flatten() {
                match set.kind(ipfix) {
                    SetKind::Template | SetKind::OptionsTemplate => {
                        let opt = set.kind(ipfix) == SetKind::OptionsTemplate;
                        for def in template::template_records(set.body, ipfix, opt).flatten() {
                            if let Ok(t) = template::Template::from_def(&def) {
                                tpl = Some(t);
                            }
                        }
                    }
                    SetKind::Data(_) => {
                        if let Some(t) = &tpl {
                            for r in t.records(set.body) {
                                proptest::prop_assert!(r.bytes().len() <= b.len());
                                let _ = r.to_flow();
                            }
                        }
                    }
                    SetKind::Reserved(_) => {}
                }
            }
        }
    }
}
