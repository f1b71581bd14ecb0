//! Differential test of the filter compiler against tcpdump (libpcap) on shared captures.
//!
//! For each capture and expression, the frames kept by `Program::matches` must be exactly
//! the frames tcpdump writes with `tcpdump -r FILE -w - EXPR` (same order, same bytes), and
//! an expression tcpdump refuses for a link type must be refused here too. Host expressions
//! use addresses taken from each capture so they match something.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use inputs::file::CaptureFile;
use wire::bpf::Program;
use wire::capture::LinkType;
use wire::packet::decode;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "shared reference data missing at {}",
        dir.display()
    );
    eprintln!(
        "note: {} not found, skipping the tcpdump comparison",
        dir.display()
    );
    None
}

fn have_tcpdump() -> bool {
    let ok = Command::new("tcpdump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok || !in_ci(), "tcpdump is not installed");
    if !ok {
        eprintln!("note: tcpdump not found, skipping the tcpdump comparison");
    }
    ok
}

/// Captures covering every supported link type, VLAN tags, IPv6 and IPv4 fragments.
const FILES: &[&str] = &[
    "fixtures/pktvisor/dns_udp_tcp_random.pcap",
    "fixtures/pktvisor/dns_ipv6_udp.pcap",
    "fixtures/pktvisor/dns_ipv6_tcp.pcap",
    "fixtures/pktvisor/dns_ipv4_tcp.pcap",
    "fixtures/pktvisor/ipfix.pcap",
    "fixtures/pktvisor/dhcp-flow.pcap",
    "fixtures/pktvisor/dhcpv6.pcap",
    "fixtures/pktvisor/sflow_ipv6.pcap",
    "corpus/dnscap/vlan11.pcap",
    "corpus/ndpi/pcap/netbios.pcap",
    "corpus/ndpi/pcap/stun.pcap",
    "corpus/ndpi/pcap/smtp-starttls.pcap",
    "corpus/arkime/arkime_synthetic.pcap",
    "corpus/ndpi/pcap/android.pcap",
    "corpus/suricata-verify/defrag/bug-6887-defrag-eth-vlan-ipv6-tcp/frag-eth-vlan-ipv6-tcp.pcap",
    "corpus/dnscap/frags.pcap",
    "corpus/ndpi/pcap/ocs.pcap",
    "corpus/dnsjit/pellets.pcap",
    "corpus/gopacket/pcap/test_loopback.pcap",
    "corpus/arkime/http2-nghttp2.pcap",
    "corpus/ndpi/pcap/log4j-webapp-exploit.pcap",
    "corpus/ndpi/pcap/tls_heur__shadowsocks-tcp.pcapng",
    "corpus/zeek/Traces/linux_dlt_sll2.pcap",
    "corpus/suricata-verify/decode-sll2-01/input.pcap",
];

/// Expressions compared on every capture.
const EXPRS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "port 53",
    "udp port 53",
    "tcp dst port 443",
    "src port 53 or src port 443",
    "udp dst portrange 1024-65535",
    "portrange 1-1023",
    "ip6 and udp",
    "ip and not udp",
    "proto 17",
    "ip proto 6",
    "ip6 proto 58",
    "not tcp and not udp",
    "tcp or udp and port 53",
    "(tcp or udp) and not (port 53 or port 443)",
    "net 10.0.0.0/8",
    "src net 192.168.0.0/16 or dst net 172.16.0.0/12",
    "net fe80::/10",
    "dst net ff00::/8",
    "net 10",
    "less 100",
    "greater 500",
    "less 200 and udp",
    "vlan",
    "vlan and udp",
    "vlan 11 and port 53",
    "vlan and ip6",
    "not vlan",
    "ip[0] = 0x45",
    "src and dst net 10.0.0.0/8",
    "ip6 src net 2001::/16 or ip6 dst net 2a00::/8",
    "udp src or dst port 53",
    "greater 1000 or less 60",
    "not ip and not ip6",
    "icmp or icmp6",
    "port 0x35 or port 0443",
    "portrange 53-53",
    "ip proto \\udp",
    "rarp or arp",
    "tcp dst port 80 or 443 or 8080",
    "! (udp || tcp) && ip",
];

/// The matching frames as (wire length, bytes), in order.
type Frames = Vec<(u32, Vec<u8>)>;

fn read_all(mut f: CaptureFile) -> Result<Vec<(LinkType, u32, Vec<u8>)>, String> {
    let mut out = Vec::new();
    loop {
        match f.next_record() {
            Ok(Some(r)) => out.push((r.link, r.orig_len, r.data.to_vec())),
            Ok(None) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// What tcpdump keeps, or `Err(stderr)` when it refuses the expression.
fn tcpdump(file: &Path, expr: &str) -> Result<Frames, String> {
    let out = Command::new("tcpdump")
        .arg("-r")
        .arg(file)
        .args(["-nn", "-w", "-", expr])
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("rejects all packets") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        return Err(stderr);
    }
    let f = CaptureFile::from_reader(Box::new(Cursor::new(out.stdout)), "tcpdump".into())
        .map_err(|e| format!("reading tcpdump output: {e}"))?;
    Ok(read_all(f)?
        .into_iter()
        .map(|(_, len, data)| (len, data))
        .collect())
}

/// Addresses to build host expressions from: the first IPv4 and IPv6 source seen.
fn sample_hosts(frames: &[(LinkType, u32, Vec<u8>)]) -> Vec<String> {
    let mut v4 = None;
    let mut v6 = None;
    for (link, _, data) in frames {
        if let Ok(p) = decode(*link, data) {
            match p.src {
                IpAddr::V4(a) if v4.is_none() => v4 = Some(a.to_string()),
                IpAddr::V6(a) if v6.is_none() => v6 = Some(a.to_string()),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    if let Some(a) = v4 {
        out.push(format!("host {a}"));
        out.push(format!("src host {a} and udp"));
        out.push(format!("dst {a} or arp"));
        out.push(format!("ip host {a} and not port 53"));
        out.push(format!("not host {a}"));
    }
    if let Some(a) = v6 {
        out.push(format!("host {a}"));
        out.push(format!("ip6 dst host {a}"));
        out.push(format!("src or dst {a} and tcp"));
    }
    out
}

#[test]
fn matches_agree_with_tcpdump() {
    let Some(shared) = shared_dir() else { return };
    if !have_tcpdump() {
        return;
    }
    let mut compared = 0usize;
    let mut matched_frames = 0usize;
    let mut refused_both = 0usize;
    let mut failures = Vec::new();
    let mut links = BTreeSet::new();
    for rel in FILES {
        let path = shared.join(rel);
        let frames = match CaptureFile::open(&path) {
            Ok(f) => read_all(f).unwrap_or_else(|e| panic!("{rel}: {e}")),
            Err(e) => {
                assert!(!in_ci(), "{rel}: {e}");
                eprintln!("note: {rel} skipped: {e}");
                continue;
            }
        };
        let Some(&(link, ..)) = frames.first() else {
            continue;
        };
        links.insert(link.number());
        let mut exprs: Vec<String> = EXPRS.iter().map(|s| s.to_string()).collect();
        exprs.extend(sample_hosts(&frames));
        for expr in &exprs {
            let want = tcpdump(&path, expr);
            let prog = Program::compile(expr, link);
            match (want, prog) {
                (Ok(want), Ok(prog)) => {
                    let got: Frames = frames
                        .iter()
                        .filter(|(_, len, data)| prog.matches(data, *len))
                        .map(|(_, len, data)| (*len, data.clone()))
                        .collect();
                    compared += 1;
                    matched_frames += got.len();
                    if got != want {
                        failures.push(format!(
                            "{rel} [{}] '{expr}': wirelens {} frames, tcpdump {}",
                            link.number(),
                            got.len(),
                            want.len()
                        ));
                    }
                }
                (Err(_), Err(_)) => refused_both += 1,
                (Ok(want), Err(e)) => {
                    // Unsupported syntax (`ip[0]`) is fine to refuse; anything else is not.
                    if !expr.contains('[') {
                        failures.push(format!(
                            "{rel} '{expr}': refused ({e}) but tcpdump keeps {} frames",
                            want.len()
                        ));
                    } else {
                        refused_both += 1;
                    }
                }
                (Err(e), Ok(_)) => {
                    failures.push(format!("{rel} '{expr}': tcpdump refuses ({})", e.trim()))
                }
            }
        }
    }
    eprintln!(
        "compared {compared} (file, expression) pairs over link types {links:?}, \
         {matched_frames} matching frames, {refused_both} refused by both"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if !in_ci() && compared == 0 {
        return;
    }
    assert!(compared >= 500, "only {compared} comparisons ran");
    // Ethernet, NULL, raw IP (101 and 228), SLL and SLL2 all took part.
    for n in [1, 0, 101, 113, 276] {
        assert!(links.contains(&n), "no capture of link type {n}: {links:?}");
    }
}
