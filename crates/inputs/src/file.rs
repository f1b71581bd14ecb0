//! Capture-file input: reads pcap or pcapng (optionally gzip-compressed) from a file or stdin.
//!
//! This is the I/O shell around [`wire::capture::CaptureDecoder`]: it reads the input in
//! large blocks with `read(2)`-style calls and hands out records that borrow from the current
//! block, or their position in it ([`CaptureFile::next_span`]) so that a block can be shared
//! with other threads ([`CaptureFile::block`]) instead of copying frames out of it. It does
//! not decode packets.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use thiserror::Error;
use wire::capture::{CaptureDecoder, CaptureError, MAX_UNIT_LEN, Record, RecordSpan, SpanStep};

/// Block size; large reads amortise syscalls (measured faster than mmap here), and a block
/// is the unit shared with the threads that process its frames.
const BLOCK_SIZE: usize = 1024 * 1024;
/// Retired blocks kept for reuse; blocks still held elsewhere beyond this are dropped when
/// released, so memory stays bounded by what the consumers hold.
const SPARE_BLOCKS: usize = 64;

/// A block of capture data: immutable once shared, recycled when nobody holds it any more.
pub type Block = Arc<Vec<u8>>;

/// Why a capture input failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading (or decompressing) failed.
    #[error("cannot read {name} at byte {offset}: {source}")]
    Read {
        /// Input name.
        name: String,
        /// Offset (in the decompressed stream) where the read failed.
        offset: u64,
        /// The OS or decompression error.
        source: io::Error,
    },
    /// The input is not a pcap or pcapng capture.
    #[error("{name}: not a pcap or pcapng capture")]
    NotACapture {
        /// Input name.
        name: String,
    },
    /// A record or block in the input is corrupt.
    #[error("{name}: corrupt capture at byte {offset}: {reason}")]
    Corrupt {
        /// Input name.
        name: String,
        /// Offset of the corrupt unit (in the decompressed stream).
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A capture being read sequentially.
pub struct CaptureFile {
    reader: Box<dyn Read + Send>,
    name: String,
    decoder: CaptureDecoder,
    /// The current block; refills move the unread tail to a fresh (or recycled) block
    /// instead of overwriting this one, which consumers may still hold.
    buf: Block,
    /// Blocks retired by refills, reused once no consumer holds them.
    spare: Vec<Block>,
    /// Number of refills that replaced the block (identifies the current block).
    block_id: u64,
    /// Start of unread data in `buf`.
    pos: usize,
    /// End of valid data in `buf`.
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    truncated_at: Option<u64>,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFile")
            .field("name", &self.name)
            .field("offset", &(self.base + self.pos as u64))
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

/// Replays the already-read prefix, then the rest of the reader.
struct Prefixed {
    prefix: [u8; 2],
    at: usize,
    len: usize,
    inner: Box<dyn Read + Send>,
}

impl Read for Prefixed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at < self.len {
            let src = self.prefix.get(self.at..self.len).unwrap_or_default();
            let n = src.len().min(out.len());
            if let (Some(dst), Some(src)) = (out.get_mut(..n), src.get(..n)) {
                dst.copy_from_slice(src);
            }
            self.at += n;
            return Ok(n);
        }
        self.inner.read(out)
    }
}

impl CaptureFile {
    /// Opens a capture; `-` means stdin. Gzip is detected by its magic bytes, not by name.
    /// The file header is read here, so an input that is not a capture fails now.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        if path.as_os_str() == "-" {
            return Self::from_reader(Box::new(io::stdin()), "-".to_string());
        }
        let file = File::open(path).map_err(|source| InputError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(Box::new(file), path.display().to_string())
    }

    /// Wraps any byte stream and reads its file header; `name` is used in errors.
    pub fn from_reader(mut r: Box<dyn Read + Send>, name: String) -> Result<Self, InputError> {
        let mut prefix = [0u8; 2];
        let mut len = 0;
        while len < prefix.len() {
            let dst = prefix.get_mut(len..).unwrap_or_default();
            match r.read(dst) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(InputError::Read {
                        name,
                        offset: len as u64,
                        source,
                    });
                }
            }
        }
        let replay: Box<dyn Read + Send> = Box::new(Prefixed {
            prefix,
            at: 0,
            len,
            inner: r,
        });
        let reader: Box<dyn Read + Send> = if len == 2 && prefix == [0x1f, 0x8b] {
            Box::new(MultiGzDecoder::new(replay))
        } else {
            replay
        };
        let mut file = Self {
            reader,
            name,
            decoder: CaptureDecoder::new(),
            buf: Arc::new(vec![0; BLOCK_SIZE]),
            spare: Vec::new(),
            block_id: 0,
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            truncated_at: None,
        };
        file.read_file_header()?;
        Ok(file)
    }

    /// Decodes the file header up front so that a non-capture input fails at open time.
    fn read_file_header(&mut self) -> Result<(), InputError> {
        while !self.decoder.header_seen() {
            let avail = self.buf.get(self.pos..self.end).unwrap_or_default();
            match self.decoder.next_span(avail) {
                Ok(SpanStep::Skipped { consumed }) => self.pos += consumed,
                // A header never yields a record; leave it for `next_record` regardless.
                Ok(SpanStep::Record { .. }) => return Ok(()),
                Ok(SpanStep::NeedMore) if self.eof => {
                    return Err(InputError::NotACapture {
                        name: self.name.clone(),
                    });
                }
                Ok(SpanStep::NeedMore) => self.refill()?,
                Err(e) => return Err(self.capture_error(e)),
            }
        }
        Ok(())
    }

    fn capture_error(&self, e: CaptureError) -> InputError {
        match e {
            CaptureError::NotACapture => InputError::NotACapture {
                name: self.name.clone(),
            },
            CaptureError::Corrupt(reason) => InputError::Corrupt {
                name: self.name.clone(),
                offset: self.offset(),
                reason,
            },
            _ => InputError::Corrupt {
                name: self.name.clone(),
                offset: self.offset(),
                reason: "undecodable capture",
            },
        }
    }

    /// The name used in errors (the path, or `-`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Next frame; `Ok(None)` at end of input. Borrows the internal buffer until the next call.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, InputError> {
        let Some(span) = self.next_span()? else {
            return Ok(None);
        };
        let data = self
            .buf
            .get(span.data_start..span.data_start + span.data_len)
            .unwrap_or_default();
        Ok(Some(Record {
            ts_ns: span.ts_ns,
            link: span.link,
            interface: span.interface,
            data,
            orig_len: span.orig_len,
        }))
    }

    /// Next frame as a position in the current [`Self::block`] (`data_start` and `data_len`
    /// index that block); `Ok(None)` at end of input. The block may change at every call
    /// (see [`Self::block_id`]); a block handed out is never written again.
    pub fn next_span(&mut self) -> Result<Option<RecordSpan>, InputError> {
        loop {
            let avail = self.buf.get(self.pos..self.end).unwrap_or_default();
            match self.decoder.next_span(avail) {
                Ok(SpanStep::Record {
                    consumed,
                    mut record,
                }) => {
                    record.data_start += self.pos;
                    self.pos += consumed;
                    return Ok(Some(record));
                }
                Ok(SpanStep::Skipped { consumed }) => self.pos += consumed,
                Ok(SpanStep::NeedMore) => {
                    if self.eof {
                        return self.at_eof().map(|_| None);
                    }
                    self.refill()?;
                }
                Err(e) => return Err(self.capture_error(e)),
            }
        }
    }

    /// The block the last record returned lies in.
    pub fn block(&self) -> &Block {
        &self.buf
    }

    /// Identifies the current block: it changes exactly when the block does.
    pub fn block_id(&self) -> u64 {
        self.block_id
    }

    /// Some(byte offset of the incomplete unit) when the input ended inside a record or block.
    pub fn truncated_at(&self) -> Option<u64> {
        self.truncated_at
    }

    /// Bytes of capture data read so far (after decompression).
    pub fn bytes_read(&self) -> u64 {
        self.base + self.end as u64
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn at_eof(&mut self) -> Result<(), InputError> {
        if !self.decoder.header_seen() {
            // Empty input, or too short to hold a file header: not a capture at all.
            return Err(InputError::NotACapture {
                name: self.name.clone(),
            });
        }
        if self.pos < self.end {
            self.truncated_at = Some(self.offset());
        }
        Ok(())
    }

    /// Moves the unread bytes to the front of a fresh block (grown if one unit fills the
    /// whole block) and reads once into the rest of it (a pipe gives what it holds now).
    fn refill(&mut self) -> Result<(), InputError> {
        let unread = self.end - self.pos;
        let mut size = self.buf.len().max(BLOCK_SIZE);
        if unread == self.buf.len() {
            // The decoder caps units at MAX_UNIT_LEN, so this cannot grow without bound.
            let grown = (self.buf.len() * 2).min(MAX_UNIT_LEN + 64);
            if grown <= self.buf.len() {
                return Err(InputError::Corrupt {
                    name: self.name.clone(),
                    offset: self.offset(),
                    reason: "unit larger than the buffer cap",
                });
            }
            size = grown;
        }
        let mut next = self.fresh_block(size);
        // `next` is not shared yet (fresh_block only returns unshared blocks).
        if let Some(dst) = Arc::get_mut(&mut next) {
            if dst.len() < size {
                dst.resize(size, 0);
            }
            if let (Some(d), Some(s)) = (dst.get_mut(..unread), self.buf.get(self.pos..self.end)) {
                d.copy_from_slice(s);
            }
        }
        let old = std::mem::replace(&mut self.buf, next);
        self.retire(old);
        self.block_id += 1;
        self.base += self.pos as u64;
        self.end = unread;
        self.pos = 0;
        let Some(buf) = Arc::get_mut(&mut self.buf) else {
            return Ok(());
        };
        // One successful read per refill: a regular file fills the block in one call, while a
        // pipe or FIFO (a live stream) hands over what it has now instead of holding records
        // back until a whole block arrives.
        while self.end < buf.len() {
            let dst = buf.get_mut(self.end..).unwrap_or_default();
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
                    return Err(InputError::Read {
                        name: self.name.clone(),
                        offset: self.base + self.end as u64,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// A block nobody else holds: a released spare, or a new one of `size` bytes.
    fn fresh_block(&mut self, size: usize) -> Block {
        if let Some(i) = self.spare.iter().position(|b| Arc::strong_count(b) == 1) {
            return self.spare.swap_remove(i);
        }
        Arc::new(vec![0; size])
    }

    /// Keeps a replaced block for reuse once its consumers release it.
    fn retire(&mut self, block: Block) {
        if self.spare.len() < SPARE_BLOCKS {
            self.spare.push(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn pcap(records: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (i, r) in records.iter().enumerate() {
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(r);
        }
        v
    }

    fn read_all(f: &mut CaptureFile) -> Result<Vec<Vec<u8>>, InputError> {
        let mut out = Vec::new();
        while let Some(r) = f.next_record()? {
            out.push(r.data.to_vec());
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
        let data = pcap(&[b"one", b"two", b"three"]);
        let mut f =
            CaptureFile::from_reader(Box::new(Cursor::new(data.clone())), "t".into()).unwrap();
        assert_eq!(
            read_all(&mut f).unwrap(),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(f.truncated_at(), None);
        assert_eq!(f.bytes_read(), data.len() as u64);
        let mut f =
            CaptureFile::from_reader(Box::new(Trickle(Cursor::new(data), 1)), "t".into()).unwrap();
        assert_eq!(read_all(&mut f).unwrap().len(), 3);
    }

    #[test]
    fn gzip_detected_by_magic() {
        let data = pcap(&[b"abc", b"defg"]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let mut f = CaptureFile::from_reader(Box::new(Cursor::new(gz)), "x.pcap".into()).unwrap();
        assert_eq!(
            read_all(&mut f).unwrap(),
            vec![b"abc".to_vec(), b"defg".to_vec()]
        );
    }

    #[test]
    fn truncated_reports_offset() {
        let data = pcap(&[b"abc", b"defgh"]);
        let cut = data.len() - 2;
        let mut f =
            CaptureFile::from_reader(Box::new(Cursor::new(data[..cut].to_vec())), "t".into())
                .unwrap();
        assert_eq!(read_all(&mut f).unwrap(), vec![b"abc".to_vec()]);
        assert_eq!(f.truncated_at(), Some(24 + 16 + 3));
    }

    #[test]
    fn not_a_capture_and_empty() {
        for bytes in [
            b"hello world, this is text".to_vec(),
            Vec::new(),
            vec![0xd4],
        ] {
            let e = CaptureFile::from_reader(Box::new(Cursor::new(bytes)), "notes.txt".into())
                .unwrap_err();
            assert!(matches!(&e, InputError::NotACapture { name } if name == "notes.txt"));
            assert_eq!(e.to_string(), "notes.txt: not a pcap or pcapng capture");
        }
    }

    #[test]
    fn corrupt_in_the_middle() {
        let mut data = pcap(&[b"abc", b"defgh"]);
        // Second record's caplen becomes 100 MiB.
        let at = 24 + 16 + 3 + 8;
        data[at..at + 4].copy_from_slice(&(100u32 << 20).to_le_bytes());
        let mut f = CaptureFile::from_reader(Box::new(Cursor::new(data)), "c".into()).unwrap();
        assert_eq!(f.next_record().unwrap().unwrap().data, b"abc");
        match f.next_record() {
            Err(InputError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, 43);
                assert_eq!(reason, "record length too large");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn record_larger_than_initial_buffer_grows_it() {
        let small = vec![1u8; 65_000];
        let big = vec![7u8; 5 << 20];
        let mut data = pcap(&[]);
        data[16..20].copy_from_slice(&(8u32 << 20).to_le_bytes());
        // Many 65 kB records so one straddles the first refill boundary, then one record
        // larger than the whole initial buffer.
        for r in std::iter::repeat_n(&small, 70).chain([&big]) {
            data.extend_from_slice(&[0; 8]);
            data.extend_from_slice(&(r.len() as u32).to_le_bytes());
            data.extend_from_slice(&(r.len() as u32).to_le_bytes());
            data.extend_from_slice(r);
        }
        let mut f = CaptureFile::from_reader(Box::new(Cursor::new(data)), "b".into()).unwrap();
        let recs = read_all(&mut f).unwrap();
        assert_eq!(recs.len(), 71);
        assert!(recs[..70].iter().all(|r| r == &small));
        assert_eq!(recs[70], big);
    }

    #[test]
    fn spans_index_blocks_that_stay_unchanged_while_held() {
        // 40 records of 60,000 bytes (each filled with its index) span three blocks.
        let recs: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 60_000]).collect();
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let data = pcap(&refs);
        let mut f =
            CaptureFile::from_reader(Box::new(Trickle(Cursor::new(data), 70_000)), "s".into())
                .unwrap();
        let mut held: Vec<(Block, RecordSpan)> = Vec::new();
        let mut ids = Vec::new();
        while let Some(span) = f.next_span().unwrap() {
            ids.push(f.block_id());
            held.push((Block::clone(f.block()), span));
        }
        assert_eq!(held.len(), 40);
        assert!(ids.windows(2).all(|w| w[0] <= w[1]));
        assert!(ids.last().copied().unwrap_or(0) >= 2, "{ids:?}");
        // Every held block still holds its records: refills never wrote into them.
        for (i, (block, span)) in held.iter().enumerate() {
            let bytes = &block[span.data_start..span.data_start + span.data_len];
            assert_eq!(bytes, recs[i].as_slice(), "record {i}");
        }
    }

    #[test]
    fn open_missing_file() {
        let e = CaptureFile::open(Path::new("/nonexistent/x.pcap")).unwrap_err();
        assert!(matches!(e, InputError::Open { .. }));
        assert!(
            e.to_string()
                .starts_with("cannot open /nonexistent/x.pcap: ")
        );
    }
}
