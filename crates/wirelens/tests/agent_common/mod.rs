//! Helpers for the agent's integration tests: start `wirelens agent` as a real process on a
//! free port, talk HTTP/1.1 to it over a plain socket, stop it with a signal. Not a test itself.

#![allow(dead_code)] // each test crate uses a different subset of these helpers

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The wirelens binary Cargo built for this test run (or `WIRELENS_BIN`).
pub fn bin() -> PathBuf {
    std::env::var_os("WIRELENS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wirelens")))
}

/// A fixture capture of pktvisor's test suite.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/pktvisor")
        .join(name)
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("wirelens-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running agent, killed on drop if the test did not stop it.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    /// Lines the agent printed on stderr after its start line.
    pub stderr: mpsc::Receiver<String>,
    /// The network namespace the agent runs in (its loopback is only reachable from there).
    pub netns: Option<String>,
}

impl Agent {
    /// Starts `wirelens agent -l 127.0.0.1 -p 0 ARGS` and waits for its "serving on" line.
    pub fn start(args: &[&str]) -> Self {
        Self::start_in(None, args)
    }

    /// Starts the agent inside network namespace `netns` (`ip netns exec`), or here.
    pub fn start_in(netns: Option<&str>, args: &[&str]) -> Self {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .arg("agent")
            .args(["-l", "127.0.0.1", "-p", "0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting wirelens agent");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find("serving on ") {
                        let addr = &line[at + "serving on ".len()..];
                        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
                        return Self {
                            child,
                            port,
                            stderr: rx,
                            netns: netns.map(String::from),
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!("agent did not start: {out:?}");
                }
            }
        }
    }

    /// One HTTP request; returns the status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        match &self.netns {
            Some(ns) => request_in_netns(ns, self.port, method, path, headers, body),
            None => request(self.port, method, path, headers, body),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], "")
    }

    /// GET that must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// Sends `sig` (e.g. "TERM", "HUP") to the agent.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the agent to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_line(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?} on the agent's stderr"),
            }
        }
    }

    /// Polls `GET path` until `done` holds for its JSON, or panics after `within`.
    pub fn wait_json(&self, path: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.get(path);
            if status == 200
                && let Ok(v) = serde_json::from_str::<Value>(&body)
                && done(&v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} never satisfied the condition: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client: one request per connection.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the agent");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    // A peer that is not speaking HTTP (a TLS port) may reset: that is status 0.
    let _ = s.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Removes every `period` object (the agent's periods are wall-clock time, a file's are
/// packet time).
pub fn strip_periods(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("period");
            for x in m.values_mut() {
                strip_periods(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_periods),
        _ => {}
    }
}

/// `wirelens read ARGS` output as JSON.
pub fn read_json(args: &[&str]) -> Value {
    let out = Command::new(bin()).arg("read").args(args).output().unwrap();
    assert!(out.status.success(), "read failed: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One HTTP request from inside network namespace `ns`, with curl (`ip netns exec`).
pub fn request_in_netns(
    ns: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if !body.is_empty() {
        cmd.arg("--data-binary").arg(body);
    }
    cmd.arg(format!("http://127.0.0.1:{port}{path}"));
    let out = cmd.output().expect("curl starts");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}
