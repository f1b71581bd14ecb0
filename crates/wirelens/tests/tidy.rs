//! Repository hygiene that keeps the documentation true: every crate is on the architecture
//! map, and every Rust source file opens with a `//!` sentence saying what it is.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_crate_is_on_the_architecture_map() {
    let map =
        std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md exists");
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !map.contains(&format!("`crates/{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "crates missing from ARCHITECTURE.md: {missing:?}"
    );
}

#[test]
fn every_source_file_starts_with_a_doc_sentence() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("fuzz"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let bad: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            !first.starts_with("//!") && !first.starts_with("#![")
        })
        .collect();
    assert!(bad.is_empty(), "files without a leading `//!` doc: {bad:?}");
}
