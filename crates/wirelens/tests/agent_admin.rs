//! The admin API against a running agent: every status code pktvisor's clients see (201, 400,
//! 401, 404, 409, 422), with and without the bearer token; and a policy added while another
//! one counts a live stream leaves the first one's counters growing, never reset.

mod agent_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_common::{Agent, TempDir, fixture};

const TOKEN: &str = "s3cret-token";

/// Splits a little-endian pcap file into its global header and its records.
fn pcap_records(path: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let data = std::fs::read(path).unwrap();
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian pcap expected"
    );
    let header = data[..24].to_vec();
    let mut recs = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        recs.push(data[at..at + 16 + incl].to_vec());
        at += 16 + incl;
    }
    (header, recs)
}

/// Writes `rounds` copies of the fixture's packets into the FIFO, in small paced chunks, as
/// a live capture would deliver them.
fn stream_into(fifo: PathBuf, rounds: usize) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let (header, recs) = pcap_records(&fixture("dns_ipv4_udp.pcap"));
        let mut out = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        out.write_all(&header).unwrap();
        let mut sent = 0;
        for _ in 0..rounds {
            for chunk in recs.chunks(20) {
                for r in chunk {
                    if out.write_all(r).is_err() {
                        return sent;
                    }
                    sent += 1;
                }
                let _ = out.flush();
                std::thread::sleep(Duration::from_millis(12));
            }
        }
        sent
    })
}

fn auth() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

fn post(agent: &Agent, path: &str, ct: Option<&str>, body: &str, token: bool) -> (u16, String) {
    let a = auth();
    let mut h: Vec<(&str, &str)> = Vec::new();
    if let Some(ct) = ct {
        h.push(("Content-Type", ct));
    }
    if token {
        h.push((a.0, &a.1));
    }
    agent.request("POST", path, &h, body)
}

fn delete(agent: &Agent, path: &str, token: bool) -> (u16, String) {
    let a = auth();
    let h: Vec<(&str, &str)> = if token { vec![(a.0, &a.1)] } else { Vec::new() };
    agent.request("DELETE", path, &h, "")
}

fn policy(name: &str, input: &str) -> String {
    format!(
        "visor:\n  policies:\n    {name}:\n      kind: collection\n      input:\n{input}      handlers:\n        modules:\n          net:\n            type: net\n"
    )
}

/// Packets counted by a policy's net handler in the live bucket.
fn total(agent: &Agent, name: &str) -> u64 {
    let v = agent.get_json(&format!("/api/v1/policies/{name}/metrics/bucket/0"));
    v[name][format!("{name}-stream-net")]["packets"]["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total in {v}"))
}

#[test]
fn admin_status_codes_and_policies_that_do_not_reset_each_other() {
    let dir = TempDir::new("agent-admin");
    let tok = dir.write("token", &format!("{TOKEN}\n"));
    let fifo = dir.0.join("stream.pcap");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut agent = Agent::start(&[
        "--admin-api",
        "--api-token-file",
        &tok.display().to_string(),
        "--workers",
        "1",
    ]);
    let yaml = Some("application/x-yaml");
    let tap = format!(
        "visor:\n  taps:\n    stream:\n      input_type: pcap\n      tags:\n        role: stream\n      config:\n        pcap_file: \"{}\"\n",
        fifo.display()
    );

    // 401 without or with a wrong token, before anything else is looked at.
    assert_eq!(post(&agent, "/api/v1/taps", yaml, &tap, false).0, 401);
    let (status, _) = agent.request(
        "POST",
        "/api/v1/taps",
        &[
            ("Content-Type", "application/x-yaml"),
            ("Authorization", "Bearer nope"),
        ],
        &tap,
    );
    assert_eq!(status, 401);
    // 400: content type, YAML, unknown keys, unknown input types.
    assert_eq!(
        post(&agent, "/api/v1/taps", None, &tap, true),
        (
            400,
            r#"{"error":"must include Content-Type header"}"#.into()
        )
    );
    assert_eq!(
        post(&agent, "/api/v1/taps", Some("text/plain"), &tap, true),
        (400, r#"{"error":"Content-Type not supported"}"#.into())
    );
    let (status, body) = post(
        &agent,
        "/api/v1/taps",
        yaml,
        "visor:\n  taps:\n    t:\n      input_type: pcap\n      confg: {}\n",
        true,
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("unknown key 'confg' at 'visor.taps.t'; valid keys are: input_type, config, filter, tags"),
        "{body}"
    );
    let (status, body) = post(&agent, "/api/v1/taps", yaml, "visor: [unclosed", true);
    assert_eq!(status, 400);
    assert!(body.contains("invalid YAML"), "{body}");
    assert_eq!(
        post(
            &agent,
            "/api/v1/taps",
            yaml,
            "visor:\n  taps:\n    d:\n      input_type: netprobe\n",
            true
        ),
        (
            400,
            r#"{"error":"Tap 'd' requires input stream type 'netprobe' which is not available"}"#
                .into()
        )
    );
    // 201, then 409 for the same name.
    let (status, body) = post(&agent, "/api/v1/taps", yaml, &tap, true);
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["stream"]["tags"]["role"], "stream");
    let (status, body) = post(&agent, "/api/v1/taps", yaml, &tap, true);
    assert_eq!(
        (status, body.as_str()),
        (409, r#"{"error":"tap with name 'stream' already defined"}"#)
    );
    // 422: no tap carries the selected tags.
    let (status, body) = post(
        &agent,
        "/api/v1/policies",
        yaml,
        &policy(
            "nomatch",
            "        tap_selector:\n          all:\n            - role: other\n",
        ),
        true,
    );
    assert_eq!(
        (status, body.as_str()),
        (
            422,
            r#"{"error":"no tap match found for specified 'input.tap_selector' tags"}"#
        )
    );

    // Policy `a` counts a stream; `b` joins while it runs.
    let writer = stream_into(fifo.clone(), 12);
    let (status, body) = post(
        &agent,
        "/api/v1/policies",
        Some("application/x-yaml; charset=utf-8"),
        &policy("a", "        tap: stream\n"),
        true,
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &agent,
        "/api/v1/policies",
        yaml,
        &policy("a", "        tap: stream\n"),
        true,
    );
    assert_eq!(
        (status, body.as_str()),
        (409, r#"{"error":"policy with name 'a' already defined"}"#)
    );
    let mut seen = vec![total(&agent, "a")];
    while *seen.last().unwrap() == 0 {
        std::thread::sleep(Duration::from_millis(50));
        seen.push(total(&agent, "a"));
    }
    let (status, body) = post(
        &agent,
        "/api/v1/policies",
        yaml,
        &policy(
            "b",
            "        tap_selector:\n          any:\n            - role: stream\n",
        ),
        true,
    );
    assert_eq!(status, 201, "{body}");
    for _ in 0..5 {
        seen.push(total(&agent, "a"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent = writer.join().unwrap() as u64;
    assert_eq!(sent, 12 * 140);
    let done = agent.wait_json("/api/v1/policies/a", Duration::from_secs(20), |v| {
        v["a"]["input"]
            .as_object()
            .is_some_and(|m| m.values().all(|i| i["input"]["finished"] == true))
    });
    assert_eq!(done["a"]["modules"].as_object().unwrap().len(), 1);
    seen.push(total(&agent, "a"));
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "policy a went backwards: {seen:?}"
    );
    assert_eq!(*seen.last().unwrap(), sent, "{seen:?}");
    let b = total(&agent, "b");
    assert!(b > 0 && b < sent, "b counted {b} of {sent}");
    assert_eq!(
        agent
            .get_json("/api/v1/policies")
            .as_object()
            .unwrap()
            .len(),
        2
    );

    // DELETE: 401 without the token, 200, then 404.
    assert_eq!(delete(&agent, "/api/v1/policies/b", false).0, 401);
    assert_eq!(
        delete(&agent, "/api/v1/policies/b", true),
        (200, "{}".into())
    );
    assert_eq!(agent.get("/api/v1/policies/b").0, 404);
    assert_eq!(
        delete(&agent, "/api/v1/policies/b", true),
        (404, r#"{"error":"policy does not exists"}"#.into())
    );
    assert_eq!(total(&agent, "a"), sent, "removing b touched a");
    // Removing the tap removes the policy that runs on it.
    assert_eq!(
        delete(&agent, "/api/v1/taps/stream", true),
        (200, "{}".into())
    );
    assert_eq!(agent.get("/api/v1/taps/stream").0, 404);
    assert_eq!(agent.get("/api/v1/policies/a").0, 404);
    assert_eq!(delete(&agent, "/api/v1/taps/stream", true).0, 404);
    // Reads need no token.
    assert_eq!(agent.get_json("/api/v1/taps"), serde_json::json!({}));

    agent.signal("TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
}
