//! sFlow version 5 datagrams: the agent header, flow samples and expanded flow samples with their
//! flow records (sampled header, sampled IPv4/IPv6, extended switch/router/gateway; anything
//! else kept as `(enterprise, format, bytes)`), and counter samples (generic interface counters).
//!
//! Zero-copy and allocation-free. A sampled packet header is decoded through the same
//! [`crate::packet::decode`] path as a captured frame. Every length is checked; a sample or
//! record count larger than the datagram can hold ends when the bytes end. No I/O, no clock.

use core::net::{IpAddr, Ipv4Addr};

use thiserror::Error;

use crate::capture::LinkType;
use crate::netflow::{FlowL3, FlowRecord, be32, ipv4_at, ipv6_at};
use crate::packet::{L3, L4};

/// Why an sFlow datagram (or a sample in it) could not be decoded.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SflowError {
    /// Fewer bytes than the datagram header.
    #[error("datagram shorter than its header")]
    ShortHeader,
    /// Not version 5 (kept as its number).
    #[error("unsupported sflow version {0}")]
    Version(u32),
    /// An agent address type other than 1 (IPv4) or 2 (IPv6).
    #[error("unknown agent address type {0}")]
    AddressType(u32),
    /// A sample or record length runs past its container.
    #[error("sample or record truncated")]
    Truncated,
}

impl SflowError {
    /// A stable reason string for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ShortHeader => "short header",
            Self::Version(_) => "unsupported version",
            Self::AddressType(_) => "unknown agent address type",
            Self::Truncated => "truncated sample",
        }
    }
}

/// A decoded sFlow v5 datagram header and its samples.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    /// The agent address: the device the samples describe.
    pub agent: IpAddr,
    pub sub_agent: u32,
    /// Datagrams sent by this (agent, sub-agent); gaps mean lost datagrams.
    pub sequence: u32,
    pub uptime_ms: u32,
    /// Announced samples (the walk stops earlier when the bytes end).
    pub num_samples: u32,
    samples: &'a [u8],
}

/// Reads the 4-byte-aligned opaque `(format, length, body)` structure used by samples and
/// records; returns `(enterprise, format, body, rest)`.
type Tlv<'a> = (u32, u32, &'a [u8], &'a [u8]);

fn tlv(b: &[u8]) -> Result<Tlv<'_>, SflowError> {
    if b.len() < 8 {
        return Err(SflowError::Truncated);
    }
    let tag = be32(b, 0);
    let len = be32(b, 4) as usize;
    let body = b.get(8..8 + len).ok_or(SflowError::Truncated)?;
    // Bodies are padded to 4 bytes; a missing pad at the very end is tolerated.
    let next = (8 + len + 3) & !3;
    let rest = b.get(next..).unwrap_or_default();
    Ok((tag >> 12, tag & 0xfff, body, rest))
}

/// Reads an sFlow address (type, then 4 or 16 bytes); returns it and its encoded length.
fn address(b: &[u8], at: usize) -> Result<(IpAddr, usize), SflowError> {
    match be32(b, at) {
        1 if b.len() >= at + 8 => Ok((IpAddr::V4(ipv4_at(b, at + 4)), 8)),
        2 if b.len() >= at + 20 => Ok((IpAddr::V6(ipv6_at(b, at + 4)), 20)),
        0 if b.len() >= at + 4 => Ok((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4)),
        0..=2 => Err(SflowError::ShortHeader),
        t => Err(SflowError::AddressType(t)),
    }
}

impl<'a> Datagram<'a> {
    /// Decodes the datagram header (the UDP payload).
    pub fn parse(buf: &'a [u8]) -> Result<Self, SflowError> {
        if buf.len() < 8 {
            return Err(SflowError::ShortHeader);
        }
        let version = be32(buf, 0);
        if version != 5 {
            return Err(SflowError::Version(version));
        }
        let (agent, alen) = address(buf, 4)?;
        let at = 4 + alen;
        let hdr = buf.get(at..at + 16).ok_or(SflowError::ShortHeader)?;
        Ok(Datagram {
            agent,
            sub_agent: be32(hdr, 0),
            sequence: be32(hdr, 4),
            uptime_ms: be32(hdr, 8),
            num_samples: be32(hdr, 12),
            samples: &buf[at + 16..],
        })
    }

    /// The samples, at most `num_samples`, fewer when the bytes end.
    pub fn samples(&self) -> Samples<'a> {
        Samples {
            rest: self.samples,
            left: self.num_samples,
        }
    }
}

/// Iterator over the samples of a datagram; stops after the first malformed sample (yielding
/// its error once).
#[derive(Clone, Debug)]
pub struct Samples<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for Samples<'a> {
    type Item = Result<Sample<'a>, SflowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.rest.is_empty() {
            return None;
        }
        self.left -= 1;
        let (enterprise, format, body, rest) = match tlv(self.rest) {
            Ok(t) => t,
            Err(e) => {
                self.rest = &[];
                return Some(Err(e));
            }
        };
        self.rest = rest;
        let sample = match (enterprise, format) {
            (0, 1) => FlowSample::parse(body, false).map(Sample::Flow),
            (0, 3) => FlowSample::parse(body, true).map(Sample::Flow),
            (0, 2) => CounterSample::parse(body, false).map(Sample::Counters),
            (0, 4) => CounterSample::parse(body, true).map(Sample::Counters),
            _ => Ok(Sample::Other {
                enterprise,
                format,
                data: body,
            }),
        };
        Some(sample)
    }
}

/// One sample of a datagram.
#[derive(Clone, Copy, Debug)]
pub enum Sample<'a> {
    /// A flow sample (format 1) or expanded flow sample (format 3).
    Flow(FlowSample<'a>),
    /// A counter sample (format 2) or expanded counter sample (format 4).
    Counters(CounterSample<'a>),
    /// Any other sample type (discarded-packet samples, vendor samples), kept raw.
    Other {
        enterprise: u32,
        format: u32,
        data: &'a [u8],
    },
}

/// An sFlow interface value: the 2-bit format and the 30-bit value of the compact encoding,
/// or the separate format and value words of the expanded one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    /// 0 = ifIndex, 1 = packet discarded (value = reason), 2 = several interfaces (value =
    /// count).
    pub format: u32,
    pub value: u32,
}

impl Interface {
    /// The ifIndex, when the value is one (format 0 and not the "internal/unknown" marker).
    pub fn if_index(&self) -> Option<u32> {
        (self.format == 0 && self.value != 0x3fff_ffff).then_some(self.value)
    }
}

/// A (possibly expanded) flow sample.
#[derive(Clone, Copy, Debug)]
pub struct FlowSample<'a> {
    pub expanded: bool,
    pub sequence: u32,
    pub source_type: u32,
    pub source_index: u32,
    /// 1-in-N sampling rate.
    pub sampling_rate: u32,
    /// Packets that could have been sampled.
    pub sample_pool: u32,
    /// Samples dropped for lack of resources.
    pub drops: u32,
    pub input: Interface,
    pub output: Interface,
    pub num_records: u32,
    records: &'a [u8],
}

impl<'a> FlowSample<'a> {
    fn parse(b: &'a [u8], expanded: bool) -> Result<Self, SflowError> {
        let hdr = if expanded { 44 } else { 32 };
        if b.len() < hdr {
            return Err(SflowError::Truncated);
        }
        let (source_type, source_index, o) = if expanded {
            (be32(b, 4), be32(b, 8), 12)
        } else {
            let s = be32(b, 4);
            (s >> 24, s & 0x00ff_ffff, 8)
        };
        let (input, output, rec_at) = if expanded {
            (
                Interface {
                    format: be32(b, o + 12),
                    value: be32(b, o + 16),
                },
                Interface {
                    format: be32(b, o + 20),
                    value: be32(b, o + 24),
                },
                o + 28,
            )
        } else {
            let i = be32(b, o + 12);
            let out = be32(b, o + 16);
            (
                Interface {
                    format: i >> 30,
                    value: i & 0x3fff_ffff,
                },
                Interface {
                    format: out >> 30,
                    value: out & 0x3fff_ffff,
                },
                o + 20,
            )
        };
        Ok(FlowSample {
            expanded,
            sequence: be32(b, 0),
            source_type,
            source_index,
            sampling_rate: be32(b, o),
            sample_pool: be32(b, o + 4),
            drops: be32(b, o + 8),
            input,
            output,
            num_records: be32(b, rec_at),
            records: b.get(rec_at + 4..).unwrap_or_default(),
        })
    }

    /// The flow records of the sample.
    pub fn records(&self) -> FlowRecords<'a> {
        FlowRecords {
            rest: self.records,
            left: self.num_records,
        }
    }

    /// The sample as a neutral flow record: one sampled packet (`packets` 1, `bytes` its
    /// length) described by the first sampled-header, sampled-IPv4 or sampled-IPv6 record,
    /// completed by the extended router/gateway records (a header that is not IP leaves the
    /// addresses unset, `l3` [`FlowL3::None`]). `None` when no record describes the packet.
    pub fn to_flow(&self) -> Option<FlowRecord> {
        let mut f = FlowRecord {
            packets: 1,
            sampling_rate: self.sampling_rate,
            in_if: self.input.if_index().unwrap_or(0),
            out_if: self.output.if_index().unwrap_or(0),
            ..FlowRecord::default()
        };
        let mut have_packet = false;
        for r in self.records() {
            let Ok(r) = r else { break };
            match r {
                FlowData::SampledHeader {
                    protocol,
                    frame_length,
                    header,
                    ..
                } if !have_packet => {
                    // A header that is not IP (ARP, LLDP...) still is a sampled packet: it
                    // counts, with no addresses.
                    fill_from_header(&mut f, protocol, header);
                    // The original length of the packet (stripped bytes are part of it).
                    f.bytes = u64::from(frame_length);
                    have_packet = true;
                }
                FlowData::SampledIp {
                    length,
                    protocol,
                    src,
                    dst,
                    src_port,
                    dst_port,
                    tcp_flags,
                    tos,
                } if !have_packet => {
                    f.l3 = if src.is_ipv6() {
                        FlowL3::Ipv6
                    } else {
                        FlowL3::Ipv4
                    };
                    f.src = src;
                    f.dst = dst;
                    f.proto = protocol as u8;
                    f.src_port = src_port as u16;
                    f.dst_port = dst_port as u16;
                    f.tcp_flags = tcp_flags as u8;
                    f.tos = tos as u8;
                    f.bytes = u64::from(length);
                    have_packet = true;
                }
                FlowData::ExtRouter {
                    next_hop,
                    src_mask,
                    dst_mask,
                } => {
                    f.next_hop = next_hop;
                    f.src_mask = src_mask as u8;
                    f.dst_mask = dst_mask as u8;
                }
                FlowData::ExtGateway { src_as, dst_as, .. } => {
                    f.src_as = src_as;
                    f.dst_as = dst_as;
                }
                _ => {}
            }
        }
        have_packet.then_some(f)
    }
}

/// Decodes a sampled header into `f`; false (and `f` untouched) when it is not an IP packet
/// the decoder reads.
fn fill_from_header(f: &mut FlowRecord, protocol: u32, header: &[u8]) -> bool {
    let link = match protocol {
        1 => LinkType::Ethernet,
        11 => LinkType::Ipv4,
        12 => LinkType::Ipv6,
        _ => return false,
    };
    let Ok(p) = crate::packet::decode(link, header) else {
        return false;
    };
    f.l3 = match p.l3 {
        L3::Ipv4 => FlowL3::Ipv4,
        L3::Ipv6 => FlowL3::Ipv6,
        _ => return false,
    };
    f.src = p.src;
    f.dst = p.dst;
    f.proto = p.ip_proto;
    if matches!(p.l4, L4::Tcp | L4::Udp) {
        f.src_port = p.src_port;
        f.dst_port = p.dst_port;
    }
    f.tcp_flags = p.tcp_flags;
    f.tos = match p.l3 {
        L3::Ipv4 => p.ip_header.get(1).copied().unwrap_or(0),
        // Traffic class straddles the first two bytes of the IPv6 header.
        _ => match p.ip_header.get(..2) {
            Some(h) => (h[0] << 4) | (h[1] >> 4),
            None => 0,
        },
    };
    true
}

/// Iterator over the records of a flow sample; stops after the first malformed record.
#[derive(Clone, Debug)]
pub struct FlowRecords<'a> {
    rest: &'a [u8],
    left: u32,
}

/// One flow record of a flow sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowData<'a> {
    /// Format 1: the first bytes of the sampled packet.
    SampledHeader {
        /// Header protocol (1 Ethernet, 11 IPv4, 12 IPv6, ...), kept as a number.
        protocol: u32,
        frame_length: u32,
        stripped: u32,
        header: &'a [u8],
    },
    /// Format 3 (IPv4) or 4 (IPv6): the packet's addresses and ports.
    SampledIp {
        length: u32,
        protocol: u32,
        src: IpAddr,
        dst: IpAddr,
        src_port: u32,
        dst_port: u32,
        tcp_flags: u32,
        /// ToS (IPv4) or priority (IPv6).
        tos: u32,
    },
    /// Format 1001: VLANs and priorities.
    ExtSwitch {
        src_vlan: u32,
        src_priority: u32,
        dst_vlan: u32,
        dst_priority: u32,
    },
    /// Format 1002: next hop and prefix lengths.
    ExtRouter {
        next_hop: IpAddr,
        src_mask: u32,
        dst_mask: u32,
    },
    /// Format 1003: BGP next hop, own AS, source AS, peer AS, destination AS (the last AS of
    /// the path, 0 when the path is empty).
    ExtGateway {
        next_hop: IpAddr,
        as_number: u32,
        src_as: u32,
        src_peer_as: u32,
        dst_as: u32,
    },
    /// Any other record, kept raw.
    Other {
        enterprise: u32,
        format: u32,
        data: &'a [u8],
    },
}

impl<'a> Iterator for FlowRecords<'a> {
    type Item = Result<FlowData<'a>, SflowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.rest.is_empty() {
            return None;
        }
        self.left -= 1;
        let (enterprise, format, b, rest) = match tlv(self.rest) {
            Ok(t) => t,
            Err(e) => {
                self.rest = &[];
                return Some(Err(e));
            }
        };
        self.rest = rest;
        let rec = match (enterprise, format) {
            (0, 1) if b.len() >= 16 => {
                let n = be32(b, 12) as usize;
                match b.get(16..16 + n) {
                    Some(header) => Ok(FlowData::SampledHeader {
                        protocol: be32(b, 0),
                        frame_length: be32(b, 4),
                        stripped: be32(b, 8),
                        header,
                    }),
                    None => Err(SflowError::Truncated),
                }
            }
            (0, 3) if b.len() >= 32 => Ok(FlowData::SampledIp {
                length: be32(b, 0),
                protocol: be32(b, 4),
                src: IpAddr::V4(ipv4_at(b, 8)),
                dst: IpAddr::V4(ipv4_at(b, 12)),
                src_port: be32(b, 16),
                dst_port: be32(b, 20),
                tcp_flags: be32(b, 24),
                tos: be32(b, 28),
            }),
            (0, 4) if b.len() >= 56 => Ok(FlowData::SampledIp {
                length: be32(b, 0),
                protocol: be32(b, 4),
                src: IpAddr::V6(ipv6_at(b, 8)),
                dst: IpAddr::V6(ipv6_at(b, 24)),
                src_port: be32(b, 40),
                dst_port: be32(b, 44),
                tcp_flags: be32(b, 48),
                tos: be32(b, 52),
            }),
            (0, 1001) if b.len() >= 16 => Ok(FlowData::ExtSwitch {
                src_vlan: be32(b, 0),
                src_priority: be32(b, 4),
                dst_vlan: be32(b, 8),
                dst_priority: be32(b, 12),
            }),
            (0, 1002) => match address(b, 0) {
                Ok((next_hop, n)) if b.len() >= n + 8 => Ok(FlowData::ExtRouter {
                    next_hop,
                    src_mask: be32(b, n),
                    dst_mask: be32(b, n + 4),
                }),
                _ => Err(SflowError::Truncated),
            },
            (0, 1003) => gateway(b),
            (0, 1 | 3 | 4 | 1001) => Err(SflowError::Truncated),
            _ => Ok(FlowData::Other {
                enterprise,
                format,
                data: b,
            }),
        };
        if rec.is_err() {
            self.rest = &[];
        }
        Some(rec)
    }
}

/// Extended gateway: next hop, AS, source AS, source peer AS, then the AS path segments.
fn gateway(b: &[u8]) -> Result<FlowData<'_>, SflowError> {
    let (next_hop, n) = address(b, 0).map_err(|_| SflowError::Truncated)?;
    if b.len() < n + 16 {
        return Err(SflowError::Truncated);
    }
    let mut dst_as = 0;
    let segments = be32(b, n + 12);
    let mut at = n + 16;
    // Each segment: type, count, then count ASes; bounded by the bytes present.
    for _ in 0..segments {
        if b.len() < at + 8 {
            break;
        }
        let count = be32(b, at + 4) as usize;
        let Some(end) = count.checked_mul(4).and_then(|c| c.checked_add(at + 8)) else {
            break;
        };
        if end > b.len() {
            break;
        }
        if count > 0 {
            dst_as = be32(b, end - 4);
        }
        at = end;
    }
    Ok(FlowData::ExtGateway {
        next_hop,
        as_number: be32(b, n),
        src_as: be32(b, n + 4),
        src_peer_as: be32(b, n + 8),
        dst_as,
    })
}

/// A (possibly expanded) counter sample.
#[derive(Clone, Copy, Debug)]
pub struct CounterSample<'a> {
    pub expanded: bool,
    pub sequence: u32,
    pub source_type: u32,
    pub source_index: u32,
    pub num_records: u32,
    records: &'a [u8],
}

/// Generic interface counters (counter record format 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfCounters {
    pub if_index: u32,
    pub if_type: u32,
    pub if_speed: u64,
    pub if_direction: u32,
    pub if_status: u32,
    pub in_octets: u64,
    pub in_ucast: u32,
    pub in_mcast: u32,
    pub in_bcast: u32,
    pub in_discards: u32,
    pub in_errors: u32,
    pub in_unknown_protos: u32,
    pub out_octets: u64,
    pub out_ucast: u32,
    pub out_mcast: u32,
    pub out_bcast: u32,
    pub out_discards: u32,
    pub out_errors: u32,
    pub promiscuous: u32,
}

/// One counter record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterData<'a> {
    Generic(IfCounters),
    Other {
        enterprise: u32,
        format: u32,
        data: &'a [u8],
    },
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

impl<'a> CounterSample<'a> {
    fn parse(b: &'a [u8], expanded: bool) -> Result<Self, SflowError> {
        let hdr = if expanded { 16 } else { 12 };
        if b.len() < hdr {
            return Err(SflowError::Truncated);
        }
        let (source_type, source_index) = if expanded {
            (be32(b, 4), be32(b, 8))
        } else {
            let s = be32(b, 4);
            (s >> 24, s & 0x00ff_ffff)
        };
        Ok(CounterSample {
            expanded,
            sequence: be32(b, 0),
            source_type,
            source_index,
            num_records: be32(b, hdr - 4),
            records: &b[hdr..],
        })
    }

    /// The counter records, at most `num_records`, fewer when the bytes end.
    pub fn records(&self) -> impl Iterator<Item = Result<CounterData<'a>, SflowError>> + 'a {
        let mut rest = self.records;
        let mut left = self.num_records;
        core::iter::from_fn(move || {
            if left == 0 || rest.is_empty() {
                return None;
            }
            left -= 1;
            let (enterprise, format, b, r) = match tlv(rest) {
                Ok(t) => t,
                Err(e) => {
                    rest = &[];
                    return Some(Err(e));
                }
            };
            rest = r;
            Some(Ok(match (enterprise, format) {
                (0, 1) if b.len() >= 88 => CounterData::Generic(IfCounters {
                    if_index: be32(b, 0),
                    if_type: be32(b, 4),
                    if_speed: be64(b, 8),
                    if_direction: be32(b, 16),
                    if_status: be32(b, 20),
                    in_octets: be64(b, 24),
                    in_ucast: be32(b, 32),
                    in_mcast: be32(b, 36),
                    in_bcast: be32(b, 40),
                    in_discards: be32(b, 44),
                    in_errors: be32(b, 48),
                    in_unknown_protos: be32(b, 52),
                    out_octets: be64(b, 56),
                    out_ucast: be32(b, 64),
                    out_mcast: be32(b, 68),
                    out_bcast: be32(b, 72),
                    out_discards: be32(b, 76),
                    out_errors: be32(b, 80),
                    promiscuous: be32(b, 84),
                }),
                _ => CounterData::Other {
                    enterprise,
                    format,
                    data: b,
                },
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push32(b: &mut Vec<u8>, v: u32) {
        b.extend_from_slice(&v.to_be_bytes());
    }

    fn tlv_bytes(tag: u32, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        push32(&mut b, tag);
        push32(&mut b, body.len() as u32);
        b.extend_from_slice(body);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    fn header(num_samples: u32) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [5, 1] {
            push32(&mut b, v);
        }
        b.extend_from_slice(&[10, 0, 0, 77]);
        for v in [3, 99, 1000, num_samples] {
            push32(&mut b, v);
        }
        b
    }

    /// A flow sample with sampling rate 512, in 5 / out 6, carrying `records`.
    fn flow_sample(records: &[Vec<u8>]) -> Vec<u8> {
        let mut s = Vec::new();
        for v in [1, 7, 512, 5120, 0, 5, 6, records.len() as u32] {
            push32(&mut s, v);
        }
        for r in records {
            s.extend_from_slice(r);
        }
        tlv_bytes(1, &s)
    }

    /// Sampled header record: an Ethernet/IPv4/UDP frame 10.1.1.1:5000 -> 10.2.2.2:53.
    fn sampled_header() -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0xb8, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 1, 1, 1, 10, 2, 2, 2]);
        f.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
        let mut r = Vec::new();
        for v in [1, 1000, 4, f.len() as u32] {
            push32(&mut r, v);
        }
        r.extend_from_slice(&f);
        tlv_bytes(1, &r)
    }

    #[test]
    fn flow_sample_with_header_and_router_records() {
        let mut router = Vec::new();
        push32(&mut router, 1);
        router.extend_from_slice(&[10, 9, 9, 9]);
        push32(&mut router, 16);
        push32(&mut router, 24);
        let mut b = header(1);
        b.extend_from_slice(&flow_sample(&[sampled_header(), tlv_bytes(1002, &router)]));
        let d = Datagram::parse(&b).unwrap();
        assert_eq!(d.agent, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 77)));
        assert_eq!((d.sub_agent, d.sequence, d.num_samples), (3, 99, 1));
        let samples: Vec<_> = d.samples().collect();
        let Ok(Sample::Flow(fs)) = samples[0] else {
            panic!("not a flow sample: {:?}", samples[0]);
        };
        assert_eq!((fs.sampling_rate, fs.sample_pool), (512, 5120));
        let f = fs.to_flow().unwrap();
        assert_eq!(f.src, IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1)));
        assert_eq!((f.src_port, f.dst_port, f.proto), (5000, 53, 17));
        assert_eq!((f.packets, f.bytes, f.sampling_rate), (1, 1000, 512));
        assert_eq!((f.in_if, f.out_if, f.tos), (5, 6, 0xb8));
        assert_eq!((f.src_mask, f.dst_mask), (16, 24));
        assert_eq!(f.next_hop, IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)));
    }

    #[test]
    fn huge_counts_end_with_the_bytes() {
        let mut b = header(u32::MAX);
        b.extend_from_slice(&flow_sample(&[sampled_header()]));
        let d = Datagram::parse(&b).unwrap();
        assert_eq!(d.samples().count(), 1);
        // A record count of 2^32-1 inside one sample.
        let mut b = header(1);
        let mut s = flow_sample(&[sampled_header()]);
        s[8 + 28..8 + 32].copy_from_slice(&u32::MAX.to_be_bytes());
        b.extend_from_slice(&s);
        let d = Datagram::parse(&b).unwrap();
        let Some(Ok(Sample::Flow(fs))) = d.samples().next() else {
            panic!("flow sample expected");
        };
        assert_eq!(fs.records().count(), 1);
    }

    #[test]
    fn truncated_sample_is_an_error_once() {
        let mut b = header(2);
        let s = flow_sample(&[sampled_header()]);
        b.extend_from_slice(&s[..s.len() - 10]);
        let d = Datagram::parse(&b).unwrap();
        let all: Vec<_> = d.samples().collect();
        assert_eq!(all.len(), 1);
        assert!(matches!(all[0], Err(SflowError::Truncated)));
    }

    #[test]
    fn counter_sample_generic_interface() {
        let mut c = vec![0u8; 88];
        c[0..4].copy_from_slice(&7u32.to_be_bytes());
        c[24..32].copy_from_slice(&123_456u64.to_be_bytes());
        let mut s = Vec::new();
        for v in [4, 7, 1] {
            push32(&mut s, v);
        }
        s.extend_from_slice(&tlv_bytes(1, &c));
        let mut b = header(1);
        b.extend_from_slice(&tlv_bytes(2, &s));
        let d = Datagram::parse(&b).unwrap();
        let Some(Ok(Sample::Counters(cs))) = d.samples().next() else {
            panic!("counter sample expected");
        };
        let Some(Ok(CounterData::Generic(g))) = cs.records().next() else {
            panic!("generic counters expected");
        };
        assert_eq!((g.if_index, g.in_octets), (7, 123_456));
    }

    #[test]
    fn bad_headers() {
        assert_eq!(
            Datagram::parse(&[0, 0, 0, 5]).unwrap_err(),
            SflowError::ShortHeader
        );
        assert_eq!(
            Datagram::parse(&[0, 0, 0, 4, 0, 0, 0, 1]).unwrap_err(),
            SflowError::Version(4)
        );
        assert_eq!(
            Datagram::parse(&[0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 0]).unwrap_err(),
            SflowError::AddressType(9)
        );
    }
}
