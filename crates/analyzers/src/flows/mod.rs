//! The `flows` handler: a bounded connection table per worker ([`flow::conn`]) with an
//! application label per flow ([`crate::app`]), summarized per period (flow counts, top
//! conversations, ports and applications by bytes and packets, duration and RTT quantiles, TCP
//! counters, evictions) and, optionally, every finished flow queued for a flow log.
//!
//! Packets and bytes count per packet; per-flow summaries (top lists, durations, RTTs) count
//! when a flow ends — idle, evicted, cut by the active timeout, its ports reused, or at the end
//! of input — in the period live at that moment. It does not render the flow log: records go to
//! a bounded queue and the reader of that queue renders them, off the packet path; a record
//! that finds the queue full is counted as dropped, never waited for.

use std::io::Write;
use std::sync::mpsc::{SyncSender, TrySendError};

use flow::conn::{ConnConfig, ConnRecord, ConnStats, ConnTable, Segment};
use metrics::quantiles::Quantiles;
use metrics::topn::TopN;
use wire::packet::{L3, L4, Packet};

use crate::app::{self, App, Confidence, Context, Transport};
use crate::config::{ConfigError, ConfigMap, WindowConfig};
use crate::export::Export;
use crate::export::Value;
use crate::sketch::{self, TopU16};
use crate::window::{Bucket, Window};

/// Payload packets per direction offered to the signatures before the port table decides.
const DPI_PACKETS: u64 = 4;

/// A finished flow with its application label, as queued for the flow log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub conn: ConnRecord,
    pub app: App,
    pub confidence: Confidence,
}

impl FlowRecord {
    /// Writes the record as one JSON object (no newline).
    pub fn write_json(&self, out: &mut impl Write) -> std::io::Result<()> {
        let c = &self.conn;
        let proto = match c.proto {
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            n => n.to_string(),
        };
        write!(
            out,
            r#"{{"proto":"{proto}","src":"{}","sport":{},"dst":"{}","dport":{},"vlan":{},"app":"{}","app_confidence":"{}","packets_src":{},"packets_dst":{},"bytes_src":{},"bytes_dst":{},"start_ns":{},"end_ns":{},"tcp_state":"{}","#,
            c.initiator,
            c.initiator_port,
            c.responder,
            c.responder_port,
            c.vlan,
            self.app.name(),
            self.confidence.name(),
            c.packets[0],
            c.packets[1],
            c.bytes[0],
            c.bytes[1],
            c.start_ns,
            c.end_ns,
            c.state.as_str(),
        )?;
        match c.rtt_ns {
            Some(r) => write!(out, r#""rtt_ns":{r},"#)?,
            None => write!(out, r#""rtt_ns":null,"#)?,
        }
        write!(
            out,
            r#""retransmissions":{},"out_of_order":{},"zero_window":{},"end":"{}"}}"#,
            c.retransmissions,
            c.out_of_order,
            c.zero_window,
            c.reason.as_str()
        )
    }
}

/// A conversation as a top-N key: protocol, address family, initiator address and port,
/// responder address and port (addresses as 16 bytes, IPv4 mapped). Binary, so that ending a
/// flow formats nothing; names are rendered only for the items an output prints.
type ConvKey = [u8; 38];

/// Top conversations by some weight.
#[derive(Clone, Default)]
pub struct TopConversations(TopN<ConvKey>);

impl TopConversations {
    fn key(r: &ConnRecord) -> ConvKey {
        let mut k = [0u8; 38];
        k[0] = r.proto;
        k[1] = u8::from(r.initiator.is_ipv6());
        let bits = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        k[2..18].copy_from_slice(&bits(r.initiator));
        k[18..20].copy_from_slice(&r.initiator_port.to_be_bytes());
        k[20..36].copy_from_slice(&bits(r.responder));
        k[36..38].copy_from_slice(&r.responder_port.to_be_bytes());
        k
    }

    /// `tcp 192.0.2.1:40000 <-> 192.0.2.2:443`
    fn render(k: &ConvKey) -> String {
        let addr = |b: &[u8]| -> std::net::IpAddr {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            let v6 = std::net::Ipv6Addr::from(o);
            match (k[1], v6.to_ipv4_mapped()) {
                (0, Some(v4)) => std::net::IpAddr::V4(v4),
                _ => std::net::IpAddr::V6(v6),
            }
        };
        let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        let proto = match k[0] {
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            n => n.to_string(),
        };
        format!(
            "{proto} {}:{} <-> {}:{}",
            addr(&k[2..18]),
            port(&k[18..20]),
            addr(&k[20..36]),
            port(&k[36..38])
        )
    }

    pub fn insert(&mut self, r: &ConnRecord, weight: u64) {
        self.0.insert(&Self::key(r), weight);
    }

    pub fn merge(&mut self, other: &Self) {
        self.0.merge(&other.0);
    }

    pub fn export(&self, label: &'static str, w: &WindowConfig) -> Value {
        let items = self
            .0
            .top(w.topn_count)
            .into_iter()
            .map(|(k, v)| (Self::render(&k), v))
            .collect();
        sketch::top_value(label, items, w)
    }
}

/// One period of flow summaries.
#[derive(Clone, Default)]
pub struct FlowsBucket {
    pub packets: u64,
    pub bytes: u64,
    /// Flows created (restarts after an active timeout count again).
    pub flows: u64,
    /// Flow records ended in this period.
    pub ended: u64,
    pub evicted: u64,
    pub idle_expired: u64,
    pub active_expired: u64,
    pub reused: u64,
    pub refused: u64,
    pub handshakes: u64,
    pub resets: u64,
    pub retransmissions: u64,
    pub out_of_order: u64,
    pub zero_window: u64,
    /// Records the flow log queue had no room for.
    pub log_dropped: u64,
    pub top_conv_bytes: TopConversations,
    pub top_conv_packets: TopConversations,
    pub top_port_bytes: TopU16,
    pub top_port_packets: TopU16,
    pub top_app_bytes: TopU16,
    pub top_app_packets: TopU16,
    pub top_app_flows: TopU16,
    /// Flow durations, ms.
    pub duration_ms: Quantiles,
    /// Handshake RTTs, µs.
    pub rtt_us: Quantiles,
}

impl Bucket for FlowsBucket {
    fn merge(&mut self, o: &Self) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.flows += o.flows;
        self.ended += o.ended;
        self.evicted += o.evicted;
        self.idle_expired += o.idle_expired;
        self.active_expired += o.active_expired;
        self.reused += o.reused;
        self.refused += o.refused;
        self.handshakes += o.handshakes;
        self.resets += o.resets;
        self.retransmissions += o.retransmissions;
        self.out_of_order += o.out_of_order;
        self.zero_window += o.zero_window;
        self.log_dropped += o.log_dropped;
        self.top_conv_bytes.merge(&o.top_conv_bytes);
        self.top_conv_packets.merge(&o.top_conv_packets);
        self.top_port_bytes.merge(&o.top_port_bytes);
        self.top_port_packets.merge(&o.top_port_packets);
        self.top_app_bytes.merge(&o.top_app_bytes);
        self.top_app_packets.merge(&o.top_app_packets);
        self.top_app_flows.merge(&o.top_app_flows);
        self.duration_ms.merge(&o.duration_ms);
        self.rtt_us.merge(&o.rtt_us);
    }
}

/// Runs the signatures on one of a flow's first payload packets and labels the flow.
///
/// Out of line: most packets are past their flow's first few and never come here, and inlined
/// the signatures' set-up would be hoisted onto every packet's path.
#[inline(never)]
fn detect_app(c: &mut flow::conn::Conn, payload: &[u8], ctx: &Context) {
    let found = app::detect(payload, ctx);
    if c.app_detail == Confidence::Dpi as u8 {
        // STUN opens WebRTC-style flows (RFC 7983): a DTLS handshake that follows names the
        // flow, as nDPI does.
        if found == Some(App::Dtls) {
            c.app = App::Dtls as u16;
        }
    } else if let Some(a) = found {
        c.app = a as u16;
        c.app_detail = Confidence::Dpi as u8;
    }
}

/// Where a packet's flow sits in the connection table, as [`Flows::on_packet`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSlot {
    /// The table slot (valid until the next packet).
    pub slot: u32,
    /// The packet's sender is the flow key's smaller endpoint ([`flow::stream::Hint`]).
    pub src_is_a: bool,
}

/// The `flows` handler of one worker.
pub struct Flows {
    pub window_config: WindowConfig,
    pub window: Window<FlowsBucket>,
    table: ConnTable,
    /// Table counters already added to a bucket.
    seen: ConnStats,
    log: Option<SyncSender<FlowRecord>>,
}

/// Configuration keys of the handler (besides the window keys).
const KEYS: [&str; 3] = ["max_flows", "idle_timeout", "active_timeout"];

impl Flows {
    pub const SCHEMA: &'static str = "flows";

    /// Builds the handler; `max_flows` (per worker), `idle_timeout` and `active_timeout`
    /// (seconds) override [`ConnConfig::default`].
    pub fn new(cfg: &ConfigMap, window_config: WindowConfig) -> Result<Self, ConfigError> {
        cfg.validate_keys(&KEYS)?;
        let mut conn = ConnConfig::default();
        if let Some(n) = cfg.uint("max_flows")? {
            conn.max_flows = usize::try_from(n).unwrap_or(usize::MAX).min(1 << 26);
        }
        if let Some(s) = cfg.uint("idle_timeout")? {
            conn.idle_timeout_ns = s.saturating_mul(1_000_000_000);
        }
        if let Some(s) = cfg.uint("active_timeout")? {
            conn.active_timeout_ns = s.saturating_mul(1_000_000_000);
        }
        Ok(Self::with_conn_config(conn, window_config))
    }

    /// Builds the handler with an explicit table configuration.
    pub fn with_conn_config(conn: ConnConfig, window_config: WindowConfig) -> Self {
        Self {
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
            table: ConnTable::new(conn),
            seen: ConnStats::default(),
            log: None,
        }
    }

    /// Queues every finished flow on `tx` from now on (`None` stops).
    pub fn set_log(&mut self, tx: Option<SyncSender<FlowRecord>>) {
        self.log = tx;
    }

    /// Takes the flow log queue out (so its reader sees the end once all workers let go).
    pub fn take_log(&mut self) -> Option<SyncSender<FlowRecord>> {
        self.log.take()
    }

    /// The connection table (read-only).
    pub fn table(&self) -> &ConnTable {
        &self.table
    }

    /// Accounts one packet (IP with TCP or UDP; others are ignored) of `frame_len` bytes.
    /// Returns where its flow is (see [`Flows::l7_state_mut`]), valid until the next call.
    pub fn on_packet(&mut self, pkt: &Packet<'_>, frame_len: u32, ts_ns: u64) -> Option<FlowSlot> {
        if !matches!(pkt.l3, L3::Ipv4 | L3::Ipv6) {
            return None;
        }
        let transport = match pkt.l4 {
            L4::Tcp => Transport::Tcp,
            L4::Udp => Transport::Udp,
            _ => return None,
        };
        let seg = Segment {
            src: pkt.src,
            dst: pkt.dst,
            sport: pkt.src_port,
            dport: pkt.dst_port,
            proto: pkt.ip_proto,
            vlan: pkt.vlan,
            bytes: frame_len,
            payload_len: u32::try_from(pkt.payload.len()).unwrap_or(u32::MAX),
            tcp_flags: pkt.tcp_flags,
            tcp_seq: pkt.tcp_seq,
            tcp_ack: pkt.tcp_ack,
            tcp_window: pkt.tcp_window,
        };
        let Self {
            window, table, log, ..
        } = self;
        let bucket = window.live();
        bucket.packets += 1;
        bucket.bytes += u64::from(frame_len);
        let seen = table.update(&seg, ts_ns, &mut |r| end_flow(r, bucket, log));
        if let Some(seen) = seen
            && seen.payload_ordinal > 0
            && seen.payload_ordinal <= DPI_PACKETS
            && let Some(c) = table.conn_mut(seen.slot)
            && (c.app_detail != Confidence::Dpi as u8 || c.app == App::Stun as u16)
        {
            // The initiator's and responder's ports, whichever way this packet went.
            let (ip, rp) = if seen.from_initiator {
                (pkt.src_port, pkt.dst_port)
            } else {
                (pkt.dst_port, pkt.src_port)
            };
            let ctx = Context {
                transport,
                from_initiator: seen.from_initiator,
                initiator_port: ip,
                responder_port: rp,
            };
            detect_app(c, pkt.payload, &ctx);
        }
        self.account_stats();
        seen.map(|s| FlowSlot {
            slot: s.slot,
            src_is_a: s.src_is_a,
        })
    }

    /// The caller-defined bits of the flow in `slot` ([`flow::conn::Conn::l7_done`]): which
    /// stream handlers are finished with it. Cleared when a new flow takes the slot.
    pub fn l7_done_mut(&mut self, slot: u32) -> Option<&mut u8> {
        self.table.conn_mut(slot).map(|c| &mut c.l7_done)
    }

    /// The flow's `l7_done` bits and its stream consumers' entry hints
    /// ([`flow::conn::Conn::l7_hint`]).
    pub fn l7_state_mut(&mut self, slot: u32) -> Option<(&mut u8, &mut [u64; 2])> {
        self.table
            .conn_mut(slot)
            .map(|c| (&mut c.l7_done, &mut c.l7_hint))
    }

    /// Ends every flow still open (end of input).
    pub fn finish(&mut self) {
        let Self {
            window, table, log, ..
        } = self;
        let bucket = window.live();
        table.drain(&mut |r| end_flow(r, bucket, log));
        self.account_stats();
    }

    /// Adds what the table counted since the last call to the live bucket.
    fn account_stats(&mut self) {
        // Most packets change no counter: one field (the sum of all) tells, before anything is
        // copied or compared.
        if self.table.stats().events == self.seen.events {
            return;
        }
        let s = *self.table.stats();
        let p = self.seen;
        let b = self.window.live();
        b.flows += s.flows - p.flows;
        b.evicted += s.evicted - p.evicted;
        b.idle_expired += s.idle_expired - p.idle_expired;
        b.active_expired += s.active_expired - p.active_expired;
        b.reused += s.reused - p.reused;
        b.refused += s.refused - p.refused;
        b.handshakes += s.handshakes - p.handshakes;
        b.resets += s.resets - p.resets;
        b.retransmissions += s.retransmissions - p.retransmissions;
        b.out_of_order += s.out_of_order - p.out_of_order;
        b.zero_window += s.zero_window - p.zero_window;
        self.seen = s;
    }

    pub fn export(&self, b: &FlowsBucket) -> Export {
        let w = &self.window_config;
        let mut e = Export::default();
        e.int(&["packets"], "Packets of TCP and UDP flows", b.packets);
        e.int(
            &["bytes"],
            "Bytes (frame lengths) of TCP and UDP flows",
            b.bytes,
        );
        e.int(&["flows", "total"], "Flows started", b.flows);
        e.int(&["flows", "ended"], "Flow records ended", b.ended);
        e.int(
            &["flows", "evicted"],
            "Flows pushed out of a full connection table",
            b.evicted,
        );
        e.int(
            &["flows", "idle_timeouts"],
            "Flows ended by the idle timeout",
            b.idle_expired,
        );
        e.int(
            &["flows", "active_timeouts"],
            "Flow records cut by the active timeout",
            b.active_expired,
        );
        e.int(
            &["flows", "reused"],
            "Flows ended by a new SYN on the ports of a closed one",
            b.reused,
        );
        e.int(
            &["flows", "refused"],
            "Packets not tracked (connection table of size 0)",
            b.refused,
        );
        e.int(
            &["flows", "log_dropped"],
            "Flow records the flow log queue had no room for",
            b.log_dropped,
        );
        e.int(
            &["tcp", "handshakes"],
            "TCP handshakes completed (RTT measured)",
            b.handshakes,
        );
        e.int(&["tcp", "resets"], "TCP flows reset", b.resets);
        e.int(
            &["tcp", "retransmissions"],
            "TCP segments carrying only bytes already seen",
            b.retransmissions,
        );
        e.int(
            &["tcp", "out_of_order"],
            "TCP segments filling a hole after later bytes arrived",
            b.out_of_order,
        );
        e.int(
            &["tcp", "zero_window"],
            "TCP segments advertising a zero window",
            b.zero_window,
        );
        e.push(
            &["top_conversations_bytes"],
            "Top conversations by bytes",
            b.top_conv_bytes.export("conversation", w),
        );
        e.push(
            &["top_conversations_packets"],
            "Top conversations by packets",
            b.top_conv_packets.export("conversation", w),
        );
        let port = |p: u16| p.to_string();
        e.push(
            &["top_ports_bytes"],
            "Top server ports by bytes",
            b.top_port_bytes.export("port", w, port),
        );
        e.push(
            &["top_ports_packets"],
            "Top server ports by packets",
            b.top_port_packets.export("port", w, port),
        );
        let app_name = |a: u16| App::from_u16(a).name().to_string();
        e.push(
            &["top_apps_bytes"],
            "Top applications by bytes",
            b.top_app_bytes.export("app", w, app_name),
        );
        e.push(
            &["top_apps_packets"],
            "Top applications by packets",
            b.top_app_packets.export("app", w, app_name),
        );
        e.push(
            &["top_apps_flows"],
            "Top applications by flows",
            b.top_app_flows.export("app", w, app_name),
        );
        if let Some(v) = sketch::quantiles(&b.duration_ms) {
            e.push(&["duration_ms"], "Flow durations in milliseconds", v);
        }
        if let Some(v) = sketch::quantiles(&b.rtt_us) {
            e.push(&["rtt_us"], "TCP handshake RTTs in microseconds", v);
        }
        e
    }
}

/// The label of a finished flow: its signature, else its well-known port.
fn label(r: &ConnRecord) -> (App, Confidence) {
    if r.app_detail == Confidence::Dpi as u8 {
        return (App::from_u16(r.app), Confidence::Dpi);
    }
    let transport = if r.proto == 6 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    match app::by_port(transport, r.initiator_port, r.responder_port) {
        App::Unknown => (App::Unknown, Confidence::Unknown),
        a => (a, Confidence::Port),
    }
}

/// Summarizes a finished flow into `b` and queues it for the flow log.
fn end_flow(r: &ConnRecord, b: &mut FlowsBucket, log: &Option<SyncSender<FlowRecord>>) {
    let (a, confidence) = label(r);
    let packets = r.packets[0] + r.packets[1];
    let bytes = r.bytes[0] + r.bytes[1];
    b.ended += 1;
    b.top_conv_bytes.insert(r, bytes);
    b.top_conv_packets.insert(r, packets);
    b.top_port_bytes.insert(r.responder_port, bytes);
    b.top_port_packets.insert(r.responder_port, packets);
    b.top_app_bytes.insert(a as u16, bytes);
    b.top_app_packets.insert(a as u16, packets);
    b.top_app_flows.insert(a as u16, 1);
    b.duration_ms
        .record(r.end_ns.saturating_sub(r.start_ns) / 1_000_000);
    if let Some(rtt) = r.rtt_ns {
        b.rtt_us.record(rtt / 1_000);
    }
    if let Some(tx) = log {
        let rec = FlowRecord {
            conn: *r,
            app: a,
            confidence,
        };
        match tx.try_send(rec) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => b.log_dropped += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Value;

    fn udp_frame(sport: u16, dport: u16, payload: &[u8], reverse: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        if reverse {
            f.extend_from_slice(&b);
            f.extend_from_slice(&a);
        } else {
            f.extend_from_slice(&a);
            f.extend_from_slice(&b);
        }
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn int(e: &Export, path: &[&str]) -> u64 {
        e.metrics
            .iter()
            .find(|m| m.json_path == path)
            .map_or(u64::MAX, |m| match m.value {
                Value::Int(n) => n,
                _ => u64::MAX,
            })
    }

    fn top(e: &Export, path: &[&str]) -> Vec<(String, u64)> {
        e.metrics
            .iter()
            .find(|m| m.json_path == path)
            .map(|m| match &m.value {
                Value::Top { items, .. } => {
                    items.iter().map(|i| (i.name.clone(), i.estimate)).collect()
                }
                _ => Vec::new(),
            })
            .unwrap_or_default()
    }

    #[test]
    fn summarizes_flows_labels_and_logs_them() {
        let mut h = Flows::new(&ConfigMap::new(), WindowConfig::default()).expect("default config");
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        h.set_log(Some(tx));
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        let frames = [
            udp_frame(40000, 53, &q, false),
            udp_frame(53, 40000, &q, true),
            // A datagram to an unknown high port: port table says nothing.
            udp_frame(40001, 40002, b"hello", false),
            // NTP by port only (payload too short for the signature).
            udp_frame(40003, 123, b"x", false),
        ];
        for (i, f) in frames.iter().enumerate() {
            let pkt = wire::packet::decode(wire::capture::LinkType::Ethernet, f).expect("frame");
            h.on_packet(&pkt, f.len() as u32, 1_000_000_000 + i as u64 * 1_000_000);
        }
        h.finish();
        let b = h.window.get(0).expect("bucket").clone();
        let e = h.export(&b);
        assert_eq!(int(&e, &["packets"]), 4);
        assert_eq!(int(&e, &["flows", "total"]), 3);
        assert_eq!(int(&e, &["flows", "ended"]), 3);
        assert_eq!(int(&e, &["flows", "log_dropped"]), 0);
        let apps = top(&e, &["top_apps_flows"]);
        assert_eq!(apps.len(), 3);
        assert!(apps.contains(&("dns".into(), 1)));
        assert!(apps.contains(&("ntp".into(), 1)));
        assert!(apps.contains(&("unknown".into(), 1)));
        let conv = top(&e, &["top_conversations_packets"]);
        assert_eq!(conv[0], ("udp 10.0.0.1:40000 <-> 10.0.0.2:53".into(), 2));
        let recs: Vec<FlowRecord> = rx.try_iter().collect();
        assert_eq!(recs.len(), 3);
        let dns = recs.iter().find(|r| r.app == App::Dns).expect("dns flow");
        assert_eq!(dns.confidence, Confidence::Dpi);
        assert_eq!(dns.conn.packets, [1, 1]);
        let ntp = recs.iter().find(|r| r.app == App::Ntp).expect("ntp flow");
        assert_eq!(ntp.confidence, Confidence::Port);
        let mut line = Vec::new();
        dns.write_json(&mut line).expect("write");
        let line = String::from_utf8(line).expect("utf8");
        assert!(line.starts_with(r#"{"proto":"udp","src":"10.0.0.1","sport":40000,"dst":"10.0.0.2","dport":53,"vlan":0,"app":"dns","app_confidence":"dpi","packets_src":1,"packets_dst":1,"#), "{line}");
        assert!(line.ends_with(r#""rtt_ns":null,"retransmissions":0,"out_of_order":0,"zero_window":0,"end":"remaining"}"#), "{line}");
    }

    #[test]
    fn conversation_keys_render_both_families() {
        let rec = |a: &str, b: &str, proto| ConnRecord {
            initiator: a.parse().expect("addr"),
            initiator_port: 40000,
            responder: b.parse().expect("addr"),
            responder_port: 443,
            proto,
            vlan: 0,
            start_ns: 0,
            end_ns: 0,
            packets: [1, 0],
            bytes: [60, 0],
            state: flow::conn::TcpState::None,
            rtt_ns: None,
            retransmissions: 0,
            out_of_order: 0,
            zero_window: 0,
            app: 0,
            app_detail: 0,
            reason: flow::conn::EndReason::Remaining,
        };
        let k = TopConversations::key(&rec("192.0.2.1", "192.0.2.2", 6));
        assert_eq!(
            TopConversations::render(&k),
            "tcp 192.0.2.1:40000 <-> 192.0.2.2:443"
        );
        // An IPv6 address that looks IPv4-mapped stays IPv6.
        let k = TopConversations::key(&rec("::ffff:192.0.2.1", "2001:db8::1", 17));
        assert_eq!(
            TopConversations::render(&k),
            "udp ::ffff:192.0.2.1:40000 <-> 2001:db8::1:443"
        );
    }

    #[test]
    fn a_full_log_queue_counts_drops() {
        let mut h = Flows::with_conn_config(ConnConfig::default(), WindowConfig::default());
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        h.set_log(Some(tx));
        for p in 0..5u16 {
            let f = udp_frame(1000 + p, 2000, b"", false);
            let pkt = wire::packet::decode(wire::capture::LinkType::Ethernet, &f).expect("frame");
            h.on_packet(&pkt, f.len() as u32, 0);
        }
        h.finish();
        let b = h.window.get(0).expect("bucket");
        assert_eq!(b.ended, 5);
        assert_eq!(b.log_dropped, 4);
    }

    #[test]
    fn bad_config_is_rejected_with_the_key() {
        let mut m = ConfigMap::new();
        m.set("max_flow", crate::config::ConfigValue::Int(3));
        let err = Flows::new(&m, WindowConfig::default())
            .err()
            .expect("error");
        assert!(
            err.0
                .starts_with("max_flow is an invalid/unsupported config")
        );
    }
}
