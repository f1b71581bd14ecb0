//! pktvisor's `dhcp` handler (schema `dhcp`, version 1.0): DHCPv4 and DHCPv6 message counts,
//! top clients and servers, plus what pktvisor lacks: DHCPv6 in the totals, every message type,
//! transaction latency (DISCOVER→OFFER, REQUEST→ACK, SOLICIT→ADVERTISE, REQUEST→REPLY), top
//! host names, client cardinality and leases per server.
//!
//! The message is decoded once per packet by the pipeline ([`decode`]); this module only
//! summarizes. It is not a lease database: nothing here outlives the transaction TTL.

pub mod xact;

use std::net::IpAddr;

use metrics::cardinality::Cardinality;
use metrics::quantiles::Quantiles;
use metrics::rate::Rate;
use wire::dhcp::{self as wdhcp, Dhcpv4, v6};

use crate::config::{ConfigError, ConfigMap, WindowConfig, resolve_groups};
use crate::event::PacketEvent;
use crate::export::Export;
use crate::sketch::{self, TopNames, sec};
use crate::window::{Bucket, Window};
use xact::{DhcpXacts, Outcome, Phase};

const DHCP_KEYS: [&str; 3] = ["recorded_stream", "xact_ttl_secs", "xact_ttl_ms"];
/// Most open DHCP transactions per handler and worker (DHCP is a trickle next to DNS).
const MAX_OPEN: usize = 65_536;

/// A decoded DHCP message.
#[derive(Clone, Copy, Debug)]
pub enum DhcpMsg<'a> {
    V4(Dhcpv4<'a>),
    /// DHCPv6: the message as sent and, for relay messages, the one it carries (else the same).
    V6 {
        outer: v6::Dhcpv6<'a>,
        inner: v6::Dhcpv6<'a>,
    },
}

/// A DHCP message with what the handler needs of its packet.
#[derive(Clone, Copy, Debug)]
pub struct DhcpEvent<'a> {
    pub msg: DhcpMsg<'a>,
    /// Ethernet source address of the frame (zero on other links).
    pub src_mac: [u8; 6],
}

/// Decodes the UDP payload of a DHCP port: `None` when neither port is a DHCP port, else the
/// message or why it could not be read. DHCPv4 runs on 67/68, DHCPv6 on 546/547 (either side).
pub fn decode(
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Option<Result<DhcpMsg<'_>, wdhcp::DhcpError>> {
    let v4 = |p: u16| p == wdhcp::SERVER_PORT || p == wdhcp::CLIENT_PORT;
    let v6p = |p: u16| p == v6::SERVER_PORT || p == v6::CLIENT_PORT;
    if v4(src_port) || v4(dst_port) {
        return Some(wdhcp::parse(payload).map(DhcpMsg::V4));
    }
    if v6p(src_port) || v6p(dst_port) {
        return Some(v6::parse(payload).and_then(|outer| {
            let (inner, _) = outer.innermost()?;
            Ok(DhcpMsg::V6 { outer, inner })
        }));
    }
    None
}

/// Counter slots of DHCPv4 message types: index = type for 1..=8, 0 for anything else
/// (other types, plain BOOTP without option 53).
const V4_TYPES: usize = 9;
/// Counter slots of DHCPv6 message types: index = type for 1..=13, 0 for anything else.
const V6_TYPES: usize = 14;

/// One period of the dhcp handler.
#[derive(Clone, Default)]
pub struct DhcpBucket {
    events: u64,
    deep_samples: u64,
    rate_events: Rate,
    rate_total: Rate,
    total: u64,
    filtered: u64,
    v4: [u64; V4_TYPES],
    v6: [u64; V6_TYPES],
    other: u64,
    xact_total: u64,
    xact_timed_out: u64,
    phase_total: [u64; 4],
    phase_us: [Quantiles; 4],
    clients: Cardinality,
    top_clients: TopNames,
    top_clients_v6: TopNames,
    top_servers: TopNames,
    top_hostnames: TopNames,
    top_leases: TopNames,
}

impl Bucket for DhcpBucket {
    fn merge(&mut self, o: &Self) {
        self.events += o.events;
        self.deep_samples += o.deep_samples;
        self.rate_events.merge(&o.rate_events);
        self.rate_total.merge(&o.rate_total);
        self.total += o.total;
        self.filtered += o.filtered;
        for (a, b) in self.v4.iter_mut().zip(o.v4) {
            *a += b;
        }
        for (a, b) in self.v6.iter_mut().zip(o.v6) {
            *a += b;
        }
        self.other += o.other;
        self.xact_total += o.xact_total;
        self.xact_timed_out += o.xact_timed_out;
        for i in 0..4 {
            self.phase_total[i] += o.phase_total[i];
            self.phase_us[i].merge(&o.phase_us[i]);
        }
        self.clients.merge(&o.clients);
        self.top_clients.merge(&o.top_clients);
        self.top_clients_v6.merge(&o.top_clients_v6);
        self.top_servers.merge(&o.top_servers);
        self.top_hostnames.merge(&o.top_hostnames);
        self.top_leases.merge(&o.top_leases);
    }
}

/// The `dhcp` handler.
pub struct Dhcp {
    pub window_config: WindowConfig,
    pub window: Window<DhcpBucket>,
    xacts: DhcpXacts,
    /// Scratch for top-N keys, reused across packets.
    buf: Vec<u8>,
}

/// Appends `aa:bb:..` (lower-case hex, colon separated) to `out`.
fn push_hex(out: &mut Vec<u8>, bytes: &[u8], sep: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        if sep && i > 0 {
            out.push(b':');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// Appends an address's text without allocating.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    use std::io::Write;
    let _ = write!(out, "{ip}");
}

impl Dhcp {
    pub const SCHEMA: &'static str = "dhcp";

    /// Builds the handler; `max_open_xacts` caps its transaction table (at most 65,536).
    pub fn new(
        cfg: &ConfigMap,
        window_config: WindowConfig,
        enable: &[String],
        disable: &[String],
        max_open_xacts: usize,
    ) -> Result<Self, ConfigError> {
        cfg.validate_keys(&DHCP_KEYS)?;
        // pktvisor's dhcp handler has no metric groups: any name is refused with its message.
        resolve_groups(&[], &[], enable, disable)?;
        let mut ttl_ns = 5_000_000_000u64;
        if let Some(ms) = cfg.uint("xact_ttl_ms")? {
            ttl_ns = ms.saturating_mul(1_000_000);
        } else if let Some(s) = cfg.uint("xact_ttl_secs")? {
            ttl_ns = s.saturating_mul(1_000_000_000);
        }
        Ok(Self {
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
            xacts: DhcpXacts::new(max_open_xacts.min(MAX_OPEN), ttl_ns),
            buf: Vec::with_capacity(512),
        })
    }

    /// Open transactions.
    pub fn open_transactions(&self) -> usize {
        self.xacts.open()
    }

    /// Called after the window rotated at `now_ns`: transactions past their TTL time out in
    /// the new period.
    pub fn on_rotate(&mut self, now_ns: u64) {
        let n = self.xacts.purge(now_ns);
        self.window.live().xact_timed_out += n;
    }

    /// Processes one DHCP message; always accepted (pktvisor's dhcp has no filters).
    pub fn on_dhcp(&mut self, p: &PacketEvent, d: &DhcpEvent<'_>) -> bool {
        let s = sec(p.ts_ns);
        let b = self.window.live();
        b.events += 1;
        b.rate_events.add(s, 1);
        if p.deep {
            b.deep_samples += 1;
        }
        // pktvisor leaves DHCPv6 out of `total` and `rates.total`; wirelens counts both.
        b.total += 1;
        b.rate_total.add(s, 1);
        match d.msg {
            DhcpMsg::V4(m) => self.on_v4(p, d.src_mac, &m),
            DhcpMsg::V6 { outer, inner } => self.on_v6(p, d.src_mac, &outer, &inner),
        }
        true
    }

    fn on_v4(&mut self, p: &PacketEvent, src_mac: [u8; 6], m: &Dhcpv4<'_>) {
        let ty = m.msg_type.unwrap_or(0);
        let b = self.window.live();
        match b.v4.get_mut(usize::from(ty)) {
            Some(c) if ty != 0 => *c += 1,
            _ => b.other += 1,
        }
        let client = m.client_hw();
        let hostname = m.hostname.unwrap_or_default();
        if p.deep {
            if m.op == 1 {
                if !client.is_empty() {
                    b.clients.insert_bytes(client);
                }
                if !hostname.is_empty() {
                    b.top_hostnames.insert(hostname, 1);
                }
            }
            match (ty, m.server_id) {
                (wdhcp::msg::OFFER, Some(sid)) => {
                    self.buf.clear();
                    push_hex(&mut self.buf, &src_mac, true);
                    self.buf.push(b'/');
                    push_ip(&mut self.buf, IpAddr::V4(sid));
                    b.top_servers.insert(&self.buf, 1);
                }
                (wdhcp::msg::ACK, sid) => {
                    self.buf.clear();
                    push_ip(&mut self.buf, sid.map_or(p.src, IpAddr::V4));
                    b.top_leases.insert(&self.buf, 1);
                }
                _ => {}
            }
        }
        match ty {
            wdhcp::msg::DISCOVER => {
                // The OFFER is not reported per client: no host name to keep.
                self.xacts
                    .start(Phase::DiscoverOffer, client, m.xid, p.ts_ns, b"");
            }
            wdhcp::msg::REQUEST => {
                self.xacts
                    .start(Phase::RequestAck, client, m.xid, p.ts_ns, hostname);
            }
            wdhcp::msg::OFFER => {
                self.finish(Phase::DiscoverOffer, client, m.xid, p, |_, _| {});
            }
            wdhcp::msg::ACK => {
                let mac = m.client_mac();
                let yiaddr = m.yiaddr;
                self.finish(Phase::RequestAck, client, m.xid, p, |b, host| {
                    // pktvisor's item: `<client MAC>/<host name or Unknown>/<yiaddr>`.
                    b.0.clear();
                    push_hex(b.0, &mac, true);
                    b.0.push(b'/');
                    b.0.extend_from_slice(if host.is_empty() { b"Unknown" } else { host });
                    b.0.push(b'/');
                    push_ip(b.0, IpAddr::V4(yiaddr));
                    b.1.top_clients.insert(b.0, 1);
                });
            }
            wdhcp::msg::NAK => {
                // A refused request is answered: it must not count as timed out.
                let _ = self.xacts.finish(Phase::RequestAck, client, m.xid, p.ts_ns);
            }
            _ => {}
        }
    }

    fn on_v6(
        &mut self,
        p: &PacketEvent,
        src_mac: [u8; 6],
        outer: &v6::Dhcpv6<'_>,
        inner: &v6::Dhcpv6<'_>,
    ) {
        let b = self.window.live();
        // A relayed message counts as itself too: a relayed SOLICIT is a client's SOLICIT.
        let layers: &[&v6::Dhcpv6<'_>] = if inner == outer {
            &[outer]
        } else {
            &[outer, inner]
        };
        for m in layers {
            match b.v6.get_mut(usize::from(m.msg_type)) {
                Some(c) if m.msg_type != 0 => *c += 1,
                _ => b.other += 1,
            }
        }
        let m = inner;
        let client = m.client_id.unwrap_or_default();
        let mut name = [0u8; v6::FQDN_TEXT_MAX];
        let fqdn_len = m
            .fqdn
            .and_then(|f| v6::fqdn_text(f, &mut name))
            .unwrap_or(0);
        let fqdn = &name[..fqdn_len];
        let from_client = matches!(
            m.msg_type,
            v6::msg::SOLICIT
                | v6::msg::REQUEST
                | v6::msg::CONFIRM
                | v6::msg::RENEW
                | v6::msg::REBIND
                | v6::msg::RELEASE
                | v6::msg::DECLINE
                | v6::msg::INFORMATION_REQUEST
        );
        if p.deep {
            if from_client {
                if !client.is_empty() {
                    b.clients.insert_bytes(client);
                }
                if !fqdn.is_empty() {
                    b.top_hostnames.insert(fqdn, 1);
                }
            }
            let server_msg = matches!(m.msg_type, v6::msg::ADVERTISE | v6::msg::REPLY);
            if server_msg && m.server_id.is_some() {
                // pktvisor's item: `<source MAC>/<source address>` of the answering packet.
                self.buf.clear();
                push_hex(&mut self.buf, &src_mac, true);
                self.buf.push(b'/');
                push_ip(&mut self.buf, p.src);
                b.top_servers.insert(&self.buf, 1);
            }
            if m.msg_type == v6::msg::REPLY && m.ia_addresses().next().is_some() {
                self.buf.clear();
                push_ip(&mut self.buf, p.src);
                b.top_leases.insert(&self.buf, 1);
            }
        }
        match m.msg_type {
            v6::msg::SOLICIT => {
                self.xacts
                    .start(Phase::SolicitAdvertise, client, m.xid, p.ts_ns, b"");
            }
            v6::msg::REQUEST => {
                self.xacts
                    .start(Phase::RequestReply, client, m.xid, p.ts_ns, fqdn);
            }
            v6::msg::ADVERTISE => {
                self.finish(Phase::SolicitAdvertise, client, m.xid, p, |_, _| {});
            }
            v6::msg::REPLY => {
                let lease = m.ia_addresses().next();
                self.finish(Phase::RequestReply, client, m.xid, p, |b, host| {
                    // `<client DUID>/<FQDN or Unknown>/<first leased address or prefix>`.
                    b.0.clear();
                    push_hex(b.0, client, false);
                    b.0.push(b'/');
                    b.0.extend_from_slice(if host.is_empty() { b"Unknown" } else { host });
                    b.0.push(b'/');
                    match lease {
                        Some(v6::Lease::Address { addr, .. }) => push_ip(b.0, IpAddr::V6(addr)),
                        Some(v6::Lease::Prefix { prefix, len, .. }) => {
                            push_ip(b.0, IpAddr::V6(prefix));
                            let _ = std::io::Write::write_fmt(b.0, format_args!("/{len}"));
                        }
                        None => b.0.extend_from_slice(b"Unknown"),
                    }
                    b.1.top_clients_v6.insert(b.0, 1);
                });
            }
            _ => {}
        }
    }

    /// Closes a transaction: counts it, records its latency (deep-sampled events only) and
    /// hands a matched one to `on_match` with the scratch buffer, the live bucket and the
    /// request's host name.
    fn finish(
        &mut self,
        phase: Phase,
        client: &[u8],
        xid: u32,
        p: &PacketEvent,
        on_match: impl FnOnce((&mut Vec<u8>, &mut DhcpBucket), &[u8]),
    ) {
        let b = self.window.live();
        match self.xacts.finish(phase, client, xid, p.ts_ns) {
            Outcome::Matched {
                elapsed_ns,
                hostname,
            } => {
                b.xact_total += 1;
                b.phase_total[phase as usize] += 1;
                if p.deep {
                    b.phase_us[phase as usize].record(elapsed_ns / 1_000);
                    on_match((&mut self.buf, b), hostname);
                }
            }
            Outcome::TimedOut => b.xact_timed_out += 1,
            Outcome::Orphan => {}
        }
    }

    pub fn export(&self, b: &DhcpBucket) -> Export {
        let w = &self.window_config;
        let mut e = Export::default();
        if let Some(v) = sketch::rate(&b.rate_total) {
            e.push(
                &["rates", "total"],
                "Rate of all DHCP wire packets (combined ingress and egress) in packets per second",
                v,
            );
        }
        if let Some(v) = sketch::rate(&b.rate_events) {
            e.push(
                &["rates", "events"],
                "Rate of all DHCP wire events (before filtering) per second",
                v,
            );
        }
        e.int(
            &["wire_packets", "events"],
            "Total DHCP wire events (before filtering)",
            b.events,
        );
        e.int(
            &["wire_packets", "deep_samples"],
            "Total DHCP wire packets that were sampled for deep inspection",
            b.deep_samples,
        );
        e.int(
            &["wire_packets", "total"],
            "Total DHCP wire packets matching the configured filter(s)",
            b.total,
        );
        e.int(
            &["wire_packets", "filtered"],
            "Total DHCP wire packets seen that did not match the configured filter(s) (if any)",
            b.filtered,
        );
        let v4: [(&'static str, u8, &'static str); 8] = [
            (
                "discover",
                1,
                "Total DHCP packets with message type DISCOVER",
            ),
            ("offer", 2, "Total DHCP packets with message type OFFER"),
            ("request", 3, "Total DHCP packets with message type REQUEST"),
            ("decline", 4, "Total DHCP packets with message type DECLINE"),
            ("ack", 5, "Total DHCP packets with message type ACK"),
            ("nak", 6, "Total DHCP packets with message type NAK"),
            ("release", 7, "Total DHCP packets with message type RELEASE"),
            ("inform", 8, "Total DHCP packets with message type INFORM"),
        ];
        for (name, ty, help) in v4 {
            e.int(&["wire_packets", name], help, b.v4[usize::from(ty)]);
        }
        let v6: [(&'static str, u8, &'static str); 13] = [
            (
                "solicit",
                1,
                "Total DHCPv6 packets with message type SOLICIT",
            ),
            (
                "advertise",
                2,
                "Total DHCPv6 packets with message type ADVERTISE",
            ),
            (
                "request_v6",
                3,
                "Total DHCPv6 packets with message type REQUEST",
            ),
            (
                "confirm",
                4,
                "Total DHCPv6 packets with message type CONFIRM",
            ),
            ("renew", 5, "Total DHCPv6 packets with message type RENEW"),
            ("rebind", 6, "Total DHCPv6 packets with message type REBIND"),
            ("reply", 7, "Total DHCPv6 packets with message type REPLY"),
            (
                "release_v6",
                8,
                "Total DHCPv6 packets with message type RELEASE",
            ),
            (
                "decline_v6",
                9,
                "Total DHCPv6 packets with message type DECLINE",
            ),
            (
                "reconfigure",
                10,
                "Total DHCPv6 packets with message type RECONFIGURE",
            ),
            (
                "information_request",
                11,
                "Total DHCPv6 packets with message type INFORMATION-REQUEST",
            ),
            (
                "relay_forw",
                12,
                "Total DHCPv6 packets with message type RELAY-FORW",
            ),
            (
                "relay_repl",
                13,
                "Total DHCPv6 packets with message type RELAY-REPL",
            ),
        ];
        for (name, ty, help) in v6 {
            e.int(&["wire_packets", name], help, b.v6[usize::from(ty)]);
        }
        e.int(
            &["wire_packets", "other"],
            "Total DHCP messages of another or no message type (plain BOOTP)",
            b.other,
        );
        e.int(
            &["cardinality", "clients"],
            "Cardinality of unique clients (hardware address or DUID)",
            b.clients.estimate(),
        );
        e.int(
            &["xact", "counts", "total"],
            "Total DHCP transactions (request/answer pairs)",
            b.xact_total,
        );
        e.int(
            &["xact", "counts", "timed_out"],
            "Total number of DHCP transactions that timed out",
            b.xact_timed_out,
        );
        let phases: [(&'static str, &'static str, &'static str); 4] = [
            (
                "discover_offer",
                "Total DHCP DISCOVER/OFFER transactions",
                "Quantiles of DHCP DISCOVER/OFFER transaction timing, in microseconds",
            ),
            (
                "request_ack",
                "Total DHCP REQUEST/ACK transactions",
                "Quantiles of DHCP REQUEST/ACK transaction timing, in microseconds",
            ),
            (
                "solicit_advertise",
                "Total DHCPv6 SOLICIT/ADVERTISE transactions",
                "Quantiles of DHCPv6 SOLICIT/ADVERTISE transaction timing, in microseconds",
            ),
            (
                "request_reply",
                "Total DHCPv6 REQUEST/REPLY transactions",
                "Quantiles of DHCPv6 REQUEST/REPLY transaction timing, in microseconds",
            ),
        ];
        for (phase, (name, help_total, help_q)) in Phase::ALL.iter().zip(phases) {
            let i = *phase as usize;
            e.int(&["xact", name, "total"], help_total, b.phase_total[i]);
            if let Some(v) = sketch::quantiles(&b.phase_us[i]) {
                e.push(&["xact", name, "quantiles_us"], help_q, v);
            }
        }
        e.push(
            &["top_clients"],
            "Top DHCP clients (MAC/host name/assigned address) by REQUEST/ACK transactions",
            b.top_clients.export("client", w),
        );
        e.push(
            &["top_clients_v6"],
            "Top DHCPv6 clients (DUID/FQDN/leased address) by REQUEST/REPLY transactions",
            b.top_clients_v6.export("client", w),
        );
        e.push(
            &["top_servers"],
            "Top DHCP servers (MAC/server address) by OFFER, ADVERTISE and REPLY",
            b.top_servers.export("server", w),
        );
        e.push(
            &["top_hostnames"],
            "Top host names sent by DHCP clients (option 12, DHCPv6 client FQDN)",
            b.top_hostnames.export("hostname", w),
        );
        e.push(
            &["top_leases"],
            "Top DHCP servers by leases granted (ACK, REPLY with addresses)",
            b.top_leases.export("server", w),
        );
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Direction, L3Kind, L4Kind};
    use crate::export::Value;
    use std::net::Ipv4Addr;

    fn pkt(ts_ns: u64, src: [u8; 4]) -> PacketEvent {
        PacketEvent {
            ts_ns,
            dir: Direction::Unknown,
            l3: L3Kind::Ipv4,
            l4: L4Kind::Udp,
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(Ipv4Addr::BROADCAST),
            src_port: 68,
            dst_port: 67,
            syn: false,
            frame_len: 342,
            flow: 1,
            deep: true,
            both_ends: false,
        }
    }

    fn v4(op: u8, xid: u32, mac: [u8; 6], yiaddr: [u8; 4], opts: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; wdhcp::HEADER_LEN];
        m[0] = op;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&xid.to_be_bytes());
        m[16..20].copy_from_slice(&yiaddr);
        m[28..34].copy_from_slice(&mac);
        m.extend_from_slice(&wdhcp::MAGIC_COOKIE);
        m.extend_from_slice(opts);
        m.push(255);
        m
    }

    fn handler() -> Dhcp {
        Dhcp::new(&ConfigMap::new(), WindowConfig::default(), &[], &[], 1024).expect("builds")
    }

    fn feed(h: &mut Dhcp, ts_ns: u64, src: [u8; 4], mac: [u8; 6], bytes: &[u8]) {
        let m = wdhcp::parse(bytes).expect("parses");
        let ev = DhcpEvent {
            msg: DhcpMsg::V4(m),
            src_mac: mac,
        };
        assert!(h.on_dhcp(&pkt(ts_ns, src), &ev));
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

    fn top(e: &Export, path: &str) -> Vec<(String, u64)> {
        e.metrics
            .iter()
            .find(|m| m.json_path == [path])
            .map(|m| match &m.value {
                Value::Top { items, .. } => {
                    items.iter().map(|i| (i.name.clone(), i.estimate)).collect()
                }
                _ => Vec::new(),
            })
            .unwrap_or_default()
    }

    const CLIENT: [u8; 6] = [0x78, 0x4f, 0x43, 0x78, 0x19, 0xbc];
    const SERVER: [u8; 6] = [0xb8, 0x27, 0xeb, 0x0c, 0xb3, 0xe2];

    #[test]
    fn a_full_exchange_gives_counts_latency_clients_and_servers() {
        let mut h = handler();
        let host = [12, 4, b'h', b'o', b's', b't'];
        let sid = [54, 4, 192, 168, 2, 1];
        let mut discover = vec![53, 1, 1];
        discover.extend_from_slice(&host);
        let mut offer = vec![53, 1, 2];
        offer.extend_from_slice(&sid);
        let mut request = vec![53, 1, 3];
        request.extend_from_slice(&host);
        let mut ack = vec![53, 1, 5];
        ack.extend_from_slice(&sid);
        let yi = [192, 168, 2, 205];
        feed(
            &mut h,
            1_000_000,
            [0; 4],
            CLIENT,
            &v4(1, 9, CLIENT, [0; 4], &discover),
        );
        feed(
            &mut h,
            3_000_000,
            [192, 168, 2, 1],
            SERVER,
            &v4(2, 9, CLIENT, yi, &offer),
        );
        feed(
            &mut h,
            4_000_000,
            [0; 4],
            CLIENT,
            &v4(1, 9, CLIENT, [0; 4], &request),
        );
        feed(
            &mut h,
            4_500_000,
            [192, 168, 2, 1],
            SERVER,
            &v4(2, 9, CLIENT, yi, &ack),
        );
        // A stray ACK for a transaction never seen, and a message without option 53.
        feed(
            &mut h,
            5_000_000,
            [192, 168, 2, 1],
            SERVER,
            &v4(2, 77, CLIENT, yi, &ack),
        );
        feed(
            &mut h,
            5_000_000,
            [0; 4],
            CLIENT,
            &v4(1, 78, CLIENT, [0; 4], &[]),
        );
        let e = h.export(h.window.get(0).expect("live"));
        assert_eq!(int(&e, &["wire_packets", "events"]), 6);
        assert_eq!(int(&e, &["wire_packets", "total"]), 6);
        assert_eq!(int(&e, &["wire_packets", "discover"]), 1);
        assert_eq!(int(&e, &["wire_packets", "offer"]), 1);
        assert_eq!(int(&e, &["wire_packets", "request"]), 1);
        assert_eq!(int(&e, &["wire_packets", "ack"]), 2);
        assert_eq!(int(&e, &["wire_packets", "other"]), 1);
        assert_eq!(int(&e, &["xact", "counts", "total"]), 2);
        assert_eq!(int(&e, &["xact", "discover_offer", "total"]), 1);
        assert_eq!(int(&e, &["xact", "request_ack", "total"]), 1);
        assert_eq!(int(&e, &["cardinality", "clients"]), 1);
        let q = e
            .metrics
            .iter()
            .find(|m| m.json_path == ["xact", "discover_offer", "quantiles_us"])
            .expect("latency recorded");
        match &q.value {
            Value::Quantiles(v) => assert_eq!(v.max, crate::export::Num::U(2_000)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            top(&e, "top_clients"),
            vec![("78:4f:43:78:19:bc/host/192.168.2.205".to_string(), 1)]
        );
        assert_eq!(
            top(&e, "top_servers"),
            vec![("b8:27:eb:0c:b3:e2/192.168.2.1".to_string(), 1)]
        );
        assert_eq!(top(&e, "top_leases"), vec![("192.168.2.1".to_string(), 2)]);
        assert_eq!(top(&e, "top_hostnames"), vec![("host".to_string(), 2)]);
    }

    #[test]
    fn open_requests_time_out_at_rotation() {
        let mut h = handler();
        let request = [53, 1, 3];
        feed(
            &mut h,
            1_000_000_000,
            [0; 4],
            CLIENT,
            &v4(1, 1, CLIENT, [0; 4], &request),
        );
        assert_eq!(h.open_transactions(), 1);
        h.window.rotate_to(1);
        h.on_rotate(61_000_000_000);
        assert_eq!(h.open_transactions(), 0);
        let e = h.export(h.window.get(1).expect("live"));
        assert_eq!(int(&e, &["xact", "counts", "timed_out"]), 1);
    }

    #[test]
    fn decode_picks_the_family_by_port() {
        let b = v4(1, 1, CLIENT, [0; 4], &[53, 1, 1]);
        assert!(matches!(decode(68, 67, &b), Some(Ok(DhcpMsg::V4(_)))));
        assert!(matches!(decode(40000, 67, &b), Some(Ok(DhcpMsg::V4(_)))));
        assert!(decode(53, 40000, &b).is_none());
        assert!(matches!(decode(68, 67, &b[..100]), Some(Err(_))));
        let s = [1u8, 0, 0, 1];
        assert!(matches!(decode(546, 547, &s), Some(Ok(DhcpMsg::V6 { .. }))));
    }

    /// A DHCPv6 relay-forward carrying a REQUEST with client id, FQDN and an IA_NA address.
    fn v6_relayed_request() -> Vec<u8> {
        fn opt(code: u16, data: &[u8]) -> Vec<u8> {
            let mut v = code.to_be_bytes().to_vec();
            v.extend_from_slice(&(data.len() as u16).to_be_bytes());
            v.extend_from_slice(data);
            v
        }
        let mut inner = vec![v6::msg::REQUEST, 1, 2, 3];
        inner.extend(opt(v6::opt::CLIENT_ID, &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]));
        inner.extend(opt(v6::opt::CLIENT_FQDN, b"\x01\x04host\x00"));
        let mut ia = vec![0u8; 12];
        let mut addr = vec![0x20, 1, 0xd, 0xb8];
        addr.resize(24, 7);
        ia.extend(opt(v6::opt::IAADDR, &addr));
        inner.extend(opt(v6::opt::IA_NA, &ia));
        let mut relay = vec![v6::msg::RELAY_FORW, 0];
        relay.extend_from_slice(&[0u8; 32]);
        relay.extend(opt(v6::opt::RELAY_MSG, &inner));
        relay
    }

    #[test]
    fn truncated_and_mutated_messages_never_panic_the_handler() {
        let mut h = handler();
        let mut opts = vec![53, 1, 3, 12, 4, b'h', b'o', b's', b't', 54, 4, 10, 0, 0, 1];
        opts.extend_from_slice(&[52, 1, 3, 61, 7, 1, 1, 2, 3, 4, 5, 6, 82, 2, 1, 0]);
        let v4m = v4(1, 5, CLIENT, [0; 4], &opts);
        let v6m = v6_relayed_request();
        let mut decoded = 0u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut step = |h: &mut Dhcp, ports: (u16, u16), bytes: &[u8], ts: u64| {
            if let Some(Ok(msg)) = decode(ports.0, ports.1, bytes) {
                decoded += 1;
                let ev = DhcpEvent {
                    msg,
                    src_mac: SERVER,
                };
                assert!(h.on_dhcp(&pkt(ts, [10, 0, 0, 1]), &ev));
            }
        };
        for (ports, msg) in [((68, 67), &v4m), ((546, 547), &v6m)] {
            for cut in 0..=msg.len() {
                step(&mut h, ports, &msg[..cut], cut as u64);
            }
            for i in 0..2_000u64 {
                let mut m = msg.clone();
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x as usize) % m.len();
                    m[at] = (x >> 32) as u8;
                }
                let cut = (x >> 40) as usize % (m.len() + 1);
                step(&mut h, ports, &m[..cut], 1_000 + i);
            }
        }
        let e = h.export(h.window.get(0).expect("live"));
        assert!(decoded > 1_000, "{decoded}");
        assert_eq!(int(&e, &["wire_packets", "events"]), decoded);
    }

    #[test]
    fn metric_groups_and_unknown_keys_are_refused() {
        let mut cfg = ConfigMap::new();
        cfg.set("bogus", crate::config::ConfigValue::Bool(true));
        let err = Dhcp::new(&cfg, WindowConfig::default(), &[], &[], 10)
            .err()
            .expect("refused");
        assert!(
            err.0
                .starts_with("bogus is an invalid/unsupported config or filter")
        );
        let err = Dhcp::new(
            &ConfigMap::new(),
            WindowConfig::default(),
            &["top_clients".to_string()],
            &[],
            10,
        )
        .err()
        .expect("refused");
        assert_eq!(
            err.0,
            "top_clients is an invalid/unsupported metric group. The valid groups are: all, "
        );
    }
}
