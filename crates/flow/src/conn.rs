//! The connection table: bounded, bidirectional per-flow state keyed by the 5-tuple plus VLAN,
//! with TCP state from the handshake to FIN/RST, handshake RTT, retransmission, out-of-order
//! and zero-window counts, idle and active timeouts, and eviction at capacity. It is not a
//! reassembler: it never buffers payload.
//!
//! Behaviour:
//! * both directions of a conversation share one entry (the key is the ordered pair of
//!   endpoints); the *initiator* is the sender of the first packet seen, except that a first
//!   packet carrying SYN+ACK makes its receiver the initiator;
//! * TCP state: `SynSent` → `SynReceived` (SYN+ACK, or a SYN from the other side: simultaneous
//!   open) → `Established` (the initiator's ACK; RTT = that ACK's time − the first SYN's time)
//!   → `FinWait` (one FIN) → `Closed` (both FINs); RST gives `Reset`. A flow whose handshake
//!   was not seen starts `Established` without an RTT. A SYN without ACK on a `Closed` or
//!   `Reset` flow ends it and starts a new one (port reuse);
//! * per direction the highest sequence number seen is kept: a segment whose bytes were all
//!   seen is a retransmission, unless it falls inside the last hole seen (bytes skipped when
//!   a later segment arrived first), then it is out of order; a segment that overlaps seen
//!   bytes and brings new ones is a retransmission too;
//! * a zero window is counted on any segment advertising window 0 that is not SYN, FIN or RST
//!   (Wireshark's `tcp.analysis.zero_window`);
//! * time is packet time, given with each packet: a flow idle for `idle_timeout_ns` ends
//!   (checked from the least recently seen end of the table on each packet, so amortised O(1)).
//!   A flow moves to the recent end at most once per 1/64 of the idle timeout — moving it on
//!   every packet would touch two neighbouring entries' memory each time — so an idle flow ends
//!   within 1/64 of the timeout after it is due, and eviction picks a flow that was least
//!   recently seen to within that slack;
//!   a flow older than `active_timeout_ns` is reported and restarted, so long-lived flows show
//!   up before they end;
//! * the table holds at most `max_flows`; a new flow past the cap evicts the least recently
//!   seen one (reported, counted).
//!
//! Every flow that ends (idle, active timeout, close-and-reuse, eviction, [`ConnTable::drain`])
//! is handed to the caller's sink as a [`ConnRecord`], a plain `Copy` value: nothing allocates
//! per packet once the table has reached its working size (its storage is reserved at start).
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use flow::conn::{ConnConfig, ConnTable, Segment, TcpState};
//!
//! let c = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let s = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80));
//! let mut t = ConnTable::new(ConnConfig::default());
//! let mut done = Vec::new();
//! let mut seg = Segment::tcp(c, 40000, s, 80, 0x02, 100, 0, 1000);
//! t.update(&seg, 1_000, &mut |r| done.push(*r));
//! seg = Segment::tcp(s, 80, c, 40000, 0x12, 500, 101, 1000);
//! t.update(&seg, 1_500, &mut |r| done.push(*r));
//! seg = Segment::tcp(c, 40000, s, 80, 0x10, 101, 501, 1000);
//! let seen = t.update(&seg, 2_000, &mut |r| done.push(*r)).expect("tracked");
//! assert_eq!(t.conn(seen.slot).map(|f| f.state), Some(TcpState::Established));
//! assert_eq!(t.conn(seen.slot).and_then(|f| f.rtt_ns), Some(1_000));
//! t.drain(&mut |r| done.push(*r));
//! assert_eq!(done.len(), 1);
//! assert_eq!(done[0].packets, [2, 1]);
//! ```
//!
//! Memory: an entry costs about 230 bytes (key, state, recency links, index), reserved up
//! front for `max_flows` entries: the default 131 072 flows reserve about 30 MB of address
//! space, touched only as flows arrive.

use core::net::IpAddr;

use crate::slab::LruSlab;
use crate::{addr_bits, addr_from_bits};

/// TCP flag bits used here (RFC 9293).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Limits and timeouts of a [`ConnTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// Flows tracked at once; a new flow past this evicts the least recently seen one.
    pub max_flows: usize,
    /// A flow without packets for this long (packet time) ends.
    pub idle_timeout_ns: u64,
    /// A flow lasting this long is reported and restarted (its state is kept).
    pub active_timeout_ns: u64,
    /// Seed of the table's hash (keys are attacker-chosen).
    pub hash_seed: u64,
}

impl Default for ConnConfig {
    fn default() -> Self {
        Self {
            // 2^17: about 35 MB per table; a worker sees its share of the flows.
            max_flows: 131_072,
            // NetFlow's customary inactive and active timeouts (Cisco: 15 s / 30 min; we use
            // a longer idle timeout so quiet TCP sessions are not split).
            idle_timeout_ns: 120_000_000_000,
            active_timeout_ns: 1_800_000_000_000,
            hash_seed: 0x51ab_9e3c_0d2f_7713,
        }
    }
}

/// TCP state of a flow (`None` for other protocols).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// Not TCP.
    #[default]
    None,
    /// SYN seen from the initiator.
    SynSent,
    /// SYN+ACK seen (or a SYN from both sides).
    SynReceived,
    /// Handshake completed, or a flow picked up without its handshake.
    Established,
    /// One side sent FIN.
    FinWait,
    /// Both sides sent FIN.
    Closed,
    /// A side sent RST.
    Reset,
}

impl TcpState {
    /// Lower-case name for outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn_sent",
            TcpState::SynReceived => "syn_received",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::Closed => "closed",
            TcpState::Reset => "reset",
        }
    }
}

/// Why a flow record was produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// No packet for the idle timeout.
    Idle,
    /// Lasted the active timeout; the flow continues in a new record.
    Active,
    /// A new SYN reused the ports of a closed flow.
    Reused,
    /// Pushed out by a new flow at capacity.
    Evicted,
    /// Still open at the end of input ([`ConnTable::drain`]).
    Remaining,
}

impl EndReason {
    /// Lower-case name for outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Active => "active_timeout",
            EndReason::Reused => "reused",
            EndReason::Evicted => "evicted",
            EndReason::Remaining => "remaining",
        }
    }
}

/// One packet as the table needs it (no payload: the caller inspects payload itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// IP protocol number (6 = TCP; anything else is tracked without TCP state).
    pub proto: u8,
    pub vlan: u16,
    /// Bytes counted for the flow (the frame length).
    pub bytes: u32,
    /// Application payload length (decides "payload packets").
    pub payload_len: u32,
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub tcp_window: u16,
}

impl Segment {
    /// A TCP segment without payload, `frame_bytes` long (tests and examples).
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        window: u16,
    ) -> Self {
        Self {
            src,
            dst,
            sport,
            dport,
            proto: 6,
            vlan: 0,
            bytes: 60,
            payload_len: 0,
            tcp_flags: flags,
            tcp_seq: seq,
            tcp_ack: ack,
            tcp_window: window,
        }
    }

    /// A UDP datagram of `payload_len` payload bytes (tests and examples).
    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload_len: u32) -> Self {
        Self {
            src,
            dst,
            sport,
            dport,
            proto: 17,
            vlan: 0,
            bytes: 42 + payload_len,
            payload_len,
            tcp_flags: 0,
            tcp_seq: 0,
            tcp_ack: 0,
            tcp_window: 0,
        }
    }
}

/// The symmetric key: endpoints ordered so both directions hash alike. Ports, VLAN, protocol
/// and family are packed in one word (`tail`), so a lookup hashes and compares the key in
/// three wide operations.
#[derive(Clone, Copy, Debug, Default, Eq)]
struct ConnKey {
    a: u128,
    b: u128,
    /// `a_port << 48 | b_port << 32 | vlan << 16 | proto << 8 | v6`.
    tail: u64,
}

impl PartialEq for ConnKey {
    /// Without a branch per field: every packet's lookup compares a key.
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        ((self.a ^ o.a) | (self.b ^ o.b)) == 0 && self.tail == o.tail
    }
}

impl core::hash::Hash for ConnKey {
    /// Three hasher writes rather than one per field: the key is hashed on every packet.
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.a);
        state.write_u128(self.b);
        state.write_u64(self.tail);
    }
}

impl ConnKey {
    fn new(a: u128, b: u128, a_port: u16, b_port: u16, vlan: u16, proto: u8, v6: bool) -> Self {
        Self {
            a,
            b,
            tail: u64::from(a_port) << 48
                | u64::from(b_port) << 32
                | u64::from(vlan) << 16
                | u64::from(proto) << 8
                | u64::from(v6),
        }
    }

    fn a_port(&self) -> u16 {
        (self.tail >> 48) as u16
    }

    fn b_port(&self) -> u16 {
        (self.tail >> 32) as u16
    }

    fn vlan(&self) -> u16 {
        (self.tail >> 16) as u16
    }

    fn proto(&self) -> u8 {
        (self.tail >> 8) as u8
    }

    fn v6(&self) -> bool {
        self.tail & 1 != 0
    }

    /// The key of a segment and whether its sender is endpoint `a`.
    fn of(seg: &Segment) -> (Self, bool) {
        let (s, d) = (addr_bits(seg.src), addr_bits(seg.dst));
        let src_is_a = (s, seg.sport) <= (d, seg.dport);
        let (a, a_port, b, b_port) = if src_is_a {
            (s, seg.sport, d, seg.dport)
        } else {
            (d, seg.dport, s, seg.sport)
        };
        let key = ConnKey::new(a, b, a_port, b_port, seg.vlan, seg.proto, seg.src.is_ipv6());
        (key, src_is_a)
    }
}

/// Per-direction sequence tracking.
#[derive(Clone, Copy, Debug, Default)]
struct SeqTrack {
    /// One past the highest sequence number seen.
    next: u32,
    /// The last hole: bytes skipped when a later segment came first.
    hole_start: u32,
    hole_end: u32,
    /// Initial sequence number of the direction's SYN.
    isn: u32,
    valid: bool,
    hole: bool,
    fin: bool,
    has_isn: bool,
}

/// `a < b` in sequence space (RFC 1982 arithmetic).
#[inline]
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn seq_le(a: u32, b: u32) -> bool {
    a == b || seq_lt(a, b)
}

/// What one segment was, for sequence analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SeqVerdict {
    InOrder,
    Retransmission,
    OutOfOrder,
}

impl SeqTrack {
    /// Classifies a segment occupying `len` sequence numbers from `seq` (payload + SYN + FIN).
    fn observe(&mut self, seq: u32, len: u32, syn: bool) -> SeqVerdict {
        if len == 0 {
            return SeqVerdict::InOrder;
        }
        let end = seq.wrapping_add(len);
        if !self.valid || (syn && !(self.has_isn && self.isn == seq)) {
            // First segment of this direction, or a SYN with a new initial sequence number.
            if syn {
                self.isn = seq;
                self.has_isn = true;
            }
            self.next = end;
            self.valid = true;
            self.hole = false;
            return SeqVerdict::InOrder;
        }
        if seq_le(end, self.next) {
            if self.hole && seq_le(self.hole_start, seq) && seq_le(end, self.hole_end) {
                // Fills (part of) the hole: never seen before, arrived late.
                if seq == self.hole_start {
                    self.hole_start = end;
                } else if end == self.hole_end {
                    self.hole_end = seq;
                }
                if !seq_lt(self.hole_start, self.hole_end) {
                    self.hole = false;
                }
                return SeqVerdict::OutOfOrder;
            }
            return SeqVerdict::Retransmission;
        }
        if seq_lt(seq, self.next) {
            // Overlaps bytes already seen and brings new ones.
            self.next = end;
            return SeqVerdict::Retransmission;
        }
        if seq != self.next {
            self.hole_start = self.next;
            self.hole_end = seq;
            self.hole = true;
        }
        self.next = end;
        SeqVerdict::InOrder
    }
}

/// The state of one flow. Index 0 of the pairs is the initiator's direction, 1 the responder's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Conn {
    /// First packet time, ns.
    pub start_ns: u64,
    /// Last packet time, ns.
    pub last_ns: u64,
    /// Packets per direction.
    pub packets: [u64; 2],
    /// Bytes (frame lengths) per direction.
    pub bytes: [u64; 2],
    /// Packets with payload per direction.
    pub payload_packets: [u64; 2],
    pub state: TcpState,
    /// Handshake RTT: the initiator's ACK completing the handshake minus its first SYN.
    pub rtt_ns: Option<u64>,
    pub retransmissions: u32,
    pub out_of_order: u32,
    pub zero_window: u32,
    /// Application label, owned by the caller (`0` = not yet known).
    pub app: u16,
    /// Caller-defined detail of the label (e.g. how it was decided).
    pub app_detail: u8,
    /// Caller-defined bits, cleared when a new flow starts in the slot and kept across an
    /// active-timeout restart (e.g. which stream consumers are finished with the connection, so
    /// that its later packets need not be looked up again in their tables).
    pub l7_done: u8,
    /// Caller-defined words, cleared and kept as `l7_done` is (e.g. where stream consumers
    /// keep their own entry for the connection: [`crate::stream::Hint`]).
    pub l7_hint: [u64; 2],
    /// Whether endpoint `a` of the key is the initiator.
    init_is_a: bool,
    /// When the flow last moved to the recent end of the table.
    touched_ns: u64,
    syn_ns: Option<u64>,
    seq: [SeqTrack; 2],
}

/// A finished (or reported) flow: endpoints oriented initiator → responder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnRecord {
    pub initiator: IpAddr,
    pub initiator_port: u16,
    pub responder: IpAddr,
    pub responder_port: u16,
    pub proto: u8,
    pub vlan: u16,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Packets per direction (initiator → responder first).
    pub packets: [u64; 2],
    /// Bytes per direction.
    pub bytes: [u64; 2],
    pub state: TcpState,
    pub rtt_ns: Option<u64>,
    pub retransmissions: u32,
    pub out_of_order: u32,
    pub zero_window: u32,
    pub app: u16,
    pub app_detail: u8,
    pub reason: EndReason,
}

/// Table-wide counters (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Flows created (a restart after an active timeout or a port reuse counts again).
    pub flows: u64,
    /// Flows pushed out at capacity.
    pub evicted: u64,
    /// Flows ended by the idle timeout.
    pub idle_expired: u64,
    /// Records cut by the active timeout.
    pub active_expired: u64,
    /// Flows ended by a new SYN after close.
    pub reused: u64,
    /// Packets that could not be tracked (a table of capacity 0).
    pub refused: u64,
    /// Handshakes completed (RTT measured).
    pub handshakes: u64,
    pub resets: u64,
    pub retransmissions: u64,
    pub out_of_order: u64,
    pub zero_window: u64,
    /// The sum of every counter above: it changes whenever any of them does, so a caller that
    /// moves counts elsewhere compares this one field to learn whether there is anything new.
    pub events: u64,
}

/// Where a packet landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Slot of the flow, valid until the next call that may remove flows.
    pub slot: u32,
    /// The packet went from the initiator to the responder.
    pub from_initiator: bool,
    /// This packet created the flow.
    pub new: bool,
    /// The sender is the key's smaller endpoint (address bits, then port): the ordering
    /// [`crate::stream::Hint::src_is_a`] asks for.
    pub src_is_a: bool,
    /// Ordinal of this payload packet in its direction (1 = first), 0 without payload.
    pub payload_ordinal: u64,
}

/// The bounded connection table.
pub struct ConnTable {
    cfg: ConnConfig,
    table: LruSlab<ConnKey, Conn>,
    stats: ConnStats,
    /// Packet time before which the least recently touched flow cannot be idle: its last
    /// packet time plus the idle timeout, as [`ConnTable::expire`] last found it (0 = unknown).
    /// Reset whenever that flow changes (it is touched, removed or restarted, or a flow is
    /// inserted), so most packets skip the idle check with one comparison.
    quiet_until: u64,
}

impl ConnTable {
    /// An empty table with storage for `cfg.max_flows` flows reserved.
    pub fn new(cfg: ConnConfig) -> Self {
        Self {
            cfg,
            table: LruSlab::with_capacity(cfg.hash_seed, cfg.max_flows),
            stats: ConnStats::default(),
            quiet_until: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ConnConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> &ConnStats {
        &self.stats
    }

    /// Flows currently tracked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The flow in `slot` (from [`Seen`]).
    pub fn conn(&self, slot: u32) -> Option<&Conn> {
        self.table.value(slot)
    }

    /// The flow in `slot`, mutably (to set its application label and caller bits; its packet
    /// times and counters are the table's).
    pub fn conn_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        self.table.value_mut(slot)
    }

    /// Accounts one packet seen at `now_ns`; flows that end on the way (idle, evicted, reused,
    /// active timeout) go to `sink`. `None` only when the table has capacity 0.
    pub fn update(
        &mut self,
        seg: &Segment,
        now_ns: u64,
        sink: &mut dyn FnMut(&ConnRecord),
    ) -> Option<Seen> {
        self.expire(now_ns, sink);
        let (key, src_is_a) = ConnKey::of(seg);
        let is_tcp = seg.proto == 6;
        let flags = seg.tcp_flags;
        let mut new = false;
        let slot = match self.table.find(&key) {
            Some(slot) => {
                let reuse = is_tcp
                    && flags & (SYN | ACK) == SYN
                    && self
                        .table
                        .value(slot)
                        .is_some_and(|c| matches!(c.state, TcpState::Closed | TcpState::Reset));
                if reuse {
                    self.stats.reused += 1;
                    self.stats.events += 1;
                    self.emit(slot, EndReason::Reused, sink);
                    self.start(slot, seg, src_is_a, now_ns);
                    new = true;
                } else if self.table.value(slot).is_some_and(|c| {
                    now_ns.saturating_sub(c.start_ns) >= self.cfg.active_timeout_ns
                }) {
                    self.stats.active_expired += 1;
                    self.stats.events += 1;
                    self.emit(slot, EndReason::Active, sink);
                    self.restart(slot, now_ns);
                }
                let slack = self.cfg.idle_timeout_ns / 64;
                if let Some(c) = self.table.value_mut(slot)
                    && now_ns.saturating_sub(c.touched_ns) > slack
                {
                    c.touched_ns = now_ns;
                    if self.table.tail() == Some(slot) {
                        self.quiet_until = 0;
                    }
                    self.table.touch(slot);
                }
                slot
            }
            None => {
                if self.cfg.max_flows == 0 {
                    self.stats.refused += 1;
                    self.stats.events += 1;
                    return None;
                }
                if self.table.len() >= self.cfg.max_flows
                    && let Some(tail) = self.table.tail()
                {
                    self.stats.evicted += 1;
                    self.stats.events += 1;
                    self.emit(tail, EndReason::Evicted, sink);
                    self.table.remove(tail);
                }
                self.quiet_until = 0;
                let slot = self.table.insert(key);
                self.start(slot, seg, src_is_a, now_ns);
                new = true;
                slot
            }
        };
        let stats = &mut self.stats;
        let c = self.table.value_mut(slot)?;
        let from_initiator = src_is_a == c.init_is_a;
        let d = usize::from(!from_initiator);
        c.last_ns = c.last_ns.max(now_ns);
        c.packets[d] += 1;
        c.bytes[d] += u64::from(seg.bytes);
        let payload_ordinal = if seg.payload_len > 0 {
            c.payload_packets[d] += 1;
            c.payload_packets[d]
        } else {
            0
        };
        if is_tcp {
            tcp_update(c, stats, seg, from_initiator, now_ns);
        }
        Some(Seen {
            slot,
            from_initiator,
            new,
            src_is_a,
            payload_ordinal,
        })
    }

    /// Ends flows idle for the idle timeout at `now_ns`.
    pub fn expire(&mut self, now_ns: u64, sink: &mut dyn FnMut(&ConnRecord)) {
        if now_ns < self.quiet_until {
            return;
        }
        self.quiet_until = 0;
        while let Some(tail) = self.table.tail() {
            let Some(last_ns) = self.table.value(tail).map(|c| c.last_ns) else {
                break;
            };
            if now_ns.saturating_sub(last_ns) < self.cfg.idle_timeout_ns {
                // Not idle until then (a zero timeout leaves nothing to skip).
                if self.cfg.idle_timeout_ns > 0 {
                    self.quiet_until = last_ns.saturating_add(self.cfg.idle_timeout_ns);
                }
                break;
            }
            self.stats.idle_expired += 1;
            self.stats.events += 1;
            self.emit(tail, EndReason::Idle, sink);
            self.table.remove(tail);
        }
    }

    /// Ends every flow (end of input), oldest activity first.
    pub fn drain(&mut self, sink: &mut dyn FnMut(&ConnRecord)) {
        while let Some(tail) = self.table.tail() {
            self.emit(tail, EndReason::Remaining, sink);
            self.table.remove(tail);
        }
    }

    /// The record of the flow in `slot` as it stands.
    pub fn record(&mut self, slot: u32, reason: EndReason) -> Option<ConnRecord> {
        let (key, c) = self.table.key_value_mut(slot)?;
        let a = addr_from_bits(key.a, key.v6());
        let b = addr_from_bits(key.b, key.v6());
        let ((i, ip), (r, rp)) = if c.init_is_a {
            ((a, key.a_port()), (b, key.b_port()))
        } else {
            ((b, key.b_port()), (a, key.a_port()))
        };
        Some(ConnRecord {
            initiator: i,
            initiator_port: ip,
            responder: r,
            responder_port: rp,
            proto: key.proto(),
            vlan: key.vlan(),
            start_ns: c.start_ns,
            end_ns: c.last_ns,
            packets: c.packets,
            bytes: c.bytes,
            state: c.state,
            rtt_ns: c.rtt_ns,
            retransmissions: c.retransmissions,
            out_of_order: c.out_of_order,
            zero_window: c.zero_window,
            app: c.app,
            app_detail: c.app_detail,
            reason,
        })
    }

    fn emit(&mut self, slot: u32, reason: EndReason, sink: &mut dyn FnMut(&ConnRecord)) {
        if let Some(r) = self.record(slot, reason) {
            sink(&r);
        }
    }

    /// Resets `slot` for a new flow whose first packet is `seg`.
    fn start(&mut self, slot: u32, seg: &Segment, src_is_a: bool, now_ns: u64) {
        self.quiet_until = 0;
        self.stats.flows += 1;
        self.stats.events += 1;
        let Some(c) = self.table.value_mut(slot) else {
            return;
        };
        // A first packet with SYN+ACK comes from the responder.
        let from_responder = seg.proto == 6 && seg.tcp_flags & (SYN | ACK) == SYN | ACK;
        *c = Conn {
            start_ns: now_ns,
            last_ns: now_ns,
            touched_ns: now_ns,
            init_is_a: src_is_a != from_responder,
            ..Conn::default()
        };
    }

    /// Starts a new record for a continuing flow (active timeout): counters restart, TCP
    /// state, sequence tracking and the application label stay.
    fn restart(&mut self, slot: u32, now_ns: u64) {
        self.quiet_until = 0;
        self.stats.flows += 1;
        self.stats.events += 1;
        if let Some(c) = self.table.value_mut(slot) {
            c.start_ns = now_ns;
            c.last_ns = now_ns;
            c.packets = [0; 2];
            c.bytes = [0; 2];
            c.retransmissions = 0;
            c.out_of_order = 0;
            c.zero_window = 0;
        }
    }
}

/// Fuzz body: interprets `data` as packets (12-byte headers) on a small table and checks its
/// invariants: no panic, the cap holds, and every accepted packet is in exactly one record once
/// the table is drained.
pub fn fuzz_conn(data: &[u8]) {
    let cfg = ConnConfig {
        max_flows: 4,
        idle_timeout_ns: 500,
        active_timeout_ns: 2_000,
        hash_seed: 3,
    };
    let mut t = ConnTable::new(cfg);
    let (mut now, mut accepted, mut recorded) = (0u64, 0u64, 0u64);
    for chunk in data.chunks_exact(12).take(10_000) {
        let [sel, flags, s0, s1, s2, s3, l0, l1, w0, w1, dt, ports] = *chunk else {
            continue;
        };
        now += u64::from(dt);
        let host = |n: u8| -> IpAddr {
            if sel & 0x80 != 0 {
                IpAddr::V6(core::net::Ipv6Addr::new(
                    0xfe80,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    u16::from(n & 3),
                ))
            } else {
                IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, n & 3))
            }
        };
        let seg = Segment {
            src: host(sel),
            dst: host(sel >> 2),
            sport: u16::from(ports & 7),
            dport: u16::from(ports >> 5),
            proto: if sel & 0x40 != 0 { 17 } else { 6 },
            vlan: u16::from(sel >> 4 & 1),
            bytes: 60,
            payload_len: u32::from(u16::from_be_bytes([l0, l1])),
            tcp_flags: flags,
            tcp_seq: u32::from_be_bytes([s0, s1, s2, s3]),
            tcp_ack: 0,
            tcp_window: u16::from_be_bytes([w0, w1]),
        };
        if t.update(&seg, now, &mut |r| recorded += r.packets[0] + r.packets[1])
            .is_some()
        {
            accepted += 1;
        }
        assert!(t.len() <= cfg.max_flows);
    }
    t.drain(&mut |r| recorded += r.packets[0] + r.packets[1]);
    assert_eq!(accepted, recorded);
    assert!(t.is_empty());
    // `events` is the sum of every counter.
    let s = t.stats();
    let sum = s.flows
        + s.evicted
        + s.idle_expired
        + s.active_expired
        + s.reused
        + s.refused
        + s.handshakes
        + s.resets
        + s.retransmissions
        + s.out_of_order
        + s.zero_window;
    assert_eq!(s.events, sum);
}

/// The TCP part of accounting a segment.
fn tcp_update(c: &mut Conn, stats: &mut ConnStats, seg: &Segment, from_init: bool, now_ns: u64) {
    let flags = seg.tcp_flags;
    let syn = flags & SYN != 0;
    let ack = flags & ACK != 0;
    let d = usize::from(!from_init);

    if seg.tcp_window == 0 && flags & (SYN | FIN | RST) == 0 {
        c.zero_window = c.zero_window.saturating_add(1);
        stats.zero_window += 1;
        stats.events += 1;
    }
    if flags & RST == 0 {
        let len = seg
            .payload_len
            .wrapping_add(u32::from(syn))
            .wrapping_add(u32::from(flags & FIN != 0));
        if let Some(track) = c.seq.get_mut(d) {
            match track.observe(seg.tcp_seq, len, syn) {
                SeqVerdict::InOrder => {}
                SeqVerdict::Retransmission => {
                    c.retransmissions = c.retransmissions.saturating_add(1);
                    stats.retransmissions += 1;
                    stats.events += 1;
                }
                SeqVerdict::OutOfOrder => {
                    c.out_of_order = c.out_of_order.saturating_add(1);
                    stats.out_of_order += 1;
                    stats.events += 1;
                }
            }
        }
    }

    let next = match (c.state, from_init) {
        _ if flags & RST != 0 => {
            if c.state != TcpState::Reset {
                stats.resets += 1;
                stats.events += 1;
            }
            TcpState::Reset
        }
        (TcpState::None, true) if syn && !ack => {
            c.syn_ns = Some(now_ns);
            TcpState::SynSent
        }
        (TcpState::None, false) if syn && ack => TcpState::SynReceived,
        (TcpState::None, _) => TcpState::Established,
        // A SYN from the responder: SYN+ACK, or a simultaneous open.
        (TcpState::SynSent, false) if syn => TcpState::SynReceived,
        (TcpState::SynSent, _) if !syn => TcpState::Established,
        (TcpState::SynReceived, true) if ack && !syn => {
            if let Some(syn_ns) = c.syn_ns {
                c.rtt_ns = Some(now_ns.saturating_sub(syn_ns));
                stats.handshakes += 1;
                stats.events += 1;
            }
            TcpState::Established
        }
        (TcpState::SynReceived, false) if !syn => TcpState::Established,
        (s, _) => s,
    };
    c.state = next;
    if flags & FIN != 0 {
        if let Some(t) = c.seq.get_mut(d) {
            t.fin = true;
        }
        let both = c.seq.iter().all(|t| t.fin);
        if !matches!(c.state, TcpState::Reset) {
            c.state = if both {
                TcpState::Closed
            } else {
                TcpState::FinWait
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const S: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    /// Fields of a key, as `ConnKey::new` takes them: two bits pick each address from a small
    /// set, so equal and nearly equal keys are both common.
    type KeyFields = (u8, u8, u16, u16, u16, u8, bool);

    fn key_of(f: KeyFields) -> ConnKey {
        let addr = |n: u8| [0u128, 1, 1 << 64, 1 << 127][usize::from(n % 4)];
        ConnKey::new(
            addr(f.0),
            addr(f.1),
            f.2 % 3,
            f.3 % 3,
            f.4 % 2,
            f.5 % 2,
            f.6,
        )
    }

    proptest::proptest! {
        /// The packed key keeps every field, and its comparison is field-by-field equality.
        #[test]
        fn key_equality_is_field_equality(
            x in proptest::prelude::any::<KeyFields>(),
            y in proptest::prelude::any::<KeyFields>(),
            ports in proptest::prelude::any::<(u16, u16, u16, u8, bool)>(),
        ) {
            let (p, q) = (key_of(x), key_of(y));
            let fields = |k: &ConnKey| (k.a, k.b, k.a_port(), k.b_port(), k.vlan(), k.proto(), k.v6());
            proptest::prop_assert_eq!(p == q, fields(&p) == fields(&q));
            proptest::prop_assert!(p == p);
            let (ap, bp, vlan, proto, v6) = ports;
            let k = ConnKey::new(7, 9, ap, bp, vlan, proto, v6);
            proptest::prop_assert_eq!(fields(&k), (7, 9, ap, bp, vlan, proto, v6));
        }
    }

    fn cs(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
        let mut s = Segment::tcp(C, 40000, S, 443, flags, seq, ack, 1000);
        s.payload_len = len;
        s.bytes = 54 + len;
        s
    }
    fn sc(flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
        let mut s = Segment::tcp(S, 443, C, 40000, flags, seq, ack, 1000);
        s.payload_len = len;
        s.bytes = 54 + len;
        s
    }

    struct Run {
        t: ConnTable,
        out: Vec<ConnRecord>,
    }
    impl Run {
        fn new(cfg: ConnConfig) -> Self {
            Self {
                t: ConnTable::new(cfg),
                out: Vec::new(),
            }
        }
        fn feed(&mut self, seg: Segment, ts: u64) -> Seen {
            let out = &mut self.out;
            self.t
                .update(&seg, ts, &mut |r| out.push(*r))
                .expect("tracked")
        }
        fn finish(&mut self) {
            let out = &mut self.out;
            self.t.drain(&mut |r| out.push(*r));
        }
    }

    fn handshake(r: &mut Run) -> Seen {
        r.feed(cs(SYN, 100, 0, 0), 1_000);
        r.feed(sc(SYN | ACK, 900, 101, 0), 1_400);
        r.feed(cs(ACK, 101, 901, 0), 2_000)
    }

    #[test]
    fn handshake_gives_rtt_and_orientation() {
        let mut r = Run::new(ConnConfig::default());
        let s = handshake(&mut r);
        assert!(s.from_initiator);
        let c = *r.t.conn(s.slot).expect("conn");
        assert_eq!(c.state, TcpState::Established);
        assert_eq!(c.rtt_ns, Some(1_000));
        assert_eq!(r.t.stats().handshakes, 1);
        r.finish();
        let rec = r.out[0];
        assert_eq!((rec.initiator, rec.initiator_port), (C, 40000));
        assert_eq!((rec.responder, rec.responder_port), (S, 443));
        assert_eq!(rec.packets, [2, 1]);
        assert_eq!(rec.bytes, [108, 54]);
        assert_eq!((rec.start_ns, rec.end_ns), (1_000, 2_000));
        assert_eq!(rec.reason, EndReason::Remaining);
    }

    #[test]
    fn first_packet_syn_ack_makes_its_receiver_the_initiator() {
        let mut r = Run::new(ConnConfig::default());
        let s = r.feed(sc(SYN | ACK, 900, 101, 0), 10);
        assert!(!s.from_initiator);
        r.finish();
        assert_eq!(r.out[0].initiator, C);
        assert_eq!(r.out[0].state, TcpState::SynReceived);
        assert_eq!(r.out[0].rtt_ns, None);
    }

    #[test]
    fn simultaneous_open() {
        let mut r = Run::new(ConnConfig::default());
        r.feed(cs(SYN, 100, 0, 0), 0);
        r.feed(sc(SYN, 900, 0, 0), 5);
        let s = r.feed(cs(SYN | ACK, 100, 901, 0), 10);
        assert_eq!(
            r.t.conn(s.slot).map(|c| c.state),
            Some(TcpState::SynReceived)
        );
        // The retransmitted SYN (same ISN) is a retransmission, not a new stream.
        assert_eq!(r.t.stats().retransmissions, 1);
        let s = r.feed(sc(SYN | ACK, 900, 101, 0), 12);
        assert_eq!(
            r.t.conn(s.slot).map(|c| c.state),
            Some(TcpState::SynReceived)
        );
        let s = r.feed(cs(ACK, 101, 901, 0), 20);
        let c = r.t.conn(s.slot).expect("conn");
        assert_eq!(c.state, TcpState::Established);
        assert_eq!(c.rtt_ns, Some(20));
    }

    #[test]
    fn fin_from_both_sides_closes_and_reuse_starts_a_new_flow() {
        let mut r = Run::new(ConnConfig::default());
        handshake(&mut r);
        r.feed(cs(ACK | FIN, 101, 901, 0), 3_000);
        let s = r.feed(sc(ACK | FIN, 901, 102, 0), 3_100);
        assert_eq!(r.t.conn(s.slot).map(|c| c.state), Some(TcpState::Closed));
        let s = r.feed(cs(ACK, 102, 902, 0), 3_200);
        assert_eq!(r.t.conn(s.slot).map(|c| c.state), Some(TcpState::Closed));
        assert!(r.out.is_empty());
        // A new SYN on the same ports: the old flow ends, a new one starts.
        let s = r.feed(cs(SYN, 5_000, 0, 0), 9_000);
        assert!(s.new);
        assert_eq!(r.out.len(), 1);
        assert_eq!(r.out[0].reason, EndReason::Reused);
        assert_eq!(r.out[0].state, TcpState::Closed);
        assert_eq!(r.out[0].packets, [4, 2]);
        assert_eq!(r.t.stats().flows, 2);
        assert_eq!(r.t.conn(s.slot).map(|c| c.state), Some(TcpState::SynSent));
    }

    #[test]
    fn one_fin_is_fin_wait_and_rst_resets() {
        let mut r = Run::new(ConnConfig::default());
        handshake(&mut r);
        let s = r.feed(cs(ACK | FIN, 101, 901, 0), 3_000);
        assert_eq!(r.t.conn(s.slot).map(|c| c.state), Some(TcpState::FinWait));
        let s = r.feed(sc(RST, 901, 0, 0), 3_100);
        assert_eq!(r.t.conn(s.slot).map(|c| c.state), Some(TcpState::Reset));
        let s = r.feed(sc(RST, 901, 0, 0), 3_200);
        assert_eq!(r.t.conn(s.slot).map(|c| c.state), Some(TcpState::Reset));
        assert_eq!(r.t.stats().resets, 1);
    }

    #[test]
    fn retransmission_versus_out_of_order() {
        let mut r = Run::new(ConnConfig::default());
        handshake(&mut r);
        // 101..201 in order, then 301..401 arrives before 201..301 (a hole).
        r.feed(cs(ACK, 101, 901, 100), 3_000);
        r.feed(cs(ACK, 301, 901, 100), 3_001);
        assert_eq!(r.t.stats().out_of_order, 0);
        // 201..301 fills the hole: out of order, not a retransmission.
        r.feed(cs(ACK, 201, 901, 100), 3_002);
        assert_eq!(r.t.stats().out_of_order, 1);
        assert_eq!(r.t.stats().retransmissions, 0);
        // Sending 201..301 again is a retransmission (the hole is filled).
        r.feed(cs(ACK, 201, 901, 100), 3_003);
        // And an overlap bringing new bytes (351..451) too.
        let s = r.feed(cs(ACK, 351, 901, 100), 3_004);
        assert_eq!(r.t.stats().retransmissions, 2);
        assert_eq!(
            r.t.conn(s.slot)
                .map(|c| (c.retransmissions, c.out_of_order)),
            Some((2, 1))
        );
        // Pure ACKs never count.
        r.feed(sc(ACK, 901, 451, 0), 3_005);
        r.feed(sc(ACK, 901, 451, 0), 3_006);
        assert_eq!(r.t.stats().retransmissions, 2);
    }

    #[test]
    fn sequence_wraps() {
        let mut r = Run::new(ConnConfig::default());
        r.feed(cs(ACK, u32::MAX - 49, 1, 100), 0);
        r.feed(cs(ACK, 50, 1, 100), 1);
        r.feed(cs(ACK, 50, 1, 100), 2);
        assert_eq!(r.t.stats().retransmissions, 1);
        assert_eq!(r.t.stats().out_of_order, 0);
    }

    #[test]
    fn zero_window_counts_only_plain_segments() {
        let mut r = Run::new(ConnConfig::default());
        handshake(&mut r);
        let mut z = sc(ACK, 901, 101, 0);
        z.tcp_window = 0;
        r.feed(z, 3_000);
        r.feed(z, 3_001);
        let mut zr = sc(RST, 901, 0, 0);
        zr.tcp_window = 0;
        let s = r.feed(zr, 3_002);
        assert_eq!(r.t.stats().zero_window, 2);
        assert_eq!(r.t.conn(s.slot).map(|c| c.zero_window), Some(2));
    }

    #[test]
    fn idle_timeout_ends_quiet_flows_only() {
        let cfg = ConnConfig {
            idle_timeout_ns: 100,
            ..ConnConfig::default()
        };
        let mut r = Run::new(cfg);
        r.feed(Segment::udp(C, 1000, S, 53, 30), 0);
        r.feed(Segment::udp(C, 1001, S, 53, 30), 50);
        r.feed(Segment::udp(S, 53, C, 1000, 60), 60);
        // At 155 the flow on port 1001 (last seen 50) has been idle 105; port 1000 only 95.
        r.feed(Segment::udp(C, 2000, S, 53, 30), 155);
        assert_eq!(r.out.len(), 1);
        assert_eq!(r.out[0].initiator_port, 1001);
        assert_eq!(r.out[0].reason, EndReason::Idle);
        assert_eq!(r.t.len(), 2);
        r.t.expire(1_000, &mut |x| r.out.push(*x));
        assert_eq!(r.out.len(), 3);
        assert_eq!(r.t.stats().idle_expired, 3);
        assert!(r.t.is_empty());
        assert_eq!(r.out[1].packets, [1, 1]);
        assert_eq!(r.out[1].bytes, [72, 102]);
    }

    #[test]
    fn active_timeout_cuts_a_long_flow_into_records() {
        let cfg = ConnConfig {
            active_timeout_ns: 1_000,
            ..ConnConfig::default()
        };
        let mut r = Run::new(cfg);
        for i in 0..5u64 {
            r.feed(Segment::udp(C, 1000, S, 123, 48), i * 400);
        }
        r.finish();
        // Records: [0, 400, 800], [1200, 1600].
        assert_eq!(r.out.len(), 2);
        assert_eq!(r.out[0].reason, EndReason::Active);
        assert_eq!(r.out[0].packets, [3, 0]);
        assert_eq!(r.out[1].packets, [2, 0]);
        assert_eq!((r.out[1].start_ns, r.out[1].end_ns), (1_200, 1_600));
        assert_eq!(r.t.stats().flows, 2);
    }

    #[test]
    fn eviction_at_capacity_is_counted_and_reported() {
        let cfg = ConnConfig {
            max_flows: 3,
            ..ConnConfig::default()
        };
        let mut r = Run::new(cfg);
        const SEC: u64 = 1_000_000_000;
        for p in 0..3u16 {
            r.feed(Segment::udp(C, 1000 + p, S, 53, 10), u64::from(p) * SEC);
        }
        // Touch the oldest so the second becomes least recent (recency moves in steps of
        // 1/64 of the idle timeout: 1.875 s by default).
        r.feed(Segment::udp(S, 53, C, 1000, 10), 10 * SEC);
        r.feed(Segment::udp(C, 5000, S, 53, 10), 11 * SEC);
        assert_eq!(r.t.len(), 3);
        assert_eq!(r.t.stats().evicted, 1);
        assert_eq!(r.out.len(), 1);
        assert_eq!(r.out[0].initiator_port, 1001);
        assert_eq!(r.out[0].reason, EndReason::Evicted);
        let mut zero = ConnTable::new(ConnConfig {
            max_flows: 0,
            ..ConnConfig::default()
        });
        assert!(
            zero.update(&Segment::udp(C, 1, S, 2, 0), 0, &mut |_| {})
                .is_none()
        );
        assert_eq!(zero.stats().refused, 1);
    }

    #[test]
    fn vlan_and_protocol_separate_flows_and_payload_ordinals_count_per_direction() {
        let mut r = Run::new(ConnConfig::default());
        let mut a = Segment::udp(C, 1000, S, 53, 10);
        let s1 = r.feed(a, 0);
        a.vlan = 7;
        let s2 = r.feed(a, 1);
        assert!(s1.new && s2.new);
        assert_ne!(s1.slot, s2.slot);
        let b = r.feed(Segment::udp(S, 53, C, 1000, 10), 2);
        assert_eq!(
            (b.slot, b.from_initiator, b.payload_ordinal),
            (s1.slot, false, 1)
        );
        let b = r.feed(Segment::udp(C, 1000, S, 53, 10), 3);
        assert_eq!(b.payload_ordinal, 2);
        r.finish();
        assert_eq!(r.out.len(), 2);
        assert!(r.out.iter().any(|x| x.vlan == 7 && x.packets == [1, 0]));
    }

    #[test]
    fn fuzz_body_runs_on_arbitrary_bytes() {
        let data: Vec<u8> = (0..1200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fuzz_conn(&data);
        fuzz_conn(&[]);
        fuzz_conn(&[0xff; 37]);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Skipping the idle check while the oldest flow cannot be idle changes nothing:
            /// the same records end at the same packets as with the check on every packet,
            /// whatever the timeouts (zero included) and even when packet time goes backwards.
            #[test]
            fn quiet_skip_matches_checking_every_packet(
                pkts in proptest::collection::vec(
                    (0u8..6, 0u16..4, any::<u8>(), 0u32..3, -40i64..60),
                    0..300,
                ),
                cap in 1usize..5,
                idle in 0u64..150,
                active in 1u64..400,
            ) {
                let cfg = ConnConfig {
                    max_flows: cap,
                    idle_timeout_ns: idle,
                    active_timeout_ns: active,
                    ..ConnConfig::default()
                };
                let (mut fast, mut plain) = (ConnTable::new(cfg), ConnTable::new(cfg));
                let (mut out_fast, mut out_plain) = (Vec::new(), Vec::new());
                let mut ts = 1_000u64;
                for (host, port, flags, len, dt) in pkts {
                    ts = ts.saturating_add_signed(dt);
                    let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, host % 3));
                    let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + host / 3));
                    let mut s = Segment::tcp(src, port, dst, 80, flags, 0, 0, 1);
                    s.payload_len = len;
                    plain.quiet_until = 0;
                    let a = fast.update(&s, ts, &mut |r| out_fast.push(*r));
                    let b = plain.update(&s, ts, &mut |r| out_plain.push(*r));
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(&out_fast, &out_plain);
                }
                prop_assert_eq!(fast.stats(), plain.stats());
            }

            /// Whatever the packets, the table never exceeds its cap, and every packet is in
            /// exactly one record once the table is drained.
            #[test]
            fn bounded_and_conserving(
                pkts in proptest::collection::vec(
                    (0u8..6, 0u16..4, any::<u8>(), any::<u32>(), 0u32..3000, 0u64..50),
                    0..300,
                ),
                cap in 0usize..5,
            ) {
                let cfg = ConnConfig {
                    max_flows: cap,
                    idle_timeout_ns: 200,
                    active_timeout_ns: 500,
                    ..ConnConfig::default()
                };
                let mut t = ConnTable::new(cfg);
                let mut packets = 0u64;
                let mut bytes = 0u64;
                let mut ts = 0u64;
                let mut rec_packets = 0u64;
                let mut rec_bytes = 0u64;
                let mut accepted = 0u64;
                for (host, port, flags, seq, len, dt) in pkts {
                    ts += dt;
                    let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, host % 3));
                    let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + host / 3));
                    let mut s = Segment::tcp(src, port, dst, 80, flags, seq, 0, (seq & 1) as u16);
                    s.payload_len = len;
                    s.bytes = 40 + len;
                    if host == 5 {
                        s.proto = 17;
                    }
                    packets += 1;
                    bytes += u64::from(s.bytes);
                    let r = t.update(&s, ts, &mut |r| {
                        rec_packets += r.packets[0] + r.packets[1];
                        rec_bytes += r.bytes[0] + r.bytes[1];
                    });
                    if r.is_some() {
                        accepted += 1;
                    }
                    prop_assert!(t.len() <= cap);
                }
                t.drain(&mut |r| {
                    rec_packets += r.packets[0] + r.packets[1];
                    rec_bytes += r.bytes[0] + r.bytes[1];
                });
                prop_assert_eq!(rec_packets, accepted);
                if cap > 0 {
                    prop_assert_eq!(accepted, packets);
                    prop_assert_eq!(rec_bytes, bytes);
                } else {
                    prop_assert_eq!(t.stats().refused, packets);
                }
                prop_assert!(t.is_empty());
            }
        }
    }
}
