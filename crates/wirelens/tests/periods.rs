//! Period rotation and window merging on packet time, and the Prometheus rendering of a read.
//! The multi-minute input is made here from a fixture by shifting copies of it in time.

use std::path::PathBuf;

use serde_json::Value;

fn fixture(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/pktvisor")
        .join(name);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "shared/ fixtures are missing"
    );
    eprintln!("note: shared/ not found; skipping");
    None
}

/// Concatenates `copies` of a little-endian microsecond pcap, the k-th shifted by k × `step_s`.
fn shifted_copies(src: &[u8], copies: u32, step_s: u32) -> Vec<u8> {
    assert_eq!(
        &src[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "fixture is a little-endian usec pcap"
    );
    let mut out = src[..24].to_vec();
    for k in 0..copies {
        let mut at = 24;
        while at + 16 <= src.len() {
            let sec = u32::from_le_bytes(src[at..at + 4].try_into().unwrap());
            let incl = u32::from_le_bytes(src[at + 8..at + 12].try_into().unwrap()) as usize;
            out.extend_from_slice(&(sec + k * step_s).to_le_bytes());
            out.extend_from_slice(&src[at + 4..at + 16 + incl]);
            at += 16 + incl;
        }
    }
    out
}

fn read(args: &[&str]) -> String {
    let a = wirelens::read::parse_args(args.iter().copied()).expect("arguments parse");
    wirelens::read::summarize(&a).expect("read succeeds")
}

fn tmp(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("wirelens-periods-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn windows_merge_the_most_recent_periods() {
    let Some(f) = fixture("dns_ipv4_udp.pcap") else {
        return;
    };
    // Three copies 70 s apart: 140 packets (70 transactions) in each of three periods.
    let file = tmp(
        "three-minutes.pcap",
        &shifted_copies(&std::fs::read(f).unwrap(), 3, 70),
    );
    let start = 1_567_706_414u64;

    let v: Value = serde_json::from_str(&read(&["--periods", "2", &file])).unwrap();
    let p = &v["2m"]["packets"];
    // The two most recent periods: copies 2 and 3.
    assert_eq!(p["total"], 280);
    assert_eq!(p["period"]["start_ts"], start + 70);
    // Periods: [start, start+70) and [start+70, start+140), plus the live one to the last packet.
    assert_eq!(v["2m"]["dns"]["wire_packets"]["queries"], 140);
    assert_eq!(v["2m"]["dns"]["xact"]["counts"]["total"], 140);

    let v: Value = serde_json::from_str(&read(&["--periods", "5", &file])).unwrap();
    assert_eq!(v["5m"]["packets"]["total"], 420);
    assert_eq!(v["5m"]["packets"]["period"]["start_ts"], start);
    // Lengths add up: 70 + 70 + 6 seconds.
    assert_eq!(v["5m"]["packets"]["period"]["length"], 146);
    assert_eq!(v["5m"]["dns"]["cardinality"]["qname"], 70);

    let v: Value = serde_json::from_str(&read(&["--periods", "1", &file])).unwrap();
    assert_eq!(v["1m"]["packets"]["total"], 420);
    assert_eq!(v["1m"]["packets"]["period"]["length"], 146);

    // Sharding must not change a window: two workers give the same document as one.
    let one = read(&["--periods", "2", "--workers", "1", &file]);
    let two = read(&["--periods", "2", "--workers", "2", &file]);
    assert_eq!(one, two);
}

#[test]
fn queries_left_open_at_a_rotation_time_out() {
    let Some(f) = fixture("dns_ipv4_udp.pcap") else {
        return;
    };
    let src = std::fs::read(f).unwrap();
    // Keep only the queries of the first copy (UDP to port 53000 at frame offset 36), then a
    // whole copy 70 s later: the rotation purges the 70 unanswered queries.
    let mut queries_only = src[..24].to_vec();
    let mut at = 24;
    // A transaction is keyed by its flow and DNS id; a query reusing an open key replaces it,
    // so the open transactions are the distinct (source port, id) pairs.
    let mut keys = std::collections::HashSet::new();
    while at + 16 <= src.len() {
        let incl = u32::from_le_bytes(src[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &src[at + 16..at + 16 + incl];
        if frame.get(36..38) == Some(&53000u16.to_be_bytes()[..]) {
            queries_only.extend_from_slice(&src[at..at + 16 + incl]);
            keys.insert((frame[34..36].to_vec(), frame[42..44].to_vec()));
        }
        at += 16 + incl;
    }
    assert!(!keys.is_empty());
    let mut both = queries_only.clone();
    both.extend_from_slice(&shifted_copies(&src, 2, 70)[24 + (src.len() - 24)..]);
    let file = tmp("open-queries.pcap", &both);
    let v: Value = serde_json::from_str(&read(&["--periods", "2", &file])).unwrap();
    let x = &v["2m"]["dns"]["xact"]["counts"];
    assert_eq!(x["timed_out"], keys.len() as u64, "{v}");
    assert_eq!(x["total"], 70);
}

#[test]
fn prometheus_output_uses_pktvisor_names() {
    let Some(f) = fixture("dns_ipv4_udp.pcap") else {
        return;
    };
    let text = read(&[
        "--periods",
        "1",
        "--format",
        "prometheus",
        f.to_str().unwrap(),
    ]);
    for line in [
        "packets_udp{} 140",
        "packets_ipv4{} 140",
        "packets_ipv6{} 0",
        "dns_wire_packets_udp{} 140",
        "dns_wire_packets_ipv4{} 140",
        "dns_wire_packets_queries{} 70",
        "dns_wire_packets_replies{} 70",
        "# TYPE dns_xact_ratio_quantiles summary",
        "dns_top_qname2{qname=\".test.com\"} 140",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line {line:?}");
    }
    // One HELP and one TYPE per family.
    let mut seen = std::collections::HashSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(seen.insert(l.to_string()), "duplicate {l}");
    }
    assert!(seen.len() > 30);
}

#[test]
fn packet_filter_drops_frames_before_counting() {
    let Some(f) = fixture("dns_udp_tcp_random.pcap") else {
        return;
    };
    let f = f.to_str().unwrap();
    // tcpdump -r dns_udp_tcp_random.pcap udp | wc -l → 2971; tcp → 13176.
    for (expr, packets, dns) in [
        ("udp", 2971, 2971),
        ("tcp", 13176, 2880),
        ("host 8.8.8.8 and udp", 2971, 2971),
    ] {
        let v: Value = serde_json::from_str(&read(&["--periods", "1", "-b", expr, f])).unwrap();
        assert_eq!(v["1m"]["packets"]["total"], packets, "{expr}");
        assert_eq!(v["1m"]["dns"]["wire_packets"]["total"], dns, "{expr}");
    }
    // Nothing passes: every handler still reports, with zeros.
    let v: Value = serde_json::from_str(&read(&["--periods", "1", "-b", "arp", f])).unwrap();
    assert_eq!(v["1m"]["packets"]["total"], 0);
    assert_eq!(v["1m"]["dns"]["wire_packets"]["total"], 0);
    let a = wirelens::read::parse_args(["-b", "port 53 and (", f]).unwrap();
    let e = format!("{:#}", wirelens::read::summarize(&a).unwrap_err());
    assert!(e.contains("bad packet filter: syntax error at 13"), "{e}");
}

#[test]
fn undecodable_frames_are_counted_and_reported_by_reason() {
    let Some(f) = fixture("dns_ipv4_udp.pcap") else {
        return;
    };
    // An 802.11 capture: its link type is not decoded, every frame still counts as a packet.
    let wifi = f
        .parent()
        .unwrap()
        .join("../../corpus/arkime/80211http.pcap");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wirelens"))
        .args(["read", "--periods", "1", "--no-progress"])
        .arg(&wifi)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["1m"]["packets"]["total"], 26);
    assert_eq!(v["1m"]["packets"]["other_l4"], 26);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not decoded: 26 frames: unsupported link type"),
        "{err}"
    );
}
