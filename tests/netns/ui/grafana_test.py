#!/usr/bin/env python3
"""CTest (label netns): the Grafana board deploy/grafana/meshd.json against real data.

Grafana itself is not installable here; what can be tested is:
  1. the JSON is valid and every panel has queries;
  2. every metric the queries name exists in a live /metrics of meshd;
  3. a real Prometheus (Debian's) scrapes a 3-node mesh (nftables enforcement, one network
     namespace per node) for about a minute while the nodes claim, corroborate and decide;
     node 3 joins late, so it learns the early claims through anti-entropy (path="sync");
     then every panel's PromQL (Grafana's $__rate_interval and $instance filled in) returns
     data with at least one finite value through Prometheus' HTTP API.

Usage: grafana_test.py --bin DIR --board FILE [--scrape-seconds N]. Exit 77 = skipped."""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshnet import Mesh, enter_netns  # noqa: E402


def fail(msg):
    raise AssertionError(msg)


def board_queries(path):
    with open(path) as f:
        board = json.load(f)  # 1. valid JSON (raises otherwise)
    queries = []
    for p in board["panels"]:
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            fail(f"panel '{p.get('title')}' has no query")
        for t in targets:
            queries.append((p["title"], t["expr"]))
    return board, queries


def promql(expr, rate_interval):
    return expr.replace("$__rate_interval", rate_interval).replace("$instance", ".*")


def metric_names(expr):
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or
    label names (label names only appear inside {...} or by/on/without (...))."""
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    stripped = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped):
        word = m.group(0)
        after = stripped[m.end():].lstrip()
        if after.startswith("("):
            continue  # a function or aggregation
        if word in ("by", "on", "without", "and", "or", "unless", "bool", "offset"):
            continue
        if re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        names.add(word)
    return names


def sample_names(metrics_text):
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--board", required=True)
    ap.add_argument("--scrape-seconds", type=int, default=60)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("grafana_test: needs root (network namespaces, nftables): skipped")
        return 77
    prometheus = shutil.which("prometheus")
    if not prometheus:
        print("grafana_test: FAILED: prometheus is missing (deploy/install-deps.sh installs it)")
        return 1

    t_start = time.time()
    board, queries = board_queries(args.board)
    print(f"  {args.board}: valid JSON, {len(board['panels'])} panels, {len(queries)} queries")

    mesh = Mesh(args.bin, f"mgf{os.getpid() % 100000}", 3, subnet="10.79.0", backend="nftables",
                metrics_listen=lambda i: "0.0.0.0:9464")
    prom = None
    try:
        mesh.create()
        mesh.start(1)
        mesh.start(2)
        mesh.wait_connected([1, 2])

        # Prometheus in node 1's namespace, scraping the three nodes every 2 s.
        pdir = os.path.join(mesh.work, "prometheus")
        os.makedirs(pdir)
        targets = ", ".join(f'"{mesh.ip(i)}:9464"' for i in (1, 2, 3))
        with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: meshd
    static_configs:
      - targets: [{targets}]
""")
        plog = open(os.path.join(pdir, "prometheus.log"), "w")
        prom = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{mesh.ns(1)}", prometheus,
             f"--config.file={pdir}/prometheus.yml", f"--storage.tsdb.path={pdir}/data",
             "--web.listen-address=127.0.0.1:9090", "--storage.tsdb.retention.time=1h"],
            stdout=plog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        t_scrape = time.time()

        # Claims before node 3 exists: it will fetch them by anti-entropy.
        mesh.ctl_text(1, "block", "add", "198.51.100.1", "--confidence", "1", "--reason", "early 1")
        mesh.ctl_text(2, "block", "add", "198.51.100.2", "--confidence", "1", "--reason", "early 2")
        mesh.start(3)
        mesh.wait_connected([1, 2, 3])

        enter_netns(mesh.ns(1))  # Prometheus and node 1's loopback from here on
        deadline = time.time() + 20
        while True:
            try:
                if http_get("http://127.0.0.1:9090/-/ready").strip():
                    break
            except OSError:
                pass
            if prom.poll() is not None or time.time() > deadline:
                fail("Prometheus did not become ready:\n" + open(plog.name).read()[-1500:])
            time.sleep(0.2)

        # 2. Every metric the board names exists in a live /metrics (node 3: it has peers,
        # claims in by both paths, the lot).
        live = sample_names(http_get(f"http://{mesh.ip(3)}:9464/metrics"))
        named = set()
        for _, expr in queries:
            named |= metric_names(expr)
        missing = sorted(n for n in named if n not in live)
        if missing:
            fail(f"the board queries metrics meshd does not export: {missing}")
        print(f"  {len(named)} metrics named by the board, all in node 3's /metrics")


        # The fleet at work while Prometheus scrapes: claims from every node, corroborated
        # blocks, a weak claim below the threshold, retractions.
        k = 0
        while time.time() - t_scrape < args.scrape_seconds:
            node = 1 + k % 3
            ip = f"203.0.113.{10 + k}"
            mesh.ctl_text(node, "block", "add", ip, "--confidence", "0.95", "--reason", f"load {k}")
            mesh.ctl_text(1 + (k + 1) % 3, "block", "add", ip, "--confidence", "0.8", "--reason", "seen too")
            mesh.ctl_text(node, "block", "add", f"192.0.2.{10 + k}", "--confidence", "0.2",
                          "--severity", "low", "--reason", "weak")
            if k >= 2:
                mesh.ctl_text(1 + (k - 2) % 3, "block", "del", f"192.0.2.{10 + k - 2}")
            mesh.check_alive()
            k += 1
            time.sleep(2)
        # The page of a node with peers, trust series and a filled histogram stays clean for
        # promtool (the unit test checks a node without peers).
        page = http_get(f"http://{mesh.ip(3)}:9464/metrics")
        promtool = shutil.which("promtool")
        if promtool:
            lint = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, text=True)
            if lint.returncode != 0 or lint.stdout.strip() or lint.stderr.strip():
                fail(f"promtool check metrics on node 3: {lint.stdout}{lint.stderr}")
            print("  promtool check metrics: node 3's page is clean")
        sync_in = [l for l in page.splitlines()
                   if l.startswith('meshd_claims_in_total{path="sync"}')]
        if not sync_in or float(sync_in[0].split()[-1]) < 1:
            fail(f"node 3 joined late but took no claim by anti-entropy: {sync_in}")
        print(f"  scraped {int(time.time() - t_scrape)} s while {3 * k} claims were made; "
              f"node 3 took {sync_in[0].split()[-1]} by sync")

        # 3. Every query returns data.
        failures = []
        for title, expr in queries:
            q = promql(expr, "1m")
            body = http_get("http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": q}))
            r = json.loads(body)
            if r.get("status") != "success":
                failures.append(f"{title}: {r.get('error')}")
                continue
            result = r["data"]["result"]
            values = [float(s["value"][1]) for s in result] if r["data"]["resultType"] == "vector" else []
            finite = [v for v in values if math.isfinite(v)]
            print(f"  {title}: {len(result)} series, e.g. {finite[:3]}")
            if not finite:
                failures.append(f"{title}: no finite value ({q} -> {body[:200]})")
        if failures:
            fail("panels without data:\n    " + "\n    ".join(failures))
        print(f"grafana_test: every query of the board returned data ({int(time.time() - t_start)} s)")
        return 0
    except Exception as e:  # noqa: BLE001 - report, clean up, fail
        print(f"grafana_test: FAILED: {e}")
        for i in (1, 2, 3):
            print(f"--- node{i} log ---\n{mesh.tail(i)}")
        return 1
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=5)
            except subprocess.TimeoutExpired:
                prom.kill()
        mesh.cleanup()


if __name__ == "__main__":
    sys.exit(main())
