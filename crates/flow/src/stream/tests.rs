//! Unit and property tests of the stream-head reassembler: in-place delivery, reordering,
//! retransmissions, gaps, caps and eviction.

use super::*;
use core::net::Ipv4Addr;
use proptest::prelude::*;

const C: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const S: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

/// Every call the consumer got.
#[derive(Default)]
struct Rec {
    calls: Vec<(Vec<u8>, Direction, Cut)>,
}

/// Feeds one segment to a consumer that wants `want` bytes per direction; returns whether the
/// connection is finished for it.
fn seg(
    r: &mut StreamHeads<u32>,
    rec: &mut Rec,
    want: usize,
    from_client: bool,
    seq: u32,
    f: u8,
    payload: &[u8],
) -> bool {
    let (src, sp, dst, dp) = if from_client {
        (C, 40_000, S, 443)
    } else {
        (S, 443, C, 40_000)
    };
    r.segment(src, sp, dst, dp, 0, seq, f, payload, 0, &mut |h: Head<
        '_,
        u32,
    >| {
        *h.user += 1;
        rec.calls.push((h.bytes.to_vec(), h.dir, h.cut));
        if h.bytes.len() >= want {
            Verdict::Done
        } else {
            Verdict::NeedMore(want)
        }
    })
}

#[test]
fn first_segment_is_read_in_place() {
    let mut r = StreamHeads::<u32>::default();
    let mut rec = Rec::default();
    seg(&mut r, &mut rec, 4, true, 100, flags::SYN, &[]);
    seg(&mut r, &mut rec, 4, true, 101, flags::ACK, b"hello");
    assert_eq!(
        rec.calls,
        vec![(b"hello".to_vec(), Direction::Initiator, Cut::No)]
    );
    assert_eq!(r.buffered_bytes(), 0);
    // Done: later data of that direction is not offered again.
    seg(&mut r, &mut rec, 4, true, 106, flags::ACK, b"more");
    assert_eq!(rec.calls.len(), 1);
}

#[test]
fn split_reordered_and_retransmitted_segments_form_the_head() {
    let mut r = StreamHeads::<u32>::default();
    let mut rec = Rec::default();
    seg(&mut r, &mut rec, 10, false, 7, flags::SYN | flags::ACK, &[]);
    seg(&mut r, &mut rec, 10, false, 8, flags::ACK, b"abc");
    // "ghij" arrives before "def"; "abc" is retransmitted.
    seg(&mut r, &mut rec, 10, false, 14, flags::ACK, b"ghij");
    seg(&mut r, &mut rec, 10, false, 8, flags::ACK, b"abc");
    seg(&mut r, &mut rec, 10, false, 11, flags::ACK, b"def");
    let last = rec.calls.last().expect("called");
    assert_eq!(last.0, b"abcdefghij".to_vec());
    assert_eq!((last.1, last.2), (Direction::Responder, Cut::No));
    // Called at 3 bytes (first segment) and at 10; not for the held piece or the retransmit.
    assert_eq!(rec.calls.len(), 2);
    assert_eq!(r.stats().retransmits, 1);
    assert_eq!(r.stats().out_of_order, 1);
    assert_eq!(r.buffered_bytes(), 0, "buffer returned once done");
}

#[test]
fn gaps_fin_and_head_full_cut_the_direction() {
    let cfg = StreamConfig {
        head_bytes: 8,
        max_out_of_order: 1,
        ..StreamConfig::default()
    };
    let mut r = StreamHeads::<u32>::new(cfg);
    let mut rec = Rec::default();
    seg(&mut r, &mut rec, 100, true, 0, flags::ACK, b"ab");
    seg(&mut r, &mut rec, 100, true, 4, flags::ACK, b"x");
    seg(&mut r, &mut rec, 100, true, 6, flags::ACK, b"y");
    assert_eq!(rec.calls.last().map(|c| c.2), Some(Cut::Gap));
    assert_eq!(rec.calls.last().map(|c| c.0.clone()), Some(b"ab".to_vec()));
    assert_eq!(r.stats().gaps, 1);

    let mut rec = Rec::default();
    seg(&mut r, &mut rec, 100, false, 0, flags::ACK, b"0123456789");
    assert_eq!(
        rec.calls.last().map(|c| (c.0.clone(), c.2)),
        Some((b"01234567".to_vec(), Cut::HeadFull))
    );

    let mut r = StreamHeads::<u32>::default();
    let mut rec = Rec::default();
    seg(&mut r, &mut rec, 100, true, 0, flags::ACK, b"ab");
    seg(
        &mut r,
        &mut rec,
        100,
        true,
        2,
        flags::ACK | flags::FIN,
        b"cd",
    );
    assert_eq!(
        rec.calls.last().map(|c| (c.0.clone(), c.2)),
        Some((b"abcd".to_vec(), Cut::Closed))
    );
    assert_eq!(r.buffered_bytes(), 0);
}

#[test]
fn table_and_budget_are_capped() {
    let cfg = StreamConfig {
        max_connections: 10,
        max_total_bytes: 4096,
        ..StreamConfig::default()
    };
    let mut r = StreamHeads::<u32>::new(cfg);
    let mut cuts = 0u64;
    let mut count = |h: Head<'_, u32>| {
        if h.cut != Cut::No {
            cuts += 1;
        }
        Verdict::NeedMore(100)
    };
    for i in 0..100u16 {
        r.segment(
            C,
            1000 + i,
            S,
            443,
            0,
            0,
            flags::ACK,
            b"partial",
            u64::from(i),
            &mut count,
        );
        assert!(r.connections() <= 10);
        assert!(r.buffered_bytes() <= 4096);
    }
    assert_eq!(r.stats().evicted_cap, 90);
    assert!(r.stats().budget_refusals > 0);
    r.expire(u64::MAX, &mut count);
    // Every connection's waiting direction was told exactly once why it stopped.
    assert_eq!(cuts, 100);
    assert_eq!((r.connections(), r.buffered_bytes()), (0, 0));
}

#[test]
fn user_state_follows_the_connection_and_resets_on_reuse() {
    let mut r = StreamHeads::<u32>::default();
    let mut rec = Rec::default();
    seg(&mut r, &mut rec, 1, true, 10, flags::SYN, &[]);
    seg(&mut r, &mut rec, 1, true, 11, flags::ACK, b"a");
    seg(&mut r, &mut rec, 1, false, 50, flags::ACK, b"b");
    assert_eq!(rec.calls.len(), 2);
    let mut seen = 0;
    r.segment(C, 40_000, S, 443, 0, 999, flags::SYN, &[], 0, &mut |_| {
        Verdict::Done
    });
    r.segment(C, 40_000, S, 443, 0, 1000, flags::ACK, b"z", 0, &mut |h| {
        seen = *h.user;
        Verdict::Done
    });
    assert_eq!(seen, 0, "a new ISN starts a new connection");
    assert_eq!(r.stats().connections, 2);
}

#[test]
fn consumed_bytes_are_dropped_and_the_next_message_becomes_the_head() {
    let mut r = StreamHeads::<u32>::default();
    let mut heads = Vec::new();
    // Messages are "<len byte><body>"; the consumer consumes each complete one.
    let mut on = |h: Head<'_, u32>| {
        heads.push(h.bytes.to_vec());
        match h.bytes.first() {
            Some(&n) if h.bytes.len() > usize::from(n) => Verdict::Advance(usize::from(n) + 1),
            Some(&n) => Verdict::NeedMore(usize::from(n) + 1),
            None => Verdict::NeedMore(1),
        }
    };
    r.segment(
        C,
        1,
        S,
        2,
        0,
        0,
        flags::ACK,
        &[2, b'a', b'b', 3, b'x'],
        0,
        &mut on,
    );
    r.segment(C, 1, S, 2, 0, 5, flags::ACK, b"yz", 0, &mut on);
    r.segment(C, 1, S, 2, 0, 7, flags::ACK, &[1, b'q'], 0, &mut on);
    assert_eq!(
        heads,
        vec![
            vec![2, b'a', b'b', 3, b'x'],
            vec![3, b'x', b'y', b'z'],
            vec![1, b'q'],
        ]
    );
    assert_eq!(r.buffered_bytes(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Whatever the segmentation, reordering and duplication, the consumer sees prefixes of
    /// the stream, and once the first segment came first, the whole stream.
    #[test]
    fn any_segmentation_yields_the_stream_prefix(
        stream in proptest::collection::vec(any::<u8>(), 1..200),
        cuts in proptest::collection::vec(1usize..40, 1..20),
        swaps in proptest::collection::vec((1usize..30, 1usize..30), 0..4),
        dups in proptest::collection::vec(0usize..30, 0..4),
    ) {
        let mut segs = Vec::new();
        let mut pos = 0;
        for c in cuts.iter().cycle() {
            if pos >= stream.len() { break; }
            let end = (pos + c).min(stream.len());
            segs.push((pos, end));
            pos = end;
        }
        for (a, b) in swaps {
            if a < segs.len() && b < segs.len() && a.abs_diff(b) <= 2 { segs.swap(a, b); }
        }
        for d in dups {
            if let Some(s) = segs.get(d).copied() { segs.push(s); }
        }
        let mut r = StreamHeads::<u32>::new(StreamConfig { max_out_of_order: 8, ..StreamConfig::default() });
        let mut last: Vec<u8> = Vec::new();
        for (s, e) in segs {
            r.segment(C, 1, S, 2, 0, 5000u32.wrapping_add(s as u32), flags::ACK, &stream[s..e], 0, &mut |h| {
                assert_eq!(h.bytes, &stream[..h.bytes.len()]);
                last = h.bytes.to_vec();
                Verdict::NeedMore(h.bytes.len() + 1)
            });
        }
        prop_assert_eq!(&last, &stream);
        r.expire(u64::MAX, &mut |_| Verdict::Done);
        prop_assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn fuzz_entry_holds_its_invariants(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzz_stream(&data);
    }
}

/// A consumer of `len:body` records: reads the decimal length up to ':', records the header,
/// then advances past the body without seeing it.
fn records(r: &mut StreamHeads<u32>, got: &mut Vec<Vec<u8>>, seq: u32, payload: &[u8]) {
    r.segment(C, 40_000, S, 80, 0, seq, flags::ACK, payload, 0, &mut |h| {
        let mut used = 0;
        let mut skip = 0;
        let mut rest = h.bytes;
        while let Some(colon) = rest.iter().position(|&b| b == b':') {
            let head = rest.get(..colon).unwrap_or_default();
            got.push(head.to_vec());
            let n: usize = core::str::from_utf8(head)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let after = colon + 1;
            if rest.len() >= after + n {
                used += after + n;
                rest = rest.get(after + n..).unwrap_or_default();
            } else {
                used += after;
                skip = n;
                break;
            }
        }
        if used + skip == 0 {
            Verdict::NeedMore(h.bytes.len() + 1)
        } else {
            Verdict::Advance(used + skip)
        }
    });
}

#[test]
fn advance_reads_a_stream_of_messages_and_skips_bodies_unbuffered() {
    let mut r = StreamHeads::<u32>::default();
    let mut got = Vec::new();
    // Two whole records, then the head of a third whose 10-byte body spans segments.
    records(&mut r, &mut got, 1, b"3:abc2:xy10:0123");
    assert_eq!(got, vec![b"3".to_vec(), b"2".to_vec(), b"10".to_vec()]);
    assert_eq!(r.buffered_bytes(), 0, "a skipped body is never buffered");
    // The rest of the body, then a record head split in two, retransmission included.
    records(&mut r, &mut got, 17, b"456789");
    records(&mut r, &mut got, 23, b"1");
    records(&mut r, &mut got, 23, b"1");
    records(&mut r, &mut got, 24, b"2:");
    assert_eq!(got.len(), 4);
    assert_eq!(got.last().map(Vec::as_slice), Some(&b"12"[..]));
    // A record ahead of a hole is placed, then read once the hole fills.
    records(&mut r, &mut got, 38, b"1:z");
    records(&mut r, &mut got, 26, b"aaaaaaaaaaaa");
    assert_eq!(got.len(), 5);
    assert_eq!(got.last().map(Vec::as_slice), Some(&b"1"[..]));
}

#[test]
fn tracked_connection_stays_compact() {
    // Out-of-order pieces live out of line: a connection costs its two directions' counters
    // and buffer handles, not MAX_PIECES pairs each.
    assert!(size_of::<Conn<()>>() <= 208);
}

#[test]
fn cap_hits_ignore_segments_and_report_deltas() {
    let earlier = StreamStats {
        segments: 10,
        gaps: 1,
        ..StreamStats::default()
    };
    let mut now = earlier;
    now.segments = 50;
    now.retransmits = 3;
    assert_eq!(now.cap_hits_since(&earlier), None);
    now.gaps = 4;
    now.budget_refusals = 2;
    assert_eq!(
        now.cap_hits_since(&earlier),
        Some(CapHits {
            gaps: 3,
            budget_refusals: 2,
            ..CapHits::default()
        })
    );
}

#[test]
fn a_connection_is_finished_once_both_directions_are_done() {
    let mut r = StreamHeads::<u32>::default();
    let mut rec = Rec::default();
    assert!(!seg(&mut r, &mut rec, 4, true, 100, flags::SYN, &[]));
    assert!(!seg(
        &mut r,
        &mut rec,
        4,
        false,
        500,
        flags::SYN | flags::ACK,
        &[]
    ));
    // One direction done, the other not yet started.
    assert!(!seg(&mut r, &mut rec, 4, true, 101, flags::ACK, b"hello"));
    // A direction still waiting for more keeps the connection open.
    assert!(!seg(&mut r, &mut rec, 4, false, 501, flags::ACK, b"ab"));
    assert!(seg(&mut r, &mut rec, 4, false, 503, flags::ACK, b"cd"));
    // Later segments change nothing and say so again.
    assert!(seg(&mut r, &mut rec, 4, true, 106, flags::ACK, b"more"));
    assert_eq!(rec.calls.len(), 3);
    // A SYN with a new ISN starts a new connection on the same ports: not finished.
    assert!(!seg(&mut r, &mut rec, 4, true, 9_000, flags::SYN, &[]));
    assert!(!seg(&mut r, &mut rec, 4, true, 9_001, flags::ACK, b"again"));
    assert_eq!(rec.calls.len(), 4);
    // An RST forgets it.
    assert!(!seg(&mut r, &mut rec, 4, false, 700, flags::RST, &[]));
    assert_eq!(r.connections(), 0);
}

/// One segment of the hinted-lookup property test: which of a few connections (and which way),
/// flags, a sequence number step, payload length, and whether the caller forgets its hint.
type HintOp = (u8, u8, u8, u8, bool);

/// A consumer call as the hinted-lookup test records it.
type HintCall = (Vec<u8>, Direction, Cut, u32);

/// Feeds `ops` to a reassembler, with hints kept per connection as a flow table would and the
/// idle check skipped while nothing can be idle (`fast`), or with plain lookups and the idle
/// check on every segment; records every consumer call, every return value and the final
/// counters. Packet time jitters backwards now and then.
fn run_hinted(ops: &[HintOp], fast: bool) -> (Vec<HintCall>, Vec<bool>) {
    let hinted = fast;
    let mut r: StreamHeads<u32> = StreamHeads::new(StreamConfig {
        max_connections: 3,
        head_bytes: 48,
        max_total_bytes: 200,
        max_out_of_order: 2,
        idle_timeout_ns: 40,
        hash_seed: 7,
    });
    let hosts = [
        C,
        S,
        IpAddr::V6(core::net::Ipv6Addr::LOCALHOST),
        IpAddr::V6(core::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ];
    let mut hints = [0u64; 8];
    let mut seqs = [0u32; 16];
    let mut calls = Vec::new();
    let mut finished = Vec::new();
    for (t, &(conn, f, step, len, forget)) in ops.iter().enumerate() {
        let c = usize::from(conn % 8);
        let from_a = conn & 0x80 != 0;
        // Four connections of IPv4 hosts, four of IPv6 hosts; ports differ per connection.
        let (a, b) = if c < 4 {
            (hosts[0], hosts[1])
        } else {
            (hosts[2], hosts[3])
        };
        let (pa, pb) = (1000 + c as u16, 80);
        let (src, sport, dst, dport) = if from_a {
            (a, pa, b, pb)
        } else {
            (b, pb, a, pa)
        };
        let dir = c * 2 + usize::from(from_a);
        seqs[dir] = seqs[dir].wrapping_add(u32::from(step % 24));
        let payload: Vec<u8> = (0..len % 20).map(|i| i.wrapping_add(step)).collect();
        if forget {
            hints[c] = 0;
        }
        let (sa, da) = (crate::addr_bits(src), crate::addr_bits(dst));
        let hint = hinted.then(|| Hint {
            slot: &mut hints[c],
            src_is_a: (sa, sport) <= (da, dport),
        });
        if !fast {
            r.quiet_until = 0;
        }
        let done = r.segment_hinted(
            src,
            sport,
            dst,
            dport,
            0,
            seqs[dir],
            f & 0x17,
            &payload,
            t as u64 * 3 + u64::from(len % 4) * 7,
            hint,
            &mut |h: Head<'_, u32>| {
                *h.user += 1;
                calls.push((h.bytes.to_vec(), h.dir, h.cut, *h.user));
                match h.bytes.len() % 4 {
                    0 => Verdict::Done,
                    1 => Verdict::Advance(h.bytes.len().min(5)),
                    _ => Verdict::NeedMore(h.bytes.len() + 3),
                }
            },
        );
        finished.push(done);
    }
    r.expire(u64::MAX, &mut |h| {
        calls.push((h.bytes.to_vec(), h.dir, h.cut, *h.user));
        Verdict::Done
    });
    let s = r.stats();
    finished.extend([s.connections, s.evicted_cap, s.timed_out, s.gaps].map(|n| n % 2 == 1));
    (calls, finished)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A caller's hint and the skipped idle checks change nothing but the work: every consumer
    /// call, return value and counter is the same as with plain lookups and checks, through
    /// evictions, timeouts, resets, reused ports, forgotten hints and time going backwards.
    #[test]
    fn hinted_segments_match_plain_lookups(
        ops in proptest::collection::vec(
            (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), proptest::bool::weighted(0.1)),
            0..120,
        )
    ) {
        prop_assert_eq!(run_hinted(&ops, true), run_hinted(&ops, false));
    }
}

#[test]
fn a_hint_skips_the_lookup_only_while_its_entry_lives() {
    let mut r = StreamHeads::<u32>::default();
    let mut slot = 0u64;
    let src_is_a = (crate::addr_bits(C), 40_000) <= (crate::addr_bits(S), 443);
    let feed = |r: &mut StreamHeads<u32>, slot: &mut u64, f: u8, payload: &[u8]| {
        r.segment_hinted(
            C,
            40_000,
            S,
            443,
            0,
            1,
            f,
            payload,
            0,
            Some(Hint { slot, src_is_a }),
            &mut |_| Verdict::NeedMore(1 << 12),
        )
    };
    feed(&mut r, &mut slot, flags::ACK, b"GET");
    let first = slot;
    assert_ne!(first >> 32, 0, "the hint names a live generation");
    feed(&mut r, &mut slot, flags::ACK, b"GET");
    assert_eq!(slot, first);
    // An RST frees the entry: the old hint no longer matches, and the next data starts a new
    // entry under a new generation.
    feed(&mut r, &mut slot, flags::RST, b"");
    assert_eq!(r.connections(), 0);
    feed(&mut r, &mut slot, flags::ACK, b"GET");
    assert_eq!(r.connections(), 1);
    assert_ne!(slot >> 32, first >> 32);
}
