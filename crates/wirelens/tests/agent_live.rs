//! Live capture end to end: the agent captures on one end of a veth pair with AF_PACKET rings
//! in a hash fanout group (two workers), `tcpreplay` sends a capture file into the other end,
//! and the counts served by the REST API equal those `wirelens read` prints for the same file:
//! nothing lost, nothing counted twice, and both directions of every DNS-over-TCP conversation
//! reassembled in one worker. Both ends live in network namespaces the test creates and
//! deletes; nothing is sent anywhere else.

mod agent_common;
mod support;

use std::process::Command;
use std::time::Duration;

use agent_common::{Agent, bin, fixture};
use serde_json::Value;

/// Two namespaces joined by a veth pair, deleted on drop (which deletes the pair).
struct Lab {
    tx: String,
    rx: String,
}

const TX_IF: &str = "wltx";
const RX_IF: &str = "wlrx";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip starts");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    fn new(name: &str) -> Lab {
        let pid = std::process::id();
        let lab = Lab {
            tx: format!("wlag-{name}-{pid}-tx"),
            rx: format!("wlag-{name}-{pid}-rx"),
        };
        for ns in [&lab.tx, &lab.rx] {
            ip(&["netns", "add", ns]);
            // No IPv6: the kernel would send its own router and neighbour messages, which
            // are not in the file and would be counted.
            ip(&[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        ip(&[
            "link", "add", TX_IF, "netns", &lab.tx, "type", "veth", "peer", "name", RX_IF, "netns",
            &lab.rx,
        ]);
        ip(&["-n", &lab.tx, "link", "set", TX_IF, "up"]);
        ip(&["-n", &lab.rx, "link", "set", RX_IF, "up"]);
        // The agent's REST API listens on the receiving namespace's own loopback.
        ip(&["-n", &lab.rx, "link", "set", "lo", "up"]);
        lab
    }

    /// Sends `file` into the veth at a rate two busy cores keep up with; returns how many
    /// frames went out.
    fn replay(&self, file: &std::path::Path) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.tx,
                "tcpreplay",
                "-i",
                TX_IF,
                "--pps",
                "20000",
            ])
            .arg(file)
            .output()
            .expect("tcpreplay starts");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "tcpreplay: {text}");
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Successful packets:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no packet count in tcpreplay output: {text}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.tx, &self.rx] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn prerequisites() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        support::missing("root (network namespaces and AF_PACKET sockets)");
        return false;
    }
    for tool in ["ip", "tcpreplay", "curl"] {
        let ok = Command::new(tool)
            .arg(if tool == "ip" { "-V" } else { "--version" })
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            support::missing(tool);
            return false;
        }
    }
    true
}

/// The handler object of `schema` ("packets", "dns") in a policy's metrics document.
fn handler<'a>(doc: &'a Value, policy: &str, schema: &str) -> &'a Value {
    doc[policy]
        .as_object()
        .and_then(|m| m.values().find_map(|h| h.get(schema)))
        .unwrap_or_else(|| panic!("no {schema} handler in {doc}"))
}

/// The counters that do not depend on timing (rates and latencies do: tcpreplay sends at its
/// own pace).
const NET: &[&[&str]] = &[
    &["total"],
    &["udp"],
    &["tcp"],
    &["ipv4"],
    &["ipv6"],
    &["other_l4"],
    &["in"],
    &["out"],
    &["unknown_dir"],
    &["top_ipv4"],
];
const DNS: &[&[&str]] = &[
    &["wire_packets", "total"],
    &["wire_packets", "queries"],
    &["wire_packets", "replies"],
    &["wire_packets", "udp"],
    &["wire_packets", "tcp"],
    &["wire_packets", "noerror"],
    &["wire_packets", "nodata"],
    &["wire_packets", "nxdomain"],
    &["xact", "counts", "total"],
    &["top_qname2"],
    &["top_qname3"],
];

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

#[test]
fn live_capture_counts_equal_read() {
    if !prerequisites() {
        return;
    }
    let file = fixture("dns_udp_tcp_random.pcap");
    let out = Command::new(bin())
        .args(["read", "--periods", "1", "--workers", "2", "--no-progress"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let want: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want_net = &want["1m"]["packets"];
    let want_dns = &want["1m"]["dns"];
    assert_eq!(want_net["total"], 16147);

    let lab = Lab::new("live");
    let agent = Agent::start_in(Some(&lab.rx), &[RX_IF, "--workers", "2"]);
    let sent = lab.replay(&file);
    assert_eq!(sent, 16147);

    // The frames arrive within a ring timeout of the last one sent.
    let got = agent.wait_json(
        "/api/v1/policies/default/metrics/bucket/0",
        Duration::from_secs(20),
        |v| v["default"].is_object() && handler(v, "default", "packets")["total"] == 16147,
    );
    let net = handler(&got, "default", "packets");
    let dns = handler(&got, "default", "dns");
    for path in NET {
        assert_eq!(at(net, path), at(want_net, path), "packets {path:?}");
    }
    for path in DNS {
        assert_eq!(at(dns, path), at(want_dns, path), "dns {path:?}");
    }
    // The pcap handler reports the kernel's drop counters: none at this rate.
    let taps = agent.get_json("/api/v1/taps/default");
    assert!(taps.is_object(), "{taps}");
    let pcap = handler(&got, "default", "pcap");
    assert_eq!(pcap["os_drops"], 0, "{pcap}");
    assert_eq!(pcap["if_drops"], 0, "{pcap}");

    // Nothing counted twice after the replay: the total stays put.
    std::thread::sleep(Duration::from_millis(300));
    let again = agent.get_json("/api/v1/policies/default/metrics/bucket/0");
    assert_eq!(handler(&again, "default", "packets")["total"], 16147);
}
