//! `wirelens read -i dnstap --listen` against real DNS servers: unbound (client queries and
//! responses, over a unix socket and over TCP) and knot (authoritative queries and responses,
//! over a unix socket) push dnstap to the running binary while the test sends N queries; the
//! summary printed at SIGINT must count exactly N queries, N replies and N transactions. A
//! writer written here checks the same over TCP after a misbehaving peer, without any server.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value;
use wire::dnstap::fstrm::{ControlType, encode_control, encode_data};
use wire::dnstap::{CONTENT_TYPE, Dnstap, DnstapType, Message, MessageType, SocketFamily};

/// Queries sent to each server.
const N: u64 = 20;

/// A temporary directory, unique per test and process, removed even when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "wirelens-dnstap-live-{test}-{}",
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

/// A child process killed (by its own handle) if the test ends early.
struct Guard(Option<Child>);

impl Guard {
    /// Sends `signal` (a `kill` name such as TERM or INT) and waits for the exit.
    fn signal_and_wait(&mut self, signal: &str) -> Child {
        let child = self.0.take().unwrap();
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} {}", child.id());
        child
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The wirelens process and its stderr, line by line.
struct Wirelens {
    proc: Guard,
    stderr: Receiver<String>,
    log: Vec<String>,
}

impl Wirelens {
    /// Starts `wirelens read -i dnstap --listen <listen>` and waits until it listens; returns
    /// it and the address it reports (with the chosen TCP port).
    fn start(listen: &str) -> (Self, String) {
        let mut child = Command::new(support::wirelens_bin())
            .args([
                "read",
                "-i",
                "dnstap",
                "--workers",
                "2",
                "--duration",
                "25",
                "--progress",
            ])
            .args(["--listen", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut w = Self {
            proc: Guard(Some(child)),
            stderr: rx,
            log: Vec::new(),
        };
        let line = w.wait_line("listening on ");
        let addr = line.rsplit("listening on ").next().unwrap().to_string();
        (w, addr)
    }

    /// Waits for a stderr line containing `needle` (and fails with the log after 10 s).
    fn wait_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let t0 = Instant::now();
        loop {
            let left = Duration::from_secs(10).saturating_sub(t0.elapsed());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!("no stderr line with {needle:?}; got {:?}", self.log)
                }
            }
        }
    }

    /// SIGINT: the summary is printed; returns it parsed and the whole stderr.
    fn finish(mut self) -> (Value, Vec<String>) {
        let mut child = self.proc.signal_and_wait("INT");
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = child.wait().unwrap();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.log.push(line);
        }
        assert!(status.success(), "wirelens failed: {:?}", self.log);
        let json: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {out}; stderr {:?}", self.log));
        (json, self.log)
    }
}

/// A free local port (TCP and UDP are checked together, as the servers use both).
fn free_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A DNS query for `name` type A, recursion desired.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Sends `n` queries one at a time to 127.0.0.1:`port`, each answered before the next. A
/// refused send (the server not bound yet: the query never reached it) is retried; a lost
/// answer fails the test.
fn send_queries(port: u16, n: u64, name: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 512];
    for i in 0..n {
        let id = 0x1000 + i as u16;
        loop {
            sock.send(&query(id, name)).unwrap();
            match sock.recv(&mut buf) {
                Ok(len) => {
                    assert!(len >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0);
                    assert_eq!(buf[3] & 0x0f, 0, "rcode of the answer to {name}");
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    assert!(t0.elapsed() < Duration::from_secs(10), "server never bound");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("query {i} to port {port}: {e}"),
            }
        }
    }
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).unwrap_or_else(|| panic!("no {path:?} in {v}"));
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {cur}"))
}

/// The counters every server test checks: N queries and N replies seen by dns, paired into N
/// transactions, and the net view of the same 2N messages.
fn assert_counts(json: &Value, log: &[String]) {
    let dns = &json["5m"]["dns"];
    let net = &json["5m"]["packets"];
    assert_eq!(u(dns, &["wire_packets", "queries"]), N, "{log:?}");
    assert_eq!(u(dns, &["wire_packets", "replies"]), N);
    assert_eq!(u(dns, &["wire_packets", "noerror"]), N);
    assert_eq!(u(dns, &["wire_packets", "udp"]), 2 * N);
    assert_eq!(u(dns, &["xact", "counts", "total"]), N);
    assert_eq!(u(dns, &["xact", "in", "total"]), N);
    assert_eq!(u(net, &["events"]), 2 * N);
    assert_eq!(u(net, &["in"]), N);
    assert_eq!(u(net, &["out"]), N);
    let summary = log
        .iter()
        .find(|l| l.starts_with("wirelens: dnstap: ") && l.contains(" connections, "))
        .unwrap_or_else(|| panic!("no listener summary in {log:?}"));
    assert!(
        summary.starts_with(&format!(
            "wirelens: dnstap: 1 connections, {} frames",
            2 * N
        )),
        "{summary}"
    );
}

/// True when unbound runs and was built with dnstap.
fn unbound_with_dnstap() -> bool {
    Command::new("unbound")
        .arg("-V")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--enable-dnstap"))
}

/// unbound serving a local zone on `port`, logging client queries and responses to `tap`
/// (the `dnstap:` clause's transport lines).
fn start_unbound(dir: &Path, port: u16, tap: &str) -> Guard {
    let conf = dir.join("unbound.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "server:
    interface: 127.0.0.1@{port}
    port: {port}
    do-ip6: no
    num-threads: 1
    do-daemonize: no
    chroot: \"\"
    username: \"\"
    directory: \"{d}\"
    pidfile: \"{d}/unbound.pid\"
    use-syslog: no
    logfile: \"\"
    verbosity: 1
    access-control: 127.0.0.0/8 allow
    local-zone: \"example.test.\" static
    local-data: \"www.example.test. 60 IN A 192.0.2.1\"
remote-control:
    control-enable: no
dnstap:
    dnstap-enable: yes
{tap}
    dnstap-send-identity: yes
    dnstap-send-version: yes
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("unbound.log")).unwrap();
    let child = Command::new("unbound")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Guard(Some(child))
}

/// Runs one unbound session against a listening wirelens and checks the summary.
fn unbound_session(test: &str, listen: impl Fn(&Path) -> String, tap: impl Fn(&str) -> String) {
    if !unbound_with_dnstap() {
        support::missing("unbound built with dnstap");
        return;
    }
    let dir = TempDir::new(test);
    let (mut wl, addr) = Wirelens::start(&listen(&dir.0));
    let port = free_port();
    let mut server = start_unbound(&dir.0, port, &tap(&addr));
    // Queries logged before the writer's stream started would be lost by the server.
    wl.wait_line("started");
    send_queries(port, N, "www.example.test");
    // unbound's dnstap thread is woken for a batch of messages or by a timer (about a second
    // after the first queued one), and what is still queued when it exits is dropped: wait
    // for every message before stopping it (it then sends STOP).
    wl.wait_line(&format!("received {} frames", 2 * N));
    let mut child = server.signal_and_wait("TERM");
    assert!(child.wait().unwrap().success());
    let closed = wl.wait_line(") closed: ");
    assert!(closed.ends_with("closed: finished"), "{closed}");
    let (json, log) = wl.finish();
    assert_counts(&json, &log);
}

#[test]
fn unbound_over_a_unix_socket() {
    unbound_session(
        "unbound-unix",
        |dir| format!("unix:{}", dir.join("dnstap.sock").display()),
        |addr| {
            let path = addr.strip_prefix("unix:").unwrap();
            format!("    dnstap-socket-path: \"{path}\"")
        },
    );
}

#[test]
fn unbound_over_tcp() {
    unbound_session(
        "unbound-tcp",
        |_| "tcp:127.0.0.1:0".to_string(),
        |addr| {
            let (host, port) = addr.strip_prefix("tcp:").unwrap().rsplit_once(':').unwrap();
            format!("    dnstap-ip: \"{host}@{port}\"\n    dnstap-tls: no")
        },
    );
}

#[test]
fn knot_over_a_unix_socket() {
    if !support::tool_runs("knotd") {
        support::missing("knotd");
        return;
    }
    let dir = TempDir::new("knot-unix");
    let d = dir.0.display().to_string();
    std::fs::create_dir_all(dir.0.join("db")).unwrap();
    std::fs::write(
        dir.0.join("example.test.zone"),
        "$ORIGIN example.test.\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n  NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.1\n",
    )
    .unwrap();
    let port = free_port();
    let sock = dir.0.join("dnstap.sock");
    let conf = dir.0.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:
    rundir: \"{d}\"
    listen: 127.0.0.1@{port}
database:
    storage: \"{d}/db\"
log:
  - target: stderr
    any: info
mod-dnstap:
  - id: tap
    sink: \"unix:{sock}\"
    identity: \"knot-test\"
    log-queries: on
    log-responses: on
template:
  - id: default
    storage: \"{d}\"
    global-module: mod-dnstap/tap
zone:
  - domain: example.test
    file: \"example.test.zone\"
",
            sock = sock.display()
        ),
    )
    .unwrap();
    let check = Command::new("knotc")
        .arg("-c")
        .arg(&conf)
        .arg("conf-check")
        .output()
        .unwrap();
    if !check.status.success() {
        // Debian ships mod-dnstap in its own package (knot-module-dnstap).
        support::missing(&format!(
            "knot with mod-dnstap ({})",
            String::from_utf8_lossy(&check.stderr).trim()
        ));
        return;
    }
    let (mut wl, _) = Wirelens::start(&format!("unix:{}", sock.display()));
    let log = std::fs::File::create(dir.0.join("knot.log")).unwrap();
    let mut server = Guard(Some(
        Command::new("knotd")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));
    wl.wait_line("started");
    send_queries(port, N, "www.example.test");
    let mut child = server.signal_and_wait("TERM");
    assert!(child.wait().unwrap().success());
    let closed = wl.wait_line(") closed: ");
    assert!(closed.ends_with("closed: finished"), "{closed}");
    let (json, log) = wl.finish();
    assert_counts(&json, &log);
    // knot is an authoritative server: its messages are AUTH_* (dnstap_msg_type auth).
    assert_eq!(u(&json["5m"]["dns"], &["wire_packets", "total"]), 2 * N);
}

/// One dnstap message of an exchange between 192.0.2.10:`port` and 192.0.2.53:53.
fn tap_message(kind: MessageType, port: u32, dns: &[u8], sec: u64) -> Vec<u8> {
    let query = kind.is_query();
    let msg = Message {
        kind: Some(kind),
        socket_family: Some(SocketFamily::Inet),
        socket_protocol: Some(wire::dnstap::SocketProtocol::Udp),
        query_address: Some(&[192, 0, 2, 10]),
        response_address: Some(&[192, 0, 2, 53]),
        query_port: Some(port),
        response_port: Some(53),
        query_time_sec: Some(sec),
        query_time_nsec: Some(0),
        query_message: query.then_some(dns),
        response_time_sec: (!query).then_some(sec),
        response_time_nsec: (!query).then_some(500_000),
        response_message: (!query).then_some(dns),
        ..Message::default()
    };
    let tap = Dnstap {
        identity: Some(b"test-writer"),
        kind: Some(DnstapType::Message),
        message: Some(msg),
        ..Dnstap::default()
    };
    let mut out = Vec::new();
    tap.encode(&mut out);
    out
}

#[test]
fn own_writer_over_tcp_after_a_misbehaving_peer() {
    let (mut wl, addr) = Wirelens::start("tcp:127.0.0.1:0");
    let hp = addr.strip_prefix("tcp:").unwrap().to_string();
    // Garbage first: counted, closed, and the listener goes on.
    let mut bad = TcpStream::connect(&hp).unwrap();
    bad.write_all(b"\x00\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00\x04\x00\x00\x00\x09")
        .unwrap();
    wl.wait_line("closed: bad_control_frame");
    drop(bad);

    let mut s = TcpStream::connect(&hp).unwrap();
    let mut frame = Vec::new();
    encode_control(&mut frame, ControlType::Ready, &[CONTENT_TYPE]).unwrap();
    s.write_all(&frame).unwrap();
    let mut accept = [0u8; 42];
    s.read_exact(&mut accept).unwrap();
    frame.clear();
    encode_control(&mut frame, ControlType::Accept, &[CONTENT_TYPE]).unwrap();
    assert_eq!(accept.as_slice(), frame.as_slice());
    frame.clear();
    encode_control(&mut frame, ControlType::Start, &[CONTENT_TYPE]).unwrap();
    let sec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for i in 0..N {
        let q = query(0x2000 + i as u16, "www.example.test");
        let mut r = q.clone();
        r[2] |= 0x80;
        let port = 40_000 + i as u32;
        encode_data(
            &mut frame,
            &tap_message(MessageType::ClientQuery, port, &q, sec),
        )
        .unwrap();
        encode_data(
            &mut frame,
            &tap_message(MessageType::ClientResponse, port, &r, sec),
        )
        .unwrap();
    }
    encode_control(&mut frame, ControlType::Stop, &[]).unwrap();
    s.write_all(&frame).unwrap();
    let mut finish = [0u8; 12];
    s.read_exact(&mut finish).unwrap();
    assert_eq!(finish, [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 5]);
    wl.wait_line("closed: finished");
    let (json, log) = wl.finish();
    let dns = &json["5m"]["dns"];
    assert_eq!(u(dns, &["wire_packets", "queries"]), N);
    assert_eq!(u(dns, &["wire_packets", "replies"]), N);
    assert_eq!(u(dns, &["xact", "counts", "total"]), N);
    assert_eq!(u(&json["5m"]["packets"], &["events"]), 2 * N);
    let summary = log
        .iter()
        .find(|l| l.starts_with("wirelens: dnstap: ") && l.contains(" connections, "))
        .unwrap();
    assert!(
        summary.starts_with(&format!(
            "wirelens: dnstap: 2 connections, {} frames",
            2 * N
        )),
        "{summary}"
    );
    assert!(
        summary.ends_with(", 1 closed: bad_control_frame"),
        "{summary}"
    );
}

#[test]
fn listen_needs_dnstap_input_and_no_files() {
    let out = Command::new(support::wirelens_bin())
        .args(["read", "--listen", "tcp:127.0.0.1:0", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "wirelens: --listen serves live dnstap: use it with -i dnstap, no files and no filter"
    );
    let out = Command::new(support::wirelens_bin())
        .args([
            "read",
            "-i",
            "dnstap",
            "--listen",
            "udp:1.2.3.4:5",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "wirelens: invalid listen address \"udp:1.2.3.4:5\": use unix:PATH or tcp:HOST:PORT"
    );
}

#[test]
fn duration_ends_a_quiet_run_with_an_empty_summary() {
    let t0 = Instant::now();
    let out = Command::new(support::wirelens_bin())
        .args([
            "read",
            "-i",
            "dnstap",
            "--listen",
            "tcp:127.0.0.1:0",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(t0.elapsed() < Duration::from_secs(5));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&json["5m"]["dns"], &["wire_packets", "total"]), 0);
    assert_eq!(u(&json["5m"]["packets"], &["events"]), 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wirelens: dnstap: 0 connections, 0 frames, 0 bytes"),
        "{err}"
    );
}

#[test]
fn a_recorded_stream_sent_live_summarizes_like_the_file() {
    let path = support::shared_dir().join("fixtures/pktvisor/fixture.dnstap");
    if !path.exists() {
        support::missing("shared/fixtures/pktvisor/fixture.dnstap");
        return;
    }
    let offline = Command::new(support::wirelens_bin())
        // As many workers as the live run: the slow-transaction threshold is each worker's.
        .args(["read", "-i", "dnstap", "--workers", "2"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(offline.status.success());
    let want: Value = serde_json::from_slice(&offline.stdout).unwrap();

    let dir = TempDir::new("fixture");
    let sock = dir.0.join("dnstap.sock");
    let (mut wl, _) = Wirelens::start(&format!("unix:{}", sock.display()));
    // The file is a unidirectional stream (START, data frames, its last frame cut short):
    // sent as is, in odd pieces.
    let bytes = std::fs::read(&path).unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    for chunk in bytes.chunks(1000) {
        s.write_all(chunk).unwrap();
    }
    drop(s);
    assert!(wl.wait_line(") closed: ").ends_with("closed: truncated"));
    let (got, log) = wl.finish();
    // Periods follow the messages' times live too: the same document, periods included.
    assert_eq!(got, want, "{log:?}");
    // pktvisor's figures for this file: 153 usable messages, 79 queries, 74 replies.
    assert_eq!(u(&got["5m"]["dns"], &["wire_packets", "queries"]), 79);
    assert_eq!(u(&got["5m"]["dns"], &["wire_packets", "replies"]), 74);
    assert!(
        log.iter()
            .any(|l| l.starts_with("wirelens: dnstap: 1 connections, 153 frames, ")),
        "{log:?}"
    );
}
