"""A small real meshd fleet for the ui and grafana tests: one network namespace per node, veths
into a bridge in a namespace of its own (the machine's interfaces are never touched), a fleet
CA and certified keys made with meshctl, one meshd per namespace. Everything it creates carries
the given prefix and is removed by cleanup(), also after a failure."""

import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

ZONES = ["zone-a", "zone-b", "zone-c"]
CLONE_NEWNET = 0x40000000


def now_ms():
    return int(time.time() * 1000)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def enter_netns(name):
    """Moves this (single-threaded) process into network namespace `name`, so its sockets and
    its children (chromedriver, Chromium) see that namespace's loopback."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{name}") as f:
        if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({name})")


class Mesh:
    def __init__(self, bin_dir, prefix, n, subnet="10.77.0", backend="dryrun",
                 metrics_listen=None, extra_yaml=None):
        self.bin = bin_dir
        self.prefix = prefix
        self.n = n
        self.subnet = subnet
        self.backend = backend
        self.metrics_listen = metrics_listen or (lambda i: "127.0.0.1:9464")
        self.extra_yaml = extra_yaml or (lambda i: "")
        self.work = tempfile.mkdtemp(prefix=f"{prefix}-")
        self.procs = {}
        self.hub = f"{prefix}-hub"

    # ---- names ----
    def ns(self, i):
        return f"{self.prefix}-n{i}"

    def ip(self, i):
        return f"{self.subnet}.{10 + i}"

    def dir(self, i):
        return os.path.join(self.work, f"node{i}")

    def socket(self, i):
        return os.path.join(self.dir(i), "ctl.sock")

    def log(self, i):
        return os.path.join(self.dir(i), "meshd.log")

    # ---- setup ----
    def create(self):
        self.cleanup_namespaces()
        run(["ip", "netns", "add", self.hub])
        run(["ip", "-n", self.hub, "link", "set", "lo", "up"])
        run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        for i in range(1, self.n + 1):
            self.add_namespace(self.ns(i), f"v{i}", self.ip(i))
        run([f"{self.bin}/meshctl", "ca", "init", "--out", os.path.join(self.work, "ca")])
        for i in range(1, self.n + 1):
            d = self.dir(i)
            os.makedirs(os.path.join(d, "data"))
            run([f"{self.bin}/meshctl", "keys", "gen", "--out", d])
            run([f"{self.bin}/meshctl", "ca", "sign", "--ca", os.path.join(self.work, "ca"),
                 "--pub", os.path.join(d, "node.pub"), "--name", f"node{i}",
                 "--domain", ZONES[(i - 1) % 3], "--days", "1", "--out", os.path.join(d, "node.cert")])
            self.write_config(i)

    def add_namespace(self, ns, hub_end, address):
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", self.hub, "link", "add", hub_end, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run(["ip", "-n", self.hub, "link", "set", hub_end, "master", "br0", "up"])
        run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def write_config(self, i):
        d = self.dir(i)
        peers = ", ".join(f'"{self.ip(j)}:7946"' for j in range(1, self.n + 1) if j != i)
        with open(os.path.join(d, "config.yaml"), "w") as f:
            f.write(f"""node:
  name: node{i}
  key: {d}/node.key
  cert: {d}/node.cert
  ca: {self.work}/ca/ca.pub
  data_dir: {d}/data
mesh:
  listen: "{self.ip(i)}:7946"
  peers: [{peers}]
  handshake_timeout_ms: 2000
control:
  socket: {self.socket(i)}
metrics:
  listen: "{self.metrics_listen(i)}"
{self.extra_yaml(i)}
enforcement:
  backend: {self.backend}
  nft_table: {self.prefix.replace('-', '_')}
sensor:
  enabled: false
log:
  level: info
""")

    def start(self, i):
        log = open(self.log(i), "w")
        self.procs[i] = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.ns(i)}", f"{self.bin}/meshd", "--config",
             os.path.join(self.dir(i), "config.yaml")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    # ---- use ----
    def ctl(self, i, *args):
        """`meshctl ARGS --json` on node i, parsed."""
        r = run([f"{self.bin}/meshctl", "--socket", self.socket(i), *args, "--json"])
        return json.loads(r.stdout)

    def ctl_text(self, i, *args):
        """`meshctl ARGS` on node i (commands without --json, e.g. block add): its output."""
        return run([f"{self.bin}/meshctl", "--socket", self.socket(i), *args]).stdout.strip()

    def in_ns(self, ns, cmd, check=True, **kw):
        return run(["nsenter", f"--net=/run/netns/{ns}", *cmd], check=check, **kw)

    def check_alive(self):
        for i, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"meshd of node{i} exited ({p.returncode}):\n" + self.tail(i))

    def tail(self, i, lines=15):
        try:
            with open(self.log(i)) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def wait_for(self, what, pred, timeout_s):
        deadline = time.time() + timeout_s
        while True:
            self.check_alive()
            try:
                if pred():
                    return
            except (RuntimeError, ValueError):
                pass  # a daemon not answering yet
            if time.time() > deadline:
                raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.05)

    def peers_of(self, i):
        return self.ctl(i, "status")["peers"]

    def wait_connected(self, nodes, timeout_s=30):
        want = len(nodes) - 1
        self.wait_for(f"nodes {nodes} to have {want} peers each",
                      lambda: all(self.peers_of(i) >= want for i in nodes), timeout_s)

    # ---- teardown ----
    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 3
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def cleanup_namespaces(self):
        r = run(["ip", "netns", "list"], check=False)
        for line in r.stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(self.prefix + "-"):
                run(["ip", "netns", "del", name], check=False)

    def cleanup(self):
        self.stop()
        self.cleanup_namespaces()
        shutil.rmtree(self.work, ignore_errors=True)
