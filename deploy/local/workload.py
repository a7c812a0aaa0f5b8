#!/usr/bin/env python3
"""Tiny network workloads for the local mesh demo (stdlib only).

  workload.py serve ADDR:PORT [ADDR:PORT ...]
      Accepts TCP connections on every ADDR:PORT and closes them after a one-line banner.
      Runs until killed. Prints "listening" once every socket is bound.

  workload.py connect HOST PORT [--count N] [--timeout S] [--source ADDR] [--interval S]
      Opens N TCP connections one after the other (S seconds apart with --interval: steady
      use rather than a burst) and prints one JSON line:
      {"target": ..., "attempts": N, "ok": K, "errno": "EPERM", "error": "...", "ms": ...}
      where errno/error describe the last failure (empty when all succeeded), ms is the
      duration of the last attempt and at_ms the Unix ms time of the first attempt. Exit status 0 when every attempt connected, else 1.

The demo runs `connect` inside a node's cgroup and network namespace, so the node's eBPF
connect hooks see it as that node's workload: a denied connect fails with EPERM.
"""
import errno
import json
import os
import selectors
import socket
import sys
import time


def parse_endpoint(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def serve(endpoints):
    sel = selectors.DefaultSelector()
    for ep in endpoints:
        host, port = parse_endpoint(ep)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(128)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            try:
                conn, _ = key.fileobj.accept()
            except OSError:
                continue
            try:
                conn.sendall(b"hello from %s\n" % key.fileobj.getsockname()[0].encode())
            except OSError:
                pass
            conn.close()


def connect(host, port, count, timeout, source, interval=0.0):
    ok = 0
    last_errno, last_error, last_ms, first_at = "", "", 0.0, 0
    for i in range(count):
        if i and interval > 0:
            time.sleep(interval)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        t0 = time.monotonic()
        first_at = first_at or int(time.time() * 1000)
        try:
            s.connect((host, port))
            ok += 1
        except socket.timeout:
            last_errno, last_error = "ETIMEDOUT", "timed out (packets dropped)"
        except OSError as e:
            last_errno = errno.errorcode.get(e.errno, str(e.errno))
            last_error = os.strerror(e.errno) if e.errno else str(e)
        finally:
            last_ms = (time.monotonic() - t0) * 1000
            s.close()
    print(json.dumps({"target": "%s:%d" % (host, port), "attempts": count, "ok": ok,
                      "errno": last_errno, "error": last_error, "ms": round(last_ms, 2),
                      "at_ms": first_at}),
          flush=True)
    return 0 if ok == count else 1


def main(argv):
    if len(argv) >= 2 and argv[0] == "serve":
        serve(argv[1:])
        return 0
    if len(argv) >= 3 and argv[0] == "connect":
        count, timeout, source, interval = 1, 2.0, "", 0.0
        rest = argv[3:]
        while rest:
            flag = rest.pop(0)
            if flag == "--count":
                count = int(rest.pop(0))
            elif flag == "--timeout":
                timeout = float(rest.pop(0))
            elif flag == "--source":
                source = rest.pop(0)
            elif flag == "--interval":
                interval = float(rest.pop(0))
            else:
                print("workload.py: unknown option " + flag, file=sys.stderr)
                return 2
        return connect(argv[1], int(argv[2]), count, timeout, source, interval)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
