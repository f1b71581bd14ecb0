#!/usr/bin/env bash
# Flow export throughput: `wirelens read -i netflow` (one worker: one core) against pmacct's
# collector nfacctd reading the same capture (its `pcap_savefile` input), on synthetic NetFlow v9
# and IPFIX captures written by bench/flowgen.py (one exporter, 30 records per datagram), each
# twice: with uniform keys (nearly every top-N key new: the worst case, the headline figure) and
# with Zipf-distributed hosts, ports and interfaces (heavy-tailed, as real exports are).
# For each capture and tool: median wall time and CPU time (user + system, GNU time) of N runs,
# flow records per CPU second, and a check that the tool found every record (wirelens:
# records_flows; nfacctd: the packets of its 5-tuple table against the generator's total).
# CPU time is the figure to compare on a shared machine (wall time grows with other load).
# nfacctd gets large plugin buffers so that reading a file at full speed does not drop records
# between its core and its print plugin. Prints Markdown on stdout: the table, then per capture
# wirelens' records per CPU second against the 1 M target and its ratio to nfacctd's.
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
for tool in python3 nfacctd /usr/bin/time; do
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
median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

summary=()
echo "| capture | records | tool | median wall s | median CPU s | records per CPU second | all records found |"
echo "|---|---:|---|---:|---:|---:|---|"
for kind in v9 ipfix v9-zipf ipfix-zipf; do
  fmt=${kind%-zipf}
  dist=uniform; [ "$kind" != "$fmt" ] && dist=zipf
  if [ "$dist" = uniform ]; then
    cap="bench/data/flows-$fmt-$RECORDS.pcap"
  else
    cap="bench/data/flows-$fmt-zipf-$RECORDS.pcap"
  fi
  totals="$cap.totals"
  if [ ! -s "$cap" ] || [ ! -s "$totals" ]; then
    echo "flows: generating $cap" >&2
    python3 bench/flowgen.py "$fmt" "$RECORDS" "$cap" "$dist" > "$totals"
  fi
  read -r n packets _bytes < "$totals"

  # wirelens: the default flow handler, one worker.
  times=(); cpus=()
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %S" -o "$TMP/time" \
      "$WL" read -i netflow --workers 1 --periods 1 --no-progress "$cap" > "$TMP/wl.json"
    read -r e u s < "$TMP/time"
    times+=("$e"); cpus+=("$(python3 -c "print($u + $s)")")
  done
  wl=$(median "${times[@]}")
  wlc=$(median "${cpus[@]}")
  wl_rate=$(python3 -c "print($n / max($wlc, 1e-9))")
  found=$(python3 -c '
import json,sys
d = json.load(open(sys.argv[1]))["1m"]["flow"]["devices"]
print(sum(v["records_flows"] for v in d.values()))' "$TMP/wl.json")
  ok=no; [ "$found" = "$n" ] && ok=yes
  printf '| %s | %s | wirelens (1 worker) | %.2f | %.2f | %.0f | %s |\n' "$kind" "$n" "$wl" "$wlc" \
    "$(python3 -c "print($n / max($wlc, 1e-9))")" "$ok ($found)"

  # nfacctd: pcap_savefile input, print plugin keyed by the 5-tuple, written at exit. When its
  # cache fills, the plugin also writes what it holds and starts over: appending keeps every
  # write (without it the last one replaces the others and most records seem lost).
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
plugin_buffer_size: 102400
plugin_pipe_size: 1024000000
print_output_file_append: true
EOF
    # nfacctd forks its plugin: GNU time counts the children it waited for.
    /usr/bin/time -f "%e %U %S" -o "$TMP/time" nfacctd -f "$TMP/nfacctd.conf" > "$TMP/nfacctd.log" 2>&1
  }
  times=(); cpus=()
  for _ in $(seq "$RUNS"); do
    rm -f "$TMP/nf.csv"
    run_nfacctd "$ROOT/$cap" "$TMP/nf.csv"
    read -r e u s < "$TMP/time"
    times+=("$e"); cpus+=("$(python3 -c "print($u + $s)")")
  done
  nf=$(median "${times[@]}")
  nfc=$(median "${cpus[@]}")
  nf_packets=$(python3 -c '
import csv,sys
csv.field_size_limit(sys.maxsize)
r = csv.DictReader(open(sys.argv[1]))
# A plugin that lost data (a loaded machine) can leave torn rows: count the whole ones.
print(sum(int(x["PACKETS"]) for x in r if (x.get("PACKETS") or "").isdigit()))' "$TMP/nf.csv")
  ok=no; [ "$nf_packets" = "$packets" ] && ok=yes
  printf '| %s | %s | nfacctd (print, 5-tuple) | %.2f | %.2f | %.0f | %s (packets %s of %s) |\n' \
    "$kind" "$n" "$nf" "$nfc" "$(python3 -c "print($n / max($nfc, 1e-9))")" "$ok" "$nf_packets" "$packets"
  summary+=("$(python3 -c "
wl, nf = $wl_rate, $n / max($nfc, 1e-9)
print(f'- $kind: wirelens {wl:,.0f} records per CPU second ({wl / 1e6:.2f} of the 1 M target), {wl / nf:.2f}x nfacctd ({nf:,.0f})')")")
done
echo
printf '%s\n' "${summary[@]}"
echo
echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end of the run."
