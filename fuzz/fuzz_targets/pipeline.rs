//! Fuzz target: the whole per-worker pipeline (capture decoding, defragmentation, every
//! handler kind, export) over arbitrary bytes; the body is `analyzers::fuzzing::fuzz_pipeline`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = analyzers::fuzzing::fuzz_pipeline(data);
});
