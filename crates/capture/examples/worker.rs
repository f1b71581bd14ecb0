//! The agent's capture loop in miniature: N worker threads, each with its own ring, joined in
//! one hash fanout group on an interface; each counts frames and bytes for a while, then
//! prints its counters, the kernel's drop counts and the time spent walking frames.
//! Usage: `worker IFACE [WORKERS] [SECONDS]` (as root or with CAP_NET_RAW).
//! Not part of the library.

use std::time::{Duration, Instant};

use capture::{Fanout, FanoutMode, Ring, RingConfig, Stats};

struct Report {
    frames: u64,
    bytes: u64,
    vlan_tagged: u64,
    walk: Duration,
    stats: Stats,
}

fn worker(config: &RingConfig, run_for: Duration) -> Result<Report, capture::CaptureError> {
    let mut ring = Ring::open(config)?;
    let mut r = Report {
        frames: 0,
        bytes: 0,
        vlan_tagged: 0,
        walk: Duration::ZERO,
        stats: Stats::default(),
    };
    let end = Instant::now() + run_for;
    while Instant::now() < end {
        // A worker would rotate its 60-second window here when the wall clock says so.
        let Some(block) = ring.next_block(Duration::from_millis(100))? else {
            continue;
        };
        let t = Instant::now();
        for frame in &block {
            r.frames += 1;
            r.bytes += u64::from(frame.orig_len);
            r.vlan_tagged += u64::from(frame.vlan_tci.is_some());
        }
        r.walk += t.elapsed();
    }
    r.stats = ring.stats()?;
    Ok(r)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iface = args.next().unwrap_or_else(|| "any".into());
    let workers: u16 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let config = RingConfig {
        fanout: Some(Fanout {
            group_id: (std::process::id() & 0xffff) as u16,
            mode: FanoutMode::Hash,
            defrag: true,
        }),
        ..RingConfig::new(&iface)
    };
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| s.spawn(|| worker(&config, Duration::from_secs(seconds))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let mut total = 0;
    for (i, r) in reports.into_iter().enumerate() {
        match r {
            Ok(r) => {
                total += r.frames;
                let ns = if r.frames > 0 {
                    r.walk.as_nanos() as f64 / r.frames as f64
                } else {
                    0.0
                };
                println!(
                    "worker {i}: {} frames, {} bytes, {} vlan-tagged, {:.1} ns/frame walking, kernel: {} packets, {} drops, {} freezes",
                    r.frames,
                    r.bytes,
                    r.vlan_tagged,
                    ns,
                    r.stats.packets,
                    r.stats.drops,
                    r.stats.freezes
                );
            }
            Err(e) => eprintln!("worker {i}: {e}"),
        }
    }
    println!("total: {total} frames");
}
