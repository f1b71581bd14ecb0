//! Whole-pipeline fuzz body: arbitrary bytes as a capture file or a frame sequence, decoded,
//! defragmented and run through every handler kind, then exported. It is the code behind the
//! `pipeline` fuzz target, kept here so ordinary tests exercise it too; it is not used by the
//! engine.
//!
//! It mirrors what the offline engine does per record (period rotation by event time, IP
//! defragmentation, undecodable frames counted as packets) with small limits so that eviction
//! paths are reached by short inputs.

use flow::defrag::{DefragConfig, Defragmenter, FragKey};
use flow::tcp::TcpConfig;
use wire::capture::{CaptureDecoder, LinkType, Step};

use crate::config::WindowConfig;
use crate::event::HostSpec;
use crate::export::Export;
use crate::pipeline::{Handler, HandlerSpec, Limits, Mode, Pipeline, PolicyPlan};

/// Most records taken from one input (a guard: every step consumes input anyway).
const MAX_RECORDS: usize = 4096;
/// pktvisor's period length, in nanoseconds.
const PERIOD_NS: u64 = 60_000_000_000;
/// Capture timestamps are taken modulo this (unless asked raw): four periods.
const FOLDED_SPAN_NS: u64 = 4 * PERIOD_NS;
/// Link types a frame sequence selects from (index = selector byte modulo the length).
const LINKS: [LinkType; 9] = [
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Other(147),
];

/// Handler kinds and versions every fuzz pipeline runs.
const HANDLERS: [(&str, &str); 6] = [
    ("net", "1.0"),
    ("dns", "1.0"),
    ("dns", "2.0"),
    ("net", "2.0"),
    ("pcap", "1.0"),
    ("tls", "1.0"),
];

/// Builds the pipeline used by [`fuzz_pipeline`]: one independent policy with every handler
/// kind at its default metric groups, and one chained policy (net v2 then dns v2 then dns v1)
/// with every metric group enabled, under small state limits.
pub fn fuzz_pipeline_build() -> Pipeline {
    let window = WindowConfig {
        num_periods: 3,
        topn_count: 5,
        ..WindowConfig::default()
    };
    let limits = Limits {
        tcp: TcpConfig {
            max_connections: 8,
            max_total_bytes: 16 * 1024,
            ..TcpConfig::default()
        },
        max_open_xacts: 16,
    };
    let spec = |kind: &str, version: &str, all: bool| HandlerSpec {
        name: format!("{kind}{version}"),
        kind: kind.to_string(),
        version: Some(version.to_string()),
        enable: if all {
            vec!["all".to_string()]
        } else {
            Vec::new()
        },
        window,
        ..HandlerSpec::default()
    };
    let build = |s: &HandlerSpec| {
        // The specs above are fixed and valid: a failure is a bug in a handler constructor.
        Handler::build(s, format!("fuzz-{}", s.name), &limits).expect("fuzz handler spec builds")
    };
    let independent = PolicyPlan {
        name: "independent".into(),
        chained: false,
        handlers: HANDLERS
            .iter()
            .map(|(k, v)| build(&spec(k, v, false)))
            .collect(),
    };
    let chained = PolicyPlan {
        name: "chained".into(),
        chained: true,
        handlers: [("net", "2.0"), ("dns", "2.0"), ("dns", "1.0")]
            .iter()
            .map(|(k, v)| build(&spec(k, v, true)))
            .collect(),
    };
    // A host block makes direction (in/out) decisions reachable.
    let host = HostSpec::parse("10.0.0.0/8,fe80::/10").expect("fixed host spec parses");
    Pipeline::new(
        vec![independent, chained],
        host,
        vec![5300],
        &limits,
        crate::event::Geo::default(),
    )
}

/// Per-record driver state: the pipeline plus what the engine's reader thread would hold.
struct Driver {
    pipeline: Pipeline,
    defrag: Defragmenter,
    /// Start of the live period and its sequence number (`None` before the first record).
    period: Option<(u64, u32)>,
    /// Records fed as captured packets (what `stats.packets` must count).
    fed: u64,
}

impl Driver {
    fn new() -> Self {
        Self {
            pipeline: fuzz_pipeline_build(),
            defrag: Defragmenter::new(DefragConfig {
                max_datagrams: 4,
                max_bytes: 16 * 1024,
                ..DefragConfig::default()
            }),
            period: None,
            fed: 0,
        }
    }

    /// Feeds one frame as the offline engine does.
    fn frame(&mut self, ts_ns: u64, link: LinkType, orig_len: u32, data: &[u8]) {
        match self.period {
            None => self.period = Some((ts_ns, 0)),
            Some((start, seq)) if ts_ns >= start.saturating_add(PERIOD_NS) => {
                let seq = seq.saturating_add(1);
                self.period = Some((ts_ns, seq));
                self.pipeline.rotate_to(seq, ts_ns);
                self.defrag.expire(ts_ns);
            }
            Some(_) => {}
        }
        let frame_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
        self.fed += 1;
        let Ok(pkt) = wire::packet::decode(link, data) else {
            self.pipeline.process_undecodable(frame_len, ts_ns);
            return;
        };
        let flow = wire::hash::flow_hash(&pkt);
        let Some(frag) = pkt.fragment else {
            self.pipeline
                .process(&pkt, frame_len, ts_ns, flow, Mode::Full);
            return;
        };
        self.pipeline
            .process(&pkt, frame_len, ts_ns, flow, Mode::PacketOnly);
        let key = FragKey {
            src: pkt.src,
            dst: pkt.dst,
            id: frag.id,
            proto: pkt.ip_proto,
            vlan: pkt.vlan,
        };
        let done = self.defrag.insert(
            key,
            pkt.ip_header,
            frag.offset,
            frag.more,
            pkt.ip_payload,
            ts_ns,
        );
        if let Some(datagram) = done {
            // The fragments were already counted; an undecodable datagram adds nothing.
            if let Ok(p) = wire::packet::decode_ip(datagram) {
                let len = u32::try_from(datagram.len()).unwrap_or(u32::MAX);
                let flow = wire::hash::flow_hash(&p);
                self.pipeline.process(&p, len, ts_ns, flow, Mode::AppOnly);
            }
        }
    }

    /// Exports every handler over every kept period and checks what must hold.
    fn finish(&self) -> Vec<(&'static str, Export)> {
        assert_eq!(self.pipeline.stats.packets, self.fed, "packets counted");
        let last = self.period.map_or(0, |(_, s)| s);
        let seqs: Vec<u32> = (last.saturating_sub(2)..=last).rev().collect();
        let mut out = Vec::new();
        for p in &self.pipeline.policies {
            for h in &p.handlers {
                // One merged export covers the merge and export code; exporting single periods
                // as well would triple the cost of each run for little new coverage.
                if let Some(e) = h.export(&seqs) {
                    out.push((h.schema(), e));
                }
            }
        }
        out
    }
}

/// Fuzz body: runs `data` through the whole per-worker pipeline and exports every handler.
///
/// The first byte chooses the reading: even means the rest is a capture file body (pcap or
/// pcapng, decoded record by record, timestamps folded into four periods unless bits 1 to 3
/// of the first byte are all set); odd means the rest is a frame sequence, each frame
/// `[link selector, time step, length, bytes...]` (link from a fixed list; time advancing by
/// the step in hundredths of a second, or by 61 s when its top bit is set; at most 255 bytes
/// per frame). Must never panic or loop whatever the input; returns every handler's schema
/// key and export so callers can render and check them.
pub fn fuzz_pipeline(data: &[u8]) -> Vec<(&'static str, Export)> {
    let mut driver = Driver::new();
    let Some((&mode, rest)) = data.split_first() else {
        return driver.finish();
    };
    if mode % 2 == 0 {
        let raw_time = mode & 0x0e == 0x0e;
        let mut decoder = CaptureDecoder::new();
        let mut at = 0usize;
        for _ in 0..MAX_RECORDS {
            let Some(buf) = rest.get(at..) else { break };
            match decoder.next(buf) {
                Ok(Step::Record { consumed, record }) => {
                    let ts_ns = if raw_time {
                        record.ts_ns
                    } else {
                        // Folded into a few periods: per-second rates over arbitrary timestamps
                        // span up to a day each, which makes every run slow to export.
                        record.ts_ns % FOLDED_SPAN_NS
                    };
                    driver.frame(ts_ns, record.link, record.orig_len, record.data);
                    at = at.saturating_add(consumed.max(1));
                }
                Ok(Step::Skipped { consumed }) => at = at.saturating_add(consumed.max(1)),
                Ok(Step::NeedMore) | Err(_) => break,
            }
        }
    } else {
        let mut rest = rest;
        let mut ts_ns = 1_000_000_000u64;
        for _ in 0..MAX_RECORDS {
            let [sel, step, len, tail @ ..] = rest else {
                break;
            };
            let n = usize::from(*len).min(tail.len());
            let (frame, next) = tail.split_at(n);
            rest = next;
            // The top bit jumps past a period boundary; otherwise time moves by up to 1.27 s.
            // Small steps keep the per-second rate sketches (which fill idle seconds) cheap.
            let step_ns = if step & 0x80 != 0 {
                61_000_000_000
            } else {
                u64::from(*step) * 10_000_000
            };
            ts_ns = ts_ns.saturating_add(step_ns);
            let link = LINKS[usize::from(*sel) % LINKS.len()];
            driver.frame(ts_ns, link, u32::from(*len), frame);
        }
    }
    driver.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Value;

    /// A pcap file body (little endian, microseconds, Ethernet) holding the given frames.
    fn pcap(frames: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (sec, f) in frames {
            out.extend_from_slice(&sec.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    /// An Ethernet/IPv4/UDP frame carrying a DNS query for `a.example` from port `sport`.
    fn dns_query(sport: u16) -> Vec<u8> {
        let dns: &[u8] = &[
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 7, b'e', b'x', b'a', b'm',
            b'p', b'l', b'e', 0, 0, 1, 0, 1,
        ];
        let udp_len = 8 + dns.len() as u16;
        let ip_len = 20 + udp_len;
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0]);
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f.extend_from_slice(&[10, 0, 0, 1, 192, 0, 2, 1]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&53u16.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(dns);
        f
    }

    /// The first integer metric whose JSON path is `path`, over all exports.
    fn int(exports: &[(&str, Export)], path: &[&str]) -> Option<u64> {
        exports
            .iter()
            .flat_map(|(_, e)| e.metrics.iter())
            .find_map(|m| match (&m.value, m.json_path.as_slice() == path) {
                (Value::Int(v), true) => Some(*v),
                _ => None,
            })
    }

    #[test]
    fn empty_input_exports_every_handler() {
        let out = fuzz_pipeline(&[]);
        // 9 handlers, each exported once.
        assert_eq!(out.len(), 9);
    }

    #[test]
    fn capture_body_counts_dns_queries() {
        let q1 = dns_query(40000);
        let q2 = dns_query(40001);
        let out = fuzz_pipeline(&pcap(&[(100, &q1), (101, &q2)]));
        assert_eq!(int(&out, &["wire_packets", "queries"]), Some(2));
        assert_eq!(int(&out, &["total"]), Some(2));
        assert_eq!(int(&out, &["wire_packets", "udp"]), Some(2));
    }

    #[test]
    fn frame_sequence_rotates_periods() {
        let q = dns_query(40000);
        let mut data = vec![1];
        for step in [0u8, 0x80, 0x80, 0x80] {
            data.extend_from_slice(&[0, step, q.len() as u8]);
            data.extend_from_slice(&q);
        }
        let out = fuzz_pipeline(&data);
        // The merged export covers the 3 kept periods: one query each.
        assert_eq!(int(&out, &["wire_packets", "queries"]), Some(3));
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in [1usize, 7, 24, 25, 100, 600] {
            for _ in 0..50 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                assert!(!fuzz_pipeline(&data).is_empty());
            }
        }
    }
}
