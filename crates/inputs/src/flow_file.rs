//! Flow export input files: captures (pcap or pcapng, optionally gzip-compressed) of export
//! traffic, whose UDP payloads on any port are the datagrams (the UDP sender is the exporter),
//! or raw payload files holding one datagram each (as exporters' test suites store them).
//!
//! An I/O shell around [`CaptureFile`] and `wire::packet`: it does not decode the exports.

use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use wire::packet::L4;

use crate::file::{CaptureFile, InputError};

/// The largest raw payload file read as one datagram (a UDP payload is at most 65,507 bytes
/// over IPv4; jumbograms aside).
pub const MAX_RAW_DATAGRAM: usize = 65_535;

/// One export datagram.
#[derive(Clone, Copy, Debug)]
pub struct FlowDatagram<'a> {
    /// Capture time; `None` for raw payload files.
    pub ts_ns: Option<u64>,
    /// The UDP sender; `None` for raw payload files.
    pub exporter: Option<IpAddr>,
    pub payload: &'a [u8],
}

/// Frames of a capture that carried no export datagram, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSkips {
    /// Frames the packet decoder could not walk.
    pub undecodable: u64,
    /// Frames that are not UDP (TCP alongside, ICMP, ...).
    pub not_udp: u64,
    /// IP fragments (exports larger than the path MTU are not reassembled here).
    pub fragments: u64,
}

enum Source {
    Capture(Box<CaptureFile>),
    Raw { data: Vec<u8>, done: bool },
}

/// A flow export input being read.
pub struct FlowFile {
    source: Source,
    skips: FlowSkips,
    /// The current datagram's payload, copied out of the capture buffer (reused).
    buf: Vec<u8>,
}

impl std::fmt::Debug for FlowFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowFile")
            .field("skips", &self.skips)
            .finish_non_exhaustive()
    }
}

/// True when `head` starts like a capture (pcap in either byte order and resolution, pcapng,
/// or gzip, which only captures are read through).
fn looks_like_capture(head: &[u8]) -> bool {
    matches!(
        head,
        [0xa1, 0xb2, 0xc3, 0xd4, ..]
            | [0xd4, 0xc3, 0xb2, 0xa1, ..]
            | [0xa1, 0xb2, 0x3c, 0x4d, ..]
            | [0x4d, 0x3c, 0xb2, 0xa1, ..]
            | [0x0a, 0x0d, 0x0d, 0x0a, ..]
            | [0x1f, 0x8b, ..]
    )
}

impl FlowFile {
    /// Opens a capture or a raw payload file (sniffed from its first bytes); `-` is a capture
    /// on stdin.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        let skips = FlowSkips::default();
        if path.as_os_str() == "-" {
            return Ok(Self {
                source: Source::Capture(Box::new(CaptureFile::open(path)?)),
                skips,
                buf: Vec::new(),
            });
        }
        let open_err = |source| InputError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut f = File::open(path).map_err(open_err)?;
        let mut data = Vec::new();
        // One byte more than a datagram can be, to tell a raw file that is too large.
        (&mut f)
            .take(MAX_RAW_DATAGRAM as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|source| InputError::Read {
                name: path.display().to_string(),
                offset: 0,
                source,
            })?;
        if looks_like_capture(&data) {
            return Ok(Self {
                source: Source::Capture(Box::new(CaptureFile::open(path)?)),
                skips,
                buf: Vec::new(),
            });
        }
        if data.len() > MAX_RAW_DATAGRAM {
            return Err(InputError::NotACapture {
                name: path.display().to_string(),
            });
        }
        Ok(Self {
            source: Source::Raw { data, done: false },
            skips,
            buf: Vec::new(),
        })
    }

    /// The next export datagram, or `None` at the end of the input.
    pub fn next_datagram(&mut self) -> Result<Option<FlowDatagram<'_>>, InputError> {
        match &mut self.source {
            Source::Raw { data, done } => {
                if *done {
                    return Ok(None);
                }
                *done = true;
                Ok(Some(FlowDatagram {
                    ts_ns: None,
                    exporter: None,
                    payload: data,
                }))
            }
            Source::Capture(file) => loop {
                let Some(rec) = file.next_record()? else {
                    return Ok(None);
                };
                let Ok(pkt) = wire::packet::decode(rec.link, rec.data) else {
                    self.skips.undecodable += 1;
                    continue;
                };
                if pkt.fragment.is_some() {
                    self.skips.fragments += 1;
                    continue;
                }
                if pkt.l4 != L4::Udp {
                    self.skips.not_udp += 1;
                    continue;
                }
                // Copied out: the loop's borrow of the file cannot outlive an iteration.
                self.buf.clear();
                self.buf.extend_from_slice(pkt.payload);
                return Ok(Some(FlowDatagram {
                    ts_ns: Some(rec.ts_ns),
                    exporter: Some(pkt.src),
                    payload: &self.buf,
                }));
            },
        }
    }

    /// Frames skipped so far.
    pub fn skips(&self) -> FlowSkips {
        self.skips
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        match &self.source {
            Source::Capture(f) => f.bytes_read(),
            Source::Raw { data, done } => {
                if *done {
                    data.len() as u64
                } else {
                    0
                }
            }
        }
    }

    /// Where a capture ended in the middle of a record, if it did.
    pub fn truncated_at(&self) -> Option<u64> {
        match &self.source {
            Source::Capture(f) => f.truncated_at(),
            Source::Raw { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p =
            std::env::temp_dir().join(format!("wirelens-flowfile-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn raw_file_is_one_datagram() {
        let p = temp("raw", &[0, 5, 0, 0]);
        let mut f = FlowFile::open(&p).unwrap();
        let d = f.next_datagram().unwrap().unwrap();
        assert_eq!(d.payload, &[0, 5, 0, 0]);
        assert!(d.exporter.is_none());
        assert!(f.next_datagram().unwrap().is_none());
        assert_eq!(f.bytes_read(), 4);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn capture_yields_udp_payloads_with_their_sender() {
        // pcap, raw IPv4 link type (101): one UDP datagram 10.0.0.1 -> 10.0.0.2:2055, one TCP.
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&101u32.to_le_bytes());
        let udp = [
            0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x08,
            0x07, 0, 12, 0, 0, 9, 9, 9, 9,
        ];
        let tcp = [
            0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 0, 0,
            0, 0, 0, 0, 0, 0x50, 0, 0, 0, 0, 0, 0, 0,
        ];
        for (i, frame) in [&udp[..], &tcp[..]].iter().enumerate() {
            b.extend_from_slice(&(1_000 + i as u32).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            b.extend_from_slice(frame);
        }
        let p = temp("pcap", &b);
        let mut f = FlowFile::open(&p).unwrap();
        let d = f.next_datagram().unwrap().unwrap();
        assert_eq!(d.payload, &[9, 9, 9, 9]);
        assert_eq!(d.exporter, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(d.ts_ns, Some(1_000_000_000_000));
        assert!(f.next_datagram().unwrap().is_none());
        assert_eq!(f.skips().not_udp, 1);
        std::fs::remove_file(p).unwrap();
    }
}
