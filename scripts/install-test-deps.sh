#!/usr/bin/env bash
# Installs what wirelens' tests and benchmarks need: tshark (the DNS oracle), prometheus/promtool,
# curl and openssl (the agent's HTTP/TLS tests), nginx, wrk and python3 (the live HTTP/TLS test),
# tcpdump, tcpreplay, ndpiReader, GNU time, hyperfine,
# softflowd and pmacct (flow exporters), unbound and knot (dnstap peers), the benchmark generator's
# servers and clients, and cargo-fuzz.
# Idempotent: packages and tools already present are skipped, so a warm machine returns in seconds.
# Usage: bash scripts/install-test-deps.sh [--no-bench-gen]
#   --no-bench-gen  skip the servers/clients only bench/generate.sh needs (knot, dnsperf, nginx, ...)
set -euo pipefail

want_gen=1
for arg in "$@"; do
  case "$arg" in
    --no-bench-gen) want_gen=0 ;;
    *) echo "install-test-deps: unknown argument $arg" >&2; exit 2 ;;
  esac
done

# Debian package name -> a file or command that proves it is installed. dpkg-query alone is not
# enough (a package can be "rc": removed, config left), so both are checked.
pkgs=(tshark tcpdump tcpreplay libndpi-bin time hyperfine iproute2 unbound knot knot-dnsutils knot-module-dnstap prometheus curl openssl softflowd pmacct nginx wrk python3)
if [ "$want_gen" = 1 ]; then
  pkgs+=(knot knot-dnsutils dnsperf bind9-dnsutils nginx wrk iproute2 ethtool python3)
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$status" in
    ii*) ;;
    *) missing+=("$p") ;;
  esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-test-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer "no" without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  # Keep package scripts from starting nginx/knot as system services: the benchmark generator runs
  # its own server processes inside a private network namespace. Only install a policy if none exists,
  # and remove ours afterwards.
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d > /dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  trap '[ "$policy_added" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /tmp/install-test-deps-apt.log 2>&1 || {
    tail -n 30 /tmp/install-test-deps-apt.log >&2
    echo "install-test-deps: apt-get install failed" >&2
    exit 1
  }
else
  echo "install-test-deps: all ${#pkgs[@]} packages already installed"
fi

# cargo-fuzz builds fuzz targets; with --sanitizer none it works on stable rustc (no ASan, which
# needs nightly's -Zsanitizer).
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "install-test-deps: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

# Fail loudly if a tool the tests call is still not runnable.
for tool in tshark tcpdump tcpreplay ndpiReader hyperfine /usr/bin/time promtool prometheus; do
  command -v "$tool" > /dev/null || { echo "install-test-deps: $tool missing after install" >&2; exit 1; }
done
cargo fuzz --version > /dev/null || { echo "install-test-deps: cargo fuzz not runnable" >&2; exit 1; }
echo "install-test-deps: ok"
