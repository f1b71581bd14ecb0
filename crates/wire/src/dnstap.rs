//! dnstap: the Frame Streams container ([`fstrm`]) and the `Dnstap` protobuf message.
//!
//! [`decode`] turns one data-frame payload into a [`Dnstap`] whose byte fields borrow from
//! the payload, with `Option`s recording which fields were present. Unknown enum values are
//! kept as numbers and unknown fields are skipped. The classification helpers reproduce
//! pktvisor's rules (query or response, direction relative to the host, which time stamps
//! an event). Nothing here reads files or sockets and nothing allocates while decoding; the
//! encoder ([`Dnstap::encode`]) is for tests and tools.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

pub mod fstrm;
pub mod pb;
pub mod session;

use pb::{PbError, Reader, Value};

/// The Frame Streams content type of dnstap streams.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Why a dnstap payload could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DnstapError {
    /// The payload (or its nested `Message`) is not valid protobuf.
    #[error("malformed dnstap protobuf: {0}")]
    Protobuf(#[from] PbError),
}

/// `Dnstap.type`: which payload the union carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnstapType {
    /// `MESSAGE` (1): the `message` field.
    Message,
    /// Any other value, kept as its number.
    Other(u32),
}

impl DnstapType {
    /// Maps a wire value to a type.
    pub fn from_u32(n: u32) -> Self {
        match n {
            1 => Self::Message,
            other => Self::Other(other),
        }
    }

    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            Self::Message => 1,
            Self::Other(n) => n,
        }
    }
}

/// `Message.type`: which end of which DNS exchange the message was observed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `AUTH_QUERY` (1): query received by an authoritative server.
    AuthQuery,
    /// `AUTH_RESPONSE` (2): response sent by an authoritative server.
    AuthResponse,
    /// `RESOLVER_QUERY` (3): query sent by a resolver to an authoritative server.
    ResolverQuery,
    /// `RESOLVER_RESPONSE` (4): response received by a resolver.
    ResolverResponse,
    /// `CLIENT_QUERY` (5): query received by a server from a client.
    ClientQuery,
    /// `CLIENT_RESPONSE` (6): response sent by a server to a client.
    ClientResponse,
    /// `FORWARDER_QUERY` (7): query sent upstream by a forwarder.
    ForwarderQuery,
    /// `FORWARDER_RESPONSE` (8): response received by a forwarder.
    ForwarderResponse,
    /// `STUB_QUERY` (9): query sent by a stub resolver.
    StubQuery,
    /// `STUB_RESPONSE` (10): response received by a stub resolver.
    StubResponse,
    /// `TOOL_QUERY` (11): query sent by a DNS tool.
    ToolQuery,
    /// `TOOL_RESPONSE` (12): response received by a DNS tool.
    ToolResponse,
    /// `UPDATE_QUERY` (13): dynamic update received by an authoritative server.
    UpdateQuery,
    /// `UPDATE_RESPONSE` (14): dynamic update response sent by an authoritative server.
    UpdateResponse,
    /// Any other value, kept as its number.
    Other(u32),
}

/// Which way a message travelled relative to the host that produced the dnstap stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The message arrived at the host.
    ToHost,
    /// The message left the host.
    FromHost,
}

/// The role pair a message type belongs to (the `dnstap_msg_type` filter values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AUTH_*`.
    Auth,
    /// `CLIENT_*`.
    Client,
    /// `FORWARDER_*`.
    Forwarder,
    /// `RESOLVER_*`.
    Resolver,
    /// `STUB_*`.
    Stub,
    /// `TOOL_*`.
    Tool,
    /// `UPDATE_*`.
    Update,
}

impl Family {
    /// Every family, in the order pktvisor lists them.
    pub const ALL: [Family; 7] = [
        Self::Auth,
        Self::Client,
        Self::Forwarder,
        Self::Resolver,
        Self::Stub,
        Self::Tool,
        Self::Update,
    ];

    /// The configuration name (`auth`, `client`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Client => "client",
            Self::Forwarder => "forwarder",
            Self::Resolver => "resolver",
            Self::Stub => "stub",
            Self::Tool => "tool",
            Self::Update => "update",
        }
    }

    /// Parses a configuration name (exact, lower case, as pktvisor accepts it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Which of a message's two time stamps dates the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeSource {
    /// `query_time_sec` / `query_time_nsec`.
    Query,
    /// `response_time_sec` / `response_time_nsec`.
    Response,
}

impl MessageType {
    /// Maps a wire value to a message type.
    pub fn from_u32(n: u32) -> Self {
        match n {
            1 => Self::AuthQuery,
            2 => Self::AuthResponse,
            3 => Self::ResolverQuery,
            4 => Self::ResolverResponse,
            5 => Self::ClientQuery,
            6 => Self::ClientResponse,
            7 => Self::ForwarderQuery,
            8 => Self::ForwarderResponse,
            9 => Self::StubQuery,
            10 => Self::StubResponse,
            11 => Self::ToolQuery,
            12 => Self::ToolResponse,
            13 => Self::UpdateQuery,
            14 => Self::UpdateResponse,
            other => Self::Other(other),
        }
    }

    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            Self::AuthQuery => 1,
            Self::AuthResponse => 2,
            Self::ResolverQuery => 3,
            Self::ResolverResponse => 4,
            Self::ClientQuery => 5,
            Self::ClientResponse => 6,
            Self::ForwarderQuery => 7,
            Self::ForwarderResponse => 8,
            Self::StubQuery => 9,
            Self::StubResponse => 10,
            Self::ToolQuery => 11,
            Self::ToolResponse => 12,
            Self::UpdateQuery => 13,
            Self::UpdateResponse => 14,
            Self::Other(n) => n,
        }
    }

    /// True for a defined type other than [`MessageType::Other`].
    pub fn is_known(self) -> bool {
        !matches!(self, Self::Other(_))
    }

    /// True for the seven `*_QUERY` types (odd values 1..=13).
    pub fn is_query(self) -> bool {
        self.is_known() && !self.number().is_multiple_of(2)
    }

    /// True for the seven `*_RESPONSE` types (even values 2..=14).
    pub fn is_response(self) -> bool {
        self.is_known() && self.number().is_multiple_of(2)
    }

    /// The `*_QUERY` / `*_RESPONSE` pair this type belongs to.
    pub fn family(self) -> Option<Family> {
        Some(match self {
            Self::AuthQuery | Self::AuthResponse => Family::Auth,
            Self::ResolverQuery | Self::ResolverResponse => Family::Resolver,
            Self::ClientQuery | Self::ClientResponse => Family::Client,
            Self::ForwarderQuery | Self::ForwarderResponse => Family::Forwarder,
            Self::StubQuery | Self::StubResponse => Family::Stub,
            Self::ToolQuery | Self::ToolResponse => Family::Tool,
            Self::UpdateQuery | Self::UpdateResponse => Family::Update,
            Self::Other(_) => return None,
        })
    }

    /// pktvisor's net-handler direction: messages the host received (`CLIENT_QUERY`,
    /// `STUB_RESPONSE`, `RESOLVER_RESPONSE`, `AUTH_QUERY`, `FORWARDER_RESPONSE`,
    /// `UPDATE_QUERY`, `TOOL_RESPONSE`) go to the host, their counterparts leave it.
    pub fn direction(self) -> Option<Direction> {
        match self {
            Self::ClientQuery
            | Self::StubResponse
            | Self::ResolverResponse
            | Self::AuthQuery
            | Self::ForwarderResponse
            | Self::UpdateQuery
            | Self::ToolResponse => Some(Direction::ToHost),
            Self::ClientResponse
            | Self::StubQuery
            | Self::ResolverQuery
            | Self::AuthResponse
            | Self::ForwarderQuery
            | Self::UpdateResponse
            | Self::ToolQuery => Some(Direction::FromHost),
            Self::Other(_) => None,
        }
    }

    /// Whether the host answered the exchange (`CLIENT`, `AUTH`, `UPDATE`: pktvisor's dns
    /// v2 `in` direction) or asked it (`STUB`, `RESOLVER`, `FORWARDER`, `TOOL`: `out`).
    pub fn host_is_server(self) -> Option<bool> {
        match self.family()? {
            Family::Client | Family::Auth | Family::Update => Some(true),
            Family::Stub | Family::Resolver | Family::Forwarder | Family::Tool => Some(false),
        }
    }

    /// pktvisor's event time rule: `CLIENT`, `AUTH` and `RESOLVER` responses are dated by
    /// their response time and their queries by their query time; other types carry no
    /// usable event time (the caller uses its own clock).
    pub fn time_source(self) -> Option<TimeSource> {
        match self {
            Self::ClientResponse | Self::AuthResponse | Self::ResolverResponse => {
                Some(TimeSource::Response)
            }
            Self::ClientQuery | Self::AuthQuery | Self::ResolverQuery => Some(TimeSource::Query),
            _ => None,
        }
    }
}

/// `SocketFamily`: how to read the address fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketFamily {
    /// `INET` (1): IPv4, 4-byte addresses.
    Inet,
    /// `INET6` (2): IPv6, 16-byte addresses.
    Inet6,
    /// Any other value, kept as its number.
    Other(u32),
}

impl SocketFamily {
    /// Maps a wire value to a family.
    pub fn from_u32(n: u32) -> Self {
        match n {
            1 => Self::Inet,
            2 => Self::Inet6,
            other => Self::Other(other),
        }
    }

    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            Self::Inet => 1,
            Self::Inet6 => 2,
            Self::Other(n) => n,
        }
    }
}

/// `SocketProtocol`: the transport that carried the DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketProtocol {
    /// `UDP` (1).
    Udp,
    /// `TCP` (2).
    Tcp,
    /// `DOT` (3): DNS over TLS.
    Dot,
    /// `DOH` (4): DNS over HTTPS.
    Doh,
    /// `DNSCryptUDP` (5).
    DnsCryptUdp,
    /// `DNSCryptTCP` (6).
    DnsCryptTcp,
    /// `DOQ` (7): DNS over QUIC.
    Doq,
    /// Any other value, kept as its number.
    Other(u32),
}

impl SocketProtocol {
    /// Maps a wire value to a protocol.
    pub fn from_u32(n: u32) -> Self {
        match n {
            1 => Self::Udp,
            2 => Self::Tcp,
            3 => Self::Dot,
            4 => Self::Doh,
            5 => Self::DnsCryptUdp,
            6 => Self::DnsCryptTcp,
            7 => Self::Doq,
            other => Self::Other(other),
        }
    }

    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            Self::Udp => 1,
            Self::Tcp => 2,
            Self::Dot => 3,
            Self::Doh => 4,
            Self::DnsCryptUdp => 5,
            Self::DnsCryptTcp => 6,
            Self::Doq => 7,
            Self::Other(n) => n,
        }
    }
}

/// `Message`: one DNS message and its metadata. Every field is optional on the wire;
/// `None` means absent (pktvisor's `has_x()` is `is_some()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Message<'a> {
    /// `type` (1); required by the schema but possibly missing in the wild.
    pub kind: Option<MessageType>,
    /// `socket_family` (2).
    pub socket_family: Option<SocketFamily>,
    /// `socket_protocol` (3).
    pub socket_protocol: Option<SocketProtocol>,
    /// `query_address` (4): the initiator's address, 4 or 16 bytes.
    pub query_address: Option<&'a [u8]>,
    /// `response_address` (5): the responder's address, 4 or 16 bytes.
    pub response_address: Option<&'a [u8]>,
    /// `query_port` (6).
    pub query_port: Option<u32>,
    /// `response_port` (7).
    pub response_port: Option<u32>,
    /// `query_time_sec` (8).
    pub query_time_sec: Option<u64>,
    /// `query_time_nsec` (9).
    pub query_time_nsec: Option<u32>,
    /// `query_message` (10): the wire-format DNS query.
    pub query_message: Option<&'a [u8]>,
    /// `query_zone` (11): a wire-format domain name.
    pub query_zone: Option<&'a [u8]>,
    /// `response_time_sec` (12).
    pub response_time_sec: Option<u64>,
    /// `response_time_nsec` (13).
    pub response_time_nsec: Option<u32>,
    /// `response_message` (14): the wire-format DNS response.
    pub response_message: Option<&'a [u8]>,
    /// `policy` (15), left encoded.
    pub policy: Option<&'a [u8]>,
    /// `http_protocol` (16): 1 HTTP/1, 2 HTTP/2, 3 HTTP/3, others kept as numbers.
    pub http_protocol: Option<u32>,
}

/// The top-level `Dnstap` message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dnstap<'a> {
    /// `identity` (1): the server's identity string.
    pub identity: Option<&'a [u8]>,
    /// `version` (2): the server's version string.
    pub version: Option<&'a [u8]>,
    /// `extra` (3): free-form annotation.
    pub extra: Option<&'a [u8]>,
    /// `type` (15); required by the schema but possibly missing in the wild.
    pub kind: Option<DnstapType>,
    /// `message` (14).
    pub message: Option<Message<'a>>,
}

/// Protobuf `int32`/`uint32`/enum fields keep the low 32 bits of the varint (negative
/// enum values arrive sign-extended to 64 bits).
fn low32(v: u64) -> u32 {
    v as u32
}

fn nanos(sec: Option<u64>, nsec: Option<u32>) -> Option<u64> {
    Some(
        sec?.saturating_mul(1_000_000_000)
            .saturating_add(u64::from(nsec.unwrap_or(0))),
    )
}

fn ip(bytes: Option<&[u8]>) -> Option<IpAddr> {
    let b = bytes?;
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
        Some(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        None
    }
}

impl<'a> Message<'a> {
    /// Decodes a `Message` from its protobuf encoding.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DnstapError> {
        let mut m = Self::default();
        m.merge(buf)?;
        Ok(m)
    }

    /// Decodes `buf` over `self`: fields present in `buf` replace the current values, as
    /// protobuf merges a repeated occurrence of an embedded message. A field with an
    /// unexpected wire type is skipped like an unknown field.
    pub fn merge(&mut self, buf: &'a [u8]) -> Result<(), DnstapError> {
        for field in Reader::new(buf) {
            let field = field?;
            match (field.number, field.value) {
                (1, Value::Varint(v)) => self.kind = Some(MessageType::from_u32(low32(v))),
                (2, Value::Varint(v)) => {
                    self.socket_family = Some(SocketFamily::from_u32(low32(v)));
                }
                (3, Value::Varint(v)) => {
                    self.socket_protocol = Some(SocketProtocol::from_u32(low32(v)));
                }
                (4, Value::Bytes(b)) => self.query_address = Some(b),
                (5, Value::Bytes(b)) => self.response_address = Some(b),
                (6, Value::Varint(v)) => self.query_port = Some(low32(v)),
                (7, Value::Varint(v)) => self.response_port = Some(low32(v)),
                (8, Value::Varint(v)) => self.query_time_sec = Some(v),
                (9, Value::Fixed32(v)) => self.query_time_nsec = Some(v),
                (10, Value::Bytes(b)) => self.query_message = Some(b),
                (11, Value::Bytes(b)) => self.query_zone = Some(b),
                (12, Value::Varint(v)) => self.response_time_sec = Some(v),
                (13, Value::Fixed32(v)) => self.response_time_nsec = Some(v),
                (14, Value::Bytes(b)) => self.response_message = Some(b),
                (15, Value::Bytes(b)) => self.policy = Some(b),
                (16, Value::Varint(v)) => self.http_protocol = Some(low32(v)),
                _ => {}
            }
        }
        Ok(())
    }

    /// True for a query type (see [`MessageType::is_query`]).
    pub fn is_query(&self) -> bool {
        self.kind.is_some_and(MessageType::is_query)
    }

    /// True for a response type (see [`MessageType::is_response`]).
    pub fn is_response(&self) -> bool {
        self.kind.is_some_and(MessageType::is_response)
    }

    /// Direction relative to the host (see [`MessageType::direction`]).
    pub fn direction(&self) -> Option<Direction> {
        self.kind.and_then(MessageType::direction)
    }

    /// The query address as an IP address, when it is 4 or 16 bytes long.
    pub fn query_ip(&self) -> Option<IpAddr> {
        ip(self.query_address)
    }

    /// The response address as an IP address, when it is 4 or 16 bytes long.
    pub fn response_ip(&self) -> Option<IpAddr> {
        ip(self.response_address)
    }

    /// Query time in nanoseconds since the epoch (`None` without `query_time_sec`; a
    /// missing `query_time_nsec` counts as 0).
    pub fn query_time_ns(&self) -> Option<u64> {
        nanos(self.query_time_sec, self.query_time_nsec)
    }

    /// Response time in nanoseconds since the epoch (`None` without `response_time_sec`).
    pub fn response_time_ns(&self) -> Option<u64> {
        nanos(self.response_time_sec, self.response_time_nsec)
    }

    /// The event time by pktvisor's rule ([`MessageType::time_source`]). `None` both when
    /// the type has no rule and when the chosen time is absent; [`MessageType::time_source`]
    /// tells the two apart.
    pub fn event_time_ns(&self) -> Option<u64> {
        match self.kind?.time_source()? {
            TimeSource::Query => self.query_time_ns(),
            TimeSource::Response => self.response_time_ns(),
        }
    }

    /// The DNS message the type is about: `query_message` for queries, `response_message`
    /// for responses, `None` for unknown types or when absent.
    pub fn dns_message(&self) -> Option<&'a [u8]> {
        if self.is_query() {
            self.query_message
        } else if self.is_response() {
            self.response_message
        } else {
            None
        }
    }

    /// Bytes of the protobuf encoding produced by [`Message::encode`].
    pub fn encoded_len(&self) -> usize {
        let v = |n: u32, x: Option<u64>| x.map_or(0, |x| pb::tag_len(n) + pb::varint_len(x));
        let b = |n: u32, x: Option<&[u8]>| {
            x.map_or(0, |x| {
                pb::tag_len(n) + pb::varint_len(x.len() as u64) + x.len()
            })
        };
        let f = |n: u32, x: Option<u32>| x.map_or(0, |_| pb::tag_len(n) + 4);
        v(1, self.kind.map(|k| u64::from(k.number())))
            + v(2, self.socket_family.map(|k| u64::from(k.number())))
            + v(3, self.socket_protocol.map(|k| u64::from(k.number())))
            + b(4, self.query_address)
            + b(5, self.response_address)
            + v(6, self.query_port.map(u64::from))
            + v(7, self.response_port.map(u64::from))
            + v(8, self.query_time_sec)
            + f(9, self.query_time_nsec)
            + b(10, self.query_message)
            + b(11, self.query_zone)
            + v(12, self.response_time_sec)
            + f(13, self.response_time_nsec)
            + b(14, self.response_message)
            + b(15, self.policy)
            + v(16, self.http_protocol.map(u64::from))
    }

    /// Appends the protobuf encoding of the present fields, in field-number order.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let v = |out: &mut Vec<u8>, n: u32, x: Option<u64>| {
            if let Some(x) = x {
                pb::put_varint_field(out, n, x);
            }
        };
        let b = |out: &mut Vec<u8>, n: u32, x: Option<&[u8]>| {
            if let Some(x) = x {
                pb::put_bytes_field(out, n, x);
            }
        };
        let f = |out: &mut Vec<u8>, n: u32, x: Option<u32>| {
            if let Some(x) = x {
                pb::put_fixed32_field(out, n, x);
            }
        };
        v(out, 1, self.kind.map(|k| u64::from(k.number())));
        v(out, 2, self.socket_family.map(|k| u64::from(k.number())));
        v(out, 3, self.socket_protocol.map(|k| u64::from(k.number())));
        b(out, 4, self.query_address);
        b(out, 5, self.response_address);
        v(out, 6, self.query_port.map(u64::from));
        v(out, 7, self.response_port.map(u64::from));
        v(out, 8, self.query_time_sec);
        f(out, 9, self.query_time_nsec);
        b(out, 10, self.query_message);
        b(out, 11, self.query_zone);
        v(out, 12, self.response_time_sec);
        f(out, 13, self.response_time_nsec);
        b(out, 14, self.response_message);
        b(out, 15, self.policy);
        v(out, 16, self.http_protocol.map(u64::from));
    }
}

impl<'a> Dnstap<'a> {
    /// Decodes a `Dnstap` message (one Frame Streams data-frame payload).
    pub fn decode(buf: &'a [u8]) -> Result<Self, DnstapError> {
        let mut d = Self::default();
        for field in Reader::new(buf) {
            let field = field?;
            match (field.number, field.value) {
                (1, Value::Bytes(b)) => d.identity = Some(b),
                (2, Value::Bytes(b)) => d.version = Some(b),
                (3, Value::Bytes(b)) => d.extra = Some(b),
                (14, Value::Bytes(b)) => d.message.get_or_insert_default().merge(b)?,
                (15, Value::Varint(v)) => d.kind = Some(DnstapType::from_u32(low32(v))),
                _ => {}
            }
        }
        Ok(d)
    }

    /// The message pktvisor would process: the payload parses with every required field
    /// holding a defined value (`Dnstap.type` and `Message.type`; protobuf drops unknown
    /// enum values, which then count as missing), the type is `MESSAGE` and a message is
    /// present. Anything else pktvisor skips as "wrong type or has no message".
    pub fn event_message(&self) -> Option<&Message<'a>> {
        if self.kind != Some(DnstapType::Message) {
            return None;
        }
        self.message
            .as_ref()
            .filter(|m| m.kind.is_some_and(MessageType::is_known))
    }

    /// Appends the protobuf encoding of the present fields, in field-number order.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (n, x) in [(1, self.identity), (2, self.version), (3, self.extra)] {
            if let Some(x) = x {
                pb::put_bytes_field(out, n, x);
            }
        }
        if let Some(m) = &self.message {
            // The length prefix is computed up front so the message is written in place.
            pb::put_len_tag(out, 14, m.encoded_len());
            m.encode(out);
        }
        if let Some(k) = self.kind {
            pb::put_varint_field(out, 15, u64::from(k.number()));
        }
    }
}

/// Decodes one Frame Streams data-frame payload as a `Dnstap` message.
pub fn decode(payload: &[u8]) -> Result<Dnstap<'_>, DnstapError> {
    Dnstap::decode(payload)
}

/// Fuzzing body: walks `data` as a Frame Streams stream, decodes every data frame as
/// `Dnstap`, exercises every helper, and decodes `data` itself as a `Dnstap` too. Must
/// never panic whatever the input.
pub fn fuzz_dnstap(data: &[u8]) {
    let mut dec = fstrm::FrameDecoder::with_max_frame_len(1 << 20);
    let mut rest = data;
    // Every frame consumes at least 4 bytes, so this ends.
    while let Ok(step) = dec.next(rest) {
        let consumed = match step {
            fstrm::Step::NeedMore => break,
            fstrm::Step::Control { consumed, control } => {
                let _ = control.content_types().count();
                let _ = fstrm::reply_to(&control, CONTENT_TYPE);
                consumed
            }
            fstrm::Step::Data { consumed, payload } => {
                exercise(payload);
                consumed
            }
        };
        rest = rest.get(consumed..).unwrap_or_default();
    }
    exercise(data);
}

fn exercise(payload: &[u8]) {
    let Ok(d) = decode(payload) else {
        return;
    };
    let _ = d.event_message();
    if let Some(m) = &d.message {
        let _ = (
            m.is_query(),
            m.is_response(),
            m.direction(),
            m.query_ip(),
            m.response_ip(),
            m.event_time_ns(),
            m.dns_message(),
            m.kind.map(|k| (k.family(), k.host_is_server(), k.number())),
            m.encoded_len(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Dnstap<'static> {
        Dnstap {
            identity: Some(b""),
            version: Some(b"5.4.2"),
            extra: None,
            kind: Some(DnstapType::Message),
            message: Some(Message {
                kind: Some(MessageType::ClientQuery),
                socket_family: Some(SocketFamily::Inet),
                socket_protocol: Some(SocketProtocol::Udp),
                query_address: Some(&[192, 168, 0, 54]),
                response_address: Some(&[192, 168, 0, 55]),
                query_port: Some(40_000),
                response_port: Some(53),
                query_time_sec: Some(1_637_597_787),
                query_time_nsec: Some(853_960_000),
                query_message: Some(b"\x12\x34\x01\x00"),
                ..Message::default()
            }),
        }
    }

    #[test]
    fn decodes_a_hand_encoded_message() {
        // Built field by field so the test does not rely on the encoder under test.
        let mut msg = Vec::new();
        pb::put_varint_field(&mut msg, 1, 6);
        pb::put_varint_field(&mut msg, 2, 2);
        pb::put_varint_field(&mut msg, 3, 3);
        pb::put_bytes_field(
            &mut msg,
            5,
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        );
        pb::put_varint_field(&mut msg, 12, 10);
        pb::put_fixed32_field(&mut msg, 13, 5);
        pb::put_varint_field(&mut msg, 99, 7); // unknown field
        pb::put_fixed64_field(&mut msg, 6, 1); // known number, wrong wire type
        let mut top = Vec::new();
        pb::put_bytes_field(&mut top, 1, b"ns1");
        pb::put_bytes_field(&mut top, 14, &msg);
        pb::put_varint_field(&mut top, 15, 1);
        let d = decode(&top).unwrap();
        assert_eq!(d.identity, Some(&b"ns1"[..]));
        assert_eq!(d.version, None);
        assert_eq!(d.kind, Some(DnstapType::Message));
        let m = d.event_message().unwrap();
        assert_eq!(m.kind, Some(MessageType::ClientResponse));
        assert_eq!(m.socket_family, Some(SocketFamily::Inet6));
        assert_eq!(m.socket_protocol, Some(SocketProtocol::Dot));
        assert_eq!(m.query_port, None);
        assert_eq!(m.response_ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(m.query_ip(), None);
        assert_eq!(m.event_time_ns(), Some(10_000_000_005));
        assert!(m.is_response() && !m.is_query());
        assert_eq!(m.direction(), Some(Direction::FromHost));
    }

    #[test]
    fn repeated_message_fields_merge() {
        let mut a = Vec::new();
        pb::put_varint_field(&mut a, 1, 5);
        pb::put_varint_field(&mut a, 6, 1000);
        let mut b = Vec::new();
        pb::put_varint_field(&mut b, 6, 2000);
        pb::put_varint_field(&mut b, 7, 53);
        let mut top = Vec::new();
        pb::put_bytes_field(&mut top, 14, &a);
        pb::put_bytes_field(&mut top, 14, &b);
        let m = decode(&top).unwrap().message.unwrap();
        assert_eq!(m.kind, Some(MessageType::ClientQuery));
        assert_eq!(m.query_port, Some(2000));
        assert_eq!(m.response_port, Some(53));
    }

    #[test]
    fn pktvisor_acceptance_rule() {
        let mut d = sample();
        assert!(d.event_message().is_some());
        d.kind = None;
        assert!(d.event_message().is_none(), "missing Dnstap.type");
        d.kind = Some(DnstapType::Other(2));
        assert!(d.event_message().is_none(), "unknown Dnstap.type");
        d.kind = Some(DnstapType::Message);
        d.message.as_mut().unwrap().kind = Some(MessageType::Other(15));
        assert!(d.event_message().is_none(), "unknown Message.type");
        d.message = None;
        assert!(d.event_message().is_none(), "no message");
    }

    #[test]
    fn classification_tables() {
        let to_host = [5, 10, 4, 1, 8, 13, 12];
        for n in 1..=14 {
            let t = MessageType::from_u32(n);
            assert_eq!(t.number(), n);
            assert_eq!(t.is_query(), n % 2 == 1, "{t:?}");
            assert_eq!(t.is_response(), n % 2 == 0, "{t:?}");
            let want = if to_host.contains(&n) {
                Direction::ToHost
            } else {
                Direction::FromHost
            };
            assert_eq!(t.direction(), Some(want), "{t:?}");
            assert!(t.family().is_some());
        }
        let other = MessageType::from_u32(0);
        assert_eq!(other, MessageType::Other(0));
        assert!(!other.is_query() && !other.is_response());
        assert_eq!(other.direction(), None);
        assert_eq!(other.family(), None);
        assert_eq!(other.time_source(), None);

        use MessageType as T;
        assert_eq!(T::ClientQuery.host_is_server(), Some(true));
        assert_eq!(T::UpdateResponse.host_is_server(), Some(true));
        assert_eq!(T::AuthQuery.host_is_server(), Some(true));
        assert_eq!(T::ToolQuery.host_is_server(), Some(false));
        assert_eq!(T::ResolverResponse.host_is_server(), Some(false));
        assert_eq!(T::ForwarderQuery.host_is_server(), Some(false));
        assert_eq!(T::StubResponse.host_is_server(), Some(false));

        for f in Family::ALL {
            assert_eq!(Family::from_name(f.name()), Some(f));
        }
        assert_eq!(Family::from_name("recursive"), None);
        assert_eq!(T::UpdateQuery.family(), Some(Family::Update));

        for n in 1..=7 {
            assert_eq!(SocketProtocol::from_u32(n).number(), n);
            assert!(!matches!(
                SocketProtocol::from_u32(n),
                SocketProtocol::Other(_)
            ));
        }
        assert_eq!(SocketProtocol::from_u32(8), SocketProtocol::Other(8));
        assert_eq!(SocketFamily::from_u32(2), SocketFamily::Inet6);
        assert_eq!(SocketFamily::from_u32(9).number(), 9);
        assert_eq!(DnstapType::from_u32(1).number(), 1);
    }

    #[test]
    fn event_time_rule() {
        let mut m = Message {
            query_time_sec: Some(100),
            query_time_nsec: Some(7),
            response_time_sec: Some(200),
            ..Message::default()
        };
        let cases = [
            (MessageType::ClientQuery, Some(100_000_000_007)),
            (MessageType::AuthQuery, Some(100_000_000_007)),
            (MessageType::ResolverQuery, Some(100_000_000_007)),
            (MessageType::ClientResponse, Some(200_000_000_000)),
            (MessageType::AuthResponse, Some(200_000_000_000)),
            (MessageType::ResolverResponse, Some(200_000_000_000)),
            (MessageType::StubQuery, None),
            (MessageType::ToolResponse, None),
            (MessageType::ForwarderResponse, None),
        ];
        for (t, want) in cases {
            m.kind = Some(t);
            assert_eq!(m.event_time_ns(), want, "{t:?}");
        }
        m.kind = Some(MessageType::ClientResponse);
        m.response_time_sec = None;
        assert_eq!(m.event_time_ns(), None);
        assert_eq!(
            MessageType::ClientResponse.time_source(),
            Some(TimeSource::Response)
        );
        m.query_time_sec = Some(u64::MAX);
        assert_eq!(m.query_time_ns(), Some(u64::MAX));
    }

    #[test]
    fn dns_message_follows_the_type() {
        let mut m = Message {
            query_message: Some(b"q"),
            response_message: Some(b"r"),
            ..Message::default()
        };
        assert_eq!(m.dns_message(), None);
        m.kind = Some(MessageType::AuthQuery);
        assert_eq!(m.dns_message(), Some(&b"q"[..]));
        m.kind = Some(MessageType::AuthResponse);
        assert_eq!(m.dns_message(), Some(&b"r"[..]));
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(decode(&[0x72, 0x05, 0x08]).is_err(), "message cut short");
        // A message whose inner bytes are malformed.
        assert_eq!(
            decode(&[0x72, 0x01, 0x0b]),
            Err(DnstapError::Protobuf(PbError::BadWireType(3)))
        );
        assert_eq!(decode(&[]), Ok(Dnstap::default()));
        assert_eq!(
            decode(&[0x00]).unwrap_err().to_string(),
            "malformed dnstap protobuf: invalid field number 0"
        );
    }

    #[test]
    fn negative_enum_values_keep_their_bits() {
        let mut top = Vec::new();
        pb::put_varint_field(&mut top, 15, (-1i64) as u64);
        assert_eq!(
            decode(&top).unwrap().kind,
            Some(DnstapType::Other(u32::MAX))
        );
    }

    fn opt<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
        proptest::option::of(s)
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..24)
    }

    /// Message type, family, protocol, query port, response port, HTTP protocol.
    type MsgEnums = (
        Option<u32>,
        Option<u32>,
        Option<u32>,
        Option<u32>,
        Option<u32>,
        Option<u32>,
    );

    /// Owned field values from which a borrowed [`Dnstap`] is built.
    type Owned = (
        [Option<Vec<u8>>; 3],
        Option<u32>,
        Option<MsgEnums>,
        [Option<Vec<u8>>; 6],
        [Option<u64>; 2],
        [Option<u32>; 2],
    );

    fn owned() -> impl Strategy<Value = Owned> {
        (
            [opt(bytes()), opt(bytes()), opt(bytes())],
            opt(0u32..4),
            opt((
                opt(0u32..20),
                opt(0u32..4),
                opt(0u32..10),
                opt(any::<u32>()),
                opt(any::<u32>()),
                opt(0u32..5),
            )),
            [
                opt(bytes()),
                opt(bytes()),
                opt(bytes()),
                opt(bytes()),
                opt(bytes()),
                opt(bytes()),
            ],
            [opt(any::<u64>()), opt(any::<u64>())],
            [opt(any::<u32>()), opt(any::<u32>())],
        )
    }

    fn build(o: &Owned) -> Dnstap<'_> {
        let (top, kind, msg, b, secs, nsecs) = o;
        let s = |i: usize| b[i].as_deref();
        Dnstap {
            identity: top[0].as_deref(),
            version: top[1].as_deref(),
            extra: top[2].as_deref(),
            kind: kind.map(DnstapType::from_u32),
            message: msg.map(|e| Message {
                kind: e.0.map(MessageType::from_u32),
                socket_family: e.1.map(SocketFamily::from_u32),
                socket_protocol: e.2.map(SocketProtocol::from_u32),
                query_address: s(0),
                response_address: s(1),
                query_port: e.3,
                response_port: e.4,
                query_time_sec: secs[0],
                query_time_nsec: nsecs[0],
                query_message: s(2),
                query_zone: s(3),
                response_time_sec: secs[1],
                response_time_nsec: nsecs[1],
                response_message: s(4),
                policy: s(5),
                http_protocol: e.5,
            }),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(o in owned()) {
            let d = build(&o);
            let mut out = Vec::new();
            d.encode(&mut out);
            if let Some(m) = &d.message {
                let mut inner = Vec::new();
                m.encode(&mut inner);
                prop_assert_eq!(inner.len(), m.encoded_len());
            }
            prop_assert_eq!(decode(&out), Ok(d));
        }

        #[test]
        fn fuzz_body_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            fuzz_dnstap(&data);
            // Whatever decodes re-encodes to something that decodes to the same value.
            if let Ok(d) = decode(&data) {
                let mut out = Vec::new();
                d.encode(&mut out);
                prop_assert_eq!(decode(&out), Ok(d));
            }
        }

        #[test]
        fn fuzz_body_on_mutated_valid_streams(o in owned(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
            let d = build(&o);
            let mut payload = Vec::new();
            d.encode(&mut payload);
            let mut stream = Vec::new();
            fstrm::encode_control(&mut stream, fstrm::ControlType::Start, &[CONTENT_TYPE]).unwrap();
            if !payload.is_empty() {
                fstrm::encode_data(&mut stream, &payload).unwrap();
            }
            for (at, x) in flips {
                let n = stream.len();
                stream[at % n] ^= x;
            }
            fuzz_dnstap(&stream);
            prop_assert!(!stream.is_empty());
        }
    }
}
