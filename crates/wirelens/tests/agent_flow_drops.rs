//! The agent's flow tap under a burst larger than its socket's receive buffer (`rcvbuf`):
//! every datagram sent is either decoded or counted as a drop (the input's `socket_drops` and
//! `kernel_drops`, the flow handler's `os_drops`, Prometheus `flow_os_drops`). Also: taps
//! without a policy collect nothing and say so, and the README's stream-tap example runs.

mod agent_common;

use std::net::UdpSocket;
use std::time::Duration;

use agent_common::{Agent, TempDir};
use serde_json::Value;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn input_of(v: &Value) -> Value {
    v["default"]["input"]
        .as_object()
        .and_then(|m| m.values().next())
        .map(|i| i["input"].clone())
        .unwrap_or(Value::Null)
}

/// The flow handler's `os_drops` and `packet_errors` summed over the live and the previous
/// bucket (the test may straddle a period boundary).
fn flow_counts(agent: &Agent) -> (u64, u64) {
    let mut sum = (0, 0);
    for n in [0, 1] {
        let (status, body) = agent.get(&format!("/api/v1/policies/default/metrics/bucket/{n}"));
        if status != 200 {
            continue;
        }
        let v: Value = serde_json::from_str(&body).unwrap();
        let f = &v["default"]["default-t-flow"]["flow"];
        sum.0 += f["os_drops"].as_u64().unwrap();
        sum.1 += f["packet_errors"].as_u64().unwrap();
    }
    sum
}

#[test]
fn flow_tap_burst_is_decoded_or_counted_as_dropped() {
    let dir = TempDir::new("agent-flow-drops");
    let port = free_udp_port();
    let cfg = dir.write(
        "agent.yaml",
        &format!(
            "visor:\n  taps:\n    t:\n      input_type: flow\n      config:\n        flow_type: netflow\n        bind: 127.0.0.1\n        port: {port}\n        rcvbuf: 4096\n  policies:\n    default:\n      kind: collection\n      input:\n        tap: t\n      handlers:\n        modules:\n          flow:\n            type: flow\n"
        ),
    );
    let agent = Agent::start(&["--config", &cfg.display().to_string(), "--workers", "1"]);
    let input = input_of(&agent.get_json("/api/v1/policies/default"));
    let rcvbuf = input["listener"]["rcvbuf"].as_u64().unwrap();
    assert!((4096..=16384).contains(&rcvbuf), "{input}");
    // Undecodable datagrams (a version no exporter uses): each one the worker sees is a
    // packet error, so the handler's count of what it saw is exact.
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 3000u64;
    let d = [0xeeu8; 1200];
    for _ in 0..sent {
        tx.send_to(&d, ("127.0.0.1", port)).unwrap();
    }
    let v = agent.wait_json("/api/v1/policies/default", Duration::from_secs(20), |v| {
        let l = &input_of(v)["listener"];
        l["datagrams"].as_u64().unwrap_or(0) + l["socket_drops"].as_u64().unwrap_or(0) == sent
    });
    let input = input_of(&v);
    let l = &input["listener"];
    let drops = l["socket_drops"].as_u64().unwrap();
    let datagrams = l["datagrams"].as_u64().unwrap();
    eprintln!("burst of {sent}: {datagrams} received, {drops} dropped by the kernel");
    assert_eq!(l["queue_drops"], 0, "{input}");
    assert_eq!(input["kernel_drops"].as_u64(), Some(drops), "{input}");
    // The workers sample drops every second: the handler catches up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while flow_counts(&agent) != (drops, datagrams) {
        assert!(
            std::time::Instant::now() < deadline,
            "flow counts {:?}, want ({drops}, {datagrams})",
            flow_counts(&agent)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, text) = agent.get("/metrics");
    assert_eq!(status, 200);
    let line = text
        .lines()
        .find(|l| l.starts_with("flow_os_drops{"))
        .unwrap_or_else(|| panic!("no flow_os_drops in {text}"));
    let value: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value <= drops, "{line}");
    assert!(line.contains("tap=\"t\""), "{line}");
}

/// Stream taps without a policy: nothing is started (the UDP port and the socket path stay
/// free) and `/api/v1/taps` says a policy is needed.
#[test]
fn taps_without_policy_collect_nothing_and_say_so() {
    let dir = TempDir::new("agent-taps-alone");
    let port = free_udp_port();
    let sock = dir.0.join("dnstap.sock");
    let cfg = dir.write(
        "agent.yaml",
        &format!(
            "visor:\n  taps:\n    exports:\n      input_type: flow\n      config:\n        flow_type: sflow\n        bind: 127.0.0.1\n        port: {port}\n    resolver:\n      input_type: dnstap\n      config:\n        socket: \"{}\"\n",
            sock.display()
        ),
    );
    let agent = Agent::start(&["--config", &cfg.display().to_string(), "--workers", "1"]);
    let taps = agent.get_json("/api/v1/taps");
    for name in ["exports", "resolver"] {
        let t = &taps[name];
        assert_eq!(t["policies"], 0, "{taps}");
        assert!(
            t["warning"]
                .as_str()
                .is_some_and(|w| w.starts_with("no policy uses this tap")),
            "{taps}"
        );
    }
    assert_eq!(agent.get_json("/api/v1/policies"), serde_json::json!({}));
    assert!(UdpSocket::bind(("127.0.0.1", port)).is_ok());
    assert!(!sock.exists());
}

/// The README's example of a flow tap and a dnstap tap with their policies is accepted and
/// starts both inputs.
#[test]
fn readme_stream_tap_example_runs() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let at = readme
        .find("A flow tap and a dnstap tap, each with its policy:")
        .expect("the example in README.md");
    let block = &readme[at..];
    let start = block.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &block[start..start + block[start..].find("```").unwrap()];
    let dir = TempDir::new("agent-readme-streams");
    let port = free_udp_port();
    let sock = dir.0.join("dnstap.sock");
    let yaml = yaml
        .replace("port: 9995", &format!("port: {port}"))
        .replace("bind: 0.0.0.0", "bind: 127.0.0.1")
        .replace("/run/wirelens/dnstap.sock", &sock.display().to_string());
    let cfg = dir.write("agent.yaml", &yaml);
    let agent = Agent::start(&["--config", &cfg.display().to_string(), "--workers", "1"]);
    let policies = agent.get_json("/api/v1/policies");
    let mut names: Vec<&String> = policies.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["dns", "flows"], "{policies}");
    let flows = agent.get_json("/api/v1/policies/flows");
    let input = flows["flows"]["input"]
        .as_object()
        .and_then(|m| m.values().next())
        .map(|i| i["input"].clone())
        .unwrap();
    assert_eq!(input["running"], true, "{input}");
    // 16 MiB requested: at least what the kernel allows, never nothing.
    assert!(input["listener"]["rcvbuf"].as_u64().unwrap() > 0, "{input}");
    let taps = agent.get_json("/api/v1/taps");
    assert_eq!(taps["exports"]["policies"], 1, "{taps}");
    assert!(taps["exports"].get("warning").is_none(), "{taps}");
    assert!(sock.exists());
    // The flow port is the agent's now.
    assert!(UdpSocket::bind(("127.0.0.1", port)).is_err());
}
