//! A flood of unanswered DNS queries piped to the `wirelens` binary: the counters are exact,
//! the distinct-name and distinct-source estimates are close, and peak memory stays bounded
//! although every query opens a transaction that is never answered.
//!
//! The capture is generated here (a minimal pcap writer), streamed to the binary's stdin while
//! it runs, and never stored. `FLOOD_QUERIES` overrides the number of queries (default 1 M).

mod support;

use support::flood::{run_read, u};

/// Queries in the default flood.
const DEFAULT_QUERIES: u32 = 1_000_000;
/// Ceiling on the binary's peak resident set.
const MAX_RSS_KIB: u64 = 256 * 1024;
/// Largest relative error allowed of a cardinality estimate.
const MAX_CARD_ERROR: f64 = 0.03;

fn queries() -> u32 {
    std::env::var("FLOOD_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_QUERIES)
}

/// Writes query `i` as one pcap record into `out` (cleared first): an Ethernet/IPv4/UDP frame
/// from 10.0.0.0 + i, port 1024 + i mod 64,000, to 192.0.2.53:53, asking A for a name unique to
/// `i`, 100 µs after the previous query.
fn record(i: u32, out: &mut Vec<u8>) {
    out.clear();
    let ts_us = 1_700_000_000_000_000u64 + u64::from(i) * 100;
    let sec = (ts_us / 1_000_000) as u32;
    let usec = (ts_us % 1_000_000) as u32;
    // Record header, lengths filled in below.
    out.extend_from_slice(&sec.to_le_bytes());
    out.extend_from_slice(&usec.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    let frame_start = out.len();
    // Ethernet.
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x53, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    // IPv4 (no options, checksum left 0: nothing on the receive path checks it).
    let ip_start = out.len();
    out.extend_from_slice(&[0x45, 0, 0, 0]);
    out.extend_from_slice(&(i as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
    out.extend_from_slice(&(0x0a00_0000u32 + i).to_be_bytes());
    out.extend_from_slice(&[192, 0, 2, 53]);
    // UDP.
    let udp_start = out.len();
    let sport = 1024 + (i % 64_000) as u16;
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&53u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    // DNS query: id, RD, one question "q<i in hex>.flood.example" A IN.
    out.extend_from_slice(&(i as u16).to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let label = format!("q{i:x}");
    out.push(label.len() as u8);
    out.extend_from_slice(label.as_bytes());
    out.push(5);
    out.extend_from_slice(b"flood");
    out.push(7);
    out.extend_from_slice(b"example");
    out.push(0);
    out.extend_from_slice(&[0, 1, 0, 1]);
    let end = out.len();
    let ip_len = (end - ip_start) as u16;
    out[ip_start + 2..ip_start + 4].copy_from_slice(&ip_len.to_be_bytes());
    let udp_len = (end - udp_start) as u16;
    out[udp_start + 4..udp_start + 6].copy_from_slice(&udp_len.to_be_bytes());
    let frame_len = (end - frame_start) as u32;
    out[8..12].copy_from_slice(&frame_len.to_le_bytes());
    out[12..16].copy_from_slice(&frame_len.to_le_bytes());
}

fn assert_close(what: &str, estimate: u64, truth: u32) {
    let err = (estimate as f64 - f64::from(truth)).abs() / f64::from(truth);
    assert!(
        err <= MAX_CARD_ERROR,
        "{what}: estimate {estimate} is {:.2} % away from {truth}",
        err * 100.0
    );
}

#[test]
fn unanswered_query_flood_is_counted_exactly_in_bounded_memory() {
    let n = queries();
    let args = [
        "read",
        "--periods",
        "1",
        "--no-progress",
        "-H",
        "192.0.2.0/24",
    ];
    let run = run_read(&args, move |w| {
        let mut buf = Vec::with_capacity(128);
        for i in 0..n {
            record(i, &mut buf);
            w.write_all(&buf)?;
        }
        Ok(())
    });
    let rss_kib = run.peak_rss_kib;
    eprintln!(
        "flood: {n} queries, {:.1} MiB of capture in {:.1} s, peak RSS {:.1} MiB",
        run.written as f64 / (1 << 20) as f64,
        run.elapsed.as_secs_f64(),
        rss_kib as f64 / 1024.0
    );

    let doc = run.json;
    let root = &doc["1m"];
    assert_eq!(u(root, "dns.wire_packets.queries"), u64::from(n));
    assert_eq!(u(root, "dns.wire_packets.replies"), 0);
    assert_eq!(u(root, "dns.wire_packets.udp"), u64::from(n));
    assert_eq!(u(root, "packets.total"), u64::from(n));
    assert_eq!(u(root, "packets.udp"), u64::from(n));
    assert_eq!(u(root, "packets.in"), u64::from(n));
    assert_close("dns.cardinality.qname", u(root, "dns.cardinality.qname"), n);
    assert_close(
        "packets.cardinality.src_ips_in",
        u(root, "packets.cardinality.src_ips_in"),
        n,
    );
    assert!(
        rss_kib < MAX_RSS_KIB,
        "peak RSS {rss_kib} KiB is not below {MAX_RSS_KIB} KiB"
    );
}

#[test]
fn generated_record_is_a_well_formed_query() {
    let mut buf = Vec::new();
    record(0x1234, &mut buf);
    // Record header: caplen = origlen = frame length.
    let caplen = u32::from_le_bytes(buf[8..12].try_into().unwrap()) as usize;
    assert_eq!(caplen, buf.len() - 16);
    let frame = &buf[16..];
    // IPv4 total length and UDP length agree with the frame.
    assert_eq!(
        usize::from(u16::from_be_bytes([frame[16], frame[17]])),
        frame.len() - 14
    );
    assert_eq!(
        usize::from(u16::from_be_bytes([frame[38], frame[39]])),
        frame.len() - 34
    );
    // Source 10.0.18.52, port 1024 + 0x1234, question "q1234.flood.example".
    assert_eq!(&frame[26..30], &[10, 0, 0x12, 0x34]);
    assert_eq!(u16::from_be_bytes([frame[34], frame[35]]), 1024 + 0x1234);
    assert_eq!(&frame[54..60], b"\x05q1234");
}
