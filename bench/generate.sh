#!/usr/bin/env bash
# Makes the benchmark captures bench/data/{dns,dns-tcp,mixed,tiny}.pcap exactly as
# shared/bench/GENERATE.md describes: real servers (Knot DNS, nginx) and real clients (dnsperf,
# dig, wrk, curl, openssl s_client) talk over the loopback of a network namespace this script
# creates, while tcpdump captures inside it. No traffic leaves the namespace; every client loop is
# bounded in count and time. Files that already exist are kept (delete one to remake it).
# Needs root. Takes about 3 minutes. Not run by CI.
# Usage: bash bench/generate.sh
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=$(realpath -m bench/data)
export OUT
mkdir -p "$OUT"
printf '*\n' > "$OUT/.gitignore"

need_dns=0; need_tcp=0; need_mixed=0; need_tiny=0
[ -s "$OUT/dns.pcap" ] || need_dns=1
[ -s "$OUT/dns-tcp.pcap" ] || need_tcp=1
[ -s "$OUT/mixed.pcap" ] || need_mixed=1
[ -s "$OUT/tiny.pcap" ] || need_tiny=1
if [ $((need_dns + need_tcp + need_mixed + need_tiny)) -eq 0 ]; then
  echo "generate: all captures exist in $OUT; delete one to remake it"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "generate: must run as root (network namespace, tcpdump)" >&2
  exit 1
fi

bash scripts/install-test-deps.sh
for tool in knotd knotc dnsperf dig nginx wrk curl openssl tcpdump editcap ethtool python3; do
  command -v "$tool" > /dev/null || { echo "generate: $tool missing" >&2; exit 1; }
done

NS=wlbench$$
W=$(mktemp -d); chmod 755 "$W"   # nginx workers (user nobody) must read $W/www
export W
cleanup() {
  set +e
  [ -f "$W/knot.pid" ] && kill -TERM "$(cat "$W/knot.pid")" 2> /dev/null
  [ -f "$W/nginx.pid" ] && kill -QUIT "$(cat "$W/nginx.pid")" 2> /dev/null
  sleep 1
  ip netns pids "$NS" 2> /dev/null | xargs -r kill -TERM 2> /dev/null
  ip netns del "$NS" 2> /dev/null
  rm -rf "$W"
}
trap cleanup EXIT
cd "$W"

ip netns add "$NS"
ip netns exec "$NS" ip link set lo mtu 1500 up
ip netns exec "$NS" ethtool -K lo tso off gso off gro off tx-udp-segmentation off
NSX="ip netns exec $NS"

# --- 1. DNS server: Knot with a generated zone --------------------------------------------------
cat > mkzone.py <<'EOF'
"""Write bench.test.zone (~88k owner names) and queries.txt (100k distinct names) into the cwd."""
import random
rnd = random.Random(20261124)
N_HOST, N_CNAME, N_NX, N_REFUSED = 80000, 8000, 11000, 1000
with open("bench.test.zone", "w") as z:
    z.write("$ORIGIN bench.test.\n$TTL 300\n")
    z.write("@ SOA ns1 hostmaster 2026112401 3600 600 86400 300\n@ NS ns1\n@ NS ns2\n")
    z.write("ns1 A 127.0.0.1\nns2 AAAA ::1\n")
    for i in range(N_HOST):
        h = f"h{i:05d}"
        z.write(f"{h} A 198.51.{(i >> 8) & 255}.{i & 255}\n")
        if i % 7 == 0:
            z.write(f"{h} A 203.0.113.{i % 251}\n")
        if i % 2 == 0:
            z.write(f"{h} AAAA 2001:db8:{i >> 16:x}:{i & 0xffff:x}::1\n")
        if i % 4 == 0:
            z.write(f"{h} MX 10 mx1.{h}\n{h} MX 20 mx2.{h}\n")
        if i % 3 == 0:
            z.write(f'{h} TXT "v=spf1 ip4:198.51.{(i >> 8) & 255}.0/24 -all" "id={rnd.getrandbits(64):016x}"\n')
        if i % 5 == 0:
            z.write(f"{h} HTTPS 1 . alpn=h2,h3 ipv4hint=198.51.{(i >> 8) & 255}.{i & 255}\n")
    for i in range(N_CNAME):
        z.write(f"c{i:05d} CNAME h{rnd.randrange(N_HOST):05d}\n")
names = [f"h{i:05d}.bench.test" for i in range(N_HOST)]
names += [f"c{i:05d}.bench.test" for i in range(N_CNAME)]
alpha = "abcdefghijklmnopqrstuvwxyz0123456789"
nx = set()
while len(nx) < N_NX:
    nx.add("".join(rnd.choice(alpha) for _ in range(rnd.randint(6, 20))) + ".bench.test")
names += sorted(nx)
names += [f"www{i:04d}.example.org" for i in range(N_REFUSED)]
rnd.shuffle(names)
qtypes = ["A"] * 50 + ["AAAA"] * 25 + ["HTTPS"] * 10 + ["MX"] * 8 + ["TXT"] * 7
with open("queries.txt", "w") as q:
    for n in names:
        q.write(f"{n} {rnd.choice(qtypes)}\n")
print(len(names), "queries")
EOF
mkdir -p "$W/knot"
cat > knot.conf <<EOF
server:
    rundir: "$W/knot"
    listen: [ 127.0.0.1@53, ::1@53 ]
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    tcp-idle-timeout: 10
database:
    storage: "$W/knot"
log:
  - target: stderr
    any: notice
template:
  - id: default
    storage: "$W"
    zonefile-load: whole
    journal-content: none
zone:
  - domain: bench.test
    file: "bench.test.zone"
EOF
python3 mkzone.py
$NSX knotc -c knot.conf conf-check
$NSX knotd -c "$W/knot.conf" > knot.log 2>&1 & echo $! > knot.pid
sleep 3
echo "generate: sanity check: $($NSX dig +short @127.0.0.1 h00000.bench.test HTTPS)"

# --- 2. dns.pcap: DNS over UDP --------------------------------------------------------------------
if [ "$need_dns" = 1 ]; then
  echo "generate: dns.pcap (8 dnsperf runs of 200,000 queries, ~45 s)"
  $NSX tcpdump -i lo -n -B 262144 -w "$OUT/dns.pcap.tmp" 'port 53' 2> tcpdump-dns.log & TP=$!
  sleep 2
  i=0
  for src in 127.0.1.1 127.0.2.1 127.1.0.1 127.10.0.1 127.20.30.40 127.99.0.7 127.200.1.1; do
    i=$((i+1))
    case $((i % 3)) in 0) EDNS="";; 1) EDNS="-e";; 2) EDNS="-e -D";; esac
    # shellcheck disable=SC2086
    timeout 60 $NSX dnsperf -s 127.0.0.1 -a $src -d queries.txt -n 2 -c 64 -Q 40000 -l 30 $EDNS > dnsperf-udp-$i.log 2>&1
  done
  timeout 60 $NSX dnsperf -s ::1 -d queries.txt -n 2 -c 64 -Q 40000 -l 30 -e > dnsperf-udp-v6.log 2>&1
  sleep 1; kill -INT $TP; wait $TP || true; cat tcpdump-dns.log
  mv "$OUT/dns.pcap.tmp" "$OUT/dns.pcap"
fi

# --- 3. dns-tcp.pcap: DNS over TCP ----------------------------------------------------------------
if [ "$need_tcp" = 1 ]; then
  echo "generate: dns-tcp.pcap (2 dnsperf TCP runs + 1,000 dig +tcp, ~40 s)"
  $NSX tcpdump -i lo -n -B 262144 -w "$OUT/dns-tcp.pcap.tmp" 'port 53' 2> tcpdump-dnstcp.log & TP=$!
  sleep 2
  timeout 60 $NSX dnsperf -m tcp -s 127.0.0.1 -a 127.0.3.1 -d queries.txt -n 1 -c 32 -Q 20000 -l 30 -e > dnsperf-tcp-1.log 2>&1
  timeout 60 $NSX dnsperf -m tcp -s ::1 -d queries.txt -n 1 -c 8 -Q 20000 -l 30 > dnsperf-tcp-v6.log 2>&1
  # 1000 short TCP connections, one query each (bounded: 1000 iterations, 2 s timeout each)
  head -n 1000 queries.txt | while read -r name qtype; do
    $NSX dig +tcp +tries=1 +time=2 -b 127.0.4.1 @127.0.0.1 "$name" "$qtype" > /dev/null || true
  done
  sleep 1; kill -INT $TP; wait $TP || true; cat tcpdump-dnstcp.log
  mv "$OUT/dns-tcp.pcap.tmp" "$OUT/dns-tcp.pcap"
fi

# --- 4. mixed.pcap: HTTP, HTTPS and DNS -----------------------------------------------------------
if [ "$need_mixed" = 1 ]; then
  echo "generate: mixed.pcap (wrk, curl, openssl s_client and dnsperf, ~50 s)"
  cat > mkwww.py <<'EOF'
"""Static site for nginx: 400 files of mixed size under www/, paths.txt lists them plus 10% missing paths."""
import os, random
rnd = random.Random(7)
os.makedirs("www/static", exist_ok=True); os.makedirs("www/api/v1", exist_ok=True)
paths = []
with open("www/index.html", "w") as f:
    f.write("<html><head><title>bench</title></head><body>" + "lorem ipsum " * 40 + "</body></html>\n")
paths.append("/")
for i in range(400):
    r = rnd.random()
    size = rnd.randint(200, 2000) if r < 0.6 else rnd.randint(2000, 10000) if r < 0.9 else \
        rnd.randint(10000, 50000) if r < 0.99 else rnd.randint(50000, 200000)
    if i % 4 == 0:
        p = f"/api/v1/item{i}.json"
        body = ('{"id":%d,"data":"' % i + "x" * size + '"}\n').encode()
    else:
        p = f"/static/f{i}.bin"
        body = rnd.randbytes(size)
    with open("www" + p, "wb") as f:
        f.write(body)
    paths.append(p)
paths += [f"/missing/{i}.html" for i in range(45)]
with open("paths.txt", "w") as f:
    f.write("\n".join(paths) + "\n")
EOF
  cat > paths.lua <<'EOF'
local paths = {}
for line in io.lines("paths.txt") do paths[#paths + 1] = line end
math.randomseed(12345)
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
EOF
  python3 mkwww.py
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=www.bench.test" \
    -addext "subjectAltName=DNS:*.bench.test,DNS:bench.test,DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout ec-key.pem -out ec-cert.pem 2> /dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=legacy.bench.test" \
    -addext "subjectAltName=DNS:*.bench.test,DNS:localhost,IP:127.0.0.1" -keyout rsa-key.pem -out rsa-cert.pem 2> /dev/null
  mkdir -p "$W/nginx-tmp"
  cat > nginx.conf <<EOF
worker_processes 2;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    types { text/html html; application/octet-stream bin; application/json json; }
    default_type application/octet-stream;
    client_body_temp_path $W/nginx-tmp/body;
    proxy_temp_path $W/nginx-tmp/proxy;
    fastcgi_temp_path $W/nginx-tmp/fastcgi;
    uwsgi_temp_path $W/nginx-tmp/uwsgi;
    scgi_temp_path $W/nginx-tmp/scgi;
    root $W/www;
    server { listen 127.0.0.1:80; listen [::1]:80; }
    server {
        listen 127.0.0.1:443 ssl http2; listen [::1]:443 ssl http2;
        ssl_certificate $W/ec-cert.pem; ssl_certificate_key $W/ec-key.pem;
        ssl_certificate $W/rsa-cert.pem; ssl_certificate_key $W/rsa-key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
    }
    server {
        listen 127.0.0.1:8443 ssl;
        ssl_certificate $W/rsa-cert.pem; ssl_certificate_key $W/rsa-key.pem;
        ssl_protocols TLSv1.2;
        ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305;
    }
}
EOF
  $NSX nginx -t -p "$W" -e "$W/nginx-error.log" -c "$W/nginx.conf"
  $NSX nginx -p "$W" -e "$W/nginx-error.log" -c "$W/nginx.conf" &
  sleep 1
  cat > gen-mixed.sh <<'EOF'
set -u
UA='User-Agent: wrk/4.1.0 (bench)'
tcpdump -i lo -n -B 262144 -w "$OUT/mixed.pcap.tmp" 2> tcpdump-mixed.log & TP=$!
sleep 2
# background DNS over UDP for the whole run (bounded by -l 45)
timeout 60 dnsperf -s 127.0.0.1 -a 127.0.5.1 -d queries.txt -n 1 -c 16 -Q 2000 -l 45 -e > dnsperf-mixed.log 2>&1 & DP=$!
# HTTP/1.1 keep-alive, cleartext
timeout 30 wrk -t2 -c64 -d3s -H "$UA" -H "Host: www.bench.test" -s paths.lua http://127.0.0.1/ > wrk-1.log 2>&1
# HTTP/1.1, one request per TCP connection
timeout 30 wrk -t2 -c16 -d3s -H "$UA" -H "Host: api.bench.test" -H "Connection: close" -s paths.lua http://127.0.0.1/ > wrk-2.log 2>&1
# HTTP/1.1 keep-alive over IPv6
timeout 30 wrk -t2 -c16 -d2s -H "$UA" -s paths.lua 'http://[::1]/' > wrk-3.log 2>&1
# HTTPS, TLS 1.3 (ECDSA cert), one request per connection, SNI "localhost"
timeout 30 wrk -t2 -c16 -d3s -H "$UA" -H "Connection: close" -s paths.lua https://localhost:443/ > wrk-4.log 2>&1
# HTTPS, TLS 1.2 only (RSA cert, ECDHE-RSA-AES-GCM), one request per connection
timeout 30 wrk -t2 -c16 -d3s -H "$UA" -H "Connection: close" -s paths.lua https://127.0.0.1:8443/ > wrk-5.log 2>&1
# HTTPS keep-alive, TLS 1.3
timeout 30 wrk -t2 -c16 -d2s -H "$UA" -s paths.lua https://localhost:443/ > wrk-6.log 2>&1
# curl: 600 connections with 60 distinct SNI / Host names, HTTP/1.1 and h2 over TLS 1.2 and 1.3, IPv4 and IPv6
for i in $(seq 0 599); do
  h="host$((i % 60)).bench.test"; p=$(sed -n "$((i % 440 + 1))p" paths.txt)
  case $((i % 6)) in
    0) a=(--http1.1 --tlsv1.3 --resolve "$h:443:127.0.0.1" "https://$h$p");;
    1) a=(--http2 --tlsv1.3 --resolve "$h:443:127.0.0.1" "https://$h$p");;
    2) a=(--http1.1 --tlsv1.2 --tls-max 1.2 --resolve "$h:443:127.0.0.1" "https://$h$p");;
    3) a=(--http2 --tlsv1.2 --tls-max 1.2 --resolve "$h:443:[::1]" "https://$h$p");;
    4) a=(--resolve "$h:8443:127.0.0.1" "https://$h:8443$p");;
    5) a=(--resolve "$h:80:127.0.0.1" "http://$h$p");;
  esac
  curl -sk -m 5 -o /dev/null -A "curl/7.88.1 (bench $i)" "${a[@]}"
done
# openssl s_client: 200 connections, TLS 1.3 and 1.2, with and without ALPN
for i in $(seq 0 199); do
  case $((i % 4)) in
    0) o=(-tls1_3);; 1) o=(-tls1_2);; 2) o=(-tls1_3 -alpn http/1.1);; 3) o=(-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305);;
  esac
  printf 'GET / HTTP/1.1\r\nHost: s%d.bench.test\r\nConnection: close\r\n\r\n' $i | \
    timeout 5 openssl s_client -quiet -connect 127.0.0.1:443 -servername "s$i.bench.test" "${o[@]}" > /dev/null 2>&1
done
wait $DP
sleep 1; kill -INT $TP; wait $TP; cat tcpdump-mixed.log
EOF
  $NSX bash gen-mixed.sh || true
  grep -h 'requests in' wrk-*.log || true
  mv "$OUT/mixed.pcap.tmp" "$OUT/mixed.pcap"
fi

# --- 5. tiny.pcap ---------------------------------------------------------------------------------
if [ "$need_tiny" = 1 ]; then
  editcap -F pcap -r "$OUT/dns.pcap" "$OUT/tiny.pcap" 1-10
fi

echo "generate: done"
for f in dns dns-tcp mixed tiny; do
  printf '  %-13s %10s packets %12s bytes\n' "$f.pcap" \
    "$(capinfos -c -M "$OUT/$f.pcap" 2> /dev/null | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}')" \
    "$(stat -c %s "$OUT/$f.pcap")"
done
