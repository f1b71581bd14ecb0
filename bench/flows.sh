#!/usr/bin/env bash
# Flow export throughput: `wirelens read -i netflow` (one worker: one core) against pmacct's
# collector nfacctd reading the same capture (its `pcap_savefile` input), on synthetic NetFlow v9
# and IPFIX captures written by bench/flowgen.py (one exporter, 30 records per datagram).
# For each capture and tool: median wall time of N runs, flow records/s, and a check that the
# tool found every record (wirelens: records_flows; nfacctd: the packets of its 5-tuple table
# against the generator's total). nfacctd has a fixed start/stop cost (about 4 s here: process
# setup, cache purge, exit), measured on a 30-record capture and subtracted for its records/s;
# both raw and net figures are printed. Prints Markdown on stdout.
#
# Usage: bash bench/flows.sh [--records N] [--runs N]
#   --records N  records per capture (default 2000000)
#   --runs N     runs per tool and capture (default 3)
#   WIRELENS_BIN=path  measure that binary instead of building target/release/wirelens
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
RECORDS=2000000
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --records) RECORDS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "flows: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in python3 nfacctd; do
  command -v "$tool" > /dev/null || { echo "flows: $tool missing; run scripts/install-test-deps.sh" >&2; exit 1; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wirelens-flows.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
WL=${WIRELENS_BIN:-"$ROOT/target/release/wirelens"}
if [ -z "${WIRELENS_BIN:-}" ]; then
  echo "flows: building wirelens (release)" >&2
  cargo build --release -p wirelens --quiet >&2
fi

mkdir -p bench/data
now() { python3 -c 'import time; print(time.monotonic())'; }
median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

echo "| capture | records | tool | median wall s | records/s | all records found |"
echo "|---|---:|---|---:|---:|---|"
for fmt in v9 ipfix; do
  cap="bench/data/flows-$fmt-$RECORDS.pcap"
  totals="$cap.totals"
  if [ ! -s "$cap" ] || [ ! -s "$totals" ]; then
    echo "flows: generating $cap" >&2
    python3 bench/flowgen.py "$fmt" "$RECORDS" "$cap" > "$totals"
  fi
  read -r n packets _bytes < "$totals"
  small="$TMP/small-$fmt.pcap"
  python3 bench/flowgen.py "$fmt" 30 "$small" > /dev/null

  # wirelens: the default flow handler, one worker.
  times=()
  for _ in $(seq "$RUNS"); do
    t0=$(now)
    "$WL" read -i netflow --workers 1 --periods 1 --no-progress "$cap" > "$TMP/wl.json"
    t1=$(now)
    times+=("$(python3 -c "print($t1 - $t0)")")
  done
  wl=$(median "${times[@]}")
  found=$(python3 -c '
import json,sys
d = json.load(open(sys.argv[1]))["1m"]["flow"]["devices"]
print(sum(v["records_flows"] for v in d.values()))' "$TMP/wl.json")
  ok=no; [ "$found" = "$n" ] && ok=yes
  printf '| %s | %s | wirelens (1 worker) | %.2f | %.0f | %s |\n' "$fmt" "$n" "$wl" \
    "$(python3 -c "print($n / $wl)")" "$ok ($found)"

  # nfacctd: pcap_savefile input, print plugin keyed by the 5-tuple, written once at exit.
  run_nfacctd() {
    local file=$1 out=$2
    cat > "$TMP/nfacctd.conf" <<EOF
daemonize: false
pcap_savefile: $file
pcap_savefile_wait: false
plugins: print
print_output: csv
print_output_file: $out
print_refresh_time: 86400
aggregate: src_host,dst_host,src_port,dst_port,proto
EOF
    nfacctd -f "$TMP/nfacctd.conf" > "$TMP/nfacctd.log" 2>&1
  }
  base=()
  for _ in $(seq "$RUNS"); do
    t0=$(now); run_nfacctd "$small" "$TMP/small.csv"; t1=$(now)
    base+=("$(python3 -c "print($t1 - $t0)")")
  done
  times=()
  for _ in $(seq "$RUNS"); do
    rm -f "$TMP/nf.csv"
    t0=$(now); run_nfacctd "$ROOT/$cap" "$TMP/nf.csv"; t1=$(now)
    times+=("$(python3 -c "print($t1 - $t0)")")
  done
  nf=$(median "${times[@]}")
  nf0=$(median "${base[@]}")
  nf_packets=$(python3 -c '
import csv,sys
r = csv.DictReader(open(sys.argv[1]))
print(sum(int(x["PACKETS"]) for x in r))' "$TMP/nf.csv")
  ok=no; [ "$nf_packets" = "$packets" ] && ok=yes
  printf '| %s | %s | nfacctd (print, 5-tuple) | %.2f (%.2f fixed) | %.0f raw, %.0f net of the fixed cost | %s (packets %s of %s) |\n' \
    "$fmt" "$n" "$nf" "$nf0" "$(python3 -c "print($n / $nf)")" \
    "$(python3 -c "print($n / max($nf - $nf0, 1e-9))")" "$ok" "$nf_packets" "$packets"
done
echo
echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end of the run."
