//! One worker's processing of decoded packets: direction, DNS decoding and DNS-over-TCP
//! reassembly done once per packet, then every policy's handlers, independently or as a chain.
//!
//! This is the closed registry of handler kinds: adding a handler means a variant here and a
//! match arm in each function below.

use std::net::IpAddr;

use flow::tcp::{TcpConfig, TcpDnsReassembler};
use wire::dns::NameBuf;
use wire::packet::{L3, L4, Packet};

use crate::config::{ConfigError, ConfigMap, WindowConfig};
use crate::dhcp::{Dhcp, DhcpEvent};
use crate::dns::v1::DnsV1;
use crate::dns::v2::DnsV2;
use crate::event::{
    Direction, DnsEvent, Geo, HostSpec, L3Kind, L4Kind, PacketEvent, deep_sample, dns_metric_port,
};
use crate::export::Export;
use crate::flow::{FlowHandler, FlowInput};
use crate::flows::Flows;
use crate::http::Http;
use crate::net::{NetV1, NetV2};
use crate::pcap::PcapStats;
use crate::quic::Quic;
use crate::tls::Tls;

/// What a policy asks for one handler module.
#[derive(Clone, Debug, Default)]
pub struct HandlerSpec {
    /// Module key in the policy (`modules.<name>`).
    pub name: String,
    /// Handler type: `net`, `dns` or `pcap`.
    pub kind: String,
    /// `require_version`: "1.0" (default) or "2.0".
    pub version: Option<String>,
    /// `config` and `filter` merged.
    pub config: ConfigMap,
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    pub window: WindowConfig,
}

/// A handler instance of any kind. Variants differ in size, but there are a handful per
/// worker and they are never moved on the packet path.
#[allow(clippy::large_enum_variant)]
pub enum HandlerKind {
    NetV1(NetV1),
    NetV2(NetV2),
    DnsV1(DnsV1),
    DnsV2(DnsV2),
    Pcap(PcapStats),
    Dhcp(Dhcp),
    Flow(FlowHandler),
    Flows(Flows),
    Tls(Tls),
    Http(Http),
    Quic(Quic),
}

/// A named handler instance.
pub struct Handler {
    /// Instance name (pktvisor: `<policy>-<tap>-<module>`).
    pub name: String,
    pub kind: HandlerKind,
    /// The handler's deep-sampling rate, read once here rather than per event.
    deep_rate: u8,
    /// Chain event kinds ([`ChainEvent::bit`]) this handler passes on untouched: offering them
    /// would only return the event itself, so dispatch does not.
    passes: u8,
    /// Chain event kinds this handler does nothing with (it passes them on, or stops a chain
    /// there): an independent policy need not offer them.
    ignores: u8,
}

/// Bounds on per-worker state.
#[derive(Clone, Debug)]
pub struct Limits {
    pub tcp: TcpConfig,
    pub max_open_xacts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tcp: TcpConfig::default(),
            // 7/8 of 2^20: the most entries a 2^20-bucket table holds before it doubles
            // (about 41 MiB per transaction table).
            max_open_xacts: 917_504,
        }
    }
}

impl Handler {
    /// Builds a handler from its spec, with pktvisor's error messages.
    pub fn build(
        spec: &HandlerSpec,
        instance: String,
        limits: &Limits,
    ) -> Result<Self, ConfigError> {
        let window = spec.window.apply(&spec.config)?;
        let version = spec.version.as_deref().unwrap_or("1.0");
        let kind = match (spec.kind.as_str(), version) {
            ("net", "1.0") => HandlerKind::NetV1(NetV1::new(
                &spec.config,
                window,
                &spec.enable,
                &spec.disable,
            )?),
            ("net", "2.0") => HandlerKind::NetV2(NetV2::new(
                &spec.config,
                window,
                &spec.enable,
                &spec.disable,
            )?),
            ("dns", "1.0") => HandlerKind::DnsV1(DnsV1::new(
                &spec.config,
                window,
                &spec.enable,
                &spec.disable,
                limits.max_open_xacts,
            )?),
            ("dns", "2.0") => HandlerKind::DnsV2(DnsV2::new(
                &spec.config,
                window,
                &spec.enable,
                &spec.disable,
                limits.max_open_xacts,
            )?),
            ("pcap", "1.0") => HandlerKind::Pcap(PcapStats::new(&spec.config, window)?),
            ("dhcp", "1.0") => HandlerKind::Dhcp(Dhcp::new(
                &spec.config,
                window,
                &spec.enable,
                &spec.disable,
                limits.max_open_xacts,
            )?),
            ("flow", "1.0") => HandlerKind::Flow(FlowHandler::new(
                &spec.config,
                window,
                &spec.enable,
                &spec.disable,
            )?),
            ("flows", "1.0") => HandlerKind::Flows(Flows::new(&spec.config, window)?),
            ("tls", "1.0") => {
                HandlerKind::Tls(Tls::new(&spec.config, window, &spec.enable, &spec.disable)?)
            }
            ("http", "1.0") => HandlerKind::Http(Http::new(
                &spec.config,
                window,
                &spec.enable,
                &spec.disable,
            )?),
            ("quic", "1.0") => HandlerKind::Quic(Quic::new(
                &spec.config,
                window,
                &spec.enable,
                &spec.disable,
            )?),
            (kind, version) => {
                return Err(ConfigError(format!(
                    "requires stream handler type '{kind}' and version '{version}' which is not available"
                )));
            }
        };
        let mut h = Self {
            name: instance,
            kind,
            deep_rate: 100,
            passes: 0,
            ignores: 0,
        };
        h.deep_rate = h.window_deep_rate();
        (h.passes, h.ignores) = h.event_masks();
        Ok(h)
    }

    /// The (passes, ignores) masks of this handler kind, as `offer` treats each event kind.
    fn event_masks(&self) -> (u8, u8) {
        use ChainEvent as E;
        const ALL: u8 =
            E::PACKET | E::DNS_PACKET | E::TCP_DATA | E::TCP_PACKET | E::DATAGRAM | E::DHCP;
        match &self.kind {
            // Stream data passes a net handler uncounted.
            HandlerKind::NetV1(_) | HandlerKind::NetV2(_) => {
                let pass = E::TCP_DATA | E::DATAGRAM;
                (pass, pass)
            }
            // A packet without a DNS message (or with DHCP) stops a chain at a dns handler.
            HandlerKind::DnsV1(_) | HandlerKind::DnsV2(_) => (0, E::PACKET | E::DHCP),
            // Only DHCP events reach a dhcp handler; the rest stop a chain there.
            HandlerKind::Dhcp(_) => (0, ALL & !E::DHCP),
            // These read packets directly (`Pipeline::process`), or pass everything on.
            HandlerKind::Pcap(_)
            | HandlerKind::Flow(_)
            | HandlerKind::Flows(_)
            | HandlerKind::Tls(_)
            | HandlerKind::Http(_)
            | HandlerKind::Quic(_) => (ALL, ALL),
        }
    }

    /// JSON/Prometheus schema key of this handler.
    pub fn schema(&self) -> &'static str {
        match &self.kind {
            HandlerKind::NetV1(_) => NetV1::SCHEMA,
            HandlerKind::NetV2(_) => NetV2::SCHEMA,
            HandlerKind::DnsV1(_) => DnsV1::SCHEMA,
            HandlerKind::DnsV2(_) => DnsV2::SCHEMA,
            HandlerKind::Pcap(_) => PcapStats::SCHEMA,
            HandlerKind::Dhcp(_) => Dhcp::SCHEMA,
            HandlerKind::Flow(_) => FlowHandler::SCHEMA,
            HandlerKind::Flows(_) => Flows::SCHEMA,
            HandlerKind::Tls(_) => Tls::SCHEMA,
            HandlerKind::Http(_) => Http::SCHEMA,
            HandlerKind::Quic(_) => Quic::SCHEMA,
        }
    }

    fn window_deep_rate(&self) -> u8 {
        match &self.kind {
            HandlerKind::NetV1(h) => h.window_config.deep_sample_rate,
            HandlerKind::NetV2(h) => h.window_config.deep_sample_rate,
            HandlerKind::DnsV1(h) => h.window_config.deep_sample_rate,
            HandlerKind::DnsV2(h) => h.window_config.deep_sample_rate,
            HandlerKind::Pcap(h) => h.window_config.deep_sample_rate,
            HandlerKind::Dhcp(h) => h.window_config.deep_sample_rate,
            HandlerKind::Flow(h) => h.window_config.deep_sample_rate,
            HandlerKind::Flows(h) => h.window_config.deep_sample_rate,
            HandlerKind::Tls(h) => h.window_config.deep_sample_rate,
            HandlerKind::Http(h) => h.window_config.deep_sample_rate,
            HandlerKind::Quic(h) => h.window_config.deep_sample_rate,
        }
    }

    fn rotate_to(&mut self, seq: u32, ts_ns: u64) {
        match &mut self.kind {
            HandlerKind::NetV1(h) => {
                h.window.rotate_to(seq);
            }
            HandlerKind::NetV2(h) => {
                h.window.rotate_to(seq);
            }
            HandlerKind::DnsV1(h) => {
                if h.window.rotate_to(seq) {
                    h.on_rotate(ts_ns);
                }
            }
            HandlerKind::DnsV2(h) => {
                if h.window.rotate_to(seq) {
                    h.on_rotate(ts_ns);
                }
            }
            HandlerKind::Pcap(h) => {
                h.window.rotate_to(seq);
            }
            HandlerKind::Dhcp(h) => {
                if h.window.rotate_to(seq) {
                    h.on_rotate(ts_ns);
                }
            }
            HandlerKind::Flow(h) => {
                h.window.rotate_to(seq);
            }
            HandlerKind::Flows(h) => {
                h.window.rotate_to(seq);
            }
            HandlerKind::Tls(h) => h.rotate_to(seq, ts_ns),
            HandlerKind::Http(h) => h.rotate_to(seq, ts_ns),
            HandlerKind::Quic(h) => h.rotate_to(seq, ts_ns),
        }
    }

    /// Merges another worker's instance of the same handler.
    pub fn merge(&mut self, other: &Handler) {
        match (&mut self.kind, &other.kind) {
            (HandlerKind::NetV1(a), HandlerKind::NetV1(b)) => a.window.merge(&b.window),
            (HandlerKind::NetV2(a), HandlerKind::NetV2(b)) => a.window.merge(&b.window),
            (HandlerKind::DnsV1(a), HandlerKind::DnsV1(b)) => a.window.merge(&b.window),
            (HandlerKind::DnsV2(a), HandlerKind::DnsV2(b)) => a.window.merge(&b.window),
            (HandlerKind::Pcap(a), HandlerKind::Pcap(b)) => a.window.merge(&b.window),
            (HandlerKind::Dhcp(a), HandlerKind::Dhcp(b)) => a.window.merge(&b.window),
            (HandlerKind::Flow(a), HandlerKind::Flow(b)) => a.window.merge(&b.window),
            (HandlerKind::Flows(a), HandlerKind::Flows(b)) => a.window.merge(&b.window),
            (HandlerKind::Tls(a), HandlerKind::Tls(b)) => a.window.merge(&b.window),
            (HandlerKind::Http(a), HandlerKind::Http(b)) => a.window.merge(&b.window),
            (HandlerKind::Quic(a), HandlerKind::Quic(b)) => a.window.merge(&b.window),
            _ => {}
        }
    }

    /// Exports the merge of the buckets of the given periods (newest first); `None` when none of
    /// them is kept.
    pub fn export(&self, seqs: &[u32]) -> Option<Export> {
        fn merged<B: crate::window::Bucket>(
            w: &crate::window::Window<B>,
            seqs: &[u32],
        ) -> Option<B> {
            let mut out: Option<B> = None;
            for s in seqs {
                if let Some(b) = w.get(*s) {
                    match &mut out {
                        None => out = Some(b.clone()),
                        Some(o) => o.merge(b),
                    }
                }
            }
            out
        }
        match &self.kind {
            HandlerKind::NetV1(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::NetV2(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::DnsV1(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::DnsV2(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::Pcap(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::Dhcp(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::Flow(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::Flows(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::Tls(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::Http(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
            HandlerKind::Quic(h) => merged(&h.window, seqs).map(|b| h.export(&b)),
        }
    }

    fn is_dns(&self) -> bool {
        matches!(self.kind, HandlerKind::DnsV1(_) | HandlerKind::DnsV2(_))
    }
}

/// A policy's handlers on one worker.
pub struct PolicyPlan {
    pub name: String,
    /// Handlers as a chain (each feeds the next with what it accepted) or independent.
    pub chained: bool,
    pub handlers: Vec<Handler>,
}

/// Counters of what the worker could not decode or track.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub packets: u64,
    pub dns_malformed: u64,
    /// dnstap payloads skipped: undecodable, not a MESSAGE, no message or an unknown type.
    pub dnstap_skipped: u64,
    /// TCP "DNS" messages skipped because the DNS port was the client's, not the server's.
    pub dns_not_served_on_dns_port: u64,
    /// Datagrams on a DHCP port that are not a readable DHCP message.
    pub dhcp_malformed: u64,
}

/// Per-worker processing state.
pub struct Pipeline {
    pub policies: Vec<PolicyPlan>,
    pub(crate) host: HostSpec,
    extra_dns_ports: Vec<u16>,
    /// The DNS ports (pktvisor's four and the configured ones) as a bit per port: every packet
    /// asks for both of its ports.
    dns_ports: DnsPorts,
    tcp: TcpDnsReassembler,
    needs_dns: bool,
    needs_dhcp: bool,
    has_flows: bool,
    needs_tls: bool,
    needs_quic: bool,
    /// Where the handlers that read packets directly are, as (policy, handler) indices, so a
    /// packet visits them without walking every handler: flows, then tls and http, then quic.
    direct: Direct,
    pub stats: PipelineStats,
    tcp_errors_seen: u64,
    /// GeoIP/ASN lookups of this worker.
    pub(crate) geo: Geo,
    /// Reused buffers for the lower-cased question name (UDP message, TCP messages): a
    /// fresh `NameBuf` per packet would zero a kilobyte every time.
    pub(crate) name: Box<NameBuf>,
    tcp_name: Box<NameBuf>,
}

/// A set of ports as one bit per port (8 KiB): [`crate::event::is_dns_port`] in one load.
struct DnsPorts(Box<[u64; 1024]>);

impl DnsPorts {
    /// pktvisor's DNS ports and `extra`.
    fn new(extra: &[u16]) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for p in crate::event::DNS_PORTS.iter().chain(extra) {
            if let Some(w) = bits.get_mut(usize::from(*p >> 6)) {
                *w |= 1 << (p & 63);
            }
        }
        Self(bits)
    }

    #[inline]
    fn contains(&self, port: u16) -> bool {
        self.0
            .get(usize::from(port >> 6))
            .is_some_and(|w| w >> (port & 63) & 1 != 0)
    }

    /// [`crate::event::dns_metric_port`] of these ports.
    #[inline]
    fn metric_port(&self, src_port: u16, dst_port: u16) -> Option<u16> {
        if self.contains(dst_port) {
            Some(src_port)
        } else if self.contains(src_port) {
            Some(dst_port)
        } else {
            None
        }
    }
}

/// Positions of the handlers `Pipeline::process` feeds directly (see [`Pipeline::direct`]).
#[derive(Default)]
struct Direct {
    flows: Vec<(usize, usize)>,
    streams: Vec<(usize, usize)>,
    quic: Vec<(usize, usize)>,
    /// Per policy, per chain event kind (by bit number): which handlers an independent policy
    /// offers that kind to, as a bit per handler index, so dispatch visits only those. `None`
    /// for a chain or a policy of more than 64 handlers (dispatched by walking them all).
    offers: Vec<Option<[u64; 6]>>,
}

impl Direct {
    fn of(policies: &[PolicyPlan]) -> Self {
        let mut d = Self::default();
        for p in policies {
            let mut masks = [0u64; 6];
            let fits = !p.chained && p.handlers.len() <= 64;
            if fits {
                for (j, h) in p.handlers.iter().enumerate() {
                    for (k, m) in masks.iter_mut().enumerate() {
                        if h.ignores & (1 << k) == 0 {
                            *m |= 1 << j;
                        }
                    }
                }
            }
            d.offers.push(fits.then_some(masks));
        }
        for (i, p) in policies.iter().enumerate() {
            for (j, h) in p.handlers.iter().enumerate() {
                match h.kind {
                    HandlerKind::Flows(_) => d.flows.push((i, j)),
                    HandlerKind::Tls(_) | HandlerKind::Http(_) => d.streams.push((i, j)),
                    HandlerKind::Quic(_) => d.quic.push((i, j)),
                    _ => {}
                }
            }
        }
        d
    }
}

/// TCP flags that always reach the stream handlers, finished with a connection or not.
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

/// The handler at a `Direct` position (none if the policies changed under it).
fn handler_at(policies: &mut [PolicyPlan], (i, j): (usize, usize)) -> Option<&mut HandlerKind> {
    policies
        .get_mut(i)
        .and_then(|p| p.handlers.get_mut(j))
        .map(|h| &mut h.kind)
}

/// How a record takes part in processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A captured packet: counted by packet handlers and decoded for the application layer.
    Full,
    /// Counted as a packet only (an IP fragment).
    PacketOnly,
    /// Application layer only (a datagram reassembled from fragments already counted).
    AppOnly,
    /// A dnstap message (protobuf payload), not a frame.
    Dnstap,
    /// A flow export datagram (UDP payload) for the `flow` handlers.
    Flow(FlowInput),
}

/// An event travelling along a chain.
#[derive(Clone, Copy)]
pub(crate) enum ChainEvent<'e, 'a> {
    /// A captured packet (and, for DNS over UDP, its message).
    Packet(&'e PacketEvent, Option<&'e DnsEvent<'a>>),
    /// A DNS message reassembled from a TCP stream, not yet accepted by a dns handler.
    TcpData(&'e DnsEvent<'a>),
    /// A DNS-over-TCP message a dns handler accepted, forwarded as a packet.
    TcpPacket(&'e DnsEvent<'a>),
    /// A DNS message from a reassembled UDP datagram: dns handlers only.
    Datagram(&'e DnsEvent<'a>),
    /// A captured packet carrying a DHCP message: a packet to packet handlers.
    Dhcp(&'e PacketEvent, &'e DhcpEvent<'a>),
}

impl<'e, 'a> ChainEvent<'e, 'a> {
    /// [`ChainEvent::bit`] of a packet without a DNS message.
    const PACKET: u8 = 1;
    /// [`ChainEvent::bit`] of a packet with a DNS message.
    const DNS_PACKET: u8 = 1 << 1;
    const TCP_DATA: u8 = 1 << 2;
    const TCP_PACKET: u8 = 1 << 3;
    const DATAGRAM: u8 = 1 << 4;
    const DHCP: u8 = 1 << 5;

    /// One bit per event kind, for the handlers' `passes` and `ignores` masks.
    fn bit(&self) -> u8 {
        match self {
            ChainEvent::Packet(_, None) => Self::PACKET,
            ChainEvent::Packet(_, Some(_)) => Self::DNS_PACKET,
            ChainEvent::TcpData(_) => Self::TCP_DATA,
            ChainEvent::TcpPacket(_) => Self::TCP_PACKET,
            ChainEvent::Datagram(_) => Self::DATAGRAM,
            ChainEvent::Dhcp(..) => Self::DHCP,
        }
    }

    fn as_datagram(self) -> Self {
        match self {
            ChainEvent::TcpData(d) => ChainEvent::Datagram(d),
            other => other,
        }
    }
}

impl Pipeline {
    pub fn new(
        policies: Vec<PolicyPlan>,
        host: HostSpec,
        extra_dns_ports: Vec<u16>,
        limits: &Limits,
        geo: Geo,
    ) -> Self {
        let needs_dns = policies
            .iter()
            .any(|p| p.handlers.iter().any(Handler::is_dns));
        let needs_dhcp = policies.iter().any(|p| {
            p.handlers
                .iter()
                .any(|h| matches!(h.kind, HandlerKind::Dhcp(_)))
        });
        let has_flows = policies.iter().any(|p| {
            p.handlers
                .iter()
                .any(|h| matches!(h.kind, HandlerKind::Flows(_)))
        });
        let needs_tls = policies.iter().any(|p| {
            p.handlers
                .iter()
                .any(|h| matches!(h.kind, HandlerKind::Tls(_) | HandlerKind::Http(_)))
        });
        let needs_quic = policies.iter().any(|p| {
            p.handlers
                .iter()
                .any(|h| matches!(h.kind, HandlerKind::Quic(_)))
        });
        let direct = Direct::of(&policies);
        Self {
            direct,
            policies,
            host,
            dns_ports: DnsPorts::new(&extra_dns_ports),
            extra_dns_ports,
            tcp: TcpDnsReassembler::new(limits.tcp),
            needs_dns,
            needs_dhcp,
            has_flows,
            needs_tls,
            needs_quic,
            stats: PipelineStats::default(),
            tcp_errors_seen: 0,
            geo,
            name: Box::default(),
            tcp_name: Box::default(),
        }
    }

    /// Adds a policy's handlers to a running pipeline (between batches, never per packet).
    pub fn add_policy(&mut self, plan: PolicyPlan) {
        self.needs_dns |= plan.handlers.iter().any(Handler::is_dns);
        self.policies.push(plan);
        self.direct = Direct::of(&self.policies);
    }

    /// Removes a policy's handlers; the other policies keep their buckets. Returns the removed
    /// policy, if it was there.
    pub fn remove_policy(&mut self, name: &str) -> Option<PolicyPlan> {
        let at = self.policies.iter().position(|p| p.name == name)?;
        let plan = self.policies.remove(at);
        self.needs_dns = self
            .policies
            .iter()
            .any(|p| p.handlers.iter().any(Handler::is_dns));
        self.direct = Direct::of(&self.policies);
        Some(plan)
    }

    /// Starts period `seq` in every handler (no-op if already there).
    pub fn rotate_to(&mut self, seq: u32, ts_ns: u64) {
        for p in &mut self.policies {
            for h in &mut p.handlers {
                h.rotate_to(seq, ts_ns);
            }
        }
        self.tcp.expire(ts_ns);
    }

    /// Merges another worker's pipeline (built from the same plan) into this one.
    pub fn merge(&mut self, other: &Pipeline) {
        for (a, b) in self.policies.iter_mut().zip(other.policies.iter()) {
            for (ha, hb) in a.handlers.iter_mut().zip(b.handlers.iter()) {
                ha.merge(hb);
            }
        }
        self.stats.packets += other.stats.packets;
        self.stats.dns_malformed += other.stats.dns_malformed;
        self.stats.dnstap_skipped += other.stats.dnstap_skipped;
        self.stats.dns_not_served_on_dns_port += other.stats.dns_not_served_on_dns_port;
        self.stats.dhcp_malformed += other.stats.dhcp_malformed;
    }

    /// Processes one decoded packet captured at `ts_ns` with the given frame length.
    /// `mode` says whether it counts as a captured packet, feeds the application layer, or both
    /// (IP fragments count as packets; their reassembled datagram feeds only the application layer).
    pub fn process(&mut self, pkt: &Packet<'_>, frame_len: u32, ts_ns: u64, flow: u64, mode: Mode) {
        if mode != Mode::AppOnly {
            self.stats.packets += 1;
        }
        let (l3, src, dst) = match pkt.l3 {
            L3::Ipv4 => (L3Kind::Ipv4, pkt.src, pkt.dst),
            L3::Ipv6 => (L3Kind::Ipv6, pkt.src, pkt.dst),
            _ => (
                L3Kind::Other,
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            ),
        };
        let l4 = match pkt.l4 {
            L4::Udp => L4Kind::Udp,
            L4::Tcp => L4Kind::Tcp,
            _ => L4Kind::Other,
        };
        let dir = if l3 == L3Kind::Other {
            Direction::Unknown
        } else {
            self.host.direction(src, dst)
        };
        let ev = PacketEvent {
            ts_ns,
            dir,
            l3,
            l4,
            src,
            dst,
            src_port: pkt.src_port,
            dst_port: pkt.dst_port,
            syn: l4 == L4Kind::Tcp && pkt.tcp_flags & 0x02 != 0,
            frame_len,
            flow,
            deep: true,
            both_ends: false,
        };
        // A conversation between two host addresses has no inside and outside: its DNS
        // transactions are of unknown direction (pktvisor reports such TCP transactions as
        // `unknown` too).
        let dns_dir =
            if dir != Direction::Unknown && self.host.contains(src) && self.host.contains(dst) {
                Direction::Unknown
            } else {
                dir
            };
        let metric_port = if self.needs_dns
            && mode != Mode::PacketOnly
            && pkt.fragment.is_none()
            && l4 != L4Kind::Other
        {
            self.dns_ports.metric_port(pkt.src_port, pkt.dst_port)
        } else {
            None
        };

        // DNS over UDP: decode the message once for every handler.
        let name = &mut *self.name;
        let parsed = match (metric_port, l4) {
            (Some(_), L4Kind::Udp) => match wire::dns::parse(pkt.payload) {
                Ok(m) => Some(m),
                Err(_) => {
                    self.stats.dns_malformed += 1;
                    None
                }
            },
            _ => None,
        };
        let qname = parsed.as_ref().and_then(|m| lower_qname(m, name));
        let dns_ev = parsed.as_ref().map(|msg| DnsEvent {
            ts_ns,
            dir: dns_dir,
            l3,
            l4,
            src,
            dst,
            metric_port: metric_port.unwrap_or(0),
            flow,
            deep: true,
            msg,
            qname,
            dnstap: None,
        });

        // Flows need the whole packet (payload, TCP fields), not the event: they see every
        // captured packet and each reassembled datagram once, outside of chains.
        // The first flows handler's entry for this packet also remembers which stream handlers
        // are finished with the connection (see the TLS/HTTP block below).
        let mut flow_slot = None;
        if self.has_flows && mode != Mode::PacketOnly && l3 != L3Kind::Other {
            for &at in &self.direct.flows {
                if let Some(HandlerKind::Flows(f)) = handler_at(&mut self.policies, at) {
                    let slot = f.on_packet(pkt, frame_len, ts_ns);
                    if flow_slot.is_none() {
                        flow_slot = slot.map(|s| (at, s));
                    }
                }
            }
        }

        if mode == Mode::AppOnly {
            if let Some(d) = dns_ev.as_ref() {
                for policy in &mut self.policies {
                    dispatch(policy, ChainEvent::TcpData(d).as_datagram(), &mut self.geo);
                }
            }
        } else {
            // DHCP over UDP (not fragments: their reassembled datagram reaches only dns).
            let dhcp = match (self.needs_dhcp, &dns_ev, l4, mode) {
                (true, None, L4Kind::Udp, Mode::Full) if pkt.fragment.is_none() => {
                    match crate::dhcp::decode(pkt.src_port, pkt.dst_port, pkt.payload) {
                        Some(Ok(msg)) => Some(DhcpEvent {
                            msg,
                            src_mac: pkt.src_mac,
                        }),
                        Some(Err(_)) => {
                            self.stats.dhcp_malformed += 1;
                            None
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            let chain_ev = match &dhcp {
                Some(d) => ChainEvent::Dhcp(&ev, d),
                None => ChainEvent::Packet(&ev, dns_ev.as_ref()),
            };
            let kind = chain_ev.bit().trailing_zeros() as usize;
            for (i, policy) in self.policies.iter_mut().enumerate() {
                match self.direct.offers.get(i).copied().flatten() {
                    Some(masks) => {
                        let mask = masks.get(kind).copied().unwrap_or(u64::MAX);
                        dispatch_to(policy, mask, chain_ev, &mut self.geo);
                    }
                    None => dispatch(policy, chain_ev, &mut self.geo),
                }
            }
        }

        // TCP not served on a DNS port (the lower port taken as the server's, so a client that
        // got port 53000 still counts): the start of each stream goes to the TLS handlers.
        if self.needs_tls
            && l4 == L4Kind::Tcp
            && mode != Mode::PacketOnly
            && pkt.fragment.is_none()
            && !self.dns_ports.contains(pkt.src_port.min(pkt.dst_port))
            // A bare ACK (no payload, SYN, FIN or RST) would only refresh the connection's
            // entries: no stream handler is offered it.
            && (!pkt.payload.is_empty() || pkt.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0)
        {
            // A handler finished with the connection (its bit set in the flow entry) is not
            // offered its segments again: they would only refresh its table entry. SYN and RST
            // still reach it (a new connection on the same ports, or the end of this one).
            // The flow entry also keeps where the first two handlers hold the connection in
            // their own tables (`flow::stream::Hint`), so they need not look it up again.
            let skippable = pkt.tcp_flags & (TCP_SYN | TCP_RST) == 0;
            let (done_before, hints_before) = match flow_slot {
                Some((at, fs)) => match handler_at(&mut self.policies, at) {
                    Some(HandlerKind::Flows(f)) => f
                        .l7_state_mut(fs.slot)
                        .map_or((0, [0; 2]), |(d, h)| (*d, *h)),
                    _ => (0, [0; 2]),
                },
                None => (0, [0; 2]),
            };
            let src_is_a = flow_slot.map(|(_, fs)| fs.src_is_a);
            let mut hints = hints_before;
            let mut done = 0u8;
            for (k, &at) in self.direct.streams.iter().enumerate() {
                // Handlers past the eighth have no bit and are always offered the segment.
                let bit = u8::try_from(k)
                    .ok()
                    .and_then(|k| 1u8.checked_shl(u32::from(k)));
                let bit = bit.unwrap_or(0);
                if skippable && done_before & bit != 0 {
                    done |= bit;
                    continue;
                }
                // Handlers past the second have no hint and look the connection up.
                let hint = match (hints.get_mut(k), src_is_a) {
                    (Some(slot), Some(src_is_a)) => Some(flow::stream::Hint { slot, src_is_a }),
                    _ => None,
                };
                let finished = match handler_at(&mut self.policies, at) {
                    Some(HandlerKind::Tls(t)) => t.on_segment_hinted(
                        src,
                        pkt.src_port,
                        dst,
                        pkt.dst_port,
                        pkt.vlan,
                        pkt.tcp_seq,
                        pkt.tcp_flags,
                        pkt.payload,
                        ts_ns,
                        hint,
                    ),
                    Some(HandlerKind::Http(t)) => t.on_segment_hinted(
                        src,
                        pkt.src_port,
                        dst,
                        pkt.dst_port,
                        pkt.vlan,
                        pkt.tcp_seq,
                        pkt.tcp_flags,
                        pkt.payload,
                        ts_ns,
                        hint,
                    ),
                    _ => false,
                };
                if finished {
                    done |= bit;
                }
            }
            if (done != done_before || hints != hints_before)
                && let Some((at, fs)) = flow_slot
                && let Some(HandlerKind::Flows(f)) = handler_at(&mut self.policies, at)
                && let Some((d, h)) = f.l7_state_mut(fs.slot)
            {
                *d = done;
                *h = hints;
            }
        }

        // UDP datagrams that may be QUIC go to the QUIC handlers (whole datagrams only).
        if self.needs_quic
            && l4 == L4Kind::Udp
            && mode != Mode::PacketOnly
            && pkt.fragment.is_none()
        {
            for &at in &self.direct.quic {
                if let Some(HandlerKind::Quic(q)) = handler_at(&mut self.policies, at) {
                    q.on_datagram(src, pkt.src_port, dst, pkt.dst_port, pkt.payload, ts_ns);
                }
            }
        }

        // DNS over TCP: reassemble the stream, then dispatch each complete message.
        if let (Some(mport), L4Kind::Tcp) = (metric_port, l4) {
            let policies = &mut self.policies;
            let stats = &mut self.stats;
            let geo = &mut self.geo;
            let name = &mut *self.tcp_name;
            let extra_ports = &self.extra_dns_ports;
            self.tcp.segment(
                src,
                pkt.src_port,
                dst,
                pkt.dst_port,
                pkt.vlan,
                pkt.tcp_seq,
                pkt.tcp_flags,
                pkt.payload,
                ts_ns,
                &mut |bytes: &[u8], side| {
                    let stream = TcpStream {
                        ts_ns,
                        dir: dns_dir,
                        l3,
                        src,
                        dst,
                        server_port: match side {
                            flow::tcp::Direction::Initiator => pkt.dst_port,
                            flow::tcp::Direction::Responder => pkt.src_port,
                        },
                        metric_port: mport,
                        flow,
                    };
                    stream.dispatch(bytes, extra_ports, policies, stats, geo, name);
                },
            );
            let errors = self.tcp.stats().gaps + self.tcp.stats().invalid_streams;
            if errors > self.tcp_errors_seen {
                let n = errors - self.tcp_errors_seen;
                self.tcp_errors_seen = errors;
                for p in &mut self.policies {
                    for h in &mut p.handlers {
                        if let HandlerKind::Pcap(pc) = &mut h.kind {
                            pc.on_tcp_reassembly_error(n);
                        }
                    }
                }
            }
        }
    }
}

impl Pipeline {
    /// Ends the input: DNS-over-TCP data still held behind lost segments is decoded, as a
    /// dissector that reads each segment on its own would (see `flow::tcp`).
    pub fn finish(&mut self) {
        for p in &mut self.policies {
            for h in &mut p.handlers {
                if let HandlerKind::Flows(f) = &mut h.kind {
                    f.finish();
                }
            }
        }
        let policies = &mut self.policies;
        let stats = &mut self.stats;
        let geo = &mut self.geo;
        let host = &self.host;
        let extra = &self.extra_dns_ports;
        let mut name = NameBuf::new();
        self.tcp
            .flush(&mut |bytes: &[u8], end: &flow::tcp::StreamEnd| {
                let Some(mport) = dns_metric_port(end.sport, end.dport, extra) else {
                    return;
                };
                let stream = TcpStream {
                    ts_ns: end.last_ns,
                    dir: if host.contains(end.src) && host.contains(end.dst) {
                        Direction::Unknown
                    } else {
                        host.direction(end.src, end.dst)
                    },
                    l3: if end.src.is_ipv6() {
                        L3Kind::Ipv6
                    } else {
                        L3Kind::Ipv4
                    },
                    src: end.src,
                    dst: end.dst,
                    server_port: match end.dir {
                        flow::tcp::Direction::Initiator => end.dport,
                        flow::tcp::Direction::Responder => end.sport,
                    },
                    metric_port: mport,
                    flow: wire::hash::flow_hash_parts(end.src, end.sport, end.dst, end.dport, 6),
                };
                stream.dispatch(bytes, extra, policies, stats, geo, &mut name);
            });
    }
}

impl Pipeline {
    /// Counts a frame the decoder could not walk as a packet of unknown layers (pktvisor
    /// counts such frames too: `total` and `other_l4`).
    pub fn process_undecodable(&mut self, frame_len: u32, ts_ns: u64) {
        self.stats.packets += 1;
        let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let ev = PacketEvent {
            ts_ns,
            dir: Direction::Unknown,
            l3: L3Kind::Other,
            l4: L4Kind::Other,
            src: unspecified,
            dst: unspecified,
            src_port: 0,
            dst_port: 0,
            syn: false,
            frame_len,
            flow: 0,
            deep: true,
            both_ends: false,
        };
        for policy in &mut self.policies {
            dispatch(policy, ChainEvent::Packet(&ev, None), &mut self.geo);
        }
    }
}

impl Pipeline {
    /// Offers one flow export datagram sent by `exporter` to every `flow` handler (other
    /// handlers never see export payloads).
    pub fn process_flow(&mut self, input: FlowInput, exporter: IpAddr, payload: &[u8]) {
        self.stats.packets += 1;
        for p in &mut self.policies {
            for h in &mut p.handlers {
                if let HandlerKind::Flow(f) = &mut h.kind {
                    f.on_datagram(input, exporter, payload);
                }
            }
        }
    }
}

/// The context of a DNS message reassembled from a TCP stream.
struct TcpStream {
    ts_ns: u64,
    dir: Direction,
    l3: L3Kind,
    src: IpAddr,
    dst: IpAddr,
    /// The port of the stream's responder (the server).
    server_port: u16,
    metric_port: u16,
    flow: u64,
}

impl TcpStream {
    /// Decodes one message of the stream and offers it to every policy. DNS over TCP is served
    /// on a DNS port: a stream whose DNS-looking port is the client's (an HTTP client that
    /// happened to get port 53000) is not DNS.
    fn dispatch(
        &self,
        bytes: &[u8],
        extra_ports: &[u16],
        policies: &mut [PolicyPlan],
        stats: &mut PipelineStats,
        geo: &mut Geo,
        name: &mut NameBuf,
    ) {
        if !crate::event::is_dns_port(self.server_port, extra_ports) {
            stats.dns_not_served_on_dns_port += 1;
            return;
        }
        let Ok(msg) = wire::dns::parse(bytes) else {
            stats.dns_malformed += 1;
            return;
        };
        let qname = lower_qname(&msg, name);
        let dev = DnsEvent {
            ts_ns: self.ts_ns,
            dir: self.dir,
            l3: self.l3,
            l4: L4Kind::Tcp,
            src: self.src,
            dst: self.dst,
            metric_port: self.metric_port,
            flow: self.flow,
            deep: true,
            msg: &msg,
            qname,
            dnstap: None,
        };
        for policy in policies.iter_mut() {
            dispatch(policy, ChainEvent::TcpData(&dev), geo);
        }
    }
}

/// Writes the lower-cased first question name into `buf`.
pub(crate) fn lower_qname<'b>(
    m: &wire::dns::DnsMessage<'_>,
    buf: &'b mut NameBuf,
) -> Option<&'b [u8]> {
    let q = m.question()?;
    q.name.write_lower(buf).ok()?;
    Some(buf.as_bytes())
}

/// Offers one event to a policy's handlers, skipping those that would do nothing with it.
pub(crate) fn dispatch(policy: &mut PolicyPlan, ev: ChainEvent<'_, '_>, geo: &mut Geo) {
    if !policy.chained {
        let bit = ev.bit();
        for h in &mut policy.handlers {
            if h.ignores & bit == 0 {
                offer(h, ev, geo);
            }
        }
        return;
    }
    let mut cur = ev;
    for h in &mut policy.handlers {
        let bit = cur.bit();
        if h.passes & bit != 0 {
            continue;
        }
        if h.ignores & bit != 0 {
            return;
        }
        match offer(h, cur, geo) {
            Some(next) => cur = next,
            None => return,
        }
    }
}

/// Offers an event to the handlers of an independent policy whose bits are set in `mask`
/// (see `Direct::offers`), each checked again against its own mask.
fn dispatch_to(policy: &mut PolicyPlan, mut mask: u64, ev: ChainEvent<'_, '_>, geo: &mut Geo) {
    let bit = ev.bit();
    while mask != 0 {
        let j = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        if let Some(h) = policy.handlers.get_mut(j)
            && h.ignores & bit == 0
        {
            // The common case, a deep packet to net v1 at a 100 % rate, without the call to
            // `offer` and its match: the same call `offer`'s first arm makes (an independent
            // policy drops what it would forward).
            if let (HandlerKind::NetV1(n), ChainEvent::Packet(p, _) | ChainEvent::Dhcp(p, _)) =
                (&mut h.kind, ev)
                && h.deep_rate >= 100
                && p.deep
            {
                n.on_packet(p, geo);
                continue;
            }
            offer(h, ev, geo);
        }
    }
}

/// Offers an event to one handler; returns what it forwards to the next handler of a chain.
fn offer<'e, 'a>(
    h: &mut Handler,
    ev: ChainEvent<'e, 'a>,
    geo: &mut Geo,
) -> Option<ChainEvent<'e, 'a>> {
    let rate = h.deep_rate;
    match (&mut h.kind, ev) {
        // At a 100 % rate a deep event stays deep: no copy to re-decide it.
        (HandlerKind::NetV1(n), ChainEvent::Packet(p, _) | ChainEvent::Dhcp(p, _))
            if rate >= 100 && p.deep =>
        {
            n.on_packet(p, geo).then_some(ev)
        }
        (HandlerKind::NetV1(n), ChainEvent::Packet(p, _) | ChainEvent::Dhcp(p, _)) => {
            let mut p2 = *p;
            p2.deep = deep_sample(rate, p.flow, p.ts_ns);
            n.on_packet(&p2, geo).then_some(ev)
        }
        (HandlerKind::NetV2(n), ChainEvent::Packet(p, _) | ChainEvent::Dhcp(p, _)) => {
            let mut p2 = *p;
            p2.deep = deep_sample(rate, p.flow, p.ts_ns);
            n.on_packet(&p2, geo).then_some(ev)
        }
        // Stream data passes a net handler uncounted (its filters would apply per connection).
        (
            HandlerKind::NetV1(_) | HandlerKind::NetV2(_),
            ChainEvent::TcpData(_) | ChainEvent::Datagram(_),
        ) => Some(ev),
        (HandlerKind::NetV1(_) | HandlerKind::NetV2(_), ChainEvent::TcpPacket(d)) => {
            let p = packet_of_tcp_message(d, rate);
            let accepted = match &mut h.kind {
                HandlerKind::NetV1(n) => n.on_packet(&p, geo),
                HandlerKind::NetV2(n) => n.on_packet(&p, geo),
                _ => false,
            };
            accepted.then_some(ev)
        }
        (
            HandlerKind::DnsV1(_) | HandlerKind::DnsV2(_),
            ChainEvent::Packet(_, None) | ChainEvent::Dhcp(..),
        ) => None,
        (HandlerKind::DnsV1(_) | HandlerKind::DnsV2(_), ChainEvent::Packet(_, Some(d))) => {
            on_dns(h, d, rate, geo).then_some(ev)
        }
        (
            HandlerKind::DnsV1(_) | HandlerKind::DnsV2(_),
            ChainEvent::TcpData(d) | ChainEvent::TcpPacket(d),
        ) => on_dns(h, d, rate, geo).then_some(ChainEvent::TcpPacket(d)),
        (HandlerKind::DnsV1(_) | HandlerKind::DnsV2(_), ChainEvent::Datagram(d)) => {
            on_dns(h, d, rate, geo).then_some(ev)
        }
        (HandlerKind::Pcap(_) | HandlerKind::Flow(_), _) => Some(ev),
        (HandlerKind::Dhcp(h), ChainEvent::Dhcp(p, d)) => {
            let mut p2 = *p;
            p2.deep = deep_sample(rate, p.flow, p.ts_ns);
            h.on_dhcp(&p2, d).then_some(ev)
        }
        (HandlerKind::Dhcp(_), _) => None,
        // Flows see every packet directly (`Pipeline::process`), chained or not.
        (HandlerKind::Flows(_), _) => Some(ev),
        // TLS reads TCP segments directly (`Pipeline::process`), not chain events.
        (HandlerKind::Tls(_), _) => Some(ev),
        (HandlerKind::Http(_), _) => Some(ev),
        // QUIC reads UDP datagrams directly (`Pipeline::process`).
        (HandlerKind::Quic(_), _) => Some(ev),
    }
}

fn on_dns(h: &mut Handler, d: &DnsEvent<'_>, rate: u8, geo: &mut Geo) -> bool {
    // At a 100 % rate a deep event stays deep: no copy to re-decide it.
    if rate >= 100 && d.deep {
        return match &mut h.kind {
            HandlerKind::DnsV1(x) => x.on_dns(d, geo),
            HandlerKind::DnsV2(x) => x.on_dns(d, geo),
            _ => false,
        };
    }
    let mut d2 = *d;
    d2.deep = deep_sample(rate, d.flow, d.ts_ns);
    match &mut h.kind {
        HandlerKind::DnsV1(x) => x.on_dns(&d2, geo),
        HandlerKind::DnsV2(x) => x.on_dns(&d2, geo),
        _ => false,
    }
}

/// The packet pktvisor synthesises for a forwarded DNS-over-TCP message: IP + TCP headers
/// around the message, no flags.
fn packet_of_tcp_message(d: &DnsEvent<'_>, rate: u8) -> PacketEvent {
    let ip_len = if d.l3 == L3Kind::Ipv6 { 40 } else { 20 };
    PacketEvent {
        ts_ns: d.ts_ns,
        dir: d.dir,
        l3: d.l3,
        l4: L4Kind::Tcp,
        src: d.src,
        dst: d.dst,
        src_port: 0,
        dst_port: 0,
        syn: false,
        frame_len: (ip_len + 20 + d.msg.len()) as u32,
        flow: d.flow,
        deep: deep_sample(rate, d.flow, d.ts_ns),
        both_ends: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Value;

    /// An Ethernet/IPv4/TCP frame carrying `payload`.
    fn tcp_frame(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// A length-prefixed DNS query for `a.test A`.
    fn framed_query() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01");
        let mut out = (m.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&m);
        out
    }

    fn dns_total(p: &Pipeline) -> u64 {
        let e = p.policies[0].handlers[0].export(&[0]).expect("bucket 0");
        e.metrics
            .iter()
            .find(|m| m.json_path == ["wire_packets", "total"])
            .map_or(0, |m| match m.value {
                Value::Int(n) => n,
                _ => 0,
            })
    }

    fn pipeline() -> Pipeline {
        let spec = HandlerSpec {
            name: "dns".into(),
            kind: "dns".into(),
            ..Default::default()
        };
        let limits = Limits::default();
        let h = Handler::build(&spec, "t".into(), &limits).expect("builds");
        let plan = PolicyPlan {
            name: "p".into(),
            chained: false,
            handlers: vec![h],
        };
        Pipeline::new(
            vec![plan],
            HostSpec::default(),
            Vec::new(),
            &limits,
            Geo::default(),
        )
    }

    fn feed(p: &mut Pipeline, frames: &[Vec<u8>]) {
        for (i, f) in frames.iter().enumerate() {
            let pkt = wire::packet::decode(wire::capture::LinkType::Ethernet, f).expect("decodes");
            let flow = wire::hash::flow_hash(&pkt);
            p.process(&pkt, f.len() as u32, 1_000 + i as u64, flow, Mode::Full);
        }
    }

    #[test]
    fn masks_skip_only_what_offer_passes_on_or_drops() {
        // A plain packet (no DNS message): net counts it; dns and dhcp end a chain there;
        // the handlers that read packets directly pass it on.
        let limits = Limits::default();
        let ev = PacketEvent {
            ts_ns: 1,
            dir: Direction::Unknown,
            l3: L3Kind::Ipv4,
            l4: L4Kind::Tcp,
            src: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            dst: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            src_port: 1000,
            dst_port: 80,
            syn: false,
            frame_len: 60,
            flow: 7,
            deep: true,
            both_ends: false,
        };
        let chain = ChainEvent::Packet(&ev, None);
        let bit = chain.bit();
        assert_eq!(bit, ChainEvent::PACKET);
        let mut geo = Geo::default();
        let mut seen = Vec::new();
        for kind in ["net", "dns", "pcap", "dhcp", "flows", "tls", "http", "quic"] {
            let spec = HandlerSpec {
                name: kind.into(),
                kind: kind.into(),
                ..Default::default()
            };
            let mut h = Handler::build(&spec, kind.into(), &limits).expect("builds");
            let (passes, ignores) = (h.passes & bit != 0, h.ignores & bit != 0);
            // What passes is ignored too.
            assert!(!passes || ignores, "{kind}");
            let forwarded = offer(&mut h, chain, &mut geo).is_some();
            if ignores {
                assert_eq!(forwarded, passes, "{kind}");
            }
            seen.push((kind, passes, ignores));
        }
        assert_eq!(
            seen,
            [
                ("net", false, false),
                ("dns", false, true),
                ("pcap", true, true),
                ("dhcp", false, true),
                ("flows", true, true),
                ("tls", true, true),
                ("http", true, true),
                ("quic", true, true),
            ]
        );
    }

    #[test]
    fn dns_over_tcp_is_counted_only_when_served_on_a_dns_port() {
        // A client on an ephemeral port asks a server on port 53: one query.
        let mut p = pipeline();
        feed(
            &mut p,
            &[
                tcp_frame(40_000, 53, 0, 0x02, &[]),
                tcp_frame(40_000, 53, 1, 0x18, &framed_query()),
            ],
        );
        assert_eq!(dns_total(&p), 1);
        // The same bytes from a client that got port 53000 (a DNS port) towards port 80 are
        // not DNS: the server side is not a DNS port.
        let mut p = pipeline();
        feed(
            &mut p,
            &[
                tcp_frame(53_000, 80, 0, 0x02, &[]),
                tcp_frame(53_000, 80, 1, 0x18, &framed_query()),
            ],
        );
        assert_eq!(dns_total(&p), 0);
        assert_eq!(p.stats.dns_not_served_on_dns_port, 1);
    }

    /// `tcp_frame` sent the other way (10.0.0.2 to 10.0.0.1).
    fn tcp_frame_back(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = tcp_frame(sport, dport, seq, flags, payload);
        f[29] = 2;
        f[33] = 1;
        f
    }

    /// One policy with flows (a table of `max_flows`), tls and http.
    fn l7_pipeline(max_flows: u64) -> Pipeline {
        let limits = Limits::default();
        let mut flows = HandlerSpec {
            name: "flows".into(),
            kind: "flows".into(),
            ..Default::default()
        };
        flows
            .config
            .set("max_flows", crate::config::ConfigValue::Int(max_flows));
        let handlers = [flows.clone(), flows, HandlerSpec::default()]
            .into_iter()
            .zip(["flows", "tls", "http"])
            .map(|(mut spec, kind)| {
                if kind != "flows" {
                    spec = HandlerSpec {
                        name: kind.into(),
                        kind: kind.into(),
                        ..Default::default()
                    };
                }
                Handler::build(&spec, kind.into(), &limits).expect("builds")
            })
            .collect();
        let plan = PolicyPlan {
            name: "p".into(),
            chained: false,
            handlers,
        };
        Pipeline::new(
            vec![plan],
            HostSpec::default(),
            Vec::new(),
            &limits,
            Geo::default(),
        )
    }

    proptest::proptest! {
        /// The port bits answer as the port list does.
        #[test]
        fn dns_port_bits_match_the_list(
            extra in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..4),
            probes in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..16),
        ) {
            let bits = DnsPorts::new(&extra);
            let near = [0u16, 52, 53, 54, 5353, 5355, 53000, 65535];
            for &p in probes.iter().chain(&extra).chain(&near) {
                proptest::prop_assert_eq!(bits.contains(p), crate::event::is_dns_port(p, &extra));
                for &q in near.iter().chain(&probes) {
                    proptest::prop_assert_eq!(
                        bits.metric_port(p, q),
                        dns_metric_port(p, q, &extra)
                    );
                }
            }
        }
    }

    /// The stream-handler bits of the flow of the last packet fed, as the flows handler holds them.
    fn done_bits(p: &mut Pipeline, frame: &[u8]) -> Option<u8> {
        let pkt = wire::packet::decode(wire::capture::LinkType::Ethernet, frame).expect("decodes");
        let HandlerKind::Flows(f) = &mut p.policies[0].handlers[0].kind else {
            return None;
        };
        // Looking the flow up again counts it once more; only the bits matter here.
        let at = f.on_packet(&pkt, frame.len() as u32, 1_500)?;
        f.l7_done_mut(at.slot).copied()
    }

    fn http_requests(p: &Pipeline) -> u64 {
        let HandlerKind::Http(h) = &p.policies[0].handlers[2].kind else {
            return 0;
        };
        h.window.get(0).map_or(0, |b| b.requests)
    }

    #[test]
    fn stream_handlers_done_with_a_connection_are_marked_in_its_flow_and_skipped() {
        let mut p = l7_pipeline(16);
        let ssh = b"SSH-2.0-OpenSSH_9.6\r\n";
        let hello = tcp_frame(40_000, 22, 101, 0x18, ssh);
        feed(
            &mut p,
            &[
                tcp_frame(40_000, 22, 100, 0x02, &[]),
                tcp_frame_back(22, 40_000, 500, 0x12, &[]),
                hello.clone(),
            ],
        );
        // One direction seen: neither handler is finished yet.
        assert_eq!(done_bits(&mut p, &hello), Some(0));
        let reply = tcp_frame_back(22, 40_000, 501, 0x18, ssh);
        feed(&mut p, std::slice::from_ref(&reply));
        // Not TLS, not HTTP, both directions seen: tls (bit 0) and http (bit 1) are done.
        assert_eq!(done_bits(&mut p, &reply), Some(0b11));
        let (tls_conns, _) = match &p.policies[0].handlers[1].kind {
            HandlerKind::Tls(t) => t.reassembly_load(),
            _ => (9, 9),
        };
        assert_eq!(tls_conns, 1);
        // A new connection on the same ports (SYN, new ISN) reaches both handlers again: an
        // HTTP request on it is counted, and the bits are cleared until they are done again.
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        feed(
            &mut p,
            &[
                tcp_frame(40_000, 22, 7_000, 0x02, &[]),
                tcp_frame(40_000, 22, 7_001, 0x18, get),
            ],
        );
        assert_eq!(http_requests(&p), 1);
        assert_eq!(done_bits(&mut p, &reply), Some(0));
    }

    #[test]
    fn a_flow_evicted_from_the_flows_table_loses_its_bits_and_is_offered_again() {
        // A table of one flow: a second connection evicts the first.
        let mut p = l7_pipeline(1);
        let ssh = b"SSH-2.0-OpenSSH_9.6\r\n";
        let reply = tcp_frame_back(22, 40_000, 501, 0x18, ssh);
        feed(
            &mut p,
            &[
                tcp_frame(40_000, 22, 100, 0x02, &[]),
                tcp_frame(40_000, 22, 101, 0x18, ssh),
                reply.clone(),
            ],
        );
        assert_eq!(done_bits(&mut p, &reply), Some(0b11));
        let other = tcp_frame(40_001, 80, 1, 0x18, b"GET / HTTP/1.1\r\n\r\n");
        feed(&mut p, std::slice::from_ref(&other));
        assert_eq!(http_requests(&p), 1);
        // The first connection's entry is gone with its bits: its next packet starts a fresh
        // entry, which the stream handlers (still holding the connection, finished) mark again.
        let more = tcp_frame(40_000, 22, 123, 0x18, b"more");
        let HandlerKind::Flows(f) = &mut p.policies[0].handlers[0].kind else {
            panic!("flows handler first");
        };
        let pkt = wire::packet::decode(wire::capture::LinkType::Ethernet, &more).expect("decodes");
        let at = f
            .on_packet(&pkt, more.len() as u32, 1_400)
            .expect("tracked");
        assert_eq!(f.l7_done_mut(at.slot).copied(), Some(0));
        assert_eq!(f.table().stats().evicted, 2);
        feed(&mut p, std::slice::from_ref(&more));
        assert_eq!(done_bits(&mut p, &more), Some(0b11));
    }

    #[test]
    fn net_v1_fed_by_the_independent_dispatch_counts_as_fed_by_offer() {
        let limits = Limits::default();
        let build = |rate: Option<u64>| {
            let mut spec = HandlerSpec {
                name: "net".into(),
                kind: "net".into(),
                ..Default::default()
            };
            if let Some(r) = rate {
                spec.config
                    .set("deep_sample_rate", crate::config::ConfigValue::Int(r));
            }
            Handler::build(&spec, "net".into(), &limits).expect("builds")
        };
        let mut geo = Geo::default();
        for rate in [None, Some(50)] {
            let mut by_offer = build(rate);
            let mut plan = PolicyPlan {
                name: "p".into(),
                chained: false,
                handlers: vec![build(rate)],
            };
            for i in 0..200u64 {
                let ev = PacketEvent {
                    ts_ns: 1_000_000_000 * (i / 7) + i,
                    dir: [Direction::ToHost, Direction::FromHost, Direction::Unknown]
                        [(i % 3) as usize],
                    l3: L3Kind::Ipv4,
                    l4: if i % 2 == 0 { L4Kind::Udp } else { L4Kind::Tcp },
                    src: IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, (i % 5) as u8)),
                    dst: IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, (i % 11) as u8)),
                    src_port: 1000,
                    dst_port: 80,
                    syn: i % 4 == 1,
                    frame_len: 60 + i as u32,
                    flow: i * 0x9e37_79b9,
                    // Shallow events go through `offer` (they are re-sampled there).
                    deep: i % 9 != 0,
                    both_ends: false,
                };
                let chain = ChainEvent::Packet(&ev, None);
                offer(&mut by_offer, chain, &mut geo);
                dispatch_to(&mut plan, 1, chain, &mut geo);
            }
            let a = by_offer.export(&[0]).expect("bucket");
            let b = plan.handlers[0].export(&[0]).expect("bucket");
            assert!(a.metrics.len() > 10);
            assert_eq!(format!("{:?}", a.metrics), format!("{:?}", b.metrics));
        }
    }

    #[test]
    fn independent_policies_offer_each_event_kind_only_to_the_handlers_that_take_it() {
        let limits = Limits::default();
        let build = |chained| PolicyPlan {
            name: "p".into(),
            chained,
            handlers: ["net", "dns", "pcap", "flows", "dhcp"]
                .into_iter()
                .map(|kind| {
                    let spec = HandlerSpec {
                        name: kind.into(),
                        kind: kind.into(),
                        ..Default::default()
                    };
                    Handler::build(&spec, kind.into(), &limits).expect("builds")
                })
                .collect(),
        };
        let d = Direct::of(&[build(false), build(true)]);
        let at = |bit: u8| bit.trailing_zeros() as usize;
        let masks = d.offers[0].expect("independent");
        // A plain packet: net only; a DNS packet: net and dns; DHCP: net and dhcp.
        assert_eq!(masks[at(ChainEvent::PACKET)], 0b00001);
        assert_eq!(masks[at(ChainEvent::DNS_PACKET)], 0b00011);
        assert_eq!(masks[at(ChainEvent::DHCP)], 0b10001);
        assert_eq!(masks[at(ChainEvent::TCP_DATA)], 0b00010);
        // A chain is walked handler by handler.
        assert!(d.offers[1].is_none());
    }
}
