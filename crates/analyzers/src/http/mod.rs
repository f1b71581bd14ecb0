//! The `http` handler: HTTP/1.x requests and responses read from every TCP connection that
//! speaks it — methods, status classes, hosts, paths, user agents, message sizes and the
//! request→response latency — on keep-alive connections, pipelined requests included.
//!
//! The handler owns a bounded stream reassembler ([`flow::stream`]) and reads each direction as
//! a stream of message heads: a head is parsed once complete, its body is skipped by length
//! (Content-Length or chunk sizes) without being buffered, and requests wait for their response
//! in a small per-connection FIFO (pipelining answers in order). A connection whose first bytes
//! are not HTTP costs one look and is then ignored. It does not read bodies, HTTP/2 or anything
//! after a protocol upgrade (101, CONNECT tunnels).

use std::collections::BTreeSet;
use std::net::IpAddr;

use flow::stream::{Cut, Head, StreamConfig, StreamHeads, StreamStats, Verdict};
use flow::tcp::Direction;
use metrics::quantiles::Quantiles;
use wire::http::{BodyLength, HttpError, chunk_line, parse_request, parse_response, trailer_len};

use crate::config::{ConfigError, ConfigMap, WindowConfig, resolve_groups};
use crate::export::Export;
use crate::sketch::{self, TopNames, TopU16};
use crate::window::{Bucket, Window};

/// Metric groups of the `http` handler.
pub const GROUPS: [&str; 7] = [
    "counters",
    "quantiles",
    "top_hosts",
    "top_paths",
    "top_status",
    "top_user_agents",
    "top_methods",
];

/// Requests waiting for their response per connection; more are counted, not queued.
pub const MAX_PENDING: usize = 16;
// The ring's indices are bytes.
const _: () = assert!(MAX_PENDING < 256);
/// Longest path kept in `top_paths` (longer ones are cut: a flood of long paths stays bounded).
pub const MAX_PATH: usize = 128;
/// Longest host and user agent kept.
const MAX_NAME: usize = 256;
/// Messages read per call: each consumes bytes, this only bounds one call's work.
const MAX_MESSAGES_PER_CALL: usize = 4096;

/// Method counters, in export order; anything else is `other`.
const METHODS: [&[u8]; 9] = [
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"PATCH", b"TRACE",
];

/// One period of HTTP summaries.
#[derive(Clone, Default)]
pub struct HttpBucket {
    pub requests: u64,
    pub responses: u64,
    /// Requests per method in [`METHODS`] order, then other methods.
    pub methods: [u64; 10],
    /// Responses per status class 1xx..5xx, then codes ≥ 600.
    pub status_classes: [u64; 6],
    /// Heads that could not be parsed (the direction is then dropped).
    pub malformed: u64,
    /// Final responses with no request waiting for them.
    pub unmatched: u64,
    /// Requests not queued because [`MAX_PENDING`] were already waiting.
    pub pending_full: u64,
    /// Directions that ended inside a message head or body.
    pub truncated: u64,
    pub reassembly_evictions: u64,
    pub reassembly_gaps: u64,
    pub reassembly_head_full: u64,
    pub reassembly_budget_refusals: u64,
    pub top_hosts: TopNames,
    pub top_paths: TopNames,
    pub top_user_agents: TopNames,
    pub top_methods: TopNames,
    pub top_status: TopU16,
    /// Request and response sizes (head + body), bytes.
    pub request_size: Quantiles,
    pub response_size: Quantiles,
    /// Request head complete → response head complete, microseconds.
    pub latency: Quantiles,
}

impl Bucket for HttpBucket {
    fn merge(&mut self, o: &Self) {
        self.requests += o.requests;
        self.responses += o.responses;
        for (a, b) in self.methods.iter_mut().zip(o.methods) {
            *a += b;
        }
        for (a, b) in self.status_classes.iter_mut().zip(o.status_classes) {
            *a += b;
        }
        self.malformed += o.malformed;
        self.unmatched += o.unmatched;
        self.pending_full += o.pending_full;
        self.truncated += o.truncated;
        self.reassembly_evictions += o.reassembly_evictions;
        self.reassembly_gaps += o.reassembly_gaps;
        self.reassembly_head_full += o.reassembly_head_full;
        self.reassembly_budget_refusals += o.reassembly_budget_refusals;
        self.top_hosts.merge(&o.top_hosts);
        self.top_paths.merge(&o.top_paths);
        self.top_user_agents.merge(&o.top_user_agents);
        self.top_methods.merge(&o.top_methods);
        self.top_status.merge(&o.top_status);
        self.request_size.merge(&o.request_size);
        self.response_size.merge(&o.response_size);
        self.latency.merge(&o.latency);
    }
}

/// Where a direction is in its message stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Body {
    /// Waiting for a message head.
    #[default]
    Head,
    /// Inside a chunked body, at a chunk-size line.
    Chunked,
    /// After the last chunk, in the trailer section.
    Trailer,
}

/// One direction's reading state.
#[derive(Clone, Copy, Debug, Default)]
struct Side {
    body: Body,
    /// Bytes of the current chunked message so far.
    size: u64,
    /// A head was parsed on this direction: it is HTTP.
    http: bool,
}

/// A request waiting for its response.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    ts_ns: u64,
    head: bool,
    connect: bool,
}

/// Pending requests are stored packed in one word: the time in the low 62 bits (nanoseconds
/// until the year 2116), the HEAD and CONNECT flags above.
const TS_MASK: u64 = (1 << 62) - 1;
const PACKED_HEAD: u64 = 1 << 62;
const PACKED_CONNECT: u64 = 1 << 63;

impl Pending {
    fn pack(self) -> u64 {
        self.ts_ns.min(TS_MASK)
            | if self.head { PACKED_HEAD } else { 0 }
            | if self.connect { PACKED_CONNECT } else { 0 }
    }

    fn unpack(w: u64) -> Self {
        Self {
            ts_ns: w & TS_MASK,
            head: w & PACKED_HEAD != 0,
            connect: w & PACKED_CONNECT != 0,
        }
    }
}

/// What the handler remembers of one connection: compact, as one lives in every tracked
/// connection's entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnState {
    req: Side,
    resp: Side,
    /// A ring of packed [`Pending`] requests.
    pending: [u64; MAX_PENDING],
    first: u8,
    len: u8,
    /// The connection switched protocol (101, CONNECT): both directions stop.
    upgraded: bool,
}

impl ConnState {
    fn push(&mut self, p: Pending) -> bool {
        let (first, len) = (usize::from(self.first), usize::from(self.len));
        if len >= MAX_PENDING {
            return false;
        }
        if let Some(slot) = self.pending.get_mut((first + len) % MAX_PENDING) {
            *slot = p.pack();
        }
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<Pending> {
        if self.len == 0 {
            return None;
        }
        let first = usize::from(self.first);
        let p = self.pending.get(first).copied().map(Pending::unpack);
        self.first = ((first + 1) % MAX_PENDING) as u8;
        self.len -= 1;
        p
    }
}

#[derive(Clone, Copy)]
struct Groups {
    quantiles: bool,
    top_hosts: bool,
    top_paths: bool,
    top_status: bool,
    top_user_agents: bool,
    top_methods: bool,
}

/// The `http` handler.
pub struct Http {
    pub window_config: WindowConfig,
    pub window: Window<HttpBucket>,
    group_set: BTreeSet<&'static str>,
    g: Groups,
    heads: StreamHeads<ConnState>,
    reported: StreamStats,
}

impl Http {
    pub const SCHEMA: &'static str = "http";

    /// Builds the handler; `max_connections`, `head_bytes` (longest message head) and
    /// `max_buffer_bytes` bound its reassembly (per worker).
    pub fn new(
        cfg: &ConfigMap,
        window_config: WindowConfig,
        enable: &[String],
        disable: &[String],
    ) -> Result<Self, ConfigError> {
        cfg.validate_keys(&["max_connections", "head_bytes", "max_buffer_bytes"])?;
        let set = resolve_groups(&GROUPS, &GROUPS, enable, disable)?;
        let g = Groups {
            quantiles: set.contains("quantiles"),
            top_hosts: set.contains("top_hosts"),
            top_paths: set.contains("top_paths"),
            top_status: set.contains("top_status"),
            top_user_agents: set.contains("top_user_agents"),
            top_methods: set.contains("top_methods"),
        };
        let mut sc = StreamConfig {
            // A message head; bodies are skipped, not buffered.
            head_bytes: 16 << 10,
            ..StreamConfig::default()
        };
        let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        if let Some(n) = cfg.uint("max_connections")? {
            sc.max_connections = as_usize(n);
        }
        if let Some(n) = cfg.uint("head_bytes")? {
            if !(64..=1 << 20).contains(&n) {
                return Err(ConfigError(
                    "head_bytes must be between 64 and 1048576".into(),
                ));
            }
            sc.head_bytes = as_usize(n);
        }
        if let Some(n) = cfg.uint("max_buffer_bytes")? {
            sc.max_total_bytes = as_usize(n);
        }
        Ok(Self {
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
            group_set: set,
            g,
            heads: StreamHeads::new(sc),
            reported: StreamStats::default(),
        })
    }

    /// Starts period `seq` and forgets idle connections.
    pub fn rotate_to(&mut self, seq: u32, ts_ns: u64) {
        self.window.rotate_to(seq);
        let (b, g) = (self.window.live(), self.g);
        self.heads.expire(ts_ns, &mut |h| on_head(h, b, g));
        self.report_stats();
    }

    /// Feeds one TCP segment. Returns whether the handler is finished with the connection
    /// (see [`StreamHeads::segment`]): until a SYN or RST of it, its other segments change
    /// nothing here and may be skipped.
    #[allow(clippy::too_many_arguments)] // the packet fields the reassembler needs
    pub fn on_segment(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        vlan: u16,
        seq: u32,
        tcp_flags: u8,
        payload: &[u8],
        ts_ns: u64,
    ) -> bool {
        self.on_segment_hinted(
            src, sport, dst, dport, vlan, seq, tcp_flags, payload, ts_ns, None,
        )
    }

    /// [`Self::on_segment`] with the caller's hint of where the reassembler holds the
    /// connection ([`flow::stream::Hint`], kept in the flows handler's entry for it).
    #[allow(clippy::too_many_arguments)] // the packet fields the reassembler needs
    pub fn on_segment_hinted(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        vlan: u16,
        seq: u32,
        tcp_flags: u8,
        payload: &[u8],
        ts_ns: u64,
        hint: Option<flow::stream::Hint<'_>>,
    ) -> bool {
        let (b, g) = (self.window.live(), self.g);
        let done = self.heads.segment_hinted(
            src,
            sport,
            dst,
            dport,
            vlan,
            seq,
            tcp_flags,
            payload,
            ts_ns,
            hint,
            &mut |h| on_head(h, b, g),
        );
        self.report_stats();
        done
    }

    /// Moves the reassembler's new cap hits into the live bucket.
    fn report_stats(&mut self) {
        // One counter compared per segment: the counters are copied only when a cap was hit.
        if self.heads.stats().cap_hits == self.reported.cap_hits {
            return;
        }
        let Some(hits) = self.heads.stats().cap_hits_since(&self.reported) else {
            return;
        };
        let now = *self.heads.stats();
        let b = self.window.live();
        b.reassembly_evictions += hits.evicted_cap;
        b.reassembly_gaps += hits.gaps;
        b.reassembly_head_full += hits.head_full;
        b.reassembly_budget_refusals += hits.budget_refusals;
        self.reported = now;
    }

    /// Connections tracked and bytes buffered by this handler's reassembler.
    pub fn reassembly_load(&self) -> (usize, usize) {
        (self.heads.connections(), self.heads.buffered_bytes())
    }

    pub fn export(&self, b: &HttpBucket) -> Export {
        let w = &self.window_config;
        let has = |g: &str| self.group_set.contains(g);
        let mut e = Export::default();
        if has("counters") {
            e.int(&["requests"], "Total HTTP requests", b.requests);
            e.int(&["responses"], "Total HTTP responses", b.responses);
            const NAMES: [&str; 10] = [
                "get", "post", "head", "put", "delete", "options", "connect", "patch", "trace",
                "other",
            ];
            for (name, n) in NAMES.iter().zip(b.methods) {
                e.int(&["methods", name], "Total HTTP requests by method", n);
            }
            const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
            for (name, n) in CLASSES.iter().zip(b.status_classes) {
                e.int(&["status", name], "Total HTTP responses by status class", n);
            }
            e.int(
                &["malformed"],
                "Total HTTP message heads that could not be parsed",
                b.malformed,
            );
            e.int(
                &["unmatched"],
                "Total HTTP final responses with no request waiting for them",
                b.unmatched,
            );
            e.int(
                &["pending_full"],
                "Total HTTP requests not matched because too many were waiting on their connection",
                b.pending_full,
            );
            e.int(
                &["truncated"],
                "Total HTTP stream directions that ended inside a message",
                b.truncated,
            );
            e.int(
                &["reassembly", "evictions"],
                "Total connections evicted from the full HTTP reassembly table",
                b.reassembly_evictions,
            );
            e.int(
                &["reassembly", "gaps"],
                "Total HTTP stream directions cut by a lost segment",
                b.reassembly_gaps,
            );
            e.int(
                &["reassembly", "head_full"],
                "Total HTTP stream directions cut by a message head longer than the cap",
                b.reassembly_head_full,
            );
            e.int(
                &["reassembly", "budget_refusals"],
                "Total HTTP stream directions cut because the reassembly byte budget was exhausted",
                b.reassembly_budget_refusals,
            );
        }
        if has("quantiles") {
            if let Some(v) = sketch::quantiles(&b.request_size) {
                e.push(
                    &["request_size"],
                    "Quantiles of HTTP request sizes in bytes",
                    v,
                );
            }
            if let Some(v) = sketch::quantiles(&b.response_size) {
                e.push(
                    &["response_size"],
                    "Quantiles of HTTP response sizes in bytes",
                    v,
                );
            }
            if let Some(v) = sketch::quantiles(&b.latency) {
                e.push(
                    &["latency"],
                    "Quantiles of HTTP latency (request head to response head) in microseconds",
                    v,
                );
            }
        }
        let mut top = |g: &str, key: &'static str, help: &'static str, v: &TopNames, label| {
            if has(g) {
                e.push(&[key], help, v.export(label, w));
            }
        };
        top(
            "top_hosts",
            "top_hosts",
            "Top HTTP request hosts",
            &b.top_hosts,
            "host",
        );
        top(
            "top_paths",
            "top_paths",
            "Top HTTP request paths (without query)",
            &b.top_paths,
            "path",
        );
        top(
            "top_user_agents",
            "top_user_agents",
            "Top HTTP request user agents",
            &b.top_user_agents,
            "user_agent",
        );
        top(
            "top_methods",
            "top_methods",
            "Top HTTP request methods",
            &b.top_methods,
            "method",
        );
        if has("top_status") {
            e.push(
                &["top_status"],
                "Top HTTP response status codes",
                b.top_status.export("status", w, |s| s.to_string()),
            );
        }
        e
    }
}

fn capped(v: &[u8], n: usize) -> &[u8] {
    v.get(..n).unwrap_or(v)
}

/// What reading one message head did.
enum Step {
    /// Consumed this many bytes (head, and body when it was all there).
    Used(usize),
    /// Consumed the head; the body runs this many bytes past the bytes held.
    Skip(usize),
    /// More bytes are needed.
    Wait,
    /// Stop reading this direction.
    Stop,
}

/// Reads one direction's new bytes: every complete message head, skipping bodies.
fn on_head(h: Head<'_, ConnState>, b: &mut HttpBucket, g: Groups) -> Verdict {
    let user = h.user;
    if user.upgraded {
        return Verdict::Done;
    }
    let requests = h.dir == Direction::Initiator;
    let mut used = 0usize;
    for _ in 0..MAX_MESSAGES_PER_CALL {
        let rest = h.bytes.get(used..).unwrap_or_default();
        let side = if requests { user.req } else { user.resp };
        let step = match side.body {
            Body::Head if rest.is_empty() => Step::Wait,
            Body::Head if requests => request(rest, h.ts_ns, user, b, g),
            Body::Head => response(rest, h.ts_ns, user, b, g),
            Body::Chunked => match chunk_line(rest) {
                Ok(None) => Step::Wait,
                Err(_) => {
                    b.malformed += 1;
                    Step::Stop
                }
                Ok(Some((0, n))) => {
                    let s = side_mut(user, requests);
                    s.size += n as u64;
                    s.body = Body::Trailer;
                    Step::Used(n)
                }
                Ok(Some((size, n))) => {
                    let total = (n as u64).saturating_add(size).saturating_add(2);
                    side_mut(user, requests).size += total;
                    skip_or_use(total, rest.len())
                }
            },
            Body::Trailer => match trailer_len(rest) {
                None => Step::Wait,
                Some(n) => {
                    let s = side_mut(user, requests);
                    s.size += n as u64;
                    s.body = Body::Head;
                    let size = s.size;
                    if g.quantiles {
                        if requests {
                            b.request_size.record(size);
                        } else {
                            b.response_size.record(size);
                        }
                    }
                    Step::Used(n)
                }
            },
        };
        match step {
            Step::Used(n) => used += n,
            Step::Skip(n) => return advance(used.saturating_add(n)),
            Step::Wait => break,
            Step::Stop => return Verdict::Done,
        }
    }
    if h.cut != Cut::No {
        let side = if requests { user.req } else { user.resp };
        if side.http && (used < h.bytes.len() || side.body != Body::Head) {
            b.truncated += 1;
        }
        return Verdict::Done;
    }
    if used == 0 {
        Verdict::NeedMore(h.bytes.len() + 1)
    } else {
        Verdict::Advance(used)
    }
}

fn advance(n: usize) -> Verdict {
    if n > flow::stream::MAX_ADVANCE {
        // A body too long to skip in one step (over a gigabyte): stop reading the direction.
        Verdict::Done
    } else {
        Verdict::Advance(n)
    }
}

fn side_mut(user: &mut ConnState, requests: bool) -> &mut Side {
    if requests {
        &mut user.req
    } else {
        &mut user.resp
    }
}

/// A body of `total` bytes at the start of `have` held bytes: consumed, or skipped past.
fn skip_or_use(total: u64, have: usize) -> Step {
    match usize::try_from(total) {
        Ok(t) if t <= have => Step::Used(t),
        Ok(t) => Step::Skip(t),
        Err(_) => Step::Stop,
    }
}

/// A message head after which the body follows as `body`; records fixed sizes at once.
fn framed(
    head_len: usize,
    body: BodyLength,
    have: usize,
    side: &mut Side,
    sizes: Option<&mut Quantiles>,
) -> Step {
    match body {
        BodyLength::None => {
            if let Some(q) = sizes {
                q.record(head_len as u64);
            }
            Step::Used(head_len)
        }
        BodyLength::Fixed(n) => {
            let total = (head_len as u64).saturating_add(n);
            if let Some(q) = sizes {
                q.record(total);
            }
            skip_or_use(total, have)
        }
        BodyLength::Chunked => {
            side.body = Body::Chunked;
            side.size = head_len as u64;
            Step::Used(head_len)
        }
        // The rest of the direction is the body: its size is not known until the close.
        BodyLength::UntilClose => Step::Stop,
    }
}

fn parse_failed(e: HttpError, side: &Side, b: &mut HttpBucket) -> Step {
    // A stream that never looked like HTTP is simply not HTTP; one that did broke framing.
    if e != HttpError::NotHttp || side.http {
        b.malformed += 1;
    }
    Step::Stop
}

// Requests and responses out of line: a call reads one direction, and inlined, the set-up of
// both would run for each.
#[inline(never)]
fn request(rest: &[u8], ts_ns: u64, user: &mut ConnState, b: &mut HttpBucket, g: Groups) -> Step {
    let r = match parse_request(rest) {
        Ok(Some(r)) => r,
        Ok(None) => return Step::Wait,
        Err(e) => return parse_failed(e, &user.req, b),
    };
    user.req.http = true;
    b.requests += 1;
    let m = METHODS
        .iter()
        .position(|m| *m == r.method)
        .unwrap_or(METHODS.len());
    if let Some(c) = b.methods.get_mut(m) {
        *c += 1;
    }
    // Methods, hosts and user agents mostly repeat the previous request's: their top lists
    // check that first (paths vary, and take the plain insert).
    if g.top_methods {
        b.top_methods.insert_repeating(capped(r.method, 32), 1);
    }
    // An empty Host field names nothing (tshark shows none either).
    if g.top_hosts
        && let Some(host) = r.host.filter(|h| !h.is_empty())
    {
        b.top_hosts.insert_repeating(capped(host, MAX_NAME), 1);
    }
    if g.top_paths {
        b.top_paths.insert(capped(r.path(), MAX_PATH), 1);
    }
    if g.top_user_agents
        && let Some(ua) = r.user_agent.filter(|u| !u.is_empty())
    {
        b.top_user_agents.insert_repeating(capped(ua, MAX_NAME), 1);
    }
    let queued = user.push(Pending {
        ts_ns,
        head: r.method == b"HEAD",
        connect: r.method == b"CONNECT",
    });
    if !queued {
        b.pending_full += 1;
    }
    let sizes = g.quantiles.then_some(&mut b.request_size);
    framed(r.head_len, r.body(), rest.len(), &mut user.req, sizes)
}

#[inline(never)]
fn response(rest: &[u8], ts_ns: u64, user: &mut ConnState, b: &mut HttpBucket, g: Groups) -> Step {
    let r = match parse_response(rest) {
        Ok(Some(r)) => r,
        Ok(None) => return Step::Wait,
        Err(e) => return parse_failed(e, &user.resp, b),
    };
    user.resp.http = true;
    b.responses += 1;
    let class = usize::from(r.status / 100).saturating_sub(1).min(5);
    if let Some(c) = b.status_classes.get_mut(class) {
        *c += 1;
    }
    if g.top_status {
        b.top_status.insert(r.status, 1);
    }
    // Interim responses (100 Continue, 103 Early Hints) precede the final one.
    let interim = r.status < 200 && r.status != 101;
    let mut req = Pending::default();
    if !interim {
        match user.pop() {
            Some(p) => {
                req = p;
                if g.quantiles {
                    b.latency.record(ts_ns.saturating_sub(p.ts_ns) / 1000);
                }
            }
            None => b.unmatched += 1,
        }
    }
    if r.status == 101 || (req.connect && (200..300).contains(&r.status)) {
        // The connection now carries another protocol.
        user.upgraded = true;
        return Step::Stop;
    }
    let sizes = g.quantiles.then_some(&mut b.response_size);
    framed(
        r.head_len,
        r.body(req.head),
        rest.len(),
        &mut user.resp,
        sizes,
    )
}

#[cfg(test)]
mod tests;
