#!/usr/bin/env python3
"""Packet and connect helpers for tests/bench/compare (run inside a network namespace).

  probe.py recv --port P --seconds S
      Dual-stack UDP receiver: prints "ready", then after S seconds one JSON line, the list
      of source addresses it received datagrams from.
  probe.py send --iface IF --dst-mac MAC --dst4 A --dst6 B --port P SRC [SRC ...]
      Sends one hand-built UDP frame per source address (IPv4 or IPv6), three times each,
      with AF_PACKET on IF: the source addresses need not belong to this namespace.
  probe.py connect-load --rate R --seconds S --dst ADDR
      UDP connect() (socket, connect, close) at R per second for S seconds; prints the
      achieved count and rate as JSON. No packet is sent (connect on UDP only sets the peer).
"""
import argparse
import ipaddress
import json
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def udp_frame(dst_mac: bytes, src: str, dst4: str, dst6: str, port: int) -> bytes:
    payload = src.encode()
    a = ipaddress.ip_address(src)
    if a.version == 4:
        udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                                   a.packed, ipaddress.ip_address(dst4).packed))
        ip[10:12] = struct.pack("!H", csum(bytes(ip)))
        return dst_mac + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00" + bytes(ip) + udp
    d = ipaddress.ip_address(dst6).packed
    length = 8 + len(payload)
    pseudo = a.packed + d + struct.pack("!I3xB", length, 17)
    udp = struct.pack("!HHHH", 40000, port, length, 0) + payload
    c = csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, length, 17, 64, a.packed, d)
    return dst_mac + b"\x02\x00\x00\x00\x00\x02" + b"\x86\xdd" + ip6 + udp


def cmd_send(args) -> int:
    mac = bytes.fromhex(args.dst_mac.replace(":", ""))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((args.iface, 0))
    frames = [udp_frame(mac, src, args.dst4, args.dst6, args.port) for src in args.sources]
    for _ in range(3):
        for f in frames:
            s.send(f)
        time.sleep(0.02)
    return 0


def cmd_recv(args) -> int:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", args.port))
    s.settimeout(0.05)
    print("ready", flush=True)
    seen = set()
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        try:
            _, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        host = addr[0]
        if host.startswith("::ffff:"):
            host = host[7:]
        seen.add(str(ipaddress.ip_address(host)))
    print(json.dumps(sorted(seen)), flush=True)
    return 0


def cmd_connect_load(args) -> int:
    interval = 1.0 / args.rate
    start = time.monotonic()
    end = start + args.seconds
    n = 0
    fam = socket.AF_INET6 if ":" in args.dst else socket.AF_INET
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = start + n * interval
        if due > now:
            time.sleep(due - now)
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.connect((args.dst, 9 + n % 1000))
        except OSError:
            pass
        s.close()
        n += 1
    elapsed = time.monotonic() - start
    print(json.dumps({"connects": n, "seconds": elapsed, "rate": n / elapsed}), flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    s = sub.add_parser("send")
    s.add_argument("--iface", required=True)
    s.add_argument("--dst-mac", required=True)
    s.add_argument("--dst4", required=True)
    s.add_argument("--dst6", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("sources", nargs="+")
    c = sub.add_parser("connect-load")
    c.add_argument("--rate", type=float, required=True)
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--dst", required=True)
    args = p.parse_args()
    return {"send": cmd_send, "recv": cmd_recv, "connect-load": cmd_connect_load}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
