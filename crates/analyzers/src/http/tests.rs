//! Tests of the `http` handler over hand-built TCP streams: keep-alive, pipelining, bodies by
//! length and chunked, heads split across segments, upgrades, non-HTTP streams.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use flow::tcp::flags;

const C: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
const S: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

fn handler() -> Http {
    Http::new(&ConfigMap::new(), WindowConfig::default(), &[], &[]).expect("builds")
}

/// A connection with its next sequence numbers.
struct Conn {
    cseq: u32,
    sseq: u32,
    port: u16,
}

impl Conn {
    fn open(h: &mut Http, port: u16) -> Self {
        h.on_segment(C, port, S, 80, 0, 999, flags::SYN, &[], 0);
        h.on_segment(S, 80, C, port, 0, 4999, flags::SYN | flags::ACK, &[], 0);
        Conn {
            cseq: 1000,
            sseq: 5000,
            port,
        }
    }
    fn client(&mut self, h: &mut Http, data: &[u8], ts_ns: u64) {
        h.on_segment(C, self.port, S, 80, 0, self.cseq, flags::ACK, data, ts_ns);
        self.cseq = self.cseq.wrapping_add(data.len() as u32);
    }
    fn server(&mut self, h: &mut Http, data: &[u8], ts_ns: u64) {
        h.on_segment(S, 80, C, self.port, 0, self.sseq, flags::ACK, data, ts_ns);
        self.sseq = self.sseq.wrapping_add(data.len() as u32);
    }
}

const GET: &[u8] = b"GET /a?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n";

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn keep_alive_pipelined_requests_match_responses_in_order() {
    let mut h = handler();
    let mut c = Conn::open(&mut h, 40_000);
    // Three pipelined requests in one segment, one with a body.
    let mut reqs = GET.to_vec();
    reqs.extend_from_slice(
        b"POST /b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\nabcd",
    );
    reqs.extend_from_slice(b"HEAD /c HTTP/1.1\r\nHost: other.example\r\n\r\n");
    c.client(&mut h, &reqs, 1_000_000);
    // Responses: one with a body split over segments, one chunked, one HEAD answer whose
    // Content-Length announces no body.
    let r1 = ok("hello world");
    c.server(&mut h, &r1[..r1.len() - 5], 3_000_000);
    c.server(&mut h, &r1[r1.len() - 5..], 3_000_000);
    c.server(
        &mut h,
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        4_000_000,
    );
    c.server(
        &mut h,
        b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
        5_000_000,
    );
    // Keep-alive: another request later on the same connection.
    c.client(&mut h, GET, 10_000_000);
    c.server(&mut h, &ok("x"), 12_000_000);

    let b = h.window.live().clone();
    assert_eq!(b.requests, 4);
    assert_eq!(b.responses, 4);
    assert_eq!(b.methods[..3], [2, 1, 1]);
    assert_eq!(b.status_classes, [0, 3, 0, 1, 0, 0]);
    assert_eq!((b.unmatched, b.malformed, b.truncated), (0, 0, 0));
    assert_eq!(b.latency.count(), 4);
    assert_eq!(h.reassembly_load().1, 0, "bodies are skipped, not buffered");
    let e = h.export(&b);
    let json = format!("{e:?}");
    assert!(json.contains("example.com"), "{json}");
    assert!(json.contains("/a"));
    assert!(!json.contains("q=1"), "query dropped from paths");
}

#[test]
fn heads_split_byte_by_byte() {
    let mut h = handler();
    let mut c = Conn::open(&mut h, 40_001);
    for i in 0..GET.len() {
        c.client(&mut h, &GET[i..i + 1], 1);
    }
    let r = ok("body");
    for i in 0..r.len() {
        c.server(&mut h, &r[i..i + 1], 2);
    }
    let b = h.window.live();
    assert_eq!((b.requests, b.responses, b.unmatched), (1, 1, 0));
}

#[test]
fn non_http_streams_are_ignored_and_garbage_after_http_is_malformed() {
    let mut h = handler();
    let mut c = Conn::open(&mut h, 40_002);
    c.client(&mut h, b"\x16\x03\x01\x00\x05hello", 1);
    c.server(&mut h, b"SSH-2.0-x\r\n", 1);
    let b = h.window.live();
    assert_eq!((b.requests, b.responses, b.malformed), (0, 0, 0));
    let mut c = Conn::open(&mut h, 40_003);
    c.client(&mut h, GET, 1);
    c.client(&mut h, b"\x00\x01garbage\r\n\r\n", 1);
    let b = h.window.live();
    assert_eq!((b.requests, b.malformed), (1, 1));
}

#[test]
fn upgrade_stops_reading_both_directions() {
    let mut h = handler();
    let mut c = Conn::open(&mut h, 40_004);
    c.client(
        &mut h,
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        1,
    );
    c.server(
        &mut h,
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x05hello",
        2,
    );
    c.client(&mut h, b"GET /not-http-any-more HTTP/1.1\r\n\r\n", 3);
    let b = h.window.live();
    assert_eq!((b.requests, b.responses, b.status_classes[0]), (1, 1, 1));
}

#[test]
fn responses_without_requests_and_interim_responses() {
    let mut h = handler();
    // Capture started mid-connection: no SYN, the response is seen first.
    h.on_segment(S, 80, C, 40_005, 0, 77, flags::ACK, &ok("x"), 1);
    let mut c = Conn::open(&mut h, 40_006);
    c.client(
        &mut h,
        b"POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        1,
    );
    c.server(&mut h, b"HTTP/1.1 100 Continue\r\n\r\n", 2);
    c.client(&mut h, b"ok", 3);
    c.server(&mut h, &ok(""), 4);
    let b = h.window.live();
    assert_eq!(b.unmatched, 1);
    assert_eq!((b.requests, b.responses), (1, 3));
    assert_eq!(b.status_classes[..2], [1, 2]);
    assert_eq!(b.latency.count(), 1);
}

#[test]
fn pending_requests_are_capped() {
    let mut h = handler();
    let mut c = Conn::open(&mut h, 40_007);
    for _ in 0..MAX_PENDING + 4 {
        c.client(&mut h, GET, 1);
    }
    let b = h.window.live();
    assert_eq!(b.requests, (MAX_PENDING + 4) as u64);
    assert_eq!(b.pending_full, 4);
}

#[test]
fn pending_requests_round_trip_packed_in_order() {
    let mut c = ConnState::default();
    let reqs = [
        Pending {
            ts_ns: 1_700_000_000_123_456_789,
            head: true,
            connect: false,
        },
        Pending {
            ts_ns: 5,
            head: false,
            connect: true,
        },
        Pending {
            ts_ns: u64::MAX,
            head: true,
            connect: true,
        },
    ];
    for _ in 0..3 {
        // Wraps the ring more than once.
        for _ in 0..MAX_PENDING / 3 {
            for p in reqs {
                assert!(c.push(p));
            }
            for p in reqs {
                let got = c.pop().expect("queued");
                assert_eq!(got.ts_ns, p.ts_ns.min(TS_MASK));
                assert_eq!((got.head, got.connect), (p.head, p.connect));
            }
        }
    }
    for i in 0..MAX_PENDING {
        assert!(c.push(Pending {
            ts_ns: i as u64,
            ..Pending::default()
        }));
    }
    assert!(!c.push(Pending::default()), "full ring refuses");
    assert_eq!(c.pop().map(|p| p.ts_ns), Some(0));
    // The per-connection state stays small: it lives in every tracked connection.
    assert!(size_of::<ConnState>() <= 176);
}
