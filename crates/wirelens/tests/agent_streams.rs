//! The agent's stream taps as real processes: a `dnstap` tap fed over its unix socket (a
//! recorded stream, and unbound when installed) and `flow` taps fed NetFlow v9 and sFlow
//! datagrams over UDP serve what `wirelens read` prints for the same input.

mod agent_common;
mod support;

use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use agent_common::{Agent, TempDir, fixture, read_json};
use serde_json::Value;

fn policy_doc(tap: &str, modules: &str) -> String {
    format!(
        "  policies:\n    default:\n      kind: collection\n      input:\n        tap: {tap}\n      handlers:\n        modules:\n{modules}"
    )
}

const DNS_MODULES: &str =
    "          net:\n            type: net\n          dns:\n            type: dns\n";
const FLOW_MODULES: &str = "          flow:\n            type: flow\n";

/// Waits until the unix socket exists (the agent bound it).
fn wait_path(p: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !p.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn input_of(agent: &Agent) -> Value {
    let v = agent.get_json("/api/v1/policies/default");
    let inputs = v["default"]["input"].as_object().unwrap().clone();
    inputs.values().next().unwrap()["input"].clone()
}

#[test]
fn dnstap_socket_tap_serves_what_read_prints() {
    let path = fixture("fixture.dnstap");
    let dir = TempDir::new("agent-streams-dnstap");
    let sock = dir.0.join("dnstap.sock");
    let cfg = dir.write(
        "agent.yaml",
        &format!(
            "visor:\n  taps:\n    tap:\n      input_type: dnstap\n      config:\n        socket: \"{}\"\n{}",
            sock.display(),
            policy_doc("tap", DNS_MODULES)
        ),
    );
    let agent = Agent::start(&["--config", &cfg.display().to_string(), "--workers", "2"]);
    wait_path(&sock);
    let bytes = std::fs::read(&path).unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    for chunk in bytes.chunks(1000) {
        s.write_all(chunk).unwrap();
    }
    drop(s);
    // Every frame the listener took reached the workers, and the writer is gone.
    agent.wait_json("/api/v1/policies/default", Duration::from_secs(20), |v| {
        let Some(i) = v["default"]["input"]
            .as_object()
            .and_then(|m| m.values().next())
        else {
            return false;
        };
        let l = &i["input"]["listener"];
        l["connections"] == 1
            && l["active_connections"] == 0
            && l["frames"] == i["input"]["packets"]
    });
    let input = input_of(&agent);
    assert_eq!(input["listener"]["frames"], 153, "{input}");
    assert_eq!(input["kernel_drops"], 0);

    let pfile = dir.write(
        "p.yaml",
        &format!("visor:\n{}", policy_doc("tap", DNS_MODULES)),
    );
    let want = read_json(&[
        "-i",
        "dnstap",
        "--workers",
        "2",
        "--policy",
        &pfile.display().to_string(),
        &path.display().to_string(),
    ]);
    let got = agent.get_json("/api/v1/policies/default/metrics/bucket/0");
    let wp = |v: &Value| v["default"]["default-tap-dns"]["dns"]["wire_packets"].clone();
    assert_eq!(wp(&got), wp(&want), "{got}");
    assert_eq!(wp(&got)["queries"], 79);
    assert_eq!(wp(&got)["replies"], 74);
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn flow_agent(dir: &TempDir, flow_type: &str, port: u16) -> Agent {
    let cfg = dir.write(
        "agent.yaml",
        &format!(
            "visor:\n  taps:\n    t:\n      input_type: flow\n      config:\n        flow_type: {flow_type}\n        bind: 127.0.0.1\n        port: {port}\n{}",
            policy_doc("t", FLOW_MODULES)
        ),
    );
    Agent::start(&["--config", &cfg.display().to_string(), "--workers", "2"])
}

/// Sends every export datagram of `file` to the agent, in order, paced so none is lost. Each
/// exporter of the capture sends from its own loopback address (127.0.0.1, 127.0.0.2, ...,
/// in order of appearance), so the agent tells them apart as `read` does; returns the
/// capture's exporters in that order and the number of datagrams.
fn send_datagrams(file: &Path, port: u16) -> (Vec<String>, u64) {
    let mut f = inputs::flow_file::FlowFile::open(file).unwrap();
    let mut exporters: Vec<(String, UdpSocket)> = Vec::new();
    let mut n = 0;
    while let Some(d) = f.next_datagram().unwrap() {
        let name = d.exporter.map(|a| a.to_string()).unwrap_or_default();
        let at = match exporters.iter().position(|(e, _)| *e == name) {
            Some(i) => i,
            None => {
                let local = format!("127.0.0.{}:0", exporters.len() + 1);
                exporters.push((name, UdpSocket::bind(local).unwrap()));
                exporters.len() - 1
            }
        };
        exporters[at]
            .1
            .send_to(d.payload, ("127.0.0.1", port))
            .unwrap();
        n += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    (exporters.into_iter().map(|(e, _)| e).collect(), n)
}

/// The flow handler's devices.
fn devices(v: &Value) -> serde_json::Map<String, Value> {
    // Absent until the first datagram is counted.
    v["default"]["default-t-flow"]["flow"]["devices"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn flow_session(tag: &str, flow_type: &str, file: &str) {
    let dir = TempDir::new(tag);
    let port = free_udp_port();
    let agent = flow_agent(&dir, flow_type, port);
    let path = fixture(file);
    let (exporters, sent) = send_datagrams(&path, port);
    assert!(sent > 0);
    agent.wait_json("/api/v1/policies/default", Duration::from_secs(20), |v| {
        v["default"]["input"]
            .as_object()
            .and_then(|m| m.values().next())
            .is_some_and(|i| i["input"]["packets"] == sent)
    });
    let input = input_of(&agent);
    assert_eq!(input["listener"]["datagrams"], sent, "{input}");
    let pfile = dir.write(
        "p.yaml",
        &format!("visor:\n{}", policy_doc("t", FLOW_MODULES)),
    );
    let want = read_json(&[
        "-i",
        flow_type,
        "--workers",
        "2",
        "--policy",
        &pfile.display().to_string(),
        &path.display().to_string(),
    ]);
    let got = agent.get_json("/api/v1/policies/default/metrics/bucket/0");
    let (g, w) = (devices(&got), devices(&want));
    assert_eq!(g.len(), exporters.len(), "{got}");
    assert_eq!(w.len(), exporters.len(), "{want}");
    let mut datagrams = 0;
    if flow_type == "sflow" {
        // sFlow names its agents inside the datagrams: the same names live.
        assert_eq!(g, w);
    }
    for (i, e) in exporters
        .iter()
        .enumerate()
        .filter(|_| flow_type != "sflow")
    {
        // NetFlow devices are the UDP senders.
        let live = &g[&format!("127.0.0.{}", i + 1)];
        assert_eq!(live, &w[e], "exporter {e}");
        datagrams += live["exporter_datagrams"].as_u64().unwrap_or(0);
    }
    // NetFlow devices count their datagrams: every one sent was decoded.
    if flow_type == "netflow" {
        assert_eq!(datagrams, sent);
    }
}

#[test]
fn netflow_tap_serves_what_read_prints() {
    flow_session("agent-streams-nf9", "netflow", "nf9.pcap");
}

#[test]
fn sflow_tap_serves_what_read_prints() {
    flow_session("agent-streams-sflow", "sflow", "sflow_keyed.pcap");
}

/// A child process killed on drop (a test that fails does not leave it running).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// softflowd reads a capture and exports its flows as NetFlow v9 into the agent live: the
/// flow handler counts every packet of the capture.
#[test]
fn softflowd_exports_into_a_flow_tap() {
    // softflowd has no --version: its presence is whether it starts at all.
    if std::process::Command::new("softflowd")
        .arg("-h")
        .output()
        .is_err()
    {
        support::missing("softflowd");
        return;
    }
    let dir = TempDir::new("agent-streams-softflowd");
    let port = free_udp_port();
    let agent = flow_agent(&dir, "netflow", port);
    let pcap = fixture("dns_ipv4_udp.pcap");
    let out = std::process::Command::new("softflowd")
        // `-c none`: no control socket (softflowd 1.1 would otherwise wait on it at the end).
        .args([
            "-d",
            "-c",
            "none",
            "-v",
            "9",
            "-n",
            &format!("127.0.0.1:{port}"),
            "-r",
        ])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Its flows end with the file; every packet of them reaches the handler.
    let packets = |v: &Value| -> u64 {
        devices(v)
            .values()
            .filter_map(|d| d["interfaces"].as_object())
            .flat_map(|i| i.values())
            .filter_map(|i| i["in_packets"].as_u64())
            .sum()
    };
    let got = agent.wait_json(
        "/api/v1/policies/default/metrics/bucket/0",
        Duration::from_secs(20),
        |v| packets(v) >= 140,
    );
    assert_eq!(packets(&got), 140, "{got}");
    let d = devices(&got);
    assert_eq!(d.len(), 1, "{got}");
    let dev = &d["127.0.0.1"];
    assert_eq!(dev["exporter_malformed"], 0);
    assert_eq!(dev["exporter_missing_templates"], 0);
}

fn unbound_with_dnstap() -> bool {
    std::process::Command::new("unbound")
        .arg("-V")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--enable-dnstap"))
}

/// unbound answering a local zone on `port`, logging client queries and responses into the
/// agent's dnstap socket `sock`.
fn start_unbound(dir: &Path, port: u16, sock: &Path) -> Child {
    let conf = dir.join("unbound.conf");
    let d = dir.display();
    let s = sock.display();
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
    dnstap-socket-path: \"{s}\"
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("unbound.log")).unwrap();
    Child(
        std::process::Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// A DNS query for `name` (type A) with id `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// unbound writes dnstap into the agent's socket: N queries → N queries and N replies.
#[test]
fn unbound_writes_into_a_dnstap_tap() {
    const N: u64 = 10;
    if !unbound_with_dnstap() {
        support::missing("unbound built with dnstap");
        return;
    }
    let dir = TempDir::new("agent-streams-unbound");
    let sock = dir.0.join("dnstap.sock");
    let cfg = dir.write(
        "agent.yaml",
        &format!(
            "visor:\n  taps:\n    tap:\n      input_type: dnstap\n      config:\n        socket: \"{}\"\n{}",
            sock.display(),
            policy_doc("tap", DNS_MODULES)
        ),
    );
    let agent = Agent::start(&["--config", &cfg.display().to_string(), "--workers", "2"]);
    wait_path(&sock);
    let port = free_udp_port();
    let _server = start_unbound(&dir.0, port, &sock);
    // unbound connects its dnstap writer once it runs: queries before would not be logged.
    agent.wait_json("/api/v1/policies/default", Duration::from_secs(20), |v| {
        v["default"]["input"]
            .as_object()
            .and_then(|m| m.values().next())
            .is_some_and(|i| i["input"]["listener"]["active_connections"] == 1)
    });
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    for i in 0..N {
        s.send_to(
            &query(i as u16 + 1, "www.example.test"),
            ("127.0.0.1", port),
        )
        .unwrap();
        s.recv_from(&mut buf).unwrap();
    }
    let wp = |v: &Value| v["default"]["default-tap-dns"]["dns"]["wire_packets"].clone();
    let got = agent.wait_json(
        "/api/v1/policies/default/metrics/bucket/0",
        Duration::from_secs(20),
        |v| wp(v)["replies"] == N && wp(v)["queries"] == N,
    );
    assert_eq!(wp(&got)["total"], 2 * N, "{got}");
}
