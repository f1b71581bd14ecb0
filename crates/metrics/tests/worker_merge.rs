//! Integration test of the public sketch API as the engine uses it: per-worker sketches over
//! shares of one packet stream, merged at output, must match one sketch over the whole
//! stream (exactly, or within the documented bound for top-N).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use metrics::quantiles::{PROMETHEUS_LABELS, RANK_LABELS, RANKS};
use metrics::{Cardinality, Quantiles, Rate, TopN};

/// One synthetic packet: capture second, source address, size, DNS name id.
#[derive(Clone, Copy)]
struct Packet {
    second: u64,
    src: IpAddr,
    size: u64,
    name: u32,
}

fn stream(n: u32, per_second: u64) -> Vec<Packet> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Packet {
                second: 1_700_000_000 + u64::from(i) / per_second,
                src: IpAddr::V4(Ipv4Addr::from((x % 3_000) as u32 | 0x0a00_0000)),
                size: 60 + (x >> 20) % 1_455,
                // Skewed: name 0 is very frequent, then a long tail.
                name: if x.is_multiple_of(5) {
                    0
                } else {
                    (x >> 40) as u32 % 900
                },
            }
        })
        .collect()
}

#[derive(Default)]
struct Sketches {
    sources: Cardinality,
    sizes: Quantiles,
    rate: Rate,
    names: TopN<[u8]>,
    ips: TopN<IpAddr>,
}

impl Sketches {
    fn update(&mut self, p: &Packet, name_buf: &mut Vec<u8>) {
        match p.src {
            IpAddr::V4(a) => self.sources.insert_bytes(&a.octets()),
            IpAddr::V6(a) => self.sources.insert_bytes(&a.octets()),
        }
        self.sizes.record(p.size);
        self.rate.add(p.second, 1);
        name_buf.clear();
        name_buf.extend_from_slice(format!("n{}.example.com", p.name).as_bytes());
        self.names.insert(name_buf, 1);
        self.ips.insert(&p.src, 1);
    }

    fn merge(&mut self, o: &Self) {
        self.sources.merge(&o.sources);
        self.sizes.merge(&o.sizes);
        self.rate.merge(&o.rate);
        self.names.merge(&o.names);
        self.ips.merge(&o.ips);
    }
}

#[test]
fn workers_merged_at_output_match_a_single_sketch() {
    let packets = stream(50_000, 700);
    let mut buf = Vec::new();
    let mut single = Sketches::default();
    let mut workers: Vec<Sketches> = (0..4).map(|_| Sketches::default()).collect();
    for (i, p) in packets.iter().enumerate() {
        single.update(p, &mut buf);
        // Shard by source address, as a flow-hashing dispatcher would, but also spread
        // the same second over every worker.
        let shard = match p.src {
            IpAddr::V4(a) => u32::from(a) as usize,
            IpAddr::V6(_) => i,
        } % 4;
        workers[shard].update(p, &mut buf);
    }
    let mut merged = Sketches::default();
    for w in &workers {
        merged.merge(w);
    }

    assert_eq!(merged.sources, single.sources);
    assert_eq!(merged.sources.estimate(), single.sources.estimate());
    assert!(single.sources.estimate().abs_diff(3_000) < 75);

    assert_eq!(merged.sizes, single.sizes);
    assert_eq!(merged.sizes.quantiles4(), single.sizes.quantiles4());

    assert_eq!(merged.rate, single.rate);
    // 700 packets per second in every complete second.
    assert_eq!(merged.rate.quantile(0.5), Some(700));

    // 901 distinct names < capacity: no purge, so top-N is exact and identical.
    assert_eq!(merged.names.max_error(), 0);
    assert_eq!(merged.names.top(10), single.names.top(10));
    let mut exact: BTreeMap<u32, u64> = BTreeMap::new();
    for p in &packets {
        *exact.entry(p.name).or_default() += 1;
    }
    assert_eq!(
        merged.names.top(1)[0],
        (b"n0.example.com".to_vec(), exact[&0])
    );

    // 3 000 addresses > 2 048 slots: purges happen; the bound must hold after merging.
    let w = merged.ips.total_weight();
    assert_eq!(w, packets.len() as u64);
    assert!(merged.ips.max_error() * 1_024 <= w);
    let mut ip_counts: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for p in &packets {
        *ip_counts.entry(p.src).or_default() += 1;
    }
    for (ip, &t) in &ip_counts {
        assert!(merged.ips.lower_bound(ip) <= t && t <= merged.ips.upper_bound(ip));
    }
}

#[test]
fn minute_buckets_merge_into_a_window() {
    let packets = stream(20_000, 100);
    let mut buf = Vec::new();
    let mut whole = Sketches::default();
    let mut minutes: BTreeMap<u64, Sketches> = BTreeMap::new();
    for p in &packets {
        whole.update(p, &mut buf);
        minutes
            .entry(p.second / 60)
            .or_default()
            .update(p, &mut buf);
    }
    assert!(minutes.len() > 2);
    // Merge newest first, as a window over recent buckets would.
    let mut window = Sketches::default();
    for m in minutes.values().rev() {
        window.merge(m);
    }
    assert_eq!(window.sizes, whole.sizes);
    assert_eq!(window.rate, whole.rate);
    assert_eq!(window.sources, whole.sources);
    assert_eq!(window.names.top(5), whole.names.top(5));
}

#[test]
fn pktvisor_expected_values() {
    let mut q = Quantiles::new();
    q.record(12);
    assert_eq!(q.quantiles4(), Some([12; 4]));
    assert_eq!(RANK_LABELS, ["p50", "p90", "p95", "p99"]);
    assert_eq!(PROMETHEUS_LABELS, ["0.5", "0.9", "0.95", "0.99"]);
    assert_eq!(RANKS, [0.5, 0.9, 0.95, 0.99]);

    let mut h = Quantiles::new();
    for v in [12, 12, 12, 8] {
        h.record(v);
    }
    assert_eq!(h.pktvisor_histogram(), vec![(8, 1), (12, 4)]);
    assert_eq!(h.count(), 4);

    let mut h = Quantiles::new();
    for v in [12, 12, 1, 8, 12] {
        h.record(v);
    }
    assert_eq!(h.quantile(0.5), Some(12));
    assert_eq!(h.pktvisor_histogram(), vec![(1, 1), (8, 2), (12, 5)]);
    assert_eq!(h.count(), 5);
}
