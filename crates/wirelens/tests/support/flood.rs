//! The harness of the flood tests: runs `wirelens read` on a capture generated on the fly and
//! streamed to its stdin (never stored), and returns the JSON document it printed with the peak
//! resident set of the run. Not a test itself; the generators live with their tests.

use std::ffi::OsStr;
use std::io::{BufWriter, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The pcap global header every flood writes: little endian, microsecond timestamps,
/// snap length 65 535, Ethernet.
pub fn pcap_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&65_535u32.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

/// What one flood run gave.
pub struct FloodRun {
    /// The JSON document `wirelens read` printed.
    pub json: Value,
    /// Peak resident set of the binary, KiB (GNU time's `%M` when /usr/bin/time exists,
    /// otherwise the highest `VmHWM` polled from /proc).
    pub peak_rss_kib: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Capture bytes written, global header included.
    pub written: u64,
}

/// Counts the bytes passed through to the binary's stdin.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Runs `wirelens <args> -` with the capture that `records` writes after the global header
/// ([`pcap_header`]) piped to its stdin; panics when the binary fails or prints no JSON.
pub fn run_read<S, F>(args: &[S], records: F) -> FloodRun
where
    S: AsRef<OsStr>,
    F: FnOnce(&mut dyn Write) -> std::io::Result<()> + Send + 'static,
{
    let bin = super::wirelens_bin();
    // /usr/bin/time reports the exact peak of the whole run; polling /proc is the fallback.
    let time_out = std::env::temp_dir().join(format!(
        "wirelens-flood-{}-{:?}.rss",
        std::process::id(),
        std::thread::current().id()
    ));
    let gnu_time = std::path::Path::new("/usr/bin/time");
    let mut cmd = if gnu_time.exists() {
        let mut c = Command::new(gnu_time);
        c.arg("-f").arg("%M").arg("-o").arg(&time_out).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let started = Instant::now();
    let mut child = cmd
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wirelens");
    let pid = child.id();
    let stdin = child.stdin.take().expect("child stdin");
    let writer = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut w = Counting {
            inner: BufWriter::with_capacity(1 << 20, stdin),
            n: 0,
        };
        w.write_all(&pcap_header())?;
        records(&mut w)?;
        w.flush()?;
        Ok(w.n)
    });
    let mut stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let mut stderr = child.stderr.take().expect("child stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // Poll the peak while the child runs (it only grows, so the last reading is the best).
    let mut polled_kib = 0u64;
    let status = loop {
        if let Some(k) = vm_hwm_kib(pid) {
            polled_kib = polled_kib.max(k);
        }
        if let Some(st) = child.try_wait().expect("wait for wirelens") {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let out = reader.join().expect("reader thread").expect("stdout read");
    let err = err_reader.join().expect("stderr thread");
    // Checked before the writer's result: a failing binary closes its stdin early.
    assert!(status.success(), "wirelens failed ({status}): {err}");
    let written = writer
        .join()
        .expect("writer thread")
        .expect("capture written to wirelens");
    let peak_rss_kib = if gnu_time.exists() {
        let text = std::fs::read_to_string(&time_out).expect("time output");
        let _ = std::fs::remove_file(&time_out);
        text.lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no peak RSS in time output: {text}"))
    } else {
        polled_kib
    };
    let json = serde_json::from_str(&out).expect("valid JSON from wirelens read");
    FloodRun {
        json,
        peak_rss_kib,
        elapsed,
        written,
    }
}

/// Peak resident set (KiB) from `/proc/<pid>/status`, if readable.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The integer at a dotted `path` of `v`; panics naming the path when absent or not one.
pub fn u(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur
            .get(k)
            .unwrap_or_else(|| panic!("missing {path} in output"));
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path} is not an integer: {cur}"))
}

/// Appends one Ethernet/IPv4/TCP frame (20-byte headers, window 65 535) as a pcap record.
#[allow(clippy::too_many_arguments)]
pub fn tcp_record(
    out: &mut Vec<u8>,
    ts_us: u64,
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) {
    let len = 14 + 20 + 20 + payload.len();
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&((20 + 20 + payload.len()) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ack.to_be_bytes());
    out.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    out.extend_from_slice(payload);
}
