#!/usr/bin/env bash
# Flow export throughput: `wirelens read -i netflow` (one worker: one core) against pmacct's
# collector nfacctd reading the same capture (its `pcap_savefile` input), on synthetic NetFlow v9
# and IPFIX captures written by bench/flowgen.py (one exporter, 30 records per datagram), each
# twice: with uniform keys (nearly every top-N key new: the worst case, the headline figure) and
# with Zipf-distributed hosts, ports and interfaces (heavy-tailed, as real exports are).
# For each capture and tool: wall time and CPU time (user + system, GNU time) of N runs, the
# two tools taking turns so that both meet the same load on the machine; flow records per CPU
# second at the fastest run (the tool's own cost: on a shared machine other tenants only add
# time) and at the median run; and a check that the tool found every record (wirelens:
# records_flows; nfacctd: the packets of its 5-tuple table against the generator's total).
# nfacctd gets large plugin buffers so that reading a file at full speed does not drop records
# between its core and its print plugin. Prints Markdown on stdout: the table, then per capture
# wirelens' records per CPU second against the 1 M target and its ratio to nfacctd's, both at
# the fastest and at the median run.
#
# Usage: bash bench/flows.sh [--records N] [--runs N]
#   --records N  records per capture (default 2000000)
#   --runs N     runs per tool and capture (default 5)
#   WIRELENS_BIN=path  measure that binary instead of building target/release/wirelens
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
RECORDS=2000000
RUNS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --records) RECORDS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
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
stat() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[2:]]; print(min(v) if sys.argv[1] == "min" else statistics.median(v))' "$@"; }
rate() { python3 -c "print(round($1 / max($2, 1e-9)))"; }

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

summary=()
echo "| capture | records | tool | min CPU s | median CPU s | median wall s | records per CPU second (fastest / median run) | all records found |"
echo "|---|---:|---|---:|---:|---:|---:|---|"
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

  # Each round runs wirelens (the default flow handler, one worker), then nfacctd.
  wl_t=(); wl_c=(); nf_t=(); nf_c=()
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %S" -o "$TMP/time" \
      "$WL" read -i netflow --workers 1 --periods 1 --no-progress "$cap" > "$TMP/wl.json"
    read -r e u s < "$TMP/time"
    wl_t+=("$e"); wl_c+=("$(python3 -c "print($u + $s)")")
    rm -f "$TMP/nf.csv"
    run_nfacctd "$ROOT/$cap" "$TMP/nf.csv"
    read -r e u s < "$TMP/time"
    nf_t+=("$e"); nf_c+=("$(python3 -c "print($u + $s)")")
  done

  found=$(python3 -c '
import json,sys
d = json.load(open(sys.argv[1]))["1m"]["flow"]["devices"]
print(sum(v["records_flows"] for v in d.values()))' "$TMP/wl.json")
  ok=no; [ "$found" = "$n" ] && ok=yes
  wl_min=$(stat min "${wl_c[@]}"); wl_med=$(stat med "${wl_c[@]}")
  wl_fast=$(rate "$n" "$wl_min"); wl_mid=$(rate "$n" "$wl_med")
  printf '| %s | %s | wirelens (1 worker) | %.2f | %.2f | %.2f | %s / %s | %s |\n' "$kind" "$n" \
    "$wl_min" "$wl_med" "$(stat med "${wl_t[@]}")" "$wl_fast" "$wl_mid" "$ok ($found)"

  nf_packets=$(python3 -c '
import csv,sys
csv.field_size_limit(sys.maxsize)
r = csv.DictReader(open(sys.argv[1]))
# A plugin that lost data (a loaded machine) can leave torn rows: count the whole ones.
print(sum(int(x["PACKETS"]) for x in r if (x.get("PACKETS") or "").isdigit()))' "$TMP/nf.csv")
  ok=no; [ "$nf_packets" = "$packets" ] && ok=yes
  nf_min=$(stat min "${nf_c[@]}"); nf_med=$(stat med "${nf_c[@]}")
  nf_fast=$(rate "$n" "$nf_min"); nf_mid=$(rate "$n" "$nf_med")
  printf '| %s | %s | nfacctd (print, 5-tuple) | %.2f | %.2f | %.2f | %s / %s | %s (packets %s of %s) |\n' \
    "$kind" "$n" "$nf_min" "$nf_med" "$(stat med "${nf_t[@]}")" "$nf_fast" "$nf_mid" "$ok" "$nf_packets" "$packets"
  summary+=("$(python3 -c "
f, m, nf, nm = $wl_fast, $wl_mid, $nf_fast, $nf_mid
print(f'- $kind: wirelens {f:,} records per CPU second at the fastest run ({f / 1e6:.2f} of the 1 M target, {f / nf:.2f}x nfacctd {nf:,}); {m:,} at the median run ({m / 1e6:.2f}, {m / nm:.2f}x nfacctd {nm:,})')")")
done
echo
printf '%s\n' "${summary[@]}"
echo
echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end of the run."
