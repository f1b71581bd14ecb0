//! Every file of the shared capture corpus and fixtures through `wirelens read`, in-process:
//! a readable capture gives valid JSON, anything else gives an error that names the file, and
//! nothing panics or hangs. All failures are collected and reported together.
//!
//! This checks robustness, not values: the metric values are checked against pktvisor's and
//! tshark's in the other integration tests.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a single file may take (debug build) before the run is declared hung.
const PER_FILE_TIMEOUT: Duration = Duration::from_secs(60);

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if p.join("corpus").is_dir() && p.join("fixtures").is_dir() {
        return Some(p.canonicalize().unwrap_or(p));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "shared/corpus and shared/fixtures are missing next to the repository"
    );
    eprintln!("note: shared/ not found next to the repository; skipping the corpus replay");
    None
}

/// Every regular file below `dir`, in a stable order.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

/// What the first bytes say the file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Magic {
    Pcap,
    Pcapng,
    Gzip,
    Other,
}

fn magic(path: &Path) -> Magic {
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    match &head[..n] {
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        // Kuznetzov's modified pcap, which libpcap also reads.
        | [0x34, 0xcd, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xcd, 0x34] => Magic::Pcap,
        [0x0a, 0x0d, 0x0d, 0x0a] => Magic::Pcapng,
        [0x1f, 0x8b, ..] => Magic::Gzip,
        _ => Magic::Other,
    }
}

/// Corpus files that the manifest says capinfos reads as a capture (a link type in the third
/// column) and that are not marked as crafted: wirelens must summarize these. Keys are paths
/// relative to the corpus folder; values are the manifest's link type text.
fn readable_by_capinfos(corpus: &Path) -> BTreeMap<PathBuf, String> {
    let Ok(text) = std::fs::read_to_string(corpus.join("MANIFEST.md")) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split(" | ").collect();
        let (Some(name), Some(link)) = (cols.first(), cols.get(2)) else {
            continue;
        };
        let Some(name) = name.strip_prefix("| `").and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        // Formats wirelens does not read as pcap input (raw payloads, dnstap) and files
        // capinfos itself cannot read.
        let not_capture = [
            "—",
            "raw UDP payload",
            "dnstap",
            "Frame Streams",
            "unreadable",
            "truncated file",
        ];
        if not_capture.iter().any(|p| link.starts_with(p))
            || line.contains("malformed/crafted input")
        {
            continue;
        }
        out.insert(PathBuf::from(name), (*link).to_string());
    }
    out
}

/// The outcome of one file.
enum Outcome {
    /// Summarized; the JSON document.
    Json(String),
    /// Refused; the full error chain.
    Err(String),
    /// Panicked; the panic message.
    Panic(String),
}

fn replay(path: &Path) -> Outcome {
    let p = path.display().to_string();
    let run = catch_unwind(AssertUnwindSafe(|| {
        let args = wirelens::read::parse_args(["--no-progress", "--workers", "2", p.as_str()])
            .expect("fixed arguments parse");
        wirelens::read::summarize(&args)
    }));
    match run {
        Ok(Ok(json)) => Outcome::Json(json),
        Ok(Err(e)) => Outcome::Err(format!("{e:#}")),
        Err(panic) => Outcome::Panic(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "non-string panic".into()),
        ),
    }
}

/// A short, stable name for an error message, for the summary.
fn error_kind(msg: &str) -> String {
    if msg.contains("not a pcap or pcapng capture") {
        return "not a capture".into();
    }
    if let Some(i) = msg.find("corrupt capture") {
        // "…: corrupt capture at byte N: reason" → "corrupt: reason"
        let reason = msg[i..].split(": ").nth(1).unwrap_or("?");
        return format!("corrupt: {reason}");
    }
    if msg.contains("cannot read") {
        return "read error".into();
    }
    if msg.contains("cannot open") {
        return "open error".into();
    }
    msg.chars().take(60).collect()
}

/// Checks a summarized document: a JSON object with the default policy's period key holding
/// the handlers' sections.
fn check_json(json: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_object)
        .ok_or("document is not an object of objects")?;
    if obj.contains_key("packets") && !obj.contains_key("dns") {
        return Err("net section present but dns section missing".into());
    }
    Ok(())
}

#[test]
fn every_shared_file_is_summarized_or_refused_by_name() {
    let Some(shared) = shared() else { return };
    let mut files = Vec::new();
    walk(&shared.join("corpus"), &mut files);
    walk(&shared.join("fixtures"), &mut files);
    assert!(
        files.len() > 100,
        "expected the shared corpus, found {} files",
        files.len()
    );

    // A worker thread replays the files; this thread watches for a file that never finishes.
    let (tx, rx) = mpsc::channel::<(usize, Outcome, Duration)>();
    let list = files.clone();
    std::thread::spawn(move || {
        for (i, f) in list.iter().enumerate() {
            let t0 = Instant::now();
            let out = replay(f);
            if tx.send((i, out, t0.elapsed())).is_err() {
                return;
            }
        }
    });

    let corpus = shared.join("corpus");
    let readable = readable_by_capinfos(&corpus);
    let started = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut captures = 0usize;
    let mut by_magic: BTreeMap<(Magic, &'static str), usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut slowest: Vec<(Duration, usize)> = Vec::new();
    for expected in 0..files.len() {
        let Ok((i, out, took)) = rx.recv_timeout(PER_FILE_TIMEOUT) else {
            failures.push(format!(
                "{}: no result after {PER_FILE_TIMEOUT:?} (hung?); replay stopped here",
                files[expected].display()
            ));
            break;
        };
        let path = &files[i];
        slowest.push((took, i));
        let m = magic(path);
        match out {
            Outcome::Json(json) => {
                captures += 1;
                *by_magic.entry((m, "ok")).or_default() += 1;
                if m == Magic::Other {
                    eprintln!(
                        "  note: summarized without a capture magic: {}",
                        path.display()
                    );
                }
                if let Err(e) = check_json(&json) {
                    failures.push(format!("{}: {e}", path.display()));
                }
            }
            Outcome::Err(msg) => {
                *by_magic.entry((m, "error")).or_default() += 1;
                *errors.entry(error_kind(&msg)).or_default() += 1;
                if m != Magic::Other {
                    eprintln!("  note: refused despite a capture magic: {msg}");
                }
                let full = path.display().to_string();
                let base = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !msg.contains(&full) && !msg.contains(&base) {
                    failures.push(format!("{full}: error does not name the file: {msg}"));
                }
                if let Some(link) = path
                    .strip_prefix(&corpus)
                    .ok()
                    .and_then(|rel| readable.get(rel))
                {
                    failures.push(format!(
                        "{full}: capinfos reads it ({link}) but it was refused: {msg}"
                    ));
                }
                if m == Magic::Other && !msg.contains("not a pcap or pcapng capture") {
                    // A file with no capture magic is refused as such, not as anything else.
                    failures.push(format!("{full}: non-capture refused with: {msg}"));
                }
            }
            Outcome::Panic(msg) => {
                *by_magic.entry((m, "panic")).or_default() += 1;
                failures.push(format!("{}: panicked: {msg}", path.display()));
            }
        }
    }

    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    eprintln!(
        "corpus replay: {} files in {:.1} s, {captures} summarized as captures, {} refused",
        files.len(),
        started.elapsed().as_secs_f64(),
        errors.values().sum::<usize>()
    );
    for ((m, what), n) in &by_magic {
        eprintln!("  {m:?} magic, {what}: {n}");
    }
    for (kind, n) in &errors {
        eprintln!("  error {kind}: {n}");
    }
    for (took, i) in slowest.iter().take(5) {
        eprintln!(
            "  slow: {:.2} s {}",
            took.as_secs_f64(),
            files[*i].display()
        );
    }
    eprintln!(
        "  {} corpus files are captures capinfos reads (per MANIFEST.md)",
        readable.len()
    );
    assert!(captures > 100, "only {captures} files summarized");
    assert!(
        captures >= readable.len(),
        "{captures} summarized, fewer than the {} the manifest lists as readable",
        readable.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
