//! The agent's Prometheus exposition checked by Prometheus itself: `promtool check metrics`
//! parses it, and a real Prometheus server scrapes the agent every second; a value read back
//! through Prometheus' query API equals the agent's own JSON.

mod agent_common;
mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_common::{Agent, TempDir, fixture, request};
use serde_json::Value;

fn agent_with_default_policy(dir: &TempDir) -> Agent {
    let cfg = dir.write(
        "agent.yaml",
        &format!(
            "visor:\n  taps:\n    udp:\n      input_type: pcap\n      config:\n        pcap_file: \"{}\"\n  policies:\n    default:\n      kind: collection\n      input:\n        tap: udp\n      handlers:\n        modules:\n          net:\n            type: net\n          dns:\n            type: dns\n",
            fixture("dns_ipv4_udp.pcap").display()
        ),
    );
    let agent = Agent::start(&[
        "--config",
        &cfg.display().to_string(),
        "--prom-instance",
        "probe-1",
    ]);
    agent.wait_json("/api/v1/policies/default", Duration::from_secs(20), |v| {
        v["default"]["input"]
            .as_object()
            .is_some_and(|m| m.values().all(|i| i["input"]["finished"] == true))
    });
    agent
}

/// pktvisor's metric names end in `_total` on gauges (`packets_total`, `dns_wire_packets_total`);
/// dashboards query those names, so that one lint stays. Anything else promtool reports fails.
fn promtool_problems(text: &str) -> Vec<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 0: clean; 3: lint findings only; anything else: the text did not parse.
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 3)),
        "promtool failed ({code:?}): {report}"
    );
    report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.ends_with("non-counter metrics should not have \"_total\" suffix"))
        .map(str::to_string)
        .collect()
}

#[test]
fn promtool_accepts_the_exposition() {
    if !support::tool_runs("promtool") {
        return support::missing("promtool (Debian package prometheus)");
    }
    let dir = TempDir::new("agent-promtool");
    let agent = agent_with_default_policy(&dir);
    for path in [
        "/metrics",
        "/api/v1/policies/__all/metrics/prometheus",
        "/api/v1/policies/default/metrics/prometheus",
    ] {
        let (status, text) = agent.get(path);
        assert_eq!(status, 200);
        assert!(text.contains("# TYPE packets_total gauge\n"), "{text}");
        assert!(
            text.contains("packets_total{instance=\"probe-1\",handler=\"default-udp-net\",policy=\"default\",tap=\"udp\"} 140\n"),
            "{text}"
        );
        assert_eq!(promtool_problems(&text), Vec::<String>::new(), "{path}");
    }
}

/// A Prometheus server on loopback with its own storage, stopped on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn prometheus_scrapes_the_agent() {
    if !support::tool_runs("prometheus") {
        return support::missing("prometheus (Debian package prometheus)");
    }
    let dir = TempDir::new("agent-prometheus");
    let agent = agent_with_default_policy(&dir);
    let cfg = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: wirelens\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            agent.port
        ),
    );
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prom = Prometheus { child, port };

    let want = agent.get_json("/api/v1/policies/default/metrics/bucket/0");
    let want_total = want["default"]["default-udp-net"]["packets"]["total"]
        .as_u64()
        .unwrap();
    let want_dns = want["default"]["default-udp-dns"]["dns"]["wire_packets"]["total"]
        .as_u64()
        .unwrap();
    assert_eq!(want_total, 140);

    let deadline = Instant::now() + Duration::from_secs(30);
    let query = "/api/v1/query?query=packets_total%7Bpolicy%3D%22default%22%7D";
    let result = loop {
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned the agent's series"
        );
        std::thread::sleep(Duration::from_millis(250));
        let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", prom.port)) else {
            continue;
        };
        drop(stream);
        let (status, body) = request(prom.port, "GET", query, &[], "");
        if status != 200 {
            continue;
        }
        let v: Value = serde_json::from_str(&body).unwrap();
        if let Some(r) = v["data"]["result"].as_array().and_then(|a| a.first()) {
            break r.clone();
        }
    };
    assert_eq!(result["metric"]["instance"], "probe-1");
    assert_eq!(result["metric"]["handler"], "default-udp-net");
    assert_eq!(result["metric"]["tap"], "udp");
    assert_eq!(result["value"][1], want_total.to_string());

    let (status, body) = request(
        prom.port,
        "GET",
        "/api/v1/query?query=dns_wire_packets_total",
        &[],
        "",
    );
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], want_dns.to_string());
}
