//! Live HTTP and TLS end to end: real clients (curl, a pipelining python socket, openssl
//! s_client, wrk) talk to a real nginx across a veth pair between two network namespaces the
//! test creates (IPv4 and IPv6), tcpdump captures the client's end, and `wirelens read` of that
//! capture must agree with both the clients' own counts (requests per method, path, status and
//! Host; curl's User-Agent; SNIs and first ALPN sent; versions negotiated; wrk's completed
//! requests; the test certificate's subject, issuer and SANs) and tshark's decode of the same
//! file (methods, paths, status codes, hosts, user agents, SNIs, negotiated versions, ALPN, JA3,
//! JA4's first part, certificate CN, and `http.time` for the latency median).
//!
//! Nothing leaves the two namespaces; both are deleted on drop, and every server and capture
//! process is killed on drop, so a failing assertion cleans up too. Not a benchmark.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CLIENT_IF: &str = "l7c";
const SERVER_IF: &str = "l7s";
const CLIENT_IP: &str = "10.77.0.1";
const SERVER_IP: &str = "10.77.0.2";
const CLIENT_IP6: &str = "fd77::1";
const SERVER_IP6: &str = "fd77::2";
/// The certificate's subject CN; TLS 1.2 sends the certificate in clear, so both wirelens and
/// tshark see it.
const CERT_CN: &str = "wirelens-l7.test";
/// The certificate's DNS subject alternative names.
const CERT_SANS: [&str; 3] = ["tls12.l7.test", "tls13.l7.test", "*.l7.test"];
/// Body of `/ok`: a fixed text whose length nginx puts in Content-Length.
const OK_BODY: &str = "wirelens l7 live test body\n";
/// wrk's connections: at most this many requests are on the wire but not counted complete by
/// wrk when it stops (one in flight per connection).
const WRK_CONNECTIONS: u64 = 4;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip starts");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair, deleted on drop (which deletes the pair).
struct Lab {
    client: String,
    server: String,
}

impl Lab {
    fn new(name: &str) -> Lab {
        let pid = std::process::id();
        let lab = Lab {
            client: format!("wl7-{name}-{pid}-c"),
            server: format!("wl7-{name}-{pid}-s"),
        };
        for ns in [&lab.client, &lab.server] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link",
            "add",
            CLIENT_IF,
            "netns",
            &lab.client,
            "type",
            "veth",
            "peer",
            "name",
            SERVER_IF,
            "netns",
            &lab.server,
        ]);
        let c = format!("{CLIENT_IP}/24");
        let s = format!("{SERVER_IP}/24");
        ip(&["-n", &lab.client, "addr", "add", &c, "dev", CLIENT_IF]);
        ip(&["-n", &lab.server, "addr", "add", &s, "dev", SERVER_IF]);
        // IPv6 without duplicate address detection, usable as soon as the link is up.
        let c6 = format!("{CLIENT_IP6}/64");
        let s6 = format!("{SERVER_IP6}/64");
        ip(&[
            "-n",
            &lab.client,
            "addr",
            "add",
            &c6,
            "dev",
            CLIENT_IF,
            "nodad",
        ]);
        ip(&[
            "-n",
            &lab.server,
            "addr",
            "add",
            &s6,
            "dev",
            SERVER_IF,
            "nodad",
        ]);
        ip(&["-n", &lab.client, "link", "set", CLIENT_IF, "up"]);
        ip(&["-n", &lab.server, "link", "set", SERVER_IF, "up"]);
        lab
    }

    /// A command run inside namespace `ns`, bounded by `timeout` so a hung client cannot hang
    /// the test.
    fn cmd(ns: &str, secs: u32, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "timeout", &secs.to_string(), prog]);
        c
    }

    fn client(&self, secs: u32, prog: &str) -> Command {
        Lab::cmd(&self.client, secs, prog)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A child process killed (and reaped) on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch folder removed on drop; world-readable so nginx workers can read it.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let p = std::env::temp_dir().join(format!("wirelens-l7live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch folder");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn prerequisites() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        support::missing("root (network namespaces)");
        return false;
    }
    let probes: &[(&str, &[&str])] = &[
        ("ip", &["-V"]),
        ("nginx", &["-v"]),
        ("curl", &["--version"]),
        ("openssl", &["version"]),
        ("wrk", &["-v"]),
        ("tcpdump", &["--version"]),
        ("tshark", &["--version"]),
        ("python3", &["--version"]),
        ("timeout", &["--version"]),
    ];
    for (tool, args) in probes {
        // wrk -v prints its version and exits 1; starting at all is what matters.
        let ok = Command::new(tool)
            .args(*args)
            .output()
            .is_ok_and(|o| o.status.success() || *tool == "wrk");
        if !ok {
            support::missing(tool);
            return false;
        }
    }
    true
}

fn run_ok(mut c: Command, what: &str) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{what} starts: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes the self-signed certificate and nginx's configuration; returns the config path.
/// nginx runs as one process (`master_process off`), so killing it on drop leaves no worker
/// behind, even when an assertion fails.
fn configure_nginx(dir: &Path) -> PathBuf {
    let mut req = Command::new("openssl");
    req.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    ])
    .arg("-keyout")
    .arg(dir.join("key.pem"))
    .arg("-out")
    .arg(dir.join("cert.pem"))
    .args(["-subj", &format!("/O=wirelens/CN={CERT_CN}")])
    .args([
        "-addext",
        "subjectAltName=DNS:tls12.l7.test,DNS:tls13.l7.test,DNS:*.l7.test",
    ]);
    run_ok(req, "openssl req");
    let d = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
user root root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/plain;
    keepalive_requests 100000;
    server {{
        listen 80;
        listen [::]:80;
        listen 443 ssl;
        listen [::]:443 ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root {d}/www;
        location = /ok {{ return 200 "{body}"; }}
        location = /moved {{ return 301 /ok; }}
    }}
}}
"#,
        body = OK_BODY.escape_default()
    );
    std::fs::create_dir_all(dir.join("www")).expect("www");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("nginx.conf");
    path
}

/// What the clients themselves say they did.
#[derive(Debug, Default)]
struct Truth {
    methods: BTreeMap<String, u64>,
    /// Status code -> responses the clients received (cleartext only).
    status: BTreeMap<u16, u64>,
    hosts: BTreeMap<String, u64>,
    paths: BTreeMap<String, u64>,
    /// Cleartext requests curl made (each carries curl's User-Agent; the others send none).
    curl_requests: u64,
    snis: BTreeMap<String, u64>,
    /// First ALPN protocol offered per ClientHello: curl built with HTTP/2 offers `h2` first,
    /// s_client offers none.
    alpn: BTreeMap<String, u64>,
    /// ServerHellos by negotiated version ("TLS 1.2").
    versions: BTreeMap<String, u64>,
    /// Requests wrk counted complete (all `GET /ok`, status 200, to `SERVER_IP`).
    wrk: u64,
}

impl Truth {
    fn request(&mut self, method: &str, host: &str, path: &str) {
        *self.paths.entry(path.into()).or_default() += 1;
        *self.methods.entry(method.into()).or_default() += 1;
        *self.hosts.entry(host.into()).or_default() += 1;
    }
}

/// Status codes curl printed with `-w '%{http_code}\n'`, one per URL.
fn curl_codes(out: &Output) -> Vec<u16> {
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("code=").and_then(|c| c.parse().ok()))
        .collect()
}

fn curl_version_output() -> String {
    let out = run_ok(
        {
            let mut c = Command::new("curl");
            c.arg("--version");
            c
        },
        "curl --version",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// curl's default User-Agent, `curl/VERSION`.
fn curl_user_agent() -> String {
    let text = curl_version_output();
    let version = text.split_whitespace().nth(1).expect("curl version");
    format!("curl/{version}")
}

/// Runs every client inside the client namespace, tallying what each says it did.
fn drive_clients(lab: &Lab, dir: &Path) -> Truth {
    let mut t = Truth::default();
    let base = |host: &str, port: u16| {
        let addr = if host.starts_with("v6") {
            format!("[{SERVER_IP6}]")
        } else {
            SERVER_IP.to_string()
        };
        format!("{host}:{port}:{addr}")
    };

    // Cleartext keep-alive: several URLs in one curl call reuse one connection. Hosts named
    // `v6...` are reached over IPv6.
    let plan: &[(&str, &str, &[&str], &[&str])] = &[
        ("GET", "v6.l7.test", &[], &["/ok", "/missing"]),
        (
            "GET",
            "a.l7.test",
            &[],
            &["/ok", "/moved", "/missing", "/ok"],
        ),
        ("HEAD", "b.l7.test", &["--head"], &["/ok", "/missing"]),
        (
            "POST",
            "c.l7.test",
            &["--data", "k=v"],
            &["/ok", "/ok", "/moved"],
        ),
    ];
    for (method, host, extra, paths) in plan {
        let mut c = lab.client(15, "curl");
        c.args([
            "-s",
            "-w",
            "code=%{http_code}\\n",
            "--resolve",
            &base(host, 80),
        ])
        .args(*extra);
        for p in *paths {
            c.args(["-o", "/dev/null", &format!("http://{host}{p}")]);
        }
        let out = run_ok(c, "curl");
        let codes = curl_codes(&out);
        assert_eq!(codes.len(), paths.len(), "curl {method} printed {codes:?}");
        for (code, path) in codes.into_iter().zip(paths.iter()) {
            t.request(method, host, path);
            t.curl_requests += 1;
            *t.status.entry(code).or_default() += 1;
        }
    }

    let curl_has_http2 = curl_version_output().contains("HTTP2");
    // HTTPS with one handshake per curl call: requests are encrypted, only the handshake counts.
    for (flags, host, version) in [
        (
            &["--tlsv1.2", "--tls-max", "1.2"][..],
            "tls12.l7.test",
            "TLS 1.2",
        ),
        (&["--tlsv1.3"][..], "tls13.l7.test", "TLS 1.3"),
        (&["--tlsv1.3"][..], "v6tls.l7.test", "TLS 1.3"),
    ] {
        let mut c = lab.client(15, "curl");
        c.args([
            "-s",
            "-k",
            "-w",
            "code=%{http_code}\\n",
            "--resolve",
            &base(host, 443),
        ])
        .args(flags);
        for p in ["/ok", "/missing"] {
            c.args(["-o", "/dev/null", &format!("https://{host}{p}")]);
        }
        let codes = curl_codes(&run_ok(c, "curl https"));
        assert_eq!(codes, [200, 404], "curl {host}");
        *t.snis.entry(host.into()).or_default() += 1;
        if curl_has_http2 {
            *t.alpn.entry("h2".into()).or_default() += 1;
        }
        *t.versions.entry(version.into()).or_default() += 1;
    }

    // openssl s_client: one handshake each, distinct SNIs, then EOF on stdin closes it.
    for (flag, sni, version) in [
        ("-tls1_2", "s12.l7.test", "TLS 1.2"),
        ("-tls1_3", "s13.l7.test", "TLS 1.3"),
    ] {
        let mut c = lab.client(15, "openssl");
        c.args(["s_client", "-servername", sni, "-connect"])
            .arg(format!("{SERVER_IP}:443"))
            .arg(flag)
            .stdin(Stdio::null());
        let out = run_ok(c, "openssl s_client");
        let text = String::from_utf8_lossy(&out.stdout);
        let want = if version == "TLS 1.2" {
            "TLSv1.2"
        } else {
            "TLSv1.3"
        };
        assert!(text.contains(want), "s_client {flag}: {text}");
        *t.snis.entry(sni.into()).or_default() += 1;
        *t.versions.entry(version.into()).or_default() += 1;
    }

    // HTTP/1.1 pipelining: three requests in one write, the last closes the connection.
    let script = format!(
        r#"
import socket
s = socket.create_connection(("{SERVER_IP}", 80))
req = b""
for path, last in (("/ok", False), ("/missing", False), ("/moved", True)):
    req += b"GET " + path.encode() + b" HTTP/1.1\r\nHost: pipe.l7.test\r\n"
    req += b"Connection: close\r\n\r\n" if last else b"\r\n"
s.sendall(req)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for line in data.splitlines():
    if line.startswith(b"HTTP/1.1 "):
        print("code=" + line.split()[1].decode())
"#
    );
    let mut c = lab.client(15, "python3");
    c.args(["-c", &script]);
    let codes = curl_codes(&run_ok(c, "python3 pipelining"));
    assert_eq!(codes, [200, 404, 301], "pipelined responses");
    for (code, path) in codes.into_iter().zip(["/ok", "/missing", "/moved"]) {
        t.request("GET", "pipe.l7.test", path);
        *t.status.entry(code).or_default() += 1;
    }

    // wrk: keep-alive load on one URL; it prints how many requests completed. Its script waits
    // a millisecond between a connection's requests, so the load (a few thousand requests a
    // second) stays within what tcpdump writes without kernel drops on two busy cores.
    let script = dir.join("pace.lua");
    std::fs::write(&script, "function delay()\n  return 1\nend\n").expect("wrk script");
    let mut c = lab.client(20, "wrk");
    c.args(["-t1", &format!("-c{WRK_CONNECTIONS}"), "-d2s", "-s"])
        .arg(&script)
        .arg(format!("http://{SERVER_IP}/ok"));
    let out = run_ok(c, "wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    t.wrk = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk output: {text}"));
    assert!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    assert!(t.wrk > 0, "wrk completed nothing: {text}");
    t
}

/// tshark's decode of the capture.
#[derive(Debug, Default)]
struct Tshark {
    methods: BTreeMap<String, u64>,
    status: BTreeMap<u16, u64>,
    hosts: BTreeMap<String, u64>,
    client_hellos: u64,
    server_hellos: u64,
    snis: BTreeMap<String, u64>,
    versions: BTreeMap<String, u64>,
    ja3: BTreeMap<String, u64>,
    cert_cn: BTreeMap<String, u64>,
    paths: BTreeMap<String, u64>,
    user_agents: BTreeMap<String, u64>,
    /// First ALPN protocol each ClientHello offers.
    alpn: BTreeMap<String, u64>,
    /// The first part of each ClientHello's JA4 (`t13d0412h2`), computed from tshark's fields.
    ja4_a: BTreeMap<String, u64>,
    /// `http.time` of every response (request to response), in microseconds, sorted.
    latency_us: Vec<u64>,
}

/// A number tshark prints in decimal or as `0x` hex.
fn tshark_num(v: &str) -> Option<u32> {
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// GREASE values (RFC 8701) are left out of JA4's counts.
fn grease(v: u32) -> bool {
    v & 0x0f0f == 0x0a0a
}

/// JA4's first part (FoxIO's definition): protocol, highest offered version, SNI or not,
/// cipher and extension counts without GREASE, first and last character of the first ALPN.
fn ja4_a(
    versions: &[&str],
    legacy: &str,
    sni: bool,
    ciphers: &[&str],
    exts: &[&str],
    alpn: Option<&str>,
) -> String {
    let best = versions
        .iter()
        .filter_map(|v| tshark_num(v))
        .filter(|v| !grease(*v))
        .max()
        .or_else(|| tshark_num(legacy))
        .unwrap_or(0);
    let version = match best {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        _ => "00",
    };
    let count = |l: &[&str]| {
        l.iter()
            .filter_map(|v| tshark_num(v))
            .filter(|v| !grease(*v))
            .count()
            .min(99)
    };
    let alpn = alpn
        .and_then(|a| Some(format!("{}{}", a.chars().next()?, a.chars().last()?)))
        .unwrap_or_else(|| "00".into());
    format!(
        "t{version}{}{:02}{:02}{alpn}",
        if sni { 'd' } else { 'i' },
        count(ciphers),
        count(exts)
    )
}

fn version_name(hex: &str) -> String {
    match hex {
        "0x0304" => "TLS 1.3".into(),
        "0x0303" => "TLS 1.2".into(),
        "0x0302" => "TLS 1.1".into(),
        "0x0301" => "TLS 1.0".into(),
        other => other.into(),
    }
}

fn tshark(file: &Path) -> Tshark {
    const FIELDS: [&str; 16] = [
        "http.request.method",
        "http.host",
        "http.response.code",
        "tls.handshake.type",
        "tls.handshake.extensions_server_name",
        "tls.handshake.version",
        "tls.handshake.extensions.supported_version",
        "tls.handshake.ja3",
        "x509sat.uTF8String",
        "x509sat.printableString",
        "http.request.uri",
        "http.user_agent",
        "tls.handshake.extensions_alpn_str",
        "tls.handshake.ciphersuite",
        "tls.handshake.extension.type",
        "http.time",
    ];
    let mut c = Command::new("tshark");
    c.args(["-n", "-o", "http.desegment_body:FALSE", "-r"])
        .arg(file)
        .args(["-Y", "http.request || http.response || tls.handshake"])
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=;"]);
    for f in FIELDS {
        c.args(["-e", f]);
    }
    let out = run_ok(c, "tshark");
    let mut t = Tshark::default();
    let bump = |m: &mut BTreeMap<String, u64>, k: &str| *m.entry(k.into()).or_default() += 1;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let list = |i: usize| -> Vec<&str> {
            cols.get(i)
                .filter(|c| !c.is_empty())
                .map(|c| c.split(';').collect())
                .unwrap_or_default()
        };
        for m in list(0) {
            bump(&mut t.methods, m);
        }
        for h in list(1) {
            bump(&mut t.hosts, h);
        }
        for p in list(10) {
            bump(&mut t.paths, p);
        }
        for u in list(11) {
            bump(&mut t.user_agents, u);
        }
        for secs in list(15) {
            let secs: f64 = secs.parse().expect("http.time");
            t.latency_us.push((secs * 1e6).round() as u64);
        }
        for s in list(2) {
            *t.status.entry(s.parse().expect("status code")).or_default() += 1;
        }
        let types = list(3);
        if types.contains(&"1") {
            t.client_hellos += 1;
            for s in list(4) {
                bump(&mut t.snis, s);
            }
            let alpn = list(12).first().copied();
            if let Some(a) = alpn {
                bump(&mut t.alpn, a);
            }
            let a = ja4_a(
                &list(6),
                list(5).first().copied().unwrap_or(""),
                !list(4).is_empty(),
                &list(13),
                &list(14),
                alpn,
            );
            bump(&mut t.ja4_a, &a);
            for j in list(7) {
                bump(&mut t.ja3, j);
            }
        }
        if types.contains(&"2") {
            t.server_hellos += 1;
            // A ServerHello's supported_versions extension overrides its legacy version.
            let v = list(6)
                .first()
                .copied()
                .or_else(|| list(5).first().copied())
                .unwrap_or("none");
            bump(&mut t.versions, &version_name(v));
        }
        if types.contains(&"11") {
            // The leaf certificate's subject is the last but one name before the issuer's
            // repeat; with one self-signed certificate subject and issuer are the same, so
            // count the CN values once per certificate message.
            let mut names = list(8);
            names.extend(list(9));
            if names.contains(&CERT_CN) {
                bump(&mut t.cert_cn, CERT_CN);
            }
        }
    }
    t.latency_us.sort_unstable();
    t
}

/// A top list (`[{name, estimate}]`) as a map.
fn top(v: &Value, key: &str) -> BTreeMap<String, u64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or_default().to_string(),
                i["estimate"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn num(v: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_u64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v}"))
}

/// Captures the client's veth end while the clients run; returns the truth and tcpdump's
/// kernel-drop count.
fn capture(lab: &Lab, file: &Path, dir: &Path) -> (Truth, String) {
    let mut tcpdump = Command::new("ip");
    tcpdump
        .args(["netns", "exec", &lab.client, "tcpdump", "-i", CLIENT_IF])
        .args(["-n", "--immediate-mode", "-B", "65536", "-s", "0", "-w"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Guard(tcpdump.spawn().expect("tcpdump starts"));
    // tcpdump says "listening on" once its socket is bound: only then can nothing be missed.
    let mut err = BufReader::new(child.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).expect("tcpdump stderr");
        assert!(n > 0, "tcpdump exited before listening");
        if line.contains("listening on") {
            break;
        }
    }
    let truth = drive_clients(lab, dir);
    // Let the last FINs and ACKs cross before the capture stops (immediate mode hands every
    // packet to tcpdump at once, so none waits in a half-filled ring block at SIGINT).
    std::thread::sleep(Duration::from_millis(500));
    run_ok(
        {
            let mut k = Command::new("kill");
            k.args(["-INT", &child.0.id().to_string()]);
            k
        },
        "kill -INT tcpdump",
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).expect("tcpdump stderr");
    let status = child.0.wait().expect("tcpdump exits");
    assert!(status.success(), "tcpdump: {status:?} {rest}");
    (truth, rest)
}

fn start_nginx(lab: &Lab, conf: &Path) -> Guard {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.server, "nginx", "-c"])
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let nginx = Guard(c.spawn().expect("nginx starts"));
    // Ready when it answers on the server namespace's own loopback (not on the veth, so the
    // probe stays out of the capture).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = Lab::cmd(&lab.server, 2, "curl")
            .args(["-s", "-o", "/dev/null", "http://127.0.0.1/ok"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break nginx;
        }
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn http_and_tls_clients_agree_with_wirelens_and_tshark() {
    if !prerequisites() {
        return;
    }
    let started = Instant::now();
    let scratch = Scratch::new();
    let conf = configure_nginx(&scratch.0);
    let lab = Lab::new("live");
    let nginx = start_nginx(&lab, &conf);
    let file = scratch.0.join("l7.pcap");
    let (truth, tcpdump_report) = capture(&lab, &file, &scratch.0);
    drop(nginx);
    // Every packet the filter received must be in the file (tcpdump counts packets still
    // queued in its ring when it stops as received but not captured).
    let count = |what: &str| -> u64 {
        tcpdump_report
            .lines()
            .find_map(|l| l.strip_suffix(what))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no '{what}' in tcpdump's report: {tcpdump_report}"))
    };
    assert_eq!(
        count(" packets dropped by kernel"),
        0,
        "tcpdump: {tcpdump_report}"
    );
    assert_eq!(
        count(" packets captured"),
        count(" packets received by filter"),
        "tcpdump: {tcpdump_report}"
    );

    let out = run_ok(
        {
            let mut c = Command::new(support::wirelens_bin());
            c.args(["read", "--periods", "1", "--no-progress"])
                .arg(&file);
            c
        },
        "wirelens read",
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("wirelens json");
    let http = &doc["1m"]["http"];
    let tls = &doc["1m"]["tls"];
    // The `v6` clients went over IPv6 (plus the kernel's own neighbour discovery).
    assert!(num(&doc["1m"]["packets"], &["ipv6"]) > 0, "no IPv6 packets");
    let ts = tshark(&file);
    eprintln!("truth: {truth:?}\ntshark: {ts:?}\nhttp: {http}\ntls: {tls}");

    // --- HTTP, against tshark: every request and response on the wire.
    let w_methods: BTreeMap<String, u64> = ["get", "head", "post", "put", "delete", "other"]
        .iter()
        .map(|m| (m.to_uppercase(), num(http, &["methods", m])))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(w_methods, ts.methods, "methods: wirelens vs tshark");
    let ts_requests: u64 = ts.methods.values().sum();
    let ts_responses: u64 = ts.status.values().sum();
    assert_eq!(num(http, &["requests"]), ts_requests, "requests vs tshark");
    assert_eq!(
        num(http, &["responses"]),
        ts_responses,
        "responses vs tshark"
    );
    let mut ts_classes: BTreeMap<String, u64> = BTreeMap::new();
    for (code, n) in &ts.status {
        *ts_classes.entry(format!("{}xx", code / 100)).or_default() += n;
    }
    for class in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
        assert_eq!(
            num(http, &["status", class]),
            ts_classes.get(class).copied().unwrap_or(0),
            "status {class} vs tshark"
        );
    }
    assert_eq!(top(http, "top_hosts"), ts.hosts, "hosts vs tshark");
    assert_eq!(top(http, "top_paths"), ts.paths, "paths vs tshark");
    assert_eq!(
        top(http, "top_user_agents"),
        ts.user_agents,
        "user agents vs tshark"
    );
    let ts_codes: BTreeMap<String, u64> =
        ts.status.iter().map(|(c, n)| (c.to_string(), *n)).collect();
    assert_eq!(top(http, "top_status"), ts_codes, "status codes vs tshark");

    // Latency (request head to response head): a quantile sketch's median must fall between
    // tshark's exact 20th and 80th percentiles of `http.time` over the same responses.
    let lat = &ts.latency_us;
    // tshark gives no http.time to pipelined responses after the first (it pairs them with no
    // request), so up to two of the three pipelined responses lack one.
    assert!(
        (ts_responses - 2..=ts_responses).contains(&(lat.len() as u64)),
        "tshark http.time for {} of {ts_responses} responses",
        lat.len()
    );
    let pct = |q: usize| lat[(lat.len() - 1) * q / 100];
    let p50 = num(http, &["latency", "p50"]);
    assert!(
        (pct(20)..=pct(80)).contains(&p50),
        "latency p50 {p50} us outside tshark's p20..p80 {}..{} us",
        pct(20),
        pct(80)
    );
    assert!(
        num(http, &["latency", "p99"]) <= lat[lat.len() - 1] + 1,
        "latency p99 above tshark's max"
    );

    // --- HTTP, against the clients: the scripted requests exactly, wrk within its in-flight
    // margin (wrk does not count requests still unanswered when it stops).
    let wrk_wire = ts.hosts.get(SERVER_IP).copied().unwrap_or(0);
    assert!(
        (truth.wrk..=truth.wrk + WRK_CONNECTIONS).contains(&wrk_wire),
        "wrk completed {} requests, {wrk_wire} on the wire",
        truth.wrk
    );
    let mut want_hosts = truth.hosts.clone();
    want_hosts.insert(SERVER_IP.into(), wrk_wire);
    assert_eq!(top(http, "top_hosts"), want_hosts, "hosts vs clients");
    let mut want_methods = truth.methods.clone();
    *want_methods.entry("GET".into()).or_default() += wrk_wire;
    assert_eq!(w_methods, want_methods, "methods vs clients");
    let mut want_paths = truth.paths.clone();
    *want_paths.entry("/ok".into()).or_default() += wrk_wire;
    assert_eq!(top(http, "top_paths"), want_paths, "paths vs clients");
    assert_eq!(
        top(http, "top_user_agents"),
        BTreeMap::from([(curl_user_agent(), truth.curl_requests)]),
        "user agents vs clients"
    );
    for (class, lo) in [(2u16, 200u16), (3, 300), (4, 400)] {
        let scripted: u64 = truth
            .status
            .iter()
            .filter(|(c, _)| (lo..lo + 100).contains(*c))
            .map(|(_, n)| n)
            .sum();
        let wrk = if class == 2 { wrk_wire } else { 0 };
        let got = num(http, &["status", &format!("{class}xx")]);
        // wrk's last in-flight requests may or may not have had their answer captured.
        assert!(
            got >= scripted + if class == 2 { truth.wrk } else { 0 } && got <= scripted + wrk,
            "status {class}xx: wirelens {got}, clients {scripted} + wrk {wrk}"
        );
    }

    // --- TLS, against the clients and tshark.
    let n_handshakes: u64 = truth.snis.values().sum();
    assert_eq!(num(tls, &["client_hellos"]), n_handshakes, "client hellos");
    assert_eq!(ts.client_hellos, n_handshakes, "tshark client hellos");
    assert_eq!(
        num(tls, &["server_hellos"]),
        ts.server_hellos,
        "server hellos"
    );
    assert_eq!(top(tls, "top_sni"), truth.snis, "SNIs vs clients");
    assert_eq!(ts.snis, truth.snis, "tshark SNIs vs clients");
    assert_eq!(
        top(tls, "top_version_negotiated"),
        truth.versions,
        "negotiated versions vs clients"
    );
    assert_eq!(ts.versions, truth.versions, "tshark versions vs clients");
    assert_eq!(top(tls, "top_ja3"), ts.ja3, "JA3 vs tshark");
    assert_eq!(top(tls, "top_alpn"), ts.alpn, "ALPN vs tshark");
    assert_eq!(top(tls, "top_alpn"), truth.alpn, "ALPN vs clients");
    // tshark 4.0 has no JA4 field: its first part is rebuilt from tshark's hello fields.
    let mut ja4_a: BTreeMap<String, u64> = BTreeMap::new();
    for (name, n) in top(tls, "top_ja4") {
        let a = name.split('_').next().unwrap_or_default().to_string();
        *ja4_a.entry(a).or_default() += n;
    }
    assert_eq!(ja4_a, ts.ja4_a, "JA4 first part vs tshark");
    // TLS 1.3 encrypts the certificate: only the TLS 1.2 handshakes show it.
    let tls12 = truth.versions.get("TLS 1.2").copied().unwrap_or(0);
    assert_eq!(ts.cert_cn.get(CERT_CN).copied(), Some(tls12), "tshark CN");
    assert_eq!(
        top(tls, "top_cert_subject"),
        BTreeMap::from([(CERT_CN.to_string(), tls12)]),
        "certificate subjects"
    );
    // Self-signed: the issuer is the subject.
    assert_eq!(
        top(tls, "top_cert_issuer"),
        BTreeMap::from([(CERT_CN.to_string(), tls12)]),
        "certificate issuers"
    );
    let sans: BTreeMap<String, u64> = CERT_SANS.iter().map(|s| (s.to_string(), tls12)).collect();
    assert_eq!(top(tls, "top_cert_san"), sans, "certificate SANs");

    eprintln!(
        "l7 live: {} cleartext requests ({} from wrk), {} TLS handshakes, latency p50 {p50} us \
         (tshark median {} us), in {:.1} s",
        ts_requests,
        wrk_wire,
        n_handshakes,
        pct(50),
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(90), "test too slow");
}
