//! `wirelens read -i netflow|sflow` against oracles: the values pktvisor's flow tests assert on
//! its fixtures (reference f.2), tshark's dissection of every NetFlow/IPFIX/sFlow capture of
//! the corpus (records, packets and bytes computed by the test at run time), and Telegraf's
//! expected decodes of its raw datagram files.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn corpus() -> Option<PathBuf> {
    let p = support::shared_dir().join("corpus");
    if p.join("pktvisor").is_dir() {
        return Some(p);
    }
    support::missing("shared/corpus");
    None
}

fn read(args: &[&str]) -> Value {
    let a = wirelens::read::parse_args(args.iter().copied()).expect("arguments parse");
    let text = wirelens::read::summarize(&a).expect("read succeeds");
    serde_json::from_str(&text).expect("valid JSON")
}

fn policy_file(name: &str, modules: &str) -> String {
    let dir = std::env::temp_dir().join(format!("wirelens-flow-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Tests run in parallel: every file gets its own name.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = dir.join(format!("{name}-{n}.yaml"));
    let text = format!(
        "visor:\n  policies:\n    p:\n      kind: collection\n      handlers:\n        window_config:\n          num_periods: 1\n        modules:\n          f:\n            type: flow\n{modules}"
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The `flow` object of a default run (`1m` after one period).
fn flow_default(input: &str, file: &Path) -> Value {
    let f = file.display().to_string();
    let v = read(&["-i", input, "--periods", "1", &f]);
    v["1m"]["flow"].clone()
}

/// Totals over every device: (records, packets, bytes, packet_errors), unscaled, each record
/// counted once (on its input side).
fn totals(input: &str, files: &[PathBuf]) -> (u64, u64, u64, u64) {
    let pol = policy_file(
        "totals",
        "            config:\n              sample_rate_scaling: false\n              only_directions: [in]\n            metric_groups:\n              disable: [all]\n              enable: [counters, by_bytes, by_packets]\n",
    );
    let mut args = vec![
        "-i".to_string(),
        input.to_string(),
        "--periods".into(),
        "1".into(),
        "--policy".into(),
        pol,
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let a = wirelens::read::parse_args(args.iter()).expect("arguments parse");
    let text =
        wirelens::read::summarize(&a).unwrap_or_else(|e| panic!("read {files:?} fails: {e:#}"));
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    let flow = &v["p"]["p-default-f"]["flow"];
    let (mut r, mut p, mut b) = (0, 0, 0);
    if let Some(devs) = flow["devices"].as_object() {
        for d in devs.values() {
            r += d["records_flows"].as_u64().unwrap_or(0);
            if let Some(ifs) = d["interfaces"].as_object() {
                for i in ifs.values() {
                    // Crafted inputs carry counts near 2^64: the sums saturate, as wirelens' do.
                    p = u64::saturating_add(p, i["in_packets"].as_u64().unwrap_or(0));
                    b = u64::saturating_add(b, i["in_bytes"].as_u64().unwrap_or(0));
                }
            }
        }
    }
    (r, p, b, flow["packet_errors"].as_u64().unwrap_or(0))
}

fn top0(v: &Value, path: &[&str]) -> (String, u64) {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    let item = &cur[0];
    (
        item["name"].as_str().unwrap_or_default().to_string(),
        item["estimate"].as_u64().unwrap_or(0),
    )
}

#[test]
fn pktvisor_flow_values() {
    let Some(c) = corpus() else { return };
    let p = c.join("pktvisor");
    let pol = policy_file(
        "tos",
        "            metric_groups:\n              enable: [top_tos]\n",
    );
    let run = |file: &str| -> Value {
        let f = p.join(file).display().to_string();
        read(&["-i", "netflow", "--periods", "1", "--policy", &pol, &f])["p"]["p-default-f"]["flow"]
            .clone()
    };

    // nf5 (L432-450). Ports print as numbers: pktvisor's test loads an IANA service-name CSV
    // (23 = "telnet"), which wirelens does not ship.
    let v = run("nf5.pcap");
    let d = &v["devices"]["10.0.0.2"];
    assert_eq!(d["records_flows"], 3);
    let i = &d["interfaces"]["0"];
    assert_eq!(i["cardinality"]["dst_ips_out"], 2);
    assert_eq!(i["cardinality"]["src_ips_in"], 1);
    assert_eq!(i["cardinality"]["dst_ports_out"], 3);
    assert_eq!(i["cardinality"]["src_ports_in"], 2);
    assert_eq!(top0(i, &["top_in_src_ips_bytes"]).1, 1720);
    assert_eq!(top0(i, &["top_in_src_ips_packets"]).1, 33);
    assert_eq!(top0(i, &["top_in_dscp_bytes"]), ("CS6".into(), 1220));
    assert_eq!(top0(i, &["top_in_ecn_packets"]), ("Not-ECT".into(), 33));
    assert_eq!(top0(i, &["top_in_dst_ports_bytes"]), ("23".into(), 1128));

    // nf9 (L474-490).
    let v = run("nf9.pcap");
    let d = &v["devices"]["192.168.100.1"];
    assert_eq!(d["records_flows"], 24);
    let i = &d["interfaces"]["800"];
    assert_eq!(i["cardinality"]["dst_ips_out"], 24);
    assert_eq!(i["cardinality"]["src_ips_in"], 24);
    assert_eq!(i["cardinality"]["dst_ports_out"], 0);
    assert_eq!(i["cardinality"]["src_ports_in"], 0);
    assert_eq!(top0(i, &["top_in_src_ips_bytes"]).1, 6_066_232);
    assert_eq!(top0(i, &["top_in_src_ips_packets"]).1, 7858);
    assert_eq!(top0(i, &["top_in_dscp_bytes"]), ("CS0".into(), 142_139_882));
    assert_eq!(
        top0(i, &["top_in_ecn_packets"]),
        ("Not-ECT".into(), 183_920)
    );

    // ipfix (L513-526): pktvisor puts everything on interface "0" because its IPFIX decoder
    // does not read the ingress interface; tshark shows ingressInterface 5 and egress 0, so
    // the input side is on "5" here and the output side on "0".
    let v = run("ipfix.pcap");
    let d = &v["devices"]["192.168.100.2"];
    assert_eq!(d["records_flows"], 23);
    let out = &d["interfaces"]["0"];
    assert_eq!(out["cardinality"]["dst_ips_out"], 1);
    assert_eq!(out["cardinality"]["src_ips_in"], 1);
    assert_eq!(out["cardinality"]["dst_ports_out"], 9);
    assert_eq!(out["cardinality"]["src_ports_in"], 16);
    assert_eq!(
        top0(out, &["top_out_src_ips_bytes"]),
        ("::1".into(), 120_000)
    );
    assert_eq!(top0(out, &["top_out_src_ips_packets"]).1, 1472);
    assert_eq!(
        top0(&d["interfaces"]["5"], &["top_in_src_ips_bytes"]).1,
        120_000
    );

    // nf1 (L730-736), nf7 (L756-762).
    let v = flow_default("netflow", &p.join("nf1.pcap"));
    assert_eq!(v["devices"]["10.0.0.1"]["records_flows"], 2);
    let v = flow_default("netflow", &p.join("nf7.pcap"));
    assert_eq!(v["devices"]["10.0.0.1"]["records_flows"], 2);

    // sflow_ipv6 (L783-794), sflow_keyed (L818-831).
    let v = flow_default("sflow", &p.join("sflow_ipv6.pcap"));
    let d = &v["devices"]["10.0.0.99"];
    assert_eq!(d["records_flows"], 1);
    assert_eq!(d["interfaces"]["1"]["in_ipv6_packets"], 1);
    assert_eq!(d["interfaces"]["1"]["in_udp_packets"], 1);
    let v = flow_default("sflow", &p.join("sflow_keyed.pcap"));
    let d = &v["devices"]["10.0.0.77"];
    assert_eq!(d["records_flows"], 2);
    let i = &d["interfaces"]["1"];
    assert_eq!(i["in_ipv4_packets"], 1);
    assert_eq!(i["in_ipv6_packets"], 1);
    assert_eq!(i["in_tcp_bytes"], 1500);
    assert_eq!(i["in_udp_bytes"], 1280);
}

/// NetFlow/IPFIX captures of the corpus (the non-standard ports are decoded as cflow).
fn netflow_captures(c: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for f in ["nf1.pcap", "nf5.pcap", "nf7.pcap", "nf9.pcap", "ipfix.pcap"] {
        v.push(c.join("pktvisor").join(f));
    }
    let mut globbed = Vec::new();
    for dir in ["akvorado/netflow/testdata", "graylog-netflow", "scapy"] {
        if let Ok(rd) = std::fs::read_dir(c.join(dir)) {
            for e in rd.flatten() {
                let p = e.path();
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if name.ends_with(".pcap") && (dir != "scapy" || name == "ipfix.pcap") {
                    globbed.push(p);
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(c.join("pmacct")) {
        for e in rd.flatten() {
            for f in ["traffic-00.pcap", "traffic-01.pcap"] {
                let p = e.path().join(f);
                if p.is_file() {
                    globbed.push(p);
                }
            }
        }
    }
    globbed.push(c.join("ndpi/pcap/netflowv9.pcap"));
    globbed.push(c.join("ndpi/pcap/netflow-fritz.pcap"));
    globbed.sort();
    v.extend(globbed);
    v
}

/// tshark's (records with a packet count, packets, bytes) of a capture.
fn tshark_cflow(file: &Path) -> (u64, u64, u64) {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file);
    for port in [
        2055, 2057, 2059, 2100, 4739, 8096, 9990, 9991, 9992, 9995, 9996,
    ] {
        cmd.arg("-d").arg(format!("udp.port=={port},cflow"));
    }
    cmd.args(["-T", "fields", "-e", "cflow.packets", "-e", "cflow.octets"]);
    let out = cmd.output().expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut n, mut p, mut b) = (0, 0, 0);
    for line in text.lines() {
        let mut cols = line.split('\t');
        let nums = |s: Option<&str>| -> Vec<u64> {
            s.unwrap_or_default()
                .split(',')
                .filter_map(|x| x.parse().ok())
                .collect()
        };
        let ps = nums(cols.next());
        let bs = nums(cols.next());
        n += ps.len() as u64;
        p += ps.iter().sum::<u64>();
        b += bs.iter().sum::<u64>();
    }
    (n, p, b)
}

#[test]
fn netflow_totals_equal_tshark() {
    let Some(c) = corpus() else { return };
    if !support::tool_runs("tshark") {
        return support::missing("tshark");
    }
    let files = netflow_captures(&c);
    assert!(
        files.len() > 40,
        "corpus listing found {} files",
        files.len()
    );
    let mut checked = 0;
    for f in &files {
        let name = f.strip_prefix(&c).unwrap().display().to_string();
        let (r, p, b, errors) = totals("netflow", std::slice::from_ref(f));
        let (tn, tp, tb) = tshark_cflow(f);
        assert_eq!(errors, 0, "{name}: undecodable datagrams");
        match name.as_str() {
            // The exporter's header count says 1 record, and tshark stops there; the datagram
            // goes on with a second template (2048), an options template announcing 1:100
            // sampling, its options data and one more data record. wirelens walks every set
            // (RFC 3954 exporters get the count wrong), so it decodes 3 more records: the one
            // of frame 1 and two of template 2048 in frames 7 and 9.
            "graylog-netflow/netflow9.pcap" => {
                assert_eq!((tn, tp, tb), (18, 20, 6887));
                assert_eq!((r, p, b), (21, 23, 7302), "{name}");
            }
            // tshark keys templates by UDP source port too; this exporter restarts on a new port
            // and reuses its template ids, so tshark finds no template for the data of the
            // second port, while wirelens keys by exporter address and observation domain.
            "pmacct/112-IPFIXv10-CISCO-options-map-reassignment/traffic-00.pcap" => {
                assert_eq!((tn, tp, tb), (0, 0, 0));
                assert_eq!((r, p, b), (9, 19, 1197), "{name}");
            }
            // Records with no packet count (NAT events): tshark has no value to sum.
            "akvorado/netflow/testdata/nat.pcap" => {
                assert_eq!((tn, tp, tb), (0, 0, 0));
                assert_eq!((r, p, b), (9, 0, 0), "{name}");
            }
            _ => {
                assert_eq!((r, p, b), (tn, tp, tb), "{name}: records, packets, bytes");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, files.len());
}

#[test]
fn sflow_totals_equal_tshark() {
    let Some(c) = corpus() else { return };
    if !support::tool_runs("tshark") {
        return support::missing("tshark");
    }
    let mut files = vec![
        c.join("pktvisor/sflow_ipv6.pcap"),
        c.join("pktvisor/sflow_keyed.pcap"),
        c.join("ndpi/pcap/sflow.pcap"),
        c.join("tcpdump/sflow-print-v6.pcap"),
        c.join("tcpdump/sflow_multiple_counter_30_pdus.pcap"),
    ];
    let mut ak: Vec<PathBuf> = std::fs::read_dir(c.join("akvorado/sflow/testdata"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    ak.sort();
    files.extend(ak);
    assert!(files.len() > 15);
    for f in &files {
        let name = f.strip_prefix(&c).unwrap().display().to_string();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(f)
            .args([
                "-T",
                "fields",
                "-e",
                "sflow.flow_sample.sampling_rate",
                "-e",
                "sflow_245.header.frame_length",
                "-e",
                "sflow_245.ip.length",
            ])
            .output()
            .expect("tshark runs");
        let (mut samples, mut bytes) = (0u64, 0u64);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let cols: Vec<Vec<u64>> = line
                .split('\t')
                .map(|c| c.split(',').filter_map(|x| x.parse().ok()).collect())
                .collect();
            let get = |i: usize| cols.get(i).cloned().unwrap_or_default();
            let (n, hdr, ip) = (get(0).len(), get(1), get(2));
            samples += n as u64;
            // Each sample is one packet, described by its first header record (wirelens and
            // sFlow collectors prefer it); a sample with both a header and an IP record
            // counts the header's length.
            bytes += if hdr.len() + ip.len() == n {
                hdr.iter().sum::<u64>() + ip.iter().sum::<u64>()
            } else {
                assert_eq!(hdr.len(), n, "{name}: one header per sample");
                hdr.iter().sum::<u64>()
            };
        }
        let (r, p, b, _) = totals("sflow", std::slice::from_ref(f));
        assert_eq!((r, p, b), (samples, samples, bytes), "{name}");
    }
}

/// Telegraf's expected records for its raw NetFlow/IPFIX datagram files: the count of
/// `netflow,` lines and the sums of their `in_bytes` / `in_packets`.
#[test]
fn telegraf_raw_datagrams_match_expected_output() {
    let Some(c) = corpus() else { return };
    let base = c.join("telegraf-netflow");
    let mut checked = 0;
    for case in [
        "netflow_v5_example",
        "netflow_v9_example",
        "netflow_v9_options",
        "ipfix_example",
        "ipfix_options",
    ] {
        let dir = base.join(case);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut bins: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
            .collect();
        bins.sort();
        let expected = std::fs::read_to_string(dir.join("expected.out")).unwrap_or_default();
        let (mut n, mut bytes, mut packets) = (0u64, 0u64, 0u64);
        for line in expected.lines().filter(|l| l.starts_with("netflow,")) {
            n += 1;
            for field in line.split([' ', ',']) {
                let num = |k: &str| -> u64 {
                    field
                        .strip_prefix(k)
                        .and_then(|v| v.trim_end_matches('u').parse().ok())
                        .unwrap_or(0)
                };
                // A record carries delta counts (in_bytes) or totals (in_total_bytes).
                bytes += num("in_bytes=") + num("in_total_bytes=");
                packets += num("in_packets=") + num("in_total_packets=");
            }
        }
        let (r, p, b, _) = totals("netflow", &bins);
        assert_eq!((r, p, b), (n, packets, bytes), "telegraf {case}");
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// Every raw datagram file of the logstash and graylog NetFlow suites (templates first, as
/// their owners read them), including their invalid, zero-length-field and truncated cases:
/// decoded without failing, and the malformed ones counted.
#[test]
fn raw_datagram_suites_decode() {
    let Some(c) = corpus() else { return };
    // Pinned from a run: every datagram decodes (no packet errors); the logstash suite holds
    // crafted counters near 2^64, so its byte total saturates.
    for (dir, want) in [
        (
            "logstash-netflow",
            (294, 17_639_216_666_994_386_710, u64::MAX, 0),
        ),
        ("graylog-netflow", (36, 235, 346_545, 0)),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(c.join(dir))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "dat"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        assert!(!files.is_empty(), "{dir}: no .dat files");
        assert_eq!(totals("netflow", &files), want, "{dir}");
    }
}
