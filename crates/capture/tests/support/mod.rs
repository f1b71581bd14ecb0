//! Shared helpers of the live-capture tests: prerequisites (root, `ip`, `tcpreplay`; a
//! failure under CI, a note elsewhere), a pair of network namespaces joined by a veth pair
//! that is deleted on drop, entering a namespace from a thread, replaying captures into the
//! veth, and reading capture files. Not a test itself.

#![allow(dead_code)]
// each test file uses a different subset
// Entering a network namespace is the setns(2) system call; there is no safe wrapper in std.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capture::{Frame, Ring};
use wire::capture::{CaptureDecoder, Step};

/// True when running under CI (`CI=true`), where a missing prerequisite must fail the run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Called when a prerequisite is missing: panics under CI, otherwise prints why the test
/// returns early.
pub fn missing(what: &str) {
    if in_ci() {
        panic!("{what} is required when CI=true");
    }
    eprintln!("note: {what} not available; test returns without checking (it fails under CI=true)");
}

/// True when `tool args` runs successfully.
fn runs(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Checks root, `ip` and `tcpreplay`; reports what is missing and returns false if anything is.
pub fn prerequisites() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        missing("root (network namespaces and AF_PACKET sockets)");
        return false;
    }
    if !runs("ip", &["-V"]) {
        missing("ip (Debian package iproute2)");
        return false;
    }
    if !runs("tcpreplay", &["--version"]) {
        missing("tcpreplay (Debian package tcpreplay)");
        return false;
    }
    true
}

/// The pktvisor fixture folder.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/pktvisor")
        .join(name)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two fresh network namespaces, `tx` and `rx`, joined by a veth pair (`wltx` in `tx`,
/// `wlrx` in `rx`), both up, with IPv6 off so the kernel sends nothing of its own (no DAD,
/// router or MLD messages) and no addresses, so nothing answers what is replayed. Dropping
/// it deletes both namespaces, which deletes the veth pair.
pub struct Lab {
    /// Namespace the traffic is sent from.
    pub tx: String,
    /// Namespace the capture runs in.
    pub rx: String,
}

/// Sending end of the veth pair (in `tx`).
pub const TX_IF: &str = "wltx";
/// Receiving end of the veth pair (in `rx`).
pub const RX_IF: &str = "wlrx";

impl Lab {
    /// Creates the namespaces for test `name` (names include the pid, so parallel tests and
    /// concurrent runs never collide).
    pub fn new(name: &str) -> Lab {
        let pid = std::process::id();
        let lab = Lab {
            tx: format!("wlcap-{name}-{pid}-tx"),
            rx: format!("wlcap-{name}-{pid}-rx"),
        };
        // Make the guard first so a failure half-way still cleans up.
        for ns in [&lab.tx, &lab.rx] {
            run(Command::new("ip").args(["netns", "add", ns]));
            run(Command::new("ip").args([
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]));
        }
        run(Command::new("ip").args([
            "link", "add", TX_IF, "netns", &lab.tx, "type", "veth", "peer", "name", RX_IF, "netns",
            &lab.rx,
        ]));
        run(Command::new("ip").args(["-n", &lab.tx, "link", "set", TX_IF, "up"]));
        run(Command::new("ip").args(["-n", &lab.rx, "link", "set", RX_IF, "up"]));
        lab
    }

    /// Runs `f` on a thread that has entered the receiving namespace (sockets opened there
    /// stay in it, and a `Ring` can be handed back to the caller's thread).
    pub fn in_rx<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.rx, f)
    }

    /// Replays `file` into the sending end at top speed and returns how many frames went out.
    pub fn replay(&self, file: &Path) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.tx,
                "tcpreplay",
                "-i",
                TX_IF,
                "--topspeed",
            ])
            .arg(file)
            .output()
            .expect("tcpreplay starts");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "tcpreplay failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |label: &str| -> u64 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {label} in tcpreplay output: {text}"))
        };
        assert_eq!(field("Failed packets:"), 0, "{text}");
        field("Successful packets:")
    }

    /// Interface statistics of the receiving end, for failure messages.
    pub fn rx_link_stats(&self) -> String {
        Command::new("ip")
            .args(["-n", &self.rx, "-s", "link", "show", RX_IF])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.tx, &self.rx] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` on a new thread that first enters network namespace `ns` (created by
/// `ip netns add`, so it is bound at /run/netns/NAME). setns(2) affects only that thread.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: the descriptor is a valid, open namespace file for the whole call;
            // setns only changes the calling thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

/// One frame as captured: its bytes and what the ring said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    /// Captured bytes.
    pub data: Vec<u8>,
    /// Length on the wire.
    pub orig_len: u32,
    /// Receive time.
    pub ts_ns: u64,
    /// Interface index.
    pub ifindex: i32,
    /// Stripped VLAN TCI.
    pub vlan_tci: Option<u16>,
}

impl Got {
    /// Copies a borrowed frame.
    pub fn of(f: &Frame<'_>) -> Got {
        Got {
            data: f.data.to_vec(),
            orig_len: f.orig_len,
            ts_ns: f.ts_ns,
            ifindex: f.ifindex,
            vlan_tci: f.vlan_tci,
        }
    }
}

/// Reads blocks until `want` frames arrived and then `quiet` passes with nothing new (to
/// catch extras), or `limit` passes overall.
pub fn drain(ring: &mut Ring, want: usize, quiet: Duration, limit: Duration) -> Vec<Got> {
    let mut got = Vec::new();
    let start = Instant::now();
    while start.elapsed() < limit {
        let wait = if got.len() >= want {
            quiet
        } else {
            Duration::from_millis(200)
        };
        match ring.next_block(wait).expect("next_block") {
            Some(block) => got.extend(block.frames().map(|f| Got::of(&f))),
            None if got.len() >= want => break,
            None => {}
        }
    }
    got
}

/// Reads several rings in turn (as separate workers would) until `want` frames arrived in
/// total and then `quiet` passes with nothing new on any, or `limit` passes.
pub fn drain_all(
    rings: &mut [Ring],
    want: usize,
    quiet: Duration,
    limit: Duration,
) -> Vec<Vec<Got>> {
    let mut got: Vec<Vec<Got>> = rings.iter().map(|_| Vec::new()).collect();
    let start = Instant::now();
    let mut idle_since = Instant::now();
    while start.elapsed() < limit {
        let mut any = false;
        for (ring, out) in rings.iter_mut().zip(got.iter_mut()) {
            if let Some(block) = ring
                .next_block(Duration::from_millis(10))
                .expect("next_block")
            {
                out.extend(block.frames().map(|f| Got::of(&f)));
                any = true;
            }
        }
        let total: usize = got.iter().map(Vec::len).sum();
        if any {
            idle_since = Instant::now();
        } else if total >= want && idle_since.elapsed() >= quiet {
            break;
        }
    }
    got
}

/// The frames of a capture file as (bytes, length on the wire).
pub fn file_frames(path: &Path) -> Vec<(Vec<u8>, u32)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut dec = CaptureDecoder::new();
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    loop {
        match dec.next(rest).expect("valid capture file") {
            Step::NeedMore => break,
            Step::Skipped { consumed } => rest = &rest[consumed..],
            Step::Record { consumed, record } => {
                out.push((record.data.to_vec(), record.orig_len));
                rest = &rest[consumed..];
            }
        }
    }
    out
}

/// Writes a classic pcap file (Ethernet, microseconds) holding `frames`.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        b.extend_from_slice(&(i as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).expect("write pcap");
}

/// A temporary file path unique to this process and `tag`, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// A path under the system temp folder.
    pub fn new(tag: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!("wlcap-{tag}-{}.pcap", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Index of interface `name` in the calling thread's namespace (0 when absent).
pub fn if_index(name: &str) -> i32 {
    capture::interfaces()
        .expect("list interfaces")
        .into_iter()
        .find(|i| i.name == name)
        .map_or(0, |i| i.index as i32)
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Removes CAP_NET_RAW from the calling thread's effective set (capabilities are per
/// thread on Linux, so the rest of the test process keeps it).
pub fn drop_cap_net_raw_in_this_thread() {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut hdr = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a version-3 header writes exactly two CapData structs.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut hdr, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_RAW);
    // SAFETY: capset reads the header and two CapData structs; pid 0 is this thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw const hdr, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}
