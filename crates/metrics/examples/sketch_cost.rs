//! Measures the per-update cost (ns/update) and the accuracy of each sketch; a quick
//! benchmark to run with `--release`, not a statistically rigorous harness.
//!
//! `cargo run -p metrics --release --example sketch_cost`

use std::hint::black_box;
use std::time::Instant;

use metrics::{Cardinality, Quantiles, Rate, TopN};

/// Small deterministic PRNG (xorshift64*) so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Writes the name of key `i` into `buf` (`h0000000.sub.example.com`), as a decoder would
/// hand a name that sits in a cache-hot packet buffer.
fn name_into(buf: &mut [u8; 24], mut i: u64) {
    buf.copy_from_slice(b"h0000000.sub.example.com");
    for d in buf[1..8].iter_mut().rev() {
        *d = b'0' + (i % 10) as u8;
        i /= 10;
    }
}

fn report(name: &str, updates: u64, start: Instant, extra: &str) {
    let ns = start.elapsed().as_nanos() as f64 / updates as f64;
    println!("{name:<44} {ns:>7.1} ns/update  {extra}");
}

fn main() {
    const N: u64 = 5_000_000;

    // Cardinality: distinct u64 keys.
    let mut c = Cardinality::new();
    let t = Instant::now();
    for k in 0..N {
        c.insert_u64(black_box(k));
    }
    let e = c.estimate();
    report(
        "Cardinality::insert_u64 (5M distinct)",
        N,
        t,
        &format!(
            "estimate {e} ({:+.2} %), {} B",
            (e as f64 / N as f64 - 1.0) * 100.0,
            c.heap_bytes()
        ),
    );

    // Cardinality: byte names (~24 B), 1M distinct repeated 5 times.
    let mut c = Cardinality::new();
    let mut buf = [0u8; 24];
    let t = Instant::now();
    for i in 0..N {
        name_into(&mut buf, i % 1_000_000);
        c.insert_bytes(black_box(&buf[..]));
    }
    let e = c.estimate();
    report(
        "Cardinality::insert_bytes (1M distinct x5)",
        N,
        t,
        &format!("estimate {e} ({:+.2} %)", (e as f64 / 1e6 - 1.0) * 100.0),
    );

    // Cardinality accuracy across the range (several seeds).
    for &n in &[1_000u64, 10_000, 30_000, 100_000, 1_000_000] {
        let mut worst: f64 = 0.0;
        let mut mean = 0.0;
        for seed in 1..=8u64 {
            let mut c = Cardinality::new();
            let salt = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for k in 0..n {
                c.insert_u64(k ^ salt);
            }
            let rel = c.estimate() as f64 / n as f64 - 1.0;
            worst = worst.max(rel.abs());
            mean += rel / 8.0;
        }
        println!(
            "  cardinality n={n:<9} mean error {:+.3} %, worst of 8 {:.3} %",
            mean * 100.0,
            worst * 100.0
        );
    }

    // Quantiles: long-tailed values (latency-like, µs).
    let mut rng = Rng(0x1234_5678);
    let values: Vec<u64> = (0..N)
        .map(|_| {
            let r = rng.next();
            (r % 1000) << (r >> 60)
        })
        .collect();
    let mut q = Quantiles::new();
    let t = Instant::now();
    for &v in &values {
        q.record(black_box(v));
    }
    report(
        "Quantiles::record (long-tailed)",
        N,
        t,
        &format!("p50/p90/p95/p99 {:?}, {} B", q.quantiles4(), q.heap_bytes()),
    );
    let mut sorted = values.clone();
    sorted.sort_unstable();
    let exact: Vec<u64> = metrics::quantiles::RANKS
        .iter()
        .map(|r| sorted[((r * N as f64).ceil() as usize).clamp(1, N as usize) - 1])
        .collect();
    println!("  exact p50/p90/p95/p99 {exact:?}");

    // Quantiles: packet sizes (exact region mostly).
    let mut q = Quantiles::new();
    let t = Instant::now();
    for i in 0..N {
        q.record(black_box(60 + (i * 7919) % 1455));
    }
    report(
        "Quantiles::record (packet sizes 60..1514)",
        N,
        t,
        &format!("{} B", q.heap_bytes()),
    );

    // TopN: Zipf-like names over 200k distinct keys.
    let mut rng = Rng(0x9abc_def0);
    let picks: Vec<usize> = (0..N)
        .map(|_| {
            let r = rng.next();
            // Heavy head: a power-law-ish pick.
            ((r % 1_000) * (r >> 54) % 200_000) as usize
        })
        .collect();
    let mut top: TopN<[u8]> = TopN::new();
    let t = Instant::now();
    for &p in &picks {
        name_into(&mut buf, p as u64);
        top.insert(black_box(&buf[..]), 1);
    }
    report(
        "TopN<[u8]>::insert (200k distinct, skewed)",
        N,
        t,
        &format!(
            "max error {}, {} purges, {} B",
            top.max_error(),
            top.purges(),
            top.heap_bytes()
        ),
    );

    // TopN: Zipf-like (log-uniform) names over 200k keys: most updates hit tracked keys.
    let zipf: Vec<u64> = (0..N)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            200_000f64.powf(u) as u64 - 1
        })
        .collect();
    let mut ztop: TopN<[u8]> = TopN::new();
    let t = Instant::now();
    for &p in &zipf {
        name_into(&mut buf, p);
        ztop.insert(black_box(&buf[..]), 1);
    }
    report(
        "TopN<[u8]>::insert (Zipf over 200k)",
        N,
        t,
        &format!(
            "max error {}, {} purges, top {:?}",
            ztop.max_error(),
            ztop.purges(),
            ztop.top(1).first().map(|r| r.1)
        ),
    );

    // TopN: flood of distinct names (worst case: purge path).
    let mut top: TopN<[u8]> = TopN::new();
    let t = Instant::now();
    for i in 0..N {
        name_into(&mut buf, i % 1_000_000);
        top.insert(black_box(&buf[..]), 1);
    }
    report(
        "TopN<[u8]>::insert (flood, all distinct)",
        N,
        t,
        &format!("{} B", top.heap_bytes()),
    );

    // TopN: u16 ports.
    let mut ports: TopN<u16> = TopN::new();
    let t = Instant::now();
    for &p in &picks {
        ports.insert(black_box(&((p % 65_536) as u16)), 1);
    }
    report(
        "TopN<u16>::insert (ports)",
        N,
        t,
        &format!("{} B", ports.heap_bytes()),
    );

    // Rate: 1000 events per second.
    let mut rate = Rate::new();
    let t = Instant::now();
    for i in 0..N {
        rate.add(black_box(1_700_000_000 + i / 1000), 1);
    }
    report(
        "Rate::add (1000 events/s)",
        N,
        t,
        &format!("p50 {:?}", rate.quantile(0.5)),
    );

    // Merge costs.
    let mut a = Cardinality::new();
    let mut b = Cardinality::new();
    for k in 0..100_000u64 {
        a.insert_u64(k);
        b.insert_u64(k + 50_000);
    }
    let t = Instant::now();
    for _ in 0..1000 {
        let mut m = a.clone();
        m.merge(black_box(&b));
        black_box(m.estimate());
    }
    report("Cardinality clone+merge+estimate (dense)", 1000, t, "");
    let t = Instant::now();
    for _ in 0..1000 {
        let mut m = top.clone();
        m.merge(black_box(&top));
        black_box(m.top(10));
    }
    report("TopN<[u8]> clone+merge+top(10) (2048 keys)", 1000, t, "");
}
