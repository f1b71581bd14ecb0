//! The `dhcp` handler end to end: the values pktvisor's own tests assert on its DHCP fixtures
//! (reference f.2), the Prometheus names, policy configuration, results independent of the
//! worker count, and Zeek's dhcp.log for the same traces (message types, host names, leases).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

fn shared_file(rel: &str) -> Option<String> {
    let p = support::shared_dir().join(rel);
    if p.is_file() {
        return Some(p.display().to_string());
    }
    support::missing(&format!("shared/{rel}"));
    None
}

fn run(args: &[&str]) -> String {
    let a = wirelens::read::parse_args(args.iter().copied()).expect("arguments parse");
    wirelens::read::summarize(&a).expect("read succeeds")
}

fn read_json(args: &[&str]) -> Value {
    serde_json::from_str(&run(args)).expect("valid JSON")
}

fn u(v: &Value, path: &str) -> u64 {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not a number"))
}

fn tops(v: &Value, key: &str) -> Vec<(String, u64)> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list"))
        .iter()
        .map(|i| {
            (
                i["name"].as_str().expect("name").to_string(),
                i["estimate"].as_u64().expect("estimate"),
            )
        })
        .collect()
}

#[test]
fn dhcp_flow_values_match_pktvisor() {
    let Some(f) = shared_file("fixtures/pktvisor/dhcp-flow.pcap") else {
        return;
    };
    let v = read_json(&["--periods", "1", &f]);
    let d = &v["1m"]["dhcp"];
    // test_dhcp_layer.cpp L34-55.
    assert_eq!(u(d, "period.start_ts"), 1_634_851_620);
    assert_eq!(u(d, "period.length"), 30);
    assert_eq!(u(d, "wire_packets.events"), 8);
    assert_eq!(u(d, "wire_packets.filtered"), 0);
    assert_eq!(u(d, "wire_packets.discover"), 1);
    assert_eq!(u(d, "wire_packets.offer"), 1);
    assert_eq!(u(d, "wire_packets.request"), 3);
    assert_eq!(u(d, "wire_packets.ack"), 3);
    assert_eq!(u(d, "wire_packets.total"), 8);
    assert_eq!(u(d, "wire_packets.deep_samples"), 8);
    assert_eq!(
        tops(d, "top_clients"),
        vec![
            (
                "78:4f:43:78:19:bc/Shannons-MBP/192.168.2.205".to_string(),
                2
            ),
            ("32:47:73:53:0e:3d/Zenfone-8/192.168.2.248".to_string(), 1),
        ]
    );
    assert_eq!(
        tops(d, "top_servers"),
        vec![("b8:27:eb:0c:b3:e2/192.168.2.1".to_string(), 1)]
    );
    // What pktvisor does not report: transactions (tshark: DISCOVER 21:27:02.147 → OFFER
    // 754 µs later; three REQUEST → ACK), host names, leases per server, clients.
    assert_eq!(u(d, "xact.counts.total"), 4);
    assert_eq!(u(d, "xact.counts.timed_out"), 0);
    assert_eq!(u(d, "xact.discover_offer.total"), 1);
    assert_eq!(u(d, "xact.discover_offer.quantiles_us.p50"), 754);
    assert_eq!(u(d, "xact.request_ack.total"), 3);
    assert_eq!(
        tops(d, "top_hostnames"),
        vec![
            ("Shannons-MBP".to_string(), 3),
            ("Zenfone-8".to_string(), 1)
        ]
    );
    assert_eq!(tops(d, "top_leases"), vec![("192.168.2.1".to_string(), 3)]);
    assert_eq!(u(d, "cardinality.clients"), 2);
    // pktvisor-reader's default set: the other handlers are still there.
    assert_eq!(u(&v["1m"]["packets"], "udp"), 8);
}

#[test]
fn dhcpv6_values_match_pktvisor_and_count_totals() {
    let Some(f) = shared_file("fixtures/pktvisor/dhcpv6.pcap") else {
        return;
    };
    let v = read_json(&["--periods", "1", &f]);
    let d = &v["1m"]["dhcp"];
    // test_dhcp_layer.cpp L77-97.
    assert_eq!(u(d, "period.start_ts"), 1_420_235_556);
    assert_eq!(u(d, "period.length"), 13);
    assert_eq!(u(d, "wire_packets.events"), 6);
    assert_eq!(u(d, "wire_packets.solicit"), 1);
    assert_eq!(u(d, "wire_packets.advertise"), 1);
    assert_eq!(u(d, "wire_packets.request_v6"), 1);
    assert_eq!(u(d, "wire_packets.reply"), 2);
    // pktvisor has no top_clients here (its key is absent; wirelens prints an empty list, as
    // for every top list without items).
    assert_eq!(tops(d, "top_clients"), vec![]);
    assert_eq!(
        tops(d, "top_servers"),
        vec![("08:00:27:d4:10:bb/fe80::a00:27ff:fed4:10bb".to_string(), 3)]
    );
    // pktvisor leaves DHCPv6 out of `total`; wirelens counts all six messages, the RELEASE too.
    assert_eq!(u(d, "wire_packets.total"), 6);
    assert_eq!(u(d, "wire_packets.release_v6"), 1);
    assert_eq!(u(d, "xact.solicit_advertise.total"), 1);
    assert_eq!(u(d, "xact.request_reply.total"), 1);
    // tshark: SOLICIT 21:52:44.775688 → ADVERTISE .777375 (1,687 µs); REQUEST .837792 →
    // REPLY .839157 (1,365 µs).
    assert_eq!(u(d, "xact.solicit_advertise.quantiles_us.p50"), 1_687);
    assert_eq!(u(d, "xact.request_reply.quantiles_us.p50"), 1_365);
    assert_eq!(
        tops(d, "top_clients_v6"),
        vec![(
            "000100011c39cf88080027fe8f95/Unknown/2001:0:0:fe00::/64".to_string(),
            1
        )]
    );
    assert_eq!(u(d, "cardinality.clients"), 1);
}

#[test]
fn prometheus_names_match_pktvisor() {
    let Some(f) = shared_file("fixtures/pktvisor/dhcp-flow.pcap") else {
        return;
    };
    let text = run(&["--periods", "1", "--format", "prometheus", &f]);
    // test_dhcp_layer.cpp L121-124.
    for line in [
        "dhcp_wire_packets_discover{} 1",
        "dhcp_wire_packets_offer{} 1",
        "dhcp_wire_packets_request{} 3",
        "dhcp_wire_packets_ack{} 3",
        "dhcp_top_clients{client=\"78:4f:43:78:19:bc/Shannons-MBP/192.168.2.205\"} 2",
        "dhcp_top_servers{server=\"b8:27:eb:0c:b3:e2/192.168.2.1\"} 1",
        "# TYPE dhcp_rates_total summary",
        "# TYPE dhcp_xact_request_ack_quantiles_us summary",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[test]
fn results_do_not_depend_on_the_worker_count() {
    for rel in [
        "fixtures/pktvisor/dhcp-flow.pcap",
        "fixtures/pktvisor/dhcpv6.pcap",
        "corpus/zeek/Traces/dhcp/dhcp_flood.pcap",
    ] {
        let Some(f) = shared_file(rel) else {
            return;
        };
        let one = read_json(&["--periods", "1", "--workers", "1", &f]);
        let four = read_json(&["--periods", "1", "--workers", "4", &f]);
        assert_eq!(one["1m"]["dhcp"], four["1m"]["dhcp"], "{rel}");
    }
}

fn policy_file(name: &str, modules: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wirelens-dhcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "visor:\n  policies:\n    p:\n      kind: collection\n      input:\n        tap: default\n        input_type: pcap\n      handlers:\n        window_config:\n          num_periods: 1\n        modules:\n{modules}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn policy_configures_the_transaction_ttl_and_refuses_unknown_keys() {
    let Some(f) = shared_file("fixtures/pktvisor/dhcp-flow.pcap") else {
        return;
    };
    // DISCOVER → OFFER took 754 µs and the REQUEST → ACK pairs 11-14 ms: a 1 ms TTL keeps the
    // first and turns the ACKs into timeouts.
    let p = policy_file(
        "ttl",
        "          d:\n            type: dhcp\n            config:\n              xact_ttl_ms: 1\n",
    );
    let path = p.display().to_string();
    let v = read_json(&["--policy", &path, &f]);
    let d = &v["p"]["p-default-d"]["dhcp"];
    assert_eq!(u(d, "xact.discover_offer.total"), 1);
    assert_eq!(u(d, "xact.request_ack.total"), 0);
    assert_eq!(u(d, "xact.counts.timed_out"), 3);
    assert_eq!(tops(d, "top_clients"), vec![]);

    let p = policy_file(
        "bad",
        "          d:\n            type: dhcp\n            config:\n              only_qname: x\n",
    );
    let a = wirelens::read::parse_args(["--policy", &p.display().to_string(), &f]).unwrap();
    let err = wirelens::read::summarize(&a).expect_err("refused");
    assert!(
        format!("{err:#}").contains(
            "only_qname is an invalid/unsupported config or filter. The valid configs/filters are: recorded_stream, xact_ttl_secs, xact_ttl_ms"
        ),
        "{err:#}"
    );
}

/// Zeek's dhcp.log baselines (one row per exchange) and the trace each was made from.
const ZEEK: [(&str, &str); 4] = [
    ("dhcp-all-msg-types", "dhcp.pcap"),
    (
        "dhcp-ack-msg-types",
        "dhcp_ack_subscriber_id_and_agent_remote_id.pcap",
    ),
    (
        "dhcp-discover-msg-types",
        "dhcp_discover_param_req_and_client_id.pcap",
    ),
    ("inform", "dhcp_inform.pcap"),
];

#[test]
fn zeek_dhcp_logs_agree_on_types_host_names_and_servers() {
    for (baseline, trace) in ZEEK {
        let Some(log) = shared_file(&format!(
            "corpus/zeek/Baseline/scripts.base.protocols.dhcp.{baseline}/dhcp.log"
        )) else {
            return;
        };
        let Some(pcap) = shared_file(&format!("corpus/zeek/Traces/dhcp/{trace}")) else {
            return;
        };
        let text = std::fs::read_to_string(&log).unwrap();
        let fields: Vec<&str> = text
            .lines()
            .find_map(|l| l.strip_prefix("#fields\t"))
            .expect("fields header")
            .split('\t')
            .collect();
        let col = |row: &[&str], name: &str| -> String {
            let i = fields.iter().position(|f| *f == name).expect("column");
            row.get(i).copied().unwrap_or("-").to_string()
        };
        let mut types: BTreeMap<String, u64> = BTreeMap::new();
        let mut hosts: BTreeMap<String, u64> = BTreeMap::new();
        let mut acked_servers = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let row: Vec<&str> = line.split('\t').collect();
            let msg_types = col(&row, "msg_types");
            for t in msg_types.split(',') {
                *types.entry(t.to_lowercase()).or_default() += 1;
            }
            let host = col(&row, "host_name");
            if host != "-" {
                *hosts.entry(host).or_default() += 1;
            }
            let server = col(&row, "server_addr");
            if server != "-" && msg_types.contains("ACK") {
                acked_servers.push(server);
            }
        }
        assert!(!types.is_empty(), "{baseline}: no rows");
        let v = read_json(&["--periods", "1", &pcap]);
        let d = &v["1m"]["dhcp"];
        for (t, n) in &types {
            assert_eq!(u(d, &format!("wire_packets.{t}")), *n, "{trace}: {t}");
        }
        let total: u64 = types.values().sum();
        assert_eq!(u(d, "wire_packets.total"), total, "{trace}");
        // Zeek logs a host name once per exchange; wirelens counts every message carrying it.
        let names: Vec<String> = tops(d, "top_hostnames").into_iter().map(|t| t.0).collect();
        for h in hosts.keys() {
            assert!(names.contains(h), "{trace}: host {h} not in {names:?}");
        }
        let leases: Vec<String> = tops(d, "top_leases").into_iter().map(|t| t.0).collect();
        for s in &acked_servers {
            assert!(leases.contains(s), "{trace}: server {s} not in {leases:?}");
        }
    }
}

#[test]
fn chains_forward_dhcp_packets_only() {
    let Some(f) = shared_file("fixtures/pktvisor/dhcpv6.pcap") else {
        return;
    };
    // dhcp → net: net sees the 6 DHCPv6 packets, not the 6 ICMPv6 ones.
    let p = policy_file(
        "chain1",
        "          - d:\n              type: dhcp\n          - n:\n              type: net\n",
    );
    let v = read_json(&["--policy", &p.display().to_string(), &f]);
    assert_eq!(u(&v["p"]["p-default-d"]["dhcp"], "wire_packets.events"), 6);
    let n = &v["p"]["p-default-n"]["packets"];
    assert_eq!((u(n, "udp"), u(n, "ipv6"), u(n, "other_l4")), (6, 6, 0));
    // net → dhcp: net passes every packet on, dhcp keeps its own.
    let p = policy_file(
        "chain2",
        "          - n:\n              type: net\n          - d:\n              type: dhcp\n",
    );
    let v = read_json(&["--policy", &p.display().to_string(), &f]);
    assert_eq!(u(&v["p"]["p-default-n"]["packets"], "ipv6"), 12);
    let d = &v["p"]["p-default-d"]["dhcp"];
    assert_eq!(u(d, "wire_packets.events"), 6);
    assert_eq!(u(d, "wire_packets.reply"), 2);
}

/// Checks `v` against the subset of JSON Schema pktvisor's window schemas use (`type`,
/// `required`, `properties`); returns what does not hold.
fn schema_errors(schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let ok = match schema["type"].as_str() {
        Some("object") => v.is_object(),
        Some("integer") => v.is_u64() || v.is_i64(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("number") => v.is_number(),
        _ => true,
    };
    if !ok {
        out.push(format!("{at}: expected {}", schema["type"]));
        return;
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        let key = key.as_str().expect("required key");
        if v.get(key).is_none() {
            out.push(format!("{at}.{key}: missing"));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (key, sub) in props {
            if let Some(child) = v.get(key) {
                schema_errors(sub, child, &format!("{at}.{key}"), out);
            }
        }
    }
}

#[test]
fn window_output_satisfies_pktvisors_dhcp_schema() {
    let Some(schema) = shared_file("fixtures/pktvisor/window-schemas/dhcp/window-schema.json")
    else {
        return;
    };
    let Some(f) = shared_file("fixtures/pktvisor/dhcp-flow.pcap") else {
        return;
    };
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    // pktvisor validates its 5-period merged window (test_json_schema.cpp).
    let v = read_json(&["--periods", "5", &f]);
    let mut errors = Vec::new();
    schema_errors(&schema, &v["5m"], "5m", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    // The schema's example values are the fixture's.
    let example = &schema["examples"][0]["dhcp"]["wire_packets"];
    for (key, n) in example.as_object().expect("example") {
        assert_eq!(v["5m"]["dhcp"]["wire_packets"][key], *n, "{key}");
    }
}
