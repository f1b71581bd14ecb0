//! Parser of tcpdump filter expressions into a tree of packet tests for one link type.
//!
//! It follows pcap-filter(7) and libpcap's grammar for the supported subset: `not` binds
//! tightest, `and` and `or` have equal precedence and group left to right, and a bare value
//! reuses the previous primitive's qualifiers. Each primitive is turned into tests as soon as
//! it is read, so `vlan` moves the offsets of everything to its right, as in libpcap. It does
//! no name resolution and emits no instructions (see the code generator).

use std::net::Ipv6Addr;

use super::BpfError;
use super::codegen::{Cmp, Cond, Load};
use crate::bpf::op;
use crate::capture::LinkType;

/// Deepest nesting of parentheses and `not` accepted (keeps recursion bounded).
const MAX_DEPTH: usize = 200;
/// Most primitives in one expression (keeps the tree, and the program, bounded).
const MAX_PRIMITIVES: usize = 512;

const ETHERTYPE_IP: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_REVARP: u16 = 0x8035;
/// 802.1Q, 802.1ad and the pre-standard QinQ tag ethertypes libpcap's `vlan` accepts.
const VLAN_TPIDS: [u32; 3] = [0x8100, 0x88a8, 0x9100];

/// Link-layer header shapes the compiler knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Ethernet,
    Sll,
    Sll2,
    /// IPv4 or IPv6, told apart by the version nibble.
    RawIp,
    Ipv4Only,
    Ipv6Only,
    /// 4-byte address family in the capturing host's byte order.
    Null,
    /// 4-byte address family in network byte order.
    Loop,
}

/// Where the link header puts the network-layer protocol and header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    link: Link,
}

impl Layout {
    /// The layout of `link`, or an error for link types without one.
    pub(crate) fn for_link(link: LinkType) -> Result<Self, BpfError> {
        let link = match link {
            LinkType::Ethernet => Link::Ethernet,
            LinkType::LinuxSll => Link::Sll,
            LinkType::LinuxSll2 => Link::Sll2,
            LinkType::Raw => Link::RawIp,
            LinkType::Ipv4 => Link::Ipv4Only,
            LinkType::Ipv6 => Link::Ipv6Only,
            LinkType::Null => Link::Null,
            LinkType::Loop => Link::Loop,
            LinkType::Other(n) => return Err(BpfError::UnsupportedLink(n)),
        };
        Ok(Self { link })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Word,
    LParen,
    RParen,
    Not,
    And,
    Or,
    End,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Tok,
    pos: usize,
    text: &'a str,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '-' | '_' | '\\')
}

fn lex(s: &str) -> Result<Vec<Token<'_>>, BpfError> {
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    while let Some((pos, c)) = it.next() {
        let tok = |kind, len: usize| Token {
            kind,
            pos,
            text: s.get(pos..pos + len).unwrap_or(""),
        };
        match c {
            c if c.is_whitespace() => continue,
            '(' => out.push(tok(Tok::LParen, 1)),
            ')' => out.push(tok(Tok::RParen, 1)),
            '!' => out.push(tok(Tok::Not, 1)),
            '&' | '|' => {
                if it.next_if(|&(_, n)| n == c).is_none() {
                    return Err(syntax(pos, format!("expected '{c}{c}'")));
                }
                out.push(tok(if c == '&' { Tok::And } else { Tok::Or }, 2));
            }
            c if is_word_char(c) => {
                let mut end = pos + c.len_utf8();
                while let Some((p, n)) = it.next_if(|&(_, n)| is_word_char(n)) {
                    end = p + n.len_utf8();
                }
                let text = s.get(pos..end).unwrap_or("");
                let kind = match text {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => Tok::Word,
                };
                out.push(Token { kind, pos, text });
            }
            c => return Err(syntax(pos, format!("unexpected character '{c}'"))),
        }
    }
    out.push(Token {
        kind: Tok::End,
        pos: s.len(),
        text: "",
    });
    Ok(out)
}

fn syntax(position: usize, message: String) -> BpfError {
    BpfError::Syntax { position, message }
}

fn invalid(position: usize, message: String) -> BpfError {
    BpfError::Invalid { position, message }
}

/// Protocol qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Ip,
    Ip6,
    Arp,
    Rarp,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmp6,
}

impl Proto {
    fn from_word(w: &str) -> Option<Self> {
        Some(match w {
            "ip" => Self::Ip,
            "ip6" => Self::Ip6,
            "arp" => Self::Arp,
            "rarp" => Self::Rarp,
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "sctp" => Self::Sctp,
            "icmp" => Self::Icmp,
            "icmp6" => Self::Icmp6,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
            Self::Arp => "arp",
            Self::Rarp => "rarp",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
            Self::Icmp => "icmp",
            Self::Icmp6 => "icmp6",
        }
    }
}

/// Direction qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// None given: source or destination.
    Any,
    Src,
    Dst,
    /// `src and dst`.
    Both,
}

/// Type qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    Portrange,
    Proto,
}

impl Kind {
    fn from_word(w: &str) -> Option<Self> {
        Some(match w {
            "host" => Self::Host,
            "net" => Self::Net,
            "port" => Self::Port,
            "portrange" => Self::Portrange,
            "proto" => Self::Proto,
            _ => return None,
        })
    }
}

/// Qualifiers of one primitive, remembered for bare values that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quals {
    proto: Option<Proto>,
    dir: Dir,
    kind: Kind,
}

/// libpcap keywords outside the supported subset: named so the error says so rather than
/// calling them host names.
const UNSUPPORTED: &[&str] = &[
    "ether",
    "fddi",
    "tr",
    "wlan",
    "link",
    "ppp",
    "slip",
    "decnet",
    "iso",
    "isis",
    "stp",
    "ipx",
    "atalk",
    "aarp",
    "igmp",
    "igrp",
    "pim",
    "vrrp",
    "carp",
    "ah",
    "esp",
    "gateway",
    "broadcast",
    "multicast",
    "len",
    "inbound",
    "outbound",
    "ifindex",
    "mpls",
    "pppoed",
    "pppoes",
    "geneve",
    "vxlan",
    "llc",
    "protochain",
    "type",
    "subtype",
    "dir",
];

/// Parses `expr` into a test tree for `layout`.
pub(crate) fn parse(expr: &str, layout: Layout) -> Result<Cond, BpfError> {
    let toks = lex(expr)?;
    let mut p = Parser {
        toks,
        i: 0,
        link: layout.link,
        shift: 0,
        last: None,
        depth: 0,
        primitives: 0,
    };
    if p.peek().kind == Tok::End {
        return Ok(Cond::Const(true));
    }
    let c = p.expr()?;
    let t = p.peek();
    if t.kind != Tok::End {
        return Err(syntax(t.pos, format!("unexpected '{}'", t.text)));
    }
    Ok(c)
}

struct Parser<'a> {
    toks: Vec<Token<'a>>,
    i: usize,
    link: Link,
    /// Bytes added to link-layer offsets by the `vlan` primitives read so far.
    shift: u32,
    last: Option<Quals>,
    depth: usize,
    primitives: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Token<'a> {
        match self.toks.get(self.i + n).or(self.toks.last()) {
            Some(t) => *t,
            None => Token {
                kind: Tok::End,
                pos: 0,
                text: "",
            },
        }
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.peek();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn peek_word(&self) -> Option<&'a str> {
        let t = self.peek();
        (t.kind == Tok::Word).then_some(t.text)
    }

    /// expr := unary ((and | or) unary)*, left to right with equal precedence.
    fn expr(&mut self) -> Result<Cond, BpfError> {
        let mut c = self.unary()?;
        loop {
            match self.peek().kind {
                Tok::And => {
                    self.bump();
                    let r = self.unary()?;
                    c = Cond::and(c, r);
                }
                Tok::Or => {
                    self.bump();
                    let r = self.unary()?;
                    c = Cond::or(c, r);
                }
                _ => return Ok(c),
            }
        }
    }

    /// unary := (not | !) unary | '(' expr ')' | primitive
    fn unary(&mut self) -> Result<Cond, BpfError> {
        let t = self.peek();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(t.pos, "expression nested too deeply".into()));
        }
        let r = match t.kind {
            Tok::Not => {
                self.bump();
                self.unary().map(Cond::negate)
            }
            Tok::LParen => {
                self.bump();
                let c = self.expr()?;
                let close = self.peek();
                if close.kind != Tok::RParen {
                    return Err(syntax(close.pos, "expected ')'".into()));
                }
                self.bump();
                Ok(c)
            }
            Tok::Word => self.primitive(),
            Tok::End => Err(syntax(t.pos, "unexpected end of expression".into())),
            _ => Err(syntax(t.pos, format!("unexpected '{}'", t.text))),
        };
        self.depth -= 1;
        r
    }

    fn primitive(&mut self) -> Result<Cond, BpfError> {
        let start = self.peek();
        self.primitives += 1;
        if self.primitives > MAX_PRIMITIVES {
            return Err(invalid(
                start.pos,
                format!("more than {MAX_PRIMITIVES} primitives"),
            ));
        }
        match start.text {
            "vlan" => {
                self.bump();
                return self.vlan();
            }
            "less" | "greater" => {
                self.bump();
                let (n, _) = self.number("a length")?;
                let len = Load::Len;
                return Ok(if start.text == "less" {
                    Cond::negate(Cond::test(len, None, Cmp::Gt, n))
                } else {
                    Cond::test(len, None, Cmp::Ge, n)
                });
            }
            w if UNSUPPORTED.contains(&w) => {
                return Err(invalid(start.pos, format!("'{w}' is not supported")));
            }
            _ => {}
        }

        let mut proto = None;
        let mut dir = None;
        let mut kind = None;
        if let Some(p) = Proto::from_word(start.text) {
            proto = Some(p);
            self.bump();
        }
        if let Some(d) = self.direction()? {
            dir = Some(d);
        }
        if let Some(k) = self.peek_word().and_then(Kind::from_word) {
            kind = Some(k);
            self.bump();
        }
        let quals = match (proto, dir, kind) {
            (None, None, None) => {
                // A bare value: reuse the previous qualifiers, as libpcap does.
                self.last.unwrap_or(Quals {
                    proto: None,
                    dir: Dir::Any,
                    kind: Kind::Host,
                })
            }
            (Some(p), None, None) => {
                // A protocol alone, unless a value follows (`ip 10.0.0.1` is a host).
                match self.peek_word() {
                    Some(w) if !is_keyword(w) => Quals {
                        proto: Some(p),
                        dir: Dir::Any,
                        kind: Kind::Host,
                    },
                    _ => return Ok(self.protocol(p)),
                }
            }
            (p, d, k) => Quals {
                proto: p,
                dir: d.unwrap_or(Dir::Any),
                kind: k.unwrap_or(Kind::Host),
            },
        };
        let id = self.peek();
        if id.kind != Tok::Word || is_keyword(id.text) {
            let what = match quals.kind {
                Kind::Host => "an address",
                Kind::Net => "a network",
                Kind::Port => "a port number",
                Kind::Portrange => "a port range",
                Kind::Proto => "a protocol number",
            };
            return Err(syntax(id.pos, format!("expected {what}")));
        }
        self.bump();
        self.last = Some(quals);
        let mut mask = None;
        if quals.kind == Kind::Net && self.peek_word() == Some("mask") {
            self.bump();
            let m = self.peek();
            match parse_ipv4(m.text) {
                Some((v, 32)) if m.kind == Tok::Word => mask = Some(v),
                _ => return Err(syntax(m.pos, "expected a dotted ipv4 netmask".into())),
            }
            self.bump();
        }
        self.value(quals, id, mask)
    }

    /// Reads `src`, `dst`, `src or dst`, `src and dst` (either order) if present.
    fn direction(&mut self) -> Result<Option<Dir>, BpfError> {
        let first = match self.peek_word() {
            Some("src") => Dir::Src,
            Some("dst") => Dir::Dst,
            _ => return Ok(None),
        };
        self.bump();
        let join = self.peek().kind;
        let other = self.peek_at(1);
        let pair = matches!((first, other.text), (Dir::Src, "dst") | (Dir::Dst, "src"));
        if matches!(join, Tok::And | Tok::Or) && other.kind == Tok::Word && pair {
            self.bump();
            self.bump();
            return Ok(Some(if join == Tok::And {
                Dir::Both
            } else {
                Dir::Any
            }));
        }
        Ok(Some(first))
    }

    /// Reads a number token (decimal, `0x` hex or leading-zero octal, as libpcap).
    fn number(&mut self, what: &str) -> Result<(u32, usize), BpfError> {
        let t = self.peek();
        if t.kind != Tok::Word {
            return Err(syntax(t.pos, format!("expected {what}")));
        }
        match parse_number(t.text) {
            Some(n) => {
                self.bump();
                Ok((n, t.pos))
            }
            None => Err(syntax(
                t.pos,
                format!("expected {what}, found '{}'", t.text),
            )),
        }
    }

    fn vlan(&mut self) -> Result<Cond, BpfError> {
        let pos = self.toks.get(self.i.saturating_sub(1)).map_or(0, |t| t.pos);
        if self.link != Link::Ethernet {
            return Err(invalid(pos, "vlan is only supported on ethernet".into()));
        }
        let tpid = Load::Abs {
            size: op::H,
            off: 12 + self.shift,
        };
        let mut c = Cond::Const(false);
        for t in VLAN_TPIDS {
            c = Cond::or(c, Cond::eq(tpid, t));
        }
        if self.peek_word().is_some_and(|w| parse_number(w).is_some()) {
            let (id, id_pos) = self.number("a vlan id")?;
            if id > 4095 {
                return Err(invalid(id_pos, format!("vlan id {id} is above 4095")));
            }
            let tci = Load::Abs {
                size: op::H,
                off: 14 + self.shift,
            };
            c = Cond::and(c, Cond::test(tci, Some(0x0fff), Cmp::Eq, id));
        }
        self.shift += 4;
        Ok(c)
    }

    /// Offset of the network-layer header.
    fn l3(&self) -> u32 {
        match self.link {
            Link::Ethernet => 14 + self.shift,
            Link::Sll => 16,
            Link::Sll2 => 20,
            Link::RawIp | Link::Ipv4Only | Link::Ipv6Only => 0,
            Link::Null | Link::Loop => 4,
        }
    }

    /// The link layer says the frame carries `ethertype`.
    fn ll(&self, ethertype: u16) -> Cond {
        let et = u32::from(ethertype);
        let half = |off| Cond::eq(Load::Abs { size: op::H, off }, et);
        let ip4 = ethertype == ETHERTYPE_IP;
        let ip6 = ethertype == ETHERTYPE_IPV6;
        match self.link {
            Link::Ethernet => half(12 + self.shift),
            Link::Sll => half(14),
            Link::Sll2 => half(0),
            Link::RawIp if ip4 || ip6 => Cond::test(
                Load::Abs {
                    size: op::B,
                    off: 0,
                },
                Some(0xf0),
                Cmp::Eq,
                if ip4 { 0x40 } else { 0x60 },
            ),
            Link::Ipv4Only => Cond::Const(ip4),
            Link::Ipv6Only => Cond::Const(ip6),
            // The address family is 2 for IPv4 everywhere, while AF_INET6 differs between
            // the BSDs (24, 28, 30); libpcap checks those three for capture files, in the
            // file's byte order for NULL. The byte order is not known here, and the two
            // orders of these small values cannot be confused.
            Link::Null | Link::Loop if ip4 || ip6 => {
                let w = Load::Abs {
                    size: op::W,
                    off: 0,
                };
                let afs: &[u32] = if ip4 { &[2] } else { &[30, 24, 28] };
                afs.iter().fold(Cond::Const(false), |c, &af| {
                    let c = Cond::or(c, Cond::eq(w, af));
                    if self.link == Link::Null {
                        Cond::or(c, Cond::eq(w, af.swap_bytes()))
                    } else {
                        c
                    }
                })
            }
            _ => Cond::Const(false),
        }
    }

    fn byte(&self, rel: u32) -> Load {
        Load::Abs {
            size: op::B,
            off: self.l3() + rel,
        }
    }

    /// IPv4 with protocol `n`.
    fn ip_proto(&self, n: u32) -> Cond {
        Cond::and(self.ll(ETHERTYPE_IP), Cond::eq(self.byte(9), n))
    }

    /// IPv6 with next header `n`, directly or after one fragment header (as libpcap).
    fn ip6_proto(&self, n: u32) -> Cond {
        let nh = self.byte(6);
        Cond::and(
            self.ll(ETHERTYPE_IPV6),
            Cond::or(
                Cond::eq(nh, n),
                Cond::and(Cond::eq(nh, 44), Cond::eq(self.byte(40), n)),
            ),
        )
    }

    fn protocol(&self, p: Proto) -> Cond {
        match p {
            Proto::Ip => self.ll(ETHERTYPE_IP),
            Proto::Ip6 => self.ll(ETHERTYPE_IPV6),
            Proto::Arp => self.ll(ETHERTYPE_ARP),
            Proto::Rarp => self.ll(ETHERTYPE_REVARP),
            Proto::Tcp => Cond::or(self.ip_proto(6), self.ip6_proto(6)),
            Proto::Udp => Cond::or(self.ip_proto(17), self.ip6_proto(17)),
            Proto::Sctp => Cond::or(self.ip_proto(132), self.ip6_proto(132)),
            Proto::Icmp => self.ip_proto(1),
            Proto::Icmp6 => self.ip6_proto(58),
        }
    }

    fn value(&self, q: Quals, id: Token<'a>, mask: Option<u32>) -> Result<Cond, BpfError> {
        let text = id.text;
        let pos = id.pos;
        match q.kind {
            Kind::Proto => {
                if q.dir != Dir::Any {
                    return Err(invalid(pos, "'proto' takes no direction".into()));
                }
                let n = protocol_number(text).ok_or_else(|| {
                    syntax(pos, format!("expected a protocol number, found '{text}'"))
                })?;
                match q.proto {
                    None => Ok(Cond::or(self.ip_proto(n), self.ip6_proto(n))),
                    Some(Proto::Ip) => Ok(self.ip_proto(n)),
                    Some(Proto::Ip6) => Ok(self.ip6_proto(n)),
                    Some(p) => Err(invalid(
                        pos,
                        format!("'proto' not valid after '{}'", p.name()),
                    )),
                }
            }
            Kind::Port | Kind::Portrange => {
                let (lo, hi) = if q.kind == Kind::Port {
                    let p = port_number(text, pos)?;
                    (p, p)
                } else {
                    let (a, b) = text.split_once('-').ok_or_else(|| {
                        syntax(pos, format!("expected a port range, found '{text}'"))
                    })?;
                    let a = port_number(a, pos)?;
                    let b = port_number(b, pos)?;
                    (a.min(b), a.max(b))
                };
                self.ports(q, lo, hi, pos)
            }
            Kind::Host | Kind::Net => self.address(q, text, pos, mask),
        }
    }

    fn dirsel(dir: Dir, src: Cond, dst: Cond) -> Cond {
        match dir {
            Dir::Src => src,
            Dir::Dst => dst,
            Dir::Any => Cond::or(src, dst),
            Dir::Both => Cond::and(src, dst),
        }
    }

    fn ports(&self, q: Quals, lo: u32, hi: u32, pos: usize) -> Result<Cond, BpfError> {
        let protos: &[u32] = match q.proto {
            None | Some(Proto::Ip) | Some(Proto::Ip6) => &[132, 6, 17],
            Some(Proto::Tcp) => &[6],
            Some(Proto::Udp) => &[17],
            Some(Proto::Sctp) => &[132],
            Some(p) => {
                return Err(invalid(
                    pos,
                    format!("'port' not valid after '{}'", p.name()),
                ));
            }
        };
        let cmp = |load: Load| {
            if lo == hi {
                Cond::eq(load, lo)
            } else {
                Cond::and(
                    Cond::test(load, None, Cmp::Ge, lo),
                    Cond::negate(Cond::test(load, None, Cmp::Gt, hi)),
                )
            }
        };
        let any_of = |load: Load| {
            protos
                .iter()
                .fold(Cond::Const(false), |c, &n| Cond::or(c, Cond::eq(load, n)))
        };
        let l3 = self.l3();
        let half = |off| Load::Abs { size: op::H, off };
        let v6 = if q.proto == Some(Proto::Ip) {
            Cond::Const(false)
        } else {
            Cond::and(
                self.ll(ETHERTYPE_IPV6),
                Cond::and(
                    any_of(self.byte(6)),
                    Self::dirsel(q.dir, cmp(half(l3 + 40)), cmp(half(l3 + 42))),
                ),
            )
        };
        let v4 = if q.proto == Some(Proto::Ip6) {
            Cond::Const(false)
        } else {
            let ind = |off| Load::Ind {
                size: op::H,
                ihl: l3,
                off,
            };
            // Only the first fragment carries the transport header.
            let first_frag = Cond::negate(Cond::test(half(l3 + 6), None, Cmp::Set, 0x1fff));
            Cond::and(
                self.ll(ETHERTYPE_IP),
                Cond::and(
                    any_of(self.byte(9)),
                    Cond::and(
                        first_frag,
                        Self::dirsel(q.dir, cmp(ind(l3)), cmp(ind(l3 + 2))),
                    ),
                ),
            )
        };
        Ok(Cond::or(v6, v4))
    }

    fn address(
        &self,
        q: Quals,
        text: &str,
        pos: usize,
        netmask: Option<u32>,
    ) -> Result<Cond, BpfError> {
        let (addr_text, prefix) = match text.split_once('/') {
            Some(_) if netmask.is_some() => {
                return Err(invalid(pos, "both a prefix length and a mask".into()));
            }
            Some((a, p)) => {
                if q.kind == Kind::Host {
                    return Err(invalid(pos, "mask syntax for networks only".into()));
                }
                let n = parse_number(p)
                    .ok_or_else(|| syntax(pos, format!("bad prefix length in '{text}'")))?;
                (a, Some(n))
            }
            None => (text, None),
        };
        if addr_text.contains(':') {
            if netmask.is_some() {
                return Err(invalid(pos, "mask syntax is for ipv4 only".into()));
            }
            let a: Ipv6Addr = addr_text
                .parse()
                .map_err(|_| invalid(pos, format!("bad ipv6 address '{addr_text}'")))?;
            let bits = prefix.unwrap_or(128);
            if bits > 128 {
                return Err(invalid(pos, format!("prefix length {bits} is above 128")));
            }
            let a = u128::from(a);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            if a & !mask != 0 {
                return Err(invalid(pos, format!("non-network bits set in '{text}'")));
            }
            return self.ip6_addr(q, a, mask, pos);
        }
        let Some((mut addr, nbits)) = parse_ipv4(addr_text) else {
            if addr_text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err(invalid(pos, format!("bad ipv4 address '{addr_text}'")));
            }
            return Err(invalid(
                pos,
                format!("host names are not resolved: '{addr_text}'"),
            ));
        };
        // An abbreviated address (`10.1`) names the network of its leading octets, as in
        // libpcap.
        addr = if nbits == 0 { 0 } else { addr << (32 - nbits) };
        let mut mask = if nbits == 0 {
            0
        } else {
            u32::MAX << (32 - nbits)
        };
        if let Some(bits) = prefix {
            if bits > 32 {
                return Err(invalid(pos, format!("prefix length {bits} is above 32")));
            }
            mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            if addr & !mask != 0 {
                return Err(invalid(pos, format!("non-network bits set in '{text}'")));
            }
        } else if let Some(m) = netmask {
            if nbits != 32 {
                return Err(invalid(pos, format!("'{text}' is not a full address")));
            }
            mask = m;
            if addr & !mask != 0 {
                return Err(invalid(pos, format!("non-network bits set in '{text}'")));
            }
        }
        self.ip4_addr(q, addr, mask, pos)
    }

    fn ip4_addr(&self, q: Quals, addr: u32, mask: u32, pos: usize) -> Result<Cond, BpfError> {
        let word = |off: u32| {
            if mask == 0 {
                Cond::Const(true)
            } else {
                let m = (mask != u32::MAX).then_some(mask);
                Cond::test(Load::Abs { size: op::W, off }, m, Cmp::Eq, addr)
            }
        };
        let l3 = self.l3();
        let ip = |c: &Self| {
            Cond::and(
                c.ll(ETHERTYPE_IP),
                Self::dirsel(q.dir, word(l3 + 12), word(l3 + 16)),
            )
        };
        // ARP and RARP for IPv4 over Ethernet: sender address at 14, target at 24.
        let arp =
            |c: &Self, et| Cond::and(c.ll(et), Self::dirsel(q.dir, word(l3 + 14), word(l3 + 24)));
        match q.proto {
            None => Ok(Cond::or(
                Cond::or(ip(self), arp(self, ETHERTYPE_ARP)),
                arp(self, ETHERTYPE_REVARP),
            )),
            Some(Proto::Ip) => Ok(ip(self)),
            Some(Proto::Arp) => Ok(arp(self, ETHERTYPE_ARP)),
            Some(Proto::Rarp) => Ok(arp(self, ETHERTYPE_REVARP)),
            Some(p) => Err(invalid(
                pos,
                format!("'{}' modifier applied to {}", p.name(), kind_name(q.kind)),
            )),
        }
    }

    fn ip6_addr(&self, q: Quals, addr: u128, mask: u128, pos: usize) -> Result<Cond, BpfError> {
        match q.proto {
            None | Some(Proto::Ip6) => {}
            Some(p) => {
                return Err(invalid(
                    pos,
                    format!(
                        "'{}' modifier applied to ipv6 {}",
                        p.name(),
                        kind_name(q.kind)
                    ),
                ));
            }
        }
        let words = |base: u32| {
            (0..4u32).fold(Cond::Const(true), |c, w| {
                let shift = 96 - 32 * w;
                let m = (mask >> shift) as u32;
                let a = (addr >> shift) as u32;
                if m == 0 {
                    return c;
                }
                let t = Cond::test(
                    Load::Abs {
                        size: op::W,
                        off: base + 4 * w,
                    },
                    (m != u32::MAX).then_some(m),
                    Cmp::Eq,
                    a,
                );
                Cond::and(c, t)
            })
        };
        let l3 = self.l3();
        Ok(Cond::and(
            self.ll(ETHERTYPE_IPV6),
            Self::dirsel(q.dir, words(l3 + 8), words(l3 + 24)),
        ))
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Net => "net",
        _ => "host",
    }
}

fn is_keyword(w: &str) -> bool {
    Proto::from_word(w).is_some()
        || Kind::from_word(w).is_some()
        || matches!(w, "src" | "dst" | "vlan" | "less" | "greater" | "mask")
        || UNSUPPORTED.contains(&w)
}

/// Decimal, `0x` hexadecimal, or octal with a leading zero, as libpcap reads numbers.
fn parse_number(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return u32::from_str_radix(h, 16).ok();
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) || s.is_empty() {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return u32::from_str_radix(s, 8).ok();
    }
    s.parse().ok()
}

fn port_number(s: &str, pos: usize) -> Result<u32, BpfError> {
    match parse_number(s) {
        Some(n) if n <= 65535 => Ok(n),
        Some(n) => Err(invalid(pos, format!("port {n} is above 65535"))),
        None if s.bytes().any(|b| b.is_ascii_alphabetic()) && parse_number(s).is_none() => {
            if s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                Err(invalid(
                    pos,
                    format!("service names are not resolved: '{s}'"),
                ))
            } else {
                Err(syntax(pos, format!("expected a port number, found '{s}'")))
            }
        }
        None => Err(syntax(pos, format!("expected a port number, found '{s}'"))),
    }
}

/// A protocol number (0..=255) or one of the names libpcap accepts after `proto`
/// (with or without the backslash that keywords need in tcpdump).
fn protocol_number(s: &str) -> Option<u32> {
    let name = s.strip_prefix('\\').unwrap_or(s);
    let n = match name {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "igrp" => 9,
        "udp" => 17,
        "esp" => 50,
        "ah" => 51,
        "icmp6" => 58,
        "pim" => 103,
        "vrrp" => 112,
        "sctp" => 132,
        _ => parse_number(s)?,
    };
    (n <= 255).then_some(n)
}

/// Dotted IPv4 with 1 to 4 parts (each 0..=255): the value of the parts as a number of
/// `8 * parts` bits, and that bit count.
fn parse_ipv4(s: &str) -> Option<(u32, u32)> {
    if s.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    let mut bits = 0;
    for part in s.split('.') {
        if bits == 32 || part.is_empty() || part.len() > 3 {
            return None;
        }
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = part.parse().ok()?;
        if n > 255 {
            return None;
        }
        v = (v << 8) | n;
        bits += 8;
    }
    Some((v, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(expr: &str) -> Result<Cond, BpfError> {
        parse(expr, Layout::for_link(LinkType::Ethernet).unwrap())
    }

    fn ok(expr: &str) -> Cond {
        p(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn err_at(expr: &str) -> (usize, String) {
        let e = p(expr).expect_err(expr);
        (e.position().expect("positioned error"), e.to_string())
    }

    #[test]
    fn lexer_tokens_and_positions() {
        let t = lex("tcp&&!(port 53)||x").unwrap();
        let kinds: Vec<Tok> = t.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Word,
                Tok::And,
                Tok::Not,
                Tok::LParen,
                Tok::Word,
                Tok::Word,
                Tok::RParen,
                Tok::Or,
                Tok::Word,
                Tok::End
            ]
        );
        assert_eq!(t[4].pos, 7);
        assert_eq!(t[5].text, "53");
        assert!(matches!(
            lex("a & b"),
            Err(BpfError::Syntax { position: 2, .. })
        ));
        assert!(matches!(
            lex("tcp[0]"),
            Err(BpfError::Syntax { position: 3, .. })
        ));
    }

    #[test]
    fn and_or_group_left_to_right_like_libpcap() {
        // libpcap: `a or b and c` is `(a or b) and c`, not `a or (b and c)`.
        assert_eq!(ok("tcp or udp and icmp"), ok("(tcp or udp) and icmp"));
        assert_ne!(ok("tcp or udp and icmp"), ok("tcp or (udp and icmp)"));
        assert_eq!(ok("tcp and udp or icmp"), ok("(tcp and udp) or icmp"));
        assert_eq!(ok("tcp && udp || icmp"), ok("(tcp and udp) or icmp"));
    }

    #[test]
    fn not_binds_tightest() {
        assert_eq!(ok("not tcp and udp"), ok("(not tcp) and udp"));
        assert_eq!(ok("! tcp or udp"), ok("(not tcp) or udp"));
        assert_eq!(ok("not not tcp"), ok("tcp"));
        assert_ne!(ok("not tcp and udp"), ok("not (tcp and udp)"));
    }

    #[test]
    fn bare_values_reuse_previous_qualifiers() {
        assert_eq!(
            ok("host 10.0.0.1 or 10.0.0.2"),
            ok("host 10.0.0.1 or host 10.0.0.2")
        );
        assert_eq!(
            ok("tcp dst port 53 or 80"),
            ok("tcp dst port 53 or tcp dst port 80")
        );
        assert_eq!(ok("10.0.0.1"), ok("host 10.0.0.1"));
        assert_eq!(ok("src 10.0.0.1"), ok("src host 10.0.0.1"));
        assert_eq!(ok("src or dst port 1"), ok("port 1"));
    }

    #[test]
    fn host_is_ip_arp_and_rarp() {
        let Cond::Or(left, rarp) = ok("host 1.2.3.4") else {
            panic!("expected an or");
        };
        assert!(matches!(*left, Cond::Or(..)));
        assert!(matches!(*rarp, Cond::And(..)));
        assert_eq!(ok("host 10.1"), ok("net 10.1.0.0/16"));
        assert_eq!(ok("net 10"), ok("net 10.0.0.0/8"));
        assert_eq!(
            ok("net 10.0.0.0 mask 255.0.0.0").clone(),
            ok("net 10.0.0.0/8")
        );
    }

    #[test]
    fn empty_expression_matches_all() {
        assert_eq!(ok(""), Cond::Const(true));
        assert_eq!(ok("   "), Cond::Const(true));
    }

    #[test]
    fn constant_folding_by_link() {
        let raw4 = Layout::for_link(LinkType::Ipv4).unwrap();
        assert_eq!(parse("ip", raw4).unwrap(), Cond::Const(true));
        assert_eq!(parse("ip6", raw4).unwrap(), Cond::Const(false));
        assert_eq!(parse("arp", raw4).unwrap(), Cond::Const(false));
        assert_eq!(parse("not ip6", raw4).unwrap(), Cond::Const(true));
        assert!(matches!(
            Layout::for_link(LinkType::Other(147)),
            Err(BpfError::UnsupportedLink(147))
        ));
    }

    #[test]
    fn errors_carry_positions() {
        let (pos, msg) = err_at("udp dst port foo.bar");
        assert_eq!(pos, 13);
        assert_eq!(
            msg,
            "syntax error at 13: expected a port number, found 'foo.bar'"
        );
        let (pos, msg) = err_at("tcp and port");
        assert_eq!(
            (pos, msg.as_str()),
            (12, "syntax error at 12: expected a port number")
        );
        let (pos, msg) = err_at("host example.com");
        assert_eq!(pos, 5);
        assert!(
            msg.contains("host names are not resolved: 'example.com'"),
            "{msg}"
        );
        let (pos, _) = err_at("(tcp or udp");
        assert_eq!(pos, 11);
        let (pos, _) = err_at("tcp udp");
        assert_eq!(pos, 4);
        let (pos, msg) = err_at("port domain");
        assert_eq!(pos, 5);
        assert!(msg.contains("service names are not resolved"), "{msg}");
        let (pos, msg) = err_at("tcp host 1.2.3.4");
        assert_eq!(pos, 9);
        assert!(msg.contains("'tcp' modifier applied to host"), "{msg}");
        let (pos, msg) = err_at("net 10.1.2.3/8");
        assert_eq!(pos, 4);
        assert!(msg.contains("non-network bits"), "{msg}");
        let (pos, _) = err_at("port 65536");
        assert_eq!(pos, 5);
        let (pos, _) = err_at("vlan 4096");
        assert_eq!(pos, 5);
        let (pos, _) = err_at("ether host 1.2.3.4");
        assert_eq!(pos, 0);
        let (pos, _) = err_at("tcp and");
        assert_eq!(pos, 7);
        let (pos, _) = err_at("()");
        assert_eq!(pos, 1);
        let (pos, msg) = err_at("ip6 host 1.2.3.4");
        assert_eq!(pos, 9);
        assert!(msg.contains("'ip6' modifier"), "{msg}");
        let sll = Layout::for_link(LinkType::LinuxSll).unwrap();
        assert_eq!(parse("udp and vlan", sll).unwrap_err().position(), Some(8));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "(".repeat(10_000);
        assert!(matches!(p(&deep), Err(BpfError::Syntax { .. })));
        let nots = "not ".repeat(10_000) + "tcp";
        assert!(matches!(p(&nots), Err(BpfError::Syntax { .. })));
        let long = vec!["tcp"; 1000].join(" or ");
        assert!(matches!(p(&long), Err(BpfError::Invalid { .. })));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("53"), Some(53));
        assert_eq!(parse_number("0x35"), Some(53));
        assert_eq!(parse_number("065"), Some(53));
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("5a"), None);
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("99999999999"), None);
        assert_eq!(parse_ipv4("10.1"), Some((0x0a01, 16)));
        assert_eq!(parse_ipv4("1.2.3.4.5"), None);
        assert_eq!(parse_ipv4("1.256"), None);
        assert_eq!(protocol_number("\\tcp"), Some(6));
        assert_eq!(protocol_number("256"), None);
    }
}
