#!/usr/bin/env bash
# Interleaved pair timing: `wirelens read` (all analyzers, or a policy) against ndpiReader on one
# capture, alternating the two tools run by run, so that the machine's drift (a shared VM moves
# ±15 % from minute to minute) falls on both alike. Prints every pair's wall times and ratio,
# then the median ratio and the range. This is the figure for "≥ 3× ndpiReader's packets/s"
# (bench/run.sh runs each tool three times in a row, which drift can bias either way).
#
# Usage: bash bench/pair.sh [--runs N] [--policy FILE.yaml] CAPTURE
#   --runs N          pairs to run (default 11)
#   --policy FILE     wirelens policy (default: none, every analyzer of the default set)
#   WIRELENS_BIN=path measure that binary instead of building target/release/wirelens
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=11
POLICY=()
while [ $# -gt 1 ]; do
  case "$1" in
    --runs) RUNS=$2; shift ;;
    --policy) POLICY=(--policy "$2"); shift ;;
    *) echo "pair: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ $# -eq 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
CAP=$1
for tool in ndpiReader python3; do
  command -v "$tool" > /dev/null || { echo "pair: $tool missing; run scripts/install-test-deps.sh" >&2; exit 1; }
done
WL=${WIRELENS_BIN:-"$(pwd)/target/release/wirelens"}
if [ -z "${WIRELENS_BIN:-}" ]; then
  cargo build --release -p wirelens --quiet >&2
fi
cat "$CAP" > /dev/null   # warm the page cache: both tools read from RAM

wall() { # CMD...: wall seconds from the shell's microsecond clock, output discarded
  local t0=$EPOCHREALTIME
  "$@" > /dev/null 2>&1 || { echo "pair: failed: $*" >&2; exit 1; }
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'
}

pkts=$(capinfos -c -M "$CAP" | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}')
echo "# $(basename "$CAP"): $pkts packets, $RUNS interleaved pairs, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| pair | wirelens s | ndpiReader s | ratio |"
echo "|---:|---:|---:|---:|"
ratios=()
wls=()
for ((i = 1; i <= RUNS; i++)); do
  # Alternate which tool goes first, so neither always runs on the warmer (or busier) side.
  if ((i % 2)); then
    w=$(wall "$WL" read "${POLICY[@]}" "$CAP"); n=$(wall ndpiReader -i "$CAP")
  else
    n=$(wall ndpiReader -i "$CAP"); w=$(wall "$WL" read "${POLICY[@]}" "$CAP")
  fi
  r=$(awk -v n="$n" -v w="$w" 'BEGIN { printf "%.3f", n / w }')
  ratios+=("$r"); wls+=("$w")
  echo "| $i | $w | $n | ${r}× |"
done
python3 - "$pkts" "${#ratios[@]}" "${ratios[@]}" "${wls[@]}" <<'PY'
import statistics, sys
pkts, n = int(sys.argv[1]), int(sys.argv[2])
r = [float(x) for x in sys.argv[3:3 + n]]
w = [float(x) for x in sys.argv[3 + n:]]
print()
print(f"median ratio {statistics.median(r):.2f}× (range {min(r):.2f}–{max(r):.2f}×); "
      f"wirelens median {pkts / statistics.median(w):,.0f} packets/s")
PY
