//! The live runtime (`wirelens agent`): long-running worker threads that poll packet sources,
//! run every policy's handlers, and rotate their buckets on the wall clock. Inputs and policies
//! come and go at run time through control messages that workers read between batches, never
//! per packet. This is not the offline reader (`offline`), whose periods follow packet time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use analyzers::config::{ConfigMap, ConfigValue};
use analyzers::pipeline::{Handler, Mode, Pipeline, PolicyPlan};
use analyzers::window::Period;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use inputs::file::{CaptureFile, InputError};
use thiserror::Error;
use wire::capture::LinkType;

/// Frames handed to the sink per `poll` of a file source (a batch between control checks).
const FILE_BATCH: usize = 256;
/// How long shutdown waits for workers to finish their batch and flush.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long a worker waits on one source before looking at its control channel again.
const POLL_TIMEOUT: Duration = Duration::from_millis(20);

/// One captured frame, borrowed from the source's buffer for the duration of the sink call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The captured bytes (possibly cut at the snapshot length).
    pub data: &'a [u8],
    /// The length of the frame on the wire.
    pub orig_len: u32,
    pub link: LinkType,
}

/// Counters of one source (or the sum over a tap's sources).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Frames handed to the workers.
    pub received: u64,
    /// Frames the kernel dropped (socket queue full).
    pub kernel_drops: u64,
    /// Frames the interface or ring dropped (pktvisor's `if_drops`).
    pub if_drops: u64,
    /// The source has nothing more to give (a replayed file at its end).
    pub finished: bool,
    /// Why the source stopped, when it failed.
    pub error: Option<String>,
    /// Counters of the source's own kind (a listener's connections, frames, errors), summed
    /// by name over workers.
    pub extra: Vec<(&'static str, u64)>,
}

impl SourceStats {
    fn add(&mut self, o: &SourceStats) {
        self.received += o.received;
        self.kernel_drops += o.kernel_drops;
        self.if_drops += o.if_drops;
        self.finished &= o.finished;
        if self.error.is_none() {
            self.error.clone_from(&o.error);
        }
        for (name, n) in &o.extra {
            match self.extra.iter_mut().find(|(k, _)| k == name) {
                Some((_, v)) => *v += n,
                None => self.extra.push((name, *n)),
            }
        }
    }
}

/// A source that cannot be built or cannot go on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("input stream type '{0}' is not available")]
    UnknownType(String),
    #[error("no iface was specified for live capture")]
    NoIface,
    #[error("{0}")]
    Config(String),
}

/// What a source's frames are: the worker decodes each kind its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Link-layer frames (pcap files, live capture).
    Packets,
    /// Encoded dnstap messages, each prefixed by its flow hash (little endian, 8 bytes).
    Dnstap,
    /// Flow export datagrams, each prefixed by its exporter (see [`crate::streams`]).
    Flow(analyzers::flow::FlowInput),
}

/// One worker's share of a tap's input. Implementations: pcap file replay (here), AF_PACKET
/// ring (through [`crate::afpacket::open_sources`]), dnstap and flow export listeners
/// (through [`crate::streams`]).
pub trait PacketSource: Send {
    /// Waits up to `timeout` for frames; calls `sink` for each; returns how many, 0 on
    /// timeout. An error is fatal for this source.
    fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(&Frame<'_>),
    ) -> Result<usize, SourceError>;
    /// Counters so far.
    fn stats(&mut self) -> SourceStats;
    /// What the frames are (packets unless said otherwise).
    fn kind(&self) -> EventKind {
        EventKind::Packets
    }
}

/// The keys a `pcap` tap accepts (pktvisor's list, plus `ring_size_mb`: the AF_PACKET ring
/// per worker and interface, in MiB).
pub const PCAP_KEYS: [&str; 8] = [
    "iface",
    "ring_size_mb",
    "bpf",
    "debug",
    "host_spec",
    "pcap_file",
    "pcap_source",
    "tcp_packet_reassembly_cache_limit",
];

/// Input types this build can run.
pub const INPUT_TYPES: [&str; 3] = ["pcap", "dnstap", "flow"];

/// The config keys a tap of `input_type` accepts (empty for an unknown type).
pub fn tap_keys(input_type: &str) -> &'static [&'static str] {
    match input_type {
        "pcap" => &PCAP_KEYS,
        "dnstap" => &crate::streams::DNSTAP_KEYS,
        "flow" => &crate::streams::FLOW_KEYS,
        _ => &[],
    }
}

/// Builds one source per worker for a tap's `input_type` and merged `config`.
pub fn build_sources(
    input_type: &str,
    config: &ConfigMap,
    workers: usize,
) -> Result<Vec<Box<dyn PacketSource>>, SourceError> {
    match input_type {
        "pcap" => {}
        "dnstap" => return crate::streams::dnstap_sources(config, workers),
        "flow" => return crate::streams::flow_sources(config, workers),
        _ => return Err(SourceError::UnknownType(input_type.to_string())),
    }
    config
        .validate_keys(&PCAP_KEYS)
        .map_err(|e| SourceError::Config(e.0))?;
    let text = |k: &str| config.get(k).and_then(ConfigValue::scalar_string);
    let workers = workers.max(1);
    if let Some(path) = text("pcap_file") {
        let path = PathBuf::from(path);
        let mut out: Vec<Box<dyn PacketSource>> = Vec::with_capacity(workers);
        for index in 0..workers {
            out.push(Box::new(FileReplay::open(&path, index, workers)?));
        }
        return Ok(out);
    }
    match text("pcap_source").as_deref() {
        None | Some("libpcap" | "af_packet") => {}
        Some(other) => return Err(SourceError::Config(format!("unknown pcap source: {other}"))),
    }
    let iface = text("iface").ok_or(SourceError::NoIface)?;
    let ring_bytes = match text("ring_size_mb") {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(mb) if (1..=65_536).contains(&mb) => Some(mb << 20),
            _ => {
                return Err(SourceError::Config(format!(
                    "ring_size_mb must be a number of MiB from 1 to 65536, not '{v}'"
                )));
            }
        },
    };
    let spec = crate::afpacket::LiveSpec {
        ifaces: iface
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        ring_bytes,
        bpf: text("bpf"),
    };
    if spec.ifaces.is_empty() {
        return Err(SourceError::NoIface);
    }
    crate::afpacket::open_sources(&spec, workers)
}

/// A capture file replayed once; each worker's replay keeps only the frames whose symmetric
/// flow hash falls in its share, as a fanout group would, so both directions of a
/// conversation meet in one worker.
pub struct FileReplay {
    file: CaptureFile,
    index: u64,
    of: u64,
    stats: SourceStats,
}

impl FileReplay {
    /// Opens `path` for worker `index` of `of`.
    pub fn open(path: &std::path::Path, index: usize, of: usize) -> Result<Self, SourceError> {
        Ok(Self {
            file: CaptureFile::open(path)?,
            index: index as u64,
            of: of.max(1) as u64,
            stats: SourceStats::default(),
        })
    }
}

impl PacketSource for FileReplay {
    fn poll(
        &mut self,
        _timeout: Duration,
        sink: &mut dyn FnMut(&Frame<'_>),
    ) -> Result<usize, SourceError> {
        // At its end a file has nothing more: the worker then waits on its control channel.
        if self.stats.finished {
            return Ok(0);
        }
        let mut given = 0;
        // Reads until some frames of this worker's share came (or the file ended), so that
        // a worker whose share is rare does not idle between batches; bounded so control
        // messages still get through on long files.
        let mut read = 0;
        while read < FILE_BATCH * 64 && (given == 0 || read % FILE_BATCH != 0) {
            read += 1;
            let Some(rec) = self.file.next_record()? else {
                self.stats.finished = true;
                break;
            };
            let flow =
                wire::packet::decode(rec.link, rec.data).map_or(0, |p| wire::hash::flow_hash(&p));
            if flow % self.of != self.index {
                continue;
            }
            sink(&Frame {
                ts_ns: rec.ts_ns,
                data: rec.data,
                orig_len: rec.orig_len,
                link: rec.link,
            });
            given += 1;
        }
        self.stats.received += given as u64;
        Ok(given)
    }

    fn stats(&mut self) -> SourceStats {
        self.stats.clone()
    }
}

/// Which wall-clock period a moment belongs to: period `n` starts `n` period lengths after the
/// runtime started (pktvisor's rotation every 60 s, idle or not).
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    t0_ns: u64,
    period_ns: u64,
}

/// Now, ns since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl WallClock {
    pub fn new(t0_ns: u64, period: Duration) -> Self {
        Self {
            t0_ns,
            period_ns: (period.as_nanos() as u64).max(1),
        }
    }

    /// The period sequence number at `now` ns.
    pub fn seq_at(&self, now: u64) -> u32 {
        (now.saturating_sub(self.t0_ns) / self.period_ns).min(u64::from(u32::MAX)) as u32
    }

    /// The span of period `seq` seen at `now`: a live period ends now.
    pub fn period(&self, seq: u32, now: u64) -> Period {
        let start_ns = self.t0_ns + u64::from(seq) * self.period_ns;
        let end_ns = if seq < self.seq_at(now) {
            start_ns + self.period_ns
        } else {
            now.max(start_ns)
        };
        Period { start_ns, end_ns }
    }
}

/// How the runtime runs.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub workers: usize,
    /// Period length (pktvisor: 60 s).
    pub period: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            period: Duration::from_secs(crate::period::PERIOD_SEC),
        }
    }
}

/// A request the runtime cannot carry out.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("input '{0}' already exists")]
    InputExists(String),
    #[error("input '{0}' does not exist")]
    NoInput(String),
    #[error("bad packet filter: {0}")]
    Filter(String),
    #[error("expected {expected} sources (one per worker), got {got}")]
    SourceCount { expected: usize, got: usize },
    #[error("the runtime has stopped")]
    Stopped,
}

enum Control {
    AddInput {
        key: String,
        source: Box<dyn PacketSource>,
        pipeline: Box<Pipeline>,
        filter: Option<String>,
        ack: Sender<()>,
    },
    RemoveInput {
        key: String,
        ack: Sender<()>,
    },
    AddPolicy {
        input: String,
        plan: PolicyPlan,
        ack: Sender<()>,
    },
    RemovePolicy {
        input: String,
        name: String,
        ack: Sender<()>,
    },
    Snapshot {
        input: String,
        policy: String,
        into: Vec<Handler>,
        reply: Sender<Option<Vec<Handler>>>,
    },
    Stats {
        input: String,
        reply: Sender<Option<SourceStats>>,
    },
}

/// The running workers and the clock they share.
pub struct Runtime {
    senders: Vec<Sender<Control>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    clock: WallClock,
}

impl Runtime {
    /// Starts `cfg.workers` idle workers.
    pub fn start(cfg: &RuntimeConfig) -> Self {
        let clock = WallClock::new(now_ns(), cfg.period);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = cfg.workers.clamp(1, 256);
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = unbounded::<Control>();
            senders.push(tx);
            let stop = stop.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("wirelens-w{i}"))
                    .spawn(move || Worker::new(clock).run(&rx, &stop))
                    .expect("spawning a worker thread"),
            );
        }
        Self {
            senders,
            handles,
            stop,
            clock,
        }
    }

    pub fn workers(&self) -> usize {
        self.senders.len()
    }

    pub fn clock(&self) -> WallClock {
        self.clock
    }

    /// The live period's sequence number.
    pub fn current_seq(&self) -> u32 {
        self.clock.seq_at(now_ns())
    }

    /// The span of period `seq` (the live one ends now).
    pub fn period(&self, seq: u32) -> Period {
        self.clock.period(seq, now_ns())
    }

    /// Sends one message per worker (built by `make`) and waits for every answer.
    fn broadcast<T: Send + 'static>(
        &self,
        mut make: impl FnMut(usize, Sender<T>) -> Control,
    ) -> Result<Vec<T>, RuntimeError> {
        let mut rxs = Vec::with_capacity(self.senders.len());
        for (i, tx) in self.senders.iter().enumerate() {
            let (rtx, rrx) = bounded(1);
            tx.send(make(i, rtx)).map_err(|_| RuntimeError::Stopped)?;
            rxs.push(rrx);
        }
        rxs.into_iter()
            .map(|r| r.recv().map_err(|_| RuntimeError::Stopped))
            .collect()
    }

    /// Starts an input: `sources` holds one source per worker; `pipeline` builds each worker's
    /// (policy-less) pipeline; `filter` is a packet filter in tcpdump syntax.
    ///
    /// The pipeline may already hold policies: they see the input from its first frame (a
    /// replayed file starts at once). Every pipeline is built before anything is sent, so a
    /// failure changes nothing.
    pub fn add_input<E>(
        &self,
        key: &str,
        sources: Vec<Box<dyn PacketSource>>,
        pipeline: &mut dyn FnMut() -> Result<Pipeline, E>,
        filter: Option<String>,
    ) -> Result<(), E>
    where
        E: From<RuntimeError>,
    {
        if sources.len() != self.senders.len() {
            return Err(RuntimeError::SourceCount {
                expected: self.senders.len(),
                got: sources.len(),
            }
            .into());
        }
        if let Some(expr) = &filter {
            wire::bpf::Program::compile(expr, LinkType::Ethernet)
                .map_err(|e| RuntimeError::Filter(e.to_string()))?;
        }
        let mut pipelines = Vec::with_capacity(sources.len());
        for _ in 0..sources.len() {
            pipelines.push(Box::new(pipeline()?));
        }
        let mut pairs = sources.into_iter().zip(pipelines);
        self.broadcast(|_, ack| {
            let (source, pipeline) = pairs.next().expect("one source per worker");
            Control::AddInput {
                key: key.to_string(),
                source,
                pipeline,
                filter: filter.clone(),
                ack,
            }
        })?;
        Ok(())
    }

    /// Stops an input and drops its pipelines (and every policy on it).
    pub fn remove_input(&self, key: &str) -> Result<(), RuntimeError> {
        self.broadcast(|_, ack| Control::RemoveInput {
            key: key.to_string(),
            ack,
        })?;
        Ok(())
    }

    /// Adds a policy to an input on every worker; `build` makes one worker's handlers (it is
    /// called once per worker, before anything is sent, so a failure changes nothing).
    pub fn add_policy<E>(
        &self,
        input: &str,
        build: &mut dyn FnMut() -> Result<PolicyPlan, E>,
    ) -> Result<(), E>
    where
        E: From<RuntimeError>,
    {
        let mut plans = Vec::with_capacity(self.senders.len());
        for _ in 0..self.senders.len() {
            plans.push(build()?);
        }
        let mut plans = plans.into_iter();
        self.broadcast(|_, ack| Control::AddPolicy {
            input: input.to_string(),
            plan: plans.next().expect("one plan per worker"),
            ack,
        })?;
        Ok(())
    }

    /// Removes a policy from an input on every worker; the input's other policies go on.
    pub fn remove_policy(&self, input: &str, name: &str) -> Result<(), RuntimeError> {
        self.broadcast(|_, ack| Control::RemovePolicy {
            input: input.to_string(),
            name: name.to_string(),
            ack,
        })?;
        Ok(())
    }

    /// Every worker's handlers of a policy merged, in policy order: `empty` builds fresh
    /// handlers of the same specs to merge into. `None` when no worker runs that policy.
    pub fn snapshot(
        &self,
        input: &str,
        policy: &str,
        empty: &mut dyn FnMut() -> Vec<Handler>,
    ) -> Result<Option<Vec<Handler>>, RuntimeError> {
        let parts = self.broadcast(|_, reply| Control::Snapshot {
            input: input.to_string(),
            policy: policy.to_string(),
            into: empty(),
            reply,
        })?;
        let mut merged: Option<Vec<Handler>> = None;
        for part in parts.into_iter().flatten() {
            match &mut merged {
                None => merged = Some(part),
                Some(m) => {
                    for (a, b) in m.iter_mut().zip(part.iter()) {
                        a.merge(b);
                    }
                }
            }
        }
        Ok(merged)
    }

    /// The input's source counters summed over workers; `None` for an unknown input.
    pub fn source_stats(&self, input: &str) -> Result<Option<SourceStats>, RuntimeError> {
        let parts = self.broadcast(|_, reply| Control::Stats {
            input: input.to_string(),
            reply,
        })?;
        let mut out: Option<SourceStats> = None;
        for p in parts.into_iter().flatten() {
            match &mut out {
                None => out = Some(p),
                Some(o) => o.add(&p),
            }
        }
        Ok(out)
    }

    /// Stops every worker after its current batch and waits for it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.senders.clear();
        // A source blocked in a read that never returns (a FIFO nobody writes) must not keep
        // the process from exiting: such a worker is left behind after a grace period.
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
        for h in self.handles.drain(..) {
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// One input on one worker.
struct WorkerInput {
    key: String,
    source: Box<dyn PacketSource>,
    pipeline: Box<Pipeline>,
    filter: Option<Filter>,
    /// Set when the source failed: it is not polled again.
    error: Option<String>,
    /// Drop counters at the last stats sample (kernel, interface) and when it was taken.
    drops_seen: (u64, u64),
    stats_at: std::time::Instant,
}

/// How often a worker samples its sources' drop counters (pktvisor: every second).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

impl WorkerInput {
    /// Adds the drops since the last sample to the live bucket of every `pcap` and `flow` handler
    /// (pktvisor's `os_drops`, `if_drops`: deltas of the source's monotonic counters).
    fn sample_drops(&mut self) {
        self.stats_at = std::time::Instant::now();
        let s = self.source.stats();
        let os = s.kernel_drops.saturating_sub(self.drops_seen.0);
        let ifd = s.if_drops.saturating_sub(self.drops_seen.1);
        self.drops_seen = (s.kernel_drops, s.if_drops);
        if os == 0 && ifd == 0 {
            return;
        }
        for p in &mut self.pipeline.policies {
            for h in &mut p.handlers {
                match &mut h.kind {
                    analyzers::pipeline::HandlerKind::Pcap(pc) => {
                        let live = pc.window.live();
                        live.os_drops += os;
                        live.if_drops += ifd;
                    }
                    // A flow tap's socket and queue drops are datagrams the handler never saw.
                    analyzers::pipeline::HandlerKind::Flow(f) => f.window.live().os_drops += os,
                    _ => {}
                }
            }
        }
    }
}

/// A packet filter compiled per link type on first use.
struct Filter {
    expr: String,
    programs: Vec<(LinkType, Option<wire::bpf::Program>)>,
}

impl Filter {
    fn matches(&mut self, f: &Frame<'_>) -> bool {
        let idx = match self.programs.iter().position(|(l, _)| *l == f.link) {
            Some(i) => i,
            None => {
                // A filter that does not compile for this link type rejects its frames.
                let prog = wire::bpf::Program::compile(&self.expr, f.link).ok();
                self.programs.push((f.link, prog));
                self.programs.len() - 1
            }
        };
        self.programs
            .get(idx)
            .and_then(|(_, p)| p.as_ref())
            .is_some_and(|p| p.matches(f.data, f.orig_len))
    }
}

struct Worker {
    clock: WallClock,
    seq: u32,
    inputs: Vec<WorkerInput>,
}

impl Worker {
    fn new(clock: WallClock) -> Self {
        Self {
            clock,
            seq: clock.seq_at(now_ns()),
            inputs: Vec::new(),
        }
    }

    fn run(mut self, rx: &Receiver<Control>, stop: &AtomicBool) {
        loop {
            // Control messages first, between batches.
            loop {
                match rx.try_recv() {
                    Ok(msg) => self.handle(msg),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return self.finish(),
                }
            }
            if stop.load(Ordering::Relaxed) {
                return self.finish();
            }
            self.rotate();
            let mut polled = false;
            let mut frames = 0;
            for inp in &mut self.inputs {
                if inp.error.is_some() {
                    continue;
                }
                polled = true;
                let WorkerInput {
                    source,
                    pipeline,
                    filter,
                    ..
                } = inp;
                let kind = source.kind();
                let mut sink = |f: &Frame<'_>| match kind {
                    EventKind::Packets => process(pipeline, filter, f),
                    EventKind::Dnstap => crate::streams::process_dnstap(pipeline, f),
                    EventKind::Flow(input) => crate::streams::process_flow(pipeline, input, f),
                };
                match source.poll(POLL_TIMEOUT, &mut sink) {
                    Ok(n) => frames += n,
                    Err(e) => inp.error = Some(e.to_string()),
                }
                if inp.stats_at.elapsed() >= STATS_INTERVAL {
                    inp.sample_drops();
                }
            }
            if frames == 0 {
                // Nothing came in: wait for control messages instead (answered at once).
                let idle = if polled {
                    POLL_TIMEOUT
                } else {
                    Duration::from_millis(100)
                };
                match rx.recv_timeout(idle) {
                    Ok(msg) => self.handle(msg),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        return self.finish();
                    }
                }
            }
        }
    }

    /// Rotates every pipeline when the wall clock entered a new period.
    fn rotate(&mut self) {
        let now = now_ns();
        let seq = self.clock.seq_at(now);
        if seq > self.seq {
            self.seq = seq;
            for inp in &mut self.inputs {
                inp.pipeline.rotate_to(seq, now);
            }
        }
    }

    fn input(&mut self, key: &str) -> Option<&mut WorkerInput> {
        self.inputs.iter_mut().find(|i| i.key == key)
    }

    fn handle(&mut self, msg: Control) {
        match msg {
            Control::AddInput {
                key,
                source,
                mut pipeline,
                filter,
                ack,
            } => {
                pipeline.rotate_to(self.seq, now_ns());
                self.inputs.retain(|i| i.key != key);
                self.inputs.push(WorkerInput {
                    key,
                    source,
                    pipeline,
                    filter: filter.map(|expr| Filter {
                        expr,
                        programs: Vec::new(),
                    }),
                    error: None,
                    drops_seen: (0, 0),
                    stats_at: std::time::Instant::now(),
                });
                let _ = ack.send(());
            }
            Control::RemoveInput { key, ack } => {
                self.inputs.retain(|i| i.key != key);
                let _ = ack.send(());
            }
            Control::AddPolicy { input, plan, ack } => {
                let seq = self.seq;
                if let Some(inp) = self.input(&input) {
                    inp.pipeline.add_policy(plan);
                    // The new handlers start in the live period; the others are already there.
                    inp.pipeline.rotate_to(seq, now_ns());
                }
                let _ = ack.send(());
            }
            Control::RemovePolicy { input, name, ack } => {
                if let Some(inp) = self.input(&input) {
                    inp.pipeline.remove_policy(&name);
                }
                let _ = ack.send(());
            }
            Control::Snapshot {
                input,
                policy,
                mut into,
                reply,
            } => {
                let plan = self
                    .input(&input)
                    .and_then(|i| i.pipeline.policies.iter().find(|p| p.name == policy));
                let out = plan.map(|p| {
                    for (acc, h) in into.iter_mut().zip(p.handlers.iter()) {
                        acc.merge(h);
                    }
                    into
                });
                let _ = reply.send(out);
            }
            Control::Stats { input, reply } => {
                let out = self.input(&input).map(|i| {
                    let mut s = i.source.stats();
                    if s.error.is_none() {
                        s.error.clone_from(&i.error);
                    }
                    s
                });
                let _ = reply.send(out);
            }
        }
    }

    fn finish(&mut self) {
        for inp in &mut self.inputs {
            inp.pipeline.finish();
        }
    }
}

/// One frame through the filter, the decoder and the input's handlers.
fn process(pipeline: &mut Pipeline, filter: &mut Option<Filter>, f: &Frame<'_>) {
    if let Some(fl) = filter
        && !fl.matches(f)
    {
        return;
    }
    let frame_len = f.orig_len.max(f.data.len() as u32);
    match wire::packet::decode(f.link, f.data) {
        Ok(pkt) => {
            let flow = wire::hash::flow_hash(&pkt);
            // Fragments count as packets; their application layer is not reassembled live.
            let mode = if pkt.fragment.is_some() {
                Mode::PacketOnly
            } else {
                Mode::Full
            };
            pipeline.process(&pkt, frame_len, f.ts_ns, flow, mode);
        }
        Err(_) => pipeline.process_undecodable(frame_len, f.ts_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analyzers::config::WindowConfig;
    use analyzers::event::{Geo, HostSpec};
    use analyzers::export::Value;
    use analyzers::pipeline::{HandlerSpec, Limits};

    /// A source that hands out a fixed UDP frame `per_poll` times per poll, `polls` times.
    struct Synthetic {
        frame: Vec<u8>,
        per_poll: usize,
        polls: usize,
        stats: SourceStats,
    }

    fn udp_frame(sport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let payload = [0u8; 4];
        let total = 20 + 8 + payload.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&9999u16.to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&payload);
        f
    }

    impl PacketSource for Synthetic {
        fn poll(
            &mut self,
            timeout: Duration,
            sink: &mut dyn FnMut(&Frame<'_>),
        ) -> Result<usize, SourceError> {
            if self.polls == 0 {
                self.stats.finished = true;
                std::thread::sleep(timeout);
                return Ok(0);
            }
            self.polls -= 1;
            for _ in 0..self.per_poll {
                sink(&Frame {
                    ts_ns: now_ns(),
                    data: &self.frame,
                    orig_len: self.frame.len() as u32,
                    link: LinkType::Ethernet,
                });
            }
            self.stats.received += self.per_poll as u64;
            self.stats.kernel_drops += 2;
            Ok(self.per_poll)
        }
        fn stats(&mut self) -> SourceStats {
            self.stats.clone()
        }
    }

    fn net_handlers() -> Vec<Handler> {
        let spec = HandlerSpec {
            name: "net".into(),
            kind: "net".into(),
            window: WindowConfig::default(),
            ..Default::default()
        };
        vec![Handler::build(&spec, "p-t-net".into(), &Limits::default()).unwrap()]
    }

    fn plan(name: &str) -> Result<PolicyPlan, RuntimeError> {
        Ok(PolicyPlan {
            name: name.into(),
            chained: false,
            handlers: net_handlers(),
        })
    }

    fn total(rt: &Runtime, policy: &str) -> Option<u64> {
        let hs = rt.snapshot("in", policy, &mut net_handlers).unwrap()?;
        let e = hs[0].export(&[rt.current_seq()])?;
        e.metrics
            .iter()
            .find_map(|m| match (&m.json_path[..], &m.value) {
                ([p], Value::Int(n)) if p == "total" => Some(*n),
                _ => None,
            })
    }

    fn pipeline() -> Result<Pipeline, RuntimeError> {
        with(Vec::new())
    }

    fn with(policies: Vec<PolicyPlan>) -> Result<Pipeline, RuntimeError> {
        Ok(Pipeline::new(
            policies,
            HostSpec::default(),
            Vec::new(),
            &Limits::default(),
            Geo::default(),
        ))
    }

    #[test]
    fn sharded_counts_merge_and_policies_come_and_go() {
        let rt = Runtime::start(&RuntimeConfig {
            workers: 2,
            period: Duration::from_secs(3600),
        });
        let sources: Vec<Box<dyn PacketSource>> = (0..2)
            .map(|_| {
                Box::new(Synthetic {
                    frame: udp_frame(1000),
                    per_poll: 10,
                    polls: 5,
                    stats: SourceStats::default(),
                }) as Box<dyn PacketSource>
            })
            .collect();
        rt.add_input("in", sources, &mut || with(vec![plan("a")?]), None)
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !rt.source_stats("in").unwrap().unwrap().finished {
            assert!(
                std::time::Instant::now() < deadline,
                "source never finished"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let stats = rt.source_stats("in").unwrap().unwrap();
        assert_eq!(stats.received, 100);
        // A policy added after the packets sees nothing; the first keeps its counts.
        assert_eq!(total(&rt, "a"), Some(100));
        rt.add_policy::<RuntimeError>("in", &mut || plan("b"))
            .unwrap();
        assert_eq!(total(&rt, "b"), Some(0));
        assert_eq!(total(&rt, "a"), Some(100));
        rt.remove_policy("in", "b").unwrap();
        assert_eq!(total(&rt, "b"), None);
        assert_eq!(total(&rt, "a"), Some(100));
        rt.remove_input("in").unwrap();
        assert_eq!(rt.source_stats("in").unwrap(), None);
        rt.shutdown();
    }

    #[test]
    fn filter_and_bad_filter() {
        let rt = Runtime::start(&RuntimeConfig {
            workers: 1,
            period: Duration::from_secs(3600),
        });
        let src = || -> Vec<Box<dyn PacketSource>> {
            vec![Box::new(Synthetic {
                frame: udp_frame(1000),
                per_poll: 3,
                polls: 1,
                stats: SourceStats::default(),
            })]
        };
        let e = rt
            .add_input("in", src(), &mut pipeline, Some("udp port (".into()))
            .unwrap_err();
        assert!(matches!(e, RuntimeError::Filter(_)), "{e}");
        rt.add_input("in", src(), &mut pipeline, Some("tcp".into()))
            .unwrap();
        rt.add_policy::<RuntimeError>("in", &mut || plan("a"))
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(total(&rt, "a"), Some(0));
    }

    #[test]
    fn source_drops_reach_the_pcap_handler() {
        let rt = Runtime::start(&RuntimeConfig {
            workers: 1,
            period: Duration::from_secs(3600),
        });
        let pcap_plan = || -> Result<PolicyPlan, RuntimeError> {
            let spec = HandlerSpec {
                name: "pcap".into(),
                kind: "pcap".into(),
                ..Default::default()
            };
            Ok(PolicyPlan {
                name: "p".into(),
                chained: false,
                handlers: vec![
                    Handler::build(&spec, "p-t-pcap".into(), &Limits::default()).unwrap(),
                ],
            })
        };
        let src: Vec<Box<dyn PacketSource>> = vec![Box::new(Synthetic {
            frame: udp_frame(1),
            per_poll: 1,
            polls: 3,
            stats: SourceStats::default(),
        })];
        rt.add_input("in", src, &mut || with(vec![pcap_plan()?]), None)
            .unwrap();
        std::thread::sleep(STATS_INTERVAL + Duration::from_millis(300));
        let mut empty = || pcap_plan().unwrap().handlers;
        let hs = rt.snapshot("in", "p", &mut empty).unwrap().unwrap();
        let e = hs[0].export(&[rt.current_seq()]).unwrap();
        let os = e
            .metrics
            .iter()
            .find_map(|m| match (&m.json_path[..], &m.value) {
                ([p], Value::Int(n)) if p == "os_drops" => Some(*n),
                _ => None,
            });
        assert_eq!(os, Some(6));
    }

    #[test]
    fn wall_clock_periods() {
        let c = WallClock::new(1_000, Duration::from_nanos(100));
        assert_eq!(c.seq_at(999), 0);
        assert_eq!(c.seq_at(1_099), 0);
        assert_eq!(c.seq_at(1_100), 1);
        assert_eq!(
            c.period(0, 1_150),
            Period {
                start_ns: 1_000,
                end_ns: 1_100
            }
        );
        assert_eq!(
            c.period(1, 1_150),
            Period {
                start_ns: 1_100,
                end_ns: 1_150
            }
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Every moment lies in the period its sequence number names; later moments never
        /// go back to an earlier period; completed periods are exactly one period long.
        #[test]
        fn wall_clock_periods_tile_time(
            t0 in 0u64..1 << 62,
            period in 1u64 << 20..1 << 40,
            a in 0u64..1 << 50,
            b in 0u64..1 << 50,
        ) {
            let c = WallClock::new(t0, Duration::from_nanos(period));
            let (a, b) = (t0 + a.min(b), t0 + a.max(b));
            let (sa, sb) = (c.seq_at(a), c.seq_at(b));
            proptest::prop_assert!(sa <= sb);
            let p = c.period(sa, a);
            proptest::prop_assert!(p.start_ns <= a && a < p.start_ns + period);
            proptest::prop_assert_eq!(p.end_ns, a);
            if sa < sb {
                let done = c.period(sa, b);
                proptest::prop_assert_eq!(done.end_ns - done.start_ns, period);
            }
        }
    }

    #[test]
    fn idle_workers_rotate_on_the_wall_clock() {
        let rt = Runtime::start(&RuntimeConfig {
            workers: 1,
            period: Duration::from_millis(100),
        });
        rt.add_input(
            "in",
            vec![Box::new(Synthetic {
                frame: udp_frame(7),
                per_poll: 4,
                polls: 1,
                stats: SourceStats::default(),
            })],
            &mut pipeline,
            None,
        )
        .unwrap();
        rt.add_policy::<RuntimeError>("in", &mut || plan("a"))
            .unwrap();
        let first = rt.current_seq();
        std::thread::sleep(Duration::from_millis(350));
        let hs = rt.snapshot("in", "a", &mut net_handlers).unwrap().unwrap();
        let seqs: Vec<u32> = match &hs[0].kind {
            analyzers::pipeline::HandlerKind::NetV1(h) => h.window.seqs().collect(),
            _ => Vec::new(),
        };
        assert!(seqs[0] >= first + 3, "{seqs:?} from {first}");
    }

    #[test]
    fn unknown_tap_types_and_live_capture_are_errors() {
        let mut c = ConfigMap::new();
        assert!(matches!(
            build_sources("sctp", &c, 1),
            Err(SourceError::UnknownType(_))
        ));
        assert!(matches!(
            build_sources("pcap", &c, 1),
            Err(SourceError::NoIface)
        ));
        // An interface that does not exist names itself in the error.
        c.set("iface", ConfigValue::Str("wl-no-such0".into()));
        let Err(SourceError::Config(msg)) = build_sources("pcap", &c, 1) else {
            panic!("a missing interface was accepted");
        };
        assert!(msg.contains("wl-no-such0"), "{msg}");
        c.set("ring_size_mb", ConfigValue::Str("0".into()));
        let Err(SourceError::Config(msg)) = build_sources("pcap", &c, 1) else {
            panic!("a zero ring was accepted");
        };
        assert!(msg.contains("ring_size_mb"), "{msg}");
        c = ConfigMap::new();
        c.set("iface", ConfigValue::Str("eth0".into()));
        c.set("bogus", ConfigValue::Int(1));
        let Err(SourceError::Config(msg)) = build_sources("pcap", &c, 1) else {
            panic!("bogus key accepted");
        };
        assert!(
            msg.starts_with("bogus is an invalid/unsupported config"),
            "{msg}"
        );
    }
}
