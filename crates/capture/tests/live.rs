//! Live capture end to end: each test builds its own pair of network namespaces joined by a
//! veth pair, opens rings on the receiving end, replays captures into the sending end with
//! tcpreplay and compares what the rings got with the file. Needs root, `ip` and `tcpreplay`
//! (a failure under CI=true, a printed skip otherwise).

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use capture::{CaptureError, Fanout, FanoutMode, Ring, RingConfig, interfaces};
use support::{Got, Lab, RX_IF, TempFile, drain, drain_all, file_frames, fixture};
use wire::bpf::Program;
use wire::capture::LinkType;

const QUIET: Duration = Duration::from_millis(400);
const LIMIT: Duration = Duration::from_secs(30);

fn rx_config() -> RingConfig {
    RingConfig {
        block_timeout_ms: 20,
        ..RingConfig::new(RX_IF)
    }
}

fn bytes(got: &[Got]) -> Vec<&[u8]> {
    got.iter().map(|g| g.data.as_slice()).collect()
}

#[test]
fn every_replayed_frame_arrives_once_and_intact() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("once");
    let file = fixture("dns_udp_tcp_random.pcap");
    let want = file_frames(&file);
    assert_eq!(want.len(), 16147);
    let (mut ring, index) = lab.in_rx(|| {
        let ring = Ring::open(&rx_config()).expect("open ring");
        let index = interfaces()
            .unwrap()
            .into_iter()
            .find(|i| i.name == RX_IF)
            .expect("veth listed");
        (ring, index)
    });
    assert_eq!(ring.link_type(), Some(LinkType::Ethernet));
    assert_eq!(ring.ifindex(), index.index as i32);
    assert!(index.up);
    assert_eq!(index.link_type, LinkType::Ethernet);

    let sent = lab.replay(&file);
    assert_eq!(sent, want.len() as u64);
    let got = drain(&mut ring, want.len(), QUIET, LIMIT);
    let stats = ring.stats().unwrap();
    assert_eq!(got.len(), want.len(), "{stats:?}\n{}", lab.rx_link_stats());
    for (i, (g, (w, wlen))) in got.iter().zip(&want).enumerate() {
        assert_eq!(&g.data, w, "frame {i} differs");
        assert_eq!(g.orig_len, *wlen, "frame {i} length");
        assert_eq!(g.ifindex, ring.ifindex());
        assert_eq!(g.vlan_tci, None);
    }
    assert!(
        got.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
        "timestamps go forward"
    );
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        now_ns - got[0].ts_ns < 120_000_000_000,
        "receive time, not file time"
    );
    assert_eq!(stats.drops, 0);
    assert_eq!(stats.packets, want.len() as u64);
    assert_eq!(stats.delivered(), want.len() as u64);
    // Counters accumulate: a second read adds nothing new but keeps the totals.
    assert_eq!(ring.stats().unwrap(), stats);
}

#[test]
fn a_full_ring_drops_and_counts_every_drop() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("drops");
    let file = fixture("dns_udp_tcp_random.pcap");
    let n = file_frames(&file).len();
    // Two 4 KiB blocks hold a few dozen frames: the stalled reader must lose most of them.
    let config = RingConfig {
        block_size: 4096,
        block_count: 2,
        frame_size: 2048,
        ..rx_config()
    };
    let mut ring = lab.in_rx(|| Ring::open(&config).expect("open ring"));
    let sent = lab.replay(&file);
    assert_eq!(sent, n as u64);
    std::thread::sleep(Duration::from_millis(100));
    let got = drain(&mut ring, 1, QUIET, LIMIT);
    let stats = ring.stats().unwrap();
    assert!(stats.drops > 0, "{stats:?}");
    assert!(stats.freezes > 0, "{stats:?}");
    assert!(!got.is_empty());
    assert_eq!(
        got.len() as u64 + stats.drops,
        sent,
        "{stats:?}\n{}",
        lab.rx_link_stats()
    );
    assert_eq!(stats.packets, sent);
    assert_eq!(stats.delivered(), got.len() as u64);
}

/// Flow key of a frame with both directions mapped to one value; `None` for frames the hash
/// cannot place by ports (non-IP, fragments).
fn flow_key(frame: &[u8]) -> Option<(u8, std::net::IpAddr, u16, std::net::IpAddr, u16)> {
    let p = wire::packet::decode(LinkType::Ethernet, frame).ok()?;
    if p.fragment.is_some() || p.ip_proto == 0 {
        return None;
    }
    let a = (p.src, p.src_port);
    let b = (p.dst, p.dst_port);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    Some((p.ip_proto, lo.0, lo.1, hi.0, hi.1))
}

fn fanout_keeps_conversations_together(members: usize, group_id: u16) {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new(&format!("fanout{members}"));
    let file = fixture("dns_udp_tcp_random.pcap");
    let want = file_frames(&file);
    let config = RingConfig {
        fanout: Some(Fanout {
            group_id,
            mode: FanoutMode::Hash,
            defrag: false,
        }),
        ..rx_config()
    };
    let mut rings: Vec<Ring> = lab.in_rx(|| {
        (0..members)
            .map(|_| Ring::open(&config).expect("open fanout member"))
            .collect()
    });
    assert_eq!(lab.replay(&file), want.len() as u64);
    let got = drain_all(&mut rings, want.len(), QUIET, LIMIT);

    // The union is exactly what was sent.
    let mut union: Vec<&[u8]> = got.iter().flat_map(|g| bytes(g)).collect();
    let mut sent: Vec<&[u8]> = want.iter().map(|(d, _)| d.as_slice()).collect();
    union.sort_unstable();
    sent.sort_unstable();
    assert_eq!(union.len(), sent.len());
    assert!(union == sent, "received frames differ from the file");

    // Both directions of every conversation went to one socket.
    let mut owner: HashMap<_, usize> = HashMap::new();
    let mut directions: HashMap<_, (bool, bool)> = HashMap::new();
    let mut placed = 0;
    for (sock, frames) in got.iter().enumerate() {
        for g in frames {
            let Some(key) = flow_key(&g.data) else {
                continue;
            };
            placed += 1;
            let first = *owner.entry(key).or_insert(sock);
            assert_eq!(
                first, sock,
                "flow {key:?} split between sockets {first} and {sock}"
            );
            let p = wire::packet::decode(LinkType::Ethernet, &g.data).unwrap();
            let d = directions.entry(key).or_default();
            if (p.src, p.src_port) == (key.1, key.2) {
                d.0 = true;
            } else {
                d.1 = true;
            }
        }
    }
    assert!(placed > want.len() * 9 / 10, "most frames have a 5-tuple");
    let both = directions.values().filter(|d| d.0 && d.1).count();
    assert!(
        both > 100,
        "only {both} conversations seen in both directions"
    );
    for (sock, frames) in got.iter().enumerate() {
        assert!(
            frames.len() > want.len() / (members * 4),
            "socket {sock} got {} of {} frames: the hash does not spread",
            frames.len(),
            want.len()
        );
    }
    let total_drops: u64 = rings.iter_mut().map(|r| r.stats().unwrap().drops).sum();
    assert_eq!(total_drops, 0);
}

#[test]
fn hash_fanout_of_two_keeps_both_directions_together() {
    fanout_keeps_conversations_together(2, 7);
}

#[test]
fn hash_fanout_of_four_keeps_both_directions_together() {
    fanout_keeps_conversations_together(4, 8);
}

#[test]
fn a_kernel_filter_passes_exactly_what_the_interpreter_passes() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("bpf");
    let file = fixture("dns_udp_tcp_random.pcap");
    let all = file_frames(&file);
    let program = Program::compile("udp port 53", LinkType::Ethernet).unwrap();
    let want: Vec<&[u8]> = all
        .iter()
        .filter(|(d, len)| program.matches(d, *len))
        .map(|(d, _)| d.as_slice())
        .collect();
    assert_eq!(want.len(), 2971, "the UDP share of the file");
    let config = RingConfig {
        filter: Some(program),
        ..rx_config()
    };
    let mut ring = lab.in_rx(|| Ring::open(&config).expect("open ring"));
    assert_eq!(lab.replay(&file), all.len() as u64);
    let got = drain(&mut ring, want.len(), QUIET, LIMIT);
    assert_eq!(got.len(), want.len());
    assert!(bytes(&got) == want, "filtered frames differ");
    let stats = ring.stats().unwrap();
    assert_eq!(
        stats.packets,
        want.len() as u64,
        "the kernel counts only what passed"
    );
    assert_eq!(stats.drops, 0);
}

#[test]
fn snaplen_clips_frames_in_the_kernel() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("snap");
    let file = fixture("dns_udp_mixed_rcode.pcap");
    let want = file_frames(&file);
    let config = RingConfig {
        snaplen: 64,
        ..rx_config()
    };
    let mut ring = lab.in_rx(|| Ring::open(&config).expect("open ring"));
    lab.replay(&file);
    let got = drain(&mut ring, want.len(), QUIET, LIMIT);
    assert_eq!(got.len(), want.len());
    for (g, (w, len)) in got.iter().zip(&want) {
        assert_eq!(g.data, w[..w.len().min(64)]);
        assert_eq!(g.orig_len, *len);
    }
    assert!(want.iter().any(|(w, _)| w.len() > 64));
}

#[test]
fn any_sees_the_veth_traffic() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("any");
    let file = fixture("dns_ipv4_udp.pcap");
    let want = file_frames(&file);
    let (mut ring, rx_index) = lab.in_rx(|| {
        let ring = Ring::open(&RingConfig {
            block_timeout_ms: 20,
            ..RingConfig::new("any")
        })
        .expect("open ring on any");
        (ring, support::if_index(RX_IF))
    });
    assert_eq!(ring.ifindex(), 0);
    assert_eq!(ring.link_type(), None);
    assert_eq!(lab.replay(&file), want.len() as u64);
    let got = drain(&mut ring, want.len(), QUIET, LIMIT);
    assert_eq!(got.len(), want.len());
    assert!(got.iter().all(|g| g.ifindex == rx_index));
    let sent: Vec<&[u8]> = want.iter().map(|(d, _)| d.as_slice()).collect();
    assert!(bytes(&got) == sent);
}

#[test]
fn an_idle_interface_times_out_within_the_timeout() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("idle");
    let mut ring = lab.in_rx(|| Ring::open(&rx_config()).expect("open ring"));
    for timeout in [Duration::ZERO, Duration::from_millis(300)] {
        let start = Instant::now();
        assert!(ring.next_block(timeout).unwrap().is_none());
        let took = start.elapsed();
        assert!(took >= timeout, "returned early: {took:?}");
        assert!(took < timeout + Duration::from_millis(500), "took {took:?}");
    }
    // One frame in a block that never fills: the block timeout hands it over.
    lab.replay(&fixture("nf1.pcap"));
    let start = Instant::now();
    let block = ring
        .next_block(Duration::from_secs(5))
        .unwrap()
        .expect("block closed by the block timeout");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(block.num_frames(), 1);
    assert!(block.timed_out());
    assert_eq!(block.frames().count(), 1);
}

#[test]
fn stripped_vlan_tags_are_reported() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("vlan");
    // Ethernet / 802.1Q (priority 3, VLAN 42) / IPv4 / UDP 1234 -> 53, no payload.
    let untagged_tail: Vec<u8> = {
        let mut ip = vec![
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x04, 0xd2, 0, 53,
            0, 8, 0, 0,
        ];
        let sum = !ip[..20]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .fold(0u32, |a, b| {
                let s = a + b;
                (s & 0xffff) + (s >> 16)
            }) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip
    };
    let macs = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    let mut tagged = macs.to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x60, 0x2a, 0x08, 0x00]);
    tagged.extend_from_slice(&untagged_tail);
    let mut untagged = macs.to_vec();
    untagged.extend_from_slice(&[0x08, 0x00]);
    untagged.extend_from_slice(&untagged_tail);
    let pcap = TempFile::new("vlan");
    support::write_pcap(&pcap.0, &[tagged.clone(), untagged.clone()]);

    let mut ring = lab.in_rx(|| Ring::open(&rx_config()).expect("open ring"));
    assert_eq!(lab.replay(&pcap.0), 2);
    let got = drain(&mut ring, 2, QUIET, LIMIT);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].vlan_tci, Some(0x602a));
    assert_eq!(
        got[0].data, untagged,
        "the kernel strips the tag from the bytes"
    );
    assert_eq!(got[0].orig_len as usize, untagged.len());
    assert_eq!(got[1].vlan_tci, None);
    assert_eq!(got[1].data, untagged);
}

#[test]
fn a_new_filter_applies_to_frames_already_in_the_ring() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("refilter");
    let udp = fixture("dns_ipv4_udp.pcap");
    let tcp = fixture("dns_ipv4_tcp.pcap");
    let tcp_frames = file_frames(&tcp);
    let mut ring = lab.in_rx(|| Ring::open(&rx_config()).expect("open ring"));
    // UDP frames land in the ring unfiltered and are not read yet.
    lab.replay(&udp);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        ring.stats().unwrap().packets,
        140,
        "the UDP frames are in the ring"
    );
    let tcp_only = Program::compile("tcp", LinkType::Ethernet).unwrap();
    ring.set_filter(Some(&tcp_only)).unwrap();
    lab.replay(&tcp);
    let got = drain(&mut ring, tcp_frames.len(), QUIET, LIMIT);
    let sent: Vec<&[u8]> = tcp_frames.iter().map(|(d, _)| d.as_slice()).collect();
    assert_eq!(got.len(), sent.len());
    assert!(bytes(&got) == sent, "only the TCP frames, in order");
    // Back to no filter: everything passes again.
    ring.set_filter(None).unwrap();
    lab.replay(&udp);
    let got = drain(&mut ring, 140, QUIET, LIMIT);
    assert_eq!(got.len(), 140);
}

#[test]
fn opening_a_missing_interface_names_it() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("missing");
    let err = lab
        .in_rx(|| Ring::open(&RingConfig::new("wl-nosuch9")))
        .unwrap_err();
    assert!(matches!(err, CaptureError::NoSuchInterface(_)));
    assert_eq!(err.to_string(), "interface wl-nosuch9 not found");
    // A geometry the kernel refuses (a block size that is negative as a C int) names the
    // call and keeps the errno.
    let err = lab
        .in_rx(|| {
            Ring::open(&RingConfig {
                block_size: 1 << 31,
                block_count: 1,
                ..rx_config()
            })
        })
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    assert!(
        err.to_string().starts_with("setsockopt PACKET_RX_RING: "),
        "{err}"
    );
}

#[test]
fn an_interface_going_down_is_reported_once_and_capture_resumes() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("down");
    let mut ring = lab.in_rx(|| Ring::open(&rx_config()).expect("open ring"));
    let set = |state: &str| {
        let ok = std::process::Command::new("ip")
            .args(["-n", &lab.rx, "link", "set", RX_IF, state])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip link set {state}");
    };
    set("down");
    let err = ring
        .next_block(Duration::from_secs(2))
        .expect_err("the socket reports the interface going down");
    assert_eq!(err.errno(), Some(libc::ENETDOWN), "{err}");
    assert!(err.to_string().starts_with("capture socket: "), "{err}");
    // Reported once: the next wait is an ordinary timeout.
    assert!(
        ring.next_block(Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    set("up");
    let file = fixture("dns_ipv4_udp.pcap");
    assert_eq!(lab.replay(&file), 140);
    let got = drain(&mut ring, 140, QUIET, LIMIT);
    assert_eq!(got.len(), 140);
}

#[test]
fn without_cap_net_raw_the_error_says_what_is_needed() {
    if !support::prerequisites() {
        return;
    }
    let lab = Lab::new("perm");
    let err = lab
        .in_rx(|| {
            support::drop_cap_net_raw_in_this_thread();
            Ring::open(&rx_config())
        })
        .unwrap_err();
    assert!(
        matches!(err, CaptureError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert_eq!(err.errno(), Some(libc::EPERM));
    assert_eq!(
        err.to_string(),
        "socket(AF_PACKET): permission denied (live capture needs root or CAP_NET_RAW)"
    );
    // The rest of the process keeps its privileges.
    assert!(lab.in_rx(|| Ring::open(&rx_config())).is_ok());
}
