//! `wirelens read` on the captures shipped in `testdata/pcaps/` (the README's quick start), checked
//! against the values pktvisor's own unit tests assert for the same files (pktvisor.md f.2).
//! Needs nothing outside the repository; it does not cover the corpus (see `tshark_oracle.rs`).

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::json::Json;

/// Runs `wirelens read --periods 1` on a capture of `testdata/pcaps/` and parses the document.
fn read(file: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/pcaps")
        .join(file);
    let out = Command::new(support::wirelens_bin())
        .args(["read", "--periods", "1"])
        .arg(&path)
        .output()
        .expect("wirelens runs");
    assert!(
        out.status.success(),
        "wirelens read {file} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    Json::parse(&text).unwrap_or_else(|e| panic!("wirelens read {file}: not JSON ({e}): {text}"))
}

/// Asserts each `(path, value)` under the `1m` period, reporting every mismatch at once.
fn check(file: &str, expected: &[(&[&str], u64)]) {
    let doc = read(file);
    let mut wrong = Vec::new();
    for (path, want) in expected {
        let mut full = vec!["1m"];
        full.extend_from_slice(path);
        let got = doc.get(&full).and_then(Json::as_u64);
        if got != Some(*want) {
            wrong.push(format!("{}: got {got:?}, want {want}", full.join(".")));
        }
    }
    assert!(wrong.is_empty(), "{file}:\n{}", wrong.join("\n"));
}

const WP: &str = "wire_packets";

#[test]
fn dns_udp_mixed_rcode() {
    check(
        "dns_udp_mixed_rcode.pcap",
        &[
            (&["packets", "total"], 24),
            (&["packets", "udp"], 24),
            (&["packets", "tcp"], 0),
            (&["packets", "ipv4"], 24),
            (&["dns", WP, "udp"], 24),
            (&["dns", WP, "ipv4"], 24),
            (&["dns", WP, "queries"], 12),
            (&["dns", WP, "replies"], 12),
            (&["dns", WP, "noerror"], 10),
            (&["dns", WP, "nxdomain"], 1),
            (&["dns", WP, "refused"], 1),
            (&["dns", WP, "srvfail"], 0),
            (&["dns", WP, "nodata"], 4),
            (&["dns", WP, "total"], 24),
        ],
    );
}

#[test]
fn dns_ipv4_udp() {
    check(
        "dns_ipv4_udp.pcap",
        &[
            (&["packets", "total"], 140),
            (&["packets", "udp"], 140),
            (&["packets", "ipv4"], 140),
            (&["packets", "ipv6"], 0),
            (&["dns", WP, "udp"], 140),
            (&["dns", WP, "ipv4"], 140),
            (&["dns", WP, "ipv6"], 0),
            (&["dns", WP, "queries"], 70),
            (&["dns", WP, "replies"], 70),
        ],
    );
}

#[test]
fn dns_ipv4_tcp() {
    check(
        "dns_ipv4_tcp.pcap",
        &[
            (&["packets", "total"], 2100),
            (&["packets", "tcp"], 2100),
            (&["packets", "ipv4"], 2100),
            (&["packets", "ipv6"], 0),
            (&["dns", WP, "tcp"], 420),
            (&["dns", WP, "queries"], 210),
            (&["dns", WP, "replies"], 210),
        ],
    );
}
