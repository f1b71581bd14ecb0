//! Fuzz target: stream-head reassembly over arbitrary segment sequences (reordering,
//! retransmission, caps, consumption); memory must return to zero at the end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flow::stream::fuzz_stream(data));
