//! Zero-copy walker over link, network and transport headers of one captured frame.
//!
//! [`decode`] finds addresses, ports, TCP state fields and the payload of a frame without
//! copying or allocating. It is not a reassembler (fragments are flagged, not joined) and it
//! decodes no application protocol.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::capture::LinkType;

/// Most VLAN tags accepted in one frame (QinQ stacks are rarely deeper than 2).
const MAX_VLAN_TAGS: usize = 8;
/// Most MPLS labels accepted in one stack.
const MAX_MPLS_LABELS: usize = 16;
/// Most link-layer encapsulations walked before giving up (bounds pseudowire nesting).
const MAX_LAYERS: usize = 32;
/// Most IPv6 extension headers walked.
const MAX_IPV6_EXT: usize = 16;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MC: u16 = 0x8848;
const ETHERTYPE_PPPOE: u16 = 0x8864;

/// Network layer found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L3 {
    /// No network layer could be identified (see the link decoder).
    None,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// A non-IP ethertype (ARP, LLDP, ...); values below 0x0600 are 802.3 length fields.
    Other(u16),
}

/// Transport layer found in an IP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// No transport header (non-IP frame, or a non-first fragment).
    None,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// Any other IP protocol, by number.
    Other(u8),
}

/// Fragmentation information of an IPv4 fragment or an IPv6 packet with a Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Identification (16 bits for IPv4, 32 bits for IPv6).
    pub id: u32,
    /// Offset of this fragment's data in the original datagram, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// The decoded headers of one frame; slices borrow from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Network layer.
    pub l3: L3,
    /// Source address (`0.0.0.0` when there is no IP layer).
    pub src: IpAddr,
    /// Destination address (`0.0.0.0` when there is no IP layer).
    pub dst: IpAddr,
    /// Transport protocol number after IPv6 extension headers (0 when there is no IP layer).
    pub ip_proto: u8,
    /// Transport layer.
    pub l4: L4,
    /// Source port (0 when the transport has no ports).
    pub src_port: u16,
    /// Destination port (0 when the transport has no ports).
    pub dst_port: u16,
    /// TCP flags byte (FIN 0x01 ... CWR 0x80).
    pub tcp_flags: u8,
    /// TCP sequence number.
    pub tcp_seq: u32,
    /// TCP acknowledgement number.
    pub tcp_ack: u32,
    /// TCP window (unscaled).
    pub tcp_window: u16,
    /// Outermost VLAN id, 0 if untagged.
    pub vlan: u16,
    /// Set for IPv4 fragments and IPv6 packets carrying a Fragment header.
    pub fragment: Option<Fragment>,
    /// IP header including options and IPv6 extension headers.
    pub ip_header: &'a [u8],
    /// Transport header and payload, clipped to the IP length (link padding removed).
    pub ip_payload: &'a [u8],
    /// Payload after the UDP or TCP header; empty for fragments and other transports.
    pub payload: &'a [u8],
    /// Source address of the outermost Ethernet header (DHCP names servers by it); zero for
    /// other link types.
    pub src_mac: [u8; 6],
}

impl Default for Packet<'_> {
    fn default() -> Self {
        Self {
            l3: L3::None,
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ip_proto: 0,
            l4: L4::None,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            tcp_seq: 0,
            tcp_ack: 0,
            tcp_window: 0,
            vlan: 0,
            fragment: None,
            ip_header: &[],
            ip_payload: &[],
            payload: &[],
            src_mac: [0; 6],
        }
    }
}

/// A decoded [`Packet`] with its byte slices turned into offsets of its frame, so the
/// decode result can travel with a copy of the frame (to another thread) and be re-attached
/// to that copy without decoding again. It is not a packet by itself: [`Detached::attach`]
/// needs the same frame bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detached {
    /// Every field of the packet but the slices (left empty).
    fields: Packet<'static>,
    ip_header: (u32, u32),
    ip_payload: (u32, u32),
    payload: (u32, u32),
}

/// Offset and length of `sub` inside `frame`; `None` when it does not lie inside it (empty
/// slices map to an empty range).
fn range_in(frame: &[u8], sub: &[u8]) -> Option<(u32, u32)> {
    if sub.is_empty() {
        return Some((0, 0));
    }
    // Address arithmetic only (no dereference): where `sub` starts relative to `frame`.
    let off = (sub.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
    let end = off.checked_add(sub.len())?;
    if end > frame.len() {
        return None;
    }
    Some((u32::try_from(off).ok()?, u32::try_from(sub.len()).ok()?))
}

/// The sub-slice of `frame` at `(offset, length)` (empty when out of range).
fn slice_at(frame: &[u8], (off, len): (u32, u32)) -> &[u8] {
    let off = off as usize;
    frame
        .get(off..off.saturating_add(len as usize))
        .unwrap_or_default()
}

impl Packet<'_> {
    /// Detaches this packet from `frame`, the bytes it was decoded from; `None` when one of
    /// its slices does not point into `frame` (then decode the copy instead).
    pub fn detach(&self, frame: &[u8]) -> Option<Detached> {
        Some(Detached {
            ip_header: range_in(frame, self.ip_header)?,
            ip_payload: range_in(frame, self.ip_payload)?,
            payload: range_in(frame, self.payload)?,
            fields: Packet {
                ip_header: &[],
                ip_payload: &[],
                payload: &[],
                ..*self
            },
        })
    }
}

impl Detached {
    /// The packet again, its slices pointing into `frame` (a copy of the bytes it was
    /// detached from; other bytes give a packet whose slices are empty or meaningless, but
    /// never an out-of-bounds access).
    #[inline]
    pub fn attach<'a>(&self, frame: &'a [u8]) -> Packet<'a> {
        Packet {
            ip_header: slice_at(frame, self.ip_header),
            ip_payload: slice_at(frame, self.ip_payload),
            payload: slice_at(frame, self.payload),
            ..self.fields
        }
    }
}

/// Why a frame's headers could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The link type is not one the walker knows.
    #[error("unsupported link type")]
    UnsupportedLink,
    /// The frame ends inside its link-layer header.
    #[error("truncated link header")]
    TruncatedLink,
    /// A BSD loopback header names an address family that is not IP.
    #[error("unknown address family")]
    UnknownFamily,
    /// The frame ends inside a VLAN tag.
    #[error("truncated vlan tag")]
    TruncatedVlan,
    /// More VLAN tags than the walker accepts.
    #[error("too many vlan tags")]
    TooManyVlans,
    /// The frame ends inside an MPLS label stack.
    #[error("truncated mpls stack")]
    TruncatedMpls,
    /// More MPLS labels than the walker accepts.
    #[error("too many mpls labels")]
    TooManyMpls,
    /// The frame ends inside a PPPoE header.
    #[error("truncated pppoe header")]
    TruncatedPppoe,
    /// More nested encapsulations than the walker accepts.
    #[error("too many encapsulations")]
    TooManyLayers,
    /// An IP header whose version is neither 4 nor 6 (or not the announced one).
    #[error("bad ip version")]
    BadIpVersion,
    /// The datagram ends inside its IPv4 header.
    #[error("truncated ipv4 header")]
    TruncatedIpv4,
    /// IPv4 header length below 20 bytes.
    #[error("bad ipv4 header length")]
    BadIpv4HeaderLength,
    /// IPv4 total length smaller than the header.
    #[error("bad ipv4 total length")]
    BadIpv4TotalLength,
    /// The datagram ends inside an IPv4 authentication header.
    #[error("truncated ipv4 authentication header")]
    TruncatedIpv4Ext,
    /// The datagram ends inside its IPv6 header.
    #[error("truncated ipv6 header")]
    TruncatedIpv6,
    /// The datagram ends inside an IPv6 extension header.
    #[error("truncated ipv6 extension header")]
    TruncatedIpv6Ext,
    /// More IPv6 extension headers than the walker accepts.
    #[error("too many ipv6 extension headers")]
    TooManyIpv6Ext,
    /// The segment ends inside its TCP header.
    #[error("truncated tcp header")]
    TruncatedTcp,
    /// TCP data offset below 5 words.
    #[error("bad tcp data offset")]
    BadTcpOffset,
    /// The datagram ends inside its UDP header.
    #[error("truncated udp header")]
    TruncatedUdp,
    /// UDP length field below the header size.
    #[error("bad udp length")]
    BadUdpLength,
    /// The datagram ends inside its ICMP header.
    #[error("truncated icmp header")]
    TruncatedIcmp,
}

impl DecodeError {
    /// A stable, lower-case description, suitable as a counter label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedLink => "unsupported link type",
            Self::TruncatedLink => "truncated link header",
            Self::UnknownFamily => "unknown address family",
            Self::TruncatedVlan => "truncated vlan tag",
            Self::TooManyVlans => "too many vlan tags",
            Self::TruncatedMpls => "truncated mpls stack",
            Self::TooManyMpls => "too many mpls labels",
            Self::TruncatedPppoe => "truncated pppoe header",
            Self::TooManyLayers => "too many encapsulations",
            Self::BadIpVersion => "bad ip version",
            Self::TruncatedIpv4 => "truncated ipv4 header",
            Self::BadIpv4HeaderLength => "bad ipv4 header length",
            Self::BadIpv4TotalLength => "bad ipv4 total length",
            Self::TruncatedIpv4Ext => "truncated ipv4 authentication header",
            Self::TruncatedIpv6 => "truncated ipv6 header",
            Self::TruncatedIpv6Ext => "truncated ipv6 extension header",
            Self::TooManyIpv6Ext => "too many ipv6 extension headers",
            Self::TruncatedTcp => "truncated tcp header",
            Self::BadTcpOffset => "bad tcp data offset",
            Self::TruncatedUdp => "truncated udp header",
            Self::BadUdpLength => "bad udp length",
            Self::TruncatedIcmp => "truncated icmp header",
        }
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

/// What the walker expects at the current offset.
#[derive(Clone, Copy)]
enum Next {
    /// An Ethernet II / 802.3 header.
    Ether,
    /// The payload of this ethertype.
    Type(u16),
    /// An IP header, version told by its first nibble.
    Ip,
}

/// Decodes the headers of one frame captured with link type `link`.
#[inline]
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
    // Fast path for the overwhelmingly common untagged Ethernet + IP frame.
    if link == LinkType::Ethernet
        && let (Some(et), Some(d)) = (be16(frame, 12), frame.get(14..))
        && (et == ETHERTYPE_IPV4 || et == ETHERTYPE_IPV6)
    {
        let mut p = Packet::default();
        if et == ETHERTYPE_IPV4 {
            ipv4(d, &mut p)?;
        } else {
            ipv6(d, &mut p)?;
        }
        p.src_mac = src_mac(frame);
        return Ok(p);
    }
    let mut p = decode_slow(link, frame)?;
    if link == LinkType::Ethernet {
        p.src_mac = src_mac(frame);
    }
    Ok(p)
}

/// Bytes 6..12 of an Ethernet frame (zero when shorter).
#[inline]
fn src_mac(frame: &[u8]) -> [u8; 6] {
    frame
        .get(6..12)
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default()
}

/// Every link layer and encapsulation other than plain Ethernet + IP.
#[inline(never)]
fn decode_slow(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let (mut at, mut next) = match link {
        LinkType::Ethernet => (0, Next::Ether),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => (0, Next::Ip),
        LinkType::Null | LinkType::Loop => {
            let b: [u8; 4] = frame
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(DecodeError::TruncatedLink)?;
            // NULL stores the family in the capturing host's order; families are small, so
            // a value with zero low bytes in one order is the other order.
            let af = if link == LinkType::Loop || (b[0] == 0 && b[1] == 0) {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            };
            match af {
                2 => (4, Next::Type(ETHERTYPE_IPV4)),
                24 | 28 | 30 => (4, Next::Type(ETHERTYPE_IPV6)),
                _ => return Err(DecodeError::UnknownFamily),
            }
        }
        LinkType::LinuxSll => (
            16,
            Next::Type(be16(frame, 14).ok_or(DecodeError::TruncatedLink)?),
        ),
        LinkType::LinuxSll2 => {
            if frame.len() < 20 {
                return Err(DecodeError::TruncatedLink);
            }
            (
                20,
                Next::Type(be16(frame, 0).ok_or(DecodeError::TruncatedLink)?),
            )
        }
        LinkType::Other(_) => return Err(DecodeError::UnsupportedLink),
    };
    let mut vlan = 0u16;
    let mut tags = 0usize;
    for _ in 0..MAX_LAYERS {
        match next {
            Next::Ether => {
                let et = be16(frame, at + 12).ok_or(DecodeError::TruncatedLink)?;
                at += 14;
                next = Next::Type(et);
            }
            Next::Ip => {
                let d = frame.get(at..).unwrap_or_default();
                // Filled in place: moving the large result through each layer costs more
                // than decoding the headers.
                let mut p = Packet {
                    vlan,
                    ..Packet::default()
                };
                decode_ip_into(d, &mut p)?;
                return Ok(p);
            }
            Next::Type(ETHERTYPE_IPV4) => {
                let d = frame.get(at..).unwrap_or_default();
                // Filled in place: moving the large result through each layer costs more
                // than decoding the headers.
                let mut p = Packet {
                    vlan,
                    ..Packet::default()
                };
                ipv4(d, &mut p)?;
                return Ok(p);
            }
            Next::Type(ETHERTYPE_IPV6) => {
                let d = frame.get(at..).unwrap_or_default();
                // Filled in place: moving the large result through each layer costs more
                // than decoding the headers.
                let mut p = Packet {
                    vlan,
                    ..Packet::default()
                };
                ipv6(d, &mut p)?;
                return Ok(p);
            }
            Next::Type(ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) => {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(DecodeError::TooManyVlans);
                }
                let tci = be16(frame, at).ok_or(DecodeError::TruncatedVlan)?;
                let et = be16(frame, at + 2).ok_or(DecodeError::TruncatedVlan)?;
                if tags == 1 {
                    vlan = tci & 0x0fff;
                }
                at += 4;
                next = Next::Type(et);
            }
            Next::Type(et @ (ETHERTYPE_MPLS | ETHERTYPE_MPLS_MC)) => {
                let mut bottom = false;
                for _ in 0..MAX_MPLS_LABELS {
                    let label = be32(frame, at).ok_or(DecodeError::TruncatedMpls)?;
                    at += 4;
                    if label & 0x100 != 0 {
                        bottom = true;
                        break;
                    }
                }
                if !bottom {
                    return Err(DecodeError::TooManyMpls);
                }
                // MPLS does not say what it carries: guess from the first nibble, and read
                // nibble 0 as a pseudowire control word followed by an Ethernet frame.
                let first = *frame.get(at).ok_or(DecodeError::TruncatedMpls)?;
                next = match first >> 4 {
                    4 => Next::Type(ETHERTYPE_IPV4),
                    6 => Next::Type(ETHERTYPE_IPV6),
                    0 => {
                        at += 4;
                        Next::Ether
                    }
                    _ => return Ok(other(et, vlan)),
                };
            }
            Next::Type(ETHERTYPE_PPPOE) => {
                // PPP may compress its protocol field to one byte (RFC 1661 PFC); full
                // protocol numbers always have an even first byte.
                let first = *frame.get(at + 6).ok_or(DecodeError::TruncatedPppoe)?;
                let proto = if first & 1 == 1 {
                    at += 7;
                    u16::from(first)
                } else {
                    let proto = be16(frame, at + 6).ok_or(DecodeError::TruncatedPppoe)?;
                    at += 8;
                    proto
                };
                next = match proto {
                    0x0021 => Next::Type(ETHERTYPE_IPV4),
                    0x0057 => Next::Type(ETHERTYPE_IPV6),
                    _ => return Ok(other(ETHERTYPE_PPPOE, vlan)),
                };
            }
            Next::Type(et) => return Ok(other(et, vlan)),
        }
    }
    Err(DecodeError::TooManyLayers)
}

fn other<'a>(ethertype: u16, vlan: u16) -> Packet<'a> {
    Packet {
        l3: L3::Other(ethertype),
        vlan,
        ..Packet::default()
    }
}

/// Decodes a datagram that starts at an IPv4 or IPv6 header.
pub fn decode_ip(datagram: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let mut p = Packet::default();
    decode_ip_into(datagram, &mut p)?;
    Ok(p)
}

#[inline]
fn decode_ip_into<'a>(datagram: &'a [u8], p: &mut Packet<'a>) -> Result<(), DecodeError> {
    match datagram.first().map(|b| b >> 4) {
        Some(4) => ipv4(datagram, p),
        Some(6) => ipv6(datagram, p),
        Some(_) => Err(DecodeError::BadIpVersion),
        None => Err(DecodeError::TruncatedIpv4),
    }
}

#[inline]
fn ipv4<'a>(d: &'a [u8], p: &mut Packet<'a>) -> Result<(), DecodeError> {
    let hdr: &[u8; 20] = d
        .get(..20)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::TruncatedIpv4)?;
    if hdr[0] >> 4 != 4 {
        return Err(DecodeError::BadIpVersion);
    }
    let ihl = usize::from(hdr[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(DecodeError::BadIpv4HeaderLength);
    }
    if d.len() < ihl {
        return Err(DecodeError::TruncatedIpv4);
    }
    let total = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
    // A zero total length is what TSO-offloaded captures show: use what was captured.
    let end = if total == 0 {
        d.len()
    } else if total < ihl {
        return Err(DecodeError::BadIpv4TotalLength);
    } else {
        total.min(d.len())
    };
    let frag = u16::from_be_bytes([hdr[6], hdr[7]]);
    let more = frag & 0x2000 != 0;
    let offset = (frag & 0x1fff) << 3;
    let fragment = (more || offset != 0).then_some(Fragment {
        id: u32::from(u16::from_be_bytes([hdr[4], hdr[5]])),
        offset,
        more,
    });
    let mut proto = hdr[9];
    let mut hlen = ihl;
    // An authentication header sits between IPv4 and the transport; walk it so the
    // transport is found (only in unfragmented or first-fragment datagrams).
    if proto == 51 && offset == 0 {
        let len = usize::from(*d.get(ihl + 1).ok_or(DecodeError::TruncatedIpv4Ext)?);
        let len = (len + 2) * 4;
        if end < ihl + len {
            return Err(DecodeError::TruncatedIpv4Ext);
        }
        proto = *d.get(ihl).ok_or(DecodeError::TruncatedIpv4Ext)?;
        hlen = ihl + len;
    }
    let (ip_header, rest) = d.split_at_checked(hlen).unwrap_or_default();
    p.l3 = L3::Ipv4;
    p.src = IpAddr::V4(Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]));
    p.dst = IpAddr::V4(Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]));
    p.fragment = fragment;
    p.ip_header = ip_header;
    p.ip_payload = rest.get(..end - hlen).unwrap_or_default();
    transport(p, proto)
}

#[inline]
fn ipv6<'a>(d: &'a [u8], p: &mut Packet<'a>) -> Result<(), DecodeError> {
    let hdr: &[u8; 40] = d
        .get(..40)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::TruncatedIpv6)?;
    if hdr[0] >> 4 != 6 {
        return Err(DecodeError::BadIpVersion);
    }
    let plen = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
    // Zero payload length means a jumbogram or an offloaded capture: use what was captured.
    let end = if plen == 0 {
        d.len()
    } else {
        (40 + plen).min(d.len())
    };
    let body = d.get(..end).unwrap_or_default();
    let mut nh = hdr[6];
    let mut at = 40usize;
    let mut fragment = None;
    let mut ext = 0usize;
    loop {
        let len = match nh {
            0 | 43 | 60 | 135 => {
                (usize::from(*body.get(at + 1).ok_or(DecodeError::TruncatedIpv6Ext)?) + 1) * 8
            }
            51 => (usize::from(*body.get(at + 1).ok_or(DecodeError::TruncatedIpv6Ext)?) + 2) * 4,
            44 => 8,
            _ => break,
        };
        ext += 1;
        if ext > MAX_IPV6_EXT {
            return Err(DecodeError::TooManyIpv6Ext);
        }
        if body.len() < at + len {
            return Err(DecodeError::TruncatedIpv6Ext);
        }
        let next = *body.get(at).ok_or(DecodeError::TruncatedIpv6Ext)?;
        if nh == 44 {
            let fo = be16(body, at + 2).ok_or(DecodeError::TruncatedIpv6Ext)?;
            let id = be32(body, at + 4).ok_or(DecodeError::TruncatedIpv6Ext)?;
            let (offset, more) = (fo & 0xfff8, fo & 1 != 0);
            // An atomic fragment (offset 0, no more fragments) is a whole packet (RFC 6946).
            if offset != 0 || more {
                fragment = Some(Fragment { id, offset, more });
            }
        }
        nh = next;
        at += len;
        if fragment.is_some_and(|f| f.offset != 0) {
            // Later headers of a non-first fragment are in the first fragment.
            break;
        }
    }
    let mut seg = [0u8; 16];
    seg.copy_from_slice(&hdr[8..24]);
    let src = Ipv6Addr::from(seg);
    seg.copy_from_slice(&hdr[24..40]);
    let dst = Ipv6Addr::from(seg);
    p.l3 = L3::Ipv6;
    p.src = IpAddr::V6(src);
    p.dst = IpAddr::V6(dst);
    p.fragment = fragment;
    p.ip_header = d.get(..at).unwrap_or_default();
    p.ip_payload = body.get(at..).unwrap_or_default();
    transport(p, nh)
}

/// Where the Fragment header sits in an IPv6 header chain (`Packet::ip_header` of a fragment):
/// its byte offset and its next-header value. Reassembly keeps the bytes before it (the
/// unfragmentable part) as the datagram's header and everything after it as fragment data.
pub fn ipv6_fragment_header(ip_header: &[u8]) -> Option<(usize, u8)> {
    let mut nh = *ip_header.get(6)?;
    let mut at = 40usize;
    for _ in 0..=MAX_IPV6_EXT {
        let len = match nh {
            0 | 43 | 60 | 135 => (usize::from(*ip_header.get(at + 1)?) + 1) * 8,
            51 => (usize::from(*ip_header.get(at + 1)?) + 2) * 4,
            44 => return Some((at, *ip_header.get(at)?)),
            _ => return None,
        };
        nh = *ip_header.get(at)?;
        at += len;
    }
    None
}

/// Fills the transport fields from `p.ip_payload`.
#[inline]
fn transport(p: &mut Packet<'_>, proto: u8) -> Result<(), DecodeError> {
    p.ip_proto = proto;
    let seg = p.ip_payload;
    let fragmented = p.fragment.is_some();
    if p.fragment.is_some_and(|f| f.offset != 0) {
        // Non-first fragments carry no transport header.
        return Ok(());
    }
    match proto {
        6 => {
            p.l4 = L4::Tcp;
            let Some(h) = seg.get(..20) else {
                return if fragmented {
                    Ok(())
                } else {
                    Err(DecodeError::TruncatedTcp)
                };
            };
            let doff = usize::from(h[12] >> 4) * 4;
            if doff < 20 {
                return Err(DecodeError::BadTcpOffset);
            }
            p.src_port = u16::from_be_bytes([h[0], h[1]]);
            p.dst_port = u16::from_be_bytes([h[2], h[3]]);
            p.tcp_seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            p.tcp_ack = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
            p.tcp_flags = h[13];
            p.tcp_window = u16::from_be_bytes([h[14], h[15]]);
            if !fragmented {
                p.payload = seg.get(doff..).ok_or(DecodeError::TruncatedTcp)?;
            }
        }
        17 => {
            p.l4 = L4::Udp;
            let Some(h) = seg.get(..8) else {
                return if fragmented {
                    Ok(())
                } else {
                    Err(DecodeError::TruncatedUdp)
                };
            };
            p.src_port = u16::from_be_bytes([h[0], h[1]]);
            p.dst_port = u16::from_be_bytes([h[2], h[3]]);
            if !fragmented {
                let ulen = usize::from(u16::from_be_bytes([h[4], h[5]]));
                // Zero is a jumbogram (RFC 2675) or an offloaded checksum capture.
                let end = match ulen {
                    0 => seg.len(),
                    1..8 => return Err(DecodeError::BadUdpLength),
                    n => n.min(seg.len()),
                };
                p.payload = seg.get(8..end).unwrap_or_default();
            }
        }
        1 | 58 => {
            p.l4 = L4::Icmp;
            if seg.len() < 4 && !fragmented {
                return Err(DecodeError::TruncatedIcmp);
            }
        }
        other => p.l4 = L4::Other(other),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small frame builder: headers are appended in order.
    #[derive(Default)]
    struct B(Vec<u8>);

    impl B {
        fn eth(mut self, et: u16) -> Self {
            self.0
                .extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
            self.0.extend_from_slice(&et.to_be_bytes());
            self
        }
        fn vlan(mut self, id: u16, et: u16) -> Self {
            self.0.extend_from_slice(&(0x2000 | id).to_be_bytes());
            self.0.extend_from_slice(&et.to_be_bytes());
            self
        }
        fn mpls(mut self, label: u32, bottom: bool) -> Self {
            let v = (label << 12) | (u32::from(bottom) << 8) | 64;
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        /// IPv4 header; `len` is the L4 length that follows.
        fn ipv4(mut self, proto: u8, len: usize, frag: u16, options: &[u8]) -> Self {
            let ihl = 20 + options.len();
            let total = (ihl + len) as u16;
            self.0.push(0x40 | (ihl / 4) as u8);
            self.0.push(0);
            self.0.extend_from_slice(&total.to_be_bytes());
            self.0.extend_from_slice(&[0x12, 0x34]);
            self.0.extend_from_slice(&frag.to_be_bytes());
            self.0
                .extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            self.0.extend_from_slice(options);
            self
        }
        fn ipv6(mut self, nh: u8, plen: usize) -> Self {
            self.0.extend_from_slice(&[0x60, 0, 0, 0]);
            self.0.extend_from_slice(&(plen as u16).to_be_bytes());
            self.0.extend_from_slice(&[nh, 64]);
            let mut a = [0u8; 16];
            a[0] = 0x20;
            a[1] = 0x01;
            a[15] = 1;
            self.0.extend_from_slice(&a);
            a[15] = 2;
            self.0.extend_from_slice(&a);
            self
        }
        fn udp(mut self, sp: u16, dp: u16, payload: &[u8]) -> Self {
            self.0.extend_from_slice(&sp.to_be_bytes());
            self.0.extend_from_slice(&dp.to_be_bytes());
            self.0
                .extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            self.0.extend_from_slice(&[0, 0]);
            self.0.extend_from_slice(payload);
            self
        }
        fn tcp(mut self, sp: u16, dp: u16, flags: u8, opts: &[u8], payload: &[u8]) -> Self {
            self.0.extend_from_slice(&sp.to_be_bytes());
            self.0.extend_from_slice(&dp.to_be_bytes());
            self.0.extend_from_slice(&1000u32.to_be_bytes());
            self.0.extend_from_slice(&2000u32.to_be_bytes());
            self.0.push((((20 + opts.len()) / 4) << 4) as u8);
            self.0.push(flags);
            self.0.extend_from_slice(&512u16.to_be_bytes());
            self.0.extend_from_slice(&[0, 0, 0, 0]);
            self.0.extend_from_slice(opts);
            self.0.extend_from_slice(payload);
            self
        }
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn ethernet_ipv4_udp_with_padding() {
        let f = B::default()
            .eth(0x0800)
            .ipv4(17, 11, 0, &[])
            .udp(53000, 53, b"abc")
            .raw(&[0; 10]) // Ethernet padding must not leak into the payload.
            .0;
        let p = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.l3, L3::Ipv4);
        assert_eq!(p.src, v4([10, 0, 0, 1]));
        assert_eq!(p.dst, v4([10, 0, 0, 2]));
        assert_eq!(p.l4, L4::Udp);
        assert_eq!(p.ip_proto, 17);
        assert_eq!((p.src_port, p.dst_port), (53000, 53));
        assert_eq!(p.payload, b"abc");
        assert_eq!(p.ip_payload.len(), 11);
        assert_eq!(p.ip_header.len(), 20);
        assert_eq!(p.fragment, None);
        assert_eq!(p.vlan, 0);
    }

    #[test]
    fn ipv4_options_and_tcp_fields() {
        let f = B::default()
            .ipv4(6, 24 + 2, 0, &[1, 1, 1, 0])
            .tcp(1234, 80, 0x12, &[1, 1, 1, 0], b"hi")
            .0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!(p.ip_header.len(), 24);
        assert_eq!(p.l4, L4::Tcp);
        assert_eq!((p.src_port, p.dst_port), (1234, 80));
        assert_eq!(p.tcp_flags, 0x12);
        assert_eq!((p.tcp_seq, p.tcp_ack, p.tcp_window), (1000, 2000, 512));
        assert_eq!(p.payload, b"hi");
    }

    #[test]
    fn vlan_qinq_and_limits() {
        let f = B::default()
            .eth(0x88a8)
            .vlan(100, 0x8100)
            .vlan(200, 0x0800)
            .ipv4(17, 8, 0, &[])
            .udp(1, 2, b"")
            .0;
        let p = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.vlan, 100);
        assert_eq!((p.src_port, p.dst_port), (1, 2));
        let mut b = B::default().eth(0x8100);
        for _ in 0..9 {
            b = b.vlan(5, 0x8100);
        }
        assert_eq!(
            decode(LinkType::Ethernet, &b.0),
            Err(DecodeError::TooManyVlans)
        );
        let f = B::default().eth(0x8100).raw(&[0, 5]).0;
        assert_eq!(
            decode(LinkType::Ethernet, &f),
            Err(DecodeError::TruncatedVlan)
        );
    }

    #[test]
    fn mpls_stacks() {
        let f = B::default()
            .eth(0x8847)
            .mpls(16, false)
            .mpls(17, true)
            .ipv6(17, 9)
            .udp(5, 6, b"x")
            .0;
        let p = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.l3, L3::Ipv6);
        assert_eq!(p.payload, b"x");
        // Pseudowire: control word then an inner Ethernet frame.
        let inner = B::default()
            .eth(0x0800)
            .ipv4(17, 8, 0, &[])
            .udp(7, 8, b"")
            .0;
        let f = B::default()
            .eth(0x8847)
            .mpls(16, true)
            .raw(&[0, 0, 0, 0])
            .raw(&inner)
            .0;
        let p = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!((p.src_port, p.dst_port), (7, 8));
        let mut b = B::default().eth(0x8847);
        for _ in 0..17 {
            b = b.mpls(1, false);
        }
        assert_eq!(
            decode(LinkType::Ethernet, &b.0),
            Err(DecodeError::TooManyMpls)
        );
        let f = B::default().eth(0x8847).mpls(1, true).raw(&[0x90]).0;
        assert_eq!(
            decode(LinkType::Ethernet, &f).unwrap().l3,
            L3::Other(0x8847)
        );
    }

    #[test]
    fn pppoe_session() {
        let f = B::default()
            .eth(0x8864)
            .raw(&[0x11, 0, 0, 1, 0, 30, 0, 0x21])
            .ipv4(17, 8, 0, &[])
            .udp(67, 68, b"")
            .0;
        let p = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!((p.src_port, p.dst_port), (67, 68));
        // Compressed one-byte protocol field.
        let f = B::default()
            .eth(0x8864)
            .raw(&[0x11, 0, 0, 1, 0, 29, 0x21])
            .ipv4(17, 8, 0, &[])
            .udp(67, 68, b"")
            .0;
        assert_eq!(decode(LinkType::Ethernet, &f).unwrap().dst_port, 68);
        let f = B::default()
            .eth(0x8864)
            .raw(&[0x11, 0, 0, 1, 0, 30, 0xc0, 0x21])
            .0;
        assert_eq!(
            decode(LinkType::Ethernet, &f).unwrap().l3,
            L3::Other(0x8864)
        );
    }

    #[test]
    fn non_ip_is_not_an_error() {
        let f = B::default().eth(0x0806).raw(&[0; 28]).0;
        let p = decode(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.l3, L3::Other(0x0806));
        assert_eq!(p.l4, L4::None);
        assert_eq!(p.src, v4([0, 0, 0, 0]));
        // 802.3 length field.
        let f = B::default().eth(46).raw(&[0xaa; 46]).0;
        assert_eq!(decode(LinkType::Ethernet, &f).unwrap().l3, L3::Other(46));
    }

    #[test]
    fn cooked_and_loopback_links() {
        let ip = B::default().ipv4(17, 8, 0, &[]).udp(1, 2, b"").0;
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LinuxSll, &sll).unwrap().dst_port, 2);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LinuxSll2, &sll2).unwrap().dst_port, 2);
        let ip6 = B::default().ipv6(17, 8).udp(3, 4, b"").0;
        for (link, hdr) in [
            (LinkType::Null, [2u8, 0, 0, 0]),
            (LinkType::Null, [0, 0, 0, 2]),
            (LinkType::Loop, [0, 0, 0, 2]),
        ] {
            let mut f = hdr.to_vec();
            f.extend_from_slice(&ip);
            assert_eq!(decode(link, &f).unwrap().l3, L3::Ipv4, "{link:?} {hdr:?}");
        }
        for af in [24u32, 28, 30] {
            let mut f = af.to_le_bytes().to_vec();
            f.extend_from_slice(&ip6);
            assert_eq!(decode(LinkType::Null, &f).unwrap().dst_port, 4);
            let mut f = af.to_be_bytes().to_vec();
            f.extend_from_slice(&ip6);
            assert_eq!(decode(LinkType::Loop, &f).unwrap().dst_port, 4);
        }
        let mut f = 7u32.to_le_bytes().to_vec();
        f.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::Null, &f), Err(DecodeError::UnknownFamily));
        assert_eq!(decode(LinkType::Ipv4, &ip).unwrap().l3, L3::Ipv4);
        assert_eq!(decode(LinkType::Ipv6, &ip6).unwrap().l3, L3::Ipv6);
        assert_eq!(
            decode(LinkType::Other(147), &ip),
            Err(DecodeError::UnsupportedLink)
        );
        assert_eq!(
            decode(LinkType::LinuxSll2, &sll2[..10]),
            Err(DecodeError::TruncatedLink)
        );
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment: ports parsed, payload empty, flagged.
        let f = B::default()
            .ipv4(17, 16, 0x2000, &[])
            .udp(9, 10, b"12345678")
            .0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!(
            p.fragment,
            Some(Fragment {
                id: 0x1234,
                offset: 0,
                more: true
            })
        );
        assert_eq!((p.src_port, p.dst_port), (9, 10));
        assert!(p.payload.is_empty());
        // Later fragment: no ports, no L4.
        let f = B::default().ipv4(17, 8, 0x0003, &[]).raw(&[1; 8]).0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!(
            p.fragment,
            Some(Fragment {
                id: 0x1234,
                offset: 24,
                more: false
            })
        );
        assert_eq!((p.l4, p.src_port, p.ip_proto), (L4::None, 0, 17));
        assert_eq!(p.ip_payload, &[1; 8]);
    }

    #[test]
    fn ipv6_extension_headers_and_fragments() {
        // hop-by-hop (8) + destination options (16) + UDP.
        let mut hbh = vec![60, 0, 1, 4, 0, 0, 0, 0];
        hbh.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let f = B::default().ipv6(0, 24 + 9).raw(&hbh).udp(11, 12, b"z").0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!(p.ip_proto, 17);
        assert_eq!(p.ip_header.len(), 64);
        assert_eq!(p.payload, b"z");
        assert_eq!(p.dst, "2001::2".parse::<IpAddr>().unwrap());
        // Fragment header, first fragment (M=1).
        let f = B::default()
            .ipv6(44, 8 + 8)
            .raw(&[17, 0, 0, 1, 0, 0, 0, 9])
            .udp(13, 14, b"")
            .0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!(
            p.fragment,
            Some(Fragment {
                id: 9,
                offset: 0,
                more: true
            })
        );
        assert_eq!((p.src_port, p.dst_port), (13, 14));
        // Non-first fragment.
        let f = B::default()
            .ipv6(44, 8 + 4)
            .raw(&[17, 0, 0, 0x10, 0, 0, 0, 9])
            .raw(&[1, 2, 3, 4])
            .0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!(p.fragment.map(|f| (f.offset, f.more)), Some((16, false)));
        assert_eq!((p.l4, p.ip_proto), (L4::None, 17));
        // AH then TCP.
        let mut ah = vec![6, 4, 0, 0];
        ah.extend_from_slice(&[0; 20]);
        let f = B::default()
            .ipv6(51, 24 + 20)
            .raw(&ah)
            .tcp(1, 2, 2, &[], b"")
            .0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!((p.l4, p.ip_header.len()), (L4::Tcp, 64));
        // Truncated and too many extension headers.
        let f = B::default().ipv6(0, 8).raw(&[17, 2, 0, 0, 0, 0, 0, 0]).0;
        assert_eq!(
            decode(LinkType::Raw, &f),
            Err(DecodeError::TruncatedIpv6Ext)
        );
        let mut b = B::default().ipv6(60, 17 * 8);
        for _ in 0..17 {
            b = b.raw(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(
            decode(LinkType::Raw, &b.0),
            Err(DecodeError::TooManyIpv6Ext)
        );
        // No next header.
        let f = B::default().ipv6(59, 0).0;
        assert_eq!(decode(LinkType::Raw, &f).unwrap().l4, L4::Other(59));
    }

    #[test]
    fn ipv4_authentication_header_and_ipv6_atomic_fragment() {
        let mut ah = vec![17, 4, 0, 0];
        ah.extend_from_slice(&[0; 20]);
        let f = B::default()
            .ipv4(51, 24 + 9, 0, &[])
            .raw(&ah)
            .udp(500, 4500, b"q")
            .0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!((p.ip_proto, p.l4, p.ip_header.len()), (17, L4::Udp, 44));
        assert_eq!((p.dst_port, p.payload), (4500, &b"q"[..]));
        assert_eq!(
            decode(LinkType::Raw, &f[..30]),
            Err(DecodeError::TruncatedIpv4Ext)
        );
        // Offset 0 without more fragments is a whole packet (RFC 6946).
        let f = B::default()
            .ipv6(44, 8 + 8)
            .raw(&[17, 0, 0, 0, 0, 0, 0, 9])
            .udp(13, 14, b"")
            .0;
        let p = decode(LinkType::Raw, &f).unwrap();
        assert_eq!((p.fragment, p.dst_port, p.ip_header.len()), (None, 14, 48));
    }

    #[test]
    fn icmp_both_versions() {
        let f = B::default()
            .ipv4(1, 8, 0, &[])
            .raw(&[8, 0, 0, 0, 0, 1, 0, 1])
            .0;
        assert_eq!(decode(LinkType::Raw, &f).unwrap().l4, L4::Icmp);
        let f = B::default().ipv6(58, 8).raw(&[128, 0, 0, 0, 0, 1, 0, 1]).0;
        assert_eq!(decode(LinkType::Raw, &f).unwrap().l4, L4::Icmp);
        let f = B::default().ipv6(58, 2).raw(&[128, 0]).0;
        assert_eq!(decode(LinkType::Raw, &f), Err(DecodeError::TruncatedIcmp));
    }

    #[test]
    fn malformed_headers_have_reasons() {
        let good = B::default()
            .eth(0x0800)
            .ipv4(6, 20, 0, &[])
            .tcp(1, 2, 0, &[], b"")
            .0;
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x44;
        let mut bad_total = good.clone();
        bad_total[16..18].copy_from_slice(&10u16.to_be_bytes());
        let mut bad_doff = good.clone();
        bad_doff[14 + 20 + 12] = 0x40;
        let mut bad_ver = good.clone();
        bad_ver[14] = 0x65;
        let cases: [(&[u8], &str); 7] = [
            (&good[..10], "truncated link header"),
            (&good[..30], "truncated ipv4 header"),
            (&bad_ihl, "bad ipv4 header length"),
            (&bad_total, "bad ipv4 total length"),
            (&good[..40], "truncated tcp header"),
            (&bad_doff, "bad tcp data offset"),
            (&bad_ver, "bad ip version"),
        ];
        for (frame, reason) in cases {
            let e = decode(LinkType::Ethernet, frame).unwrap_err();
            assert_eq!(e.reason(), reason);
            assert_eq!(e.to_string(), reason);
        }
        let mut bad_udp = B::default().ipv4(17, 8, 0, &[]).udp(1, 2, b"").0;
        bad_udp[24..26].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            decode(LinkType::Raw, &bad_udp),
            Err(DecodeError::BadUdpLength)
        );
        assert_eq!(decode_ip(&[]), Err(DecodeError::TruncatedIpv4));
        assert_eq!(decode_ip(&[0x50; 40]), Err(DecodeError::BadIpVersion));
    }

    #[test]
    fn tso_zero_lengths_use_captured_bytes() {
        let mut f = B::default().ipv4(17, 11, 0, &[]).udp(1, 2, b"abc").0;
        f[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(decode(LinkType::Raw, &f).unwrap().payload, b"abc");
        let f = B::default().ipv6(17, 0).udp(1, 2, b"abc").0;
        assert_eq!(decode(LinkType::Raw, &f).unwrap().payload, b"abc");
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        const LINKS: [LinkType; 9] = [
            LinkType::Ethernet,
            LinkType::Null,
            LinkType::Loop,
            LinkType::Raw,
            LinkType::Ipv4,
            LinkType::Ipv6,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Other(147),
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]
            #[test]
            fn never_panics(link in 0usize..LINKS.len(), bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
                let r = decode(LINKS[link], &bytes);
                if let Ok(p) = r {
                    prop_assert!(p.ip_header.len() + p.ip_payload.len() <= bytes.len());
                    prop_assert!(p.payload.len() <= p.ip_payload.len());
                }
            }

            #[test]
            fn never_panics_near_valid(nibble in prop_oneof![Just(0x45u8), Just(0x60u8)], et in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), Just(0x8847), Just(0x8864)], bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
                let mut f = vec![0u8; 12];
                f.extend_from_slice(&et.to_be_bytes());
                f.push(nibble);
                f.extend_from_slice(&bytes);
                let r = decode(LinkType::Ethernet, &f);
                if let Ok(p) = r {
                    prop_assert!(p.payload.len() <= f.len());
                }
            }
        }
    }

    #[test]
    fn ipv6_fragment_header_is_found_behind_other_extension_headers() {
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[6] = 0; // hop-by-hop first
        h.extend_from_slice(&[44, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop, next = fragment
        h.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]); // fragment, next = UDP
        assert_eq!(ipv6_fragment_header(&h), Some((48, 17)));
        h[6] = 17;
        assert_eq!(ipv6_fragment_header(&h), None);
        assert_eq!(ipv6_fragment_header(&h[..3]), None);
    }

    #[test]
    fn detach_then_attach_to_a_copy_gives_the_same_packet() {
        let udp4 = B::default()
            .eth(0x0800)
            .ipv4(17, 11, 0, &[])
            .udp(53000, 53, b"abc")
            .raw(&[0; 10])
            .0;
        let tcp6 = B::default()
            .eth(0x86dd)
            .ipv6(6, 24)
            .tcp(40000, 53, 0x18, &[], b"defg")
            .0;
        let frames: [Vec<u8>; 2] = [udp4.clone(), tcp6];
        for frame in frames {
            let p = decode(LinkType::Ethernet, &frame).expect("decodes");
            let d = p.detach(&frame).expect("slices lie in the frame");
            let copy = frame.clone();
            assert_eq!(
                d.attach(&copy),
                decode(LinkType::Ethernet, &copy).expect("decodes")
            );
            // A shorter buffer never panics, its slices are just cut.
            assert!(d.attach(&copy[..10]).payload.is_empty());
        }
        let other = [0u8; 64];
        let p = decode(LinkType::Ethernet, &udp4).map(|p| p.detach(&other));
        assert_eq!(p, Ok(None));
    }
}
