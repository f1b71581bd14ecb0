//! Fuzz target: the whole per-worker pipeline (capture decoding, defragmentation, every
//! handler kind, export) over arbitrary bytes, then both renderers; the pipeline body is
//! `analyzers::fuzzing::fuzz_pipeline`.
#![no_main]

use analyzers::window::Period;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let exports = analyzers::fuzzing::fuzz_pipeline(data);
    let period = Period {
        start_ns: 1_000_000_000,
        end_ns: 61_000_000_000,
    };
    let mut prom = outputs::prometheus::PromWriter::default();
    for (schema, e) in &exports {
        let json = outputs::json::handler_object(e, period);
        let text = serde_json::to_string(&json).expect("a handler object serializes");
        let back: serde_json::Value = serde_json::from_str(&text).expect("rendered JSON parses");
        assert!(back.is_object(), "handler object renders as a JSON object");
        prom.add(schema, e, &[("policy".to_string(), "fuzz".to_string())]);
    }
    let text = prom.render();
    // Every sample line is `name{labels} value` or `name value`: never an empty name.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            line.split(' ').count() >= 2 && !line.starts_with(' '),
            "bad Prometheus line: {line}"
        );
    }
});
