//! End-to-end decoding of every shared capture (pktvisor fixtures and the public corpus).
//!
//! Each file goes through the real reader (`inputs::file::CaptureFile`) and every frame
//! through `wire::packet::decode`; outcomes are counted and compared with the packet counts
//! published for the files. This checks robustness and counts, not metric values.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use inputs::file::{CaptureFile, InputError};
use wire::capture::LinkType;
use wire::packet::{L3, L4, decode};

fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared reference data missing at {}", dir.display());
    }
    eprintln!("note: {} not found, skipping corpus tests", dir.display());
    None
}

/// What reading one file produced.
#[derive(Debug, Default)]
struct FileResult {
    records: u64,
    links: BTreeMap<u32, u64>,
    ipv4: u64,
    ipv6: u64,
    tcp: u64,
    udp: u64,
    icmp: u64,
    decode_errors: BTreeMap<&'static str, u64>,
    first_ts: Option<u64>,
    truncated_at: Option<u64>,
    /// `None` when the file was read to its end.
    error: Option<String>,
    not_a_capture: bool,
    ports: BTreeMap<u16, u64>,
    addrs: BTreeMap<IpAddr, u64>,
}

fn read_file(path: &Path) -> FileResult {
    let mut res = FileResult::default();
    let mut f = match CaptureFile::open(path) {
        Ok(f) => f,
        Err(e) => {
            res.not_a_capture = matches!(e, InputError::NotACapture { .. });
            res.error = Some(e.to_string());
            return res;
        }
    };
    loop {
        match f.next_record() {
            Ok(Some(rec)) => {
                res.records += 1;
                *res.links.entry(rec.link.number()).or_default() += 1;
                res.first_ts.get_or_insert(rec.ts_ns);
                match decode(rec.link, rec.data) {
                    Ok(p) => {
                        match p.l3 {
                            L3::Ipv4 => res.ipv4 += 1,
                            L3::Ipv6 => res.ipv6 += 1,
                            _ => {}
                        }
                        match p.l4 {
                            L4::Tcp => res.tcp += 1,
                            L4::Udp => res.udp += 1,
                            L4::Icmp => res.icmp += 1,
                            _ => {}
                        }
                        if matches!(p.l3, L3::Ipv4 | L3::Ipv6) {
                            *res.ports.entry(p.src_port).or_default() += 1;
                            if p.dst_port != p.src_port {
                                *res.ports.entry(p.dst_port).or_default() += 1;
                            }
                            *res.addrs.entry(p.src).or_default() += 1;
                        }
                        assert!(p.payload.len() <= rec.data.len());
                    }
                    Err(e) => *res.decode_errors.entry(e.reason()).or_default() += 1,
                }
            }
            Ok(None) => break,
            Err(e) => {
                res.not_a_capture = matches!(e, InputError::NotACapture { .. });
                res.error = Some(e.to_string());
                break;
            }
        }
    }
    res.truncated_at = f.truncated_at();
    res
}

/// Packet counts from the corpus manifest, keyed by path relative to the corpus root.
fn manifest_counts(corpus: &Path) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(corpus.join("MANIFEST.md")).unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 6 || !cols[1].starts_with('`') {
            continue;
        }
        if let Ok(n) = cols[4].parse::<u64>() {
            out.insert(cols[1].trim_matches('`').to_string(), n);
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let name = name.strip_suffix(".gz").unwrap_or(name);
            if name.ends_with(".pcap") || name.ends_with(".pcapng") || name.ends_with(".cap") {
                out.push(p);
            }
        }
    }
}

#[test]
fn pktvisor_fixtures_have_published_counts() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("fixtures/pktvisor");
    let expected: [(&str, u64); 18] = [
        ("dns_ipv4_udp.pcap", 140),
        ("dns_ipv6_udp.pcap", 140),
        ("dns_ipv4_tcp.pcap", 2100),
        ("dns_ipv6_tcp.pcap", 1800),
        ("dns_udp_mixed_rcode.pcap", 24),
        ("dns_udp_tcp_random.pcap", 16147),
        ("dnssec.pcap", 14),
        ("ecs.pcap", 66),
        ("dhcp-flow.pcap", 8),
        ("dhcpv6.pcap", 12),
        ("bgp.pcap", 22),
        ("nf1.pcap", 1),
        ("nf5.pcap", 2),
        ("nf7.pcap", 1),
        ("nf9.pcap", 5),
        ("ipfix.pcap", 43),
        ("sflow_ipv6.pcap", 1),
        ("sflow_keyed.pcap", 1),
    ];
    let mut results = HashMap::new();
    for (name, count) in expected {
        let r = read_file(&dir.join(name));
        assert_eq!(r.error, None, "{name}");
        assert_eq!(r.truncated_at, None, "{name}");
        assert_eq!(r.records, count, "{name}");
        assert!(r.decode_errors.is_empty(), "{name}: {:?}", r.decode_errors);
        results.insert(name, r);
    }
    // Every fixture pcap is listed above.
    let mut all = Vec::new();
    walk(&dir, &mut all);
    assert_eq!(all.len(), expected.len());

    let udp4 = &results["dns_ipv4_udp.pcap"];
    assert_eq!((udp4.ipv4, udp4.udp), (140, 140));
    assert_eq!(udp4.ports.get(&53000), Some(&140));
    let udp6 = &results["dns_ipv6_udp.pcap"];
    assert_eq!((udp6.ipv6, udp6.udp), (140, 140));
    assert_eq!(results["dns_ipv4_tcp.pcap"].tcp, 2100);
    assert_eq!(results["dns_ipv6_tcp.pcap"].tcp, 1800);
    let random = &results["dns_udp_tcp_random.pcap"];
    assert_eq!((random.tcp, random.udp), (13176, 2971));
    assert_eq!(random.first_ts, Some(1_614_874_231_565_771_000));
    let ecs = &results["ecs.pcap"];
    assert_eq!((ecs.ipv4, ecs.ipv6), (22, 44));
    let dhcpv6 = &results["dhcpv6.pcap"];
    assert_eq!((dhcpv6.icmp, dhcpv6.udp), (6, 6));
    assert_eq!(results["bgp.pcap"].ports.get(&179), Some(&22));
    let ipfix = &results["ipfix.pcap"];
    assert_eq!(ipfix.links.get(&LinkType::LinuxSll.number()), Some(&43));
    assert_eq!(ipfix.udp, 43);
    // nf9.pcap is a nanosecond pcap starting 2017-10-19 10:44:29Z.
    let nf9 = results["nf9.pcap"].first_ts.unwrap_or_default();
    assert_eq!(nf9 / 1_000_000_000, 1_508_409_869);
    assert_ne!(nf9 % 1000, 0, "nanosecond digits kept");
    let mixed = &results["dns_udp_mixed_rcode.pcap"];
    assert_eq!(
        mixed.addrs.get(&"192.168.0.54".parse::<IpAddr>().unwrap()),
        Some(&12)
    );
}

#[test]
fn corpus_decodes_end_to_end() {
    let Some(shared) = shared_dir() else { return };
    let corpus = shared.join("corpus");
    let mut files = Vec::new();
    walk(&corpus, &mut files);
    files.sort();
    let counts = manifest_counts(&corpus);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut decode_errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut records, mut compared, mut matched) = (0u64, 0u64, 0u64);
    let mut mismatches = Vec::new();
    let mut failed = 0u64;
    let mut links: BTreeMap<u32, u64> = BTreeMap::new();
    for path in &files {
        let rel = path
            .strip_prefix(&corpus)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let r = read_file(path);
        records += r.records;
        for (k, v) in &r.decode_errors {
            *decode_errors.entry(k).or_default() += v;
        }
        let outcome = match (&r.error, r.truncated_at, r.not_a_capture) {
            (_, _, true) => "not a capture".to_string(),
            (Some(e), _, _) => format!("error: {}", e.rsplit(": ").next().unwrap_or(e)),
            (None, Some(_), _) => "truncated".to_string(),
            (None, None, _) => "ok".to_string(),
        };
        *outcomes.entry(outcome.clone()).or_default() += 1;
        if outcome != "ok" {
            eprintln!("  {rel}: {outcome} after {} records", r.records);
            failed += 1;
        }
        for (&link, n) in &r.links {
            *links.entry(link).or_default() += n;
        }
        // Files the reader rejects are counted above; the manifest's count of a partly
        // readable crafted file depends on the tool's recovery, so only complete reads are
        // compared.
        if outcome != "ok" {
            continue;
        }
        if let Some(&want) = counts.get(&rel) {
            compared += 1;
            if want == r.records {
                matched += 1;
            } else {
                mismatches.push(format!(
                    "{rel}: {} records, manifest {want} ({outcome})",
                    r.records
                ));
            }
        }
    }
    eprintln!("corpus: {} files, {records} records", files.len());
    eprintln!("file outcomes: {outcomes:?}");
    eprintln!("decode errors: {decode_errors:?}");
    eprintln!("records per link type: {links:?}");
    eprintln!("manifest counts: {matched}/{compared} match");
    for m in &mismatches {
        eprintln!("  mismatch {m}");
    }
    assert!(files.len() > 2000, "corpus has {} captures", files.len());
    assert!(compared > 2000);
    assert!(failed <= 5, "{failed} files could not be read to the end");
    assert_eq!(mismatches, Vec::<String>::new());
}

#[test]
fn corpus_big_endian_and_gzip_files() {
    let Some(shared) = shared_dir() else { return };
    let corpus = shared.join("corpus");
    let be = read_file(&corpus.join("arkime/bigendian.pcap"));
    assert_eq!(be.error, None);
    assert!(be.records > 0);
    assert!(be.decode_errors.is_empty(), "{:?}", be.decode_errors);
    let counts = manifest_counts(&corpus);
    assert_eq!(Some(&be.records), counts.get("arkime/bigendian.pcap"));
    let gz = read_file(&corpus.join("packetq/sample-bigendian.pcap.gz"));
    assert_eq!((gz.records, gz.udp), (2, 2));
    let gz = read_file(&corpus.join("scapy/http_head.pcapng.gz"));
    assert_eq!((gz.records, gz.tcp), (10, 10));
}

#[test]
fn corpus_pcapng_with_mixed_interfaces() {
    let Some(shared) = shared_dir() else { return };
    for order in ["le", "be"] {
        let p = shared.join(format!(
            "corpus/gopacket/pcapng-suite/{order}/test006.pcapng"
        ));
        let r = read_file(&p);
        assert_eq!(r.error, None, "{order}");
        assert_eq!(r.records, 5, "{order}");
        assert_eq!(r.links.len(), 2, "{order}: {:?}", r.links);
        assert!(r.links.contains_key(&LinkType::Ethernet.number()));
        assert!(r.links.contains_key(&LinkType::Null.number()));
    }
}
