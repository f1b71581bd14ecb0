//! Measures lookup cost on MaxMind DB files: direct database lookups (a cache miss) and cache
//! hits and churn; a measuring tool, not a test.
//!
//! Usage: `cargo run --release -p geo --example lookup_bench [CITY.mmdb ASN.mmdb]` (defaults to
//! pktvisor's test databases under `/work/shared/fixtures/pktvisor`).

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use geo::{GeoCache, GeoDb, Location};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixtures = PathBuf::from("/work/shared/fixtures/pktvisor");
    let city = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures.join("GeoIP2-City-Test.mmdb"));
    let asn = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures.join("GeoIP2-ISP-Test.mmdb"));
    let db = Arc::new(GeoDb::open(Some(&city), Some(&asn))?);

    // A mix of covered and uncovered addresses, v4 and v6.
    let sample: Vec<IpAddr> = [
        "89.160.20.112",
        "216.160.83.56",
        "2a02:dac0::",
        "1.128.0.0",
        "2401:8080::",
        "6.6.6.6",
        "175.16.199.1",
        "81.2.69.160",
    ]
    .iter()
    .map(|s| s.parse().expect("address"))
    .collect();
    for ip in &sample {
        let (loc, asn) = (db.location(*ip), db.asn(*ip));
        println!(
            "{ip:<16} {:<32} {:>10} {:>11}  {asn}",
            loc.location, loc.lat, loc.lon
        );
    }

    let n: usize = std::env::var("GEO_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut loc = Location::default();
    let mut asn = String::new();
    let t = Instant::now();
    for i in 0..n {
        let ip = sample[i % sample.len()];
        db.location_into(ip, &mut loc);
        db.asn_into(ip, &mut asn);
        black_box((&loc, &asn));
    }
    let miss_ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("database lookup (city + asn, no cache): {miss_ns:.0} ns");
    // For instruction counting (`perf stat`) of the uncached path alone.
    if std::env::var_os("GEO_BENCH_MISS_ONLY").is_some() {
        return Ok(());
    }

    let mut cache = GeoCache::new(Arc::clone(&db), geo::DEFAULT_CAPACITY);
    let n = 5_000_000usize;
    let t = Instant::now();
    for i in 0..n {
        black_box(cache.lookup(sample[i % sample.len()]));
    }
    let hit_ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "cache hit (8 hot addresses): {hit_ns:.1} ns  {:?}",
        cache.stats()
    );

    // 20 000 distinct addresses through a 10 000-entry cache in a loop: every lookup misses and
    // evicts, reusing the evicted entry's buffers.
    let distinct: Vec<IpAddr> = (0..20_000u32)
        .map(|k| IpAddr::from((0x5900_0000u32 + k * 37).to_be_bytes()))
        .collect();
    let mut cache = GeoCache::new(Arc::clone(&db), geo::DEFAULT_CAPACITY);
    let n = 400_000usize;
    let t = Instant::now();
    for i in 0..n {
        black_box(cache.lookup(distinct[i % distinct.len()]));
    }
    let churn_ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "cache churn (miss + eviction): {churn_ns:.0} ns  {:?}",
        cache.stats()
    );

    // 10 000 distinct addresses in a 10 000-entry cache: all hits after the first pass.
    let mut cache = GeoCache::new(db, geo::DEFAULT_CAPACITY);
    for ip in &distinct[..10_000] {
        cache.lookup(*ip);
    }
    let n = 5_000_000usize;
    let t = Instant::now();
    for i in 0..n {
        black_box(cache.lookup(distinct[(i * 7919) % 10_000]));
    }
    let wide_ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "cache hit (10 000 addresses, scattered): {wide_ns:.1} ns  {:?}",
        cache.stats()
    );
    Ok(())
}
