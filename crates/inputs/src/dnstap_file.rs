//! dnstap file input: reads a Frame Streams file of dnstap messages from a file or stdin.
//!
//! This is the I/O shell around [`wire::dnstap::fstrm::FrameDecoder`]: it owns one reusable
//! buffer, checks that the stream starts with a `START` frame announcing
//! `protobuf:dnstap.Dnstap`, and hands out each data frame's payload borrowed from the
//! buffer. It does not decode the protobuf (that is [`wire::dnstap::decode`]) and does not
//! speak the bidirectional socket protocol.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use thiserror::Error;
use wire::dnstap::CONTENT_TYPE;
use wire::dnstap::fstrm::{
    Control, ControlType, FrameDecoder, FstrmError, MAX_FRAME_LEN, SpanStep,
};

/// Initial buffer size: dnstap frames are small, so this holds many per read.
const INITIAL_BUF: usize = 256 * 1024;

/// Why a dnstap file input failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DnstapFileError {
    /// The file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading failed.
    #[error("cannot read {name} at byte {offset}: {source}")]
    Read {
        /// Input name.
        name: String,
        /// Offset where the read failed.
        offset: u64,
        /// The OS error.
        source: io::Error,
    },
    /// The input does not start like a Frame Streams file.
    #[error("{name}: not a dnstap frame streams file: {reason}")]
    NotDnstap {
        /// Input name.
        name: String,
        /// What is wrong with its start.
        reason: &'static str,
    },
    /// The `START` frame announces another content type.
    #[error("{name}: content type mismatch: expected {expected:?}, found {found:?}")]
    ContentTypeMismatch {
        /// Input name.
        name: String,
        /// The content type wirelens reads.
        expected: &'static str,
        /// The content type the file announces (lossily decoded for display).
        found: String,
    },
    /// A frame in the input is corrupt.
    #[error("{name}: corrupt frame stream at byte {offset}: {reason}")]
    Corrupt {
        /// Input name.
        name: String,
        /// Offset of the corrupt frame.
        offset: u64,
        /// What is wrong.
        reason: FstrmError,
    },
}

/// A dnstap Frame Streams file being read sequentially.
pub struct DnstapFile {
    reader: Box<dyn Read + Send>,
    name: String,
    decoder: FrameDecoder,
    buf: Vec<u8>,
    /// Start of unread data in `buf`.
    pos: usize,
    /// End of valid data in `buf`.
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    stopped: bool,
    truncated_at: Option<u64>,
    data_frames: u64,
    control_frames: u64,
}

impl std::fmt::Debug for DnstapFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnstapFile")
            .field("name", &self.name)
            .field("offset", &self.offset())
            .field("data_frames", &self.data_frames)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

/// What one decoding step found, with borrows already resolved to offsets.
enum Found {
    Data { start: usize, len: usize },
    Control,
    NeedMore,
}

impl DnstapFile {
    /// Opens a dnstap file; `-` means stdin. The `START` frame is read here, so an input
    /// that is not a dnstap file fails now.
    pub fn open(path: &Path) -> Result<Self, DnstapFileError> {
        if path.as_os_str() == "-" {
            return Self::from_reader(Box::new(io::stdin()), "-".to_string());
        }
        let file = File::open(path).map_err(|source| DnstapFileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(Box::new(file), path.display().to_string())
    }

    /// Wraps any byte stream and reads its `START` frame; `name` is used in errors.
    pub fn from_reader(
        reader: Box<dyn Read + Send>,
        name: String,
    ) -> Result<Self, DnstapFileError> {
        let mut file = Self {
            reader,
            name,
            decoder: FrameDecoder::new(),
            buf: vec![0; INITIAL_BUF],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            stopped: false,
            truncated_at: None,
            data_frames: 0,
            control_frames: 0,
        };
        file.read_start()?;
        Ok(file)
    }

    fn not_dnstap(&self, reason: &'static str) -> DnstapFileError {
        DnstapFileError::NotDnstap {
            name: self.name.clone(),
            reason,
        }
    }

    /// Reads the leading `START` frame and checks its content type.
    fn read_start(&mut self) -> Result<(), DnstapFileError> {
        while self.end < 8 && !self.eof {
            self.refill()?;
        }
        let head = self.buf.get(..self.end.min(8)).unwrap_or_default();
        if head.is_empty() {
            return Err(self.not_dnstap("empty input"));
        }
        if head.len() < 4 || head.get(..4) != Some(&[0, 0, 0, 0][..]) {
            return Err(self.not_dnstap("it does not start with a control frame"));
        }
        loop {
            let avail = self.buf.get(self.pos..self.end).unwrap_or_default();
            match self.decoder.next_span(avail) {
                Ok(SpanStep::Control {
                    consumed,
                    kind: ControlType::Start,
                    body_start,
                    body_len,
                }) => {
                    let body = avail
                        .get(body_start..body_start + body_len)
                        .unwrap_or_default();
                    self.check_content_type(body)?;
                    self.pos += consumed;
                    self.control_frames += 1;
                    return Ok(());
                }
                Ok(SpanStep::Control { .. }) | Ok(SpanStep::Data { .. }) => {
                    return Err(self.not_dnstap("its first frame is not START"));
                }
                Ok(SpanStep::NeedMore) if self.eof => {
                    return Err(self.not_dnstap("it ends inside its first frame"));
                }
                Ok(SpanStep::NeedMore) => self.refill()?,
                Err(_) => return Err(self.not_dnstap("its first control frame is malformed")),
            }
        }
    }

    /// Accepts a `START` naming `protobuf:dnstap.Dnstap`, or naming nothing (Frame Streams
    /// lets a writer omit it).
    fn check_content_type(&self, body: &[u8]) -> Result<(), DnstapFileError> {
        let control = Control::parse(body).map_err(|reason| DnstapFileError::Corrupt {
            name: self.name.clone(),
            offset: self.offset(),
            reason,
        })?;
        match control.content_type() {
            Some(ct) if ct != CONTENT_TYPE => Err(DnstapFileError::ContentTypeMismatch {
                name: self.name.clone(),
                expected: "protobuf:dnstap.Dnstap",
                found: String::from_utf8_lossy(ct).into_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// The name used in errors (the path, or `-`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next data frame's payload (an encoded `Dnstap` message); `Ok(None)` at `STOP`
    /// or at the end of input. Borrows the internal buffer until the next call.
    pub fn next_message(&mut self) -> Result<Option<&[u8]>, DnstapFileError> {
        loop {
            if self.stopped {
                return Ok(None);
            }
            match self.step()? {
                Found::Data { start, len } => {
                    return Ok(Some(self.buf.get(start..start + len).unwrap_or_default()));
                }
                Found::Control => {}
                Found::NeedMore => {
                    if self.eof {
                        if self.pos < self.end {
                            self.truncated_at = Some(self.offset());
                        }
                        return Ok(None);
                    }
                    self.refill()?;
                }
            }
        }
    }

    /// Decodes one frame at the read position and advances past it.
    fn step(&mut self) -> Result<Found, DnstapFileError> {
        let avail = self.buf.get(self.pos..self.end).unwrap_or_default();
        let step = self
            .decoder
            .next_span(avail)
            .map_err(|reason| DnstapFileError::Corrupt {
                name: self.name.clone(),
                offset: self.offset(),
                reason,
            })?;
        Ok(match step {
            SpanStep::NeedMore => Found::NeedMore,
            SpanStep::Data {
                consumed,
                start,
                len,
            } => {
                let start = self.pos + start;
                self.pos += consumed;
                self.data_frames += 1;
                Found::Data { start, len }
            }
            SpanStep::Control {
                consumed,
                kind,
                body_start,
                body_len,
            } => {
                self.control_frames += 1;
                match kind {
                    // A later START (a writer reopening the stream) must agree too.
                    ControlType::Start => {
                        let body = avail
                            .get(body_start..body_start + body_len)
                            .unwrap_or_default();
                        self.check_content_type(body)?;
                    }
                    // FINISH is a socket reply and never belongs in a file; treat it as
                    // the end all the same rather than reading past it.
                    ControlType::Stop | ControlType::Finish => self.stopped = true,
                    _ => {}
                }
                self.pos += consumed;
                Found::Control
            }
        })
    }

    /// True once a `STOP` frame was read (a file cut short or written by a crashed writer
    /// has none).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Data frames read so far.
    pub fn data_frames(&self) -> u64 {
        self.data_frames
    }

    /// Control frames read so far (including the leading `START`).
    pub fn control_frames(&self) -> u64 {
        self.control_frames
    }

    /// Some(byte offset of the incomplete frame) when the input ended inside a frame.
    pub fn truncated_at(&self) -> Option<u64> {
        self.truncated_at
    }

    /// Bytes read from the input so far.
    pub fn bytes_read(&self) -> u64 {
        self.base + self.end as u64
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Moves unread bytes to the front, grows the buffer if one frame fills it, and reads.
    fn refill(&mut self) -> Result<(), DnstapFileError> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            // The decoder caps frames at MAX_FRAME_LEN, so this cannot grow without bound.
            let grown = (self.buf.len() * 2).min(MAX_FRAME_LEN + 8);
            if grown <= self.buf.len() {
                return Err(DnstapFileError::Corrupt {
                    name: self.name.clone(),
                    offset: self.offset(),
                    reason: FstrmError::DataFrameTooLong(u32::MAX),
                });
            }
            self.buf.resize(grown, 0);
        }
        loop {
            let dst = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.reader.read(dst) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(DnstapFileError::Read {
                        name: self.name.clone(),
                        offset: self.bytes_read(),
                        source,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use wire::dnstap::fstrm::{encode_control, encode_data};

    fn stream(ct: &[u8], payloads: &[&[u8]], stop: bool) -> Vec<u8> {
        let mut v = Vec::new();
        encode_control(&mut v, ControlType::Start, &[ct]).unwrap();
        for p in payloads {
            encode_data(&mut v, p).unwrap();
        }
        if stop {
            encode_control(&mut v, ControlType::Stop, &[]).unwrap();
        }
        v
    }

    fn read_all(f: &mut DnstapFile) -> Result<Vec<Vec<u8>>, DnstapFileError> {
        let mut out = Vec::new();
        while let Some(p) = f.next_message()? {
            out.push(p.to_vec());
        }
        Ok(out)
    }

    /// A reader returning at most `chunk` bytes per call, to exercise refills.
    struct Trickle(Cursor<Vec<u8>>, usize);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.1);
            self.0.read(&mut out[..n])
        }
    }

    #[test]
    fn plain_and_trickled() {
        let data = stream(CONTENT_TYPE, &[b"one", b"two", b"three"], true);
        for chunk in [1, 3, 7, 1 << 20] {
            let r = Trickle(Cursor::new(data.clone()), chunk);
            let mut f = DnstapFile::from_reader(Box::new(r), "t".into()).unwrap();
            assert_eq!(
                read_all(&mut f).unwrap(),
                vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
            );
            assert!(f.stopped());
            assert_eq!(f.data_frames(), 3);
            assert_eq!(f.control_frames(), 2);
            assert_eq!(f.truncated_at(), None);
            assert_eq!(f.bytes_read(), data.len() as u64);
        }
    }

    #[test]
    fn frames_after_stop_are_not_read() {
        let mut data = stream(CONTENT_TYPE, &[b"a"], true);
        encode_data(&mut data, b"late").unwrap();
        let mut f = DnstapFile::from_reader(Box::new(Cursor::new(data)), "t".into()).unwrap();
        assert_eq!(read_all(&mut f).unwrap(), vec![b"a".to_vec()]);
        assert_eq!(f.next_message().unwrap(), None);
    }

    #[test]
    fn missing_stop_and_truncation() {
        let data = stream(CONTENT_TYPE, &[b"abc", b"defgh"], false);
        let mut f =
            DnstapFile::from_reader(Box::new(Cursor::new(data.clone())), "t".into()).unwrap();
        assert_eq!(read_all(&mut f).unwrap().len(), 2);
        assert!(!f.stopped());
        assert_eq!(f.truncated_at(), None);

        let cut = data.len() - 2;
        let mut f =
            DnstapFile::from_reader(Box::new(Cursor::new(data[..cut].to_vec())), "t".into())
                .unwrap();
        assert_eq!(read_all(&mut f).unwrap(), vec![b"abc".to_vec()]);
        // START is 8 + 4 + 8 + 22 bytes, then 4 + 3 for "abc".
        assert_eq!(f.truncated_at(), Some(42 + 7));
    }

    #[test]
    fn content_type_is_checked() {
        let data = stream(b"test:hello", &[b"Hello"], true);
        let e = DnstapFile::from_reader(Box::new(Cursor::new(data)), "x.fstrm".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.fstrm: content type mismatch: expected \"protobuf:dnstap.Dnstap\", found \"test:hello\""
        );
        // A START without content type is accepted.
        let mut data = Vec::new();
        encode_control(&mut data, ControlType::Start, &[]).unwrap();
        encode_data(&mut data, b"p").unwrap();
        let mut f = DnstapFile::from_reader(Box::new(Cursor::new(data)), "t".into()).unwrap();
        assert_eq!(read_all(&mut f).unwrap(), vec![b"p".to_vec()]);
    }

    #[test]
    fn non_dnstap_inputs_name_the_file() {
        let mut ready = Vec::new();
        encode_control(&mut ready, ControlType::Ready, &[CONTENT_TYPE]).unwrap();
        let cases: [(Vec<u8>, &str); 5] = [
            (Vec::new(), "empty input"),
            (
                b"\xd4\xc3\xb2\xa1 a pcap file".to_vec(),
                "it does not start with a control frame",
            ),
            (vec![0, 0], "it does not start with a control frame"),
            (ready, "its first frame is not START"),
            (
                vec![0, 0, 0, 0, 0, 0, 0, 0x22, 0, 0, 0, 2],
                "it ends inside its first frame",
            ),
        ];
        for (bytes, reason) in cases {
            let e = DnstapFile::from_reader(Box::new(Cursor::new(bytes)), "notes.bin".into())
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("notes.bin: not a dnstap frame streams file: {reason}")
            );
        }
    }

    #[test]
    fn corrupt_frame_in_the_middle() {
        let mut data = stream(CONTENT_TYPE, &[b"abc"], false);
        data.extend_from_slice(&(100u32 << 20).to_be_bytes());
        let mut f = DnstapFile::from_reader(Box::new(Cursor::new(data)), "c".into()).unwrap();
        assert_eq!(f.next_message().unwrap(), Some(&b"abc"[..]));
        match f.next_message() {
            Err(DnstapFileError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, 42 + 7);
                assert_eq!(reason, FstrmError::DataFrameTooLong(100 << 20));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn frame_larger_than_initial_buffer_grows_it() {
        let big = vec![7u8; INITIAL_BUF * 3];
        let data = stream(CONTENT_TYPE, &[b"x", &big, b"y"], true);
        let mut f = DnstapFile::from_reader(Box::new(Cursor::new(data)), "b".into()).unwrap();
        let got = read_all(&mut f).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], big);
        assert_eq!(got[2], b"y");
    }

    #[test]
    fn open_missing_file() {
        let e = DnstapFile::open(Path::new("/nonexistent/x.dnstap")).unwrap_err();
        assert!(matches!(e, DnstapFileError::Open { .. }));
        assert!(
            e.to_string()
                .starts_with("cannot open /nonexistent/x.dnstap: ")
        );
    }
}
