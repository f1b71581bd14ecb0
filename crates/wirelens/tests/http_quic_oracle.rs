//! Differential test of the `http` and `quic` handlers against tshark on real captures from the
//! public corpus in `shared/`: per-method request counts, status
//! class counts, the set of request hosts, the number of QUIC ClientHellos and the set of their
//! server names must be equal.
//!
//! tshark is run with `http.desegment_body:FALSE`, so it reports a response at its head as
//! wirelens does (with body reassembly on, tshark drops responses whose body the capture cut),
//! and retransmitted segments are left out (tshark dissects every copy; wirelens reads a stream
//! once). Captures left out, and why:
//! * tunnels wirelens does not decode (802.11 radiotap, GRE/ERSPAN/VXLAN, NFLOG, SCTP, GTP-U,
//!   PPP): no TCP or UDP reaches the handlers;
//! * HTTP after a SOCKS handshake: the stream does not start with HTTP, so it is not read;
//! * fuzzed captures (`fuzz-*`): tshark's recovery heuristics and wirelens' strict framing
//!   disagree by design on mutilated streams;
//! * CONNECT tunnels: tshark reads the HTTP inside the tunnel, wirelens stops at the tunnel;
//! * QUIC drafts before 29, mvfst and Google QUIC versions: their initial salts are not
//!   implemented, so their ClientHellos are not read (counted as `initials_unsupported_version`);
//! * QUIC Initials of reserved versions (`0x?a?a?a?a`, `ndpi/quic_interop_V`): tshark opens
//!   them with version 1's salt, wirelens leaves versions it does not know unread.
//!
//! QUIC ClientHellos are also counted: tshark shows one in the frame that completes it, and
//! wirelens reads one per client connection, which it follows by its UDP 5-tuple across the
//! Destination Connection IDs of its Initials (`quic_frags_*`, `quic-decrypt-fail-*`).
//!
//! Known differences still open (not in [`CASES`]): `ndpi/quic_0RTT` (one of its two
//! connections is draft 28), `ndpi/quic-29` (after a Retry the client resends its ClientHello: tshark
//! counts it twice, wirelens once per connection), `suricata-verify/http-async*` (responses
//! before requests), `ndpi/soap`, `scapy/http_chunk`. The bench's `mixed.pcap` is not
//! compared here: tshark alone takes minutes on it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Captures compared, relative to `shared/corpus`.
const CASES: &[&str] = &[
    "arkime/http-100-continue.pcap",
    "arkime/http-301-get.pcap",
    "arkime/http-500-head.pcap",
    "arkime/http-basicauth.pcap",
    "arkime/http-content-gzip.pcap",
    "arkime/http-content-zip.pcap",
    "arkime/http-digestauth.pcap",
    "arkime/no-syn-ack.pcap",
    "arkime/twovlan.pcap",
    "arkime/wireshark-retrans.pcap",
    "arkime/quicietf.pcap",
    "arkime/quicietfooo.pcap",
    "ndpi/pcap/WebattackRCE.pcap",
    "ndpi/pcap/EAQ.pcap",
    "ndpi/pcap/emotet.pcap",
    "ndpi/pcap/exe_download.pcap",
    "ndpi/pcap/doq_adguard.pcapng",
    "ndpi/pcap/google_meet.pcapng",
    "ndpi/pcap/os_detected.pcapng",
    "ndpi/pcap/quic_frags_different_dcid.pcapng",
    "ndpi/pcap/quic_frags_ch_in_multiple_packets.pcapng",
    "ndpi/pcap/quic_frags_ch_out_of_order_same_packet_craziness.pcapng",
    "zeek/Traces/quic/quic-decrypt-fail-google-de-51833.pcap",
    "zeek/Traces/quic/chromium-115.0.5790.110-google-de-fragmented.pcap",
    "zeek/Traces/quic/quic-multiple-initial-fragmented-crypto.pcap",
];

const NOT_RETRANSMITTED: &str =
    "!tcp.analysis.retransmission && !tcp.analysis.spurious_retransmission";

fn corpus() -> PathBuf {
    support::shared_dir().join("corpus")
}

/// One tshark field over the frames matching `filter`, every comma-separated value.
fn tshark(file: &Path, filter: &str, field: &str) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-n", "-o", "http.desegment_body:FALSE", "-r"])
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-e", field])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The `http` and `quic` sections of `wirelens read --periods 1 FILE`.
fn wirelens(file: &Path) -> (Value, Value) {
    let out = Command::new(support::wirelens_bin())
        .args(["read", "--periods", "1", "--no-progress"])
        .arg(file)
        .output()
        .expect("run wirelens");
    assert!(
        out.status.success(),
        "wirelens failed on {}",
        file.display()
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut found = (Value::Null, Value::Null);
    fn walk(v: &Value, found: &mut (Value, Value)) {
        if let Value::Object(m) = v {
            for (k, v) in m {
                match k.as_str() {
                    "http" if v.get("period").is_some() => found.0 = v.clone(),
                    "quic" if v.get("period").is_some() => found.1 = v.clone(),
                    _ => walk(v, found),
                }
            }
        }
    }
    walk(&doc, &mut found);
    (found.0, found.1)
}

const METHODS: [&str; 9] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE",
];

fn names(v: &Value, key: &str) -> BTreeSet<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn check(file: &Path) -> Result<(), String> {
    let (http, quic) = wirelens(file);
    let mut want_methods: BTreeMap<String, u64> = BTreeMap::new();
    for m in tshark(
        file,
        &format!("http.request && {NOT_RETRANSMITTED}"),
        "http.request.method",
    ) {
        let k = if METHODS.contains(&m.as_str()) {
            m.to_lowercase()
        } else {
            "other".into()
        };
        *want_methods.entry(k).or_default() += 1;
    }
    let mut want_status: BTreeMap<String, u64> = BTreeMap::new();
    for c in tshark(
        file,
        &format!("http.response && {NOT_RETRANSMITTED}"),
        "http.response.code",
    ) {
        let k = match c.as_bytes().first() {
            Some(d @ b'1'..=b'5') => format!("{}xx", *d as char),
            _ => "other".into(),
        };
        *want_status.entry(k).or_default() += 1;
    }
    let nonzero = |v: Option<&Value>| -> BTreeMap<String, u64> {
        v.and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k.clone(), n)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let got_methods = nonzero(http.get("methods"));
    let got_status = nonzero(http.get("status"));
    let hosts: BTreeSet<String> = tshark(
        file,
        &format!("http.request && {NOT_RETRANSMITTED}"),
        "http.host",
    )
    .into_iter()
    .collect();
    let sni: BTreeSet<String> = tshark(
        file,
        "quic && tls.handshake.type == 1",
        "tls.handshake.extensions_server_name",
    )
    .into_iter()
    .collect();
    // tshark shows a reassembled ClientHello in the frame that completes it: one per hello.
    let hellos = tshark(file, "quic && tls.handshake.type == 1", "frame.number").len() as u64;
    let got_hellos = quic
        .get("client_hellos")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut errors = Vec::new();
    if got_methods != want_methods {
        errors.push(format!(
            "methods: tshark {want_methods:?}, wirelens {got_methods:?}"
        ));
    }
    if got_status != want_status {
        errors.push(format!(
            "status: tshark {want_status:?}, wirelens {got_status:?}"
        ));
    }
    // Top lists hold the 10 heaviest names: compare sets only when they all fit.
    if hosts.len() <= 10 && names(&http, "top_hosts") != hosts {
        errors.push(format!(
            "hosts: tshark {hosts:?}, wirelens {:?}",
            names(&http, "top_hosts")
        ));
    }
    if got_hellos != hellos {
        errors.push(format!(
            "quic client hellos: tshark {hellos}, wirelens {got_hellos}"
        ));
    }
    if sni.len() <= 10 && names(&quic, "top_sni") != sni {
        errors.push(format!(
            "quic sni: tshark {sni:?}, wirelens {:?}",
            names(&quic, "top_sni")
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", file.display(), errors.join("; ")))
    }
}

#[test]
fn http_and_quic_counts_equal_tshark() {
    if !support::tool_runs("tshark") {
        return support::missing("tshark");
    }
    let files: Vec<PathBuf> = CASES.iter().map(|c| corpus().join(c)).collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in &files {
        if !f.exists() {
            support::missing(&format!("capture {}", f.display()));
            continue;
        }
        checked += 1;
        if let Err(e) = check(f) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{checked} captures equal tshark");
}
