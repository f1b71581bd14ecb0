//! A flood of distinct TCP flows through the whole default handler set (net, dns, pcap, dhcp,
//! flows, tls, http, quic): half of them a TLS handshake (ClientHello with its own server name,
//! then a TLS 1.3 ServerHello), half an HTTP exchange (GET of its own path, then a 200). The
//! flow, handshake, request and response counters equal what was written, and peak memory stays
//! under [`MAX_RSS_KIB`] although no flow, name or path is ever seen twice.
//!
//! The capture is generated here and streamed to the binary's stdin (never stored).
//! `ALL_FLOOD_FLOWS` overrides the number of flows (default 1 M).

mod support;

use support::flood::{run_read, tcp_record, u};

/// Flows in the default flood.
const DEFAULT_FLOWS: u32 = 1_000_000;
/// The memory cap of the default handler set at 1 M distinct flows, SNIs and HTTP paths, two
/// workers: per worker, the flows connection table (131 072 flows), the TLS and HTTP stream-head
/// tables (100 000 connections each, evictions counted), the top-N and cardinality sketches;
/// plus the reader's batches in flight. Measured: 222 MiB (329 MiB before stream entries kept
/// their out-of-order pieces out of line and HTTP packed its pending requests).
const MAX_RSS_KIB: u64 = 256 * 1024;
/// Microseconds between packets: the flood spans 20 s of packet time, so no flow idles out.
const GAP_US: u64 = 10;

fn flows() -> u32 {
    std::env::var("ALL_FLOOD_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_FLOWS)
}

const PSH_ACK: u8 = 0x18;
const SERVER: [u8; 4] = [192, 0, 2, 1];

/// The client of flow `i`: 10.0.0.0 + i, port 1024 + i mod 64 000.
fn client(i: u32) -> ([u8; 4], u16) {
    (
        (0x0a00_0000u32 + i).to_be_bytes(),
        1024 + (i % 64_000) as u16,
    )
}

fn sni(i: u32) -> String {
    format!("s{i:x}.flood.example")
}

/// A handshake record holding one message of type `t` with `body`.
fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![22, 3, 1];
    r.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    r.push(t);
    r.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    r.extend_from_slice(body);
    r
}

/// A TLS 1.2-framed ClientHello naming `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x5a; 32]);
    body.extend_from_slice(&[0, 0, 4, 0xc0, 0x2f, 0x13, 0x01, 1, 0]);
    let mut exts = vec![0, 0];
    exts.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    exts.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    exts.push(0);
    exts.extend_from_slice(&(name.len() as u16).to_be_bytes());
    exts.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    handshake(1, &body)
}

/// A ServerHello choosing TLS 1.3 (supported_versions) and TLS_AES_128_GCM_SHA256.
fn server_hello() -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x3c; 32]);
    body.extend_from_slice(&[0, 0x13, 0x01, 0]);
    body.extend_from_slice(&[0, 6, 0, 0x2b, 0, 2, 3, 4]);
    handshake(2, &body)
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// Writes flow `i` (two packets) into `out` (cleared first): even flows TLS to port 443, odd
/// flows HTTP to port 80.
fn flow(i: u32, out: &mut Vec<u8>) {
    out.clear();
    let (c, port) = client(i);
    let ts = 1_700_000_000_000_000u64 + u64::from(i) * 2 * GAP_US;
    let (ask, answer, sport) = if i.is_multiple_of(2) {
        (client_hello(&sni(i)), server_hello(), 443)
    } else {
        let req = format!("GET /flood/{i:07}?q=1 HTTP/1.1\r\nHost: flood.example\r\n\r\n");
        (req.into_bytes(), RESPONSE.to_vec(), 80)
    };
    tcp_record(out, ts, c, port, SERVER, sport, 1000, 5000, PSH_ACK, &ask);
    let ack = 1000 + ask.len() as u32;
    tcp_record(
        out,
        ts + GAP_US,
        SERVER,
        sport,
        c,
        port,
        5000,
        ack,
        PSH_ACK,
        &answer,
    );
}

#[test]
fn distinct_tls_and_http_flow_flood_is_counted_exactly_in_bounded_memory() {
    let n = flows();
    let run = run_read(
        &["read", "--periods", "1", "--no-progress", "--workers", "2"],
        move |w| {
            let mut buf = Vec::with_capacity(512);
            for i in 0..n {
                flow(i, &mut buf);
                w.write_all(&buf)?;
            }
            Ok(())
        },
    );
    eprintln!(
        "all flood: {n} flows ({:.0} MiB of capture) in {:.1} s, peak RSS {:.1} MiB",
        run.written as f64 / f64::from(1 << 20),
        run.elapsed.as_secs_f64(),
        run.peak_rss_kib as f64 / 1024.0
    );
    let root = &run.json["1m"];
    let n64 = u64::from(n);
    let tls_flows = n64.div_ceil(2);
    let http_flows = n64 / 2;
    assert_eq!(u(root, "packets.total"), 2 * n64);
    assert_eq!(u(root, "flows.packets"), 2 * n64);
    assert_eq!(u(root, "flows.flows.total"), n64);
    assert_eq!(u(root, "flows.flows.ended"), n64);
    assert_eq!(u(root, "tls.client_hellos"), tls_flows);
    assert_eq!(u(root, "tls.server_hellos"), tls_flows);
    assert_eq!(u(root, "tls.handshakes"), tls_flows);
    assert_eq!(u(root, "tls.client_hellos_without_sni"), 0);
    assert_eq!(u(root, "tls.malformed") + u(root, "tls.truncated"), 0);
    assert_eq!(u(root, "http.requests"), http_flows);
    assert_eq!(u(root, "http.responses"), http_flows);
    assert_eq!(u(root, "http.status.2xx"), http_flows);
    assert_eq!(u(root, "http.unmatched") + u(root, "http.malformed"), 0);
    let card = u(root, "tls.cardinality.sni");
    let err = (card as f64 - tls_flows as f64).abs() / tls_flows as f64;
    assert!(err <= 0.03, "sni cardinality {card} for {tls_flows}");
    let paths = root["http"]["top_paths"].as_array().expect("top_paths");
    assert!(!paths.is_empty() && paths.len() <= 10, "{paths:?}");
    assert!(
        paths.iter().all(|p| p["name"]
            .as_str()
            .is_some_and(|s| s.starts_with("/flood/") && !s.contains('?'))),
        "{paths:?}"
    );
    assert!(
        run.peak_rss_kib < MAX_RSS_KIB,
        "peak RSS {} KiB is not below {MAX_RSS_KIB} KiB",
        run.peak_rss_kib
    );
}

#[test]
fn generated_flows_are_well_formed() {
    let mut buf = Vec::new();
    flow(6, &mut buf);
    // Two records: a ClientHello to 443, then a ServerHello back.
    let first_len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    let hello = &buf[16 + 54..16 + first_len];
    assert_eq!(&hello[..3], &[22, 3, 1]);
    assert_eq!(
        usize::from(u16::from_be_bytes([hello[3], hello[4]])),
        hello.len() - 5
    );
    assert!(hello.ends_with(sni(6).as_bytes()));
    let second = &buf[16 + first_len..];
    let answer = &second[16 + 54..];
    assert_eq!(answer[5], 2, "a ServerHello");
    assert_eq!(
        u16::from_be_bytes([second[16 + 36], second[16 + 37]]),
        1024 + 6,
        "sent back to the client's port"
    );
    flow(7, &mut buf);
    let first_len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    assert!(buf[16 + 54..16 + first_len].starts_with(b"GET /flood/0000007?q=1 HTTP/1.1\r\n"));
    assert!(buf.ends_with(RESPONSE));
}
