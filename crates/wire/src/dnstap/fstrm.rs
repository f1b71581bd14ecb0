//! Frame Streams (fstrm) framing: the container format of dnstap files and sockets.
//!
//! A stream is a sequence of frames. A data frame is a 4-byte big-endian length followed by
//! that many payload bytes. A control frame starts with the escape (a zero length), then its
//! own 4-byte length, a 4-byte control type and a list of fields (4-byte field type, 4-byte
//! length, value); the only defined field is the content type. Files hold
//! `START, data..., STOP`; sockets add the `READY -> ACCEPT` handshake and `STOP -> FINISH`.
//!
//! [`FrameDecoder`] is pure and zero-copy: it answers with one frame borrowed from the
//! caller's buffer, or asks for more bytes. It does not look inside data frames (that is
//! [`super::Dnstap`]) and does no I/O. The encoders append to a `Vec` for the few control
//! frames a receiver sends back.

use thiserror::Error;

/// Largest data frame accepted: dnstap payloads are a few kilobytes at most, so anything
/// larger is corruption, and the bound keeps a hostile length from making a reader buffer
/// gigabytes.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Largest control frame (after its length field), as fixed by the Frame Streams protocol.
pub const MAX_CONTROL_LEN: usize = 512;

/// Largest content-type field value, as fixed by the Frame Streams protocol.
pub const MAX_CONTENT_TYPE_LEN: usize = 256;

/// Control field type of a content type.
const FIELD_CONTENT_TYPE: u32 = 1;

/// The type of a control frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// `ACCEPT` (1): a receiver's answer to `READY`.
    Accept,
    /// `START` (2): the stream of data frames begins.
    Start,
    /// `STOP` (3): the stream of data frames ends.
    Stop,
    /// `READY` (4): a sender offers content types (bidirectional mode).
    Ready,
    /// `FINISH` (5): a receiver's answer to `STOP` (bidirectional mode).
    Finish,
    /// Any other value, kept as its number.
    Other(u32),
}

impl ControlType {
    /// Maps a wire value to a control type.
    pub fn from_u32(n: u32) -> Self {
        match n {
            1 => Self::Accept,
            2 => Self::Start,
            3 => Self::Stop,
            4 => Self::Ready,
            5 => Self::Finish,
            other => Self::Other(other),
        }
    }

    /// The wire value.
    pub fn number(self) -> u32 {
        match self {
            Self::Accept => 1,
            Self::Start => 2,
            Self::Stop => 3,
            Self::Ready => 4,
            Self::Finish => 5,
            Self::Other(n) => n,
        }
    }
}

/// Why a Frame Streams byte sequence could not be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FstrmError {
    /// A data frame longer than the decoder's limit.
    #[error("data frame of {0} bytes exceeds the limit")]
    DataFrameTooLong(u32),
    /// A control frame longer than [`MAX_CONTROL_LEN`].
    #[error("control frame of {0} bytes exceeds the limit")]
    ControlFrameTooLong(u32),
    /// A control frame too short to hold its type.
    #[error("control frame of {0} bytes is too short")]
    ControlFrameTooShort(u32),
    /// A control field whose header or value runs past the end of its frame.
    #[error("control field runs past the end of its frame")]
    BadControlField,
    /// A content type longer than [`MAX_CONTENT_TYPE_LEN`].
    #[error("content type of {0} bytes exceeds the limit")]
    ContentTypeTooLong(u32),
    /// An empty data frame cannot be encoded: its zero length is the control escape.
    #[error("empty data frame")]
    EmptyDataFrame,
    /// The peer does not offer or announce the expected content type.
    #[error("content type mismatch")]
    ContentTypeMismatch,
}

/// A decoded control frame, borrowed from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control<'a> {
    /// The control type.
    pub kind: ControlType,
    /// The encoded fields, already checked to be well formed.
    fields: &'a [u8],
}

impl<'a> Control<'a> {
    /// Decodes a control frame body (the bytes after the escape and the frame length):
    /// the control type, then fields. Unknown field types are skipped for forward
    /// compatibility; lengths are checked.
    pub fn parse(body: &'a [u8]) -> Result<Self, FstrmError> {
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        if body.len() > MAX_CONTROL_LEN {
            return Err(FstrmError::ControlFrameTooLong(len));
        }
        let Some((kind, fields)) = body.split_first_chunk::<4>() else {
            return Err(FstrmError::ControlFrameTooShort(len));
        };
        let mut rest = fields;
        // Each field takes at least 8 bytes of a frame capped at 512, so this is bounded.
        while !rest.is_empty() {
            let (ty, value, r) = split_field(rest)?;
            if ty == FIELD_CONTENT_TYPE && value.len() > MAX_CONTENT_TYPE_LEN {
                return Err(FstrmError::ContentTypeTooLong(value.len() as u32));
            }
            rest = r;
        }
        Ok(Self {
            kind: ControlType::from_u32(u32::from_be_bytes(*kind)),
            fields,
        })
    }

    /// The content types the frame carries (`READY` and `ACCEPT` may carry several,
    /// `START` at most one).
    pub fn content_types(&self) -> ContentTypes<'a> {
        ContentTypes { rest: self.fields }
    }

    /// The first content type, if any.
    pub fn content_type(&self) -> Option<&'a [u8]> {
        self.content_types().next()
    }

    /// True when one of the frame's content types equals `ct`.
    pub fn offers(&self, ct: &[u8]) -> bool {
        self.content_types().any(|c| c == ct)
    }
}

/// Splits one control field off the front: (field type, value, rest).
fn split_field(buf: &[u8]) -> Result<(u32, &[u8], &[u8]), FstrmError> {
    let (ty, rest) = buf
        .split_first_chunk::<4>()
        .ok_or(FstrmError::BadControlField)?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(FstrmError::BadControlField)?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > rest.len() {
        return Err(FstrmError::BadControlField);
    }
    let (value, rest) = rest.split_at(len);
    Ok((u32::from_be_bytes(*ty), value, rest))
}

/// Iterator over the content-type fields of a [`Control`].
#[derive(Debug, Clone)]
pub struct ContentTypes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ContentTypes<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // Fields were validated by `Control::parse`; a failure here just ends the list.
        while let Ok((ty, value, rest)) = split_field(self.rest) {
            self.rest = rest;
            if ty == FIELD_CONTENT_TYPE {
                return Some(value);
            }
        }
        self.rest = &[];
        None
    }
}

/// Outcome of one [`FrameDecoder::next`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// The buffer does not hold a complete frame; call again with more bytes.
    NeedMore,
    /// A control frame; drop `consumed` bytes before the next call.
    Control {
        /// Bytes of the buffer this frame used.
        consumed: usize,
        /// The decoded frame.
        control: Control<'a>,
    },
    /// A data frame; drop `consumed` bytes before the next call.
    Data {
        /// Bytes of the buffer this frame used.
        consumed: usize,
        /// The frame's payload (for dnstap, an encoded `Dnstap` protobuf).
        payload: &'a [u8],
    },
}

/// Like [`Step`] but with the frame located by offsets, so a caller that owns and refills
/// the buffer can decode without holding a borrow across refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStep {
    /// The buffer does not hold a complete frame.
    NeedMore,
    /// A control frame whose body (type and fields, see [`Control::parse`]) is at
    /// `body_start..body_start + body_len`.
    Control {
        /// Bytes of the buffer this frame used.
        consumed: usize,
        /// The control type.
        kind: ControlType,
        /// Offset of the frame body in the buffer.
        body_start: usize,
        /// Length of the frame body.
        body_len: usize,
    },
    /// A data frame whose payload is at `start..start + len`.
    Data {
        /// Bytes of the buffer this frame used.
        consumed: usize,
        /// Offset of the payload in the buffer.
        start: usize,
        /// Payload length.
        len: usize,
    },
}

/// Streaming decoder of Frame Streams frames.
///
/// Feed it the unread bytes from the start of the next frame; it never looks past the frame
/// it decodes. It checks framing only: which control frame may follow which is the
/// caller's policy (a file reader and a socket reader differ).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_len: usize,
    last_control: Option<ControlType>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

impl FrameDecoder {
    /// A decoder accepting data frames up to [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_frame_len(MAX_FRAME_LEN)
    }

    /// A decoder accepting data frames up to `max` bytes.
    pub fn with_max_frame_len(max: usize) -> Self {
        Self {
            max_frame_len: max,
            last_control: None,
        }
    }

    /// The data frame length limit.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// The type of the last control frame decoded, if any.
    pub fn last_control(&self) -> Option<ControlType> {
        self.last_control
    }

    /// Decodes the frame at the start of `buf`.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<Step<'a>, FstrmError> {
        Ok(match self.next_span(buf)? {
            SpanStep::NeedMore => Step::NeedMore,
            SpanStep::Data {
                consumed,
                start,
                len,
            } => Step::Data {
                consumed,
                // The span was computed from this very buffer; a miss would be a bug and
                // degrades to an empty payload rather than a panic.
                payload: buf
                    .get(start..start.saturating_add(len))
                    .unwrap_or_default(),
            },
            SpanStep::Control {
                consumed,
                body_start,
                body_len,
                ..
            } => {
                let body = buf
                    .get(body_start..body_start.saturating_add(body_len))
                    .unwrap_or_default();
                Step::Control {
                    consumed,
                    control: Control::parse(body)?,
                }
            }
        })
    }

    /// Same as [`FrameDecoder::next`], but locates the frame by offsets into `buf`.
    pub fn next_span(&mut self, buf: &[u8]) -> Result<SpanStep, FstrmError> {
        let Some(len) = be32(buf, 0) else {
            return Ok(SpanStep::NeedMore);
        };
        if len != 0 {
            let n = len as usize;
            if n > self.max_frame_len {
                return Err(FstrmError::DataFrameTooLong(len));
            }
            if buf.len().saturating_sub(4) < n {
                return Ok(SpanStep::NeedMore);
            }
            return Ok(SpanStep::Data {
                consumed: 4 + n,
                start: 4,
                len: n,
            });
        }
        let Some(clen) = be32(buf, 4) else {
            return Ok(SpanStep::NeedMore);
        };
        let n = clen as usize;
        // Reject bad lengths before waiting for the bytes, so a corrupt stream fails at once.
        if n > MAX_CONTROL_LEN {
            return Err(FstrmError::ControlFrameTooLong(clen));
        }
        if n < 4 {
            return Err(FstrmError::ControlFrameTooShort(clen));
        }
        let Some(body) = buf.get(8..8 + n) else {
            return Ok(SpanStep::NeedMore);
        };
        let control = Control::parse(body)?;
        self.last_control = Some(control.kind);
        Ok(SpanStep::Control {
            consumed: 8 + n,
            kind: control.kind,
            body_start: 8,
            body_len: n,
        })
    }
}

/// Appends a control frame (escape, length, type, one content-type field per entry).
pub fn encode_control(
    out: &mut Vec<u8>,
    kind: ControlType,
    content_types: &[&[u8]],
) -> Result<(), FstrmError> {
    let mut len = 4usize;
    for ct in content_types {
        if ct.len() > MAX_CONTENT_TYPE_LEN {
            return Err(FstrmError::ContentTypeTooLong(
                u32::try_from(ct.len()).unwrap_or(u32::MAX),
            ));
        }
        len = len.saturating_add(8 + ct.len());
    }
    if len > MAX_CONTROL_LEN {
        return Err(FstrmError::ControlFrameTooLong(
            u32::try_from(len).unwrap_or(u32::MAX),
        ));
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    // Bounded by MAX_CONTROL_LEN above.
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&kind.number().to_be_bytes());
    for ct in content_types {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        out.extend_from_slice(ct);
    }
    Ok(())
}

/// Appends a data frame; fails on an empty payload (its zero length would read as the
/// control escape) or one larger than [`MAX_FRAME_LEN`].
pub fn encode_data(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), FstrmError> {
    if payload.is_empty() {
        return Err(FstrmError::EmptyDataFrame);
    }
    if payload.len() > MAX_FRAME_LEN {
        return Err(FstrmError::DataFrameTooLong(
            u32::try_from(payload.len()).unwrap_or(u32::MAX),
        ));
    }
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// What a receiver in the bidirectional protocol sends back for a control frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to send.
    Nothing,
    /// Send `ACCEPT` carrying the expected content type (answer to `READY`).
    Accept,
    /// Send `FINISH` and close (answer to `STOP`).
    Finish,
}

/// Decides a receiver's answer to `control`, given the content type it expects.
///
/// `READY` must offer `content_type`; a `START` that names a content type must name this
/// one (a `START` naming none is accepted, as Frame Streams allows). Anything else needs no
/// answer.
pub fn reply_to(control: &Control<'_>, content_type: &[u8]) -> Result<Reply, FstrmError> {
    match control.kind {
        ControlType::Ready if control.offers(content_type) => Ok(Reply::Accept),
        ControlType::Ready => Err(FstrmError::ContentTypeMismatch),
        ControlType::Start => match control.content_type() {
            Some(ct) if ct != content_type => Err(FstrmError::ContentTypeMismatch),
            _ => Ok(Reply::Nothing),
        },
        ControlType::Stop => Ok(Reply::Finish),
        _ => Ok(Reply::Nothing),
    }
}

/// Appends the frame for `reply` (nothing for [`Reply::Nothing`]).
pub fn encode_reply(
    out: &mut Vec<u8>,
    reply: Reply,
    content_type: &[u8],
) -> Result<(), FstrmError> {
    match reply {
        Reply::Nothing => Ok(()),
        Reply::Accept => encode_control(out, ControlType::Accept, &[content_type]),
        Reply::Finish => encode_control(out, ControlType::Finish, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CT: &[u8] = b"protobuf:dnstap.Dnstap";

    #[test]
    fn start_frame_bytes_match_the_protocol() {
        let mut out = Vec::new();
        encode_control(&mut out, ControlType::Start, &[CT]).unwrap();
        let mut want = vec![
            0, 0, 0, 0, 0, 0, 0, 0x22, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0x16,
        ];
        want.extend_from_slice(CT);
        assert_eq!(out, want);
        let mut d = FrameDecoder::new();
        match d.next(&out).unwrap() {
            Step::Control { consumed, control } => {
                assert_eq!(consumed, out.len());
                assert_eq!(control.kind, ControlType::Start);
                assert_eq!(control.content_type(), Some(CT));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(d.last_control(), Some(ControlType::Start));
    }

    #[test]
    fn data_frames_and_need_more() {
        let mut buf = Vec::new();
        encode_data(&mut buf, b"hello").unwrap();
        encode_control(&mut buf, ControlType::Stop, &[]).unwrap();
        let mut d = FrameDecoder::new();
        for cut in 0..9 {
            assert_eq!(d.next(&buf[..cut]).unwrap(), Step::NeedMore, "cut {cut}");
        }
        assert_eq!(
            d.next(&buf).unwrap(),
            Step::Data {
                consumed: 9,
                payload: b"hello"
            }
        );
        assert_eq!(d.next(&buf[9..13]).unwrap(), Step::NeedMore);
        assert_eq!(d.next(&buf[9..16]).unwrap(), Step::NeedMore);
        match d.next(&buf[9..]).unwrap() {
            Step::Control { consumed, control } => {
                assert_eq!(consumed, 12);
                assert_eq!(control.kind, ControlType::Stop);
                assert_eq!(control.content_type(), None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bounds_are_enforced_early() {
        let mut d = FrameDecoder::with_max_frame_len(100);
        assert_eq!(
            d.next(&101u32.to_be_bytes()),
            Err(FstrmError::DataFrameTooLong(101))
        );
        assert_eq!(
            d.next(&[0, 0, 0, 0, 0, 0, 2, 1]),
            Err(FstrmError::ControlFrameTooLong(513))
        );
        assert_eq!(
            d.next(&[0, 0, 0, 0, 0, 0, 0, 3]),
            Err(FstrmError::ControlFrameTooShort(3))
        );
        // A field whose length runs past the frame.
        let frame = [0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 9];
        assert_eq!(d.next(&frame), Err(FstrmError::BadControlField));
        // A field header cut in half.
        let frame = [0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0];
        assert_eq!(d.next(&frame), Err(FstrmError::BadControlField));
        let long = [b'x'; MAX_CONTENT_TYPE_LEN + 1];
        let mut out = Vec::new();
        assert_eq!(
            encode_control(&mut out, ControlType::Ready, &[&long]),
            Err(FstrmError::ContentTypeTooLong(257))
        );
        assert_eq!(encode_data(&mut out, b""), Err(FstrmError::EmptyDataFrame));
        assert!(out.is_empty());
    }

    #[test]
    fn unknown_fields_and_types_are_kept() {
        // READY with an unknown field type 7 between two content types.
        let mut body = 4u32.to_be_bytes().to_vec();
        for (ty, v) in [(1u32, &b"a:b"[..]), (7, b"zz"), (1, CT)] {
            body.extend_from_slice(&ty.to_be_bytes());
            body.extend_from_slice(&(v.len() as u32).to_be_bytes());
            body.extend_from_slice(v);
        }
        let c = Control::parse(&body).unwrap();
        assert_eq!(c.kind, ControlType::Ready);
        assert_eq!(c.content_types().collect::<Vec<_>>(), vec![&b"a:b"[..], CT]);
        assert!(c.offers(CT));
        assert!(!c.offers(b"zz"));
        let body = 99u32.to_be_bytes();
        let c = Control::parse(&body).unwrap();
        assert_eq!(c.kind, ControlType::Other(99));
        assert_eq!(c.kind.number(), 99);
    }

    #[test]
    fn bidirectional_handshake() {
        let frame = |kind, cts: &[&[u8]]| {
            let mut v = Vec::new();
            encode_control(&mut v, kind, cts).unwrap();
            v
        };
        fn parse(v: &[u8]) -> Control<'_> {
            Control::parse(&v[8..]).unwrap()
        }
        let ready = frame(ControlType::Ready, &[b"other", CT]);
        assert_eq!(reply_to(&parse(&ready), CT), Ok(Reply::Accept));
        let ready = frame(ControlType::Ready, &[b"other"]);
        assert_eq!(
            reply_to(&parse(&ready), CT),
            Err(FstrmError::ContentTypeMismatch)
        );
        let start = frame(ControlType::Start, &[CT]);
        assert_eq!(reply_to(&parse(&start), CT), Ok(Reply::Nothing));
        let start = frame(ControlType::Start, &[]);
        assert_eq!(reply_to(&parse(&start), CT), Ok(Reply::Nothing));
        let start = frame(ControlType::Start, &[b"test:hello"]);
        assert_eq!(
            reply_to(&parse(&start), CT).unwrap_err().to_string(),
            "content type mismatch"
        );
        let stop = frame(ControlType::Stop, &[]);
        assert_eq!(reply_to(&parse(&stop), CT), Ok(Reply::Finish));

        let mut out = Vec::new();
        encode_reply(&mut out, Reply::Accept, CT).unwrap();
        assert_eq!(out, frame(ControlType::Accept, &[CT]));
        out.clear();
        encode_reply(&mut out, Reply::Finish, CT).unwrap();
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 5]);
        out.clear();
        encode_reply(&mut out, Reply::Nothing, CT).unwrap();
        assert!(out.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn frames_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..8),
            cts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..4),
            kind in 1u32..8,
        ) {
            let kind = ControlType::from_u32(kind);
            let ct_refs: Vec<&[u8]> = cts.iter().map(Vec::as_slice).collect();
            let mut buf = Vec::new();
            encode_control(&mut buf, kind, &ct_refs).unwrap();
            for p in &payloads {
                encode_data(&mut buf, p).unwrap();
            }
            let mut d = FrameDecoder::new();
            let mut at = 0;
            match d.next(&buf).unwrap() {
                Step::Control { consumed, control } => {
                    prop_assert_eq!(control.kind, kind);
                    prop_assert_eq!(control.content_types().collect::<Vec<_>>(), ct_refs.clone());
                    at += consumed;
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            for p in &payloads {
                match d.next(&buf[at..]).unwrap() {
                    Step::Data { consumed, payload } => {
                        prop_assert_eq!(payload, p.as_slice());
                        at += consumed;
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(at, buf.len());
            prop_assert_eq!(d.next(&buf[at..]).unwrap(), Step::NeedMore);
        }

        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut d = FrameDecoder::with_max_frame_len(64);
            let mut rest = data.as_slice();
            while let Ok(step) = d.next(rest) {
                let consumed = match step {
                    Step::NeedMore => break,
                    Step::Control { consumed, .. } | Step::Data { consumed, .. } => consumed,
                };
                prop_assert!(consumed >= 4 && consumed <= rest.len());
                rest = &rest[consumed..];
            }
        }
    }
}
