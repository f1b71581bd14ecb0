//! dnstap events: a dnstap message becomes a packet event for the `net` handlers and a DNS
//! event for the `dns` handlers, with pktvisor's mapping of message types to directions and of
//! socket family and protocol to layers. Transactions are matched by addresses, ports and id.

use std::net::{IpAddr, Ipv4Addr};

use wire::dnstap::{Direction as TapDirection, SocketFamily, SocketProtocol};

use crate::event::{Direction, DnsEvent, L3Kind, L4Kind, PacketEvent};
use crate::pipeline::{ChainEvent, Pipeline, dispatch, lower_qname};

/// The shard key of a dnstap message: both directions of a query/response pair hash alike.
pub fn flow_of(msg: &wire::dnstap::Message<'_>) -> u64 {
    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let proto = match msg.socket_protocol {
        Some(SocketProtocol::Tcp) => 6,
        _ => 17,
    };
    wire::hash::flow_hash_parts(
        msg.query_ip().unwrap_or(unspecified),
        msg.query_port.unwrap_or(0) as u16,
        msg.response_ip().unwrap_or(unspecified),
        msg.response_port.unwrap_or(0) as u16,
        proto,
    )
}

impl Pipeline {
    /// Processes one dnstap payload (a protobuf `Dnstap`) dated `ts_ns`. Payloads that are not
    /// usable messages (pktvisor: "wrong type or has no message") are counted and skipped.
    pub fn process_dnstap(&mut self, payload: &[u8], ts_ns: u64, flow: u64) {
        let Ok(tap) = wire::dnstap::decode(payload) else {
            self.stats.dnstap_skipped += 1;
            return;
        };
        let Some(msg) = tap.event_message() else {
            self.stats.dnstap_skipped += 1;
            return;
        };
        let Some(kind) = msg.kind else {
            self.stats.dnstap_skipped += 1;
            return;
        };
        self.stats.packets += 1;
        let dir = match kind.direction() {
            Some(TapDirection::ToHost) => Direction::ToHost,
            Some(TapDirection::FromHost) => Direction::FromHost,
            None => Direction::Unknown,
        };
        let l3 = match msg.socket_family {
            Some(SocketFamily::Inet) => L3Kind::Ipv4,
            Some(SocketFamily::Inet6) => L3Kind::Ipv6,
            _ => L3Kind::Other,
        };
        let l4 = match msg.socket_protocol {
            Some(SocketProtocol::Udp) => L4Kind::Udp,
            Some(SocketProtocol::Tcp) => L4Kind::Tcp,
            _ => L4Kind::Other,
        };
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let src = msg.query_ip().unwrap_or(unspecified);
        let dst = msg.response_ip().unwrap_or(unspecified);
        let ev = PacketEvent {
            ts_ns,
            dir,
            l3,
            l4,
            src,
            dst,
            src_port: msg.query_port.unwrap_or(0) as u16,
            dst_port: msg.response_port.unwrap_or(0) as u16,
            syn: false,
            // pktvisor sizes a dnstap event by its frame.
            frame_len: payload.len() as u32,
            flow,
            deep: true,
            both_ends: true,
        };
        let parsed = msg.dns_message().and_then(|m| wire::dns::parse(m).ok());
        if msg.dns_message().is_some() && parsed.is_none() {
            self.stats.dns_malformed += 1;
        }
        let qname = parsed.as_ref().and_then(|m| lower_qname(m, &mut self.name));
        let dns_ev = parsed.as_ref().map(|m| DnsEvent {
            ts_ns,
            dir,
            l3,
            l4,
            src,
            dst,
            metric_port: msg.query_port.unwrap_or(0) as u16,
            flow,
            deep: true,
            msg: m,
            qname,
            dnstap: kind.family(),
        });
        for policy in &mut self.policies {
            dispatch(
                policy,
                ChainEvent::Packet(&ev, dns_ev.as_ref()),
                &mut self.geo,
            );
        }
    }
}
