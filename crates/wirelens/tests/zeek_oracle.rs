//! Zeek's own expected logs as a second oracle for the `tls` and `quic` handlers: for every
//! Zeek test trace in `shared/corpus/zeek` whose baseline holds an `ssl.log` (and `x509.log`),
//! `wirelens read` must report the same server names (ssl.log `server_name`), negotiated TLS
//! versions (`version`), cipher suites (`cipher`) and leaf certificate subject and issuer common names (x509.log
//! `certificate.subject` / `certificate.issuer` / `san.dns` of the first fingerprint of ssl.log
//! `cert_chain_fps`, i.e. TLS 1.2 and older, where the certificate travels in clear).
//!
//! Each ssl.log connection must also be a `tls` (or `quic`) flow in wirelens' `--flow-log`
//! JSON lines, looked up by its addresses and ports.
//!
//! Zeek logs one row per connection, wirelens counts hellos and certificates, so each field is
//! compared as a multiset; agreement is the matched count over the larger of the two totals.
//! The corpus holds no Zeek `http.log` baseline, so HTTP is not compared here (tshark and the
//! live test cover it). Per-trace and per-field agreement is printed; the test fails below the
//! thresholds in [`THRESHOLDS`], whose comments say what Zeek sees that wirelens deliberately
//! does not.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

/// Minimum overall agreement per field (matched / larger total, over all compared traces).
///
/// * `sni` (TLS over TCP and QUIC): every name expected to agree. wirelens follows a QUIC
///   client by its UDP 5-tuple with the keys of its first Destination Connection ID, so
///   Chrome's scattered CRYPTO fragments across Initials whose DCID changes mid-handshake
///   (`quic/quic-decrypt-fail-google-de-51833.pcap`) are reassembled as Zeek does. DTLS rows
///   (WebRTC) are left out since wirelens does not decode DTLS.
/// * `version` and `cipher` (TLS over TCP only): one ServerHello per connection on both sides,
///   expected to agree (pre-standard drafts are compared by number). Both name every suite of
///   the IANA registry by its registry name (`tls/dhe.pcap`'s CAMELLIA suite included), so
///   every cipher is expected to agree.
/// * `app` (per connection, from `--flow-log`): every connection Zeek logs in ssl.log must be a
///   flow wirelens classifies as `tls` (or `quic` for the QUIC traces).
/// * `subject` / `issuer` / `san` (the leaf certificate of TLS 1.2 and older, traces with an
///   x509.log): common names and DNS alternative names, every one expected to agree.
const THRESHOLDS: &[(&str, f64)] = &[
    ("sni", 1.0),
    ("version", 1.0),
    ("cipher", 1.0),
    ("subject", 1.0),
    ("issuer", 1.0),
    ("san", 1.0),
    ("app", 1.0),
];

fn corpus() -> PathBuf {
    support::shared_dir().join("corpus")
}

/// (baseline folder, trace) for every ssl.log baseline the manifest lists.
fn ssl_baselines() -> Vec<(PathBuf, PathBuf)> {
    let manifest = std::fs::read_to_string(corpus().join("MANIFEST.md")).unwrap_or_default();
    let mut out = Vec::new();
    for line in manifest.lines() {
        let Some(rest) = line.strip_prefix("| `zeek/Baseline/") else {
            continue;
        };
        let Some((log, rest)) = rest.split_once('`') else {
            continue;
        };
        if !(log.ends_with("/ssl.log") || log.ends_with("/ssl.log.cut")) {
            continue;
        }
        let Some(trace) = rest
            .split_once("for `")
            .and_then(|(_, t)| t.split_once('`'))
            .map(|(t, _)| t)
        else {
            continue;
        };
        let dir = corpus().join("zeek/Baseline").join(log);
        let dir = dir.parent().expect("baseline folder").to_path_buf();
        out.push((dir, corpus().join(trace)));
    }
    out
}

/// The rows of a Zeek log as field-name → value maps. The header is `#fields` or, in `.cut`
/// files, the first line that is not a comment.
fn zeek_log(path: &Path) -> Vec<BTreeMap<String, String>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut fields: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = Some(f.split('\t').map(str::to_owned).collect());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some(names) = &fields else {
            fields = Some(line.split('\t').map(str::to_owned).collect());
            continue;
        };
        rows.push(
            names
                .iter()
                .cloned()
                .zip(line.split('\t').map(str::to_owned))
                .collect(),
        );
    }
    rows
}

/// ssl.log rows of TLS over TCP or QUIC: DTLS rows are dropped (wirelens does not decode DTLS).
fn zeek_rows(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let mut rows = zeek_log(&dir.join("ssl.log"));
    if rows.is_empty() {
        rows = zeek_log(&dir.join("ssl.log.cut"));
    }
    rows.retain(|r| !r.get("version").is_some_and(|v| v.starts_with("DTLS")));
    rows
}

/// The common name of a Zeek distinguished name (`CN=a\,b,O=...`), or the whole name when it
/// has none.
fn common_name(dn: &str) -> String {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .iter()
        .find_map(|p| p.strip_prefix("CN="))
        .map_or_else(|| dn.to_string(), str::to_owned)
}

fn zeek_version(v: &str) -> String {
    match v {
        "TLSv13" => "TLS 1.3".into(),
        "TLSv12" => "TLS 1.2".into(),
        "TLSv11" => "TLS 1.1".into(),
        "TLSv10" => "TLS 1.0".into(),
        "SSLv3" => "SSL 3.0".into(),
        // Pre-standard versions: Zeek names them, wirelens keeps the number (hex).
        other => {
            if let Some(d) = other
                .strip_prefix("TLSv13-draft")
                .and_then(|d| d.parse::<u16>().ok())
            {
                format!("0x{:04x}", 0x7f00 + d)
            } else if let Some(n) = other
                .strip_prefix("unknown-")
                .and_then(|n| n.parse::<u16>().ok())
            {
                format!("0x{n:04x}")
            } else {
                other.into()
            }
        }
    }
}

type Multiset = BTreeMap<String, u64>;

/// Zeek's view of one trace: field name → multiset. `quic` traces give server names only:
/// wirelens opens the client's Initial packets, not the server's, so it has no negotiated
/// version or certificate for QUIC. Certificates are compared only where the baseline has an
/// x509.log.
fn zeek(dir: &Path, quic: bool) -> BTreeMap<&'static str, Multiset> {
    let rows = zeek_rows(dir);
    let certs: BTreeMap<String, BTreeMap<String, String>> = zeek_log(&dir.join("x509.log"))
        .into_iter()
        .filter_map(|r| Some((r.get("fingerprint")?.clone(), r)))
        .collect();
    let mut m: BTreeMap<&'static str, Multiset> = BTreeMap::new();
    let set = |v: &str| v != "-" && v != "(empty)" && !v.is_empty();
    for r in &rows {
        let mut bump = |field: &'static str, v: String| {
            *m.entry(field).or_default().entry(v).or_default() += 1
        };
        if let Some(v) = r.get("server_name").filter(|v| set(v)) {
            bump("sni", v.clone());
        }
        if let Some(v) = r.get("version").filter(|v| set(v) && !quic) {
            bump("version", zeek_version(v));
        }
        if let Some(v) = r.get("cipher").filter(|v| set(v) && !quic) {
            bump("cipher", v.clone());
        }
        let leaf = r
            .get("cert_chain_fps")
            .filter(|v| set(v))
            .and_then(|v| v.split(',').next())
            .and_then(|fp| certs.get(fp));
        if let Some(cert) = leaf {
            if let Some(s) = cert.get("certificate.subject").filter(|v| set(v)) {
                bump("subject", common_name(s));
            }
            if let Some(s) = cert.get("certificate.issuer").filter(|v| set(v)) {
                bump("issuer", common_name(s));
            }
            for name in cert
                .get("san.dns")
                .filter(|v| set(v))
                .into_iter()
                .flat_map(|v| v.split(','))
                .take(SANS_PER_CERT)
            {
                bump("san", name.to_string());
            }
        }
    }
    m
}

/// wirelens counts at most this many subjectAltName DNS names per certificate, the first ones
/// in certificate order (some certificates carry hundreds); Zeek's `san.dns` keeps that order,
/// so its first names are the ones compared.
const SANS_PER_CERT: usize = 32;

/// Traces in a link type wirelens does not decode (PPP, as the quic-go interop runner writes
/// them): wirelens must report nothing for them (so decoding it later shows up here), and they
/// are left out of the agreement.
const UNDECODED_LINK_TYPE: &[&str] = &[
    "quic/interop/quic-go_quic-go/handshake.pcap",
    "quic/interop/quic-go_quic-go/retry.pcap",
    "quic/interop/quic-go_quic-go/zerortt.pcap",
];

/// A policy running the `tls` and `quic` handlers with top lists long enough for every value.
fn policy_file() -> PathBuf {
    support::policy_with_modules("zeek-oracle", &[("t", "tls"), ("q", "quic")])
}

fn top(v: &Value, key: &str) -> Multiset {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["name"].as_str().unwrap_or_default().to_string(),
                        i["estimate"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// wirelens' view of one trace, in Zeek's field names. QUIC ClientHellos add to `sni`.
fn wirelens(trace: &Path, policy: &Path) -> BTreeMap<&'static str, Multiset> {
    let v = support::read_one_period(trace, policy);
    let t = &v["p"]["p-default-t"]["tls"];
    let q = &v["p"]["p-default-q"]["quic"];
    assert!(t.is_object() && q.is_object(), "no tls/quic section in {v}");
    let mut sni = top(t, "top_sni");
    for (k, n) in top(q, "top_sni") {
        *sni.entry(k).or_default() += n;
    }
    BTreeMap::from([
        ("sni", sni),
        ("version", top(t, "top_version_negotiated")),
        ("cipher", top(t, "top_cipher")),
        ("san", top(t, "top_cert_san")),
        ("subject", top(t, "top_cert_subject")),
        ("issuer", top(t, "top_cert_issuer")),
    ])
}

/// The application wirelens' flow log gives each connection of a trace, keyed by
/// (client address, client port, server address, server port) in both orders.
fn flow_apps(trace: &Path) -> BTreeMap<(String, String, String, String), String> {
    let log = std::env::temp_dir().join(format!(
        "wirelens-zeek-oracle-{}-flows.jsonl",
        std::process::id()
    ));
    let out = std::process::Command::new(support::wirelens_bin())
        .args(["read", "--periods", "1", "--no-progress", "--flow-log"])
        .arg(&log)
        .arg(trace)
        .output()
        .expect("wirelens runs");
    assert!(
        out.status.success(),
        "wirelens --flow-log on {}",
        trace.display()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let f: Value = serde_json::from_str(line).expect("flow log line is json");
        let s = |k: &str| match &f[k] {
            Value::String(v) => v.clone(),
            v => v.to_string(),
        };
        let app = s("app");
        m.insert((s("src"), s("sport"), s("dst"), s("dport")), app.clone());
        m.insert((s("dst"), s("dport"), s("src"), s("sport")), app);
    }
    m
}

/// Per connection: the app the flow log names for each ssl.log row with connection ids
/// (`.cut` baselines have none), as a multiset, against Zeek's `tls`/`quic` for every row.
fn connection_apps(dir: &Path, trace: &Path, quic: bool) -> (Multiset, Multiset) {
    let flows = flow_apps(trace);
    let (mut zeek, mut ours) = (Multiset::new(), Multiset::new());
    let want = if quic { "quic" } else { "tls" };
    for r in zeek_rows(dir) {
        let id = |k: &str| r.get(k).cloned().unwrap_or_default();
        let key = (
            id("id.orig_h"),
            id("id.orig_p"),
            id("id.resp_h"),
            id("id.resp_p"),
        );
        if key.0.is_empty() {
            continue;
        }
        *zeek.entry(want.to_string()).or_default() += 1;
        let app = flows.get(&key).cloned().unwrap_or_else(|| "no flow".into());
        *ours.entry(app).or_default() += 1;
    }
    (zeek, ours)
}

/// (matched, Zeek total, wirelens total) of two multisets.
fn agreement(zeek: &Multiset, ours: &Multiset) -> (u64, u64, u64) {
    let matched = zeek
        .iter()
        .map(|(k, n)| (*n).min(ours.get(k).copied().unwrap_or(0)))
        .sum();
    (matched, zeek.values().sum(), ours.values().sum())
}

#[test]
fn ssl_and_x509_logs_agree_with_wirelens() {
    let started = Instant::now();
    let cases: Vec<(PathBuf, PathBuf)> = ssl_baselines()
        .into_iter()
        .filter(|(_, trace)| trace.exists())
        .collect();
    if cases.is_empty() {
        support::missing("the Zeek traces and baselines of shared/corpus");
        return;
    }
    // 28 ssl.log and 4 ssl.log.cut baselines were listed when this test was written.
    assert!(cases.len() >= 25, "only {} Zeek ssl baselines", cases.len());
    let policy = policy_file();
    let mut totals: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let mut with_x509 = 0;
    let mut skipped = 0;
    for (dir, trace) in &cases {
        let name = trace
            .strip_prefix(corpus().join("zeek/Traces"))
            .unwrap_or(trace)
            .display()
            .to_string();
        let mut got = wirelens(trace, &policy);
        if UNDECODED_LINK_TYPE.contains(&name.as_str()) {
            assert!(
                got.values().all(BTreeMap::is_empty),
                "{name}: wirelens now decodes it ({got:?}); compare it"
            );
            skipped += 1;
            continue;
        }
        let quic = name.starts_with("quic/");
        let mut want = zeek(dir, quic);
        let (zeek_apps, our_apps) = connection_apps(dir, trace, quic);
        want.insert("app", zeek_apps);
        got.insert("app", our_apps);
        let x509 = dir.join("x509.log").exists();
        with_x509 += usize::from(x509);
        let mut line = format!("{name:<70}");
        for (field, _) in THRESHOLDS {
            if !x509 && matches!(*field, "subject" | "issuer" | "san") {
                continue;
            }
            let empty = Multiset::new();
            let (m, z, w) = agreement(
                want.get(field).unwrap_or(&empty),
                got.get(field).unwrap_or(&empty),
            );
            let t = totals.entry(field).or_default();
            *t = (t.0 + m, t.1 + z, t.2 + w);
            line += &format!(" {field} {m}/{z}/{w}");
            if m != z || z != w {
                line += &format!(
                    " [zeek {:?} wirelens {:?}]",
                    want.get(field).unwrap_or(&empty),
                    got.get(field).unwrap_or(&empty)
                );
            }
        }
        eprintln!("{line}");
    }
    let _ = std::fs::remove_file(&policy);
    eprintln!(
        "zeek oracle: {} traces compared ({} with x509.log), {skipped} in an undecoded link type, in {:.1} s; per field matched/zeek/wirelens:",
        cases.len() - skipped,
        with_x509,
        started.elapsed().as_secs_f64()
    );
    let mut failures = Vec::new();
    for (field, min) in THRESHOLDS {
        let (m, z, w) = totals.get(field).copied().unwrap_or_default();
        let ratio = m as f64 / z.max(w).max(1) as f64;
        eprintln!("  {field:<8} {m}/{z}/{w} = {:.1} %", ratio * 100.0);
        assert!(z > 0, "Zeek logs no {field} at all");
        if ratio < *min {
            failures.push(format!("{field}: {:.3} < {min}", ratio));
        }
    }
    assert!(
        failures.is_empty(),
        "agreement below threshold: {failures:?}"
    );
    assert!(with_x509 >= 5, "only {with_x509} traces with x509.log");
}
