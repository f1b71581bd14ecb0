//! Helpers shared by wirelens' integration tests: where the reference data lives, how a missing
//! external tool is handled (a failure under CI, a note elsewhere), and a small JSON reader.
//! Not a test itself.

#![allow(dead_code)] // each test crate uses a different subset of these helpers

pub mod flood;
pub mod json;

use std::path::PathBuf;
use std::process::Command;

/// True when running under CI (`CI=true`), where a missing tool or data set must fail the run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The read-only reference folder `shared/`, a sibling of the repository checkout.
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Called when a prerequisite is missing: panics under CI, otherwise prints why the test returns
/// early. Returns so the caller can `return` right after.
pub fn missing(what: &str) {
    if in_ci() {
        panic!("{what} is required when CI=true");
    }
    eprintln!("note: {what} not available; test returns without checking (it fails under CI=true)");
}

/// True when `tool --version` runs successfully.
pub fn tool_runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Path of the wirelens binary Cargo built for this test run, or `WIRELENS_BIN` when set (to
/// check another build, e.g. `target/release/wirelens`, against the same expectations).
pub fn wirelens_bin() -> PathBuf {
    std::env::var_os("WIRELENS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wirelens")))
}
