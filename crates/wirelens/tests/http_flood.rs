//! A flood of HTTP requests with distinct paths piped to the `wirelens` binary: 1,000
//! keep-alive connections of 1,000 requests each (1 M distinct paths), every request answered.
//! The request, response and status counters are exact, the path top list stays capped, and
//! peak memory stays bounded although every path is new.
//!
//! The capture is generated here and streamed to the binary's stdin, never stored.
//! `HTTP_FLOOD_REQUESTS` overrides the number of requests (default 1 M).

mod support;

use std::io::{BufWriter, Read, Write};
use std::process::{Command, Stdio};

use serde_json::Value;

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

fn pcap_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&65_535u32.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

/// Appends one Ethernet/IPv4/TCP frame as a pcap record.
#[allow(clippy::too_many_arguments)]
fn tcp_record(
    out: &mut Vec<u8>,
    ts_us: u64,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    flags: u8,
    payload: &[u8],
) {
    let len = 14 + 20 + 20 + payload.len();
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&((20 + 20 + payload.len()) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

/// Writes the whole flood to `w`.
fn write_flood(w: &mut impl Write, n: u32) -> std::io::Result<()> {
    w.write_all(&pcap_header())?;
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
        tcp_record(&mut buf, ts, client, port, server, 80, cseq - 1, SYN, &[]);
        tcp_record(
            &mut buf,
            ts,
            server,
            80,
            client,
            port,
            sseq - 1,
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
                PSH_ACK,
                req.as_bytes(),
            );
            cseq = cseq.wrapping_add(req.len() as u32);
            ts += 50;
            tcp_record(
                &mut buf, ts, server, 80, client, port, sseq, PSH_ACK, response,
            );
            sseq = sseq.wrapping_add(response.len() as u32);
            w.write_all(&buf)?;
        }
    }
    Ok(())
}

fn u(v: &Value, path: &str) -> u64 {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {path} in output"))
}

#[test]
fn distinct_path_flood_is_counted_exactly_in_bounded_memory() {
    let gnu_time = std::path::Path::new("/usr/bin/time");
    if !gnu_time.exists() {
        return support::missing("/usr/bin/time");
    }
    let n = requests();
    let rss_file =
        std::env::temp_dir().join(format!("wirelens-http-flood-{}.rss", std::process::id()));
    let mut child = Command::new(gnu_time)
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(support::wirelens_bin())
        .args(["read", "--periods", "1", "--no-progress", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn wirelens");
    let stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let mut w = BufWriter::with_capacity(1 << 20, stdin);
        write_flood(&mut w, n).and_then(|()| w.flush())
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read output");
    let status = child.wait().expect("wait");
    assert!(status.success(), "wirelens failed");
    writer.join().expect("writer").expect("write flood");
    let rss_text = std::fs::read_to_string(&rss_file).expect("rss");
    let _ = std::fs::remove_file(&rss_file);
    let rss_kib: u64 = rss_text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .expect("peak rss");

    let doc: Value = serde_json::from_str(&out).expect("json");
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
