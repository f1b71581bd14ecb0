//! The connection table against tshark's conversation statistics: for each capture, the packet
//! and byte counts per TCP and UDP conversation and direction in wirelens' flow log equal
//! `tshark -q -z conv,tcp -z conv,udp`.
//!
//! Conversations are keyed by protocol and endpoint pair; records of one key (a flow cut by a
//! port reuse, the two halves of a conversation tshark splits) are summed on both sides, so
//! the comparison is about counting, not about where a flow ends. tshark prints byte counts
//! above 9999 rounded to kB or MB: those are compared within the rounding.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Captures compared: pktvisor fixtures and nDPI corpus captures with plain TCP and UDP (no
/// ICMP errors quoting transport headers, which tshark counts into the quoted conversation, and
/// no IP fragments, which tshark counts once reassembled).
const CAPTURES: &[&str] = &[
    "fixtures/pktvisor/dns_ipv4_tcp.pcap",
    "fixtures/pktvisor/dns_ipv6_tcp.pcap",
    "fixtures/pktvisor/dns_ipv4_udp.pcap",
    "fixtures/pktvisor/dns_ipv6_udp.pcap",
    "fixtures/pktvisor/dns_udp_tcp_random.pcap",
    "corpus/ndpi/pcap/443-chrome.pcap",
    "corpus/ndpi/pcap/443-curl.pcap",
    "corpus/ndpi/pcap/443-firefox.pcap",
    "corpus/ndpi/pcap/443-safari.pcap",
    "corpus/ndpi/pcap/quic.pcap",
    "corpus/ndpi/pcap/ssh.pcap",
    "corpus/ndpi/pcap/mysql.pcapng",
    "corpus/ndpi/pcap/bittorrent_utp.pcap",
    "corpus/ndpi/pcap/ftp.pcap",
    "corpus/ndpi/pcap/imap.pcap",
    "corpus/ndpi/pcap/pop3.pcap",
    "corpus/ndpi/pcap/mqtt.pcap",
    "corpus/ndpi/pcap/sip.pcap",
    "corpus/ndpi/pcap/rtp.pcapng",
];

/// (proto, left endpoint, right endpoint).
type Key = (String, String, String);
/// Key → [packets left→right, right→left, bytes l→r, r→l].
type Conv = BTreeMap<Key, [u64; 4]>;
/// Key → (frames ->, <-), (byte bounds ->, <-) as tshark prints them.
type TsharkConv = BTreeMap<Key, ([u64; 2], [(u64, u64); 2])>;

/// A byte count as tshark prints it: exact, or the lower and upper bound of a rounded value.
fn bytes_range(n: u64, unit: &str) -> (u64, u64) {
    let scale = match unit {
        "bytes" => return (n, n),
        "kB" => 1_000,
        "MB" => 1_000_000,
        _ => 1_000_000_000,
    };
    (n.saturating_sub(1) * scale, (n + 1) * scale)
}

/// Parses tshark's conversation tables: key → ([frames ->, frames <-], [(bytes ->), (bytes <-)]).
fn tshark_convs(path: &PathBuf) -> TsharkConv {
    let out = Command::new("tshark")
        .args(["-n", "-q", "-z", "conv,tcp", "-z", "conv,udp", "-r"])
        .arg(path)
        .output()
        .expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut proto = "";
    let mut convs = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("TCP Conversations") {
            proto = "tcp";
        } else if line.starts_with("UDP Conversations") {
            proto = "udp";
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 11 || w[1] != "<->" {
            continue;
        }
        let num = |i: usize| w[i].parse::<u64>().unwrap_or(0);
        // a <-> b | frames bytes unit (<-) | frames bytes unit (->) | total ...
        let back = ([num(3)], bytes_range(num(4), w[5]));
        let fwd = ([num(6)], bytes_range(num(7), w[8]));
        let e = convs
            .entry((proto.to_string(), w[0].to_string(), w[2].to_string()))
            .or_insert(([0, 0], [(0, 0), (0, 0)]));
        e.0[0] += fwd.0[0];
        e.0[1] += back.0[0];
        e.1[0].0 += fwd.1.0;
        e.1[0].1 += fwd.1.1;
        e.1[1].0 += back.1.0;
        e.1[1].1 += back.1.1;
    }
    convs
}

/// Reads the flow log of one run into conversations oriented like `tshark` (any orientation:
/// both are stored).
fn our_convs(log: &str) -> Conv {
    let mut convs = Conv::new();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("flow log line is JSON");
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let n = |k: &str| v[k].as_u64().unwrap_or_default();
        let ep = |ip: String, port: u64| format!("{ip}:{port}");
        let (a, b) = (ep(s("src"), n("sport")), ep(s("dst"), n("dport")));
        let c = [
            n("packets_src"),
            n("packets_dst"),
            n("bytes_src"),
            n("bytes_dst"),
        ];
        let e = convs.entry((s("proto"), a.clone(), b.clone())).or_default();
        for i in 0..4 {
            e[i] += c[i];
        }
        let e = convs.entry((s("proto"), b, a)).or_default();
        for (i, j) in [(0, 1), (1, 0), (2, 3), (3, 2)] {
            e[i] += c[j];
        }
    }
    convs
}

#[test]
fn conversations_match_tshark() {
    if !support::tool_runs("tshark") {
        return support::missing("tshark");
    }
    let log = std::env::temp_dir().join(format!("wirelens-conv-{}.jsonl", std::process::id()));
    let mut compared = 0;
    for rel in CAPTURES {
        let path = support::shared_dir().join(rel);
        if !path.is_file() {
            support::missing(rel);
            continue;
        }
        let args = wirelens::read::parse_args([
            "--workers",
            "2",
            "--no-progress",
            "--flow-log",
            log.to_str().unwrap_or_default(),
            path.to_str().unwrap_or_default(),
        ])
        .expect("arguments");
        wirelens::read::summarize(&args).expect("read runs");
        let ours = our_convs(&std::fs::read_to_string(&log).expect("flow log"));
        let theirs = tshark_convs(&path);
        assert!(!theirs.is_empty(), "{rel}: tshark found no conversation");
        // Every tshark conversation, with the sum of both orientations in ours.
        let mut mine_total = 0u64;
        for ((proto, a, b), (frames, bytes)) in &theirs {
            let key = (proto.clone(), a.clone(), b.clone());
            let got = ours.get(&key).copied().unwrap_or_default();
            assert_eq!(
                [got[0], got[1]],
                *frames,
                "{rel}: {proto} {a} <-> {b} packets (->, <-)"
            );
            for d in 0..2 {
                let (lo, hi) = bytes[d];
                assert!(
                    (lo..=hi).contains(&got[2 + d]),
                    "{rel}: {proto} {a} <-> {b} bytes {} not in tshark's {lo}..={hi}",
                    got[2 + d]
                );
            }
            mine_total += got[0] + got[1];
        }
        // And nothing more: ours holds each conversation twice (both orientations).
        let ours_total: u64 = ours.values().map(|c| c[0] + c[1]).sum::<u64>() / 2;
        assert_eq!(
            ours_total, mine_total,
            "{rel}: packets outside tshark's conversations"
        );
        println!(
            "{rel}: {} conversations, {mine_total} packets agree",
            theirs.len()
        );
        compared += 1;
    }
    let _ = std::fs::remove_file(&log);
    assert!(compared > 0 || !support::in_ci());
}
