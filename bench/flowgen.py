#!/usr/bin/env python3
"""Writes a synthetic capture of NetFlow v9 or IPFIX export traffic for bench/flows.sh.

One exporter (192.0.2.1 -> 192.0.2.100:2055/4739) sends datagrams of 30 data records each
(template 256: addresses, ports, protocol, ToS, TCP flags, bytes, packets, interfaces, times),
the template first and again every 1,000 datagrams. Addresses come from 10.0.0.0/16 and
172.16.0.0/16, ports and counters from a seeded generator, so every run writes the same file.
Prints "records packets bytes" (the totals a reader must find) on stdout.

Usage: flowgen.py v9|ipfix RECORDS OUT.pcap
"""
import random
import struct
import sys

FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (5, 1), (6, 1), (1, 4), (2, 4), (10, 4),
          (14, 4), (22, 4), (21, 4)]
PER_DGRAM = 30


def main():
    fmt, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ipfix = fmt == "ipfix"
    rng = random.Random(42)
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
        for _ in range(k):
            p = rng.randint(1, 1000)
            b = p * rng.randint(40, 1500)
            total_p += p
            total_b += b
            recs.append(rec.pack(
                0x0A000000 | rng.getrandbits(16), 0xAC100000 | rng.getrandbits(16),
                rng.randint(1024, 65535), rng.choice((53, 80, 443, 123, 22, 8080)),
                rng.choice((6, 17, 6, 6, 1)), rng.choice((0, 0, 0, 46 << 2, 10 << 2)),
                rng.getrandbits(6), b, p, rng.randint(1, 48), rng.randint(1, 48),
                1000, 2000))
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
