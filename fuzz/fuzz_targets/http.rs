//! Fuzz target: the HTTP/1.x head parser, and the http handler over arbitrary segment series
//! (both directions, any sequence numbers), which reads keep-alive streams by advancing.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use analyzers::config::{ConfigMap, WindowConfig};
use analyzers::http::Http;
use libfuzzer_sys::fuzz_target;

const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const S: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

fuzz_target!(|data: &[u8]| {
    let _ = wire::http::parse_request(data);
    let _ = wire::http::parse_response(data);
    let _ = wire::http::chunk_line(data);
    let _ = wire::http::trailer_len(data);

    let mut h = Http::new(&ConfigMap::new(), WindowConfig::default(), &[], &[]).expect("builds");
    // Segments: [dir+flags, seq delta, len] then payload.
    let mut rest = data;
    let (mut cseq, mut sseq) = (1000u32, 5000u32);
    let mut ts = 0u64;
    while let [ctl, delta, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        ts += 1_000_000;
        let flags = (ctl >> 1) & 0x1f;
        let client = ctl & 1 == 0;
        let seq = if client { &mut cseq } else { &mut sseq };
        let s = seq.wrapping_add(u32::from(*delta)).wrapping_sub(16);
        if client {
            h.on_segment(C, 40000, S, 80, 0, s, flags | 0x10, payload, ts);
        } else {
            h.on_segment(S, 80, C, 40000, 0, s, flags | 0x10, payload, ts);
        }
        *seq = s.wrapping_add(payload.len() as u32);
    }
    h.rotate_to(1, u64::MAX);
    let b = h.window.live().clone();
    let _ = h.export(&b);
});
