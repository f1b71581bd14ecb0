//! A flood of distinct flows piped to the `wirelens` binary with a flow log: every flow is
//! counted, evictions are exact (each worker's table holds its cap, the rest is evicted),
//! every record is either written or counted as dropped, and peak memory stays under
//! [`MAX_RSS_KIB`] although no flow is ever seen twice.
//!
//! The capture is generated here and streamed to the binary's stdin. `FLOOD_FLOWS` overrides
//! the number of flows (default 1 M).

mod support;

use std::io::{BufRead, BufReader};

use serde_json::Value;
use support::flood::{run_read, u};

/// Flows in the default flood.
const DEFAULT_FLOWS: u32 = 1_000_000;
/// Workers of the run (each has its own table).
const WORKERS: u64 = 2;
/// Flows a worker's table holds (`flow::conn::ConnConfig::default().max_flows`).
const TABLE_CAP: u64 = 131_072;
/// Ceiling on the binary's peak resident set: two full connection tables (~30 MB each), the
/// net/dns/pcap handlers' sketches, the reader's batches in flight and the flow log queue
/// (65,536 records of ~130 bytes). Measured: 90 MiB.
const MAX_RSS_KIB: u64 = 160 * 1024;
/// Payload of every datagram.
const PAYLOAD: &[u8] = b"flood";

fn flows() -> u32 {
    std::env::var("FLOOD_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_FLOWS)
}

/// Frame length of every datagram: Ethernet 14 + IPv4 20 + UDP 8 + payload.
const FRAME_LEN: u64 = 14 + 20 + 8 + PAYLOAD.len() as u64;

/// Datagram `i`: from 10.0.0.0 + i, port 1024 + i mod 64,000, to 192.0.2.1:9999, 10 µs apart
/// (the whole flood lasts 10 s of packet time: no flow reaches the idle timeout).
fn record(i: u32, out: &mut Vec<u8>) {
    out.clear();
    let ts_us = 1_700_000_000_000_000u64 + u64::from(i) * 10;
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(FRAME_LEN as u32).to_le_bytes());
    out.extend_from_slice(&(FRAME_LEN as u32).to_le_bytes());
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x53, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    let ip_len = (20 + 8 + PAYLOAD.len()) as u16;
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&ip_len.to_be_bytes());
    out.extend_from_slice(&(i as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
    out.extend_from_slice(&(0x0a00_0000u32 + i).to_be_bytes());
    out.extend_from_slice(&[192, 0, 2, 1]);
    out.extend_from_slice(&(1024 + (i % 64_000) as u16).to_be_bytes());
    out.extend_from_slice(&9999u16.to_be_bytes());
    out.extend_from_slice(&((8 + PAYLOAD.len()) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(PAYLOAD);
}

#[test]
fn distinct_flow_flood_is_counted_exactly_in_bounded_memory() {
    let n = flows();
    let log =
        std::env::temp_dir().join(format!("wirelens-flows-flood-{}.jsonl", std::process::id()));
    let workers = WORKERS.to_string();
    let log_arg = log.to_string_lossy().into_owned();
    let run = run_read(
        &[
            "read",
            "--periods",
            "1",
            "--no-progress",
            "--workers",
            &workers,
            "--flow-log",
            &log_arg,
        ],
        move |w| {
            let mut buf = Vec::with_capacity(96);
            for i in 0..n {
                record(i, &mut buf);
                w.write_all(&buf)?;
            }
            Ok(())
        },
    );
    let (elapsed, peak_kib, doc) = (run.elapsed, run.peak_rss_kib, run.json);
    let f = &doc["1m"]["flows"];
    let n64 = u64::from(n);
    assert_eq!(u(f, "packets"), n64);
    assert_eq!(u(f, "bytes"), n64 * FRAME_LEN);
    assert_eq!(u(f, "flows.total"), n64);
    assert_eq!(u(f, "flows.ended"), n64);
    assert_eq!(u(f, "flows.idle_timeouts"), 0);
    let kept = (WORKERS * TABLE_CAP).min(n64);
    if n64 >= 4 * WORKERS * TABLE_CAP {
        // The flow hash spreads a million flows evenly: each worker overflows its table.
        assert_eq!(u(f, "flows.evicted"), n64 - kept);
    }

    // Every record is in the log or counted as dropped; reasons add up.
    let file = std::fs::File::open(&log).expect("flow log");
    let (mut lines, mut evicted, mut remaining, mut packets) = (0u64, 0u64, 0u64, 0u64);
    for line in BufReader::new(file).lines() {
        let line = line.expect("line");
        let v: Value = serde_json::from_str(&line).expect("flow log JSON");
        lines += 1;
        packets += u(&v, "packets_src") + u(&v, "packets_dst");
        match v["end"].as_str() {
            Some("evicted") => evicted += 1,
            Some("remaining") => remaining += 1,
            other => panic!("unexpected end reason {other:?}"),
        }
    }
    let _ = std::fs::remove_file(&log);
    let dropped = u(f, "flows.log_dropped");
    assert_eq!(lines + dropped, n64, "records written + dropped");
    assert_eq!(packets + dropped, n64, "one packet per flow");
    if dropped == 0 {
        assert_eq!(evicted, u(f, "flows.evicted"));
        assert_eq!(remaining, kept);
    }
    println!(
        "{n} flows in {:.1} s: peak RSS {} MiB, log lines {lines}, dropped {dropped}, evicted {}",
        elapsed.as_secs_f64(),
        peak_kib / 1024,
        u(f, "flows.evicted")
    );
    assert!(
        peak_kib <= MAX_RSS_KIB,
        "peak RSS {peak_kib} KiB over {MAX_RSS_KIB} KiB"
    );
}
