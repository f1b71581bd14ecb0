//! Payload signatures: one pure function per protocol family over the first bytes of a
//! payload, combined by [`detect`]. No signature allocates, indexes past its input or loops
//! more than a fixed number of times; none reads more than the first few hundred bytes.

use super::{App, Context, Transport};

/// Looks at one payload packet of a flow; `Some` when a signature recognizes it.
///
/// Callers offer the first few payload packets of each direction and stop at the first match.
/// A signature that needs the other side's reply (an FTP or SMTP `220` banner) simply does not
/// match yet: the client's first command decides.
pub fn detect(p: &[u8], ctx: &Context) -> Option<App> {
    if p.is_empty() {
        return None;
    }
    match ctx.transport {
        Transport::Tcp => detect_tcp(p, ctx),
        Transport::Udp => detect_udp(p, ctx),
    }
}

fn detect_tcp(p: &[u8], ctx: &Context) -> Option<App> {
    if is_tls_record(p) {
        return Some(App::Tls);
    }
    if p.starts_with(b"SSH-") {
        return Some(App::Ssh);
    }
    if let Some(a) = text_protocol(p, ctx) {
        return Some(a);
    }
    if is_bgp(p) {
        return Some(App::Bgp);
    }
    // Strong binary signatures match in either direction: a capture that starts mid-stream
    // can make the server look like the initiator.
    if is_mqtt_connect(p) {
        return Some(App::Mqtt);
    }
    if is_postgres_startup(p) {
        return Some(App::Postgres);
    }
    if is_rdp_request(p) {
        return Some(App::Rdp);
    }
    if ctx.from_initiator {
        if is_redis_command(p) {
            return Some(App::Redis);
        }
    } else if is_mysql_greeting(p) {
        return Some(App::Mysql);
    }
    if let Some(a) = smb(p) {
        return Some(a);
    }
    // DNS over TCP: a length prefix that matches the segment, then a DNS message (held to
    // the same standard as DNS over UDP off the DNS ports).
    if p.len() > 14 {
        let len = usize::from(u16::from_be_bytes([p[0], p[1]]));
        if len + 2 == p.len() {
            return dns_family(&p[2..], ctx);
        }
    }
    None
}

fn detect_udp(p: &[u8], ctx: &Context) -> Option<App> {
    // DTLS first: its fixed version byte (0xFE) is stricter than QUIC's header bits.
    if is_dtls(p) {
        return Some(App::Dtls);
    }
    if is_quic(p) {
        return Some(App::Quic);
    }
    if is_stun(p) {
        return Some(App::Stun);
    }
    if is_dhcp(p) {
        return Some(App::Dhcp);
    }
    if let Some(a) = text_protocol(p, ctx) {
        return Some(a);
    }
    // NetBIOS name service shares DNS's message format: its port decides first.
    if (ctx.port(137) || ctx.port(138)) && p.len() >= 12 {
        return Some(App::NetBios);
    }
    if let Some(a) = dns_family(p, ctx) {
        return Some(a);
    }
    if ctx.port(123) && is_ntp(p) {
        return Some(App::Ntp);
    }
    if (ctx.port(546) || ctx.port(547)) && matches!(p.first(), Some(1..=13)) && p.len() >= 4 {
        return Some(App::Dhcpv6);
    }
    if (ctx.port(161) || ctx.port(162)) && is_snmp(p) {
        return Some(App::Snmp);
    }
    if is_syslog(p) {
        return Some(App::Syslog);
    }
    // RTP/RTCP carry no magic: only on ports no well-known service uses.
    if ctx.initiator_port >= 1024 && ctx.responder_port >= 1024 {
        return rtp_family(p);
    }
    None
}

/// A TLS record header: handshake (or alert/CCS) type, version 3.x, sane length.
fn is_tls_record(p: &[u8]) -> bool {
    let [t, 3, minor, hi, lo, first, ..] = *p else {
        return false;
    };
    let len = u16::from_be_bytes([hi, lo]);
    // A handshake record (ClientHello = 1, ServerHello = 2) or, from a server, an alert.
    (t == 22 && minor <= 4 && len > 0 && len <= 18432 && matches!(first, 1 | 2))
        || (t == 21 && minor <= 4 && len == 2)
}

/// Text protocols recognized by their first line: HTTP, SIP, SSDP, RTSP (not labelled), FTP,
/// SMTP, POP3, IMAP.
fn text_protocol(p: &[u8], ctx: &Context) -> Option<App> {
    let line = first_line(p);
    // SIP before HTTP: both have methods and `<proto>/<ver>` status lines.
    if is_sip(line) {
        return Some(App::Sip);
    }
    if ctx.transport == Transport::Udp {
        if line.starts_with(b"M-SEARCH * HTTP/1.1") || line.starts_with(b"NOTIFY * HTTP/1.1") {
            return Some(App::Ssdp);
        }
        if line.starts_with(b"HTTP/1.1 200 OK") && ctx.port(1900) {
            return Some(App::Ssdp);
        }
        return None;
    }
    if is_http_line(line) {
        return Some(App::Http);
    }
    if ctx.from_initiator {
        let upper = |n: usize| -> [u8; 5] {
            let mut w = [0u8; 5];
            for (d, s) in w.iter_mut().zip(line.iter().take(n)) {
                *d = s.to_ascii_uppercase();
            }
            w
        };
        let w = upper(5);
        if matches!(&w, b"EHLO " | b"HELO ") {
            return Some(App::Smtp);
        }
        if matches!(&w[..4], b"USER" | b"FEAT" | b"SYST" | b"OPTS") && ctx.port(21) {
            return Some(App::Ftp);
        }
        if matches!(&w[..4], b"CAPA" | b"STLS") && ctx.port(110) {
            return Some(App::Pop3);
        }
        // IMAP commands carry a tag first: `a001 CAPABILITY`.
        if let Some(sp) = line.iter().take(16).position(|&b| b == b' ')
            && sp > 0
            && line[..sp].iter().all(u8::is_ascii_alphanumeric)
        {
            let rest = &line[sp + 1..];
            for cmd in [&b"CAPABILITY"[..], b"LOGIN ", b"STARTTLS", b"AUTHENTICATE "] {
                if starts_with_ci(rest, cmd) {
                    return Some(App::Imap);
                }
            }
        }
        return None;
    }
    // Server greetings.
    if line.starts_with(b"+OK") {
        return Some(App::Pop3);
    }
    if line.starts_with(b"* OK") || line.starts_with(b"* PREAUTH") {
        return Some(App::Imap);
    }
    if line.starts_with(b"220") && matches!(line.get(3), Some(b' ' | b'-')) {
        if contains_ci(line, b"SMTP") || contains_ci(line, b"MAIL") {
            return Some(App::Smtp);
        }
        if contains_ci(line, b"FTP") {
            return Some(App::Ftp);
        }
    }
    None
}

/// The bytes up to the first CR or LF (at most 256).
fn first_line(p: &[u8]) -> &[u8] {
    let head = &p[..p.len().min(256)];
    let end = head
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(head.len());
    &head[..end]
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ci(s: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && s.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
];

/// An HTTP/1.x request line (method, target, `HTTP/1.x`) or status line.
fn is_http_line(line: &[u8]) -> bool {
    if line.starts_with(b"HTTP/1.") {
        return true;
    }
    HTTP_METHODS.iter().any(|m| line.starts_with(m))
        && (line.ends_with(b"HTTP/1.1") || line.ends_with(b"HTTP/1.0"))
}

const SIP_METHODS: [&[u8]; 14] = [
    b"INVITE ",
    b"REGISTER ",
    b"OPTIONS ",
    b"ACK ",
    b"BYE ",
    b"CANCEL ",
    b"NOTIFY ",
    b"SUBSCRIBE ",
    b"MESSAGE ",
    b"INFO ",
    b"PRACK ",
    b"UPDATE ",
    b"REFER ",
    b"PUBLISH ",
];

/// A SIP request line (`INVITE sip:... SIP/2.0`) or status line (`SIP/2.0 200 OK`).
fn is_sip(line: &[u8]) -> bool {
    if line.starts_with(b"SIP/2.0 ") {
        return true;
    }
    SIP_METHODS.iter().any(|m| {
        line.starts_with(m)
            && (line[m.len()..].starts_with(b"sip:")
                || line[m.len()..].starts_with(b"sips:")
                || line[m.len()..].starts_with(b"tel:"))
    }) && line.ends_with(b"SIP/2.0")
}

/// A BGP message: 16-byte all-ones marker, length 19..4096, type 1..5.
fn is_bgp(p: &[u8]) -> bool {
    let Some(head) = p.get(..19) else {
        return false;
    };
    let len = u16::from_be_bytes([head[16], head[17]]);
    head[..16].iter().all(|&b| b == 0xff)
        && (19..=4096).contains(&len)
        && (1..=5).contains(&head[18])
}

/// MQTT CONNECT: type 1, a remaining length (varint), then the protocol name.
fn is_mqtt_connect(p: &[u8]) -> bool {
    if p.first() != Some(&0x10) {
        return false;
    }
    // Skip the 1..4-byte remaining length.
    let mut i = 1;
    while i < 5 {
        match p.get(i) {
            Some(b) if b & 0x80 != 0 => i += 1,
            Some(_) => break,
            None => return false,
        }
    }
    let rest = p.get(i + 1..).unwrap_or_default();
    rest.starts_with(b"\x00\x04MQTT") || rest.starts_with(b"\x00\x06MQIsdp")
}

/// PostgreSQL's first client message: StartupMessage (protocol 3.0), SSLRequest or
/// GSSENCRequest, whose length field is the message length.
fn is_postgres_startup(p: &[u8]) -> bool {
    let [a, b, c, d, e, f, g, h, ..] = *p else {
        return false;
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    let code = u32::from_be_bytes([e, f, g, h]);
    len == p.len() && (code == 0x0003_0000 || code == 80_877_103 || code == 80_877_104)
}

/// An RDP connection request: TPKT version 3, then an X.224 Connection Request (0xE0).
fn is_rdp_request(p: &[u8]) -> bool {
    let [3, 0, hi, lo, _li, code, ..] = *p else {
        return false;
    };
    usize::from(u16::from_be_bytes([hi, lo])) == p.len() && code == 0xe0
}

/// A Redis RESP array command: `*<n>\r\n$<len>\r\n...`.
fn is_redis_command(p: &[u8]) -> bool {
    let [b'*', d, ..] = *p else {
        return false;
    };
    d.is_ascii_digit() && {
        let head = &p[..p.len().min(16)];
        head.windows(3).any(|w| w == b"\r\n$")
    }
}

/// A MySQL server greeting: 3-byte length, sequence 0, protocol 10, a printable version
/// string ending in NUL.
fn is_mysql_greeting(p: &[u8]) -> bool {
    let [l0, l1, l2, 0, 10, ..] = *p else {
        return false;
    };
    let len = usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16;
    if len + 4 != p.len() {
        return false;
    }
    let ver = &p[5..p.len().min(5 + 64)];
    match ver.iter().position(|&b| b == 0) {
        Some(n) => n > 0 && ver[..n].iter().all(|b| b.is_ascii_graphic()),
        None => false,
    }
}

/// SMB over NetBIOS session service or direct TCP: a 4-byte header, then `\xFESMB` (SMB2/3)
/// or `\xFFSMB` (SMB1); a NetBIOS session request (0x81) is NetBIOS.
fn smb(p: &[u8]) -> Option<App> {
    let [t, _, _, _, m0, m1, m2, m3, ..] = *p else {
        return None;
    };
    if t == 0 && matches!(m0, 0xfe | 0xff) && [m1, m2, m3] == *b"SMB" {
        return Some(App::Smb);
    }
    if t == 0x81 && usize::from(u16::from_be_bytes([p[2], p[3]])) + 4 == p.len() {
        return Some(App::NetBios);
    }
    None
}

/// QUIC long header with a known version (RFC 9000 v1, RFC 9369 v2, IETF drafts, Google's
/// Q0xx and T0xx), or Google QUIC's public header with a version.
fn is_quic(p: &[u8]) -> bool {
    let [first, v0, v1, v2, v3, ..] = *p else {
        return false;
    };
    if first & 0xc0 == 0xc0 {
        let v = u32::from_be_bytes([v0, v1, v2, v3]);
        let known = v == 1
            || v == 0x6b33_43cf
            || v & 0xffff_ff00 == 0xff00_0000
            || v & 0xffff_0000 == 0x5130_0000 // "Q0"
            || v & 0xffff_0000 == 0x5430_0000 // "T0"
            || v & 0x0f0f_0f0f == 0x0a0a_0a0a // version negotiation grease
            || v == 0xfaceb002; // mvfst
        return known && p.len() >= 20;
    }
    // gQUIC (Q046 and older): public flags with the version bit, 8-byte connection ID.
    first & 0x01 != 0 && first & 0x80 == 0 && p.get(9..11) == Some(b"Q0") && p.len() >= 13
}

/// A DTLS record: content type 20..=25, version 254.x (DTLS 1.0 / 1.2 / 1.3).
fn is_dtls(p: &[u8]) -> bool {
    let [t, 0xfe, minor, ..] = *p else {
        return false;
    };
    (20..=25).contains(&t) && matches!(minor, 0xff | 0xfd | 0xfc) && p.len() >= 13
}

/// A STUN message: RFC 5389 (top two bits zero, length + 20 = size, magic cookie), or a
/// classic RFC 3489 binding/shared-secret message (no cookie: the type and length decide).
fn is_stun(p: &[u8]) -> bool {
    let [t0, t1, l0, l1, c0, c1, c2, c3, ..] = *p else {
        return false;
    };
    let fits = usize::from(u16::from_be_bytes([l0, l1])) + 20 == p.len();
    if [c0, c1, c2, c3] == [0x21, 0x12, 0xa4, 0x42] {
        return t0 & 0xc0 == 0 && fits;
    }
    let classic = matches!(
        u16::from_be_bytes([t0, t1]),
        0x0001 | 0x0101 | 0x0111 | 0x0002 | 0x0102 | 0x0112
    );
    classic && fits && p.len() >= 20
}

/// BOOTP/DHCP: op 1 or 2, Ethernet hardware type and length, the DHCP magic cookie.
fn is_dhcp(p: &[u8]) -> bool {
    matches!(p.first(), Some(1 | 2))
        && p.get(1..3) == Some(&[1, 6])
        && p.get(236..240) == Some(&[0x63, 0x82, 0x53, 0x63])
}

/// DNS, mDNS and LLMNR: a message that parses, told apart by port.
fn dns_family(p: &[u8], ctx: &Context) -> Option<App> {
    let known_port = ctx.port(53) || ctx.port(5353) || ctx.port(5355);
    if p.len() < 12 {
        return None;
    }
    let msg = wire::dns::parse(p).ok()?;
    let opcode = (p[2] >> 3) & 0x0f;
    // Off the DNS ports, demand a plain query/response with one question.
    if !known_port && (msg.qdcount() != 1 || opcode != 0) {
        return None;
    }
    Some(if ctx.port(5353) {
        App::Mdns
    } else if ctx.port(5355) {
        App::Llmnr
    } else {
        App::Dns
    })
}

/// NTP: version 1..4, mode 1..5 (or a mode 6/7 control message), at least a 48-byte header.
fn is_ntp(p: &[u8]) -> bool {
    let Some(&b) = p.first() else {
        return false;
    };
    let (version, mode) = ((b >> 3) & 7, b & 7);
    (1..=4).contains(&version) && ((1..=5).contains(&mode) && p.len() >= 48 || mode >= 6)
}

/// SNMP: an ASN.1 SEQUENCE holding version 0, 1 or 3 as its first INTEGER.
fn is_snmp(p: &[u8]) -> bool {
    let [0x30, l, ..] = *p else {
        return false;
    };
    // Short or long (0x81/0x82) length form.
    let off = match l {
        0x81 => 3,
        0x82 => 4,
        l if l < 0x80 => 2,
        _ => return false,
    };
    matches!(p.get(off..off + 3), Some([2, 1, 0 | 1 | 3]))
}

/// Syslog (RFC 3164/5424): `<PRI>` with PRI 0..191.
fn is_syslog(p: &[u8]) -> bool {
    let Some(rest) = p.strip_prefix(b"<") else {
        return false;
    };
    let digits = rest
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || rest.get(digits) != Some(&b'>') {
        return false;
    }
    let pri = rest[..digits]
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    pri <= 191 && rest.len() > digits + 2
}

/// RTP version 2 with an audio/video payload type, or RTCP (packet types 200..=207).
fn rtp_family(p: &[u8]) -> Option<App> {
    let [b0, b1, ..] = *p else {
        return None;
    };
    if b0 >> 6 != 2 || p.len() < 12 {
        return None;
    }
    if (200..=207).contains(&b1) {
        // RTCP: the length field (32-bit words minus one) fits the datagram.
        let words = usize::from(u16::from_be_bytes([p[2], p[3]]));
        return ((words + 1) * 4 <= p.len()).then_some(App::Rtcp);
    }
    let pt = b1 & 0x7f;
    let csrc = usize::from(b0 & 0x0f);
    let static_av = matches!(pt, 0 | 3 | 4 | 8 | 9 | 13 | 18 | 26 | 31 | 32 | 33 | 34);
    (csrc == 0 && (static_av || (96..=127).contains(&pt))).then_some(App::Rtp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(from_initiator: bool, iport: u16, rport: u16) -> Context {
        Context {
            transport: Transport::Tcp,
            from_initiator,
            initiator_port: iport,
            responder_port: rport,
        }
    }
    fn udp(iport: u16, rport: u16) -> Context {
        Context {
            transport: Transport::Udp,
            from_initiator: true,
            initiator_port: iport,
            responder_port: rport,
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn empty_and_tiny_payloads_match_nothing() {
        for n in 0..4 {
            let p = vec![0u8; n];
            assert_eq!(detect(&p, &tcp(true, 1, 2)), None);
            assert_eq!(detect(&p, &udp(4000, 5000)), None);
        }
    }

    #[test]
    fn text_protocols_on_any_port() {
        let c = tcp(true, 50000, 8081);
        assert_eq!(
            detect(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", &c),
            Some(App::Http)
        );
        assert_eq!(
            detect(b"HTTP/1.1 404 Not Found\r\n", &tcp(false, 50000, 8081)),
            Some(App::Http)
        );
        assert_eq!(
            detect(b"SSH-2.0-OpenSSH_7.4\r\n", &tcp(false, 5, 2222)),
            Some(App::Ssh)
        );
        let s = tcp(false, 40000, 25);
        assert_eq!(
            detect(b"220 mx.example.org ESMTP Postfix\r\n", &s),
            Some(App::Smtp)
        );
        // An anonymous banner decides nothing; the client's command does.
        assert_eq!(detect(b"220 Welcome\r\n", &s), None);
        assert_eq!(
            detect(b"EHLO client\r\n", &tcp(true, 40000, 25)),
            Some(App::Smtp)
        );
        assert_eq!(
            detect(b"220 (vsFTPd 3.0.3)\r\n", &tcp(false, 40000, 21)),
            Some(App::Ftp)
        );
        assert_eq!(
            detect(b"USER anonymous\r\n", &tcp(true, 40000, 21)),
            Some(App::Ftp)
        );
        assert_eq!(
            detect(b"220 ProFTPD Server ready.\r\n", &tcp(false, 40000, 21)),
            Some(App::Ftp)
        );
        assert_eq!(
            detect(b"+OK Dovecot ready.\r\n", &tcp(false, 40000, 110)),
            Some(App::Pop3)
        );
        assert_eq!(
            detect(
                b"* OK [CAPABILITY IMAP4rev1] ready\r\n",
                &tcp(false, 1, 143)
            ),
            Some(App::Imap)
        );
        assert_eq!(
            detect(b"a001 CAPABILITY\r\n", &tcp(true, 40000, 143)),
            Some(App::Imap)
        );
        assert_eq!(
            detect(
                b"INVITE sip:bob@example.com SIP/2.0\r\nVia: x\r\n",
                &udp(5060, 5060)
            ),
            Some(App::Sip)
        );
        assert_eq!(
            detect(
                b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n",
                &udp(50000, 1900)
            ),
            Some(App::Ssdp)
        );
    }

    /// Payload heads laid out as in the corpus captures named beside each (headers verbatim,
    /// bodies shortened).
    #[test]
    fn binary_signatures_from_real_captures() {
        // TLS ClientHello (443-curl.pcap).
        let ch = hex("160301 0200 010001fc 0303");
        assert_eq!(detect(&ch, &tcp(true, 55523, 443)), Some(App::Tls));
        // BGP OPEN (bgp_*.pcap): marker, length 45, type 1.
        let mut bgp = vec![0xffu8; 16];
        bgp.extend_from_slice(&[0, 45, 1, 4]);
        bgp.resize(45, 0);
        assert_eq!(detect(&bgp, &tcp(true, 18324, 179)), Some(App::Bgp));
        // MQTT CONNECT (mqtt.pcap).
        let mqtt = hex("101a 0004 4d515454 04 02 003c 000e 6d6f737175");
        assert_eq!(detect(&mqtt, &tcp(true, 41892, 1883)), Some(App::Mqtt));
        // PostgreSQL SSLRequest and StartupMessage.
        assert_eq!(
            detect(&hex("00000008 04d2162f"), &tcp(true, 40000, 5432)),
            Some(App::Postgres)
        );
        let mut start = hex("00000000 00030000");
        start.extend_from_slice(b"user\0postgres\0\0");
        let n = start.len() as u32;
        start[..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(
            detect(&start, &tcp(true, 40000, 15432)),
            Some(App::Postgres)
        );
        // MySQL greeting (mysql-8.pcap): length 0x4a, seq 0, protocol 10, "8.0.19\0".
        let mut my = hex("4a0000 00 0a");
        my.extend_from_slice(b"8.0.19\0");
        my.resize(0x4a + 4, 0x41);
        assert_eq!(detect(&my, &tcp(false, 36272, 3306)), Some(App::Mysql));
        // RDP X.224 Connection Request with a cookie (rdp.pcap).
        let mut rdp = hex("0300 0000 22 e0 0000 0000 00");
        rdp.extend_from_slice(b"Cookie: mstshash=a\r\n");
        let n = rdp.len() as u16;
        rdp[2..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(detect(&rdp, &tcp(true, 52494, 3389)), Some(App::Rdp));
        // Redis PING.
        assert_eq!(
            detect(b"*1\r\n$4\r\nPING\r\n", &tcp(true, 40000, 6379)),
            Some(App::Redis)
        );
        // SMB2 NEGOTIATE over direct TCP.
        let smb2 = hex("00000044 fe534d42 4000 0000");
        assert_eq!(detect(&smb2, &tcp(true, 49194, 445)), Some(App::Smb));
        // QUIC v1 Initial (quic-*.pcap): long header, version 1.
        let mut q = hex("c3 00000001 08 0102030405060708 00");
        q.resize(1200, 0);
        assert_eq!(detect(&q, &udp(50000, 443)), Some(App::Quic));
        // gQUIC Q046 public header.
        let mut gq = hex("0d 0102030405060708 51303436 01");
        gq.resize(1350, 0);
        assert_eq!(detect(&gq, &udp(50000, 443)), Some(App::Quic));
        // STUN binding request.
        let stun = hex("0001 0000 2112a442 0102030405060708090a0b0c");
        assert_eq!(detect(&stun, &udp(50000, 3478)), Some(App::Stun));
        // Classic STUN (RFC 3489) binding request: no magic cookie.
        let classic = hex("0001 0000 0102030405060708090a0b0c0d0e0f10");
        assert_eq!(detect(&classic, &udp(50000, 50001)), Some(App::Stun));
        // DTLS 1.2 ClientHello.
        let dtls = hex("16fefd 0000 000000000000 0030 01");
        assert_eq!(detect(&dtls, &udp(50000, 4433)), Some(App::Dtls));
    }

    #[test]
    fn udp_services() {
        // DHCP DISCOVER: op 1, htype 1, hlen 6, magic cookie at 236.
        let mut d = vec![0u8; 300];
        d[..3].copy_from_slice(&[1, 1, 6]);
        d[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        assert_eq!(detect(&d, &udp(68, 67)), Some(App::Dhcp));
        // DNS query for example.com A on 53, the same on 5353 is mDNS.
        let mut q = hex("1234 0100 0001 0000 0000 0000");
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(detect(&q, &udp(40000, 53)), Some(App::Dns));
        assert_eq!(detect(&q, &udp(5353, 5353)), Some(App::Mdns));
        assert_eq!(detect(&q, &udp(40000, 5355)), Some(App::Llmnr));
        assert_eq!(detect(&q, &udp(40000, 1053)), Some(App::Dns));
        // Over TCP, with its length prefix (dns_ipv4_tcp.pcap uses port 53000).
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        assert_eq!(detect(&framed, &tcp(true, 38961, 53000)), Some(App::Dns));
        // NTP v4 client request (ntp.pcap): 0x23 = version 4, mode 3.
        let mut ntp = vec![0u8; 48];
        ntp[0] = 0x23;
        assert_eq!(detect(&ntp, &udp(45863, 123)), Some(App::Ntp));
        assert_ne!(detect(&ntp, &udp(45863, 124)), Some(App::Ntp));
        // SNMPv2c get-request.
        let snmp = hex("3026 020101 0406 7075626c6963 a019");
        assert_eq!(detect(&snmp, &udp(40000, 161)), Some(App::Snmp));
        assert_eq!(
            detect(b"<34>Oct 11 22:14:15 host su: failed", &udp(40000, 514)),
            Some(App::Syslog)
        );
        // RTP PCMU (payload type 0) and RTCP sender report between high ports.
        let mut rtp = hex("8000 1234 00000000 deadbeef");
        rtp.resize(172, 0xff);
        assert_eq!(detect(&rtp, &udp(30000, 40392)), Some(App::Rtp));
        let rtcp = hex("80c8 0006 deadbeef 0000000000000000 00000000 00000000 00000000");
        assert_eq!(detect(&rtcp, &udp(30001, 40393)), Some(App::Rtcp));
        // The same bytes to a well-known port are not guessed as RTP.
        assert_eq!(detect(&rtp, &udp(30000, 500)), None);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            /// No input panics, whatever the context.
            #[test]
            fn never_panics(p in proptest::collection::vec(any::<u8>(), 0..400),
                            tcp_ in any::<bool>(), fi in any::<bool>(),
                            a in any::<u16>(), b in any::<u16>()) {
                let ctx = Context {
                    transport: if tcp_ { Transport::Tcp } else { Transport::Udp },
                    from_initiator: fi,
                    initiator_port: a,
                    responder_port: b,
                };
                let r = detect(&p, &ctx);
                prop_assert!(r != Some(App::Unknown));
            }
        }
    }
}
