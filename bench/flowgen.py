#!/usr/bin/env python3
"""Writes a synthetic capture of NetFlow v9 or IPFIX export traffic for bench/flows.sh.

One exporter (192.0.2.1 -> 192.0.2.100:2055/4739) sends datagrams of 30 data records each
(template 256: addresses, ports, protocol, ToS, TCP flags, bytes, packets, interfaces, times),
the template first and again every 1,000 datagrams. Addresses come from 10.0.0.0/16 and
172.16.0.0/16, ports and counters from a seeded generator, so every run writes the same file.
Prints "records packets bytes" (the totals a reader must find) on stdout.

Key distributions (the last argument):
  uniform (default)  addresses uniform over both /16s, source ports uniform over 1024-65535,
                     interfaces uniform over 1-48: nearly every top-N key is new (the worst case).
  zipf               addresses, source ports and interfaces Zipf-distributed (exponent 1.1, the
                     rank-1 value the most frequent): a few hosts, ports and interfaces carry most
                     flows, as in real exports. Destination ports, protocols, ToS and counters are
                     drawn as in the uniform capture.

Usage: flowgen.py v9|ipfix RECORDS OUT.pcap [uniform|zipf]
"""
import itertools
import random
import struct
import sys

FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (6, 1), (1, 4), (2, 4), (10, 4),
          (14, 4), (22, 4), (21, 4)]
PER_DGRAM = 30
ZIPF_S = 1.1


def zipf_cum(n):
    """Cumulative weights of ranks 0..n-1 with weight 1/(rank+1)^ZIPF_S."""
    return list(itertools.accumulate(1.0 / (r + 1) ** ZIPF_S for r in range(n)))


def main():
    fmt, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    dist = sys.argv[4] if len(sys.argv) > 4 else "uniform"
    if dist not in ("uniform", "zipf"):
        sys.exit(f"flowgen: unknown distribution {dist} (uniform or zipf)")
    ipfix = fmt == "ipfix"
    rng = random.Random(42)
    if dist == "zipf":
        # A separate generator for the Zipf draws: the uniform capture's draws stay as they were.
        zrng = random.Random(7)
        hosts, ports, ifaces = range(1 << 16), range(64512), range(48)
        host_cw, port_cw, if_cw = zipf_cum(1 << 16), zipf_cum(64512), zipf_cum(48)
    rec = struct.Struct(">IIHHBBBIIIIII")
    tpl_body = struct.pack(">HH", 256, len(FIELDS)) + b"".join(
        struct.pack(">HH", i, l) for i, l in FIELDS)
    tpl_set = struct.pack(">HH", 2 if ipfix else 0, 4 + len(tpl_body)) + tpl_body
    f = open(out, "wb")
    # pcap, Ethernet.
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    eth = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
    src_ip, dst_ip = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 100])
    dport = 4739 if ipfix else 2055
    total_p = total_b = 0
    written = 0
    seq = 0
    dgram = 0
    t0 = 1_700_000_000
    while written < n:
        k = min(PER_DGRAM, n - written)
        recs = []
        if dist == "zipf":
            srcs = zrng.choices(hosts, cum_weights=host_cw, k=k)
            dsts = zrng.choices(hosts, cum_weights=host_cw, k=k)
            sports = zrng.choices(ports, cum_weights=port_cw, k=k)
            ins = zrng.choices(ifaces, cum_weights=if_cw, k=k)
            outs = zrng.choices(ifaces, cum_weights=if_cw, k=k)
        for j in range(k):
            p = rng.randint(1, 1000)
            b = p * rng.randint(40, 1500)
            total_p += p
            total_b += b
            src, dst = 0x0A000000 | rng.getrandbits(16), 0xAC100000 | rng.getrandbits(16)
            sport = rng.randint(1024, 65535)
            dport_ = rng.choice((53, 80, 443, 123, 22, 8080))
            proto = rng.choice((6, 17, 6, 6, 1))
            tos = rng.choice((0, 0, 0, 46 << 2, 10 << 2))
            flags = rng.getrandbits(6)
            in_if, out_if = rng.randint(1, 48), rng.randint(1, 48)
            if dist == "zipf":
                src, dst = 0x0A000000 | srcs[j], 0xAC100000 | dsts[j]
                sport, in_if, out_if = 1024 + sports[j], 1 + ins[j], 1 + outs[j]
            recs.append(rec.pack(
                src, dst, sport, dport_, proto, tos, flags, b, p, in_if, out_if, 1000, 2000))
        data = b"".join(recs)
        data_set = struct.pack(">HH", 256, 4 + len(data)) + data
        sets = (tpl_set if dgram % 1000 == 0 else b"") + data_set
        secs = t0 + dgram // 1000
        if ipfix:
            payload = struct.pack(">HHIII", 10, 16 + len(sets), secs, seq, 1) + sets
            seq += k
        else:
            count = k + (1 if dgram % 1000 == 0 else 0)
            payload = struct.pack(">HHIIII", 9, count, 1000 * dgram, secs, seq, 1) + sets
            seq += 1
        udp = struct.pack(">HHHH", 40000, dport, 8 + len(payload), 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), dgram & 0xFFFF, 0, 64, 17, 0,
                         src_ip, dst_ip) + udp
        frame = eth + ip
        f.write(struct.pack("<IIII", secs, (dgram % 1000) * 1000, len(frame), len(frame)))
        f.write(frame)
        written += k
        dgram += 1
    f.close()
    print(written, total_p, total_b)


if __name__ == "__main__":
    main()
