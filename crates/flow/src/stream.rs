//! Bounded stream-head reassembly: the first bytes of each direction of a TCP connection, in
//! order, for protocols whose interesting part is at the start (TLS handshakes, HTTP request
//! and response heads). It is not a general TCP reassembler: it keeps at most `head_bytes` of
//! each direction and stops as soon as the consumer has what it needs.
//!
//! The consumer is a callback that sees the whole contiguous head of one direction each time it
//! grows (in order, retransmissions trimmed, reordered segments placed), together with a small
//! per-connection value of its own (`U`), and answers with a [`Verdict`]: `Done` (stop
//! buffering this direction) or `NeedMore(n)` (call again once the head holds `n` bytes). When a
//! direction can grow no more while the consumer still waits — head full, lost segment, FIN or
//! RST, byte budget exhausted — the callback is told why with a [`Cut`], once. A consumer of a
//! stream of messages (HTTP keep-alive) answers `Advance(n)` instead: the bytes it has read, and
//! a body it skips, are dropped, so only the unfinished message head is ever buffered.
//!
//! Behaviour:
//! * connections are keyed by the canonical (address, port) pair plus VLAN, in a table of at
//!   most `max_connections` (least recently used evicted, counted) that forgets connections idle
//!   for `idle_timeout_ns` of packet time;
//! * a SYN starts its direction at ISN+1; without one (capture started mid-stream) the first
//!   data segment starts it; a SYN with a new ISN on a used direction starts a new connection;
//! * bytes already delivered are trimmed (retransmissions); bytes ahead of the head are placed at
//!   their offset, up to `max_out_of_order` disjoint pieces, and delivered when the hole fills;
//!   more pieces than that is a gap ([`Cut::Gap`]);
//! * all buffers together stay within `max_total_bytes` ([`Cut::Budget`] when refused).
//!
//! The common case — a consumer satisfied by the first segment of a direction — copies and
//! allocates nothing: the callback reads the segment in place. Directions that need more
//! borrow a buffer from a small pool, returned when the direction is done.
//!
//! Memory: a tracked connection costs about 280 bytes of table state (its two directions'
//! counters and buffer handles, key, hash index and recency links; out-of-order pieces are held
//! out of line, only while a direction has some) plus `U`, so the default 100 000 connections
//! take about 28 MB; buffers come on top, bounded by `max_total_bytes`.

use core::net::IpAddr;

use crate::slab::LruSlab;
use crate::tcp::{Direction, flags};

/// Limits of a [`StreamHeads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Connections tracked at once; the least recently used is evicted.
    pub max_connections: usize,
    /// Bytes kept of the start of each direction.
    pub head_bytes: usize,
    /// Bytes buffered over all connections.
    pub max_total_bytes: usize,
    /// Disjoint out-of-order pieces held per direction (at most [`MAX_PIECES`]).
    pub max_out_of_order: usize,
    /// Connections idle this long (packet time) are forgotten.
    pub idle_timeout_ns: u64,
    /// Seed of the connection table's hash.
    pub hash_seed: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            // A TLS server's first flight (ServerHello and a certificate chain) fits in 32 KiB
            // but for unusually long chains.
            head_bytes: 32 << 10,
            max_total_bytes: 64 << 20,
            max_out_of_order: 8,
            idle_timeout_ns: 60_000_000_000,
            hash_seed: 0x05ee_d7c9_0b5e_55ed,
        }
    }
}

/// Most out-of-order pieces a direction can hold, whatever the configuration says.
pub const MAX_PIECES: usize = 16;
/// Spare buffers kept for reuse, and the largest capacity kept.
const SPARE_MAX: usize = 64;
const SPARE_MAX_CAP: usize = 64 << 10;
/// Idle connections each segment may expire on the way (bounded work per packet).
const EXPIRE_PER_SEGMENT: usize = 8;

/// What the consumer wants after seeing a direction's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing more is needed from this direction.
    Done,
    /// Call again once the head holds at least this many bytes.
    NeedMore(usize),
    /// The first `n` bytes are consumed: drop them, so the byte after them becomes byte 0 of
    /// the head, and call again when anything past what is held arrives. `n` may run past the
    /// bytes held: the excess is skipped as it arrives, never buffered (a message body whose
    /// length is known). This is how a consumer reads a whole stream of messages (HTTP
    /// keep-alive) with only the unfinished one buffered; `head_bytes` then caps one message
    /// head, not the stream. More than [`MAX_ADVANCE`] at once stops the direction.
    Advance(usize),
}

/// Largest [`Verdict::Advance`] step: sequence offsets must stay well inside the 32-bit
/// sequence space for retransmissions to be told from new data.
pub const MAX_ADVANCE: usize = 1 << 30;

/// Why a direction's head stopped growing while the consumer still waited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The head still grows; the consumer will be called again.
    No,
    /// `head_bytes` are held.
    HeadFull,
    /// A segment was lost (more holes than the out-of-order window holds).
    Gap,
    /// The direction ended (FIN or RST), or the connection was evicted or timed out.
    Closed,
    /// The byte budget refused the buffer.
    Budget,
}

/// Counters of a [`StreamHeads`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Segments offered.
    pub segments: u64,
    /// Connections started.
    pub connections: u64,
    /// Connections evicted because the table was full.
    pub evicted_cap: u64,
    /// Connections forgotten after the idle timeout.
    pub timed_out: u64,
    /// Segments whose bytes (all or some) had already been received.
    pub retransmits: u64,
    /// Segments held ahead of a hole.
    pub out_of_order: u64,
    /// Directions cut by a lost segment.
    pub gaps: u64,
    /// Directions cut at `head_bytes`.
    pub head_full: u64,
    /// Directions cut because the byte budget was exhausted.
    pub budget_refusals: u64,
    /// Every cap hit above (`evicted_cap + gaps + head_full + budget_refusals`), counted with
    /// them: one field tells a caller whether any of them moved.
    pub cap_hits: u64,
}

/// Cap hits of a [`StreamHeads`] since an earlier reading of its [`StreamStats`]: what a handler
/// moves into its window bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapHits {
    /// Connections evicted because the table was full.
    pub evicted_cap: u64,
    /// Directions cut by a lost segment.
    pub gaps: u64,
    /// Directions cut at `head_bytes`.
    pub head_full: u64,
    /// Directions cut because the byte budget was exhausted.
    pub budget_refusals: u64,
}

impl StreamStats {
    /// The cap hits since `earlier`, or `None` when there were none. Only cap hits are
    /// compared: `segments` changes on every call, so comparing whole stats never skips.
    #[inline]
    pub fn cap_hits_since(&self, earlier: &StreamStats) -> Option<CapHits> {
        // One test on the common path (no cap hit), no branch per counter.
        let changed = (self.evicted_cap ^ earlier.evicted_cap)
            | (self.gaps ^ earlier.gaps)
            | (self.head_full ^ earlier.head_full)
            | (self.budget_refusals ^ earlier.budget_refusals);
        if changed == 0 {
            return None;
        }
        let hits = CapHits {
            evicted_cap: self.evicted_cap - earlier.evicted_cap,
            gaps: self.gaps - earlier.gaps,
            head_full: self.head_full - earlier.head_full,
            budget_refusals: self.budget_refusals - earlier.budget_refusals,
        };
        (hits != CapHits::default()).then_some(hits)
    }
}

/// Canonical connection key (smaller endpoint first), addresses as 128-bit numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    a: u128,
    b: u128,
    a_port: u16,
    b_port: u16,
    vlan: u16,
}

impl core::hash::Hash for Key {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.a);
        state.write_u128(self.b);
        state.write_u64(
            u64::from(self.a_port) << 32 | u64::from(self.b_port) << 16 | u64::from(self.vlan),
        );
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Unseen,
    Open,
    Done,
}

/// One direction's head.
#[derive(Default)]
struct Half {
    state: State,
    /// Sequence number of head byte 0.
    base: u32,
    isn: Option<u32>,
    /// Head bytes in order from byte 0 (delivered to the consumer).
    filled: usize,
    /// The consumer is called again at this many bytes.
    need: usize,
    /// Holds the head when it spans segments; out-of-order pieces sit at their offsets.
    buf: Vec<u8>,
    /// Out-of-order pieces as `[start, end)` offsets beyond `filled`, unordered; the first
    /// `n_pieces` count. Empty until the direction first holds a piece (most never do): kept
    /// out of line, so an idle connection costs a pointer, not [`MAX_PIECES`] pairs.
    pieces: Vec<(u32, u32)>,
    n_pieces: usize,
    charged: usize,
}

struct Conn<U> {
    initiator_is_a: bool,
    /// Which insertion into the table this entry is (never 0 while the entry is live; 0 once it
    /// is freed): what a [`Hint`] is checked against.
    generation: u32,
    halves: [Half; 2],
    last_ns: u64,
    user: U,
}

impl<U: Default> Default for Conn<U> {
    fn default() -> Self {
        Self {
            initiator_is_a: true,
            generation: 0,
            halves: [Half::default(), Half::default()],
            last_ns: 0,
            user: U::default(),
        }
    }
}

/// The shared byte budget and spare buffers.
struct Pool {
    buffered: usize,
    spare: Vec<Vec<u8>>,
    /// Piece lists of released directions, for reuse.
    spare_pieces: Vec<Vec<(u32, u32)>>,
}

impl Pool {
    fn release(&mut self, h: &mut Half) {
        self.buffered = self.buffered.saturating_sub(h.charged);
        h.charged = 0;
        h.n_pieces = 0;
        if !h.pieces.is_empty() && self.spare_pieces.len() < SPARE_MAX {
            self.spare_pieces.push(core::mem::take(&mut h.pieces));
        } else {
            h.pieces = Vec::new();
        }
        let mut buf = core::mem::take(&mut h.buf);
        if buf.capacity() > 0 && buf.capacity() <= SPARE_MAX_CAP && self.spare.len() < SPARE_MAX {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Gives `h` room for [`MAX_PIECES`] pieces (a spare list when there is one).
    fn pieces_room(&mut self, h: &mut Half) {
        if h.pieces.len() < MAX_PIECES {
            if h.pieces.is_empty()
                && let Some(p) = self.spare_pieces.pop()
            {
                h.pieces = p;
            }
            h.pieces.resize(MAX_PIECES, (0, 0));
        }
    }

    /// Makes `h.buf` hold at least `len` bytes (zero-filled), within the budget.
    fn grow(&mut self, h: &mut Half, len: usize, cfg: &StreamConfig) -> bool {
        if len <= h.buf.len() {
            return true;
        }
        if h.buf.capacity() == 0
            && let Some(spare) = self.spare.pop()
        {
            h.buf = spare;
        }
        if len > h.buf.capacity() {
            let want = len
                .max(h.buf.capacity().saturating_mul(2))
                .max(1024)
                .min(cfg.head_bytes.max(len));
            h.buf.reserve_exact(want - h.buf.len());
        }
        let cap = h.buf.capacity();
        if self.buffered - h.charged + cap > cfg.max_total_bytes {
            return false;
        }
        self.buffered = self.buffered - h.charged + cap;
        h.charged = cap;
        h.buf.resize(len, 0);
        true
    }
}

/// What the consumer callback sees for one direction: the head bytes so far, which way they
/// travelled, the packet time, why the head stopped growing (if it did), and the connection's
/// consumer state.
pub struct Head<'a, U> {
    pub bytes: &'a [u8],
    pub dir: Direction,
    pub ts_ns: u64,
    pub cut: Cut,
    pub user: &'a mut U,
}

/// Bounded stream-head reassembler; `U` is the consumer's per-connection state.
pub struct StreamHeads<U> {
    table: LruSlab<Key, Conn<U>>,
    cfg: StreamConfig,
    stats: StreamStats,
    pool: Pool,
    /// Generation of the last entry inserted.
    generation: u32,
    /// Packet time before which the least recently used connection cannot be idle, as the
    /// last idle check found it (0 = unknown): most segments skip the check with one
    /// comparison. Reset whenever that connection may change (touched, freed, or an insert).
    quiet_until: u64,
}

/// Where a caller that already tracks the connection (a flow table entry) remembers this
/// reassembler's entry for it, so that later segments skip building the key and the table
/// lookup: `slot` is opaque (0 = nothing known) and is kept up to date by
/// [`StreamHeads::segment_hinted`]; `src_is_a` says whether the segment's sender is the
/// smaller endpoint (address bits, then port), as the caller's own key ordering tells.
///
/// A stored value names one insertion of one entry (slot and generation): once that entry is
/// freed, or its slot reused, it no longer matches and the segment is looked up as usual.
#[derive(Debug)]
pub struct Hint<'a> {
    pub slot: &'a mut u64,
    pub src_is_a: bool,
}

impl<U: Default> Default for StreamHeads<U> {
    fn default() -> Self {
        Self::new(StreamConfig::default())
    }
}

impl<U: Default> StreamHeads<U> {
    /// An empty reassembler.
    pub fn new(mut cfg: StreamConfig) -> Self {
        cfg.max_out_of_order = cfg.max_out_of_order.min(MAX_PIECES);
        cfg.head_bytes = cfg.head_bytes.min(u32::MAX as usize / 2);
        Self {
            table: LruSlab::new(cfg.hash_seed),
            cfg,
            stats: StreamStats::default(),
            pool: Pool {
                buffered: 0,
                spare: Vec::new(),
                spare_pieces: Vec::new(),
            },
            generation: 0,
            quiet_until: 0,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// Connections tracked now.
    pub fn connections(&self) -> usize {
        self.table.len()
    }

    /// Buffer bytes charged to the budget now.
    pub fn buffered_bytes(&self) -> usize {
        self.pool.buffered
    }

    /// The limits in force.
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// Feeds one TCP segment; `on_head` is called as described in the module documentation.
    ///
    /// Returns whether the connection is finished for the consumer: both directions are done,
    /// so no later segment of it but a SYN (a new connection on the same ports) or an RST (which
    /// forgets it) changes anything here. A caller that remembers this per connection may skip
    /// its other segments; they would only refresh the entry's recency.
    #[allow(clippy::too_many_arguments)] // mirrors the packet fields, as `TcpDnsReassembler::segment`
    pub fn segment(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        vlan: u16,
        seq: u32,
        tcp_flags: u8,
        payload: &[u8],
        now_ns: u64,
        on_head: &mut dyn FnMut(Head<'_, U>) -> Verdict,
    ) -> bool {
        self.segment_hinted(
            src, sport, dst, dport, vlan, seq, tcp_flags, payload, now_ns, None, on_head,
        )
    }

    /// [`StreamHeads::segment`] with the caller's [`Hint`] of where the connection's entry is:
    /// the same effects, without the key and the lookup when the hint still holds.
    #[allow(clippy::too_many_arguments)]
    pub fn segment_hinted(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        vlan: u16,
        seq: u32,
        tcp_flags: u8,
        payload: &[u8],
        now_ns: u64,
        mut hint: Option<Hint<'_>>,
        on_head: &mut dyn FnMut(Head<'_, U>) -> Verdict,
    ) -> bool {
        self.stats.segments += 1;
        self.expire_some(now_ns, EXPIRE_PER_SEGMENT, on_head);
        let syn = tcp_flags & flags::SYN != 0;
        let rst = tcp_flags & flags::RST != 0;
        let fin = tcp_flags & flags::FIN != 0;
        // The hinted entry, when it is still the same insertion (a freed entry has generation 0).
        let hinted = hint.as_ref().and_then(|h| {
            let (idx, generation) = (*h.slot as u32, (*h.slot >> 32) as u32);
            let live = generation != 0
                && self
                    .table
                    .value(idx)
                    .is_some_and(|c| c.generation == generation);
            live.then_some((idx, h.src_is_a))
        });
        // The connection's entry: the hinted one, else the table's for the segment's key.
        let found = hinted.or_else(|| {
            let (key, src_is_a) = key_of(src, sport, dst, dport, vlan);
            self.table.find(&key).map(|idx| (idx, src_is_a))
        });
        let (idx, src_is_a) = match found {
            Some((idx, src_is_a)) => {
                if rst {
                    self.free(idx, now_ns, on_head);
                    return false;
                }
                self.touch(idx);
                (idx, src_is_a)
            }
            None => {
                // Only a SYN or data starts tracking: bare ACKs, FINs and RSTs of unknown
                // connections are not worth a table entry.
                if rst || (!syn && payload.is_empty()) || self.cfg.max_connections == 0 {
                    return false;
                }
                while self.table.len() >= self.cfg.max_connections {
                    let Some(lru) = self.table.tail() else { break };
                    self.free(lru, now_ns, on_head);
                    self.stats.evicted_cap += 1;
                    self.stats.cap_hits += 1;
                }
                self.quiet_until = 0;
                let (key, src_is_a) = key_of(src, sport, dst, dport, vlan);
                let idx = self.table.insert(key);
                self.stats.connections += 1;
                self.generation = self.generation.wrapping_add(1).max(1);
                let generation = self.generation;
                if let Some(c) = self.table.value_mut(idx) {
                    reset(c, src_is_a, syn, tcp_flags & flags::ACK != 0, sport, dport);
                    c.generation = generation;
                }
                (idx, src_is_a)
            }
        };
        let side = usize::from(!src_is_a);
        let cfg = self.cfg;
        let Some(conn) = self.table.value_mut(idx) else {
            return false;
        };
        conn.last_ns = now_ns;
        let mut data_seq = seq;
        if syn {
            data_seq = seq.wrapping_add(1);
            let h = &conn.halves[side];
            if h.isn == Some(seq) {
                self.stats.retransmits += 1;
            } else if h.state != State::Unseen || h.isn.is_some() {
                // The 4-tuple was reused: a new connection.
                for h in &mut conn.halves {
                    self.pool.release(h);
                }
                reset(
                    conn,
                    src_is_a,
                    syn,
                    tcp_flags & flags::ACK != 0,
                    sport,
                    dport,
                );
                self.stats.connections += 1;
            }
            let h = &mut conn.halves[side];
            if h.state == State::Unseen {
                h.isn = Some(seq);
                open(h, data_seq);
            }
        }
        let dir = if (side == 0) == conn.initiator_is_a {
            Direction::Initiator
        } else {
            Direction::Responder
        };
        let h = &mut conn.halves[side];
        if h.state == State::Unseen && !payload.is_empty() {
            open(h, data_seq);
        }
        if h.state == State::Open && !payload.is_empty() {
            feed(
                h,
                &mut conn.user,
                &mut self.pool,
                &mut self.stats,
                &cfg,
                data_seq,
                payload,
                dir,
                now_ns,
                on_head,
            );
        }
        if fin && h.state == State::Open {
            // Bytes still missing before the FIN will not be waited for.
            cut(
                h,
                &mut conn.user,
                &mut self.pool,
                dir,
                now_ns,
                Cut::Closed,
                on_head,
            );
        }
        let finished = conn.halves.iter().all(|h| h.state == State::Done);
        let generation = conn.generation;
        if let Some(h) = hint.as_mut() {
            *h.slot = u64::from(generation) << 32 | u64::from(idx);
        }
        finished
    }

    /// Forgets connections idle longer than the timeout at `now_ns`, telling the consumer of
    /// directions it still waited for.
    pub fn expire(&mut self, now_ns: u64, on_head: &mut dyn FnMut(Head<'_, U>) -> Verdict) {
        self.expire_some(now_ns, usize::MAX, on_head);
    }

    fn expire_some(
        &mut self,
        now_ns: u64,
        limit: usize,
        on_head: &mut dyn FnMut(Head<'_, U>) -> Verdict,
    ) {
        if now_ns < self.quiet_until {
            return;
        }
        for _ in 0..limit {
            let Some(lru) = self.table.tail() else { break };
            let Some(last_ns) = self.table.value(lru).map(|c| c.last_ns) else {
                break;
            };
            if now_ns.saturating_sub(last_ns) <= self.cfg.idle_timeout_ns {
                // Not idle before then, unless it changes (which resets this).
                self.quiet_until = last_ns
                    .saturating_add(self.cfg.idle_timeout_ns)
                    .saturating_add(1);
                break;
            }
            self.free(lru, now_ns, on_head);
            self.stats.timed_out += 1;
        }
    }

    /// Moves a connection to the recent end of the table.
    fn touch(&mut self, idx: u32) {
        if self.table.tail() == Some(idx) {
            self.quiet_until = 0;
        }
        self.table.touch(idx);
    }

    /// Removes a connection, cutting the directions the consumer still waited for.
    fn free(&mut self, idx: u32, now_ns: u64, on_head: &mut dyn FnMut(Head<'_, U>) -> Verdict) {
        self.quiet_until = 0;
        if let Some(c) = self.table.value_mut(idx) {
            c.generation = 0;
            let initiator_is_a = c.initiator_is_a;
            for (i, h) in c.halves.iter_mut().enumerate() {
                if h.state == State::Open {
                    let dir = if (i == 0) == initiator_is_a {
                        Direction::Initiator
                    } else {
                        Direction::Responder
                    };
                    cut(
                        h,
                        &mut c.user,
                        &mut self.pool,
                        dir,
                        now_ns,
                        Cut::Closed,
                        on_head,
                    );
                }
                self.pool.release(h);
                h.state = State::Unseen;
            }
        }
        self.table.remove(idx);
    }
}

/// Starts a fresh connection in a reused slot.
fn reset<U: Default>(
    c: &mut Conn<U>,
    src_is_a: bool,
    syn: bool,
    ack: bool,
    sport: u16,
    dport: u16,
) {
    // The sender of a bare SYN opened the connection, the sender of a SYN-ACK accepted it;
    // without a SYN, servers are guessed by their lower port.
    c.initiator_is_a = if syn {
        src_is_a != ack
    } else if sport != dport {
        src_is_a == (sport > dport)
    } else {
        src_is_a
    };
    c.user = U::default();
    for h in &mut c.halves {
        h.state = State::Unseen;
        h.isn = None;
        h.filled = 0;
        h.need = 0;
        h.n_pieces = 0;
    }
}

fn open(h: &mut Half, base: u32) {
    h.state = State::Open;
    h.base = base;
    h.filled = 0;
    h.need = 1;
    h.n_pieces = 0;
    h.buf.clear();
}

/// Tells the consumer a direction will not grow any more (if it still waited) and stops it.
fn cut<U>(
    h: &mut Half,
    user: &mut U,
    pool: &mut Pool,
    dir: Direction,
    ts_ns: u64,
    why: Cut,
    on_head: &mut dyn FnMut(Head<'_, U>) -> Verdict,
) {
    if h.state != State::Open {
        return;
    }
    let bytes = h.buf.get(..h.filled).unwrap_or_default();
    on_head(Head {
        bytes,
        dir,
        ts_ns,
        cut: why,
        user,
    });
    h.state = State::Done;
    pool.release(h);
}

/// The table key of a segment (endpoints ordered: address bits, then port) and whether its
/// sender is the key's `a` side.
fn key_of(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, vlan: u16) -> (Key, bool) {
    let (sa, da) = (crate::addr_bits(src), crate::addr_bits(dst));
    let src_is_a = (sa, sport) <= (da, dport);
    let key = if src_is_a {
        Key {
            a: sa,
            b: da,
            a_port: sport,
            b_port: dport,
            vlan,
        }
    } else {
        Key {
            a: da,
            b: sa,
            a_port: dport,
            b_port: sport,
            vlan,
        }
    };
    (key, src_is_a)
}

/// Places one data segment of an open direction and calls the consumer when it can.
#[allow(clippy::too_many_arguments)]
fn feed<U>(
    h: &mut Half,
    user: &mut U,
    pool: &mut Pool,
    stats: &mut StreamStats,
    cfg: &StreamConfig,
    seq: u32,
    payload: &[u8],
    dir: Direction,
    ts_ns: u64,
    on_head: &mut dyn FnMut(Head<'_, U>) -> Verdict,
) {
    let off = seq.wrapping_sub(h.base) as i32;
    let head = cfg.head_bytes;
    // Trim what lies before the head or was already delivered.
    let (start, data) = if off < 0 {
        let skip = off.unsigned_abs() as usize;
        stats.retransmits += 1;
        match payload.get(skip..) {
            Some(d) if !d.is_empty() => (0usize, d),
            _ => return,
        }
    } else {
        (off as usize, payload)
    };
    let (start, data) = if start < h.filled {
        let skip = h.filled - start;
        stats.retransmits += 1;
        match data.get(skip..) {
            Some(d) if !d.is_empty() => (h.filled, d),
            _ => return,
        }
    } else {
        (start, data)
    };
    if start >= head {
        return;
    }
    let data = data.get(..head - start).unwrap_or(data);
    let end = start + data.len();

    // In order with nothing buffered: let the consumer read the segment in place.
    if start == 0 && h.filled == 0 && h.n_pieces == 0 {
        h.filled = end;
        match on_head(Head {
            bytes: data,
            dir,
            ts_ns,
            cut: Cut::No,
            user,
        }) {
            Verdict::Done => {
                h.state = State::Done;
                pool.release(h);
            }
            Verdict::Advance(n) if n > MAX_ADVANCE => {
                h.state = State::Done;
                pool.release(h);
            }
            Verdict::Advance(n) if n >= end => {
                // Everything seen is consumed: nothing to keep, the common keep-alive case.
                h.base = h.base.wrapping_add(n as u32);
                h.filled = 0;
                h.need = 1;
            }
            Verdict::Advance(n) => {
                let rest = data.get(n..).unwrap_or_default();
                h.base = h.base.wrapping_add(n as u32);
                h.filled = rest.len();
                h.need = rest.len() + 1;
                if !pool.grow(h, rest.len(), cfg) {
                    stats.budget_refusals += 1;
                    stats.cap_hits += 1;
                    h.filled = 0;
                    let _ = on_head(Head {
                        bytes: rest,
                        dir,
                        ts_ns,
                        cut: Cut::Budget,
                        user,
                    });
                    h.state = State::Done;
                    pool.release(h);
                    return;
                }
                if let Some(dst) = h.buf.get_mut(..rest.len()) {
                    dst.copy_from_slice(rest);
                }
            }
            Verdict::NeedMore(n) => {
                if end >= head {
                    stats.head_full += 1;
                    stats.cap_hits += 1;
                    let _ = on_head(Head {
                        bytes: data,
                        dir,
                        ts_ns,
                        cut: Cut::HeadFull,
                        user,
                    });
                    h.state = State::Done;
                    pool.release(h);
                    return;
                }
                h.need = n.max(end + 1);
                if !pool.grow(h, end, cfg) {
                    stats.budget_refusals += 1;
                    stats.cap_hits += 1;
                    h.filled = 0;
                    let _ = on_head(Head {
                        bytes: data,
                        dir,
                        ts_ns,
                        cut: Cut::Budget,
                        user,
                    });
                    h.state = State::Done;
                    pool.release(h);
                    return;
                }
                if let Some(dst) = h.buf.get_mut(..end) {
                    dst.copy_from_slice(data);
                }
            }
        }
        return;
    }

    if start > h.filled {
        // Ahead of a hole: hold it as a piece.
        pool.pieces_room(h);
        if !pieces_add(h, start as u32, end as u32, cfg.max_out_of_order) {
            stats.gaps += 1;
            stats.cap_hits += 1;
            cut(h, user, pool, dir, ts_ns, Cut::Gap, on_head);
            return;
        }
        stats.out_of_order += 1;
    }
    if !pool.grow(h, end, cfg) {
        stats.budget_refusals += 1;
        stats.cap_hits += 1;
        cut(h, user, pool, dir, ts_ns, Cut::Budget, on_head);
        return;
    }
    if let Some(dst) = h.buf.get_mut(start..end) {
        dst.copy_from_slice(data);
    }
    if start <= h.filled {
        h.filled = h.filled.max(end);
        pieces_absorb(h);
    }
    // Each pass either stops or consumes bytes and absorbs a held piece: bounded by the pieces.
    for _ in 0..=MAX_PIECES + 1 {
        if h.filled < h.need {
            break;
        }
        let bytes = h.buf.get(..h.filled).unwrap_or_default();
        match on_head(Head {
            bytes,
            dir,
            ts_ns,
            cut: Cut::No,
            user,
        }) {
            Verdict::Done => {
                h.state = State::Done;
                pool.release(h);
                return;
            }
            Verdict::NeedMore(n) => h.need = n.max(h.filled + 1),
            Verdict::Advance(n) if n > MAX_ADVANCE || n == 0 => {
                if n == 0 {
                    h.need = h.filled + 1;
                } else {
                    h.state = State::Done;
                    pool.release(h);
                    return;
                }
            }
            Verdict::Advance(n) => {
                let held = h.filled.saturating_sub(n);
                advance(h, n);
                // Bytes the consumer has not seen yet (from absorbed pieces) call it again.
                h.need = held + 1;
                // Nothing left in hand: give the buffer back, so an idle keep-alive
                // connection does not keep its last message's memory charged.
                if h.filled == 0 && h.n_pieces == 0 {
                    pool.release(h);
                }
            }
        }
    }
    if h.filled >= head {
        stats.head_full += 1;
        stats.cap_hits += 1;
        cut(h, user, pool, dir, ts_ns, Cut::HeadFull, on_head);
    }
}

/// Drops the first `n` head bytes (`n` ≤ [`MAX_ADVANCE`]): the buffer and the held pieces move
/// down, pieces wholly consumed are forgotten, and a piece now at the front joins the head.
fn advance(h: &mut Half, n: usize) {
    h.base = h.base.wrapping_add(n as u32);
    if n >= h.buf.len() {
        h.buf.clear();
    } else {
        h.buf.copy_within(n.., 0);
        h.buf.truncate(h.buf.len() - n);
    }
    h.filled = h.filled.saturating_sub(n);
    let n32 = n as u32;
    let mut i = 0;
    // Each pass removes a piece or advances: bounded by MAX_PIECES.
    while i < h.n_pieces {
        let (ps, pe) = h.pieces.get(i).copied().unwrap_or((0, 0));
        if pe <= n32 {
            h.n_pieces -= 1;
            let last = h.pieces.get(h.n_pieces).copied().unwrap_or((0, 0));
            if let Some(p) = h.pieces.get_mut(i) {
                *p = last;
            }
        } else {
            if let Some(p) = h.pieces.get_mut(i) {
                *p = (ps.saturating_sub(n32), pe - n32);
            }
            i += 1;
        }
    }
    pieces_absorb(h);
}

/// Records an out-of-order piece, merging it with pieces it overlaps or touches; false when
/// the window is full.
fn pieces_add(h: &mut Half, mut s: u32, mut e: u32, max: usize) -> bool {
    let mut i = 0;
    // Each pass either removes a piece or advances: bounded by MAX_PIECES.
    while i < h.n_pieces {
        let (ps, pe) = h.pieces.get(i).copied().unwrap_or((0, 0));
        if ps <= e && s <= pe {
            s = s.min(ps);
            e = e.max(pe);
            h.n_pieces -= 1;
            let last = h.pieces.get(h.n_pieces).copied().unwrap_or((0, 0));
            if let Some(p) = h.pieces.get_mut(i) {
                *p = last;
            }
        } else {
            i += 1;
        }
    }
    if h.n_pieces >= max.min(MAX_PIECES) {
        return false;
    }
    if let Some(p) = h.pieces.get_mut(h.n_pieces) {
        *p = (s, e);
        h.n_pieces += 1;
    }
    true
}

/// Extends the in-order head over pieces it now reaches.
fn pieces_absorb(h: &mut Half) {
    let mut changed = true;
    while changed {
        changed = false;
        let mut i = 0;
        while i < h.n_pieces {
            let (ps, pe) = h.pieces.get(i).copied().unwrap_or((0, 0));
            if ps as usize <= h.filled {
                h.filled = h.filled.max(pe as usize);
                h.n_pieces -= 1;
                let last = h.pieces.get(h.n_pieces).copied().unwrap_or((0, 0));
                if let Some(p) = h.pieces.get_mut(i) {
                    *p = last;
                }
                changed = true;
            } else {
                i += 1;
            }
        }
    }
}

/// Fuzzing entry point: the input is a series of segments (`flags`, `seq` low byte, length,
/// payload) on two directions of one connection plus a few others; checks that the consumer
/// always sees a prefix of what was sent and that memory returns to zero after a flush.
pub fn fuzz_stream(data: &[u8]) {
    let a = IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, 1));
    let b = IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, 2));
    let mut r: StreamHeads<u32> = StreamHeads::new(StreamConfig {
        max_connections: 4,
        head_bytes: 64,
        max_total_bytes: 256,
        max_out_of_order: 3,
        idle_timeout_ns: 50,
        hash_seed: 1,
    });
    let mut rest = data;
    let mut t = 0u64;
    while let [f, s, l, tail @ ..] = rest {
        let len = usize::from(*l % 32).min(tail.len());
        let (payload, after) = tail.split_at(len);
        rest = after;
        t += 1;
        let (src, dst, sport, dport) = if f & 0x80 != 0 {
            (b, a, 443, 1000 + u16::from(f & 0x03))
        } else {
            (a, b, 1000 + u16::from(f & 0x03), 443)
        };
        r.segment(
            src,
            sport,
            dst,
            dport,
            0,
            u32::from(*s),
            f & 0x1f,
            payload,
            t,
            &mut |h| {
                *h.user += 1;
                if h.bytes.len() > 64 {
                    panic!("head longer than head_bytes");
                }
                if h.bytes.len() % 3 == 0 {
                    Verdict::Done
                } else {
                    Verdict::NeedMore(h.bytes.len() + 5)
                }
            },
        );
        assert!(r.buffered_bytes() <= 256);
        assert!(r.connections() <= 4);
        let s = r.stats();
        assert_eq!(
            s.cap_hits,
            s.evicted_cap + s.gaps + s.head_full + s.budget_refusals
        );
    }
    r.expire(u64::MAX, &mut |_| Verdict::Done);
    assert_eq!(r.connections(), 0);
    assert_eq!(r.buffered_bytes(), 0);
}

#[cfg(test)]
mod tests;
