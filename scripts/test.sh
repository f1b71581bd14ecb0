#!/usr/bin/env bash
# The whole wirelens check, as CI runs it (`.ci/run` calls this) and as README.md documents it:
# test dependencies, formatting, clippy, the workspace tests (including the tshark oracle), and a
# short fuzz smoke run of every target in fuzz/fuzz_targets/. Each stage is timed; a summary with
# the test totals closes the output.
#
# With CI=true every tool must be present (a missing one fails the run instead of skipping).
# Environment knobs:
#   FUZZ_SECONDS  seconds per fuzz target (default 15; 0 skips the fuzz stage outside CI)
#   SKIP_INSTALL  1 = do not run scripts/install-test-deps.sh (outside CI only)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CI=${CI:-false}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wirelens-test.XXXXXX")

declare -a STAGES=()
TESTS_PASSED=0
TESTS_FAILED=0
TESTS_IGNORED=0
START_ALL=$(date +%s)

in_ci() { [ "$CI" = "true" ] || [ "$CI" = "1" ]; }

summary() {
  local rc=$?
  echo
  echo "== summary (logs in $LOG_DIR)"
  for s in "${STAGES[@]}"; do echo "  $s"; done
  echo "  total $(( $(date +%s) - START_ALL )) s"
  if [ -s "$LOG_DIR/test-counts" ]; then
    read -r TESTS_PASSED TESTS_FAILED TESTS_IGNORED < "$LOG_DIR/test-counts"
  fi
  if [ "$rc" -ne 0 ]; then echo "  FAILED (exit $rc)"; fi
  # Closing line in the plain "N passed, N failed" form, summed over every cargo test binary.
  echo "tests: $TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_IGNORED skipped"
  exit "$rc"
}
trap summary EXIT

# stage NAME CMD...: runs CMD, records its wall time and outcome, stops the run on failure.
stage() {
  local name=$1; shift
  local t0 rc
  echo
  echo "== $name: $*"
  t0=$(date +%s)
  # A subshell with errexit: a failing command inside a stage function ends the stage.
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  local dt=$(( $(date +%s) - t0 ))
  if [ "$rc" -eq 0 ]; then
    STAGES+=("ok    ${dt}s  $name")
  else
    STAGES+=("FAIL  ${dt}s  $name (exit $rc)")
    exit "$rc"
  fi
}

# A tool that is missing: fatal under CI, a note otherwise. Returns 1 so callers can skip.
need() {
  if in_ci; then
    echo "error: $1 is required under CI=true" >&2
    exit 1
  fi
  echo "note: $1 not available; skipping what needs it (CI=true makes this an error)" >&2
  return 1
}

install_deps() {
  if in_ci; then
    bash scripts/install-test-deps.sh --no-bench-gen
  elif [ "${SKIP_INSTALL:-0}" = 1 ]; then
    echo "SKIP_INSTALL=1: not installing"
  elif ! bash scripts/install-test-deps.sh --no-bench-gen; then
    echo "note: install-test-deps failed; tests that need tshark will say so" >&2
  fi
}

cargo_tests() {
  local log="$LOG_DIR/cargo-test.log"
  set +e
  cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  # Sum "test result: ok. 12 passed; 0 failed; 0 ignored; ..." over all test binaries.
  awk '/^test result:/ { for (i = 1; i <= NF; i++) {
           if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
         END { print p + 0, f + 0, g + 0 }' "$log" > "$LOG_DIR/test-counts"
  local passed; read -r passed _ < "$LOG_DIR/test-counts"
  if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then
    echo "error: cargo test ran no test" >&2
    return 1
  fi
  return "$rc"
}

fuzz_smoke() {
  local dir="$ROOT/fuzz/fuzz_targets"
  if [ ! -d "$dir" ]; then
    echo "no fuzz/fuzz_targets/ folder: nothing to fuzz"
    return 0
  fi
  if [ "$FUZZ_SECONDS" = 0 ] && ! in_ci; then
    echo "FUZZ_SECONDS=0: fuzz smoke skipped"
    return 0
  fi
  cargo fuzz --version > /dev/null 2>&1 || { need "cargo-fuzz" || return 0; }
  local targets=() f
  for f in "$dir"/*.rs; do
    [ -e "$f" ] && targets+=("$(basename "$f" .rs)")
  done
  if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found"
    return 0
  fi
  # --sanitizer none: ASan needs nightly; coverage-guided fuzzing itself works on stable.
  (cd "$ROOT/fuzz" && cargo fuzz build --sanitizer none)
  local t
  for t in "${targets[@]}"; do
    local t0; t0=$(date +%s)
    mkdir -p "$ROOT/fuzz/corpus/$t"
    (cd "$ROOT/fuzz" && cargo fuzz run --sanitizer none "$t" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1) \
        > "$LOG_DIR/fuzz-$t.log" 2>&1 || {
      echo "fuzz target $t failed; last lines of $LOG_DIR/fuzz-$t.log:" >&2
      tail -n 40 "$LOG_DIR/fuzz-$t.log" >&2
      return 1
    }
    echo "  $t: $(grep -m1 -o 'Done [0-9]* runs' "$LOG_DIR/fuzz-$t.log" || echo 'ran') in $(( $(date +%s) - t0 )) s"
  done
}

echo "wirelens checks in $ROOT (CI=$CI), $(nproc) cores"
stage "install test dependencies" install_deps
stage "cargo fmt --check" cargo fmt --all -- --check
stage "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
stage "cargo test" cargo_tests
stage "fuzz smoke (${FUZZ_SECONDS}s per target)" fuzz_smoke
