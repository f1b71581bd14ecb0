//! Live dnstap: a Frame Streams listener on a unix socket or a TCP port that serves many
//! concurrent writers (DNS servers), each on its own thread.
//!
//! A writer opens bidirectionally (`READY` → `ACCEPT` → `START`) or unidirectionally (`START`),
//! sends data frames, then `STOP` (answered by `FINISH` when bidirectional); the order and the
//! content type (`protobuf:dnstap.Dnstap`) are checked by [`wire::dnstap::session::Receiver`].
//! Each data frame is handed to the connection's [`FrameSink`] borrowed from the connection's
//! one reusable buffer, so nothing is copied or allocated per frame here. State is bounded: a
//! frame over the limit, too many connections, a peer that stalls inside a frame or the
//! handshake, disconnects mid-frame or sends garbage are counted by [`CloseReason`] and the
//! connection is closed, while the listener keeps serving the others. This module does not
//! decode dnstap messages (the sink does) and does not summarize anything.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use wire::dnstap::CONTENT_TYPE;
use wire::dnstap::fstrm::{ControlType, MAX_CONTROL_LEN, Reply, encode_reply};
use wire::dnstap::session::{Event, Phase, Receiver, SessionError};

/// Default largest data frame: a dnstap message carries at most two DNS messages of a few
/// kilobytes, so 64 KiB leaves room while bounding each connection's buffer.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A unix stream socket at this path (`unix:PATH`).
    Unix(PathBuf),
    /// A TCP address, `HOST:PORT` (`tcp:HOST:PORT`); port 0 picks a free port.
    Tcp(String),
}

impl FromStr for ListenAddr {
    type Err = ListenError;

    /// Parses `unix:PATH` or `tcp:HOST:PORT`.
    fn from_str(s: &str) -> Result<Self, ListenError> {
        if let Some(path) = s.strip_prefix("unix:")
            && !path.is_empty()
        {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if let Some(hp) = s.strip_prefix("tcp:")
            && let Some((host, port)) = hp.rsplit_once(':')
            && !host.is_empty()
            && port.parse::<u16>().is_ok()
        {
            return Ok(Self::Tcp(hp.to_string()));
        }
        Err(ListenError::BadAddress(s.to_string()))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Bounds and timers of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Largest data frame accepted; a bigger one closes the connection.
    pub max_frame_len: usize,
    /// Most connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// A peer silent this long inside a frame or before `START` is closed as stalled.
    pub stall_timeout: Duration,
    /// A peer silent this long between data frames is closed as idle; `None` keeps it (a DNS
    /// server with no traffic sends nothing, and Frame Streams has no keepalive).
    pub idle_timeout: Option<Duration>,
    /// How often a connection that receives nothing checks for shutdown and timeouts, and
    /// lets its sink flush.
    pub poll_interval: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_connections: 64,
            stall_timeout: Duration::from_secs(10),
            idle_timeout: None,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// `STOP` received (and `FINISH` sent to a bidirectional writer): a clean end.
    Finished,
    /// The peer closed between frames without `STOP`.
    EndOfStream,
    /// The peer closed inside a frame or the handshake.
    Truncated,
    /// Nothing received for the stall timeout inside a frame or before `START`.
    Stalled,
    /// Nothing received for the idle timeout between frames.
    Idle,
    /// A data frame over the configured limit.
    FrameTooLarge,
    /// `READY` or `START` with another content type than dnstap's.
    ContentTypeMismatch,
    /// A malformed control frame.
    BadControlFrame,
    /// A frame out of protocol order (data before `START`, garbage, `READY` while streaming).
    UnexpectedFrame,
    /// A read or write error on the socket.
    Io,
    /// Refused: the listener already serves its maximum of connections.
    TooManyConnections,
    /// The listener was shut down.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in the order of [`ListenerStats::closed_by`].
    pub const ALL: [CloseReason; 12] = [
        Self::Finished,
        Self::EndOfStream,
        Self::Truncated,
        Self::Stalled,
        Self::Idle,
        Self::FrameTooLarge,
        Self::ContentTypeMismatch,
        Self::BadControlFrame,
        Self::UnexpectedFrame,
        Self::Io,
        Self::TooManyConnections,
        Self::Shutdown,
    ];

    /// A stable, machine-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::EndOfStream => "end_of_stream",
            Self::Truncated => "truncated",
            Self::Stalled => "stalled",
            Self::Idle => "idle",
            Self::FrameTooLarge => "frame_too_large",
            Self::ContentTypeMismatch => "content_type_mismatch",
            Self::BadControlFrame => "bad_control_frame",
            Self::UnexpectedFrame => "unexpected_frame",
            Self::Io => "io_error",
            Self::TooManyConnections => "too_many_connections",
            Self::Shutdown => "shutdown",
        }
    }

    /// True when the peer misbehaved or the connection failed (not a normal end).
    pub fn is_error(self) -> bool {
        !matches!(self, Self::Finished | Self::EndOfStream | Self::Shutdown)
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    fn from_session(e: &SessionError) -> Self {
        match e.reason() {
            "frame_too_large" => Self::FrameTooLarge,
            "content_type_mismatch" => Self::ContentTypeMismatch,
            "bad_control_frame" => Self::BadControlFrame,
            _ => Self::UnexpectedFrame,
        }
    }
}

/// A snapshot of a listener's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Connections accepted (including those refused for [`CloseReason::TooManyConnections`]).
    pub accepted: u64,
    /// Connections closed, whatever the reason.
    pub closed: u64,
    /// Data frames delivered to sinks.
    pub frames: u64,
    /// Payload bytes of the delivered data frames.
    pub bytes: u64,
    /// Control frames received.
    pub control_frames: u64,
    /// Accept calls that failed (e.g. out of file descriptors).
    pub accept_errors: u64,
    /// Closed connections by reason, indexed like [`CloseReason::ALL`].
    pub closed_by: [u64; 12],
}

impl ListenerStats {
    /// Connections open at the time of the snapshot.
    pub fn active(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }

    /// Connections closed for `reason`.
    pub fn closed_for(&self, reason: CloseReason) -> u64 {
        self.closed_by.get(reason.index()).copied().unwrap_or(0)
    }

    /// Error closes by reason name, only the reasons that occurred.
    pub fn errors(&self) -> Vec<(&'static str, u64)> {
        CloseReason::ALL
            .iter()
            .filter(|r| r.is_error())
            .map(|r| (r.name(), self.closed_for(*r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[derive(Default)]
struct SharedStats {
    accepted: AtomicU64,
    closed: AtomicU64,
    frames: AtomicU64,
    bytes: AtomicU64,
    control_frames: AtomicU64,
    accept_errors: AtomicU64,
    closed_by: [AtomicU64; 12],
}

impl SharedStats {
    fn snapshot(&self) -> ListenerStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ListenerStats {
            accepted: get(&self.accepted),
            closed: get(&self.closed),
            frames: get(&self.frames),
            bytes: get(&self.bytes),
            control_frames: get(&self.control_frames),
            accept_errors: get(&self.accept_errors),
            closed_by: std::array::from_fn(|i| self.closed_by.get(i).map_or(0, get)),
        }
    }

    fn close(&self, reason: CloseReason) {
        if let Some(c) = self.closed_by.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Who a connection is, for the sink and for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Connection number, from 1 in accept order.
    pub id: u64,
    /// The peer's address (`unix` for an unnamed unix socket peer).
    pub peer: String,
}

/// Receives one connection's data frames. One sink per connection, called from that
/// connection's thread only.
pub trait FrameSink: Send {
    /// One data frame's payload (an encoded `Dnstap` message), borrowed until the call returns.
    fn frame(&mut self, payload: &[u8]);
    /// The writer sent `START`: data frames follow.
    fn started(&mut self) {}
    /// Called about once per poll interval while the connection is open, busy or quiet: a
    /// moment to hand on anything held back, so a slow writer's frames are not delayed long.
    fn flush(&mut self) {}
    /// The connection ended; no call follows.
    fn closed(&mut self, reason: CloseReason) {
        let _ = reason;
    }
}

/// Why a listener could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ListenError {
    /// The address is neither `unix:PATH` nor `tcp:HOST:PORT`.
    #[error("invalid listen address {0:?}: use unix:PATH or tcp:HOST:PORT")]
    BadAddress(String),
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The system error.
        source: io::Error,
    },
    /// A live listener already serves the unix socket path.
    #[error("cannot listen on {0}: another process is listening there")]
    InUse(String),
    /// Something other than a socket is at the unix socket path.
    #[error("cannot listen on {0}: the path exists and is not a socket")]
    NotASocket(String),
}

enum Bound {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

/// A bound, not yet serving, dnstap listener.
pub struct DnstapListener {
    bound: Bound,
    addr: ListenAddr,
    config: ListenerConfig,
}

impl DnstapListener {
    /// Binds `addr`. A stale unix socket file (one nobody listens on) is removed first; a
    /// live one or a file that is not a socket is an error.
    pub fn bind(addr: &ListenAddr, config: ListenerConfig) -> Result<Self, ListenError> {
        let bind_err = |source| ListenError::Bind {
            addr: addr.to_string(),
            source,
        };
        let (bound, actual) = match addr {
            ListenAddr::Unix(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    if !meta.file_type().is_socket() {
                        return Err(ListenError::NotASocket(addr.to_string()));
                    }
                    if UnixStream::connect(path).is_ok() {
                        return Err(ListenError::InUse(addr.to_string()));
                    }
                    std::fs::remove_file(path).map_err(bind_err)?;
                }
                let l = UnixListener::bind(path).map_err(bind_err)?;
                (Bound::Unix(l, path.clone()), addr.clone())
            }
            ListenAddr::Tcp(hp) => {
                let l = TcpListener::bind(hp.as_str()).map_err(bind_err)?;
                let actual = l
                    .local_addr()
                    .map_or_else(|_| addr.clone(), |a| ListenAddr::Tcp(a.to_string()));
                (Bound::Tcp(l), actual)
            }
        };
        match &bound {
            Bound::Unix(l, _) => l.set_nonblocking(true),
            Bound::Tcp(l) => l.set_nonblocking(true),
        }
        .map_err(bind_err)?;
        Ok(Self {
            bound,
            addr: actual,
            config,
        })
    }

    /// The address actually bound (with the chosen port for `tcp:HOST:0`).
    pub fn local_addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Starts serving: an accept thread, and one thread per connection feeding the sink
    /// `make_sink` builds for it.
    pub fn spawn<S, F>(self, make_sink: F) -> ListenerHandle
    where
        S: FrameSink + 'static,
        F: FnMut(&PeerInfo) -> S + Send + 'static,
    {
        let stats = Arc::new(SharedStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let addr = self.addr.clone();
        let socket_path = match &self.bound {
            Bound::Unix(_, p) => Some(p.clone()),
            Bound::Tcp(_) => None,
        };
        let accept = {
            let stats = stats.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("dnstap-accept".into())
                .spawn(move || accept_loop(self, make_sink, &stats, &stop))
                .ok()
        };
        if accept.is_none() {
            stats.accept_errors.fetch_add(1, Ordering::Relaxed);
        }
        ListenerHandle {
            stop,
            accept,
            stats,
            addr,
            socket_path,
        }
    }
}

/// A serving listener. Dropping it shuts it down like [`ListenerHandle::shutdown`].
pub struct ListenerHandle {
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    stats: Arc<SharedStats>,
    addr: ListenAddr,
    socket_path: Option<PathBuf>,
}

impl ListenerHandle {
    /// The counters so far.
    pub fn stats(&self) -> ListenerStats {
        self.stats.snapshot()
    }

    /// The address served.
    pub fn local_addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Stops accepting, closes every connection (their sinks see [`CloseReason::Shutdown`]
    /// after their last frame), waits for the threads, removes the unix socket file, and
    /// returns the final counters. Takes up to about one poll interval.
    pub fn shutdown(mut self) -> ListenerStats {
        self.stop_and_join();
        self.stats.snapshot()
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        if let Some(p) = self.socket_path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A connected stream of either family.
trait Conn: Read + Write + Send + 'static {
    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()>;
}

impl Conn for UnixStream {
    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(read))?;
        self.set_write_timeout(Some(write))
    }
}

impl Conn for TcpStream {
    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        // Replies are a few bytes; sending them at once matters more than batching.
        let _ = self.set_nodelay(true);
        self.set_read_timeout(Some(read))?;
        self.set_write_timeout(Some(write))
    }
}

fn accept_loop<S, F>(
    listener: DnstapListener,
    mut make_sink: F,
    stats: &Arc<SharedStats>,
    stop: &Arc<AtomicBool>,
) where
    S: FrameSink + 'static,
    F: FnMut(&PeerInfo) -> S + Send + 'static,
{
    let config = listener.config;
    // Accepting polls so that shutdown needs no wake-up connection; a new writer waits at
    // most this long to be picked up.
    let nap = config.poll_interval.min(Duration::from_millis(20));
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let accepted: io::Result<(Box<dyn Conn>, String)> = match &listener.bound {
            Bound::Unix(l, _) => l.accept().map(|(s, a)| {
                let peer = a
                    .as_pathname()
                    .map_or_else(|| "unix".to_string(), |p| p.display().to_string());
                (Box::new(s) as Box<dyn Conn>, peer)
            }),
            Bound::Tcp(l) => l
                .accept()
                .map(|(s, a)| (Box::new(s) as Box<dyn Conn>, a.to_string())),
        };
        match accepted {
            Ok((stream, peer)) => {
                next_id += 1;
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                conns.retain(|h| !h.is_finished());
                if conns.len() >= config.max_connections {
                    stats.close(CloseReason::TooManyConnections);
                    continue;
                }
                let info = PeerInfo { id: next_id, peer };
                let mut sink = make_sink(&info);
                let stats2 = stats.clone();
                let stop2 = stop.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("dnstap-conn-{next_id}"))
                    .spawn(move || {
                        let reason = serve(stream, &config, &stats2, &stop2, &mut sink);
                        sink.closed(reason);
                        stats2.close(reason);
                    });
                match spawned {
                    Ok(h) => conns.push(h),
                    Err(_) => stats.close(CloseReason::Io),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(nap),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // Out of descriptors and the like: count, back off, keep serving.
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(nap);
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

/// Serves one connection until it ends; returns why.
fn serve(
    mut stream: Box<dyn Conn>,
    config: &ListenerConfig,
    stats: &SharedStats,
    stop: &AtomicBool,
    sink: &mut dyn FrameSink,
) -> CloseReason {
    if stream
        .set_timeouts(config.poll_interval, config.stall_timeout)
        .is_err()
    {
        return CloseReason::Io;
    }
    let mut rx = Receiver::new(CONTENT_TYPE, config.max_frame_len);
    // Grows on demand up to one largest frame plus its length, never beyond.
    let cap = config.max_frame_len.max(MAX_CONTROL_LEN) + 8;
    let mut buf = vec![0u8; cap.min(16 * 1024)];
    let mut reply = Vec::with_capacity(64);
    let (mut pos, mut end) = (0usize, 0usize);
    let mut last_byte = Instant::now();
    let mut last_flush = last_byte;
    loop {
        // Everything whole in the buffer first.
        loop {
            let avail = buf.get(pos..end).unwrap_or_default();
            match rx.next(avail) {
                Ok(Event::NeedMore) => break,
                Ok(Event::Data {
                    consumed,
                    start,
                    len,
                }) => {
                    sink.frame(avail.get(start..start + len).unwrap_or_default());
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                    stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
                    pos += consumed;
                }
                Ok(Event::Control {
                    consumed,
                    kind,
                    reply: r,
                }) => {
                    stats.control_frames.fetch_add(1, Ordering::Relaxed);
                    pos += consumed;
                    if r != Reply::Nothing {
                        reply.clear();
                        let sent = encode_reply(&mut reply, r, CONTENT_TYPE)
                            .is_ok()
                            .then(|| stream.write_all(&reply).and_then(|()| stream.flush()));
                        // A writer may close right after STOP without waiting for
                        // FINISH: its stream is complete all the same.
                        if !matches!(sent, Some(Ok(()))) && r != Reply::Finish {
                            return CloseReason::Io;
                        }
                    }
                    if kind == ControlType::Start {
                        sink.started();
                    }
                    if rx.phase() == Phase::Stopped {
                        return CloseReason::Finished;
                    }
                }
                Err(e) => return CloseReason::from_session(&e),
            }
        }
        if pos == end {
            (pos, end) = (0, 0);
        } else if end == buf.len() {
            // A partial frame at the end: move it to the front, and grow if it fills the
            // buffer (bounded by `cap`: the decoder refuses longer frames).
            buf.copy_within(pos..end, 0);
            end -= pos;
            pos = 0;
            if end == buf.len() {
                let grown = (buf.len() * 2).min(cap);
                if grown <= buf.len() {
                    return CloseReason::FrameTooLarge;
                }
                buf.resize(grown, 0);
            }
        }
        if stop.load(Ordering::Relaxed) {
            return CloseReason::Shutdown;
        }
        let inside = pos < end || rx.phase() != Phase::Streaming;
        let dst = buf.get_mut(end..).unwrap_or_default();
        match stream.read(dst) {
            Ok(0) => {
                return if !inside || (rx.phase() == Phase::Opening && end == 0) {
                    CloseReason::EndOfStream
                } else {
                    CloseReason::Truncated
                };
            }
            Ok(n) => {
                end += n;
                last_byte = Instant::now();
                if last_byte.duration_since(last_flush) >= config.poll_interval {
                    last_flush = last_byte;
                    sink.flush();
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                sink.flush();
                last_flush = Instant::now();
                let silent = last_byte.elapsed();
                if inside && silent >= config.stall_timeout {
                    return CloseReason::Stalled;
                }
                if !inside && config.idle_timeout.is_some_and(|t| silent >= t) {
                    return CloseReason::Idle;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return if inside {
                    CloseReason::Truncated
                } else {
                    CloseReason::EndOfStream
                };
            }
            Err(_) => return CloseReason::Io,
        }
    }
}
