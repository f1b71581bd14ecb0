//! Differential test of wirelens' DHCP message-type counters against tshark, on every capture
//! of the pktvisor fixtures and the public corpus whose manifest lists DHCP or DHCPv6.
//!
//! tshark dissects each capture and prints, per frame, the DHCPv4 message type
//! (`dhcp.option.dhcp`) and every DHCPv6 message type (`dhcpv6.msgtype`, which repeats for
//! the messages a relay carries). `wirelens read --periods 1 FILE` must report the same number
//! of messages of each type in `dhcp.wire_packets`. A capture whose counts differ for a
//! justified reason carries that difference in [`EXPECTED_DIFF`], next to the reason.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// wirelens' counter name of each DHCPv4 message type 1-8.
const V4_NAMES: [&str; 8] = [
    "discover", "offer", "request", "decline", "ack", "nak", "release", "inform",
];
/// wirelens' counter name of each DHCPv6 message type 1-13.
const V6_NAMES: [&str; 13] = [
    "solicit",
    "advertise",
    "request_v6",
    "confirm",
    "renew",
    "rebind",
    "reply",
    "release_v6",
    "decline_v6",
    "reconfigure",
    "information_request",
    "relay_forw",
    "relay_repl",
];

/// Captures (relative to `shared/`) where wirelens and tshark differ on purpose, with the
/// signed difference (wirelens minus tshark) per counter.
const EXPECTED_DIFF: &[(&str, &[(&str, i64)])] = &[
    // Frames 2 and 4 (OFFER, ACK) were cut by the snap length (315 of 342 bytes). tshark gives
    // up on the whole message ("DHCP/BOOTP truncated"); wirelens reads the options that were
    // captured, option 53 among them, and counts the message by its type.
    (
        "corpus/gopacket/pcapng-suite/be/test012.pcapng",
        &[("offer", 1), ("ack", 1)],
    ),
    (
        "corpus/gopacket/pcapng-suite/le/test012.pcapng",
        &[("offer", 1), ("ack", 1)],
    ),
    // A crafted packet whose IPv4 header has More Fragments set: tshark dissects the lone first
    // fragment, wirelens holds it for reassembly and the datagram never completes (as for DNS).
    (
        "corpus/tcpdump/dhcp6_reconf_asan.pcap",
        &[("relay_repl", -1)],
    ),
    // 802.11 frames: wirelens does not decode the 802.11 link layer.
    ("corpus/tcpdump/ieee802.11_htc.pcap", &[("discover", -1)]),
];

type Counts = BTreeMap<&'static str, u64>;

/// Every capture to check: the two pktvisor DHCP fixtures, then every corpus capture whose
/// manifest row lists dhcp or dhcpv6 among its protocols.
fn captures(shared: &Path) -> Vec<String> {
    let mut out = vec![
        "fixtures/pktvisor/dhcp-flow.pcap".to_string(),
        "fixtures/pktvisor/dhcpv6.pcap".to_string(),
    ];
    let manifest = std::fs::read_to_string(shared.join("corpus/MANIFEST.md")).unwrap_or_default();
    for line in manifest.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `path` | size | link | packets | time | protocols | source | licence |
        let (Some(path), Some(link), Some(protos)) = (cols.get(1), cols.get(3), cols.get(6)) else {
            continue;
        };
        let Some(path) = path.strip_prefix('`').and_then(|p| p.strip_suffix('`')) else {
            continue;
        };
        if *link == "—" || link.starts_with("unreadable") {
            continue;
        }
        let listed = protos
            .split(" — ")
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .any(|p| p == "dhcp" || p == "dhcpv6");
        if listed && !path.starts_with("pktvisor/") {
            out.push(format!("corpus/{path}"));
        }
    }
    out
}

/// tshark's message-type counts for one capture.
fn tshark_counts(path: &Path) -> Result<Counts, String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-T",
            "fields",
            "-e",
            "dhcp.option.dhcp",
            "-e",
            "dhcpv6.msgtype",
        ])
        .output()
        .map_err(|e| format!("tshark: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut c = Counts::new();
    for line in text.lines() {
        let mut cols = line.split('\t');
        let v4 = cols.next().unwrap_or_default();
        let v6 = cols.next().unwrap_or_default();
        // The first option 53 of a message is its type (wirelens reads the first occurrence).
        if let Some(t) = v4
            .split(',')
            .next()
            .and_then(|s| s.trim().parse::<usize>().ok())
            && let Some(name) = t.checked_sub(1).and_then(|i| V4_NAMES.get(i))
        {
            *c.entry(name).or_default() += 1;
        }
        for t in v6.split(',').filter_map(|s| s.trim().parse::<usize>().ok()) {
            if let Some(name) = t.checked_sub(1).and_then(|i| V6_NAMES.get(i)) {
                *c.entry(name).or_default() += 1;
            }
        }
    }
    Ok(c)
}

/// wirelens' counts for one capture.
fn wirelens_counts(path: &Path) -> Result<Counts, String> {
    let out = Command::new(support::wirelens_bin())
        .args(["read", "--periods", "1", "--no-progress"])
        .arg(path)
        .output()
        .map_err(|e| format!("wirelens: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "wirelens failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let wp = &v["1m"]["dhcp"]["wire_packets"];
    let mut c = Counts::new();
    for name in V4_NAMES.iter().chain(V6_NAMES.iter()) {
        let n = wp[*name]
            .as_u64()
            .ok_or(format!("no wire_packets.{name}"))?;
        if n > 0 {
            c.insert(name, n);
        }
    }
    Ok(c)
}

#[test]
fn message_type_counts_equal_tshark_on_every_dhcp_capture() {
    if !support::tool_runs("tshark") {
        return support::missing("tshark");
    }
    let shared = support::shared_dir();
    if !shared.join("corpus/MANIFEST.md").is_file() {
        return support::missing("shared/corpus");
    }
    let list = captures(&shared);
    assert!(
        list.len() > 20,
        "manifest lists {} DHCP captures",
        list.len()
    );
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let checked = AtomicUsize::new(0);
    let with_dhcp = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(rel) = list.get(i) else { break };
                    let path: PathBuf = shared.join(rel);
                    let result = tshark_counts(&path).and_then(|mut want| {
                        let got = wirelens_counts(&path)?;
                        if let Some((_, diff)) = EXPECTED_DIFF.iter().find(|(p, _)| p == rel) {
                            for (name, d) in diff.iter() {
                                let name = V4_NAMES
                                    .iter()
                                    .chain(V6_NAMES.iter())
                                    .find(|n| *n == name)
                                    .expect("known counter");
                                let e = want.entry(name).or_default();
                                *e = e.saturating_add_signed(*d);
                                if *e == 0 {
                                    want.remove(name);
                                }
                            }
                        }
                        Ok((want, got))
                    });
                    checked.fetch_add(1, Ordering::Relaxed);
                    match result {
                        Ok((want, got)) if want == got => {
                            if !got.is_empty() {
                                with_dhcp.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok((want, got)) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{rel}: tshark {want:?}, wirelens {got:?}")),
                        Err(e) => failures.lock().unwrap().push(format!("{rel}: {e}")),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} captures differ:\n{}",
        failures.len(),
        list.len(),
        failures.join("\n")
    );
    // The comparison means something only if most captures really carry DHCP.
    let n = with_dhcp.load(Ordering::Relaxed);
    assert!(n > 20, "only {n} captures had DHCP messages");
    eprintln!(
        "{} captures checked, {n} with DHCP messages",
        checked.load(Ordering::Relaxed)
    );
}
