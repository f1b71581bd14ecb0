//! SIGHUP re-reads `--config` and applies only the difference: an unchanged policy keeps its
//! buckets, a changed one restarts, a removed one goes, a new one starts; a bad file changes
//! nothing. Buckets rotate on the wall clock even when idle, and Prometheus reads the last
//! complete one. SIGTERM exits 0.

mod agent_common;

use std::time::Duration;

use agent_common::{Agent, TempDir, fixture};

fn doc(policies: &str) -> String {
    format!(
        "visor:\n  taps:\n    udp:\n      input_type: pcap\n      config:\n        pcap_file: \"{}\"\n    tcp:\n      input_type: pcap\n      config:\n        pcap_file: \"{}\"\n  policies:\n{policies}",
        fixture("dns_ipv4_udp.pcap").display(),
        fixture("dns_ipv4_tcp.pcap").display()
    )
}

fn policy(name: &str, tap: &str, modules: &[&str]) -> String {
    let mut s = format!(
        "    {name}:\n      kind: collection\n      input:\n        tap: {tap}\n      handlers:\n        modules:\n"
    );
    for m in modules {
        s.push_str(&format!("          {m}:\n            type: {m}\n"));
    }
    s
}

fn names(agent: &Agent) -> Vec<String> {
    agent
        .get_json("/api/v1/policies")
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn sighup_applies_the_difference_and_sigterm_exits_cleanly() {
    let dir = TempDir::new("agent-reload");
    let first = doc(&format!(
        "{}{}{}",
        policy("keep", "udp", &["net"]),
        policy("gone", "tcp", &["net"]),
        policy("change", "tcp", &["net"])
    ));
    let cfg = dir.write("agent.yaml", &first);
    let mut agent = Agent::start(&["--config", &cfg.display().to_string(), "--period-ms", "600"]);
    assert_eq!(names(&agent), ["change", "gone", "keep"]);
    // Idle buckets rotate: after two periods `keep` has a bucket 2 (its replay is in it).
    let v = agent.wait_json(
        "/api/v1/policies/keep/metrics/bucket/2",
        Duration::from_secs(10),
        |_| true,
    );
    let window = agent.get_json("/api/v1/policies/keep/metrics/window/5");
    assert_eq!(window["keep"]["keep-udp-net"]["packets"]["total"], 140);
    assert!(
        v["keep"]["keep-udp-net"]["packets"]["total"]
            .as_u64()
            .is_some()
    );
    // Prometheus shows the last complete bucket, which saw none of the replay.
    let (_, prom) = agent.get("/api/v1/policies/keep/metrics/prometheus");
    assert!(
        prom.contains("packets_total{handler=\"keep-udp-net\",policy=\"keep\",tap=\"udp\"} 0\n"),
        "{prom}"
    );

    let second = doc(&format!(
        "{}{}{}",
        policy("keep", "udp", &["net"]),
        policy("change", "tcp", &["net", "dns"]),
        policy("fresh", "tcp", &["dns"])
    ));
    std::fs::write(&cfg, second).unwrap();
    agent.signal("HUP");
    let line = agent.wait_line("reloaded configuration", Duration::from_secs(10));
    assert!(line.contains("removed policy gone"), "{line}");
    assert!(line.contains("added policy fresh"), "{line}");
    assert!(!line.contains("policy keep"), "{line}");
    assert_eq!(names(&agent), ["change", "fresh", "keep"]);
    // `keep` was left alone: its older buckets are still there.
    assert_eq!(agent.get("/api/v1/policies/keep/metrics/bucket/2").0, 200);
    let window = agent.get_json("/api/v1/policies/keep/metrics/window/5");
    assert_eq!(window["keep"]["keep-udp-net"]["packets"]["total"], 140);
    // `change` restarted with its new handlers.
    let change = agent.get_json("/api/v1/policies/change");
    let modules: Vec<&String> = change["change"]["modules"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(modules, ["change-tcp-dns", "change-tcp-net"]);
    assert_eq!(agent.get("/api/v1/policies/gone").0, 404);
    // `change` and `fresh` started together on a new input: both saw the whole replay.
    let both = agent.wait_json(
        "/api/v1/policies/__all/metrics/window/2",
        Duration::from_secs(10),
        |v| v["change"]["change-tcp-net"]["packets"]["total"] == 2100,
    );
    let fresh = &both["fresh"]["fresh-tcp-dns"]["dns"]["wire_packets"]["total"];
    assert!(fresh.as_u64().unwrap() > 0);
    assert_eq!(
        fresh,
        &both["change"]["change-tcp-dns"]["dns"]["wire_packets"]["total"]
    );

    // A bad file changes nothing and says which key is wrong.
    std::fs::write(
        &cfg,
        first.replace(
            "input_type: pcap\n      config:",
            "input_type: pcap\n      confg:",
        ),
    )
    .unwrap();
    agent.signal("HUP");
    let line = agent.wait_line("reload failed", Duration::from_secs(10));
    assert!(
        line.contains("nothing changed") && line.contains("unknown key 'confg'"),
        "{line}"
    );
    assert_eq!(names(&agent), ["change", "fresh", "keep"]);

    agent.signal("TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
}
