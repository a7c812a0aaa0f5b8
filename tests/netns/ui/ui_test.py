#!/usr/bin/env python3
"""CTest (label ui): the /ui page of a real 3-node mesh (dryrun enforcement, one network
namespace per node) in headless Chromium, driven through chromedriver.

  1. node 2's metrics listener is bound to 0.0.0.0 with metrics.ui_token_file: from another
     address /ui answers 401 without the token (and with a wrong one), 200 with it; /metrics
     stays open; the token never appears in node 2's log;
  2. the page of node 2 (opened on its loopback, where no token is needed) shows its peers;
  3. `meshctl block add` on node 1: node 2's page shows the block within 2 s, without a reload;
  4. clicking the block shows the explain breakdown (verdict, node 1's claim);
  5. node 3 (its config tampered with) claims a protected address: the page shows its
     quarantine in the ledger and the events, /metrics its trust at 0;
  6. a screenshot of the page (--screenshot PATH).

Usage: ui_test.py --bin DIR [--screenshot PATH]. Exit 77 = skipped (not root)."""

import argparse
import json
import os
import secrets
import shutil
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshnet import Mesh, enter_netns  # noqa: E402
from webdriver import Browser  # noqa: E402

VISIBLE_WITHIN_S = 2.0
PROTECTED = "192.0.2.200"  # protected in the fleet's config; node 3's config is tampered with


def fail(msg):
    raise AssertionError(msg)


def http_code(mesh, ns, url, *headers):
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"]
    for h in headers:
        args += ["-H", h]
    return mesh.in_ns(ns, args + [url], check=False).stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--screenshot", default="")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("ui_test: needs root (network namespaces): skipped")
        return 77
    for tool in ("/usr/bin/chromium", "/usr/bin/chromedriver", "curl"):
        if not shutil.which(tool):
            print(f"ui_test: FAILED: {tool} is missing (deploy/install-deps.sh installs it)")
            return 1

    t_start = time.time()
    token = secrets.token_urlsafe(24)
    mesh = Mesh(args.bin, f"mui{os.getpid() % 100000}", 3, subnet="10.78.0",
                metrics_listen=lambda i: "0.0.0.0:9464" if i == 2 else "127.0.0.1:9464",
                extra_yaml=lambda i: (f'  ui_token_file: "{mesh.work}/ui.token"\n' if i == 2 else "")
                + (f'protected: ["{PROTECTED}/32"]' if i != 3 else "protected: []  # tampered"))
    with open(os.path.join(mesh.work, "ui.token"), "w") as f:
        f.write(token + "\n")
    os.chmod(os.path.join(mesh.work, "ui.token"), 0o600)
    browser = None
    summary = {}
    try:
        mesh.create()
        for i in (1, 2, 3):
            mesh.start(i)
        mesh.wait_connected([1, 2, 3])
        summary["mesh_ready_ms"] = int((time.time() - t_start) * 1000)

        # ---- 1. the token, from another address ----
        n2 = f"http://{mesh.ip(2)}:9464"
        checks = {
            "node1 -> node2 /ui, no token": (http_code(mesh, mesh.ns(1), n2 + "/ui"), "401"),
            "node1 -> node2 /ui, wrong token": (
                http_code(mesh, mesh.ns(1), n2 + "/ui", "Authorization: Bearer " + token[::-1]), "401"),
            "node1 -> node2 /ui/api/state, no token": (
                http_code(mesh, mesh.ns(1), n2 + "/ui/api/state"), "401"),
            "node1 -> node2 /ui, bearer token": (
                http_code(mesh, mesh.ns(1), n2 + "/ui", "Authorization: Bearer " + token), "200"),
            "node1 -> node2 /ui/api/state, bearer token": (
                http_code(mesh, mesh.ns(1), n2 + "/ui/api/state", "Authorization: Bearer " + token), "200"),
            "node1 -> node2 /metrics, no token": (http_code(mesh, mesh.ns(1), n2 + "/metrics"), "200"),
            "node2 -> its own eth0 address, no token": (http_code(mesh, mesh.ns(2), n2 + "/ui"), "401"),
            "node2 -> its loopback, no token": (
                http_code(mesh, mesh.ns(2), "http://127.0.0.1:9464/ui"), "200"),
        }
        basic = mesh.in_ns(mesh.ns(1), ["curl", "-s", "--max-time", "3", "-u", "ops:" + token,
                                        n2 + "/ui/api/state"], check=False).stdout
        for what, (got, want) in checks.items():
            print(f"  {what}: {got}")
            if got != want:
                fail(f"{what}: HTTP {got}, expected {want}")
        if json.loads(basic)["node"]["id"] != "node2":
            fail("Basic auth (the token as password) did not give node2's state")
        summary["token_checks"] = len(checks) + 1

        # ---- 2. the page of node 2 ----
        enter_netns(mesh.ns(2))
        t_browser = time.time()
        browser = Browser()
        browser.get("http://127.0.0.1:9464/ui")
        deadline = time.time() + 10
        while browser.text(browser.wait("#node-id", 10)) != "node2":
            if time.time() > deadline:
                fail("the page never showed node2's id")
            time.sleep(0.05)
        peers = browser.wait('#peers tbody tr:nth-child(2)', 5)
        if peers is None:
            fail("the page does not list node 2's two peers")
        peers_text = browser.text(browser.find("#peers"))
        for p in ("node1", "node3", "connected"):
            if p not in peers_text:
                fail(f"peers table lacks '{p}': {peers_text}")
        summary["browser_start_ms"] = int((time.time() - t_browser) * 1000)
        browser.script("window.__meshdNoReload = 'same page';")

        # ---- 3. a block on node 1 appears on node 2's page ----
        target = "198.51.100.23"
        t0 = time.time()
        added = mesh.ctl_text(1, "block", "add", target, "--confidence", "1", "--severity", "critical",
                         "--reason", "C2 beacon seen on node1")
        row = browser.wait(f'#blocks tbody tr[data-prefix="{target}"]', VISIBLE_WITHIN_S)
        visible_ms = int((time.time() - t0) * 1000)
        if row is None:
            fail(f"node 2's page did not show {target} within {VISIBLE_WITHIN_S} s "
                 f"(node 1 answered {added}; node 2 blocks: {mesh.ctl(2, 'blocks')})")
        if browser.script("return window.__meshdNoReload;") != "same page":
            fail("the page was reloaded")
        summary["block_visible_ms"] = visible_ms
        print(f"  block on node1 visible on node2's page after {visible_ms} ms")
        row_text = browser.text(row)
        if "node1" not in row_text or "both" not in row_text:
            fail(f"the block's row lacks its origin or direction: {row_text}")

        # ---- 4. click: the explain breakdown ----
        browser.click(row)
        verdict = browser.wait("#explain-verdict", 3)
        if verdict is None or browser.text(verdict) != "enforce":
            fail("clicking the block did not show the explain verdict 'enforce'")
        claims = browser.text(browser.wait("#explain-claims", 2))
        if "node1" not in claims or "manual" not in claims:
            fail(f"the explain breakdown lacks node1's claim: {claims}")
        summary_text = browser.text(browser.find("#explain-summary"))
        if "threshold" not in summary_text:
            fail(f"the explain summary lacks the threshold: {summary_text}")
        event = browser.wait('#events li[data-event="claim_received"]', 2)
        if event is None or "node1" not in browser.text(event):
            fail("the event stream does not show node1's claim arriving")

        # A busier page for the screenshot: node 3 corroborates, and claims more.
        mesh.ctl_text(3, "block", "add", target, "--confidence", "0.9", "--reason", "same C2 seen on node3")
        mesh.ctl_text(3, "block", "add", "203.0.113.50", "--confidence", "0.95", "--severity", "high",
                 "--direction", "egress", "--reason", "port scan source")
        mesh.ctl_text(1, "block", "add", "192.0.2.77", "--confidence", "0.3", "--severity", "low",
                 "--reason", "weak signal")
        if browser.wait('#blocks tbody tr[data-prefix="203.0.113.50"]', 3) is None:
            fail(f"node 3's second block did not appear; node 2 blocks: {mesh.ctl(2, 'blocks')}")
        browser.click(browser.find(f'#blocks tbody tr[data-prefix="{target}"]'))
        deadline = time.time() + 3
        while "node3" not in browser.text(browser.wait("#explain-claims", 2)):
            if time.time() > deadline:
                fail("the explain breakdown did not show node3's corroborating claim")
            time.sleep(0.05)

        # ---- 5. node 3 misbehaves: quarantine and proofs reach the page ----
        mesh.ctl_text(3, "block", "add", PROTECTED, "--confidence", "1", "--severity", "critical",
                      "--reason", "compromised node attacks a protected address")
        if browser.wait('#events li[data-event="quarantined"]', 3) is None:
            fail("the event stream does not show node 3's quarantine")
        deadline = time.time() + 3
        while "quarantined" not in browser.text(browser.find("#ledger")):
            if time.time() > deadline:
                fail("the trust ledger does not show node 3 quarantined")
            time.sleep(0.05)
        if browser.wait('#events li[data-event="proof_received"], #events li[data-event="misbehaviour_proof"]', 3) is None:
            fail("the event stream shows no misbehaviour proof")
        metrics = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=3).read().decode()
        for want in ('meshd_trust{origin="node3",domain="zone-c"} 0\n', "meshd_trust_origins_quarantined 1\n"):
            if want not in metrics:
                fail(f"node 2's /metrics lacks {want.strip()}")
        browser.click(browser.find(f'#blocks tbody tr[data-prefix="{target}"]'))
        time.sleep(0.6)  # one more state refresh: counters and the histogram
        if args.screenshot:
            browser.resize(1400, 1500)
            time.sleep(0.3)
            os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
            summary["screenshot_bytes"] = browser.screenshot(args.screenshot)
            print(f"  screenshot: {args.screenshot}")

        # ---- the token never reaches the log ----
        with open(mesh.log(2)) as f:
            if token in f.read():
                fail("the token appears in node 2's log")
        summary["total_s"] = round(time.time() - t_start, 1)
        print(json.dumps(summary))
        print("ui_test: every check passed")
        return 0
    except Exception as e:  # noqa: BLE001 - report, clean up, fail
        print(f"ui_test: FAILED: {e}")
        for i in (1, 2, 3):
            print(f"--- node{i} log ---\n{mesh.tail(i)}")
        return 1
    finally:
        if browser is not None:
            browser.close()
        mesh.cleanup()


if __name__ == "__main__":
    sys.exit(main())
