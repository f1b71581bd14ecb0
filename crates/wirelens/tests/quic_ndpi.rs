//! The `quic` handler against nDPI's expected results (`shared/corpus/ndpi/result/*.out`) on
//! the captures whose ClientHellos are split over several Initials: to different Destination
//! Connection IDs (`quic_frags_different_dcid`), across packets (`quic_frags_ch_in_multiple_packets`)
//! and in scrambled CRYPTO fragments (`quic_frags_ch_out_of_order_same_packet_craziness`, 113
//! connections). Per capture, the multiset of server names and of JA4 fingerprints must equal
//! the one nDPI prints per flow (`Hostname/SNI:`, `JA4:`).
//!
//! JA4 is compared without its ALPN characters (positions 8 and 9) and its SNI flag (position
//! 3), where this nDPI release departs from the JA4 specification, which wirelens follows: the
//! ALPN characters are the first and last of the first ALPN value (`h3-29` gives `h9`, `h3-34`
//! `h4`; nDPI prints `h3`, and `h0` for `h3`), and the flag is `i` when there is no SNI
//! (nDPI prints `d` for `quic_frags_ch_in_multiple_packets`, whose ClientHello has none). The
//! version, the cipher and extension counts and both hashes are compared exactly.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
const CASES: &[&str] = &[
    "quic_frags_different_dcid.pcapng",
    "quic_frags_ch_in_multiple_packets.pcapng",
    "quic_frags_ch_out_of_order_same_packet_craziness.pcapng",
];

fn ndpi_dir() -> PathBuf {
    support::shared_dir().join("corpus").join("ndpi")
}

/// A JA4 with the parts this nDPI prints differently masked out (see the module comment).
fn comparable(ja4: &str) -> String {
    ja4.char_indices()
        .map(|(i, c)| if matches!(i, 3 | 8 | 9) { '_' } else { c })
        .collect()
}

/// Multisets of SNI and comparable JA4 over nDPI's flow lines.
fn ndpi(out: &Path) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let text = std::fs::read_to_string(out).expect("ndpi result readable");
    let mut sni = BTreeMap::new();
    let mut ja4 = BTreeMap::new();
    let field = |line: &str, name: &str| -> Option<String> {
        let at = line.find(name)? + name.len();
        let rest = line.get(at..)?;
        Some(rest.get(..rest.find(']')?)?.to_string())
    };
    for line in text.lines().filter(|l| l.contains("[proto: ")) {
        if let Some(s) = field(line, "[Hostname/SNI: ") {
            *sni.entry(s).or_default() += 1;
        }
        if let Some(j) = field(line, "[JA4: ") {
            *ja4.entry(comparable(&j)).or_default() += 1;
        }
    }
    (sni, ja4)
}

/// A one-policy file running only the `quic` handler with long top lists.
fn policy_file() -> PathBuf {
    support::policy_with_modules("quic-ndpi", &[("q", "quic")])
}

/// wirelens' SNI and comparable JA4 multisets, and its ClientHello count.
fn wirelens(path: &Path, policy: &Path) -> (BTreeMap<String, u64>, BTreeMap<String, u64>, u64) {
    let v = support::read_one_period(path, policy);
    let q = &v["p"]["p-default-q"]["quic"];
    let top = |k: &str, f: &dyn Fn(&str) -> String| -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for i in q[k].as_array().into_iter().flatten() {
            let name = f(i["name"].as_str().unwrap_or_default());
            *m.entry(name).or_default() += i["estimate"].as_u64().unwrap_or(0);
        }
        m
    };
    (
        top("top_sni", &str::to_string),
        top("top_ja4", &comparable),
        q["client_hellos"].as_u64().expect("client_hellos"),
    )
}

#[test]
fn split_client_hellos_agree_with_ndpi() {
    let policy = policy_file();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in CASES {
        let pcap = ndpi_dir().join("pcap").join(case);
        let out = ndpi_dir().join("result").join(format!("{case}.out"));
        if !pcap.exists() || !out.exists() {
            support::missing(&format!("capture {}", pcap.display()));
            continue;
        }
        checked += 1;
        let (want_sni, want_ja4) = ndpi(&out);
        let (sni, ja4, hellos) = wirelens(&pcap, &policy);
        let flows: u64 = want_ja4.values().sum();
        assert!(flows > 0, "{case}: no nDPI flow with a JA4");
        if hellos != flows || sni != want_sni || ja4 != want_ja4 {
            failures.push(format!(
                "{case}: nDPI {flows} hellos {want_sni:?} {want_ja4:?}, wirelens {hellos} {sni:?} {ja4:?}"
            ));
        }
    }
    let _ = std::fs::remove_file(&policy);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{checked} captures agree with nDPI");
}
