#!/usr/bin/env bash
# End-to-end throughput of `wirelens read` against its peers on the same captures, in one run:
# ndpiReader (flows + DPI), tcpdump -w /dev/null (read + write, no decode) and tshark's dns,tree
# (full dissection). For each capture and tool: median wall time of 3 runs (page cache warm),
# packets/s, peak RSS (GNU time), wirelens' speed ratio to each peer; then wirelens' DNS counts
# next to tshark's dns,tree totals. Prints Markdown on stdout; raw outputs stay in a temp folder.
#
# Flow exports (NetFlow v9 / IPFIX, against nfacctd) are measured by bench/flows.sh.
#
# Usage: bash bench/run.sh [--quick] [--runs N] [CAPTURE...]
#   default captures: bench/data/{tiny,dns,dns-tcp,mixed}.pcap (make them with bench/generate.sh)
#   --quick   only the small captures (tiny.pcap, dns-tcp.pcap): a smoke test of script and peers
#   --runs N  runs per tool and capture (default 3; the median is reported)
#   WIRELENS_BIN=path  measure that binary instead of building target/release/wirelens
# If wirelens cannot read captures yet (binary missing or `read` not implemented), the peers are
# still measured and the wirelens columns say so; any other wirelens failure stops the script.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=0
RUNS=3
FILES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) FILES+=("$1") ;;
  esac
  shift
done
if [ "${#FILES[@]}" -eq 0 ]; then
  if [ "$QUICK" = 1 ]; then names=(tiny dns-tcp); else names=(tiny dns dns-tcp mixed); fi
  for n in "${names[@]}"; do FILES+=("bench/data/$n.pcap"); done
fi
for f in "${FILES[@]}"; do
  [ -s "$f" ] || { echo "run: $f missing; make it with: bash bench/generate.sh" >&2; exit 1; }
done
for tool in ndpiReader tcpdump tshark capinfos python3 /usr/bin/time; do
  command -v "$tool" > /dev/null || { echo "run: $tool missing; run scripts/install-test-deps.sh" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wirelens-bench.XXXXXX")
# WIRELENS_BIN measures another build instead of building target/release/wirelens.
WL=${WIRELENS_BIN:-"$ROOT/target/release/wirelens"}
if [ -z "${WIRELENS_BIN:-}" ]; then
  echo "run: building wirelens (release)" >&2
  if ! cargo build --release -p wirelens --quiet >&2; then
    echo "run: cargo build --release -p wirelens failed" >&2
    exit 1
  fi
fi
WL_OK=1
# The probe tells "not implemented yet" (no JSON document) apart from a real failure later.
if ! "$WL" read --periods 1 "${FILES[0]}" > "$TMP/probe.json" 2> "$TMP/probe.err" ||
   ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/probe.json" 2> /dev/null; then
  WL_OK=0
  echo "run: NOTE: $WL cannot read captures yet (no JSON from 'wirelens read'): measuring the peers only" >&2
fi

# Warm the page cache so every tool reads from RAM, as in shared/bench/ANCHORS.md.
cat "${FILES[@]}" > /dev/null

# measure NAME FILE OUTFILE CMD...: RUNS runs; prints "median_wall_s median_maxrss_kib" and keeps
# the last run's stdout in OUTFILE.
measure() {
  local name=$1 file=$2 out=$3; shift 3
  local i walls=() rss=()
  for ((i = 0; i < RUNS; i++)); do
    # Wall time from the shell's microsecond clock (GNU time's %e has 10 ms resolution, too
    # coarse for start-up costs); peak RSS from GNU time.
    local t0=$EPOCHREALTIME
    if ! /usr/bin/time -f '%M' -o "$TMP/time" "$@" > "$out" 2> "$TMP/$name.err"; then
      echo "run: $name failed on $file:" >&2
      tail -n 5 "$TMP/$name.err" >&2
      return 1
    fi
    local t1=$EPOCHREALTIME
    walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
    rss+=("$(tail -n 1 "$TMP/time")")
  done
  printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%s ", a[int((NR+1)/2)]}'
  printf '%s\n' "${rss[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

commas() { python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$1"; }

human_size() { python3 -c 'import sys; n = int(sys.argv[1]); print(f"{n/1e6:.1f} MB" if n >= 1e5 else f"{n/1e3:.1f} kB")' "$1"; }

fmt_row() { # tool packets wall rss_kib wl_wall
  python3 - "$@" <<'EOF'
import sys
tool, pkts, wall, rss, wl = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
w = max(wall, 0.005)  # GNU time has 10 ms resolution; avoid dividing by zero on tiny files
ratio = "—"
if wl not in ("", "-") and not tool.startswith("wirelens read"):
    ratio = f"{w / max(float(wl), 0.005):.2f}×"
print(f"| {tool} | {pkts:,} | {wall:.3f} | {pkts / w:,.0f} | {rss / 1024:.1f} | {ratio} |")
EOF
}

dns_compare() { # wirelens.json tshark-dns-tree.txt
  python3 - "$@" <<'EOF'
import json, re, sys
def find(o, path=()):
    if isinstance(o, dict):
        if "wire_packets" in o and path and path[-1] == "dns":
            return o["wire_packets"]
        for k, v in o.items():
            r = find(v, path + (k,))
            if r is not None:
                return r
    return None
wp = {}
if sys.argv[1] != "-":
    try:
        wp = find(json.load(open(sys.argv[1]))) or {}
    except Exception:
        wp = {}
tree = open(sys.argv[2]).read()
def t(label):
    m = re.search(r"^\s*" + re.escape(label) + r"\s+(\d+)", tree, re.M)
    return int(m.group(1)) if m else 0
ts = {"total": t("Total Packets"), "queries": t("Query"), "replies": t("Response"),
      "nxdomain": t("No such name"), "refused": t("Refused"), "srvfail": t("Server failure")}
# dns,tree counts the rcode of queries too (always 0, "No error"): subtract them.
ts["noerror"] = t("No error") - ts["queries"]
print("| counter | wirelens | tshark dns,tree |")
print("|---|---:|---:|")
for k in ["total", "queries", "replies", "noerror", "nxdomain", "refused", "srvfail"]:
    w = wp.get(k, "n/a")
    mark = "" if w == "n/a" or w == ts[k] else " ≠"
    print(f"| {k} | {w if w == 'n/a' else f'{w:,}'}{mark} | {ts[k]:,} |")
EOF
}

echo "# wirelens benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, median of $RUNS runs"
echo
echo "wirelens at commit $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo '?');" \
     "$(tshark --version 2> /dev/null | head -1 | sed 's/ (Git.*//');" \
     "$(tcpdump --version 2>&1 | head -1); $(ndpiReader -h 2>&1 | grep -o 'nDPI [0-9.]*' | head -1)"
for f in "${FILES[@]}"; do
  base=$(basename "$f" .pcap)
  pkts=$(capinfos -c -M "$f" | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}')
  size=$(stat -L -c %s "$f")
  echo
  echo "## $base.pcap — $(commas "$pkts") packets, $(human_size "$size")"
  echo
  echo "| tool | packets | median wall s | packets/s | max RSS MiB | peer wall / wirelens wall |"
  echo "|---|---:|---:|---:|---:|---:|"
  wl_wall="-"
  wl_json="-"
  all_wall="-"
  if [ "$WL_OK" = 1 ]; then
    # The spine's target: pktvisor's default handlers, net and dns. Ratios are against this row.
    measure wirelens "$f" "$TMP/$base.netdns.json" "$WL" read --policy "$ROOT/bench/net-dns.yaml" "$f" > "$TMP/m"
    read -r wl_wall wl_rss < "$TMP/m"
    fmt_row "wirelens read" "$pkts" "$wl_wall" "$wl_rss" "$wl_wall"
    # Every analyzer of the default set (net, dns, pcap, dhcp, flows + app detection, tls,
    # http, quic): its JSON feeds the DNS comparison below.
    measure wirelens-all "$f" "$TMP/$base.wirelens.json" "$WL" read "$f" > "$TMP/m"
    read -r all_wall all_rss < "$TMP/m"
    wl_json="$TMP/$base.wirelens.json"
    fmt_row "wirelens read, all analyzers" "$pkts" "$all_wall" "$all_rss" "$wl_wall"
  else
    echo "| wirelens read | $(commas "$pkts") | not implemented yet | | | |"
  fi
  measure ndpiReader "$f" "$TMP/$base.ndpi.txt" ndpiReader -i "$f" > "$TMP/m"
  read -r w m < "$TMP/m"
  fmt_row "ndpiReader -i" "$pkts" "$w" "$m" "$wl_wall"
  ndpi_wall=$w
  measure tcpdump "$f" "$TMP/$base.tcpdump.txt" tcpdump -r "$f" -w /dev/null > "$TMP/m"
  read -r w m < "$TMP/m"
  fmt_row "tcpdump -w /dev/null" "$pkts" "$w" "$m" "$wl_wall"
  measure tshark "$f" "$TMP/$base.tshark.txt" tshark -n -r "$f" -q -z dns,tree > "$TMP/m"
  read -r w m < "$TMP/m"
  fmt_row "tshark -z dns,tree" "$pkts" "$w" "$m" "$wl_wall"
  if [ "$all_wall" != "-" ]; then
    echo
    awk -v n="$ndpi_wall" -v a="$all_wall" 'BEGIN { printf "wirelens with all analyzers: %.2f× ndpiReader'"'"'s packets/s\n", n / a }'
  fi
  echo
  echo "DNS counts, wirelens vs tshark (dns,tree):"
  echo
  dns_compare "$wl_json" "$TMP/$base.tshark.txt"
done
echo
echo "Raw outputs: $TMP"
