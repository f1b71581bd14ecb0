//! A flood of TLS ClientHellos, each with its own server name and its own TCP flow, piped to
//! the `wirelens` binary with its default handlers: the hello count is exact, the SNI
//! cardinality close, the reassembly table stays capped (evictions counted) and peak memory
//! stays under [`MAX_RSS_KIB`].
//!
//! The capture is generated here and streamed to the binary's stdin while it runs, never
//! stored. `FLOOD_HELLOS` overrides the number of hellos (default 1 M).

mod support;

use support::flood::{run_read, u};

/// Hellos in the default flood.
const DEFAULT_HELLOS: u32 = 1_000_000;
/// Ceiling on the binary's peak resident set: the TLS reassembly table (at most 100 000
/// connections per worker, about 300 bytes each; a hello read in place buffers nothing), plus
/// the process's fixed costs. Measured: 67 MiB with two workers.
const MAX_RSS_KIB: u64 = 160 * 1024;
/// Largest relative error allowed of the SNI cardinality estimate.
const MAX_CARD_ERROR: f64 = 0.03;

fn hellos() -> u32 {
    std::env::var("FLOOD_HELLOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_HELLOS)
}

/// The server name of hello `i`.
fn sni(i: u32) -> String {
    format!("h{i:x}.flood.example")
}

/// Writes hello `i` as one pcap record into `out` (cleared first): an Ethernet/IPv4/TCP segment
/// from 10.0.0.0 + i, port 1024 + i mod 64 000, to 192.0.2.1:443 carrying one TLS record with a
/// TLS 1.2 ClientHello naming `sni(i)`, 20 µs after the previous one.
fn record(i: u32, out: &mut Vec<u8>) {
    out.clear();
    let ts_us = 1_700_000_000_000_000u64 + u64::from(i) * 20;
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    let frame_start = out.len();
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00]);
    let ip_start = out.len();
    out.extend_from_slice(&[0x45, 0, 0, 0]);
    out.extend_from_slice(&(i as u16).to_be_bytes());
    out.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
    out.extend_from_slice(&(0x0a00_0000u32 + i).to_be_bytes());
    out.extend_from_slice(&[192, 0, 2, 1]);
    let sport = 1024 + (i % 64_000) as u16;
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&443u16.to_be_bytes());
    out.extend_from_slice(&1000u32.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    // ClientHello body: version, random, empty session id, two suites, null compression.
    let name = sni(i);
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
    let hs_len = body.len() as u32;
    out.extend_from_slice(&[22, 3, 1]);
    out.extend_from_slice(&((hs_len + 4) as u16).to_be_bytes());
    out.push(1);
    out.extend_from_slice(&hs_len.to_be_bytes()[1..]);
    out.extend_from_slice(&body);
    let end = out.len();
    let ip_len = (end - ip_start) as u16;
    out[ip_start + 2..ip_start + 4].copy_from_slice(&ip_len.to_be_bytes());
    let frame_len = (end - frame_start) as u32;
    out[8..12].copy_from_slice(&frame_len.to_le_bytes());
    out[12..16].copy_from_slice(&frame_len.to_le_bytes());
}

#[test]
fn distinct_hello_flood_is_counted_exactly_in_bounded_memory() {
    let n = hellos();
    // The tls handler alone: this bounds the TLS analyzer's memory (the whole default set on
    // the same flood is bounded by all_flood).
    let policy =
        std::env::temp_dir().join(format!("wirelens-tls-flood-{}.yaml", std::process::id()));
    std::fs::write(
        &policy,
        "visor:\n  policies:\n    p:\n      kind: collection\n      input:\n        tap: t\n        input_type: pcap\n      handlers:\n        modules:\n          tls:\n            type: tls\n",
    )
    .expect("policy file");
    let policy_arg = policy.to_string_lossy().into_owned();
    let run = run_read(
        &[
            "read",
            "--periods",
            "1",
            "--no-progress",
            "--policy",
            &policy_arg,
        ],
        move |w| {
            let mut buf = Vec::with_capacity(256);
            for i in 0..n {
                record(i, &mut buf);
                w.write_all(&buf)?;
            }
            Ok(())
        },
    );
    let rss_kib = run.peak_rss_kib;
    eprintln!(
        "tls flood: {n} hellos in {:.1} s, peak RSS {:.1} MiB",
        run.elapsed.as_secs_f64(),
        rss_kib as f64 / 1024.0
    );

    let doc = run.json;
    let _ = std::fs::remove_file(&policy);
    let t = &doc["p"]["p-t-tls"]["tls"];
    assert_eq!(u(t, "client_hellos"), u64::from(n));
    assert_eq!(u(t, "client_hellos_without_sni"), 0);
    assert_eq!(u(t, "server_hellos"), 0);
    assert_eq!(u(t, "malformed") + u(t, "truncated"), 0);
    let card = u(t, "cardinality.sni");
    let err = (card as f64 - f64::from(n)).abs() / f64::from(n);
    assert!(err <= MAX_CARD_ERROR, "sni cardinality {card} for {n}");
    // Every flow is new: with at most 100 000 connections per worker, the table evicts.
    if n > 400_000 {
        assert!(u(t, "reassembly.evictions") > 0);
    }
    assert_eq!(u(t, "reassembly.budget_refusals"), 0);
    // Each hello was the only one of its name: the top list holds names with estimate 1.
    let top = t["top_sni"].as_array().expect("top_sni");
    assert!(!top.is_empty() && top.len() <= 10);
    assert!(top.iter().all(|i| {
        i["name"]
            .as_str()
            .is_some_and(|s| s.ends_with(".flood.example"))
    }));
    assert!(
        rss_kib < MAX_RSS_KIB,
        "peak RSS {rss_kib} KiB is not below {MAX_RSS_KIB} KiB"
    );
}

#[test]
fn generated_record_is_a_well_formed_hello() {
    let mut buf = Vec::new();
    record(0xab, &mut buf);
    let frame = &buf[16..];
    // IPv4 total length covers the frame after Ethernet.
    assert_eq!(
        usize::from(u16::from_be_bytes([frame[16], frame[17]])),
        frame.len() - 14
    );
    let payload = &frame[54..];
    // One handshake record exactly filling the segment, holding one ClientHello.
    assert_eq!(&payload[..3], &[22, 3, 1]);
    assert_eq!(
        usize::from(u16::from_be_bytes([payload[3], payload[4]])),
        payload.len() - 5
    );
    assert_eq!(payload[5], 1);
    let hs_len = u32::from_be_bytes([0, payload[6], payload[7], payload[8]]) as usize;
    assert_eq!(hs_len, payload.len() - 9);
    assert!(payload.ends_with(sni(0xab).as_bytes()));
}
