//! Stream taps of the live runtime: a dnstap Frame Streams listener (`input_type: dnstap`) and
//! an sFlow/NetFlow/IPFIX UDP collector (`input_type: flow`). Each runs on its own threads and
//! hands records to the workers through one bounded channel per worker of reusable batches, so
//! no lock is taken per record and a slow worker costs counted drops, never unbounded memory.
//! Records are sharded so related ones meet in one worker: dnstap messages by their flow (query
//! and response of a transaction), export datagrams by exporter (its templates and sequence
//! numbers). This is the glue between the listeners and [`PacketSource`]; the decoding is the
//! analyzers' (`Pipeline::process_dnstap`, `Pipeline::process_flow`).
//!
//! Losses are counted where they happen: records a full worker queue refused (`queue_drops`)
//! and, for flow taps, datagrams the kernel dropped because the socket's receive queue was
//! full (`socket_drops`, the socket's own drop counter); both are the source's `kernel_drops`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use analyzers::config::{ConfigMap, ConfigValue};
use analyzers::event::HostSpec;
use analyzers::flow::FlowInput;
use analyzers::pipeline::Pipeline;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use inputs::dnstap_socket::{
    DnstapListener, FrameSink, ListenAddr, ListenerConfig, ListenerHandle, PeerInfo,
};
use wire::capture::LinkType;

use crate::live::{EventKind, Frame, PacketSource, SourceError, SourceStats, now_ns};

/// The keys a `dnstap` tap accepts (pktvisor's, without `dnstap_file`: files are `read`'s).
pub const DNSTAP_KEYS: [&str; 3] = ["socket", "tcp", "only_hosts"];
/// The keys a `flow` tap accepts (pktvisor's, without `pcap_file`: files are `read`'s), and
/// `rcvbuf`, the socket receive buffer in bytes.
pub const FLOW_KEYS: [&str; 4] = ["flow_type", "bind", "port", "rcvbuf"];

/// Records per batch before it is sent.
const BATCH_RECORDS: usize = 256;
/// Bytes per batch before it is sent.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches in flight per worker; past that a batch is dropped and counted.
const QUEUE_DEPTH: usize = 64;
/// How long the UDP thread waits for a datagram before handing on a partial batch.
const UDP_FLUSH: Duration = Duration::from_millis(20);
/// Receive buffer requested for a flow collector's socket unless its tap sets `rcvbuf`.
pub const UDP_RCVBUF: usize = 8 << 20;
/// Bytes before a datagram in a flow batch: the exporter's family (4 or 6) and 16 address bytes.
const EXPORTER_PREFIX: usize = 17;

#[derive(Clone, Copy)]
struct Rec {
    off: u32,
    len: u32,
    ts_ns: u64,
}

/// Records of one worker, their bytes in one buffer (reused through the free list).
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    recs: Vec<Rec>,
}

/// Counters shared by a tap's producer threads and its worker sources.
#[derive(Default)]
struct Shared {
    /// Records lost to a full worker queue, per worker.
    drops: Vec<AtomicU64>,
    /// Datagrams received (flow taps; dnstap frames are the listener's).
    datagrams: AtomicU64,
    /// Socket errors of the UDP thread.
    recv_errors: AtomicU64,
}

/// The producer side: one pending batch per worker, sent when full or on flush.
struct Shards {
    senders: Vec<Sender<Batch>>,
    pending: Vec<Batch>,
    free: Receiver<Batch>,
    shared: Arc<Shared>,
}

impl Shards {
    fn push(&mut self, shard: u64, ts_ns: u64, parts: &[&[u8]]) {
        let workers = self.pending.len().max(1) as u64;
        let w = (shard % workers) as usize;
        let Some(batch) = self.pending.get_mut(w) else {
            return;
        };
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let (Ok(off), Ok(len)) = (u32::try_from(batch.data.len()), u32::try_from(len)) else {
            return;
        };
        for p in parts {
            batch.data.extend_from_slice(p);
        }
        batch.recs.push(Rec { off, len, ts_ns });
        if batch.recs.len() >= BATCH_RECORDS || batch.data.len() >= BATCH_BYTES {
            self.flush_worker(w);
        }
    }

    fn flush_worker(&mut self, w: usize) {
        let (Some(batch), Some(tx)) = (self.pending.get_mut(w), self.senders.get(w)) else {
            return;
        };
        if batch.recs.is_empty() {
            return;
        }
        let mut fresh = self.free.try_recv().unwrap_or_default();
        fresh.data.clear();
        fresh.recs.clear();
        let full = std::mem::replace(batch, fresh);
        match tx.try_send(full) {
            Ok(()) => {}
            Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                if let Some(d) = self.shared.drops.get(w) {
                    d.fetch_add(b.recs.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }

    fn flush_all(&mut self) {
        for w in 0..self.pending.len() {
            self.flush_worker(w);
        }
    }
}

/// What keeps a tap's producer running: dropped with the last worker source.
enum Producer {
    Dnstap(ListenerHandle),
    Udp {
        /// The collector's socket, shared with its reader thread (for its drop counter).
        socket: Arc<UdpSocket>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    },
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Producer::Udp { stop, thread, .. } = self {
            stop.store(true, Ordering::Relaxed);
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// One worker's end of a stream tap.
pub struct StreamSource {
    kind: EventKind,
    index: usize,
    rx: Receiver<Batch>,
    free: Sender<Batch>,
    shared: Arc<Shared>,
    producer: Arc<Producer>,
    received: u64,
    /// The socket's drop counter when last read (it is 32 bits and wraps) and the drops
    /// counted so far (worker 0 of a flow tap only).
    socket_drops_raw: u32,
    socket_drops: u64,
}

impl PacketSource for StreamSource {
    fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(&Frame<'_>),
    ) -> Result<usize, SourceError> {
        let Ok(batch) = self.rx.recv_timeout(timeout) else {
            return Ok(0);
        };
        let mut given = 0;
        for r in &batch.recs {
            let Some(data) = batch
                .data
                .get(r.off as usize..(r.off as usize).saturating_add(r.len as usize))
            else {
                continue;
            };
            sink(&Frame {
                ts_ns: r.ts_ns,
                data,
                orig_len: r.len,
                link: LinkType::Other(0),
            });
            given += 1;
        }
        self.received += given as u64;
        // Back to the producers for reuse; when the free list is full it is simply freed.
        let _ = self.free.try_send(batch);
        Ok(given)
    }

    fn stats(&mut self) -> SourceStats {
        let drops = self
            .shared
            .drops
            .get(self.index)
            .map_or(0, |d| d.load(Ordering::Relaxed));
        let mut s = SourceStats {
            received: self.received,
            kernel_drops: drops,
            extra: vec![("queue_drops", drops)],
            ..SourceStats::default()
        };
        // The producer is shared: only worker 0 reports it, so sums over workers stay right.
        if self.index == 0 {
            let producer = match &*self.producer {
                Producer::Dnstap(h) => {
                    let l = h.stats();
                    let errors: u64 = l.errors().iter().map(|(_, n)| n).sum();
                    vec![
                        ("connections", l.accepted),
                        ("active_connections", l.active()),
                        ("frames", l.frames),
                        ("bytes", l.bytes),
                        ("errors", errors + l.accept_errors),
                    ]
                }
                Producer::Udp { socket, .. } => {
                    if let Some(raw) = socket_drops(socket) {
                        self.socket_drops += u64::from(raw.wrapping_sub(self.socket_drops_raw));
                        self.socket_drops_raw = raw;
                    }
                    s.kernel_drops += self.socket_drops;
                    let rcvbuf = socket2::SockRef::from(&**socket)
                        .recv_buffer_size()
                        .map_or(0, |n| n as u64);
                    vec![
                        ("datagrams", self.shared.datagrams.load(Ordering::Relaxed)),
                        ("errors", self.shared.recv_errors.load(Ordering::Relaxed)),
                        ("socket_drops", self.socket_drops),
                        ("rcvbuf", rcvbuf),
                    ]
                }
            };
            s.extra.extend(producer);
        }
        s
    }

    fn kind(&self) -> EventKind {
        self.kind
    }
}

/// Channels for `workers` workers: the producer's shards and each worker's receiver.
fn channels(workers: usize) -> (Shards, Vec<Receiver<Batch>>, Sender<Batch>) {
    let shared = Arc::new(Shared {
        drops: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        ..Shared::default()
    });
    let (free_tx, free_rx) = bounded(workers * QUEUE_DEPTH);
    let mut senders = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = bounded(QUEUE_DEPTH);
        senders.push(tx);
        receivers.push(rx);
    }
    let shards = Shards {
        senders,
        pending: (0..workers).map(|_| Batch::default()).collect(),
        free: free_rx,
        shared,
    };
    (shards, receivers, free_tx)
}

fn sources(
    kind: EventKind,
    receivers: Vec<Receiver<Batch>>,
    free: &Sender<Batch>,
    shared: &Arc<Shared>,
    producer: Producer,
) -> Vec<Box<dyn PacketSource>> {
    let producer = Arc::new(producer);
    receivers
        .into_iter()
        .enumerate()
        .map(|(index, rx)| {
            Box::new(StreamSource {
                kind,
                index,
                rx,
                free: free.clone(),
                shared: shared.clone(),
                producer: producer.clone(),
                received: 0,
                socket_drops_raw: 0,
                socket_drops: 0,
            }) as Box<dyn PacketSource>
        })
        .collect()
}

fn text(config: &ConfigMap, key: &str) -> Option<String> {
    config.get(key).and_then(ConfigValue::scalar_string)
}

/// One connection's sink: filters by `only_hosts`, shards by the message's flow.
struct DnstapSink {
    shards: Shards,
    only_hosts: Option<Arc<HostSpec>>,
    last_ts: Option<u64>,
}

impl FrameSink for DnstapSink {
    fn frame(&mut self, payload: &[u8]) {
        let decoded = wire::dnstap::decode(payload).ok();
        let msg = decoded.as_ref().and_then(|d| d.event_message());
        if let Some(hosts) = &self.only_hosts {
            // pktvisor: passes when the query or the response address matches; a message
            // with neither is dropped.
            let pass = msg.is_some_and(|m| {
                m.query_ip().is_some_and(|ip| hosts.contains(ip))
                    || m.response_ip().is_some_and(|ip| hosts.contains(ip))
            });
            if !pass {
                return;
            }
        }
        // Messages without a time take the writer's previous one, or the arrival time.
        let ts_ns = match msg.map(|m| m.event_time_ns()) {
            Some(Some(t)) => t,
            _ => self.last_ts.unwrap_or_else(now_ns),
        };
        if msg.is_some() {
            self.last_ts = Some(ts_ns);
        }
        let flow = msg.map_or(0, analyzers::dnstap::flow_of);
        // The flow travels with the payload so the worker does not decode twice to find it.
        self.shards
            .push(flow, ts_ns, &[&flow.to_le_bytes()[..], payload]);
    }

    fn flush(&mut self) {
        self.shards.flush_all();
    }

    fn closed(&mut self, _reason: inputs::dnstap_socket::CloseReason) {
        self.shards.flush_all();
    }
}

/// Builds a `dnstap` tap's sources: binds the listener and starts it.
pub fn dnstap_sources(
    config: &ConfigMap,
    workers: usize,
) -> Result<Vec<Box<dyn PacketSource>>, SourceError> {
    config
        .validate_keys(&DNSTAP_KEYS)
        .map_err(|e| SourceError::Config(e.0))?;
    let addr = match (text(config, "socket"), text(config, "tcp")) {
        (Some(path), _) => ListenAddr::Unix(path.into()),
        (None, Some(hp)) => match hp.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                ListenAddr::Tcp(hp)
            }
            _ => {
                return Err(SourceError::Config(
                    "invalid tcp address specification, use HOST:PORT".into(),
                ));
            }
        },
        (None, None) => {
            return Err(SourceError::Config(
                "config must specify one of: socket, tcp".into(),
            ));
        }
    };
    let only_hosts = match config.get("only_hosts") {
        None => None,
        Some(v) => {
            let list = match v {
                ConfigValue::List(items) => items
                    .iter()
                    .filter_map(ConfigValue::scalar_string)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.scalar_string().unwrap_or_default(),
            };
            Some(Arc::new(
                HostSpec::parse(&list).map_err(|e| SourceError::Config(e.to_string()))?,
            ))
        }
    };
    let workers = workers.max(1);
    let listener = DnstapListener::bind(&addr, ListenerConfig::default())
        .map_err(|e| SourceError::Config(e.to_string()))?;
    let (shards, receivers, free) = channels(workers);
    let shared = shards.shared.clone();
    let handle = listener.spawn(move |_peer: &PeerInfo| DnstapSink {
        shards: Shards {
            senders: shards.senders.clone(),
            pending: (0..workers).map(|_| Batch::default()).collect(),
            free: shards.free.clone(),
            shared: shards.shared.clone(),
        },
        only_hosts: only_hosts.clone(),
        last_ts: None,
    });
    Ok(sources(
        EventKind::Dnstap,
        receivers,
        &free,
        &shared,
        Producer::Dnstap(handle),
    ))
}

/// Builds a `flow` tap's sources: binds the UDP socket and starts its reader thread.
pub fn flow_sources(
    config: &ConfigMap,
    workers: usize,
) -> Result<Vec<Box<dyn PacketSource>>, SourceError> {
    config
        .validate_keys(&FLOW_KEYS)
        .map_err(|e| SourceError::Config(e.0))?;
    let input = match text(config, "flow_type").as_deref() {
        None | Some("sflow") => FlowInput::Sflow,
        Some("netflow" | "ipfix") => FlowInput::Netflow,
        Some(other) => {
            return Err(SourceError::Config(format!(
                "invalid flow_type \"{other}\". Supported types: \"sflow\", \"netflow\" and \"ipfix\""
            )));
        }
    };
    let (Some(bind), Some(port)) = (text(config, "bind"), text(config, "port")) else {
        return Err(SourceError::Config(
            "flow config must specify port and bind".into(),
        ));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| SourceError::Config(format!("invalid flow port '{port}'")))?;
    let ip: IpAddr = bind
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| SourceError::Config(format!("invalid flow bind address '{bind}'")))?;
    let rcvbuf = match text(config, "rcvbuf") {
        None => UDP_RCVBUF,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 && i32::try_from(n).is_ok() => n,
            _ => {
                return Err(SourceError::Config(format!(
                    "invalid flow rcvbuf '{v}', specify bytes between 1 and 2147483647"
                )));
            }
        },
    };
    let socket = bind_udp(SocketAddr::new(ip, port), rcvbuf)
        .map_err(|e| SourceError::Config(format!("cannot listen on {ip}:{port}: {e}")))?;
    start_flow(socket, input, workers)
}

/// Starts a flow tap on a bound socket: its reader thread and one source per worker. Apart
/// so a test can queue datagrams on the socket before anything reads it.
fn start_flow(
    socket: UdpSocket,
    input: FlowInput,
    workers: usize,
) -> Result<Vec<Box<dyn PacketSource>>, SourceError> {
    socket
        .set_read_timeout(Some(UDP_FLUSH))
        .map_err(|e| SourceError::Config(e.to_string()))?;
    let socket = Arc::new(socket);
    let workers = workers.max(1);
    let (shards, receivers, free) = channels(workers);
    let shared = shards.shared.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        let socket = socket.clone();
        std::thread::Builder::new()
            .name("wirelens-flow".into())
            .spawn(move || udp_loop(&socket, shards, &stop))
            .map_err(|e| SourceError::Config(format!("cannot start the flow reader: {e}")))?
    };
    Ok(sources(
        EventKind::Flow(input),
        receivers,
        &free,
        &shared,
        Producer::Udp {
            socket,
            stop,
            thread: Some(thread),
        },
    ))
}

/// Binds the collector's socket with a large receive buffer (`rcvbuf` bytes): exporters send
/// in bursts (a template refresh, a full cache flush), and what overflows the kernel's queue
/// is lost (and counted, see [`socket_drops`]). The size is a request; the kernel doubles it
/// for its bookkeeping and caps it at `net.core.rmem_max`.
fn bind_udp(addr: SocketAddr, rcvbuf: usize) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(rcvbuf);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// `SO_MEMINFO` (Linux 4.6), which `libc` does not export: its value in the generic socket
/// option table, and SPARC's own.
#[cfg(all(
    target_os = "linux",
    not(any(target_arch = "sparc", target_arch = "sparc64"))
))]
const SO_MEMINFO: libc::c_int = 55;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "sparc", target_arch = "sparc64")
))]
const SO_MEMINFO: libc::c_int = 0x39;

/// The socket's drop counter (`SK_MEMINFO_DROPS` of `SO_MEMINFO`, what `/proc/net/udp`
/// shows as `drops`): datagrams the kernel discarded for this socket, mostly because its
/// receive queue was full. Read when stats are sampled rather than per datagram from
/// `SO_RXQ_OVFL` control messages: the count those carry is the one when the datagram was
/// queued, so drops after the last queued datagram would stay unseen until the next one
/// arrives. `None` when the kernel does not tell.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // getsockopt(SO_MEMINFO) has no safe wrapper in std, socket2 or libc.
fn socket_drops(socket: &UdpSocket) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let drops = libc::SK_MEMINFO_DROPS as usize;
    let mut info = [0u32; 16];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a live, writable buffer of `len` bytes for the whole call and `len`
    // a live socklen_t; the kernel writes at most `len` bytes and stores how many in `len`.
    // The descriptor belongs to `socket`, which is borrowed (open) for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < (drops + 1) * size_of::<u32>() {
        return None;
    }
    info.get(drops).copied()
}

#[cfg(not(target_os = "linux"))]
fn socket_drops(_socket: &UdpSocket) -> Option<u32> {
    None
}

/// The exporter's address as the 17 bytes that precede its datagram in a batch.
fn exporter_prefix(ip: IpAddr) -> [u8; EXPORTER_PREFIX] {
    let mut out = [0u8; EXPORTER_PREFIX];
    let (family, octets) = match ip {
        IpAddr::V4(a) => (4, a.to_ipv6_mapped().octets()),
        IpAddr::V6(a) => (6, a.octets()),
    };
    out[0] = family;
    out[1..].copy_from_slice(&octets);
    out
}

/// Reads datagrams until stopped; shards them by exporter address.
fn udp_loop(socket: &UdpSocket, mut shards: Shards, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    let mut flushed = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                shards.shared.datagrams.fetch_add(1, Ordering::Relaxed);
                let ip = from.ip();
                let prefix = exporter_prefix(ip);
                let shard = wire::hash::flow_hash_parts(ip, 0, ip, 0, 17);
                let payload = buf.get(..n).unwrap_or_default();
                shards.push(shard, now_ns(), &[&prefix[..], payload]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Quiet: hand on what is pending so a slow exporter's datagrams are not held.
                shards.flush_all();
            }
            Err(_) => {
                shards.shared.recv_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(UDP_FLUSH);
            }
        }
        // A busy socket never times out: pending records still leave within a flush interval.
        if flushed.elapsed() >= UDP_FLUSH {
            shards.flush_all();
            flushed = std::time::Instant::now();
        }
    }
    shards.flush_all();
}

/// Worker side of a dnstap record: the flow the listener computed, then the payload.
pub(crate) fn process_dnstap(pipeline: &mut Pipeline, f: &Frame<'_>) {
    let (Some(flow), Some(payload)) = (f.data.get(..8), f.data.get(8..)) else {
        return;
    };
    let mut b = [0u8; 8];
    b.copy_from_slice(flow);
    pipeline.process_dnstap(payload, f.ts_ns, u64::from_le_bytes(b));
}

/// Worker side of an export datagram: the exporter prefix, then the datagram.
pub(crate) fn process_flow(pipeline: &mut Pipeline, input: FlowInput, f: &Frame<'_>) {
    let (Some(&family), Some(addr), Some(payload)) = (
        f.data.first(),
        f.data.get(1..EXPORTER_PREFIX),
        f.data.get(EXPORTER_PREFIX..),
    ) else {
        return;
    };
    let mut a = [0u8; 16];
    a.copy_from_slice(addr);
    let v6 = Ipv6Addr::from(a);
    let exporter = match (family, v6.to_ipv4_mapped()) {
        (4, Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    };
    pipeline.process_flow(input, exporter, payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> ConfigMap {
        let mut c = ConfigMap::new();
        for (k, v) in pairs {
            c.set(k, ConfigValue::Str((*v).into()));
        }
        c
    }

    fn config_error(r: Result<Vec<Box<dyn PacketSource>>, SourceError>) -> String {
        match r {
            Err(SourceError::Config(m)) => m,
            Err(e) => format!("other error: {e}"),
            Ok(_) => "accepted".into(),
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        let e = config_error(dnstap_sources(&cfg(&[("iface", "eth0")]), 1));
        assert!(
            e.starts_with("iface is an invalid/unsupported config"),
            "{e}"
        );
        let e = config_error(dnstap_sources(&cfg(&[]), 1));
        assert_eq!(e, "config must specify one of: socket, tcp");
        let e = config_error(dnstap_sources(&cfg(&[("tcp", "nohost")]), 1));
        assert_eq!(e, "invalid tcp address specification, use HOST:PORT");
        let e = config_error(flow_sources(&cfg(&[("port", "1")]), 1));
        assert_eq!(e, "flow config must specify port and bind");
        let e = config_error(flow_sources(&cfg(&[("flow_type", "x")]), 1));
        assert!(e.starts_with("invalid flow_type \"x\""), "{e}");
        for bad in ["0", "abc", "-1", "4294967296"] {
            let c = cfg(&[("bind", "127.0.0.1"), ("port", "0"), ("rcvbuf", bad)]);
            let e = config_error(flow_sources(&c, 1));
            assert!(
                e.starts_with(&format!("invalid flow rcvbuf '{bad}'")),
                "{e}"
            );
        }
    }

    /// Datagrams of `len` bytes sent to `to`, as fast as the sender goes.
    fn burst(to: SocketAddr, n: usize, len: usize) {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut d = vec![0u8; len];
        for i in 0..n {
            d[..4].copy_from_slice(&(i as u32).to_be_bytes());
            tx.send_to(&d, to).unwrap();
        }
    }

    fn extra(st: &SourceStats, name: &str) -> u64 {
        st.extra
            .iter()
            .find(|(k, _)| *k == name)
            .map_or_else(|| panic!("no {name} in {st:?}"), |(_, v)| *v)
    }

    /// A burst into a small receive buffer nobody reads: what the queue did not take is
    /// exactly the socket's drop counter.
    #[test]
    fn socket_drops_count_what_the_queue_refused() {
        let rx = bind_udp("127.0.0.1:0".parse().unwrap(), 4096).unwrap();
        let sent = 400;
        burst(rx.local_addr().unwrap(), sent, 200);
        rx.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        let mut got = 0u64;
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
        let drops = u64::from(socket_drops(&rx).unwrap());
        assert!(got > 0 && drops > 0, "got {got}, drops {drops}");
        assert_eq!(got + drops, sent as u64);
    }

    /// A flow tap whose reader starts after a burst filled its socket: every datagram is
    /// either handed to the worker or counted as a socket drop, in the tap's stats.
    #[test]
    fn flow_tap_counts_socket_drops() {
        let socket = bind_udp("127.0.0.1:0".parse().unwrap(), 4096).unwrap();
        let sent = 400u64;
        burst(socket.local_addr().unwrap(), sent as usize, 200);
        let mut srcs = start_flow(socket, FlowInput::Netflow, 1).unwrap();
        let mut polled = 0u64;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let st = loop {
            polled += srcs[0]
                .poll(Duration::from_millis(20), &mut |_| {})
                .unwrap() as u64;
            let st = srcs[0].stats();
            let accounted = extra(&st, "datagrams") + extra(&st, "socket_drops");
            if accounted >= sent && polled == extra(&st, "datagrams") {
                break st;
            }
            assert!(std::time::Instant::now() < deadline, "{st:?}");
        };
        let drops = extra(&st, "socket_drops");
        assert!(drops > 0, "{st:?}");
        assert_eq!(st.received + drops, sent, "{st:?}");
        assert_eq!(extra(&st, "queue_drops"), 0);
        assert_eq!(st.kernel_drops, drops);
        // The kernel doubles the request (and has a floor): about 8 KiB.
        let rcvbuf = extra(&st, "rcvbuf");
        assert!((4096..=16384).contains(&rcvbuf), "{rcvbuf}");
    }

    /// `rcvbuf` sets the socket's receive buffer.
    #[test]
    fn flow_tap_rcvbuf_is_configurable() {
        let c = cfg(&[("bind", "127.0.0.1"), ("port", "0"), ("rcvbuf", "65536")]);
        let mut srcs = flow_sources(&c, 2).unwrap();
        let st = srcs[0].stats();
        let rcvbuf = extra(&st, "rcvbuf");
        assert!((65536..=131072).contains(&rcvbuf), "{rcvbuf}");
        assert_eq!(extra(&st, "socket_drops"), 0);
        // Worker 1 reports only its own queue.
        let st1 = srcs[1].stats();
        assert_eq!(st1.extra, vec![("queue_drops", 0)]);
    }

    /// Datagrams sent to a flow tap reach the worker of their exporter, with its address.
    #[test]
    fn flow_tap_shards_by_exporter_and_counts() {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let c = cfg(&[
            ("flow_type", "netflow"),
            ("bind", "127.0.0.1"),
            ("port", &port.to_string()),
        ]);
        let mut srcs = flow_sources(&c, 2).unwrap();
        assert_eq!(srcs[0].kind(), EventKind::Flow(FlowInput::Netflow));
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[9, 0, i], ("127.0.0.1", port)).unwrap();
        }
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.len() < 5 && std::time::Instant::now() < deadline {
            for (w, s) in srcs.iter_mut().enumerate() {
                s.poll(Duration::from_millis(10), &mut |f| {
                    seen.push((w, f.data.to_vec()));
                })
                .unwrap();
            }
        }
        assert_eq!(seen.len(), 5);
        // One exporter: one worker, in order.
        assert!(seen.iter().all(|(w, _)| *w == seen[0].0));
        for (i, (_, d)) in seen.iter().enumerate() {
            assert_eq!(d[0], 4);
            assert_eq!(&d[13..17], &[127, 0, 0, 1]);
            assert_eq!(&d[EXPORTER_PREFIX..], &[9, 0, i as u8]);
        }
        let st = srcs[0].stats();
        assert!(st.extra.contains(&("datagrams", 5)), "{st:?}");
    }
}
