//! The receiving end of one Frame Streams connection: which control frame may come when, what
//! to answer, and where the data frames are.
//!
//! A writer on a socket opens either bidirectionally (`READY` offering content types, answered
//! by `ACCEPT`, then `START`) or unidirectionally (`START` straight away); it sends data frames,
//! then `STOP`, which a bidirectional writer expects to be answered by `FINISH`. [`Receiver`]
//! follows that order over the bytes the caller has read and says what to do next. It is pure:
//! it neither reads nor writes sockets, keeps no clock (timeouts are the caller's) and does not
//! look inside data frames (that is [`super::decode`]).

use thiserror::Error;

use super::fstrm::{Control, ControlType, FrameDecoder, FstrmError, Reply, SpanStep, reply_to};

/// Where a connection is in the Frame Streams protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Nothing received yet: `READY` or `START` may come.
    Opening,
    /// `READY` answered with `ACCEPT`: `START` must come.
    Accepted,
    /// `START` received: data frames until `STOP`.
    Streaming,
    /// `STOP` received: the stream is over.
    Stopped,
}

impl Phase {
    /// What the receiver waits for in this phase (for error messages).
    pub fn expecting(self) -> &'static str {
        match self {
            Self::Opening => "ready or start",
            Self::Accepted => "start",
            Self::Streaming => "data or stop",
            Self::Stopped => "nothing after stop",
        }
    }
}

/// The kind of a frame, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A data frame.
    Data,
    /// A control frame of this type.
    Control(ControlType),
}

/// Why a connection cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The bytes are not valid Frame Streams framing (a bad control frame, a data frame over
    /// the limit).
    #[error("frame streams: {0}")]
    Framing(#[from] FstrmError),
    /// `READY` does not offer the expected content type, or `START` names another one.
    #[error("content type mismatch")]
    ContentTypeMismatch,
    /// A frame that the protocol does not allow in this phase.
    #[error("unexpected {frame:?} frame while waiting for {}", phase.expecting())]
    Unexpected {
        /// The phase the receiver was in.
        phase: Phase,
        /// What arrived instead.
        frame: FrameKind,
    },
}

impl SessionError {
    /// A stable, machine-readable name for counting errors by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Framing(FstrmError::DataFrameTooLong(_)) => "frame_too_large",
            Self::Framing(FstrmError::ContentTypeMismatch) | Self::ContentTypeMismatch => {
                "content_type_mismatch"
            }
            Self::Framing(_) => "bad_control_frame",
            Self::Unexpected { .. } => "unexpected_frame",
        }
    }
}

/// What the caller does after one [`Receiver::next`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The buffer does not hold a whole frame: read more and call again.
    NeedMore,
    /// A control frame was accepted; drop `consumed` bytes and send `reply` (see
    /// [`super::fstrm::encode_reply`]). After `STOP` the phase is [`Phase::Stopped`] and the
    /// connection should be closed once the reply is sent.
    Control {
        /// Bytes of the buffer this frame used.
        consumed: usize,
        /// The control type received.
        kind: ControlType,
        /// What to send back.
        reply: Reply,
    },
    /// A data frame whose payload is at `start..start + len` of the buffer; drop `consumed`
    /// bytes afterwards.
    Data {
        /// Bytes of the buffer this frame used.
        consumed: usize,
        /// Offset of the payload in the buffer.
        start: usize,
        /// Payload length.
        len: usize,
    },
}

/// The protocol state of one incoming Frame Streams connection.
#[derive(Debug, Clone)]
pub struct Receiver<'ct> {
    decoder: FrameDecoder,
    content_type: &'ct [u8],
    phase: Phase,
    bidirectional: bool,
}

impl<'ct> Receiver<'ct> {
    /// A receiver expecting `content_type` and data frames of at most `max_frame_len` bytes.
    pub fn new(content_type: &'ct [u8], max_frame_len: usize) -> Self {
        Self {
            decoder: FrameDecoder::with_max_frame_len(max_frame_len),
            content_type,
            phase: Phase::Opening,
            bidirectional: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// True once the writer opened with `READY` (it then expects `ACCEPT` and `FINISH`).
    pub fn bidirectional(&self) -> bool {
        self.bidirectional
    }

    /// The content type this receiver expects.
    pub fn content_type(&self) -> &'ct [u8] {
        self.content_type
    }

    /// Decodes the frame at the start of `buf` (the unread bytes, from a frame boundary) and
    /// moves the protocol on. After an error the connection must be dropped: the receiver
    /// does not resynchronise.
    pub fn next(&mut self, buf: &[u8]) -> Result<Event, SessionError> {
        let unexpected = |phase, frame| SessionError::Unexpected { phase, frame };
        if self.phase != Phase::Streaming {
            // Before START only control frames may come; a non-zero length here is garbage
            // (or a writer that skipped the handshake) and fails at once, without waiting for
            // the bytes its length claims.
            if let Some(head) = buf.first_chunk::<4>()
                && *head != [0; 4]
            {
                return Err(unexpected(self.phase, FrameKind::Data));
            }
        }
        let step = self.decoder.next_span(buf)?;
        let (consumed, body) = match step {
            SpanStep::NeedMore => return Ok(Event::NeedMore),
            SpanStep::Data {
                consumed,
                start,
                len,
            } => {
                return Ok(Event::Data {
                    consumed,
                    start,
                    len,
                });
            }
            SpanStep::Control {
                consumed,
                body_start,
                body_len,
                ..
            } => (
                consumed,
                buf.get(body_start..body_start.saturating_add(body_len))
                    .unwrap_or_default(),
            ),
        };
        let control = Control::parse(body)?;
        let kind = control.kind;
        let reply = match (self.phase, kind) {
            (Phase::Opening, ControlType::Ready) => {
                let reply = reply_to(&control, self.content_type).map_err(content_type)?;
                self.bidirectional = true;
                self.phase = Phase::Accepted;
                reply
            }
            (Phase::Opening | Phase::Accepted, ControlType::Start) => {
                reply_to(&control, self.content_type).map_err(content_type)?;
                self.phase = Phase::Streaming;
                Reply::Nothing
            }
            (Phase::Streaming, ControlType::Stop) => {
                self.phase = Phase::Stopped;
                // A unidirectional writer reads nothing back.
                if self.bidirectional {
                    Reply::Finish
                } else {
                    Reply::Nothing
                }
            }
            (phase, kind) => return Err(unexpected(phase, FrameKind::Control(kind))),
        };
        Ok(Event::Control {
            consumed,
            kind,
            reply,
        })
    }
}

fn content_type(e: FstrmError) -> SessionError {
    match e {
        FstrmError::ContentTypeMismatch => SessionError::ContentTypeMismatch,
        other => SessionError::Framing(other),
    }
}

/// Fuzzing entry point: runs a receiver over `data` cut into pieces at positions the first
/// bytes choose, checking that every answer stays within the buffer it was given.
pub fn fuzz_session(data: &[u8]) {
    let (cuts, stream) = data.split_at(data.len().min(4));
    let mut rx = Receiver::new(super::CONTENT_TYPE, 4096);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0usize;
    let mut cut = cuts.iter().map(|&c| usize::from(c) + 1).cycle();
    while fed < stream.len() {
        let n = cut.next().unwrap_or(stream.len()).min(stream.len() - fed);
        buf.extend_from_slice(stream.get(fed..fed + n).unwrap_or_default());
        fed += n;
        loop {
            match rx.next(&buf) {
                Ok(Event::NeedMore) => break,
                Ok(Event::Control { consumed, .. }) => {
                    assert!(consumed >= 12 && consumed <= buf.len());
                    buf.drain(..consumed);
                }
                Ok(Event::Data {
                    consumed,
                    start,
                    len,
                }) => {
                    assert!(start + len == consumed && consumed <= buf.len() && len <= 4096);
                    buf.drain(..consumed);
                }
                Err(e) => {
                    assert!(!e.reason().is_empty());
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnstap::CONTENT_TYPE as CT;
    use crate::dnstap::fstrm::{encode_control, encode_data};
    use proptest::prelude::*;

    fn control(kind: ControlType, cts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_control(&mut v, kind, cts).unwrap();
        v
    }

    fn data(p: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_data(&mut v, p).unwrap();
        v
    }

    /// Runs `rx` over the whole of `bytes`, returning the events (data as payloads) and the
    /// error that ended it, if any.
    fn run(rx: &mut Receiver<'_>, bytes: &[u8]) -> (Vec<String>, Option<SessionError>) {
        let (events, err, _) = run_counting(rx, bytes);
        (events, err)
    }

    /// [`run`], also returning the bytes consumed.
    fn run_counting(
        rx: &mut Receiver<'_>,
        bytes: &[u8],
    ) -> (Vec<String>, Option<SessionError>, usize) {
        let mut out = Vec::new();
        let mut rest = bytes;
        loop {
            match rx.next(rest) {
                Ok(Event::NeedMore) => return (out, None, bytes.len() - rest.len()),
                Ok(Event::Control {
                    consumed,
                    kind,
                    reply,
                }) => {
                    out.push(format!("{kind:?}->{reply:?}"));
                    rest = &rest[consumed..];
                }
                Ok(Event::Data {
                    consumed,
                    start,
                    len,
                }) => {
                    out.push(String::from_utf8_lossy(&rest[start..start + len]).into_owned());
                    rest = &rest[consumed..];
                }
                Err(e) => return (out, Some(e), bytes.len() - rest.len()),
            }
        }
    }

    #[test]
    fn bidirectional_writer() {
        let mut s = control(ControlType::Ready, &[b"other", CT]);
        s.extend(control(ControlType::Start, &[CT]));
        s.extend(data(b"one"));
        s.extend(data(b"two"));
        s.extend(control(ControlType::Stop, &[]));
        let mut rx = Receiver::new(CT, 100);
        assert_eq!(rx.phase(), Phase::Opening);
        let (events, err) = run(&mut rx, &s);
        assert_eq!(err, None);
        assert_eq!(
            events,
            [
                "Ready->Accept",
                "Start->Nothing",
                "one",
                "two",
                "Stop->Finish"
            ]
        );
        assert!(rx.bidirectional());
        assert_eq!(rx.phase(), Phase::Stopped);
    }

    #[test]
    fn unidirectional_writer_gets_no_finish() {
        let mut s = control(ControlType::Start, &[]);
        s.extend(data(b"x"));
        s.extend(control(ControlType::Stop, &[]));
        let mut rx = Receiver::new(CT, 100);
        let (events, err) = run(&mut rx, &s);
        assert_eq!(err, None);
        assert_eq!(events, ["Start->Nothing", "x", "Stop->Nothing"]);
        assert!(!rx.bidirectional());
    }

    #[test]
    fn content_type_is_checked_on_ready_and_start() {
        for first in [
            control(ControlType::Ready, &[b"test:hello"]),
            control(ControlType::Start, &[b"test:hello"]),
        ] {
            let mut rx = Receiver::new(CT, 100);
            let (events, err) = run(&mut rx, &first);
            assert!(events.is_empty());
            let err = err.unwrap();
            assert_eq!(err, SessionError::ContentTypeMismatch);
            assert_eq!(err.reason(), "content_type_mismatch");
            assert_eq!(err.to_string(), "content type mismatch");
        }
        // READY accepted, then a START naming another type.
        let mut s = control(ControlType::Ready, &[CT]);
        s.extend(control(ControlType::Start, &[b"x"]));
        let (events, err) = run(&mut Receiver::new(CT, 100), &s);
        assert_eq!(events, ["Ready->Accept"]);
        assert_eq!(err, Some(SessionError::ContentTypeMismatch));
    }

    #[test]
    fn order_is_enforced() {
        let cases: [(Vec<u8>, Phase, FrameKind); 6] = [
            (data(b"early"), Phase::Opening, FrameKind::Data),
            (
                control(ControlType::Stop, &[]),
                Phase::Opening,
                FrameKind::Control(ControlType::Stop),
            ),
            (
                [control(ControlType::Ready, &[CT]), data(b"d")].concat(),
                Phase::Accepted,
                FrameKind::Data,
            ),
            (
                [
                    control(ControlType::Start, &[]),
                    control(ControlType::Ready, &[CT]),
                ]
                .concat(),
                Phase::Streaming,
                FrameKind::Control(ControlType::Ready),
            ),
            (
                [
                    control(ControlType::Start, &[]),
                    control(ControlType::Stop, &[]),
                    data(b"late"),
                ]
                .concat(),
                Phase::Stopped,
                FrameKind::Data,
            ),
            (
                [
                    control(ControlType::Start, &[]),
                    control(ControlType::Other(9), &[]),
                ]
                .concat(),
                Phase::Streaming,
                FrameKind::Control(ControlType::Other(9)),
            ),
        ];
        for (bytes, phase, frame) in cases {
            let (_, err) = run(&mut Receiver::new(CT, 100), &bytes);
            let err = err.unwrap();
            assert_eq!(err, SessionError::Unexpected { phase, frame });
            assert_eq!(err.reason(), "unexpected_frame");
        }
        let e = SessionError::Unexpected {
            phase: Phase::Opening,
            frame: FrameKind::Data,
        };
        assert_eq!(
            e.to_string(),
            "unexpected Data frame while waiting for ready or start"
        );
    }

    #[test]
    fn garbage_fails_before_its_claimed_length_arrives() {
        let mut rx = Receiver::new(CT, 100);
        // "GET " read as a length would be 1.2 GB; it is rejected from four bytes.
        assert_eq!(
            rx.next(b"GET "),
            Err(SessionError::Unexpected {
                phase: Phase::Opening,
                frame: FrameKind::Data
            })
        );
        assert_eq!(rx.next(b"GE"), Ok(Event::NeedMore));
    }

    #[test]
    fn limits_are_reasons() {
        let mut s = control(ControlType::Start, &[CT]);
        s.extend_from_slice(&101u32.to_be_bytes());
        let (events, err) = run(&mut Receiver::new(CT, 100), &s);
        assert_eq!(events, ["Start->Nothing"]);
        let err = err.unwrap();
        assert_eq!(
            err,
            SessionError::Framing(FstrmError::DataFrameTooLong(101))
        );
        assert_eq!(err.reason(), "frame_too_large");
        // A control frame claiming 513 bytes.
        let err = Receiver::new(CT, 100)
            .next(&[0, 0, 0, 0, 0, 0, 2, 1])
            .unwrap_err();
        assert_eq!(err.reason(), "bad_control_frame");
    }

    #[test]
    fn fuzz_entry_handles_samples() {
        let mut s = vec![3, 0, 250, 1];
        s.extend(control(ControlType::Ready, &[CT]));
        s.extend(control(ControlType::Start, &[CT]));
        s.extend(data(b"payload"));
        s.extend(control(ControlType::Stop, &[]));
        fuzz_session(&s);
        fuzz_session(&[]);
        fuzz_session(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(s.len(), 4 + 42 + 42 + 11 + 12);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// However the bytes are split into reads, a well-formed stream yields the same events.
        #[test]
        fn split_reads_give_the_same_events(
            payloads in proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 1..30), 0..6),
            bidi in any::<bool>(),
            cuts in proptest::collection::vec(1usize..20, 1..8),
        ) {
            let mut s = Vec::new();
            if bidi {
                s.extend(control(ControlType::Ready, &[CT]));
            }
            s.extend(control(ControlType::Start, &[CT]));
            for p in &payloads {
                s.extend(data(p));
            }
            s.extend(control(ControlType::Stop, &[]));
            let (whole, err) = run(&mut Receiver::new(CT, 64), &s);
            prop_assert_eq!(err, None);
            prop_assert_eq!(whole.len(), payloads.len() + 2 + usize::from(bidi));

            let mut rx = Receiver::new(CT, 64);
            let mut buf = Vec::new();
            let mut got = Vec::new();
            let mut fed = 0;
            let mut i = 0;
            while fed < s.len() {
                let n = cuts[i % cuts.len()].min(s.len() - fed);
                i += 1;
                buf.extend_from_slice(&s[fed..fed + n]);
                fed += n;
                let (events, err, consumed) = run_counting(&mut rx, &buf);
                prop_assert_eq!(err, None);
                buf.drain(..consumed);
                got.extend(events);
            }
            prop_assert_eq!(got, whole);
            prop_assert_eq!(rx.phase(), Phase::Stopped);
        }
    }
}
