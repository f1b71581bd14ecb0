//! The agent replays fixture captures through `pcap_file` taps and serves what `wirelens read`
//! prints for the same files and policies: same counters, sketches and top lists, through the
//! REST API's policy, legacy and Prometheus views. Also the read-only routes' errors, and a
//! clean exit on SIGTERM.

mod agent_common;

use std::time::Duration;

use agent_common::{Agent, TempDir, fixture, read_json, strip_periods};
use serde_json::Value;

fn config(udp: &str, tcp: &str) -> String {
    format!(
        r#"visor:
  taps:
    udp:
      input_type: pcap
      config:
        pcap_file: "{udp}"
    tcp:
      input_type: pcap
      tags:
        proto: tcp
      config:
        pcap_file: "{tcp}"
  policies:
    default:
      kind: collection
      input:
        tap: udp
      handlers:
        modules:
          net:
            type: net
          dns:
            type: dns
    merged:
      kind: collection
      config:
        merge_like_handlers: true
      input:
        tap: udp
      handlers:
        modules:
          net1:
            type: net
          net2:
            type: net
    overtcp:
      kind: collection
      input:
        tap_selector:
          any:
            - proto: tcp
      handlers:
        modules:
          dns2:
            type: dns
            require_version: "2.0"
          net:
            type: net
"#
    )
}

/// Waits until every input of `policy` replayed its file.
fn wait_finished(agent: &Agent, policy: &str) {
    agent.wait_json(
        &format!("/api/v1/policies/{policy}"),
        Duration::from_secs(20),
        |v| {
            v[policy]["input"]
                .as_object()
                .is_some_and(|m| m.values().all(|i| i["input"]["finished"] == true))
        },
    );
}

#[test]
fn agent_serves_what_read_prints() {
    let dir = TempDir::new("agent-metrics");
    let udp = fixture("dns_ipv4_udp.pcap");
    let tcp = fixture("dns_ipv4_tcp.pcap");
    let cfg = dir.write(
        "agent.yaml",
        &config(&udp.display().to_string(), &tcp.display().to_string()),
    );
    let cfg = cfg.display().to_string();
    let mut agent = Agent::start(&["--config", &cfg, "--workers", "2"]);
    wait_finished(&agent, "default");
    wait_finished(&agent, "overtcp");

    // The same policies over the same files, offline.
    let policy_udp = dir.write(
        "udp.yaml",
        "visor:\n  policies:\n    default:\n      kind: collection\n      input:\n        tap: udp\n      handlers:\n        modules:\n          net:\n            type: net\n          dns:\n            type: dns\n",
    );
    let policy_tcp = dir.write(
        "tcp.yaml",
        "visor:\n  policies:\n    overtcp:\n      kind: collection\n      input:\n        tap: tcp\n      handlers:\n        modules:\n          dns2:\n            type: dns\n            require_version: \"2.0\"\n          net:\n            type: net\n",
    );
    for (policy, file, pfile) in [
        ("default", &udp, &policy_udp),
        ("overtcp", &tcp, &policy_tcp),
    ] {
        let mut want = read_json(&[
            "--workers",
            "2",
            "--policy",
            &pfile.display().to_string(),
            &file.display().to_string(),
        ]);
        strip_periods(&mut want);
        for path in ["window/5", "window/2", "bucket/0"] {
            let mut got = agent.get_json(&format!("/api/v1/policies/{policy}/metrics/{path}"));
            // Every handler object carries its period: start and length in seconds.
            for h in got[policy].as_object().unwrap().values() {
                let (_, inner) = h.as_object().unwrap().iter().next().unwrap();
                assert!(inner["period"]["start_ts"].as_u64().unwrap() > 1_700_000_000);
            }
            strip_periods(&mut got);
            assert_eq!(got, want, "{policy} {path}");
        }
    }
    let want_udp = read_json(&[
        "--workers",
        "2",
        "--policy",
        &policy_udp.display().to_string(),
        &udp.display().to_string(),
    ]);
    assert_eq!(
        want_udp["default"]["default-udp-dns"]["dns"]["wire_packets"]["total"],
        140
    );
    assert_eq!(
        want_udp["default"]["default-udp-net"]["packets"]["total"],
        140
    );

    // __all holds both policies.
    let all = agent.get_json("/api/v1/policies/__all/metrics/window/2");
    let names: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(names, ["default", "merged", "overtcp"]);
    // merge_like_handlers: two net handlers on one capture, reported as one.
    let merged = &all["merged"];
    assert_eq!(merged.as_object().unwrap().len(), 1, "{merged}");
    assert_eq!(merged["packets_merged"]["packets"]["total"], 280);

    // pktvisor 3.0's view of the `default` policy.
    let legacy = agent.get_json("/api/v1/metrics/bucket/0");
    assert_eq!(legacy["1m"]["packets"]["total"], 140);
    assert!(legacy["1m"]["period"]["length"].is_u64());
    let legacy = agent.get_json("/api/v1/metrics/window/3");
    assert_eq!(legacy["3m"]["dns"]["wire_packets"]["total"], 140);

    // Prometheus: the live bucket (no complete one yet), pktvisor's names and labels.
    let (status, prom) = agent.get("/api/v1/policies/overtcp/metrics/prometheus");
    assert_eq!(status, 200);
    let tcp_total = want_of(
        &read_json(&[
            "--workers",
            "2",
            "--policy",
            &policy_tcp.display().to_string(),
            &tcp.display().to_string(),
        ]),
        "overtcp",
        "overtcp-tcp-net",
        &["tcp"],
    );
    assert!(
        prom.contains(&format!(
            "packets_tcp{{handler=\"overtcp-tcp-net\",policy=\"overtcp\",tap=\"tcp\"}} {tcp_total}\n"
        )),
        "{prom}"
    );
    let (status, prom) = agent.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        prom.contains(
            "packets_total{handler=\"default-udp-net\",policy=\"default\",tap=\"udp\"} 140\n"
        ),
        "{prom}"
    );

    // Read-only routes: what exists and what does not.
    let taps = agent.get_json("/api/v1/taps");
    assert_eq!(taps["tcp"]["input_type"], "pcap");
    assert_eq!(taps["tcp"]["interface"], "visor.module.input/1.0");
    assert_eq!(taps["tcp"]["tags"]["proto"], "tcp");
    assert_eq!(
        agent.get_json("/api/v1/taps/udp")["udp"]["config"]["pcap_file"],
        udp.display().to_string()
    );
    let (status, body) = agent.get("/api/v1/taps/nope");
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"tap does not exists"}"#)
    );
    let (status, body) = agent.get("/api/v1/policies/nope");
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"policy does not exists"}"#)
    );
    let (status, body) = agent.get("/api/v1/policies/nope/metrics/bucket/0");
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"policy does not exist"}"#)
    );
    let (status, body) = agent.get("/api/v1/policies/default/metrics/bucket/5");
    assert_eq!(
        (status, body.as_str()),
        (425, r#"{"error":"invalid metrics period, specify [0, 4]"}"#)
    );
    let (status, body) = agent.get("/api/v1/policies/default/metrics/bucket/1");
    assert_eq!(
        (status, body.as_str()),
        (
            425,
            r#"{"error":"requested metrics period has not yet accumulated, current range is [0, 0]"}"#
        )
    );
    let (status, body) = agent.get("/api/v1/policies/default/metrics/window/1");
    assert_eq!(
        (status, body.as_str()),
        (425, r#"{"error":"invalid metrics period, specify [2, 5]"}"#)
    );
    // Admin routes are not there without --admin-api.
    let (status, _) = agent.request(
        "POST",
        "/api/v1/policies",
        &[("Content-Type", "application/x-yaml")],
        "visor: {}",
    );
    assert_eq!(status, 404);
    let (status, _) = agent.request("DELETE", "/api/v1/policies/default", &[], "");
    assert_eq!(status, 404);
    assert_eq!(
        agent
            .get_json("/api/v1/policies")
            .as_object()
            .unwrap()
            .len(),
        3
    );

    let app = agent.get_json("/api/v1/metrics/app");
    assert_eq!(app["app"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(app["app"]["up_time_min"].as_f64().unwrap() >= 0.0);
    let api = agent.get_json("/api/v1/openapi.json");
    assert!(api["paths"]["/api/v1/policies/{name}/metrics/bucket/{n}"]["get"].is_object());

    agent.signal("TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
}

fn want_of(doc: &Value, policy: &str, handler: &str, path: &[&str]) -> u64 {
    let mut v = &doc[policy][handler];
    let (_, inner) = v.as_object().unwrap().iter().next().unwrap();
    v = inner;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {doc}"))
}
