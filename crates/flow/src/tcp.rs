//! DNS-over-TCP message extraction: a bounded per-connection, per-direction reassembly of the
//! TCP byte stream, cut into messages by the 2-byte length prefix (RFC 1035 4.2.2). It is not
//! a general TCP reassembler: it keeps only what an unfinished message or a short
//! out-of-order window needs, and it never decodes the messages.
//!
//! Behaviour, in the order a segment meets it:
//! * connections are keyed by the canonical (address, port) pair plus VLAN and held in a table
//!   of at most `max_connections` (least recently used evicted, counted) that also forgets
//!   connections idle for `idle_timeout_ns` of packet time (pktvisor's 30 s LRU, issue #226);
//! * SYN starts a direction at ISN+1; a retransmitted SYN is ignored; a SYN with a new ISN on a
//!   known direction means the 4-tuple was reused and starts a fresh connection;
//! * without a SYN (capture started mid-stream) a direction starts at the first segment seen;
//! * bytes already delivered are never delivered again (exact or partial retransmissions are
//!   trimmed, counted); bytes ahead of the expected sequence number are held, up to
//!   `max_out_of_order_segments` disjoint pieces inside `max_buffer_per_direction` bytes, and
//!   flushed in order when the hole fills;
//! * a hole that cannot be held any more is a `gap`: the length-prefixed framing cannot be
//!   recovered after lost bytes, so that direction is marked invalid until a new connection;
//! * a length prefix below `min_message_len` (17, pktvisor's `MIN_DNS_QUERY_SIZE`: a 12-byte
//!   header plus the shortest question) marks the direction invalid, as pktvisor stops parsing
//!   such a stream; messages before it are still delivered;
//! * FIN ends a direction once every byte before it arrived; the connection is freed when both
//!   directions ended; RST frees it at once. Complete messages were delivered as they formed.
//!
//! The in-order path delivers straight from the segment when nothing is buffered, so the
//! common case copies nothing and allocates nothing.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use flow::tcp::{flags, Direction, TcpDnsReassembler};
//!
//! let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53));
//! let mut r = TcpDnsReassembler::default();
//! let mut got = Vec::new();
//! let mut keep = |m: &[u8], d: Direction| got.push((m.len(), d));
//! r.segment(client, 40000, server, 53, 0, 100, flags::SYN, &[], 0, &mut keep);
//! // A 17-byte message whose length prefix is split from its body.
//! r.segment(client, 40000, server, 53, 0, 101, flags::ACK, &[0], 1, &mut keep);
//! r.segment(client, 40000, server, 53, 0, 102, flags::ACK, &[17, 0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1], 2, &mut keep);
//! assert_eq!(got, vec![(17, Direction::Initiator)]);
//! ```
//!
//! Memory: a tracked connection costs about 250 bytes of table state (key, both directions,
//! recency links, index), so the default 100 000 connections take about 25 MB; buffers for
//! unfinished messages and out-of-order data come on top, bounded by `max_total_bytes`.

use core::cmp::Ordering;
use core::net::IpAddr;

use crate::slab::LruSlab;

/// TCP flag bits of the flags byte (RFC 9293).
pub mod flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
}

/// Which way a message travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the side that opened the connection (the DNS client) to the other.
    Initiator,
    /// From the side that accepted the connection (the DNS server) back to the initiator.
    Responder,
}

/// Limits of a [`TcpDnsReassembler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Connections tracked at once (default 100 000); the least recently used is evicted.
    pub max_connections: usize,
    /// Bytes held per direction: the unfinished message plus out-of-order data (default
    /// 65 537 = a 2-byte prefix and the largest possible message).
    pub max_buffer_per_direction: usize,
    /// Bytes held over all connections (default 64 MiB); data that would exceed it is dropped
    /// (counted) and its direction marked invalid.
    pub max_total_bytes: usize,
    /// Disjoint out-of-order pieces held per direction before the hole counts as a gap
    /// (default 16).
    pub max_out_of_order_segments: usize,
    /// Packet-time idleness after which a connection is forgotten (default 30 s).
    pub idle_timeout_ns: u64,
    /// Shortest acceptable message (default 17; a shorter length prefix, 0 included,
    /// invalidates the direction). Values below 1 are treated as 1.
    pub min_message_len: usize,
    /// Seed of the connection table's hasher (pick a random one at start-up in production).
    pub hash_seed: u64,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            max_buffer_per_direction: 65_537,
            max_total_bytes: 64 << 20,
            max_out_of_order_segments: 16,
            idle_timeout_ns: 30_000_000_000,
            min_message_len: 17,
            hash_seed: 0x7c9d_15ea_5e0f_d0e5,
        }
    }
}

/// Counters of a [`TcpDnsReassembler`]; they only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Segments passed to `segment`.
    pub segments: u64,
    /// Connections created (including restarts of a reused 4-tuple).
    pub connections: u64,
    /// Connections freed by FIN from both sides or by RST.
    pub closed: u64,
    /// Connections evicted because the table was full.
    pub evicted_cap: u64,
    /// Connections forgotten after the idle timeout.
    pub timed_out: u64,
    /// Payload bytes dropped because `max_total_bytes` was reached.
    pub bytes_dropped_cap: u64,
    /// Segments that arrived ahead of the expected sequence number and were held.
    pub out_of_order: u64,
    /// Segments whose bytes (all or some) had already been received.
    pub retransmits: u64,
    /// Directions marked invalid (bad length prefix, or buffer cap).
    pub invalid_streams: u64,
    /// Holes skipped: parsing restarted at the next held segment, as if it began a message.
    pub resyncs: u64,
    /// Holes in the stream that never filled within the out-of-order window.
    pub gaps: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Segments that could not belong to a tracked stream (no payload and no SYN for an unknown
    /// connection, or data for a direction already invalid or finished).
    pub ignored: u64,
}

/// Spare buffers kept for reuse by new connections, and the largest one kept; bounds the
/// memory idle spares can pin to 256 KiB.
const SPARE_MAX: usize = 64;
const SPARE_MAX_CAP: usize = 4096;
/// Smallest buffer allocated, so a few short partial messages do not regrow it.
const MIN_BUF_CAP: usize = 512;
/// Idle connections each `segment` call may expire on the way (bounded work per packet, as
/// pktvisor force-closes up to 100 idle connections per TCP packet).
const EXPIRE_PER_SEGMENT: usize = 8;

/// Canonical connection key: the smaller (address, port) endpoint first. Addresses are kept
/// as 128-bit numbers (IPv4 mapped into IPv6 space, with `v6` telling the families apart) so
/// ordering, hashing and comparing cost a few wide operations per segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ConnKey {
    a: u128,
    b: u128,
    a_port: u16,
    b_port: u16,
    vlan: u16,
    v6: bool,
}

impl core::hash::Hash for ConnKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.a);
        state.write_u128(self.b);
        state.write_u64(
            u64::from(self.a_port) << 48
                | u64::from(self.b_port) << 32
                | u64::from(self.vlan) << 16
                | u64::from(self.v6),
        );
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum HalfState {
    /// Nothing seen from this side yet.
    #[default]
    Unseen,
    /// Receiving.
    Open,
    /// Framing lost or limits hit; its data is ignored until a new connection.
    Invalid,
    /// Every byte up to the FIN arrived.
    Closed,
}

/// One direction of a connection.
#[derive(Default)]
struct Half {
    state: HalfState,
    /// Sequence number of `buf[0]`.
    base: u32,
    /// `buf[..contig]` are in-order bytes not yet delivered (an unfinished message).
    contig: usize,
    /// In-order bytes then, further on, out-of-order pieces at their offsets from `base`.
    buf: Vec<u8>,
    /// Out-of-order pieces as offsets from `base`: sorted, disjoint, all starting after
    /// `contig`.
    ooo: Vec<(usize, usize)>,
    /// Sequence number just past the last byte, once a FIN was seen.
    fin: Option<u32>,
    /// ISN, once a SYN was seen.
    isn: Option<u32>,
    /// Bytes of `buf` capacity charged to the total budget.
    charged: usize,
}

impl Half {
    fn next_seq(&self) -> u32 {
        self.base.wrapping_add(self.contig as u32)
    }

    fn open_at(&mut self, seq: u32) {
        self.state = HalfState::Open;
        self.base = seq;
        self.contig = 0;
        self.buf.clear();
        self.ooo.clear();
    }

    /// Finished = FIN seen and nothing more can be delivered.
    fn finished(&self) -> bool {
        self.fin.is_some() && matches!(self.state, HalfState::Closed | HalfState::Invalid)
    }
}

#[derive(Default)]
struct Conn {
    /// Whether endpoint `a` of the key opened the connection.
    initiator_is_a: bool,
    /// `halves[0]` carries a→b, `halves[1]` b→a.
    halves: [Half; 2],
    last_ns: u64,
}

/// Memory shared by all connections: the byte budget and spare buffers.
struct Pool {
    buffered: usize,
    spare: Vec<Vec<u8>>,
}

impl Pool {
    /// Returns a direction's buffer to the pool (or the allocator) and uncharges it.
    fn release(&mut self, h: &mut Half) {
        self.buffered = self.buffered.saturating_sub(h.charged);
        h.charged = 0;
        h.contig = 0;
        h.ooo.clear();
        let mut buf = core::mem::take(&mut h.buf);
        if buf.capacity() > 0 && buf.capacity() <= SPARE_MAX_CAP && self.spare.len() < SPARE_MAX {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Makes `h.buf` able to hold `needed` bytes within both limits; false when it cannot.
    fn reserve(&mut self, h: &mut Half, needed: usize, cfg: &TcpConfig) -> bool {
        if needed <= h.buf.capacity() {
            return true;
        }
        if needed > cfg.max_buffer_per_direction {
            return false;
        }
        if h.buf.capacity() == 0
            && let Some(spare_cap) = self.spare.last().map(Vec::capacity)
            && self.buffered + spare_cap <= cfg.max_total_bytes
            && let Some(spare) = self.spare.pop()
        {
            h.buf = spare;
            h.charged = h.buf.capacity();
            self.buffered += h.charged;
            if needed <= h.buf.capacity() {
                return true;
            }
        }
        let cap = h.buf.capacity();
        let new_cap = needed
            .max(cap.saturating_mul(2))
            .max(MIN_BUF_CAP)
            .min(cfg.max_buffer_per_direction.max(needed));
        if self.buffered - h.charged + new_cap > cfg.max_total_bytes {
            return false;
        }
        h.buf.reserve_exact(new_cap - h.buf.len());
        self.buffered = self.buffered - h.charged + h.buf.capacity();
        h.charged = h.buf.capacity();
        true
    }
}

/// Where a flushed message travelled: sender, receiver and the time of the connection's last
/// segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamEnd {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub vlan: u16,
    pub last_ns: u64,
    pub dir: Direction,
}

/// Why a direction stops being parsed.
enum Invalid {
    /// A length prefix below the minimum.
    Framing,
    /// The byte budget is exhausted (`bytes` dropped).
    Cap(usize),
}

/// Bounded DNS-over-TCP reassembler.
pub struct TcpDnsReassembler {
    table: LruSlab<ConnKey, Conn>,
    cfg: TcpConfig,
    stats: TcpStats,
    pool: Pool,
}

impl Default for TcpDnsReassembler {
    fn default() -> Self {
        Self::new(TcpConfig::default())
    }
}

impl TcpDnsReassembler {
    /// An empty reassembler.
    pub fn new(cfg: TcpConfig) -> Self {
        Self {
            table: LruSlab::new(cfg.hash_seed),
            cfg,
            stats: TcpStats::default(),
            pool: Pool {
                buffered: 0,
                spare: Vec::new(),
            },
        }
    }

    /// Feeds one TCP segment; calls `on_message(message_bytes, side)` once per complete DNS
    /// message (without the length prefix), in stream order. `side` says which direction
    /// (initiator→responder or back). `flags` is the TCP flags byte (see [`flags`]).
    #[allow(clippy::too_many_arguments)] // mirrors the packet fields; a struct would be built per packet
    pub fn segment(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        vlan: u16,
        seq: u32,
        flags: u8,
        payload: &[u8],
        now_ns: u64,
        on_message: &mut dyn FnMut(&[u8], Direction),
    ) {
        self.stats.segments += 1;
        self.expire_some(now_ns, EXPIRE_PER_SEGMENT);

        let (sa, da) = (crate::addr_bits(src), crate::addr_bits(dst));
        let v6 = src.is_ipv6();
        let src_is_a = (sa, sport) <= (da, dport);
        let key = if src_is_a {
            ConnKey {
                a: sa,
                b: da,
                a_port: sport,
                b_port: dport,
                vlan,
                v6,
            }
        } else {
            ConnKey {
                a: da,
                b: sa,
                a_port: dport,
                b_port: sport,
                vlan,
                v6,
            }
        };
        let syn = flags & flags::SYN != 0;
        let rst = flags & flags::RST != 0;
        let ack = flags & flags::ACK != 0;
        let side = usize::from(!src_is_a);

        let idx = match self.table.find(&key) {
            Some(idx) => {
                if rst {
                    // Everything complete was delivered when it formed; what was held behind
                    // a hole is decoded now, since nothing more will come.
                    let min_len = self.cfg.min_message_len.max(1);
                    if let Some(c) = self.table.value_mut(idx) {
                        let initiator_is_a = c.initiator_is_a;
                        for (i, h) in c.halves.iter_mut().enumerate() {
                            if h.state == HalfState::Open && !h.ooo.is_empty() {
                                let dir = if (i == 0) == initiator_is_a {
                                    Direction::Initiator
                                } else {
                                    Direction::Responder
                                };
                                let _ = flush_held(h, min_len, dir, &mut self.stats, on_message);
                            }
                        }
                    }
                    self.free(idx);
                    self.stats.closed += 1;
                    return;
                }
                self.table.touch(idx);
                idx
            }
            None => {
                if rst || (!syn && payload.is_empty()) || self.cfg.max_connections == 0 {
                    self.stats.ignored += 1;
                    return;
                }
                while self.table.len() >= self.cfg.max_connections {
                    let Some(lru) = self.table.tail() else { break };
                    self.free(lru);
                    self.stats.evicted_cap += 1;
                }
                let idx = self.table.insert(key);
                self.stats.connections += 1;
                if let Some(c) = self.table.value_mut(idx) {
                    c.initiator_is_a = initiator_is_a(src_is_a, syn, ack, sport, dport);
                    for h in &mut c.halves {
                        h.state = HalfState::Unseen;
                        h.fin = None;
                        h.isn = None;
                        h.contig = 0;
                        h.ooo.clear();
                    }
                }
                idx
            }
        };

        let cfg = self.cfg;
        let Some(conn) = self.table.value_mut(idx) else {
            return;
        };
        conn.last_ns = now_ns;

        let mut data_seq = seq;
        if syn {
            data_seq = seq.wrapping_add(1);
            let h = &conn.halves[side];
            if h.isn == Some(seq) {
                // Retransmitted SYN (or SYN-ACK): nothing new unless it carries data.
                self.stats.retransmits += 1;
            } else if h.state == HalfState::Unseen {
                let h = &mut conn.halves[side];
                h.isn = Some(seq);
                h.open_at(data_seq);
            } else {
                // A SYN on a direction already in use: the 4-tuple was reused (or the old
                // stream was picked up mid-way); start a fresh connection.
                for h in &mut conn.halves {
                    self.pool.release(h);
                    h.state = HalfState::Unseen;
                    h.fin = None;
                    h.isn = None;
                }
                conn.initiator_is_a = initiator_is_a(src_is_a, syn, ack, sport, dport);
                self.stats.connections += 1;
                let h = &mut conn.halves[side];
                h.isn = Some(seq);
                h.open_at(data_seq);
            }
        }

        let dir = if (side == 0) == conn.initiator_is_a {
            Direction::Initiator
        } else {
            Direction::Responder
        };
        let fin_flag = flags & flags::FIN != 0;
        let h = &mut conn.halves[side];
        if h.state == HalfState::Unseen && (!payload.is_empty() || fin_flag) {
            // Mid-stream pickup: this segment starts the stream (a bare FIN closes it at once).
            h.open_at(data_seq);
        }
        if fin_flag && h.fin.is_none() && h.state != HalfState::Unseen {
            h.fin = Some(data_seq.wrapping_add(payload.len() as u32));
        }

        if !payload.is_empty() {
            if h.state == HalfState::Open {
                let result = feed(
                    h,
                    &mut self.pool,
                    &mut self.stats,
                    &cfg,
                    data_seq,
                    payload,
                    dir,
                    on_message,
                );
                if let Err(why) = result {
                    match why {
                        Invalid::Framing => {}
                        Invalid::Cap(n) => self.stats.bytes_dropped_cap += n as u64,
                    }
                    self.stats.invalid_streams += 1;
                    h.state = HalfState::Invalid;
                    self.pool.release(h);
                }
            } else {
                self.stats.ignored += 1;
            }
        }
        if h.state == HalfState::Open && h.fin == Some(h.next_seq()) {
            h.state = HalfState::Closed;
            self.pool.release(h);
        }
        if conn.halves.iter().all(Half::finished) {
            self.free(idx);
            self.stats.closed += 1;
        }
    }

    /// Decodes what every connection still holds behind lost segments, as when the input ends:
    /// each held run is parsed as if a message began there. `on_message` gets each message and
    /// the direction it travelled.
    pub fn flush(&mut self, on_message: &mut dyn FnMut(&[u8], &StreamEnd)) {
        let min_len = self.cfg.min_message_len.max(1);
        for idx in 0..self.table.slot_count() {
            let Some((key, conn)) = self.table.key_value_mut(idx) else {
                continue;
            };
            let key = *key;
            let initiator_is_a = conn.initiator_is_a;
            let last_ns = conn.last_ns;
            for (i, h) in conn.halves.iter_mut().enumerate() {
                if h.state != HalfState::Open || h.ooo.is_empty() {
                    continue;
                }
                let dir = if (i == 0) == initiator_is_a {
                    Direction::Initiator
                } else {
                    Direction::Responder
                };
                let (src, sport, dst, dport) = if i == 0 {
                    (key.a, key.a_port, key.b, key.b_port)
                } else {
                    (key.b, key.b_port, key.a, key.a_port)
                };
                let end = StreamEnd {
                    src: crate::addr_from_bits(src, key.v6),
                    sport,
                    dst: crate::addr_from_bits(dst, key.v6),
                    dport,
                    vlan: key.vlan,
                    last_ns,
                    dir,
                };
                let mut deliver = |m: &[u8], _d: Direction| on_message(m, &end);
                if flush_held(h, min_len, dir, &mut self.stats, &mut deliver).is_err() {
                    self.stats.invalid_streams += 1;
                    h.state = HalfState::Invalid;
                }
            }
        }
    }

    /// Forgets connections idle for longer than the idle timeout at `now_ns`.
    pub fn expire(&mut self, now_ns: u64) {
        self.expire_some(now_ns, usize::MAX);
    }

    /// Counters so far.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Connections currently tracked.
    pub fn connections(&self) -> usize {
        self.table.len()
    }

    /// Buffer bytes currently charged to `max_total_bytes`.
    pub fn buffered_bytes(&self) -> usize {
        self.pool.buffered
    }

    /// The limits this reassembler was built with.
    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    fn expire_some(&mut self, now_ns: u64, limit: usize) {
        let mut n = 0;
        while n < limit {
            let Some(lru) = self.table.tail() else { break };
            let idle = self
                .table
                .value(lru)
                .is_some_and(|c| now_ns.saturating_sub(c.last_ns) > self.cfg.idle_timeout_ns);
            if !idle {
                break;
            }
            self.free(lru);
            self.stats.timed_out += 1;
            n += 1;
        }
    }

    fn free(&mut self, idx: u32) {
        if let Some(c) = self.table.value_mut(idx) {
            for h in &mut c.halves {
                self.pool.release(h);
                h.state = HalfState::Unseen;
            }
        }
        self.table.remove(idx);
    }
}

/// Which endpoint opened the connection: the sender of a bare SYN, the receiver of a SYN-ACK;
/// without a SYN, the endpoint with the higher port (servers listen on low ports such as 53,
/// clients use ephemeral ones), or the sender when the ports are equal.
fn initiator_is_a(src_is_a: bool, syn: bool, ack: bool, sport: u16, dport: u16) -> bool {
    let sender_initiated = match (syn, ack) {
        (true, false) => true,
        (true, true) => false,
        _ => match sport.cmp(&dport) {
            Ordering::Greater | Ordering::Equal => true,
            Ordering::Less => false,
        },
    };
    sender_initiated == src_is_a
}

/// Delivers the complete messages at the start of `data`; returns the bytes consumed.
fn deliver(
    data: &[u8],
    min_len: usize,
    dir: Direction,
    stats: &mut TcpStats,
    on_message: &mut dyn FnMut(&[u8], Direction),
) -> Result<usize, Invalid> {
    let mut pos = 0usize;
    // Each round consumes at least 2 bytes, so this ends within data.len() / 2 rounds.
    while let Some(&[hi, lo]) = data.get(pos..pos + 2) {
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < min_len {
            return Err(Invalid::Framing);
        }
        let Some(msg) = data.get(pos + 2..pos + 2 + len) else {
            break;
        };
        on_message(msg, dir);
        stats.messages += 1;
        pos += 2 + len;
    }
    Ok(pos)
}

/// Adds a data segment to an open direction and delivers what became complete.
#[allow(clippy::too_many_arguments)]
fn feed(
    h: &mut Half,
    pool: &mut Pool,
    stats: &mut TcpStats,
    cfg: &TcpConfig,
    seq: u32,
    payload: &[u8],
    dir: Direction,
    on_message: &mut dyn FnMut(&[u8], Direction),
) -> Result<(), Invalid> {
    let min_len = cfg.min_message_len.max(1);
    let mut p = payload;
    // Bytes at or past the FIN are not part of the stream.
    if let Some(fin) = h.fin {
        let room = fin.wrapping_sub(seq) as i32;
        if room <= 0 {
            stats.retransmits += 1;
            return Ok(());
        }
        p = p.get(..(room as usize).min(p.len())).unwrap_or(p);
    }
    let rel = seq.wrapping_sub(h.next_seq()) as i32;
    let mut rel = i64::from(rel);
    if rel < 0 {
        let skip = rel.unsigned_abs() as usize;
        stats.retransmits += 1;
        if skip >= p.len() {
            return Ok(());
        }
        p = p.get(skip..).unwrap_or(&[]);
        rel = 0;
    }

    if rel > 0 {
        // Ahead of the expected byte: hold it if the window allows.
        let off = h.contig.saturating_add(rel as usize);
        let end = off.saturating_add(p.len());
        if end > cfg.max_buffer_per_direction {
            // Too far ahead to hold: drop what is buffered and restart at this segment.
            stats.gaps += 1;
            stats.resyncs += 1;
            pool.release(h);
            h.open_at(seq);
            return feed(h, pool, stats, cfg, seq, p, dir, on_message);
        }
        if !pool.reserve(h, end, cfg) {
            return Err(Invalid::Cap(p.len()));
        }
        if h.buf.len() < end {
            h.buf.resize(end, 0);
        }
        if let Some(dst) = h.buf.get_mut(off..end) {
            dst.copy_from_slice(p);
        }
        insert_piece(&mut h.ooo, off, end);
        stats.out_of_order += 1;
        if h.ooo.len() > cfg.max_out_of_order_segments {
            // The hole will not fill within the window: skip it.
            stats.gaps += 1;
            resync(h, min_len, dir, stats, on_message)?;
        }
        return Ok(());
    }

    if h.contig == 0 && h.ooo.is_empty() {
        // Fast path: nothing buffered, deliver straight from the segment.
        let used = deliver(p, min_len, dir, stats, on_message)?;
        let rest = p.get(used..).unwrap_or(&[]);
        h.base = h.base.wrapping_add(used as u32);
        if !rest.is_empty() {
            if !pool.reserve(h, rest.len(), cfg) {
                return Err(Invalid::Cap(rest.len()));
            }
            h.buf.clear();
            h.buf.extend_from_slice(rest);
            h.contig = rest.len();
        }
        return Ok(());
    }

    // Slow path: append after the unfinished message, absorb held pieces, deliver. A segment
    // larger than the room left is taken in chunks, delivering between them.
    while !p.is_empty() {
        let room = cfg.max_buffer_per_direction.saturating_sub(h.contig);
        if room == 0 {
            // An unfinished message fills the whole buffer: it can never complete.
            return Err(Invalid::Cap(p.len()));
        }
        let n = room.min(p.len());
        let (chunk, rest) = p.split_at(n);
        p = rest;
        let end = h.contig + n;
        if !pool.reserve(h, end.max(h.buf.len()), cfg) {
            return Err(Invalid::Cap(n + p.len()));
        }
        if h.buf.len() < end {
            h.buf.resize(end, 0);
        }
        if let Some(dst) = h.buf.get_mut(h.contig..end) {
            dst.copy_from_slice(chunk);
        }
        h.contig = end;
        // Pieces now reached (or overlapped) by the in-order bytes join them.
        while let Some(&(s, e)) = h.ooo.first() {
            if s > h.contig {
                break;
            }
            if e > h.contig {
                // Bytes beyond `end` came from the held piece; the overlap is equal or the
                // newer copy, and neither was delivered yet.
                h.contig = e;
            }
            h.ooo.remove(0);
        }
        let used = deliver(
            h.buf.get(..h.contig).unwrap_or(&[]),
            min_len,
            dir,
            stats,
            on_message,
        )?;
        if used > 0 {
            h.buf.copy_within(used.., 0);
            h.buf.truncate(h.buf.len() - used);
            h.contig -= used;
            h.base = h.base.wrapping_add(used as u32);
            for piece in &mut h.ooo {
                piece.0 -= used;
                piece.1 -= used;
            }
        }
    }
    if h.contig == 0 && h.ooo.is_empty() {
        h.buf.clear();
    }
    Ok(())
}

/// Inserts [start, end) into sorted disjoint `pieces`, merging overlapping or touching ones.
fn insert_piece(pieces: &mut Vec<(usize, usize)>, start: usize, end: usize) {
    let mut s = start;
    let mut e = end;
    let first = pieces.partition_point(|r| r.1 < s);
    let mut last = first;
    while let Some(&(ps, pe)) = pieces.get(last) {
        if ps > e {
            break;
        }
        s = s.min(ps);
        e = e.max(pe);
        last += 1;
    }
    pieces.splice(first..last, core::iter::once((s, e)));
}

/// Gives up on the hole before the first held piece: the unfinished message and the missing
/// bytes are dropped and parsing restarts at the held piece, as if a message began there
/// (what a dissector that decodes each segment on its own recovers). A piece that does not
/// start with a plausible length prefix makes the framing error the caller sees.
fn resync(
    h: &mut Half,
    min_len: usize,
    dir: Direction,
    stats: &mut TcpStats,
    on_message: &mut dyn FnMut(&[u8], Direction),
) -> Result<(), Invalid> {
    let Some(&(start, _)) = h.ooo.first() else {
        return Ok(());
    };
    stats.resyncs += 1;
    let len = h.buf.len();
    h.buf.copy_within(start.min(len).., 0);
    h.buf.truncate(len - start.min(len));
    h.base = h.base.wrapping_add(start as u32);
    h.contig = 0;
    for piece in &mut h.ooo {
        piece.0 -= start;
        piece.1 -= start;
    }
    while let Some(&(s, e)) = h.ooo.first() {
        if s > h.contig {
            break;
        }
        h.contig = h.contig.max(e);
        h.ooo.remove(0);
    }
    let used = deliver(
        h.buf.get(..h.contig).unwrap_or(&[]),
        min_len,
        dir,
        stats,
        on_message,
    )?;
    if used > 0 {
        h.buf.copy_within(used.., 0);
        h.buf.truncate(h.buf.len() - used);
        h.contig -= used;
        h.base = h.base.wrapping_add(used as u32);
        for piece in &mut h.ooo {
            piece.0 -= used;
            piece.1 -= used;
        }
    }
    Ok(())
}

/// Flushes every held piece of a direction that will receive nothing more (FIN or RST seen):
/// each hole is skipped in turn.
fn flush_held(
    h: &mut Half,
    min_len: usize,
    dir: Direction,
    stats: &mut TcpStats,
    on_message: &mut dyn FnMut(&[u8], Direction),
) -> Result<(), Invalid> {
    // Each round removes at least one held piece, so this ends.
    while !h.ooo.is_empty() {
        resync(h, min_len, dir, stats, on_message)?;
    }
    Ok(())
}

/// Fuzz body: interprets `data` as a sequence of segments on a few connections of a small
/// reassembler and checks its invariants (no panic, caps respected, messages well framed).
pub fn fuzz_tcp(data: &[u8]) {
    let cfg = TcpConfig {
        max_connections: 2,
        max_buffer_per_direction: 300,
        max_total_bytes: 1500,
        max_out_of_order_segments: 3,
        idle_timeout_ns: 1_000,
        min_message_len: 3,
        hash_seed: 2,
    };
    let mut r = TcpDnsReassembler::new(cfg);
    let client = IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, 1));
    let server = IpAddr::V6(core::net::Ipv6Addr::LOCALHOST);
    // A moving sequence cursor per (connection, direction) keeps most segments near the stream.
    let mut cursor = [[0u32; 2]; 3];
    let mut now = 0u64;
    let mut rest = data;
    let mut steps = 0;
    while let [sel, fl, d_hi, d_lo, len, tail @ ..] = rest {
        steps += 1;
        if steps > 10_000 {
            break;
        }
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        let conn = usize::from(sel % 3);
        let side = usize::from((sel >> 2) & 1);
        now += u64::from(sel >> 3) * 8;
        let delta = i16::from_be_bytes([*d_hi, *d_lo]);
        let c = &mut cursor[conn][side];
        let seq = c.wrapping_add(delta as i32 as u32);
        if delta >= 0 {
            *c = seq.wrapping_add(payload.len() as u32);
        }
        let cport = 40_000 + conn as u16;
        let (src, sport, dst, dport) = if side == 0 {
            (client, cport, server, 53)
        } else {
            (server, 53, client, cport)
        };
        let min = cfg.min_message_len;
        r.segment(
            src,
            sport,
            dst,
            dport,
            0,
            seq,
            *fl,
            payload,
            now,
            &mut |m, _| {
                assert!(m.len() >= min);
                assert!(m.len() <= cfg.max_buffer_per_direction);
            },
        );
        assert!(r.connections() <= cfg.max_connections);
        assert!(r.buffered_bytes() <= cfg.max_total_bytes);
    }
    r.expire(u64::MAX);
    assert_eq!(r.connections(), 0);
}

#[cfg(test)]
mod tests {
    use super::flags::{ACK, FIN, PSH, RST, SYN};
    use super::*;
    use core::net::Ipv4Addr;

    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const S: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53));
    const SEC: u64 = 1_000_000_000;

    /// A DNS-looking message of `len` bytes whose bytes encode `tag`.
    fn msg(tag: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
    }

    fn framed(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend_from_slice(&(m.len() as u16).to_be_bytes());
            v.extend_from_slice(m);
        }
        v
    }

    /// Test harness: a reassembler plus everything it delivered.
    struct H {
        r: TcpDnsReassembler,
        got: Vec<(Vec<u8>, Direction)>,
        now: u64,
    }

    impl H {
        fn new(cfg: TcpConfig) -> Self {
            Self {
                r: TcpDnsReassembler::new(cfg),
                got: Vec::new(),
                now: 0,
            }
        }

        /// Client → server segment.
        fn c(&mut self, seq: u32, fl: u8, p: &[u8]) {
            self.seg(C, 40000, S, 53, seq, fl, p);
        }

        /// Server → client segment.
        fn s(&mut self, seq: u32, fl: u8, p: &[u8]) {
            self.seg(S, 53, C, 40000, seq, fl, p);
        }

        #[allow(clippy::too_many_arguments)]
        fn seg(&mut self, a: IpAddr, ap: u16, b: IpAddr, bp: u16, seq: u32, fl: u8, p: &[u8]) {
            let got = &mut self.got;
            self.r
                .segment(a, ap, b, bp, 0, seq, fl, p, self.now, &mut |m, d| {
                    got.push((m.to_vec(), d))
                });
        }

        fn msgs(&self) -> Vec<Vec<u8>> {
            self.got.iter().map(|(m, _)| m.clone()).collect()
        }
    }

    fn h() -> H {
        H::new(TcpConfig::default())
    }

    #[test]
    fn several_messages_in_one_segment() {
        let mut t = h();
        let ms = vec![msg(1, 30), msg(2, 17), msg(3, 100)];
        t.c(1000, SYN, &[]);
        t.c(1001, ACK | PSH, &framed(&ms));
        assert_eq!(t.msgs(), ms);
        assert!(t.got.iter().all(|(_, d)| *d == Direction::Initiator));
        assert_eq!(t.r.buffered_bytes(), 0, "fast path buffers nothing");
        assert_eq!(t.r.stats().messages, 3);
    }

    #[test]
    fn one_message_across_segments_and_split_prefix() {
        let mut t = h();
        let m = msg(9, 300);
        let w = framed(std::slice::from_ref(&m));
        t.c(0, SYN, &[]);
        // The length prefix itself is split, then the body comes in three pieces.
        t.c(1, ACK, &w[..1]);
        t.c(2, ACK, &w[1..50]);
        t.c(51, ACK, &w[50..200]);
        assert!(t.got.is_empty());
        t.c(201, ACK, &w[200..]);
        assert_eq!(t.msgs(), vec![m]);
        assert_eq!(t.r.stats().retransmits, 0);
    }

    #[test]
    fn message_tail_and_next_messages_in_one_segment() {
        let mut t = h();
        let ms = vec![msg(1, 40), msg(2, 20), msg(3, 60)];
        let w = framed(&ms);
        t.c(0, SYN, &[]);
        t.c(1, ACK, &w[..25]);
        t.c(26, ACK, &w[25..]);
        assert_eq!(t.msgs(), ms);
        // The direction keeps one small buffer for its next unfinished message.
        assert_eq!(t.r.buffered_bytes(), MIN_BUF_CAP);
    }

    #[test]
    fn retransmissions_deliver_each_byte_once() {
        let mut t = h();
        let ms = vec![msg(1, 40), msg(2, 40), msg(3, 40)];
        let w = framed(&ms);
        t.c(100, SYN, &[]);
        t.c(101, ACK, &w[..42]);
        t.c(101, ACK, &w[..42]); // exact retransmission
        t.c(121, ACK, &w[20..70]); // partial overlap
        t.c(101, ACK, &w[..84]); // covers everything so far and more
        t.c(101, ACK, &w); // the whole stream again
        assert_eq!(t.msgs(), ms);
        assert_eq!(t.r.stats().retransmits, 4);
    }

    #[test]
    fn out_of_order_is_held_and_flushed() {
        let mut t = h();
        let ms = vec![msg(1, 30), msg(2, 30), msg(3, 30), msg(4, 30)];
        let w = framed(&ms);
        t.c(0, SYN, &[]);
        t.c(1 + 64, ACK, &w[64..96]);
        t.c(1 + 96, ACK, &w[96..]);
        t.c(1 + 32, ACK, &w[32..64]);
        assert!(t.got.is_empty());
        assert_eq!(t.r.stats().out_of_order, 3);
        t.c(1, ACK, &w[..32]);
        assert_eq!(t.msgs(), ms);
        assert!(t.r.buffered_bytes() > 0, "the direction keeps its buffer");
        // The stream continues in order afterwards.
        let m5 = msg(5, 20);
        t.c(1 + w.len() as u32, ACK, &framed(std::slice::from_ref(&m5)));
        assert_eq!(t.msgs().last(), Some(&m5));
    }

    #[test]
    fn out_of_order_overlapping_pieces() {
        let mut t = h();
        let ms = vec![msg(1, 50), msg(2, 50)];
        let w = framed(&ms);
        t.c(0, SYN, &[]);
        t.c(1 + 60, ACK, &w[60..80]);
        t.c(1 + 70, ACK, &w[70..]);
        t.c(1 + 65, ACK, &w[65..75]);
        t.c(1, ACK, &w[..70]);
        assert_eq!(t.msgs(), ms);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut t = h();
        let ms = vec![msg(1, 30), msg(2, 30), msg(3, 30)];
        let w = framed(&ms);
        let isn = u32::MAX - 40;
        t.c(isn, SYN, &[]);
        t.c(isn.wrapping_add(1), ACK, &w[..20]);
        // Out of order across the wrap.
        t.c(isn.wrapping_add(61), ACK, &w[60..]);
        t.c(isn.wrapping_add(21), ACK, &w[20..60]);
        t.c(isn.wrapping_add(11), ACK, &w[10..30]); // stale retransmission across the wrap
        assert_eq!(t.msgs(), ms);
    }

    #[test]
    fn both_directions_and_sides() {
        let mut t = h();
        let q = msg(1, 30);
        let a = msg(2, 90);
        t.c(10, SYN, &[]);
        t.s(500, SYN | ACK, &[]);
        t.c(11, ACK, &framed(std::slice::from_ref(&q)));
        t.s(501, ACK, &framed(std::slice::from_ref(&a)));
        assert_eq!(
            t.got,
            vec![(q, Direction::Initiator), (a, Direction::Responder)]
        );
        assert_eq!(t.r.connections(), 1);
    }

    #[test]
    fn fin_from_both_sides_frees_connection() {
        let mut t = h();
        let q = msg(1, 30);
        let a = msg(2, 40);
        t.c(10, SYN, &[]);
        t.s(500, SYN | ACK, &[]);
        let wq = framed(std::slice::from_ref(&q));
        t.c(11, ACK | FIN, &wq);
        assert_eq!(t.r.connections(), 1);
        let wa = framed(std::slice::from_ref(&a));
        t.s(501, ACK | FIN, &wa);
        assert_eq!(t.msgs(), vec![q, a]);
        assert_eq!(t.r.connections(), 0);
        assert_eq!(t.r.stats().closed, 1);
        assert_eq!(t.r.buffered_bytes(), 0);
    }

    #[test]
    fn fin_waits_for_missing_bytes() {
        let mut t = h();
        let ms = vec![msg(1, 30), msg(2, 30)];
        let w = framed(&ms);
        t.c(0, SYN, &[]);
        t.s(0, SYN | ACK, &[]);
        t.s(1, FIN | ACK, &[]);
        // FIN arrives before the bytes in front of it.
        t.c(33, FIN | ACK, &w[32..]);
        assert_eq!(t.r.connections(), 1);
        t.c(1, ACK, &w[..32]);
        assert_eq!(t.msgs(), ms);
        assert_eq!(t.r.connections(), 0);
    }

    #[test]
    fn rst_frees_connection_after_complete_messages() {
        let mut t = h();
        let m = msg(1, 30);
        let mut w = framed(std::slice::from_ref(&m));
        w.extend_from_slice(&[0, 50, 1, 2, 3]); // an unfinished second message
        t.c(0, SYN, &[]);
        t.c(1, ACK, &w);
        assert!(t.r.buffered_bytes() > 0);
        t.s(7, RST, &[]);
        assert_eq!(t.msgs(), vec![m]);
        assert_eq!(t.r.connections(), 0);
        assert_eq!(t.r.buffered_bytes(), 0);
        assert_eq!(t.r.stats().closed, 1);
    }

    #[test]
    fn midstream_pickup_starts_at_first_segment() {
        let mut t = h();
        let ms = vec![msg(1, 30), msg(2, 30)];
        let w = framed(&ms);
        // No SYN seen: a server → client segment starts the stream.
        t.s(7_000_000, ACK, &w[..40]);
        t.s(7_000_040, ACK, &w[40..]);
        assert_eq!(t.msgs(), ms);
        // The low port (53) is taken to be the responder.
        assert!(t.got.iter().all(|(_, d)| *d == Direction::Responder));
        assert_eq!(t.r.stats().connections, 1);
    }

    #[test]
    fn pure_acks_for_unknown_connections_are_ignored() {
        let mut t = h();
        t.c(5, ACK, &[]);
        t.c(5, RST, &[]);
        assert_eq!(t.r.connections(), 0);
        assert_eq!(t.r.stats().ignored, 2);
    }

    #[test]
    fn gap_that_never_fills_is_skipped() {
        let cfg = TcpConfig {
            max_out_of_order_segments: 3,
            ..TcpConfig::default()
        };
        let mut t = H::new(cfg);
        let ms: Vec<Vec<u8>> = (0..10).map(|i| msg(i, 30)).collect();
        let w = framed(&ms);
        t.c(0, SYN, &[]);
        t.c(1, ACK, &w[..32]); // message 0
        // Bytes 32..64 (message 1) are lost; later segments are held as separate pieces.
        for k in [2usize, 4, 6] {
            t.c(1 + 32 * k as u32, ACK, &w[32 * k..32 * (k + 1)]);
        }
        assert_eq!(t.r.stats().gaps, 0);
        // A fourth held piece overflows the window: the hole is skipped and parsing restarts
        // at the first held piece, which begins message 2.
        t.c(1 + 32 * 8, ACK, &w[32 * 8..]);
        assert_eq!((t.r.stats().gaps, t.r.stats().resyncs), (1, 1));
        assert_eq!(t.r.stats().invalid_streams, 0);
        assert_eq!(t.msgs(), vec![ms[0].clone(), ms[2].clone()]);
        // The rest arrives (a retransmission from byte 32): message 1 stays lost, the others
        // are delivered once, in order.
        t.c(33, ACK, &w[32..]);
        let mut want = vec![ms[0].clone()];
        want.extend(ms[2..].iter().cloned());
        assert_eq!(t.msgs(), want);
        // Nothing is pending; at most the smallest buffer stays charged to the open stream.
        assert!(t.r.buffered_bytes() <= MIN_BUF_CAP);
    }

    #[test]
    fn held_data_behind_a_hole_is_flushed_at_the_end() {
        let mut t = h();
        let ms: Vec<Vec<u8>> = (0..3).map(|i| msg(i, 30)).collect();
        let w = framed(&ms);
        t.c(0, SYN, &[]);
        t.c(1, ACK, &w[..32]);
        // Message 1 is lost and the capture ends without a FIN.
        t.c(1 + 64, ACK, &w[64..]);
        assert_eq!(t.msgs(), vec![ms[0].clone()]);
        let mut flushed = Vec::new();
        t.r.flush(&mut |m, end| flushed.push((m.to_vec(), end.dir, end.sport)));
        assert_eq!(flushed, vec![(ms[2].clone(), Direction::Initiator, 40_000)]);
        assert_eq!(t.r.stats().resyncs, 1);
    }

    #[test]
    fn segment_beyond_window_restarts_the_stream() {
        let mut t = h();
        t.c(0, SYN, &[]);
        let m = msg(5, 30);
        t.c(1 + 70_000, ACK, &framed(std::slice::from_ref(&m)));
        assert_eq!((t.r.stats().gaps, t.r.stats().resyncs), (1, 1));
        assert_eq!(t.msgs(), vec![m]);
        assert_eq!(t.r.buffered_bytes(), 0);
    }

    #[test]
    fn short_or_zero_prefix_invalidates() {
        let mut t = h();
        let m = msg(1, 30);
        let mut w = framed(std::slice::from_ref(&m));
        w.extend_from_slice(&framed(&[msg(2, 16)])); // 16 < 17
        w.extend_from_slice(&framed(&[msg(3, 30)]));
        t.c(0, SYN, &[]);
        t.c(1, ACK, &w);
        assert_eq!(t.msgs(), vec![m]);
        assert_eq!(t.r.stats().invalid_streams, 1);
        t.c(1 + w.len() as u32, ACK, &framed(&[msg(4, 30)]));
        assert_eq!(t.msgs().len(), 1, "invalid direction stays silent");

        let mut t = h();
        t.s(0, SYN | ACK, &[]);
        t.s(1, ACK, &[0, 0, 1, 2]);
        assert!(t.got.is_empty());
        assert_eq!(t.r.stats().invalid_streams, 1);
    }

    #[test]
    fn min_message_len_is_configurable() {
        let cfg = TcpConfig {
            min_message_len: 12,
            ..TcpConfig::default()
        };
        let mut t = H::new(cfg);
        let ms = vec![msg(1, 12), msg(2, 16)];
        t.c(0, SYN, &[]);
        t.c(1, ACK, &framed(&ms));
        assert_eq!(t.msgs(), ms);
    }

    #[test]
    fn retransmitted_syn_and_reused_tuple() {
        let mut t = h();
        let m = msg(1, 30);
        let w = framed(std::slice::from_ref(&m));
        t.c(100, SYN, &[]);
        t.c(100, SYN, &[]);
        assert_eq!(t.r.stats().retransmits, 1);
        t.c(101, ACK, &w[..10]);
        // A new ISN: the old partial message is dropped, the new stream starts clean.
        t.c(5_000, SYN, &[]);
        t.c(5_001, ACK, &w);
        assert_eq!(t.msgs(), vec![m]);
        assert_eq!(t.r.stats().connections, 2);
    }

    #[test]
    fn connection_cap_evicts_least_recently_used() {
        let cfg = TcpConfig {
            max_connections: 2,
            ..TcpConfig::default()
        };
        let mut t = H::new(cfg);
        let w = framed(&[msg(1, 30)]);
        t.seg(C, 1001, S, 53, 0, ACK, &w[..5]);
        t.seg(C, 1002, S, 53, 0, ACK, &w[..5]);
        t.seg(C, 1001, S, 53, 5, ACK, &w[5..10]); // 1001 is now the most recent
        t.seg(C, 1003, S, 53, 0, ACK, &w[..5]); // evicts 1002
        assert_eq!(t.r.connections(), 2);
        assert_eq!(t.r.stats().evicted_cap, 1);
        t.seg(C, 1001, S, 53, 10, ACK, &w[10..]);
        assert_eq!(t.msgs(), vec![msg(1, 30)]);
        // 1002 restarts mid-stream at its next segment, which is not a message start.
        t.seg(C, 1002, S, 53, 5, ACK, &w[5..]);
        assert_eq!(t.msgs().len(), 1);
    }

    #[test]
    fn idle_connections_expire() {
        let mut t = h();
        t.c(0, SYN, &[]);
        t.c(1, ACK, &[0, 40, 1, 2, 3]);
        t.now = 10 * SEC;
        t.s(0, ACK, &[0, 40, 1]);
        t.r.expire(40 * SEC);
        assert_eq!(t.r.connections(), 1, "touched at 10 s, idle 30 s exactly");
        t.r.expire(40 * SEC + 1);
        assert_eq!(t.r.connections(), 0);
        assert_eq!(t.r.stats().timed_out, 1);
        assert_eq!(t.r.buffered_bytes(), 0);
    }

    #[test]
    fn segment_expires_idle_connections_on_the_way() {
        let mut t = h();
        t.seg(C, 1001, S, 53, 0, SYN, &[]);
        t.now = 100 * SEC;
        t.seg(C, 1002, S, 53, 0, SYN, &[]);
        assert_eq!(t.r.connections(), 1);
        assert_eq!(t.r.stats().timed_out, 1);
    }

    #[test]
    fn total_byte_budget_drops_and_counts() {
        let cfg = TcpConfig {
            max_total_bytes: 2048,
            ..TcpConfig::default()
        };
        let mut t = H::new(cfg);
        // Each connection holds an unfinished 1000-byte message prefix.
        let mut part = vec![0x03, 0xe8];
        part.extend_from_slice(&[7; 998]);
        t.seg(C, 1001, S, 53, 0, ACK, &part);
        t.seg(C, 1002, S, 53, 0, ACK, &part);
        assert!(t.r.buffered_bytes() <= 2048);
        t.seg(C, 1003, S, 53, 0, ACK, &part);
        assert!(t.r.buffered_bytes() <= 2048);
        assert_eq!(t.r.stats().bytes_dropped_cap, 1000);
        assert_eq!(t.r.stats().invalid_streams, 1);
    }

    #[test]
    fn largest_message_fits_default_buffer() {
        let mut t = h();
        let m = msg(5, 65_535);
        let w = framed(std::slice::from_ref(&m));
        t.c(0, SYN, &[]);
        for (i, chunk) in w.chunks(1460).enumerate() {
            t.c(1 + (i * 1460) as u32, ACK, chunk);
        }
        assert_eq!(t.msgs(), vec![m]);
        assert_eq!(t.r.stats().invalid_streams, 0);
    }

    #[test]
    fn oversized_segment_is_taken_in_chunks() {
        let cfg = TcpConfig {
            max_buffer_per_direction: 256,
            ..TcpConfig::default()
        };
        let mut t = H::new(cfg);
        let ms: Vec<Vec<u8>> = (0..20).map(|i| msg(i, 100)).collect();
        let w = framed(&ms);
        t.c(0, SYN, &[]);
        t.c(1, ACK, &w[..50]); // something buffered, so the rest takes the slow path
        t.c(51, ACK, &w[50..]);
        assert_eq!(t.msgs(), ms);
    }

    #[test]
    fn steady_state_reuses_buffers() {
        let mut t = h();
        let w = framed(&[msg(1, 30)]);
        for port in 0..200u16 {
            t.seg(C, 2000 + port, S, 53, 0, SYN, &[]);
            t.seg(C, 2000 + port, S, 53, 1, ACK, &w[..10]);
            t.seg(C, 2000 + port, S, 53, 11, ACK | FIN, &w[10..]);
            t.seg(S, 53, C, 2000 + port, 0, RST, &[]);
        }
        assert_eq!(t.msgs().len(), 200);
        assert_eq!(t.r.connections(), 0);
        assert_eq!(t.r.buffered_bytes(), 0);
        assert_eq!(
            t.r.pool.spare.len(),
            1,
            "one buffer cycles through the pool"
        );
    }

    #[test]
    fn per_connection_state_is_small() {
        // Key + state; the slab adds 24 bytes of hash and links, the index about 6.
        assert!(size_of::<ConnKey>() + size_of::<Conn>() <= 240);
    }

    #[test]
    fn fuzz_body_survives_samples() {
        fuzz_tcp(&[]);
        fuzz_tcp(&[0, SYN, 0, 0, 0, 0, ACK, 0, 0, 5, 0, 3, 1, 2, 3]);
        fuzz_tcp(&[0xff; 400]);
        let seq: Vec<u8> = (0..3000u32).map(|i| (i * 97 % 253) as u8).collect();
        fuzz_tcp(&seq);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            /// A random message stream cut into random segments, delivered with random
            /// duplication and bounded reordering, yields exactly the original messages in
            /// order.
            #[test]
            fn random_stream_reassembles(
                lens in proptest::collection::vec(17usize..400, 1..30),
                isn in any::<u32>(),
                cuts in proptest::collection::vec(1usize..300, 1..60),
                // Few enough swaps and early duplicates that the holes stay within the
                // 16-piece window.
                swaps in proptest::collection::vec((any::<u16>(), 1usize..4), 0..12),
                dups in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
                syn in any::<bool>(),
            ) {
                let ms: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &l)| msg(i as u8, l)).collect();
                let w = framed(&ms);
                // Cut into segments.
                let mut segs: Vec<(usize, usize)> = Vec::new();
                let mut off = 0;
                let mut k = 0;
                while off < w.len() {
                    let end = (off + cuts[k % cuts.len()]).min(w.len());
                    segs.push((off, end));
                    off = end;
                    k += 1;
                }
                // Duplicates, some shifted so they overlap partially.
                for &(at, shift) in &dups {
                    let (s, e) = segs[at as usize % segs.len()];
                    let s2 = (s + usize::from(shift) % (e - s)).min(e - 1);
                    let pos = (at as usize / 7) % (segs.len() + 1);
                    segs.insert(pos.max(1).min(segs.len()), (s2, e));
                }
                // Bounded reordering: swap neighbours at most 3 apart.
                for &(at, dist) in &swaps {
                    let i = at as usize % segs.len();
                    let j = (i + dist).min(segs.len() - 1);
                    segs.swap(i, j);
                }
                let mut t = h();
                let base = if syn {
                    t.c(isn, SYN, &[]);
                    isn.wrapping_add(1)
                } else {
                    isn
                };
                // Without a SYN the first segment seen must be the stream start.
                if !syn {
                    let first = segs.iter().position(|s| s.0 == 0).unwrap();
                    let s0 = segs.remove(first);
                    segs.insert(0, s0);
                }
                for (s, e) in segs {
                    t.c(base.wrapping_add(s as u32), ACK, &w[s..e]);
                }
                prop_assert_eq!(t.msgs(), ms);
                prop_assert_eq!(t.r.stats().gaps, 0);
                prop_assert_eq!(t.r.stats().invalid_streams, 0);
            }

            /// Two connections, both directions each, with their segments interleaved at
            /// random (and neighbours swapped): every (connection, direction) stream yields its
            /// own messages in order, attributed to the right side.
            #[test]
            fn interleaved_connections_and_directions(
                lens in proptest::collection::vec(17usize..200, 4..40),
                cut in 1usize..120,
                picks in proptest::collection::vec(0usize..4, 0..400),
                swaps in proptest::collection::vec(any::<u16>(), 0..8),
                isns in any::<[u32; 4]>(),
            ) {
                // Stream k: connection k / 2, direction k % 2 (0 = client to server).
                let streams: Vec<Vec<Vec<u8>>> = (0..4)
                    .map(|k| {
                        lens.iter()
                            .skip(k)
                            .step_by(4)
                            .enumerate()
                            .map(|(i, &l)| msg((k * 64 + i) as u8, l))
                            .collect()
                    })
                    .collect();
                let wires: Vec<Vec<u8>> = streams.iter().map(|m| framed(m)).collect();
                // Per stream, its segments; then a random interleaving keeping stream order.
                let mut next = [0usize; 4];
                let mut order: Vec<(usize, usize, usize)> = Vec::new();
                let mut pick = picks.iter().copied().chain((0..4).cycle());
                while (0..4).any(|k| next[k] < wires[k].len()) {
                    let k = pick.next().unwrap_or(0);
                    if next[k] < wires[k].len() {
                        let s = next[k];
                        let e = (s + cut + k * 7).min(wires[k].len());
                        order.push((k, s, e));
                        next[k] = e;
                    }
                }
                for &sw in &swaps {
                    let i = sw as usize % order.len();
                    let j = (i + 1).min(order.len() - 1);
                    order.swap(i, j);
                }
                let ports = [41000u16, 41001];
                let mut r = TcpDnsReassembler::new(TcpConfig::default());
                let mut got: Vec<Vec<(Vec<u8>, Direction)>> = vec![Vec::new(); 4];
                for (k, &isn) in isns.iter().enumerate() {
                    let (conn, dir) = (k / 2, k % 2);
                    let fl = if dir == 0 { SYN } else { SYN | ACK };
                    let (a, ap, b, bp) = if dir == 0 { (C, ports[conn], S, 53) } else { (S, 53, C, ports[conn]) };
                    r.segment(a, ap, b, bp, 0, isn, fl, &[], 0, &mut |_, _| {});
                }
                for (k, s, e) in order {
                    let (conn, dir) = (k / 2, k % 2);
                    let (a, ap, b, bp) = if dir == 0 { (C, ports[conn], S, 53) } else { (S, 53, C, ports[conn]) };
                    let seq = isns[k].wrapping_add(1).wrapping_add(s as u32);
                    let out = &mut got[k];
                    r.segment(a, ap, b, bp, 0, seq, ACK, &wires[k][s..e], 0, &mut |m, d| out.push((m.to_vec(), d)));
                }
                for (k, (stream, out)) in streams.iter().zip(&got).enumerate() {
                    let want_dir = if k % 2 == 0 { Direction::Initiator } else { Direction::Responder };
                    let want: Vec<(Vec<u8>, Direction)> = stream.iter().map(|m| (m.clone(), want_dir)).collect();
                    prop_assert_eq!(out, &want);
                }
                prop_assert_eq!(r.connections(), 2);
                prop_assert_eq!(r.stats().invalid_streams, 0);
            }

            #[test]
            fn fuzz_body_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
                fuzz_tcp(&data);
            }
        }
    }
}
