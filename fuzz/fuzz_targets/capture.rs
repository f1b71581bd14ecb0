//! Fuzz target: the pcap/pcapng decoder over arbitrary bytes (must never panic or loop).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::capture::{CaptureDecoder, Step};

fuzz_target!(|data: &[u8]| {
    let mut decoder = CaptureDecoder::new();
    let mut at = 0usize;
    // Every successful step consumes at least one byte, so this ends; the bound is a guard.
    for _ in 0..data.len() + 1 {
        let Some(rest) = data.get(at..) else { break };
        match decoder.next(rest) {
            Ok(Step::Record { consumed, record }) => {
                assert!(consumed > 0 && consumed <= rest.len());
                assert!(record.data.len() <= consumed);
                // Feed the frame on, as the real reader does.
                let _ = wire::packet::decode(record.link, record.data);
                at += consumed;
            }
            Ok(Step::Skipped { consumed }) => {
                assert!(consumed > 0 && consumed <= rest.len());
                at += consumed;
            }
            Ok(Step::NeedMore) | Err(_) => break,
        }
    }
});
