//! Live dnstap runs (`wirelens read -i dnstap --listen ADDR`): DNS servers connect to a
//! Frame Streams listener, each message is sharded by its flow to one of the worker threads'
//! pipelines, and at the end the merged result has the same shape as reading dnstap files.
//!
//! Periods follow the messages' times with pktvisor's rule, as for files, so a recorded stream
//! sent live summarizes exactly like the file. The period clock is shared by the connections:
//! each frame reads one atomic (the second the next period starts) and only the frame that
//! crosses it takes the lock and tells the workers. This is the runner only: the listener is
//! `inputs::dnstap_socket`, rendering is `read`'s.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use analyzers::pipeline::Pipeline;
use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, Sender, bounded};
use engine::offline::{ReadResult, ReadStats};
use engine::period::{PERIOD_SEC, PeriodClock};
use inputs::dnstap_socket::{
    CloseReason, DnstapListener, FrameSink, ListenAddr, ListenerConfig, ListenerStats, PeerInfo,
};

/// Messages per batch handed to a worker.
const BATCH_RECORDS: usize = 512;
/// Payload bytes per batch before it is sent early.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches in flight per worker; a full queue slows the writers down (TCP back-pressure)
/// instead of growing memory.
const QUEUE_DEPTH: usize = 16;

/// What a live run listens on and for how long.
pub struct LiveConfig {
    /// The socket to serve.
    pub listen: ListenAddr,
    /// The listener's bounds and timers.
    pub listener: ListenerConfig,
    /// Stop after this long; `None` runs until `stop` is set.
    pub duration: Option<Duration>,
    /// One pipeline per worker, all built from the same policies.
    pub pipelines: Vec<Pipeline>,
    /// Periods kept (1 = the whole run is one period).
    pub num_periods: u8,
    /// Ends the run when set (SIGINT sets it from the command line).
    pub stop: Arc<AtomicBool>,
    /// Report writers connecting and leaving on stderr.
    pub log: bool,
    /// Report the frames received so far on stderr, once a second while they change.
    pub progress: bool,
}

/// The outcome of a live run.
pub struct LiveOutcome {
    /// Every worker's summaries merged, with the period table (as offline runs return it).
    pub result: ReadResult,
    /// The listener's final counters.
    pub listener: ListenerStats,
}

#[derive(Clone, Copy)]
struct Rec {
    off: u32,
    len: u32,
    ts_ns: u64,
    flow: u64,
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    recs: Vec<Rec>,
}

enum Msg {
    Batch(Batch),
    Rotate { seq: u32, ts_ns: u64 },
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The period clock shared by every connection.
struct SharedClock {
    clock: Mutex<PeriodClock>,
    /// The second at which the next period starts (0 before the first event, `u64::MAX`
    /// when only one period is kept): frames before it need no lock.
    next_shift_sec: AtomicU64,
    rotates: bool,
    /// The time of the last event seen, which closes the last period at the end.
    last_ns: AtomicU64,
}

impl SharedClock {
    fn new(num_periods: u8) -> Self {
        Self {
            clock: Mutex::new(PeriodClock::new(num_periods)),
            next_shift_sec: AtomicU64::new(0),
            rotates: num_periods > 1,
            last_ns: AtomicU64::new(0),
        }
    }

    /// Places an event at `ts_ns`; when it starts a new period, `on_rotate(seq, ts_ns)` runs
    /// under the lock, so that rotations reach the workers in order.
    fn observe(&self, ts_ns: u64, on_rotate: impl FnOnce(u32, u64)) {
        self.last_ns.store(ts_ns, Ordering::Relaxed);
        if ts_ns / 1_000_000_000 < self.next_shift_sec.load(Ordering::Acquire) {
            return;
        }
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        let before = clock.periods().len();
        let seq = clock.observe(ts_ns);
        let next = match clock.periods().last() {
            Some(p) if self.rotates => p.start_ns / 1_000_000_000 + PERIOD_SEC,
            _ => u64::MAX,
        };
        self.next_shift_sec.store(next, Ordering::Release);
        if before > 0 && clock.periods().len() != before {
            on_rotate(seq, ts_ns);
        }
    }

    /// Closes the last period at the last event and returns the clock.
    fn finish(self) -> PeriodClock {
        let mut clock = self
            .clock
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if !clock.periods().is_empty() {
            // Already placed once, so this cannot start a period; it sets the end time.
            clock.observe(self.last_ns.load(Ordering::Relaxed));
        }
        clock.finish();
        clock
    }
}

/// One connection's side of the sharding: frames are copied once, into the batch of the
/// worker that owns their flow (the copy crosses threads; the listener's buffer cannot).
struct ShardSink {
    senders: Vec<Sender<Msg>>,
    pending: Vec<Batch>,
    free: Receiver<Batch>,
    clock: Arc<SharedClock>,
    /// This writer's last event time, for messages that carry none.
    last_ts: Option<u64>,
    peer: PeerInfo,
    log: bool,
}

impl ShardSink {
    fn flush_worker(&mut self, w: usize) {
        let (Some(batch), Some(tx)) = (self.pending.get_mut(w), self.senders.get(w)) else {
            return;
        };
        if batch.recs.is_empty() {
            return;
        }
        let fresh = self.free.try_recv().unwrap_or_default();
        let full = std::mem::replace(batch, fresh);
        let _ = tx.send(Msg::Batch(full));
    }

    fn flush_all(&mut self) {
        for w in 0..self.pending.len() {
            self.flush_worker(w);
        }
    }
}

impl FrameSink for ShardSink {
    fn frame(&mut self, payload: &[u8]) {
        let decoded = wire::dnstap::decode(payload).ok();
        let msg = decoded.as_ref().and_then(|d| d.event_message());
        // Messages without a time take the writer's previous one (as files do), or the
        // arrival time; payloads that are no usable message do not move the clock.
        let ts_ns = match msg.map(|m| m.event_time_ns()) {
            Some(Some(t)) => t,
            _ => self.last_ts.unwrap_or_else(now_ns),
        };
        if msg.is_some() {
            self.last_ts = Some(ts_ns);
            let clock = self.clock.clone();
            clock.observe(ts_ns, |seq, ts_ns| {
                // This writer's earlier messages belong to the closing period.
                self.flush_all();
                for tx in &self.senders {
                    let _ = tx.send(Msg::Rotate { seq, ts_ns });
                }
            });
        }
        let flow = msg.map_or(0, analyzers::dnstap::flow_of);
        let workers = self.pending.len().max(1) as u64;
        let w = (flow % workers) as usize;
        let Some(batch) = self.pending.get_mut(w) else {
            return;
        };
        let (Ok(off), Ok(len)) = (
            u32::try_from(batch.data.len()),
            u32::try_from(payload.len()),
        ) else {
            return;
        };
        batch.data.extend_from_slice(payload);
        batch.recs.push(Rec {
            off,
            len,
            ts_ns,
            flow,
        });
        if batch.recs.len() >= BATCH_RECORDS || batch.data.len() >= BATCH_BYTES {
            self.flush_worker(w);
        }
    }

    fn started(&mut self) {
        if self.log {
            eprintln!(
                "wirelens: dnstap writer {} ({}) started",
                self.peer.id, self.peer.peer
            );
        }
    }

    fn flush(&mut self) {
        self.flush_all();
    }

    fn closed(&mut self, reason: CloseReason) {
        self.flush_all();
        if self.log {
            eprintln!(
                "wirelens: dnstap writer {} ({}) closed: {}",
                self.peer.id,
                self.peer.peer,
                reason.name()
            );
        }
    }
}

fn worker(pipeline: &mut Pipeline, rx: &Receiver<Msg>, free: &Sender<Batch>) {
    for msg in rx {
        match msg {
            Msg::Rotate { seq, ts_ns } => pipeline.rotate_to(seq, ts_ns),
            Msg::Batch(mut batch) => {
                for r in &batch.recs {
                    let end = r.off as usize + r.len as usize;
                    let bytes = batch.data.get(r.off as usize..end).unwrap_or_default();
                    pipeline.process_dnstap(bytes, r.ts_ns, r.flow);
                }
                batch.data.clear();
                batch.recs.clear();
                let _ = free.try_send(batch);
            }
        }
    }
    pipeline.finish();
}

/// Listens, summarizes until the duration ends or `stop` is set, and returns the merged
/// result. `on_listening` is called once the socket is bound (with the actual address), so a
/// caller can start its DNS servers.
pub fn run(cfg: LiveConfig, on_listening: &mut dyn FnMut(&ListenAddr)) -> Result<LiveOutcome> {
    let listener = DnstapListener::bind(&cfg.listen, cfg.listener)?;
    let workers = cfg.pipelines.len().max(1);
    let (free_tx, free_rx) = bounded::<Batch>(workers * (QUEUE_DEPTH + 2));
    let mut senders = Vec::with_capacity(workers);
    let mut handles: Vec<JoinHandle<Pipeline>> = Vec::with_capacity(workers);
    for mut pipeline in cfg.pipelines {
        let (tx, rx) = bounded::<Msg>(QUEUE_DEPTH);
        senders.push(tx);
        let free_tx = free_tx.clone();
        handles.push(std::thread::spawn(move || {
            worker(&mut pipeline, &rx, &free_tx);
            pipeline
        }));
    }
    drop(free_tx);

    let clock = Arc::new(SharedClock::new(cfg.num_periods));
    let sink_clock = clock.clone();
    let sink_senders = senders.clone();
    let log = cfg.log;
    let handle = listener.spawn(move |peer: &PeerInfo| ShardSink {
        senders: sink_senders.clone(),
        pending: (0..sink_senders.len()).map(|_| Batch::default()).collect(),
        free: free_rx.clone(),
        clock: sink_clock.clone(),
        last_ts: None,
        peer: peer.clone(),
        log,
    });
    on_listening(handle.local_addr());

    let started = Instant::now();
    let tick = Duration::from_millis(100);
    let (mut reported_at, mut reported) = (started, 0u64);
    loop {
        if cfg.stop.load(Ordering::Relaxed) {
            break;
        }
        let nap = match cfg.duration {
            Some(d) => match d.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => left.min(tick),
                _ => break,
            },
            None => tick,
        };
        std::thread::sleep(nap);
        if cfg.progress && reported_at.elapsed() >= Duration::from_secs(1) {
            reported_at = Instant::now();
            let frames = handle.stats().frames;
            if frames != reported {
                reported = frames;
                eprintln!("wirelens: dnstap: received {frames} frames");
            }
        }
    }
    // Connections end (their sinks flush), then the queues close and the workers finish.
    let listener_stats = handle.shutdown();
    drop(senders);
    let mut merged: Option<Pipeline> = None;
    for h in handles {
        let Ok(p) = h.join() else {
            bail!("a worker thread failed");
        };
        match &mut merged {
            None => merged = Some(p),
            Some(m) => m.merge(&p),
        }
    }
    let Some(pipeline) = merged else {
        bail!("no pipeline to run");
    };
    // Every sink (and its handle on the clock) went with its connection thread.
    let clock = Arc::try_unwrap(clock)
        .map_err(|_| anyhow::anyhow!("a connection outlived the listener"))?
        .finish();
    Ok(LiveOutcome {
        result: ReadResult {
            pipeline,
            periods: clock.periods().to_vec(),
            stats: ReadStats {
                records: listener_stats.frames,
                bytes: listener_stats.bytes,
                ..ReadStats::default()
            },
        },
        listener: listener_stats,
    })
}

/// `read --listen`: serves `listen` for `duration_secs` (or until SIGINT) with the default
/// listener bounds, reporting the address and the writers (and with `progress` the frames
/// received) on stderr.
pub fn serve_read(
    listen: &str,
    duration_secs: Option<u64>,
    progress: bool,
    pipelines: Vec<Pipeline>,
    num_periods: u8,
) -> Result<ReadResult> {
    let listen: ListenAddr = listen.parse()?;
    let stop = Arc::new(AtomicBool::new(false));
    // The first SIGINT ends the run with a summary; the handler stays for the process's life,
    // which is this one run.
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())
        .context("cannot handle SIGINT")?;
    let cfg = LiveConfig {
        listen,
        listener: ListenerConfig::default(),
        duration: duration_secs.map(Duration::from_secs),
        pipelines,
        num_periods,
        stop,
        log: true,
        progress,
    };
    let outcome = run(cfg, &mut |addr| eprintln!("wirelens: listening on {addr}"))?;
    let l = &outcome.listener;
    let mut line = format!(
        "wirelens: dnstap: {} connections, {} frames, {} bytes",
        l.accepted, l.frames, l.bytes
    );
    for (reason, n) in l.errors() {
        line.push_str(&format!(", {n} closed: {reason}"));
    }
    eprintln!("{line}");
    Ok(outcome.result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn shared_clock_rotates_once_per_period_like_the_offline_clock() {
        let clock = SharedClock::new(5);
        let mut rotations = Vec::new();
        for ts in [
            100 * S,
            130 * S,
            159 * S + 999,
            160 * S,
            161 * S,
            150 * S,
            300 * S,
        ] {
            clock.observe(ts, |seq, at| rotations.push((seq, at)));
        }
        assert_eq!(rotations, [(1, 160 * S), (2, 300 * S)]);
        // Between shifts no lock is needed: the next shift is published.
        assert_eq!(clock.next_shift_sec.load(Ordering::Relaxed), 360);
        let finished = clock.finish();
        let p = finished.periods();
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].start_ns, p[0].end_ns), (100 * S, 160 * S));
        assert_eq!(p[2].start_ns, 300 * S);
        assert_eq!(p[2].end_ns, 300 * S);

        let mut offline = PeriodClock::new(5);
        for ts in [
            100 * S,
            130 * S,
            159 * S + 999,
            160 * S,
            161 * S,
            150 * S,
            300 * S,
        ] {
            offline.observe(ts);
        }
        offline.finish();
        assert_eq!(offline.periods(), p);
    }

    #[test]
    fn one_period_never_rotates_and_an_empty_run_has_none() {
        let clock = SharedClock::new(1);
        let mut rotations = 0;
        clock.observe(5 * S, |_, _| rotations += 1);
        clock.observe(5_000 * S, |_, _| rotations += 1);
        assert_eq!(rotations, 0);
        assert_eq!(clock.next_shift_sec.load(Ordering::Relaxed), u64::MAX);
        let p = clock.finish();
        assert_eq!(p.periods().len(), 1);
        assert_eq!(p.periods()[0].end_ns, 5_000 * S);
        assert!(SharedClock::new(5).finish().periods().is_empty());
    }
}
