//! The live dnstap listener against writers written here: well-behaved ones (bidirectional
//! and unidirectional, unix and TCP, many at once) and misbehaving ones (stalls, disconnects
//! mid-frame, garbage, oversized frames, a wrong content type, too many connections), each
//! counted by reason while the listener keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inputs::dnstap_socket::{
    CloseReason, DnstapListener, FrameSink, ListenAddr, ListenError, ListenerConfig,
    ListenerHandle, ListenerStats, PeerInfo,
};
use wire::dnstap::CONTENT_TYPE as CT;
use wire::dnstap::fstrm::{ControlType, encode_control, encode_data};

/// What every sink saw, shared with the test.
#[derive(Default)]
struct Seen {
    frames: Vec<Vec<u8>>,
    started: u64,
    closed: Vec<CloseReason>,
}

struct TestSink(Arc<Mutex<Seen>>);

impl FrameSink for TestSink {
    fn frame(&mut self, payload: &[u8]) {
        self.0.lock().unwrap().frames.push(payload.to_vec());
    }
    fn started(&mut self) {
        self.0.lock().unwrap().started += 1;
    }
    fn closed(&mut self, reason: CloseReason) {
        self.0.lock().unwrap().closed.push(reason);
    }
}

/// A temporary directory removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "wirelens-dnstap-socket-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fast_config() -> ListenerConfig {
    ListenerConfig {
        max_frame_len: 1024,
        max_connections: 16,
        stall_timeout: Duration::from_millis(400),
        idle_timeout: None,
        poll_interval: Duration::from_millis(20),
    }
}

fn start(addr: &ListenAddr, config: ListenerConfig) -> (ListenerHandle, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let l = DnstapListener::bind(addr, config).unwrap();
    let h = l.spawn(move |_: &PeerInfo| TestSink(s2.clone()));
    (h, seen)
}

fn control(kind: ControlType, cts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_control(&mut v, kind, cts).unwrap();
    v
}

fn data(p: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_data(&mut v, p).unwrap();
    v
}

/// Waits until `cond` holds on the listener's counters (or fails after a few seconds).
fn wait_for(h: &ListenerHandle, what: &str, cond: impl Fn(&ListenerStats) -> bool) {
    let t0 = Instant::now();
    while !cond(&h.stats()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}: {:?}",
            h.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads exactly one control frame (escape, length, body) from a stream.
fn read_control(s: &mut impl Read) -> Vec<u8> {
    let mut head = [0u8; 8];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[..4], &[0, 0, 0, 0]);
    let len = u32::from_be_bytes(head[4..8].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    [head.to_vec(), body].concat()
}

/// A bidirectional writer: READY, expect ACCEPT, START, frames, STOP, expect FINISH.
fn bidirectional_session(s: &mut (impl Read + Write), payloads: &[Vec<u8>]) {
    s.write_all(&control(ControlType::Ready, &[b"other:type", CT]))
        .unwrap();
    assert_eq!(read_control(s), control(ControlType::Accept, &[CT]));
    s.write_all(&control(ControlType::Start, &[CT])).unwrap();
    for p in payloads {
        s.write_all(&data(p)).unwrap();
    }
    s.write_all(&control(ControlType::Stop, &[])).unwrap();
    assert_eq!(read_control(s), control(ControlType::Finish, &[]));
}

#[test]
fn bidirectional_unix_writer_is_answered_and_fully_delivered() {
    let dir = TempDir::new("bidi");
    let path = dir.0.join("tap.sock");
    let (h, seen) = start(&ListenAddr::Unix(path.clone()), fast_config());
    let payloads: Vec<Vec<u8>> = (0..50u32)
        .map(|i| format!("message {i}").into_bytes())
        .collect();
    let mut s = UnixStream::connect(&path).unwrap();
    bidirectional_session(&mut s, &payloads);
    // After FINISH the listener closes its end.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    wait_for(&h, "close", |st| st.closed == 1);
    let st = h.shutdown();
    assert_eq!(st.accepted, 1);
    assert_eq!(st.frames, 50);
    assert_eq!(
        st.bytes,
        payloads.iter().map(|p| p.len() as u64).sum::<u64>()
    );
    assert_eq!(st.control_frames, 3);
    assert_eq!(st.closed_for(CloseReason::Finished), 1);
    assert!(st.errors().is_empty());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.frames, payloads);
    assert_eq!(seen.started, 1);
    assert_eq!(seen.closed, [CloseReason::Finished]);
    // The socket file is removed at shutdown.
    assert!(!path.exists());
}

#[test]
fn unidirectional_tcp_writers_in_parallel() {
    let (h, seen) = start(&ListenAddr::Tcp("127.0.0.1:0".into()), fast_config());
    let ListenAddr::Tcp(addr) = h.local_addr().clone() else {
        panic!("not tcp")
    };
    assert!(!addr.ends_with(":0"), "the chosen port is reported: {addr}");
    let writers: Vec<_> = (0..8u32)
        .map(|w| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let mut bytes = control(ControlType::Start, &[CT]);
                for i in 0..200u32 {
                    bytes.extend(data(format!("w{w} m{i}").as_bytes()));
                }
                bytes.extend(control(ControlType::Stop, &[]));
                // Odd-sized writes, so frames straddle reads.
                for chunk in bytes.chunks(37) {
                    s.write_all(chunk).unwrap();
                }
                // A unidirectional writer gets no FINISH: the listener just closes.
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
                rest
            })
        })
        .collect();
    for w in writers {
        assert!(w.join().unwrap().is_empty());
    }
    wait_for(&h, "closes", |st| st.closed == 8);
    let st = h.shutdown();
    assert_eq!(st.frames, 1600);
    assert_eq!(st.closed_for(CloseReason::Finished), 8);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.frames.len(), 1600);
    // Every writer's frames arrive in its own order.
    for w in 0..8u32 {
        let mine: Vec<_> = seen
            .frames
            .iter()
            .filter(|f| f.starts_with(format!("w{w} ").as_bytes()))
            .collect();
        assert_eq!(mine.len(), 200);
        assert_eq!(mine[199], format!("w{w} m199").as_bytes());
    }
}

#[test]
fn misbehaving_peers_are_counted_and_the_listener_keeps_serving() {
    let dir = TempDir::new("bad");
    let path = dir.0.join("tap.sock");
    let (h, seen) = start(&ListenAddr::Unix(path.clone()), fast_config());
    let connect = || UnixStream::connect(&path).unwrap();

    // Garbage instead of a handshake.
    let mut s = connect();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    wait_for(&h, "garbage", |st| {
        st.closed_for(CloseReason::UnexpectedFrame) == 1
    });

    // A wrong content type on READY: no ACCEPT, the connection is closed.
    let mut s = connect();
    s.write_all(&control(ControlType::Ready, &[b"test:hello"]))
        .unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "no ACCEPT for a foreign content type");
    wait_for(&h, "content type", |st| {
        st.closed_for(CloseReason::ContentTypeMismatch) == 1
    });

    // An oversized frame after a good start: the frames before it are delivered.
    let mut s = connect();
    s.write_all(&control(ControlType::Start, &[CT])).unwrap();
    s.write_all(&data(b"before big")).unwrap();
    s.write_all(&2000u32.to_be_bytes()).unwrap();
    wait_for(&h, "oversized", |st| {
        st.closed_for(CloseReason::FrameTooLarge) == 1
    });

    // A disconnect in the middle of a frame.
    let mut s = connect();
    s.write_all(&control(ControlType::Start, &[CT])).unwrap();
    s.write_all(&data(b"whole")).unwrap();
    s.write_all(&[0, 0, 0, 10, b'p', b'a']).unwrap();
    drop(s);
    wait_for(&h, "truncated", |st| {
        st.closed_for(CloseReason::Truncated) == 1
    });

    // A stall inside a frame, and a peer that never says anything.
    let mut s = connect();
    s.write_all(&control(ControlType::Start, &[CT])).unwrap();
    s.write_all(&[0, 0, 0, 10, b'x']).unwrap();
    let silent = connect();
    let t0 = Instant::now();
    wait_for(&h, "stalls", |st| st.closed_for(CloseReason::Stalled) == 2);
    assert!(t0.elapsed() >= Duration::from_millis(350));
    drop((s, silent));

    // A writer that ends between frames without STOP.
    let mut s = connect();
    s.write_all(&control(ControlType::Start, &[])).unwrap();
    s.write_all(&data(b"no stop")).unwrap();
    drop(s);
    wait_for(&h, "eof", |st| st.closed_for(CloseReason::EndOfStream) == 1);

    // Afterwards a well-behaved writer is fully served.
    let payloads: Vec<Vec<u8>> = (0..100u32)
        .map(|i| format!("good {i}").into_bytes())
        .collect();
    let mut s = connect();
    bidirectional_session(&mut s, &payloads);
    wait_for(&h, "good writer", |st| {
        st.closed_for(CloseReason::Finished) == 1
    });
    let st = h.shutdown();
    assert_eq!(st.accepted, 8);
    assert_eq!(st.closed, 8);
    assert_eq!(st.frames, 3 + 100);
    assert_eq!(
        st.errors(),
        vec![
            ("truncated", 1),
            ("stalled", 2),
            ("frame_too_large", 1),
            ("content_type_mismatch", 1),
            ("unexpected_frame", 1),
        ]
    );
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.frames[..3],
        [
            b"before big".to_vec(),
            b"whole".to_vec(),
            b"no stop".to_vec()
        ]
    );
    assert_eq!(seen.frames[3..], payloads[..]);
}

#[test]
fn connections_over_the_limit_are_refused_and_counted() {
    let config = ListenerConfig {
        max_connections: 2,
        stall_timeout: Duration::from_secs(30),
        ..fast_config()
    };
    let (h, _seen) = start(&ListenAddr::Tcp("127.0.0.1:0".into()), config);
    let ListenAddr::Tcp(addr) = h.local_addr().clone() else {
        panic!("not tcp")
    };
    let a = TcpStream::connect(&addr).unwrap();
    let b = TcpStream::connect(&addr).unwrap();
    wait_for(&h, "two", |st| st.accepted == 2);
    let mut c = TcpStream::connect(&addr).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    wait_for(&h, "refusal", |st| {
        st.closed_for(CloseReason::TooManyConnections) == 1
    });
    assert_eq!(h.stats().active(), 2);
    drop((a, b));
    let st = h.shutdown();
    assert_eq!(st.accepted, 3);
    assert_eq!(st.errors(), vec![("too_many_connections", 1)]);
}

#[test]
fn idle_timeout_applies_between_frames_only_when_set() {
    let config = ListenerConfig {
        idle_timeout: Some(Duration::from_millis(200)),
        ..fast_config()
    };
    let (h, _seen) = start(&ListenAddr::Tcp("127.0.0.1:0".into()), config);
    let ListenAddr::Tcp(addr) = h.local_addr().clone() else {
        panic!("not tcp")
    };
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&control(ControlType::Start, &[CT])).unwrap();
    s.write_all(&data(b"x")).unwrap();
    wait_for(&h, "idle", |st| st.closed_for(CloseReason::Idle) == 1);
    assert_eq!(h.shutdown().errors(), vec![("idle", 1)]);

    // Without an idle timeout a quiet writer stays until shutdown.
    let (h, seen) = start(&ListenAddr::Tcp("127.0.0.1:0".into()), fast_config());
    let ListenAddr::Tcp(addr) = h.local_addr().clone() else {
        panic!("not tcp")
    };
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&control(ControlType::Start, &[CT])).unwrap();
    s.write_all(&data(b"y")).unwrap();
    wait_for(&h, "frame", |st| st.frames == 1);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        h.stats().closed,
        0,
        "longer than the stall timeout, but between frames"
    );
    let st = h.shutdown();
    assert_eq!(st.closed_for(CloseReason::Shutdown), 1);
    assert_eq!(seen.lock().unwrap().closed, [CloseReason::Shutdown]);
}

#[test]
fn unix_socket_path_handling() {
    let dir = TempDir::new("path");
    let path = dir.0.join("tap.sock");
    // A stale socket file (its listener is gone) is replaced.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let l = DnstapListener::bind(&ListenAddr::Unix(path.clone()), fast_config()).unwrap();
    let h = l.spawn(|_: &PeerInfo| TestSink(Arc::default()));
    // A live one is not.
    let e = DnstapListener::bind(&ListenAddr::Unix(path.clone()), fast_config())
        .err()
        .unwrap();
    assert!(matches!(e, ListenError::InUse(_)), "{e}");
    h.shutdown();
    // Nor is a regular file.
    let file = dir.0.join("notes.txt");
    std::fs::write(&file, b"keep me").unwrap();
    let e = DnstapListener::bind(&ListenAddr::Unix(file.clone()), fast_config())
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "cannot listen on unix:{}: the path exists and is not a socket",
            file.display()
        )
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn listen_addresses_parse() {
    assert_eq!(
        "unix:/run/dnstap.sock".parse::<ListenAddr>().unwrap(),
        ListenAddr::Unix("/run/dnstap.sock".into())
    );
    assert_eq!(
        "tcp:127.0.0.1:6000".parse::<ListenAddr>().unwrap(),
        ListenAddr::Tcp("127.0.0.1:6000".into())
    );
    assert_eq!(
        "tcp:[::1]:6000".parse::<ListenAddr>().unwrap().to_string(),
        "tcp:[::1]:6000"
    );
    for bad in [
        "",
        "unix:",
        "tcp:6000",
        "tcp:host:port",
        "/run/dnstap.sock",
        "udp:1.2.3.4:5",
    ] {
        let e = bad.parse::<ListenAddr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("invalid listen address {bad:?}: use unix:PATH or tcp:HOST:PORT")
        );
    }
}
