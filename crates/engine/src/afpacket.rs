//! Live capture sources for the agent: one `AF_PACKET` ring per worker and interface, all of a
//! tap's rings on one interface joined in one hash fanout group, so both directions of a
//! conversation reach the same worker, as the offline reader's symmetric flow hash does.
//! This is only the glue between `capture::Ring` and the runtime's [`PacketSource`]; the ring
//! itself (sockets, mmap, kernel statistics) lives in the `capture` crate.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use capture::{CaptureError, Fanout, FanoutMode, Ring, RingConfig};
use wire::capture::LinkType;

use crate::live::{Frame, PacketSource, SourceError, SourceStats};

/// Fanout group ids in use by this process: each (tap, interface) gets a fresh one. The high
/// byte comes from the process id so two agents on one host rarely pick the same group (the
/// kernel would refuse a group whose settings differ, and silently share one that matches).
static NEXT_GROUP: AtomicU16 = AtomicU16::new(0);

fn next_group_id() -> u16 {
    let salt = (std::process::id() as u16).wrapping_mul(0x9e37) & 0xff00;
    salt | (NEXT_GROUP.fetch_add(1, Ordering::Relaxed) & 0x00ff)
}

/// How a tap's live sources are made: the interfaces, the ring size per socket and an
/// optional kernel filter in tcpdump syntax.
#[derive(Clone, Debug)]
pub struct LiveSpec {
    /// Interface names (`any` captures every interface of the namespace).
    pub ifaces: Vec<String>,
    /// Bytes of ring per socket (`None`: the capture crate's default).
    pub ring_bytes: Option<u64>,
    /// Filter run in the kernel before frames are copied into the ring.
    pub bpf: Option<String>,
}

/// Opens one source per worker. Each source holds one ring per interface; the rings of all
/// workers on one interface form one fanout group.
pub fn open_sources(
    spec: &LiveSpec,
    workers: usize,
) -> Result<Vec<Box<dyn PacketSource>>, SourceError> {
    let workers = workers.max(1);
    let mut per_worker: Vec<Vec<Ring>> = (0..workers).map(|_| Vec::new()).collect();
    for iface in &spec.ifaces {
        let group_id = next_group_id();
        let mut config = RingConfig::new(iface);
        if let Some(bytes) = spec.ring_bytes {
            config = config.with_ring_size(bytes);
        }
        // A filter is compiled for the interface's link layer; on `any` frames come with
        // their devices' own headers, so the kernel filter is left to the user-space pass.
        if let Some(expr) = spec.bpf.as_deref()
            && iface != "any"
        {
            let program = wire::bpf::Program::compile(expr, LinkType::Ethernet)
                .map_err(|e| SourceError::Config(format!("bpf '{expr}': {e}")))?;
            config.filter = Some(program);
        }
        if workers > 1 {
            config.fanout = Some(Fanout {
                group_id,
                mode: FanoutMode::Hash,
                // Reassemble IP fragments before hashing, so every fragment of a datagram
                // reaches the worker its first fragment (with the ports) went to.
                defrag: true,
            });
        }
        for rings in &mut per_worker {
            rings.push(Ring::open(&config).map_err(capture_error)?);
        }
    }
    Ok(per_worker
        .into_iter()
        .map(|rings| Box::new(RingSource::new(rings)) as Box<dyn PacketSource>)
        .collect())
}

fn capture_error(e: CaptureError) -> SourceError {
    SourceError::Config(e.to_string())
}

/// One worker's rings.
pub struct RingSource {
    rings: Vec<Ring>,
    /// Frames whose stripped VLAN tag is put back, so the decoder sees the frame as it was
    /// on the wire (reused: no allocation per frame).
    scratch: Vec<u8>,
    received: u64,
    error: Option<String>,
    /// Which ring to wait on first (round robin when there are several).
    next: usize,
}

impl RingSource {
    fn new(rings: Vec<Ring>) -> Self {
        Self {
            rings,
            scratch: Vec::with_capacity(65_536 + 4),
            received: 0,
            error: None,
            next: 0,
        }
    }
}

impl PacketSource for RingSource {
    fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(&Frame<'_>),
    ) -> Result<usize, SourceError> {
        let n = self.rings.len().max(1);
        // Several interfaces share the wait, so a quiet one does not hold up a busy one for
        // the whole timeout.
        let slice = timeout / n as u32;
        let mut given = 0usize;
        for k in 0..self.rings.len() {
            let i = (self.next + k) % self.rings.len();
            let wait = if given == 0 { slice } else { Duration::ZERO };
            let block = match self.rings[i].next_block(wait) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    self.error = Some(e.to_string());
                    return Err(capture_error(e));
                }
            };
            for f in &block {
                let tagged = match (f.vlan_tci, f.link_type) {
                    (Some(tci), LinkType::Ethernet) if f.data.len() >= 12 => {
                        let tpid = f.vlan_tpid.unwrap_or(0x8100);
                        self.scratch.clear();
                        self.scratch.extend_from_slice(&f.data[..12]);
                        self.scratch.extend_from_slice(&tpid.to_be_bytes());
                        self.scratch.extend_from_slice(&tci.to_be_bytes());
                        self.scratch.extend_from_slice(&f.data[12..]);
                        true
                    }
                    _ => false,
                };
                let (data, orig_len) = if tagged {
                    (&self.scratch[..], f.orig_len + 4)
                } else {
                    (f.data, f.orig_len)
                };
                sink(&Frame {
                    ts_ns: f.ts_ns,
                    data,
                    orig_len,
                    link: f.link_type,
                });
                given += 1;
            }
        }
        self.next = self.next.wrapping_add(1);
        self.received += given as u64;
        Ok(given)
    }

    fn stats(&mut self) -> SourceStats {
        let mut s = SourceStats {
            received: self.received,
            error: self.error.clone(),
            ..SourceStats::default()
        };
        for ring in &mut self.rings {
            if let Ok(st) = ring.stats() {
                // The ring is full: the kernel dropped the frame before user space saw it.
                s.kernel_drops += st.drops;
            }
        }
        s
    }
}
