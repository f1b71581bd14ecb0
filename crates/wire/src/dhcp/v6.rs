//! Zero-copy DHCPv6 parser (RFC 8415): client/server and relay message headers, and the
//! options wirelens summarizes (client and server DUID, IA_NA/IA_TA addresses, IA_PD
//! prefixes, client FQDN, relay message).
//!
//! Relay-forward/relay-reply messages carry the relayed message in an option; [`Dhcpv6::innermost`]
//! follows that nesting at most [`MAX_RELAY_DEPTH`] times. Every length is checked; an option
//! that runs past the message sets [`Dhcpv6::options_truncated`]. No allocation, no panic, no
//! semantic validation; unknown message types and option codes stay numbers.

use std::net::Ipv6Addr;

use super::DhcpError;

/// UDP port of DHCPv6 clients.
pub const CLIENT_PORT: u16 = 546;
/// UDP port of DHCPv6 servers and relay agents.
pub const SERVER_PORT: u16 = 547;
/// Most relay layers followed (RFC 8415 limits relays to 8 hops; a margin for odd paths).
pub const MAX_RELAY_DEPTH: usize = 32;
/// Longest FQDN text [`fqdn_text`] writes (a DNS name is at most 255 bytes on the wire).
pub const FQDN_TEXT_MAX: usize = 255;

/// DHCPv6 message types (RFC 8415 §7.3); other values stay numbers.
pub mod msg {
    pub const SOLICIT: u8 = 1;
    pub const ADVERTISE: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const CONFIRM: u8 = 4;
    pub const RENEW: u8 = 5;
    pub const REBIND: u8 = 6;
    pub const REPLY: u8 = 7;
    pub const RELEASE: u8 = 8;
    pub const DECLINE: u8 = 9;
    pub const RECONFIGURE: u8 = 10;
    pub const INFORMATION_REQUEST: u8 = 11;
    pub const RELAY_FORW: u8 = 12;
    pub const RELAY_REPL: u8 = 13;
}

/// Option codes read by [`parse`].
pub mod opt {
    pub const CLIENT_ID: u16 = 1;
    pub const SERVER_ID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const RELAY_MSG: u16 = 9;
    pub const IA_PD: u16 = 25;
    pub const IAPREFIX: u16 = 26;
    pub const CLIENT_FQDN: u16 = 39;
}

/// One DHCPv6 option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt6<'a> {
    pub code: u16,
    pub data: &'a [u8],
}

/// A leased address or delegated prefix found in an IA option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// IA Address option inside IA_NA or IA_TA.
    Address {
        addr: Ipv6Addr,
        preferred: u32,
        valid: u32,
    },
    /// IA Prefix option inside IA_PD.
    Prefix {
        prefix: Ipv6Addr,
        len: u8,
        preferred: u32,
        valid: u32,
    },
}

/// A DHCPv6 message borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dhcpv6<'a> {
    /// Message type (1-13 defined).
    pub msg_type: u8,
    /// 24-bit transaction id (0 for relay messages).
    pub xid: u32,
    /// Relay messages: hop count, link address and peer address.
    pub relay: Option<RelayHeader>,
    /// Option bytes after the header.
    pub options: &'a [u8],
    /// Client Identifier option data (the client's DUID).
    pub client_id: Option<&'a [u8]>,
    /// Server Identifier option data (the server's DUID).
    pub server_id: Option<&'a [u8]>,
    /// Client FQDN option: the name in DNS wire format (after the flags byte).
    pub fqdn: Option<&'a [u8]>,
    /// Relay Message option data (relay messages only).
    pub relay_msg: Option<&'a [u8]>,
    /// Whether the message carries an IA_NA, IA_TA or IA_PD option.
    pub has_ia: bool,
    /// An option's length ran past the end of the message (what came before is kept).
    pub options_truncated: bool,
}

/// The extra header of relay-forward and relay-reply messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayHeader {
    pub hop_count: u8,
    pub link_addr: Ipv6Addr,
    pub peer_addr: Ipv6Addr,
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[inline]
fn ip6(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let a: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(a))
}

/// Parses one DHCPv6 message (the UDP payload, or a relayed message).
pub fn parse(b: &[u8]) -> Result<Dhcpv6<'_>, DhcpError> {
    let (&msg_type, _) = b.split_first().ok_or(DhcpError::ShortV6(0))?;
    let (xid, relay, options) = if msg_type == msg::RELAY_FORW || msg_type == msg::RELAY_REPL {
        let (Some(link_addr), Some(peer_addr)) = (ip6(b, 2), ip6(b, 18)) else {
            return Err(DhcpError::ShortV6(b.len()));
        };
        let hop_count = b.get(1).copied().unwrap_or(0);
        (
            0,
            Some(RelayHeader {
                hop_count,
                link_addr,
                peer_addr,
            }),
            b.get(34..).unwrap_or_default(),
        )
    } else {
        let h = b.get(..4).ok_or(DhcpError::ShortV6(b.len()))?;
        let xid = u32::from_be_bytes([0, h[1], h[2], h[3]]);
        (xid, None, b.get(4..).unwrap_or_default())
    };
    let mut m = Dhcpv6 {
        msg_type,
        xid,
        relay,
        options,
        client_id: None,
        server_id: None,
        fqdn: None,
        relay_msg: None,
        has_ia: false,
        options_truncated: false,
    };
    let mut it = m.options();
    for o in it.by_ref() {
        match o.code {
            opt::CLIENT_ID => {
                m.client_id.get_or_insert(o.data);
            }
            opt::SERVER_ID => {
                m.server_id.get_or_insert(o.data);
            }
            opt::CLIENT_FQDN if !o.data.is_empty() => {
                m.fqdn.get_or_insert(&o.data[1..]);
            }
            opt::RELAY_MSG => {
                m.relay_msg.get_or_insert(o.data);
            }
            opt::IA_NA | opt::IA_TA | opt::IA_PD => m.has_ia = true,
            _ => {}
        }
    }
    m.options_truncated = it.truncated;
    Ok(m)
}

impl<'a> Dhcpv6<'a> {
    /// The top-level options in wire order.
    pub fn options(&self) -> Options6<'a> {
        Options6 {
            rest: self.options,
            truncated: false,
        }
    }

    /// Every address and prefix in the message's IA_NA, IA_TA and IA_PD options.
    pub fn ia_addresses(&self) -> Leases<'a> {
        Leases {
            outer: self.options(),
            inner: None,
        }
    }

    /// The message a relay chain carries, and how many relay layers wrap it (0 for a message
    /// sent directly). A relay whose relayed message is missing or unreadable is returned
    /// itself; nesting beyond [`MAX_RELAY_DEPTH`] is an error.
    pub fn innermost(&self) -> Result<(Dhcpv6<'a>, usize), DhcpError> {
        let mut cur = *self;
        for depth in 0..=MAX_RELAY_DEPTH {
            let Some(inner) = cur.relay_msg.filter(|_| cur.relay.is_some()) else {
                return Ok((cur, depth));
            };
            match parse(inner) {
                Ok(m) => cur = m,
                Err(_) => return Ok((cur, depth)),
            }
        }
        Err(DhcpError::RelayTooDeep)
    }

    /// Whether this is a relay-forward or relay-reply message.
    pub fn is_relay(&self) -> bool {
        self.relay.is_some()
    }
}

/// Iterator over DHCPv6 options (2-byte code, 2-byte length).
#[derive(Debug, Clone)]
pub struct Options6<'a> {
    rest: &'a [u8],
    /// Set when an option ran past the end of the data.
    pub truncated: bool,
}

impl<'a> Iterator for Options6<'a> {
    type Item = Opt6<'a>;

    fn next(&mut self) -> Option<Opt6<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (Some(code), Some(len)) = (be16(self.rest, 0), be16(self.rest, 2)) else {
            self.truncated = true;
            self.rest = &[];
            return None;
        };
        let end = 4 + usize::from(len);
        let Some(data) = self.rest.get(4..end) else {
            self.truncated = true;
            self.rest = &[];
            return None;
        };
        self.rest = &self.rest[end..];
        Some(Opt6 { code, data })
    }
}

/// Iterator over the leases in a message's IA options (see [`Dhcpv6::ia_addresses`]).
#[derive(Debug, Clone)]
pub struct Leases<'a> {
    outer: Options6<'a>,
    inner: Option<Options6<'a>>,
}

impl Iterator for Leases<'_> {
    type Item = Lease;

    fn next(&mut self) -> Option<Lease> {
        // Bounded: both iterators consume at least 4 bytes per step.
        loop {
            if let Some(inner) = &mut self.inner {
                match inner.next() {
                    Some(o) if o.code == opt::IAADDR => {
                        if let (Some(addr), Some(preferred), Some(valid)) =
                            (ip6(o.data, 0), be32(o.data, 16), be32(o.data, 20))
                        {
                            return Some(Lease::Address {
                                addr,
                                preferred,
                                valid,
                            });
                        }
                    }
                    Some(o) if o.code == opt::IAPREFIX => {
                        if let (Some(preferred), Some(valid), Some(&len), Some(prefix)) = (
                            be32(o.data, 0),
                            be32(o.data, 4),
                            o.data.get(8),
                            ip6(o.data, 9),
                        ) {
                            return Some(Lease::Prefix {
                                prefix,
                                len,
                                preferred,
                                valid,
                            });
                        }
                    }
                    Some(_) => {}
                    None => self.inner = None,
                }
                continue;
            }
            let o = self.outer.next()?;
            // IA_NA and IA_PD: IAID, T1, T2 (12 bytes); IA_TA: IAID (4 bytes).
            let skip = match o.code {
                opt::IA_NA | opt::IA_PD => 12,
                opt::IA_TA => 4,
                _ => continue,
            };
            if let Some(rest) = o.data.get(skip..) {
                self.inner = Some(Options6 {
                    rest,
                    truncated: false,
                });
            }
        }
    }
}

/// Writes a DNS wire-format name (as in the Client FQDN option) as dotted text into `out`,
/// without a trailing dot; returns the text length. `None` when a label runs past the data or
/// the text would not fit. A name without its final root label (a partial name) is accepted.
pub fn fqdn_text(name: &[u8], out: &mut [u8; FQDN_TEXT_MAX]) -> Option<usize> {
    let mut at = 0usize;
    let mut n = 0usize;
    // Each label consumes at least one byte of `name`, so this ends.
    while let Some(&len) = name.get(at) {
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        let label = name.get(at + 1..at + 1 + usize::from(len))?;
        if n > 0 {
            *out.get_mut(n)? = b'.';
            n += 1;
        }
        out.get_mut(n..n + label.len())?.copy_from_slice(label);
        n += label.len();
        at += 1 + usize::from(len);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(code: u16, data: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    const DUID_C: [u8; 14] = [
        0, 1, 0, 1, 0x1c, 0x39, 0xcf, 0x88, 8, 0, 0x27, 0xfe, 0x8f, 0x95,
    ];
    const DUID_S: [u8; 14] = [
        0, 1, 0, 1, 0x1c, 0x38, 0x25, 0xe8, 8, 0, 0x27, 0xd4, 0x10, 0xbb,
    ];

    fn reply() -> Vec<u8> {
        let mut m = vec![msg::REPLY, 0x49, 0x17, 0x4e];
        m.extend(opt(opt::CLIENT_ID, &DUID_C));
        m.extend(opt(opt::SERVER_ID, &DUID_S));
        let mut iaaddr = "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        iaaddr.extend_from_slice(&3600u32.to_be_bytes());
        iaaddr.extend_from_slice(&7200u32.to_be_bytes());
        let mut ia = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        ia.extend(opt(opt::IAADDR, &iaaddr));
        m.extend(opt(opt::IA_NA, &ia));
        let mut pfx = 100u32.to_be_bytes().to_vec();
        pfx.extend_from_slice(&200u32.to_be_bytes());
        pfx.push(56);
        pfx.extend_from_slice(&"2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets());
        let mut pd = vec![0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        pd.extend(opt(opt::IAPREFIX, &pfx));
        m.extend(opt(opt::IA_PD, &pd));
        m.extend(opt(opt::CLIENT_FQDN, b"\x01\x04host\x07example\x00"));
        m
    }

    #[test]
    fn reads_ids_leases_and_fqdn() {
        let b = reply();
        let m = parse(&b).expect("parses");
        assert_eq!(m.msg_type, msg::REPLY);
        assert_eq!(m.xid, 0x49174e);
        assert_eq!(m.client_id, Some(&DUID_C[..]));
        assert_eq!(m.server_id, Some(&DUID_S[..]));
        assert!(m.has_ia);
        assert!(!m.options_truncated);
        let leases: Vec<Lease> = m.ia_addresses().collect();
        assert_eq!(
            leases,
            vec![
                Lease::Address {
                    addr: "2001:db8::5".parse().unwrap(),
                    preferred: 3600,
                    valid: 7200
                },
                Lease::Prefix {
                    prefix: "2001:db8:1::".parse().unwrap(),
                    len: 56,
                    preferred: 100,
                    valid: 200
                }
            ]
        );
        let mut buf = [0u8; FQDN_TEXT_MAX];
        let n = fqdn_text(m.fqdn.unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"host.example");
        assert_eq!(m.innermost().unwrap().1, 0);
    }

    #[test]
    fn relay_nesting_is_followed_and_bounded() {
        let inner = reply();
        let mut relay = vec![msg::RELAY_FORW, 0];
        relay.extend_from_slice(&[0u8; 32]);
        relay.extend(opt(opt::RELAY_MSG, &inner));
        let mut outer = vec![msg::RELAY_FORW, 1];
        outer.extend_from_slice(&[0u8; 32]);
        outer.extend(opt(opt::RELAY_MSG, &relay));
        let m = parse(&outer).expect("parses");
        assert!(m.is_relay());
        assert_eq!(m.relay.unwrap().hop_count, 1);
        let (inner_msg, depth) = m.innermost().expect("within bound");
        assert_eq!(depth, 2);
        assert_eq!(inner_msg.msg_type, msg::REPLY);
        assert_eq!(inner_msg.xid, 0x49174e);

        let mut deep = inner.clone();
        for _ in 0..=MAX_RELAY_DEPTH {
            let mut r = vec![msg::RELAY_REPL, 0];
            r.extend_from_slice(&[0u8; 32]);
            r.extend(opt(opt::RELAY_MSG, &deep));
            deep = r;
        }
        let m = parse(&deep).expect("parses");
        assert_eq!(m.innermost(), Err(DhcpError::RelayTooDeep));
    }

    #[test]
    fn truncation_is_flagged_not_fatal() {
        let b = reply();
        for cut in 0..b.len() {
            match parse(&b[..cut]) {
                Ok(m) => {
                    assert_eq!(m.msg_type, msg::REPLY);
                    let _ = m.ia_addresses().count();
                }
                Err(e) => assert!(cut < 4, "{e} at {cut}"),
            }
        }
        let m = parse(&b[..10]).expect("parses");
        assert!(m.options_truncated);
        assert_eq!(m.client_id, None);
        assert_eq!(parse(&[msg::RELAY_FORW; 20]), Err(DhcpError::ShortV6(20)));
    }

    #[test]
    fn fqdn_rejects_overruns_and_pointers() {
        let mut buf = [0u8; FQDN_TEXT_MAX];
        assert_eq!(fqdn_text(b"\x05ab", &mut buf), None);
        assert_eq!(fqdn_text(b"\xc0\x0c", &mut buf), None);
        assert_eq!(fqdn_text(b"\x01a\x01b", &mut buf), Some(3));
        let long = [63u8; 64 * 5];
        let mut name = Vec::new();
        for chunk in long.chunks(64) {
            name.push(63);
            name.extend_from_slice(&chunk[..63]);
        }
        assert_eq!(fqdn_text(&name, &mut buf), None);
    }
}
