//! Zero-copy DHCPv4 parser (BOOTP header, magic cookie, options with RFC 2131 option
//! overload); DHCPv6 lives in [`v6`].
//!
//! [`parse`] reads the fixed 236-byte BOOTP header and, after the magic cookie, walks the
//! options once to pick out the ones wirelens summarizes (message type, host name, requested
//! address, server identifier, lease time, client identifier, parameter request list, relay
//! agent information). Every length is checked; an option that runs past its area sets
//! [`Dhcpv4::options_truncated`] and keeps what was read before it. It never allocates and
//! never panics. It is not a DHCP client or server: it validates no semantics and does not
//! join options split across occurrences (RFC 3396); the first occurrence of an option wins.

pub mod v6;

use std::net::Ipv4Addr;

/// UDP port of DHCPv4 servers and relay agents.
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCPv4 clients.
pub const CLIENT_PORT: u16 = 68;
/// Length of the fixed BOOTP header (up to and including `file`).
pub const HEADER_LEN: usize = 236;
/// The magic cookie that starts the DHCP options (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Option codes read by [`parse`].
pub mod opt {
    /// Padding (a single byte, no length).
    pub const PAD: u8 = 0;
    /// Host name (RFC 2132 §3.14).
    pub const HOSTNAME: u8 = 12;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time, seconds.
    pub const LEASE_TIME: u8 = 51;
    /// Option overload: 1 = `file` holds options, 2 = `sname`, 3 = both.
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAM_LIST: u8 = 55;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// Relay agent information (RFC 3046).
    pub const RELAY_AGENT: u8 = 82;
    /// End of options.
    pub const END: u8 = 255;
}

/// DHCPv4 message types (option 53, RFC 2132 §9.6 and RFC 4388); other values stay numbers.
pub mod msg {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const DECLINE: u8 = 4;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
    pub const RELEASE: u8 = 7;
    pub const INFORM: u8 = 8;
}

/// Why a DHCP message could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DhcpError {
    /// The datagram is shorter than the fixed BOOTP header.
    #[error("message of {0} bytes is shorter than the 236-byte bootp header")]
    ShortBootp(usize),
    /// The DHCPv6 message is shorter than its 4-byte (or 34-byte relay) header.
    #[error("message of {0} bytes is shorter than its dhcpv6 header")]
    ShortV6(usize),
    /// Relay messages nest deeper than [`v6::MAX_RELAY_DEPTH`].
    #[error("relay messages nest too deep")]
    RelayTooDeep,
}

impl DhcpError {
    /// A stable, lower-case description, suitable as a counter label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ShortBootp(_) => "short bootp header",
            Self::ShortV6(_) => "short dhcpv6 header",
            Self::RelayTooDeep => "dhcpv6 relay nesting too deep",
        }
    }
}

/// One option: its code and its data (the bytes after the length byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt<'a> {
    pub code: u8,
    pub data: &'a [u8],
}

/// A DHCPv4 (or plain BOOTP) message borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dhcpv4<'a> {
    /// 1 = BOOTREQUEST (client to server), 2 = BOOTREPLY.
    pub op: u8,
    /// Hardware address type (1 = Ethernet).
    pub htype: u8,
    /// Hardware address length as sent (may exceed 16; see [`Dhcpv4::client_hw`]).
    pub hlen: u8,
    pub hops: u8,
    /// Transaction id chosen by the client.
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    /// Client address (when the client already has one).
    pub ciaddr: Ipv4Addr,
    /// "Your" address: the address the server offers or assigns.
    pub yiaddr: Ipv4Addr,
    /// Next server address.
    pub siaddr: Ipv4Addr,
    /// Relay agent address.
    pub giaddr: Ipv4Addr,
    /// Client hardware address field (16 bytes, `hlen` of them meaningful).
    pub chaddr: [u8; 16],
    /// Server host name field (64 bytes), or options when overloaded.
    pub sname: &'a [u8],
    /// Boot file name field (128 bytes), or options when overloaded.
    pub file: &'a [u8],
    /// Option bytes after the magic cookie; empty for plain BOOTP.
    pub options: &'a [u8],
    /// The magic cookie was present (a DHCP message rather than plain BOOTP).
    pub cookie: bool,
    /// Option 53, the DHCP message type.
    pub msg_type: Option<u8>,
    /// Option 12, the client's host name (raw bytes, not validated).
    pub hostname: Option<&'a [u8]>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 61 data (type byte then identifier).
    pub client_id: Option<&'a [u8]>,
    /// Option 55 data (one code per byte).
    pub param_list: Option<&'a [u8]>,
    /// Option 82 data (sub-options, not decoded).
    pub relay_agent: Option<&'a [u8]>,
    /// Option 52 value (0 when absent).
    pub overload: u8,
    /// An option's length ran past the end of its area (what came before is kept).
    pub options_truncated: bool,
}

#[inline]
fn ip4(b: &[u8], at: usize) -> Ipv4Addr {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    Ipv4Addr::from(a)
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

/// Parses a DHCPv4/BOOTP message (the UDP payload).
pub fn parse(b: &[u8]) -> Result<Dhcpv4<'_>, DhcpError> {
    if b.len() < HEADER_LEN {
        return Err(DhcpError::ShortBootp(b.len()));
    }
    let mut chaddr = [0u8; 16];
    if let Some(s) = b.get(28..44) {
        chaddr.copy_from_slice(s);
    }
    let cookie = b.get(HEADER_LEN..HEADER_LEN + 4) == Some(&MAGIC_COOKIE[..]);
    let options = if cookie {
        b.get(HEADER_LEN + 4..).unwrap_or_default()
    } else {
        &[]
    };
    let mut m = Dhcpv4 {
        op: b[0],
        htype: b[1],
        hlen: b[2],
        hops: b[3],
        xid: be32(b, 4),
        secs: be16(b, 8),
        flags: be16(b, 10),
        ciaddr: ip4(b, 12),
        yiaddr: ip4(b, 16),
        siaddr: ip4(b, 20),
        giaddr: ip4(b, 24),
        chaddr,
        sname: b.get(44..108).unwrap_or_default(),
        file: b.get(108..236).unwrap_or_default(),
        options,
        cookie,
        msg_type: None,
        hostname: None,
        requested_ip: None,
        server_id: None,
        lease_time: None,
        client_id: None,
        param_list: None,
        relay_agent: None,
        overload: 0,
        options_truncated: false,
    };
    if cookie {
        let mut it = m.options();
        for o in it.by_ref() {
            m.note(o);
        }
        m.options_truncated = it.truncated;
    }
    Ok(m)
}

impl<'a> Dhcpv4<'a> {
    /// Records an option in the summary fields (first occurrence wins).
    fn note(&mut self, o: Opt<'a>) {
        match o.code {
            opt::MESSAGE_TYPE if self.msg_type.is_none() => {
                self.msg_type = o.data.first().copied();
            }
            opt::HOSTNAME if self.hostname.is_none() && !o.data.is_empty() => {
                self.hostname = Some(o.data);
            }
            opt::REQUESTED_IP if o.data.len() == 4 => {
                self.requested_ip.get_or_insert(ip4(o.data, 0));
            }
            opt::SERVER_ID if o.data.len() == 4 => {
                self.server_id.get_or_insert(ip4(o.data, 0));
            }
            opt::LEASE_TIME if o.data.len() == 4 => {
                self.lease_time.get_or_insert(be32(o.data, 0));
            }
            opt::CLIENT_ID => {
                self.client_id.get_or_insert(o.data);
            }
            opt::PARAM_LIST => {
                self.param_list.get_or_insert(o.data);
            }
            opt::RELAY_AGENT => {
                self.relay_agent.get_or_insert(o.data);
            }
            opt::OVERLOAD if self.overload == 0 => {
                self.overload = o.data.first().copied().unwrap_or(0) & 3;
            }
            _ => {}
        }
    }

    /// Every option in wire order: the options field, then `file` and `sname` when option 52
    /// says they hold options (RFC 2131 §4.1 order). Pads are skipped; each area ends at its
    /// End option. Empty for plain BOOTP.
    pub fn options(&self) -> Options<'a> {
        Options {
            area: if self.cookie { self.options } else { &[] },
            file: self.file,
            sname: self.sname,
            stage: 0,
            overload: 0,
            truncated: false,
        }
    }

    /// The meaningful part of `chaddr`: `hlen` bytes, at most 16.
    pub fn client_hw(&self) -> &[u8] {
        let n = usize::from(self.hlen).min(16);
        &self.chaddr[..n]
    }

    /// The first six bytes of `chaddr`, the client's Ethernet address.
    pub fn client_mac(&self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.chaddr[..6]);
        mac
    }
}

/// Iterator over DHCPv4 options (see [`Dhcpv4::options`]).
#[derive(Debug, Clone)]
pub struct Options<'a> {
    area: &'a [u8],
    file: &'a [u8],
    sname: &'a [u8],
    /// 0 = options field, 1 = file, 2 = sname, 3 = done.
    stage: u8,
    /// Option 52 as seen while walking the options field.
    overload: u8,
    /// Set when an option ran past the end of its area.
    pub truncated: bool,
}

impl<'a> Options<'a> {
    /// Moves to the next area the overload option names; false when none is left.
    fn next_area(&mut self) -> bool {
        loop {
            self.stage += 1;
            match self.stage {
                1 if self.overload & 1 != 0 => {
                    self.area = self.file;
                    return true;
                }
                2 if self.overload & 2 != 0 => {
                    self.area = self.sname;
                    return true;
                }
                1 | 2 => {}
                _ => {
                    self.stage = 3;
                    self.area = &[];
                    return false;
                }
            }
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Opt<'a>;

    fn next(&mut self) -> Option<Opt<'a>> {
        // Each step consumes at least one byte of a finite area, so this ends.
        loop {
            let Some((&code, rest)) = self.area.split_first() else {
                if self.next_area() {
                    continue;
                }
                return None;
            };
            match code {
                opt::PAD => self.area = rest,
                opt::END => {
                    self.area = &[];
                }
                _ => {
                    let Some((&len, rest)) = rest.split_first() else {
                        self.truncated = true;
                        self.area = &[];
                        continue;
                    };
                    let len = usize::from(len);
                    let Some(data) = rest.get(..len) else {
                        self.truncated = true;
                        self.area = &[];
                        continue;
                    };
                    self.area = &rest[len..];
                    // Only the options field may announce overload.
                    if code == opt::OVERLOAD && self.stage == 0 && self.overload == 0 {
                        self.overload = data.first().copied().unwrap_or(0) & 3;
                    }
                    return Some(Opt { code, data });
                }
            }
        }
    }
}

/// Exercises the v4 and v6 parsers and every accessor over arbitrary bytes (fuzzing entry).
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(m) = parse(data) {
        let n = m.options().count();
        assert!(n <= data.len());
        let _ = (m.client_hw(), m.client_mac());
    }
    if let Ok(m) = v6::parse(data) {
        let _ = m.options().count();
        let _ = m.ia_addresses().count();
        let mut buf = [0u8; v6::FQDN_TEXT_MAX];
        if let Some(f) = m.fqdn {
            let _ = v6::fqdn_text(f, &mut buf);
        }
        let _ = m.innermost();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BOOTP header with `chaddr` and `xid`, then the cookie and `opts`.
    pub(crate) fn message(op: u8, xid: u32, mac: [u8; 6], opts: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; HEADER_LEN];
        m[0] = op;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&xid.to_be_bytes());
        m[16..20].copy_from_slice(&[192, 168, 2, 205]);
        m[28..34].copy_from_slice(&mac);
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(opts);
        m
    }

    const MAC: [u8; 6] = [0x78, 0x4f, 0x43, 0x78, 0x19, 0xbc];

    #[test]
    fn reads_header_and_known_options() {
        let opts = [
            53, 1, 3, // REQUEST
            0, 0, // pads
            12, 4, b'h', b'o', b's', b't', //
            50, 4, 192, 168, 2, 205, //
            54, 4, 192, 168, 2, 1, //
            51, 4, 0, 0, 0x0e, 0x10, //
            61, 7, 1, 0x78, 0x4f, 0x43, 0x78, 0x19, 0xbc, //
            55, 3, 1, 3, 6, //
            82, 4, 1, 2, 0xaa, 0xbb, //
            255, 0, 0, 0,
        ];
        let b = message(1, 0x978a_1b11, MAC, &opts);
        let m = parse(&b).expect("parses");
        assert_eq!(m.op, 1);
        assert_eq!(m.xid, 0x978a_1b11);
        assert_eq!(m.client_hw(), &MAC[..]);
        assert_eq!(m.client_mac(), MAC);
        assert_eq!(m.yiaddr, Ipv4Addr::new(192, 168, 2, 205));
        assert!(m.cookie);
        assert_eq!(m.msg_type, Some(msg::REQUEST));
        assert_eq!(m.hostname, Some(&b"host"[..]));
        assert_eq!(m.requested_ip, Some(Ipv4Addr::new(192, 168, 2, 205)));
        assert_eq!(m.server_id, Some(Ipv4Addr::new(192, 168, 2, 1)));
        assert_eq!(m.lease_time, Some(3600));
        assert_eq!(m.client_id.map(<[u8]>::len), Some(7));
        assert_eq!(m.param_list, Some(&[1u8, 3, 6][..]));
        assert_eq!(m.relay_agent, Some(&[1u8, 2, 0xaa, 0xbb][..]));
        assert!(!m.options_truncated);
        assert_eq!(m.options().count(), 8);
    }

    #[test]
    fn plain_bootp_has_no_options() {
        let mut b = message(1, 7, MAC, &[53, 1, 1, 255]);
        b[HEADER_LEN] = 0;
        let m = parse(&b).expect("parses");
        assert!(!m.cookie);
        assert_eq!(m.msg_type, None);
        assert_eq!(m.options().count(), 0);
    }

    #[test]
    fn short_header_is_an_error() {
        assert_eq!(parse(&[0u8; 100]), Err(DhcpError::ShortBootp(100)));
        assert_eq!(
            DhcpError::ShortBootp(1).to_string(),
            "message of 1 bytes is shorter than the 236-byte bootp header"
        );
    }

    #[test]
    fn truncated_option_keeps_what_came_before() {
        let b = message(2, 1, MAC, &[53, 1, 2, 12, 9, b'a']);
        let m = parse(&b).expect("parses");
        assert_eq!(m.msg_type, Some(msg::OFFER));
        assert_eq!(m.hostname, None);
        assert!(m.options_truncated);
        // A length byte missing entirely.
        let b = message(2, 1, MAC, &[53, 1, 5, 12]);
        let m = parse(&b).expect("parses");
        assert_eq!(m.msg_type, Some(msg::ACK));
        assert!(m.options_truncated);
    }

    #[test]
    fn overloaded_file_and_sname_hold_options() {
        // Options field: overload both; file: message type; sname: host name.
        let mut b = message(1, 1, MAC, &[52, 1, 3, 255]);
        b[108..111].copy_from_slice(&[53, 1, 1]);
        b[111] = 255;
        b[44..50].copy_from_slice(&[12, 3, b'a', b'b', b'c', 255]);
        let m = parse(&b).expect("parses");
        assert_eq!(m.overload, 3);
        assert_eq!(m.msg_type, Some(msg::DISCOVER));
        assert_eq!(m.hostname, Some(&b"abc"[..]));
        // Without the overload option, the same fields are names, not options.
        let mut b2 = b.clone();
        b2[HEADER_LEN + 4..HEADER_LEN + 7].copy_from_slice(&[0, 0, 0]);
        let m = parse(&b2).expect("parses");
        assert_eq!(m.msg_type, None);
    }
}
