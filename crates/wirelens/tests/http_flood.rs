//! A flood of HTTP requests with distinct paths piped to the `wirelens` binary: 1,000
//! keep-alive connections of 1,000 requests each (1 M distinct paths), every request answered.
//! The request, response and status counters are exact, the path top list stays capped, and
//! peak memory stays bounded although every path is new.
//!
//! The capture is generated here and streamed to the binary's stdin, never stored.
//! `HTTP_FLOOD_REQUESTS` overrides the number of requests (default 1 M).

mod support;

use std::io::Write;

use serde_json::Value;
use support::flood::{run_read, tcp_record, u};

const DEFAULT_REQUESTS: u32 = 1_000_000;
const PER_CONNECTION: u32 = 1_000;
/// Ceiling on the binary's peak resident set.
const MAX_RSS_KIB: u64 = 256 * 1024;

fn requests() -> u32 {
    std::env::var("HTTP_FLOOD_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS)
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

/// Writes the whole flood (after the global header) to `w`.
fn write_flood(w: &mut dyn Write, n: u32) -> std::io::Result<()> {
    let server = [192, 0, 2, 80];
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let mut buf = Vec::with_capacity(1 << 16);
    let mut ts = 1_700_000_000_000_000u64;
    let conns = n.div_ceil(PER_CONNECTION);
    for c in 0..conns {
        let client = [10, 1, (c >> 8) as u8, c as u8];
        let port = 20_000 + (c % 40_000) as u16;
        let (mut cseq, mut sseq) = (1_000u32, 9_000u32);
        buf.clear();
        tcp_record(
            &mut buf,
            ts,
            client,
            port,
            server,
            80,
            cseq - 1,
            0,
            SYN,
            &[],
        );
        tcp_record(
            &mut buf,
            ts,
            server,
            80,
            client,
            port,
            sseq - 1,
            0,
            SYN | ACK,
            &[],
        );
        w.write_all(&buf)?;
        for r in 0..PER_CONNECTION.min(n - c * PER_CONNECTION) {
            let i = c * PER_CONNECTION + r;
            ts += 50;
            let req = format!("GET /flood/{i:07}?x=1 HTTP/1.1\r\nHost: flood.example\r\n\r\n");
            buf.clear();
            tcp_record(
                &mut buf,
                ts,
                client,
                port,
                server,
                80,
                cseq,
                0,
                PSH_ACK,
                req.as_bytes(),
            );
            cseq = cseq.wrapping_add(req.len() as u32);
            ts += 50;
            tcp_record(
                &mut buf, ts, server, 80, client, port, sseq, 0, PSH_ACK, response,
            );
            sseq = sseq.wrapping_add(response.len() as u32);
            w.write_all(&buf)?;
        }
    }
    Ok(())
}

#[test]
fn distinct_path_flood_is_counted_exactly_in_bounded_memory() {
    let n = requests();
    let run = run_read(&["read", "--periods", "1", "--no-progress"], move |w| {
        write_flood(w, n)
    });
    let rss_kib = run.peak_rss_kib;
    let doc = run.json;
    let http = doc
        .as_object()
        .and_then(|m| m.values().find_map(|v| v.get("http")))
        .expect("http section");
    eprintln!(
        "http flood: {n} requests, peak RSS {:.1} MiB",
        rss_kib as f64 / 1024.0
    );
    assert_eq!(u(http, "requests"), u64::from(n));
    assert_eq!(u(http, "responses"), u64::from(n));
    assert_eq!(u(http, "methods.get"), u64::from(n));
    assert_eq!(u(http, "status.2xx"), u64::from(n));
    assert_eq!(u(http, "unmatched"), 0);
    assert_eq!(u(http, "malformed"), 0);
    let paths = http
        .get("top_paths")
        .and_then(Value::as_array)
        .expect("top_paths");
    assert!(paths.len() <= 10, "top list capped: {}", paths.len());
    assert!(
        paths.iter().all(|p| p["name"]
            .as_str()
            .is_some_and(|s| s.starts_with("/flood/") && !s.contains('?'))),
        "{paths:?}"
    );
    let hosts = http.get("top_hosts").expect("top_hosts");
    assert_eq!(hosts[0]["name"], "flood.example");
    assert_eq!(hosts[0]["estimate"].as_u64(), Some(u64::from(n)));
    assert!(
        rss_kib < MAX_RSS_KIB,
        "peak RSS {rss_kib} KiB is not below {MAX_RSS_KIB} KiB"
    );
}
