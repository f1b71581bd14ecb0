//! Property tests of the dnstap file path: `inputs::dnstap_file::DnstapFile` over arbitrary
//! and mutated byte streams never panics, and how the input is chunked never changes what
//! it yields.

use std::io::{self, Cursor, Read};

use inputs::dnstap_file::DnstapFile;
use proptest::prelude::*;
use wire::dnstap::fstrm::{ControlType, encode_control, encode_data};
use wire::dnstap::{self, CONTENT_TYPE, Dnstap, DnstapType, Message, MessageType};

/// A reader returning at most `chunk` bytes per call.
struct Trickle(Cursor<Vec<u8>>, usize);

impl Read for Trickle {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.1);
        self.0.read(&mut out[..n])
    }
}

/// Everything a reader yields: payloads, then the end state or the error text.
fn drain(bytes: Vec<u8>, chunk: usize) -> (Vec<Vec<u8>>, String) {
    let mut f =
        match DnstapFile::from_reader(Box::new(Trickle(Cursor::new(bytes), chunk)), "p".into()) {
            Ok(f) => f,
            Err(e) => return (Vec::new(), e.to_string()),
        };
    let mut out = Vec::new();
    loop {
        match f.next_message() {
            Ok(Some(p)) => out.push(p.to_vec()),
            Ok(None) => {
                return (
                    out,
                    format!(
                        "end stopped={} truncated={:?}",
                        f.stopped(),
                        f.truncated_at()
                    ),
                );
            }
            Err(e) => return (out, e.to_string()),
        }
    }
}

fn stream(msgs: &[(u32, u64, Vec<u8>)], stop: bool) -> Vec<u8> {
    let mut v = Vec::new();
    encode_control(&mut v, ControlType::Start, &[CONTENT_TYPE]).unwrap();
    for (kind, sec, dns) in msgs {
        let d = Dnstap {
            version: Some(b"test"),
            kind: Some(DnstapType::Message),
            message: Some(Message {
                kind: Some(MessageType::from_u32(*kind)),
                query_time_sec: Some(*sec),
                query_message: Some(dns),
                ..Message::default()
            }),
            ..Dnstap::default()
        };
        let mut p = Vec::new();
        d.encode(&mut p);
        encode_data(&mut v, &p).unwrap();
    }
    if stop {
        encode_control(&mut v, ControlType::Stop, &[]).unwrap();
    }
    v
}

fn msgs() -> impl Strategy<Value = Vec<(u32, u64, Vec<u8>)>> {
    proptest::collection::vec(
        (
            1u32..16,
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..40),
        ),
        0..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn valid_streams_read_back_whatever_the_chunking(m in msgs(), stop in any::<bool>(), chunk in 1usize..64) {
        let bytes = stream(&m, stop);
        let (whole, end) = drain(bytes.clone(), usize::MAX);
        prop_assert_eq!(&end, &format!("end stopped={stop} truncated=None"));
        prop_assert_eq!(whole.len(), m.len());
        for (p, (kind, sec, dns)) in whole.iter().zip(&m) {
            let d = dnstap::decode(p).unwrap();
            let msg = d.message.unwrap();
            prop_assert_eq!(msg.kind, Some(MessageType::from_u32(*kind)));
            prop_assert_eq!(msg.query_time_sec, Some(*sec));
            prop_assert_eq!(msg.query_message, Some(dns.as_slice()));
            prop_assert_eq!(d.event_message().is_some(), *kind <= 14);
        }
        prop_assert_eq!(drain(bytes, chunk), (whole, end));
    }

    #[test]
    fn cut_streams_report_truncation(m in msgs(), cut in any::<prop::sample::Index>()) {
        let bytes = stream(&m, false);
        let at = cut.index(bytes.len() + 1);
        let (got, end) = drain(bytes[..at].to_vec(), 7);
        prop_assert!(got.len() <= m.len());
        // A cut inside START fails at open; anywhere else it ends cleanly, flagging a
        // partial frame.
        if at < 42 {
            prop_assert!(end.contains("not a dnstap frame streams file"), "{}", end);
        } else {
            prop_assert!(end.starts_with("end stopped=false"), "{}", end);
        }
    }

    #[test]
    fn mutated_streams_never_panic(m in msgs(), flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6), chunk in 1usize..32) {
        let mut bytes = stream(&m, true);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        let (got, _) = drain(bytes.clone(), chunk);
        for p in &got {
            dnstap::fuzz_dnstap(p);
        }
        // Chunking never changes the outcome, even on corrupt input.
        prop_assert_eq!(drain(bytes, usize::MAX).0, got);
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..200), escape in any::<bool>()) {
        if escape && data.len() >= 4 {
            // Start with the control escape so the reader gets past its first check.
            data[..4].fill(0);
        }
        let (a, ea) = drain(data.clone(), 3);
        let (b, eb) = drain(data, usize::MAX);
        prop_assert_eq!(a, b);
        prop_assert_eq!(ea, eb);
    }
}
