//! Offline runs (`wirelens read`): capture files → reader thread → sharded workers → merged
//! summaries. Deterministic: the result does not depend on the number of workers except
//! within the stated error of the heavy-hitter sketches.

use std::collections::BTreeMap;
use std::path::PathBuf;

use analyzers::pipeline::{Mode, Pipeline};
use analyzers::window::Period;
use crossbeam_channel::{Receiver, Sender, bounded};
use flow::defrag::{DefragConfig, Defragmenter, FragKey};
use inputs::file::{Block, CaptureFile, InputError};
use thiserror::Error;
use wire::capture::LinkType;
use wire::packet::Detached;

use crate::period::PeriodClock;

#[path = "flows.rs"]
mod flows;

/// Records per batch handed to a worker.
const BATCH_RECORDS: usize = 2048;
/// Arena bytes (frames copied into the batch: reassembled datagrams, dnstap messages)
/// per batch before it is sent early.
const BATCH_BYTES: usize = 1 << 20;
/// Batches in flight per worker (bounds memory: workers × this × batch size).
const QUEUE_DEPTH: usize = 8;

/// The kind of the input files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputKind {
    /// pcap / pcapng captures.
    #[default]
    Pcap,
    /// dnstap Frame Streams files.
    Dnstap,
    /// sFlow v5 exports: captures of the export traffic, or raw datagram files.
    Sflow,
    /// NetFlow v1/v5/v7/v9 and IPFIX exports: captures or raw datagram files.
    Netflow,
}

/// What to read and how to summarize it.
pub struct ReadConfig {
    pub files: Vec<PathBuf>,
    pub input: InputKind,
    /// A packet filter in tcpdump syntax; frames it rejects are not seen at all (as with a
    /// capture filter), so they neither count nor move time.
    pub bpf: Option<String>,
    /// One pipeline per worker, all built from the same policies (their number sets the
    /// number of workers).
    pub pipelines: Vec<Pipeline>,
    pub defrag: DefragConfig,
    /// Periods kept (1 = the whole input is one period).
    pub num_periods: u8,
}

/// Progress of a run, reported every so often from the reading thread.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub file: String,
    pub records: u64,
    pub bytes: u64,
    pub file_size: Option<u64>,
}

/// Statistics of the input side of a run.
#[derive(Clone, Debug, Default)]
pub struct ReadStats {
    pub records: u64,
    pub bytes: u64,
    /// Undecodable frames by reason (they still count as packets of unknown layers).
    pub decode_errors: BTreeMap<&'static str, u64>,
    /// Files that ended in the middle of a record: (name, byte offset).
    pub truncated: Vec<(String, u64)>,
    pub fragments: u64,
    pub reassembled: u64,
    /// Frames the packet filter rejected.
    pub filtered_out: u64,
}

/// The outcome of a run: every worker's summaries merged, and the period table.
pub struct ReadResult {
    pub pipeline: Pipeline,
    pub periods: Vec<Period>,
    pub stats: ReadStats,
}

/// A run that could not complete.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Dnstap(#[from] inputs::dnstap_file::DnstapFileError),
    #[error("bad packet filter: {0}")]
    Filter(String),
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

#[derive(Clone, Copy)]
struct Rec {
    /// Where the frame is: in the batch's block (`in_block`) or in its own arena.
    off: u32,
    len: u32,
    in_block: bool,
    orig_len: u32,
    ts_ns: u64,
    link: LinkType,
    mode: Mode,
    /// Symmetric flow hash computed by the reader (0 for undecodable frames).
    flow: u64,
    /// Index in the batch's `pkts` of the reader's decode of the frame, re-attached to the
    /// copy by the worker (decoding once instead of twice); `None` when the worker must
    /// decode. The decode travels beside the record, not in it: most records have none, and
    /// a small record is cheaper to push and read.
    pkt: Option<u32>,
}

impl Rec {
    /// A record not yet placed: `enqueue` fills in where the frame travels (`off`, `len`,
    /// `in_block`) and `enqueue_decoded` the index of its decode.
    fn new(orig_len: u32, ts_ns: u64, link: LinkType, mode: Mode, flow: u64) -> Self {
        Self {
            off: 0,
            len: 0,
            in_block: false,
            orig_len,
            ts_ns,
            link,
            mode,
            flow,
            pkt: None,
        }
    }
}

/// Records for one worker. Captured frames stay in the input block they were read into
/// (shared, never copied); frames the reader builds itself are copied into `data`.
#[derive(Default)]
struct Batch {
    /// The input block of every `in_block` record (a batch never spans two blocks).
    block: Option<Block>,
    data: Vec<u8>,
    recs: Vec<Rec>,
    /// Decodes made by the reader (see [`Rec::pkt`]).
    pkts: Vec<Detached>,
}

enum Msg {
    Batch(Batch),
    Rotate { seq: u32, ts_ns: u64 },
}

/// Runs the whole offline pipeline; `progress` is called from this thread now and then.
pub fn run(cfg: ReadConfig, progress: &mut dyn FnMut(&Progress)) -> Result<ReadResult, ReadError> {
    if let Some(expr) = &cfg.bpf {
        // Syntax errors surface before any input is read.
        if let Err(e) = wire::bpf::Program::compile(expr, LinkType::Ethernet) {
            return Err(ReadError::Filter(e.to_string()));
        }
        if cfg.input != InputKind::Pcap {
            return Err(ReadError::Filter(
                "packet filters apply to packet captures only".into(),
            ));
        }
    }
    let mut pipelines = cfg.pipelines;
    if pipelines.is_empty() {
        return Err(ReadError::Worker("no pipeline to run".into()));
    }
    let workers = pipelines.len();
    let mut senders: Vec<Sender<Msg>> = Vec::with_capacity(workers);
    let (free_tx, free_rx) = bounded::<Batch>(workers * (QUEUE_DEPTH + 2));
    let mut handles = Vec::with_capacity(workers);
    for mut pipeline in pipelines.drain(..) {
        let (tx, rx) = bounded::<Msg>(QUEUE_DEPTH);
        senders.push(tx);
        let free_tx = free_tx.clone();
        handles.push(std::thread::spawn(move || {
            worker(&mut pipeline, &rx, &free_tx);
            pipeline
        }));
    }
    drop(free_tx);

    let mut reader = Reader {
        clock: PeriodClock::new(cfg.num_periods),
        defrag: Defragmenter::new(cfg.defrag),
        pending: (0..workers).map(|_| Batch::default()).collect(),
        senders,
        free_rx,
        stats: ReadStats::default(),
        frag_data: Vec::new(),
        bpf: cfg.bpf.clone(),
        programs: Vec::new(),
    };
    let result = match cfg.input {
        InputKind::Pcap => reader.read_all(&cfg.files, progress),
        InputKind::Dnstap => reader.read_dnstap(&cfg.files, progress),
        InputKind::Sflow | InputKind::Netflow => match flows::input_of(cfg.input) {
            Some(input) => reader.read_flows(&cfg.files, input, progress),
            None => Ok(()),
        },
    };
    // Flush and close the queues whatever happened, so the workers finish.
    reader.flush_all();
    let Reader {
        mut clock,
        senders,
        stats,
        ..
    } = reader;
    drop(senders);
    let mut merged: Option<Pipeline> = None;
    let mut worker_error = (workers == 0).then(|| ReadError::Worker("no worker".into()));
    for h in handles {
        match h.join() {
            Ok(p) => match &mut merged {
                None => merged = Some(p),
                Some(m) => m.merge(&p),
            },
            Err(_) => worker_error = Some(ReadError::Worker("panicked".into())),
        }
    }
    result?;
    if let Some(e) = worker_error {
        return Err(e);
    }
    clock.finish();
    let Some(pipeline) = merged else {
        return Err(ReadError::Worker("no worker finished".into()));
    };
    Ok(ReadResult {
        pipeline,
        periods: clock.periods().to_vec(),
        stats,
    })
}

/// Where a captured frame lies in a shared input block.
#[derive(Clone, Copy)]
struct FrameAt<'b> {
    block: &'b Block,
    off: u32,
}

struct Reader {
    clock: PeriodClock,
    defrag: Defragmenter,
    pending: Vec<Batch>,
    senders: Vec<Sender<Msg>>,
    free_rx: Receiver<Batch>,
    stats: ReadStats,
    /// Scratch buffer for one fragment's data.
    frag_data: Vec<u8>,
    /// The packet filter's text and its programs, compiled per link type on first use.
    bpf: Option<String>,
    programs: Vec<(LinkType, wire::bpf::Program)>,
}

impl Reader {
    fn read_all(
        &mut self,
        files: &[PathBuf],
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), ReadError> {
        for path in files {
            let mut file = CaptureFile::open(path)?;
            let name = path.display().to_string();
            let file_size = std::fs::metadata(path).ok().map(|m| m.len());
            let mut since_report = 0u32;
            let mut block_id = u64::MAX;
            while let Some(rec) = file.next_span()? {
                if file.block_id() != block_id {
                    // A batch never spans two blocks: send what refers to the old one.
                    block_id = file.block_id();
                    self.flush_all();
                }
                let block = file.block();
                let data = block
                    .get(rec.data_start..rec.data_start + rec.data_len)
                    .unwrap_or_default();
                let (ts, link, orig_len) = (rec.ts_ns, rec.link, rec.orig_len);
                if self.bpf.is_some() && !self.passes_filter(link, data, orig_len)? {
                    self.stats.filtered_out += 1;
                    continue;
                }
                let at = FrameAt {
                    block,
                    off: rec.data_start as u32,
                };
                self.push_frame(ts, link, orig_len, data, Some(at));
                since_report += 1;
                if since_report >= 65_536 {
                    since_report = 0;
                    progress(&Progress {
                        file: name.clone(),
                        records: self.stats.records,
                        bytes: file.bytes_read(),
                        file_size,
                    });
                }
            }
            self.end_of_file(
                name,
                file.bytes_read(),
                file_size,
                file.truncated_at(),
                progress,
            );
        }
        Ok(())
    }

    /// Shards one captured frame; `at` says where it lies in a shared block (so it is not
    /// copied), `None` when `data` must be copied.
    fn push_frame(
        &mut self,
        ts_ns: u64,
        link: LinkType,
        orig_len: u32,
        data: &[u8],
        at: Option<FrameAt<'_>>,
    ) {
        self.stats.records += 1;
        self.advance_clock(ts_ns);
        let frame_len = orig_len.max(data.len() as u32);
        // The common frame (Ethernet, IPv4, UDP or TCP, not a fragment) is sharded from a few
        // header bytes and decoded once, by its worker: the reader is the serial stage.
        if let Some(flow) = wire::hash::quick_flow_hash(link, data) {
            self.enqueue(data, at, Rec::new(frame_len, ts_ns, link, Mode::Full, flow));
            return;
        }
        match wire::packet::decode(link, data) {
            Ok(pkt) => {
                let flow = wire::hash::flow_hash(&pkt);
                if let Some(frag) = pkt.fragment {
                    self.stats.fragments += 1;
                    let datagram = self.reassemble(&pkt, frag, ts_ns);
                    // The fragment itself counts as a packet.
                    self.enqueue(
                        data,
                        at,
                        Rec::new(frame_len, ts_ns, link, Mode::PacketOnly, flow),
                    );
                    if let Some(d) = datagram {
                        self.stats.reassembled += 1;
                        let flow =
                            wire::packet::decode_ip(&d).map_or(flow, |p| wire::hash::flow_hash(&p));
                        self.enqueue(
                            &d,
                            None,
                            Rec::new(d.len() as u32, ts_ns, LinkType::Raw, Mode::AppOnly, flow),
                        );
                    }
                } else {
                    let detached = pkt.detach(data);
                    self.enqueue_decoded(
                        data,
                        at,
                        Rec::new(frame_len, ts_ns, link, Mode::Full, flow),
                        detached,
                    );
                }
            }
            Err(e) => {
                *self.stats.decode_errors.entry(e.reason()).or_insert(0) += 1;
                self.enqueue(data, at, Rec::new(frame_len, ts_ns, link, Mode::Full, 0));
            }
        }
    }

    /// Feeds one fragment to the defragmenter; returns the whole datagram when it completes.
    fn reassemble(
        &mut self,
        pkt: &wire::packet::Packet<'_>,
        frag: wire::packet::Fragment,
        ts_ns: u64,
    ) -> Option<Vec<u8>> {
        let (header, proto) = if pkt.l3 == wire::packet::L3::Ipv6 {
            // IPv6: the unfragmentable part is the header; everything after the Fragment
            // header (later extension headers of a first fragment included) is fragment data.
            let (at, next) = wire::packet::ipv6_fragment_header(pkt.ip_header)?;
            self.frag_data.clear();
            self.frag_data
                .extend_from_slice(pkt.ip_header.get(at + 8..).unwrap_or_default());
            self.frag_data.extend_from_slice(pkt.ip_payload);
            (pkt.ip_header.get(..at)?, next)
        } else {
            self.frag_data.clear();
            self.frag_data.extend_from_slice(pkt.ip_payload);
            (pkt.ip_header, pkt.ip_proto)
        };
        let key = FragKey {
            src: pkt.src,
            dst: pkt.dst,
            id: frag.id,
            proto,
            vlan: pkt.vlan,
        };
        self.defrag
            .insert(key, header, frag.offset, frag.more, &self.frag_data, ts_ns)
            .map(<[u8]>::to_vec)
    }

    /// Runs the packet filter for `link`, compiling it on first use of that link type.
    fn passes_filter(
        &mut self,
        link: LinkType,
        frame: &[u8],
        wire_len: u32,
    ) -> Result<bool, ReadError> {
        let idx = match self.programs.iter().position(|(l, _)| *l == link) {
            Some(i) => i,
            None => {
                let expr = self.bpf.as_deref().unwrap_or_default();
                let program = wire::bpf::Program::compile(expr, link)
                    .map_err(|e| ReadError::Filter(format!("{e} (link type {})", link.number())))?;
                self.programs.push((link, program));
                self.programs.len() - 1
            }
        };
        Ok(self.programs[idx].1.matches(frame, wire_len))
    }

    fn read_dnstap(
        &mut self,
        files: &[PathBuf],
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), ReadError> {
        let mut last_ts = 0u64;
        for path in files {
            let mut file = inputs::dnstap_file::DnstapFile::open(path)?;
            let name = path.display().to_string();
            let file_size = std::fs::metadata(path).ok().map(|m| m.len());
            while let Some(payload) = file.next_message()? {
                // Messages without their time (or of types without a time rule) take the
                // previous message's time, so offline runs stay deterministic.
                let decoded = wire::dnstap::decode(payload).ok();
                let msg = decoded.as_ref().and_then(|d| d.event_message());
                let ts = msg.and_then(|m| m.event_time_ns()).unwrap_or(last_ts);
                last_ts = ts;
                let flow = msg.map_or(0, analyzers::dnstap::flow_of);
                self.stats.records += 1;
                self.advance_clock(ts);
                let len = payload.len() as u32;
                self.enqueue(
                    payload,
                    None,
                    Rec::new(len, ts, LinkType::Other(0), Mode::Dnstap, flow),
                );
            }
            self.end_of_file(
                name,
                file.bytes_read(),
                file_size,
                file.truncated_at(),
                progress,
            );
        }
        Ok(())
    }

    /// Places an event in its period; when a new period starts, every worker is told between
    /// batches (so no packet of the old period is processed after the rotation), and
    /// fragments too old to complete are dropped.
    fn advance_clock(&mut self, ts_ns: u64) {
        let before = self.clock.current();
        let seq = self.clock.observe(ts_ns);
        if seq != before {
            self.flush_all();
            for tx in &self.senders {
                let _ = tx.send(Msg::Rotate { seq, ts_ns });
            }
            self.defrag.expire(ts_ns);
        }
    }

    /// Book-keeping at the end of one input file.
    fn end_of_file(
        &mut self,
        name: String,
        bytes_read: u64,
        file_size: Option<u64>,
        truncated_at: Option<u64>,
        progress: &mut dyn FnMut(&Progress),
    ) {
        self.stats.bytes += bytes_read;
        if let Some(off) = truncated_at {
            self.stats.truncated.push((name.clone(), off));
        }
        progress(&Progress {
            file: name,
            records: self.stats.records,
            bytes: bytes_read,
            file_size,
        });
    }

    /// Appends the record (`off`, `len` and `in_block` are filled in here) to the batch of
    /// the record's worker: pointing into the shared block when `at` says where `data` lies
    /// (the caller flushed batches of older blocks), else with a copy of `data`.
    fn enqueue(&mut self, data: &[u8], at: Option<FrameAt<'_>>, rec: Rec) {
        self.enqueue_decoded(data, at, rec, None);
    }

    /// [`Self::enqueue`] with the reader's decode of the frame, if any, for the worker.
    fn enqueue_decoded(
        &mut self,
        data: &[u8],
        at: Option<FrameAt<'_>>,
        mut rec: Rec,
        decoded: Option<Detached>,
    ) {
        let w = (rec.flow % self.senders.len() as u64) as usize;
        let batch = &mut self.pending[w];
        if let Some(d) = decoded {
            rec.pkt = Some(batch.pkts.len() as u32);
            batch.pkts.push(d);
        }
        rec.len = data.len() as u32;
        match at {
            Some(at) => {
                if batch.block.is_none() {
                    batch.block = Some(Block::clone(at.block));
                }
                rec.off = at.off;
                rec.in_block = true;
            }
            None => {
                rec.off = batch.data.len() as u32;
                rec.in_block = false;
                batch.data.extend_from_slice(data);
            }
        }
        batch.recs.push(rec);
        if batch.recs.len() >= BATCH_RECORDS || batch.data.len() >= BATCH_BYTES {
            self.flush(w);
        }
    }

    fn flush(&mut self, w: usize) {
        if self.pending[w].recs.is_empty() {
            return;
        }
        let fresh = self.free_rx.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.pending[w], fresh);
        let _ = self.senders[w].send(Msg::Batch(full));
    }

    fn flush_all(&mut self) {
        for w in 0..self.pending.len() {
            self.flush(w);
        }
    }
}

fn worker(pipeline: &mut Pipeline, rx: &Receiver<Msg>, free_tx: &Sender<Batch>) {
    for msg in rx {
        match msg {
            Msg::Rotate { seq, ts_ns } => pipeline.rotate_to(seq, ts_ns),
            Msg::Batch(mut batch) => {
                let block: &[u8] = batch.block.as_deref().map_or(&[], Vec::as_slice);
                for r in &batch.recs {
                    let src = if r.in_block { block } else { &batch.data };
                    let bytes = src
                        .get(r.off as usize..r.off as usize + r.len as usize)
                        .unwrap_or(&[]);
                    if let Mode::Flow(input) = r.mode {
                        flows::process(pipeline, input, bytes);
                        continue;
                    }
                    if r.mode == Mode::Dnstap {
                        pipeline.process_dnstap(bytes, r.ts_ns, r.flow);
                        continue;
                    }
                    let decoded = if let Some(d) = r.pkt.and_then(|i| batch.pkts.get(i as usize)) {
                        Ok(d.attach(bytes))
                    } else if r.mode == Mode::AppOnly {
                        wire::packet::decode_ip(bytes)
                    } else {
                        wire::packet::decode(r.link, bytes)
                    };
                    // By reference: moving the packet out of the result would copy it.
                    match &decoded {
                        Ok(pkt) => pipeline.process(pkt, r.orig_len, r.ts_ns, r.flow, r.mode),
                        Err(_) => pipeline.process_undecodable(r.orig_len, r.ts_ns),
                    }
                }
                // Release the block now: the reader recycles it once every batch has.
                batch.block = None;
                batch.data.clear();
                batch.recs.clear();
                batch.pkts.clear();
                let _ = free_tx.try_send(batch);
            }
        }
    }
    pipeline.finish();
}
