//! dnstap files end to end: pktvisor's fixture and the corpus dnstap / Frame Streams files,
//! read through `inputs::dnstap_file::DnstapFile` and decoded by `wire::dnstap`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use inputs::dnstap_file::{DnstapFile, DnstapFileError};
use wire::dnstap::{
    self, Direction, DnstapType, MessageType, SocketFamily, SocketProtocol, TimeSource,
};

fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared reference data missing at {}", dir.display());
    }
    eprintln!("note: {} missing, dnstap file tests skipped", dir.display());
    None
}

/// Per-file tallies.
#[derive(Debug, Default)]
struct Tally {
    frames: u64,
    undecodable: u64,
    usable: u64,
    no_type: u64,
    by_type: [u64; 15],
    udp: u64,
    inet: u64,
    query_addrs: Vec<IpAddr>,
    response_addrs: Vec<IpAddr>,
    protocols: Vec<SocketProtocol>,
    min_sec: u64,
    max_sec: u64,
    dns_parsed: u64,
    /// Smallest and largest event time (pktvisor's rule), nanoseconds.
    event_ns: Option<(u64, u64)>,
}

fn tally(path: &Path) -> (Tally, DnstapFile) {
    let mut f = DnstapFile::open(path).unwrap();
    let mut t = Tally {
        min_sec: u64::MAX,
        ..Tally::default()
    };
    while let Some(p) = f.next_message().unwrap() {
        t.frames += 1;
        let Ok(d) = dnstap::decode(p) else {
            t.undecodable += 1;
            continue;
        };
        if d.kind.is_none() {
            t.no_type += 1;
        }
        let Some(m) = d.message.as_ref() else {
            continue;
        };
        if let Some(slot) = m.kind.and_then(|k| t.by_type.get_mut(k.number() as usize)) {
            *slot += 1;
        }
        if d.event_message().is_some() {
            t.usable += 1;
        }
        if m.socket_protocol == Some(SocketProtocol::Udp) {
            t.udp += 1;
        }
        if m.socket_family == Some(SocketFamily::Inet) {
            t.inet += 1;
        }
        if let Some(p) = m.socket_protocol
            && !t.protocols.contains(&p)
        {
            t.protocols.push(p);
        }
        for (ip, list) in [
            (m.query_ip(), &mut t.query_addrs),
            (m.response_ip(), &mut t.response_addrs),
        ] {
            if let Some(ip) = ip
                && !list.contains(&ip)
            {
                list.push(ip);
            }
        }
        for s in [m.query_time_sec, m.response_time_sec]
            .into_iter()
            .flatten()
        {
            t.min_sec = t.min_sec.min(s);
            t.max_sec = t.max_sec.max(s);
        }
        if let Some(ns) = m.event_time_ns() {
            let (lo, hi) = t.event_ns.get_or_insert((ns, ns));
            *lo = (*lo).min(ns);
            *hi = (*hi).max(ns);
        }
        if m.dns_message()
            .is_some_and(|msg| wire::dns::parse(msg).is_ok())
        {
            t.dns_parsed += 1;
        }
    }
    (t, f)
}

#[test]
fn pktvisor_fixture_matches_its_inventory() {
    let Some(shared) = shared_dir() else { return };
    let path = shared.join("fixtures/pktvisor/fixture.dnstap");
    let (t, f) = tally(&path);
    // 1 control frame (START, no STOP).
    assert_eq!(f.control_frames(), 1);
    assert!(!f.stopped());
    assert_eq!(f.bytes_read(), 20_522);
    // The inventory counts 154 data frames, one of them a CLIENT_RESPONSE without
    // `Dnstap.type`. That 154th frame is in fact cut short: its length says 286 bytes but
    // only 238 remain, and `type` (field 15, written last) is in the missing tail. The
    // reader reports it as truncation, leaving the 153 messages pktvisor uses (79 q / 74 r).
    assert_eq!(t.frames, 153);
    assert_eq!(f.data_frames(), 153);
    assert_eq!(f.truncated_at(), Some(20_280));
    assert_eq!(t.undecodable, 0);
    assert_eq!(t.no_type, 0);
    assert_eq!(t.usable, 153);
    assert_eq!(t.by_type[MessageType::ClientQuery.number() as usize], 79);
    assert_eq!(t.by_type[MessageType::ClientResponse.number() as usize], 74);
    assert_eq!(t.by_type.iter().sum::<u64>(), 153);
    assert_eq!(t.udp, 153);
    assert_eq!(t.inet, 153);
    assert_eq!(
        t.query_addrs,
        vec!["192.168.0.54".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        t.response_addrs,
        vec!["192.168.0.55".parse::<IpAddr>().unwrap()]
    );
    assert_eq!((t.min_sec, t.max_sec), (1_637_597_787, 1_637_597_894));
    assert_eq!(t.dns_parsed, 153);

    // The cut frame: read its bytes directly and show it is the 75th CLIENT_RESPONSE.
    let bytes = std::fs::read(&path).unwrap();
    let tail = &bytes[20_280..];
    assert_eq!(u32::from_be_bytes(tail[..4].try_into().unwrap()), 286);
    assert_eq!(tail.len() - 4, 238);
    let partial = &tail[4..];
    assert!(dnstap::decode(partial).is_err());
    let fields: Vec<_> = dnstap::pb::Reader::new(partial)
        .take_while(Result::is_ok)
        .flatten()
        .map(|f| f.number)
        .collect();
    // identity and version decode; the message (14) runs past the end; no type (15).
    assert_eq!(fields, vec![1, 2]);
    // Skip identity (2 bytes), version (7) and the message's tag and length (3).
    assert_eq!(&partial[9..12], &[0x72, 0x90, 0x02]);
    let inner = &partial[12..];
    let first = dnstap::pb::Reader::new(inner).next().unwrap().unwrap();
    assert_eq!(first.number, 1);
    assert_eq!(
        first.value,
        dnstap::pb::Value::Varint(u64::from(MessageType::ClientResponse.number()))
    );
}

#[test]
fn pktvisor_fixture_usable_split_and_event_times() {
    let Some(shared) = shared_dir() else { return };
    let mut f = DnstapFile::open(&shared.join("fixtures/pktvisor/fixture.dnstap")).unwrap();
    let (mut queries, mut responses, mut to_host, mut from_host) = (0, 0, 0, 0);
    let mut first_ns = None;
    let mut last_ns = 0;
    while let Some(p) = f.next_message().unwrap() {
        let d = dnstap::decode(p).unwrap();
        let m = d.event_message().unwrap();
        assert_eq!(d.kind, Some(DnstapType::Message));
        assert_eq!(d.version, Some(&b"5.4.2"[..]));
        queries += u32::from(m.is_query());
        responses += u32::from(m.is_response());
        match m.direction() {
            Some(Direction::ToHost) => to_host += 1,
            Some(Direction::FromHost) => from_host += 1,
            None => panic!("known types have a direction"),
        }
        let source = m.kind.and_then(MessageType::time_source);
        let ns = m.event_time_ns().unwrap();
        let want = match source {
            Some(TimeSource::Query) => m.query_time_ns(),
            Some(TimeSource::Response) => m.response_time_ns(),
            None => None,
        };
        assert_eq!(Some(ns), want);
        first_ns.get_or_insert(ns);
        last_ns = last_ns.max(ns);
        assert!(m.query_port.is_some());
    }
    assert_eq!((queries, responses), (79, 74));
    assert_eq!((to_host, from_host), (79, 74));
    // The corpus manifest dates the file 16:16:27.853960Z to 16:18:14.633788Z.
    assert_eq!(first_ns, Some(1_637_597_787_853_960_000));
    assert_eq!(last_ns, 1_637_597_894_633_788_000);
}

#[test]
fn corpus_dnstap_files_decode() {
    let Some(shared) = shared_dir() else { return };
    let corpus = shared.join("corpus");
    let ty = |t: &Tally, k: MessageType| t.by_type[k.number() as usize];

    let (t, f) = tally(&corpus.join("dsc/dotdoh.dnstap"));
    assert_eq!((t.frames, t.undecodable, t.usable), (7, 0, 7));
    assert_eq!(ty(&t, MessageType::ClientQuery), 4);
    assert_eq!(ty(&t, MessageType::ClientResponse), 3);
    assert!(f.stopped());
    assert_eq!(f.truncated_at(), None);
    assert_eq!(
        t.protocols,
        vec![
            SocketProtocol::Udp,
            SocketProtocol::Dot,
            SocketProtocol::Doh
        ]
    );

    // The corpus manifest (dnstap-ldns, microseconds) spans 11:33:41.912013Z to
    // 11:33:54.429855Z.
    assert_eq!(
        t.event_ns.map(|(lo, hi)| (lo / 1000, hi / 1000)),
        Some((1_643_283_221_912_013, 1_643_283_234_429_855))
    );

    let (t, f) = tally(&corpus.join("dsc/test.dnstap"));
    assert_eq!((t.frames, t.undecodable, t.usable), (2, 0, 2));
    assert_eq!(ty(&t, MessageType::ToolQuery), 1);
    assert_eq!(ty(&t, MessageType::ToolResponse), 1);
    assert!(f.stopped());
    // TOOL messages have no event-time rule: the caller's clock dates them.
    assert_eq!(t.event_ns, None);

    let (t, f) = tally(&corpus.join("go-dnscollector/dnstap/dnstap.fstrm"));
    assert_eq!((t.frames, t.undecodable, t.usable), (2, 0, 2));
    assert_eq!(ty(&t, MessageType::ClientQuery), 1);
    assert_eq!(ty(&t, MessageType::ClientResponse), 1);
    assert!(f.stopped());
    assert_eq!(t.dns_parsed, 2);
    assert_eq!(
        t.event_ns.map(|(lo, hi)| (lo / 1000, hi / 1000)),
        Some((1_717_613_389_590_209, 1_717_613_389_601_953))
    );
}

#[test]
fn fstrm_test_file_is_refused_as_another_content_type() {
    let Some(shared) = shared_dir() else { return };
    let path = shared.join("corpus/fstrm/test.fstrm");
    let e = DnstapFile::open(&path).unwrap_err();
    assert!(
        matches!(&e, DnstapFileError::ContentTypeMismatch { found, .. } if found == "test:hello")
    );
    assert!(e.to_string().contains("content type mismatch"));
    assert!(e.to_string().starts_with(&path.display().to_string()));

    // The raw framing matches fstrm_dump's output (test-fstrm.txt): START, 10 frames, STOP.
    let bytes = std::fs::read(&path).unwrap();
    let mut dec = dnstap::fstrm::FrameDecoder::new();
    let mut rest = bytes.as_slice();
    let mut data = Vec::new();
    let mut controls = Vec::new();
    loop {
        match dec.next(rest).unwrap() {
            dnstap::fstrm::Step::NeedMore => break,
            dnstap::fstrm::Step::Control { consumed, control } => {
                controls.push((control.kind, control.content_type().map(<[u8]>::to_vec)));
                rest = &rest[consumed..];
            }
            dnstap::fstrm::Step::Data { consumed, payload } => {
                data.push(payload.to_vec());
                rest = &rest[consumed..];
            }
        }
    }
    assert!(rest.is_empty());
    assert_eq!(
        controls,
        vec![
            (
                dnstap::fstrm::ControlType::Start,
                Some(b"test:hello".to_vec())
            ),
            (dnstap::fstrm::ControlType::Stop, None),
        ]
    );
    assert_eq!(data.len(), 10);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d, format!("Hello, world #{i}\n").as_bytes());
    }
}

#[test]
fn capture_files_are_not_dnstap() {
    let Some(shared) = shared_dir() else { return };
    let path = shared.join("corpus/go-dnscollector/pcap/dnsdump_udp.pcap");
    let e = DnstapFile::open(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not a dnstap frame streams file: it does not start with a control frame",
            path.display()
        )
    );
}

#[test]
fn fuzz_body_on_every_corpus_file_prefix() {
    let Some(shared) = shared_dir() else { return };
    for rel in [
        "fixtures/pktvisor/fixture.dnstap",
        "corpus/dsc/dotdoh.dnstap",
        "corpus/dsc/test.dnstap",
        "corpus/go-dnscollector/dnstap/dnstap.fstrm",
        "corpus/fstrm/test.fstrm",
    ] {
        let bytes = std::fs::read(shared.join(rel)).unwrap();
        // Whole file, then cuts at every 97th byte, then single-byte corruptions.
        dnstap::fuzz_dnstap(&bytes);
        let mut cuts = 0;
        for cut in (0..bytes.len()).step_by(97) {
            dnstap::fuzz_dnstap(&bytes[..cut]);
            cuts += 1;
        }
        let mut flipped = bytes.clone();
        for at in (0..flipped.len()).step_by(131) {
            flipped[at] ^= 0xa5;
            dnstap::fuzz_dnstap(&flipped);
        }
        assert_eq!(cuts, bytes.len().div_ceil(97), "{rel}");
    }
}
