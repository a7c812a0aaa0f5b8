#!/usr/bin/env python3
"""meshd against fail2ban, CrowdSec's firewall bouncer, xdp-filter and a hand-written nftables
set, measured side by side in one run. Started by tests/bench/run (which installs the peers and
builds meshd's benchmark programs); writes BENCHMARKS.md and BENCHMARKS.json.

Everything this script creates lives in network namespaces named gbn<pid>-*, a cgroup and a
bpffs directory with the same prefix, and a work directory under /tmp; the peers' daemons run
inside those namespaces (their nftables tables and XDP programs die with them). All of it is
removed at exit, also on an error or a signal. Nothing is attached to the machine's own
interfaces.
"""
import argparse
import atexit
import datetime
import ipaddress
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
HAND_MARKER = "<!-- hand-written below: kept when tests/bench/run regenerates this file -->"
PY = sys.executable or "/usr/bin/python3"
PREFIX = f"gbn{os.getpid() % 100000}"

# ----------------------------------------------------------------------------- clean-up

_cleanups = []  # callables, run in reverse order at exit


def on_exit(fn):
    _cleanups.append(fn)
    return fn


def run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # clean-up must go on
            log(f"clean-up: {e}")


def _signalled(signum, _frame):
    raise SystemExit(128 + signum)


atexit.register(run_cleanups)
signal.signal(signal.SIGTERM, _signalled)
signal.signal(signal.SIGINT, _signalled)
signal.signal(signal.SIGHUP, _signalled)

T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- processes


def ns_cmd(ns, cmd):
    """Runs cmd in network namespace ns (nsenter keeps the host's bpffs and cgroup mounts)."""
    return (["nsenter", f"--net=/run/netns/{ns}"] if ns else []) + list(cmd)


def sh(cmd, ns=None, timeout=60, check=True, input=None):
    """Runs a command (list), returns CompletedProcess with text output."""
    r = subprocess.run(ns_cmd(ns, cmd), capture_output=True, text=True, timeout=timeout,
                       input=input)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-800:]}")
    return r


def timed(cmd, ns=None, timeout=600, check=True):
    """Runs a command, returns (wall s, CPU s of the command and its children, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    r = sh(cmd, ns=ns, timeout=timeout, check=check)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r


class Proc:
    """A background process we started (own process group), stopped at exit."""

    def __init__(self, cmd, ns=None, log_path=None, stdout=None, cwd=None):
        self.cmd = ns_cmd(ns, cmd)
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.p = subprocess.Popen(self.cmd, stdout=stdout if stdout is not None else out,
                                  stderr=out, cwd=cwd, start_new_session=True,
                                  text=stdout is not None)
        self.pid = self.p.pid
        on_exit(self.stop)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, wait=5):
        if self.p.poll() is not None:
            return
        try:
            os.killpg(self.pid, sig)
            self.p.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.p.wait(5)
        except ProcessLookupError:
            pass


def proc_cpu_s(pid, children=False):
    """utime + stime (+ cutime + cstime) of pid in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14, 15 (1-based) after the comm
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_task_cpu_s(pid):
    """On-CPU time of every thread of pid (schedstat, ns resolution) in seconds."""
    total = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((t / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def proc_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def wait_until(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ----------------------------------------------------------------------------- statistics


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    i = min(len(v) - 1, int(p * (len(v) - 1) + 0.5))
    return v[i]


def fig(values, unit, digits=None):
    """A figure from repetitions: median, min, max, n."""
    values = [float(x) for x in values if x is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "unit": unit, "values": values}


def lat_fig(samples_ms):
    """A latency figure: p50 (the value), p99, min, max over the samples."""
    s = [float(x) for x in samples_ms]
    if not s:
        return None
    return {"median": pct(s, 0.5), "p99": pct(s, 0.99), "min": min(s), "max": max(s),
            "n": len(s), "unit": "ms", "values": s}


def fmt_num(x):
    if x is None:
        return "—"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2g}"


def fmt_fig(f):
    if not f:
        return "not measured"
    u = f["unit"]
    s = f"{'> ' if f.get('lower_bound') else ''}{fmt_num(f['median'])} {u}"
    if "p99" in f:
        s = f"p50 {fmt_num(f['median'])} {u}, p99 {fmt_num(f['p99'])} {u}"
    if f["n"] > 1 and f.get("min") is not None:
        s += f" ({fmt_num(f['min'])}–{fmt_num(f['max'])}, n={f['n']})"
    elif f["n"] > 1:
        s += f" (n={f['n']})"
    elif "n" in f:
        s += " (n=1)"
    return s


# ----------------------------------------------------------------------------- report rows

ROWS = []
ERRORS = []
NOTES = []


def add_row(group, what, meshd, peer=None, *, meshd_label="meshd", peer_label=None,
            better="lower", command="", note="", key=None, ratio_of="median", reference=False):
    """One line of the report. Ratio = how many times better meshd is (peer/meshd for
    lower-is-better figures, meshd/peer for higher-is-better); < 1 means meshd loses."""
    if command == "same":  # the previous row's command
        command = next((r["command"] for r in reversed(ROWS) if r["group"] == group), "")
    ratio = None
    if meshd and peer and meshd.get(ratio_of) is not None and peer.get(ratio_of) is not None:
        m, p = meshd[ratio_of], peer[ratio_of]
        if better == "higher":
            m, p = p, m
        if m > 0:
            ratio = p / m
        elif p > 0:
            ratio = float("inf")  # meshd at zero, the peer not
    row = {"group": group, "what": what, "meshd_label": meshd_label, "meshd": meshd,
           "peer_label": peer_label, "peer": peer, "better": better, "ratio": ratio,
           "meshd_loses": ratio is not None and ratio < 1.0 and not reference,
           "reference": reference, "command": command, "note": note}
    ROWS.append(row)
    return row


def section(name, fn, budget_s, *args):
    """Runs one benchmark group with its own time bound (enforced by every command's own
    timeout inside, and checked here); an error is recorded, the run goes on."""
    log(f"== {name} (budget {budget_s:.0f} s)")
    t = time.monotonic()
    deadline = t + budget_s
    try:
        fn(deadline, *args)
    except Exception as e:  # noqa: BLE001 - one failing benchmark must not end the report
        msg = f"{name}: {type(e).__name__}: {e}"
        log("ERROR " + msg)
        ERRORS.append(msg)
    took = time.monotonic() - t
    log(f"== {name}: {took:.1f} s")
    SECTION_TIMES[name] = took


SECTION_TIMES = {}


def left(deadline):
    return max(1.0, deadline - time.monotonic())


# ----------------------------------------------------------------------------- namespaces

_ns_counter = [0]


def make_ns(role):
    _ns_counter[0] += 1
    name = f"{PREFIX}-{role}{_ns_counter[0]}"
    sh(["ip", "netns", "add", name])
    on_exit(lambda: sh(["ip", "netns", "del", name], check=False))
    sh(["ip", "-n", name, "link", "set", "lo", "up"])
    return name


RX_MAC = "02:00:00:00:00:01"
RX4 = "198.18.0.1"
RX6 = "2001:db8:ffff::1"
PROBE_PORT = 9999


class Pair:
    """Two namespaces: `rx` (the tool under test, a UDP receiver) and `tx` (a raw sender),
    joined by a veth pair (rx side: grx0, tx side: gtx0)."""

    def __init__(self):
        self.rx = make_ns("rx")
        self.tx = make_ns("tx")
        self.rx_if, self.tx_if = "grx0", "gtx0"
        sh(["ip", "-n", self.rx, "link", "add", self.rx_if, "type", "veth", "peer", "name",
            self.tx_if, "netns", self.tx])
        sh(["ip", "-n", self.rx, "link", "set", self.rx_if, "address", RX_MAC])
        for ns, i in ((self.rx, self.rx_if), (self.tx, self.tx_if)):
            sh(["ip", "-n", ns, "link", "set", i, "up"])
        sh(["ip", "-n", self.rx, "addr", "add", RX4 + "/30", "dev", self.rx_if])
        sh(["ip", "-n", self.rx, "addr", "add", RX6 + "/64", "dev", self.rx_if, "nodad"])
        for k in ("all", "default", self.rx_if):
            sh(["sysctl", "-qw", f"net.ipv4.conf.{k}.rp_filter=0"], ns=self.rx)

    def probe(self, sources, settle=0.3):
        """Sends one UDP datagram (x3) from each source to the rx side; returns the set of
        sources that arrived at the receiving socket."""
        recv = Proc([PY, str(HERE / "probe.py"), "recv", "--port", str(PROBE_PORT),
                     "--seconds", "2.0"], ns=self.rx, stdout=subprocess.PIPE)
        if recv.p.stdout.readline().strip() != "ready":
            raise RuntimeError("probe receiver did not start")
        time.sleep(settle)
        sh([PY, str(HERE / "probe.py"), "send", "--iface", self.tx_if, "--dst-mac", RX_MAC,
            "--dst4", RX4, "--dst6", RX6, "--port", str(PROBE_PORT)] + list(sources),
           ns=self.tx, timeout=20)
        out = recv.p.stdout.readline()
        recv.p.wait(10)
        return set(json.loads(out))


# ----------------------------------------------------------------------------- nft monitor


class NftWatch:
    """`nft monitor new elements` in a namespace: the wall time (Unix s) each address first
    appeared in an `add element` line."""

    def __init__(self, ns):
        self.first = {}
        self.count = 0
        self.lock = threading.Lock()
        self.proc = Proc(["nft", "monitor", "new", "elements"], ns=ns, stdout=subprocess.PIPE)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        time.sleep(0.3)

    def _read(self):
        for line in self.proc.p.stdout:
            now = time.time()
            if "element" not in line:
                continue
            for tok in re.split(r"[\s{},]+", line):
                if "." not in tok and ":" not in tok:
                    continue
                try:
                    a = str(ipaddress.ip_network(tok, strict=False))
                except ValueError:
                    continue
                with self.lock:
                    if a not in self.first:
                        self.first[a] = now
                        self.count += 1

    def seen(self, addr):
        with self.lock:
            return self.first.get(str(ipaddress.ip_network(addr, strict=False)))

    def stop(self):
        self.proc.stop()


# ----------------------------------------------------------------------------- peers

CS_PORT = "127.0.0.1:8080"  # inside the namespace: never collides with anything outside
CS_TEMPLATES = REPO / "tests" / "netns" / "crowdsec"


def cs_template(name, **values):
    """A CrowdSec configuration template shared with the C++ harness
    (tests/netns/crowdsec/crowdsec_lapi.cpp), every @NAME@ filled in."""
    text = (CS_TEMPLATES / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.search(r"@[A-Z_]+@", text)
    if left:
        raise RuntimeError(f"{name}: no value for {left.group(0)}")
    return text


class CrowdSec:
    """CrowdSec's Local API (`crowdsec -no-cs`: no log acquisition, no online API) and the
    nftables firewall bouncer, both inside namespace ns, with a private config, database
    and logs under work."""

    def __init__(self, work, ns, update_frequency="10s"):
        self.dir = Path(work) / "crowdsec"
        self.ns = ns
        for d in ("data", "log"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "config.yaml"
        # The LAPI configuration shared with the netns tests and crowdsec_bench.
        self.config.write_text(cs_template("lapi.yaml.in", DIR=self.dir, LISTEN=CS_PORT,
                                           LOG_LEVEL="error"))
        self.cscli(["machines", "add", f"{PREFIX}-bench", "--auto", "-f",
                    str(self.dir / "local_api_credentials.yaml")])
        self.key = self.cscli(["bouncers", "add", f"{PREFIX}-bouncer", "-o", "raw"]).stdout.strip()
        self.lapi = Proc(["crowdsec", "-c", str(self.config), "-no-cs"], ns=ns,
                         log_path=self.dir / "log" / "lapi.out")
        if not wait_until(lambda: sh(["cscli", "-c", str(self.config), "lapi", "status"], ns=ns,
                                     check=False).returncode == 0, 30, 0.3):
            raise RuntimeError("CrowdSec LAPI did not answer within 30 s")
        self.bouncer = None
        self.start_bouncer(update_frequency)

    def cscli(self, args, timeout=120, check=True):
        return sh(["cscli", "-c", str(self.config)] + args, ns=self.ns, timeout=timeout,
                  check=check)

    def start_bouncer(self, update_frequency):
        if self.bouncer:
            self.bouncer.stop()  # SIGTERM: the bouncer deletes its tables
        self.update_frequency = update_frequency
        cfg = self.dir / "bouncer.yaml"
        self.bouncer_log = self.dir / "log" / "crowdsec-firewall-bouncer.log"
        if self.bouncer_log.exists():
            self.bouncer_log.unlink()
        cfg.write_text(cs_template("firewall-bouncer.yaml.in", DIR=self.dir,
                                   API_URL=f"http://{CS_PORT}", API_KEY=self.key,
                                   UPDATE_FREQUENCY=update_frequency))
        self.bouncer = Proc(["crowdsec-firewall-bouncer", "-c", str(cfg)], ns=self.ns,
                            log_path=self.dir / "log" / "bouncer.out")
        if not wait_until(lambda: sh(["nft", "list", "table", "ip", "crowdsec"], ns=self.ns,
                                     check=False).returncode == 0, 20, 0.2):
            raise RuntimeError("the CrowdSec bouncer did not create its nftables table")

    def added_total(self):
        """Decisions the bouncer reports as added (its log: "N decisions added")."""
        try:
            text = self.bouncer_log.read_text()
        except OSError:
            return 0
        return sum(int(n) for n in re.findall(r"(\d+) decisions? added", text))

    def stop(self):
        if self.bouncer:
            self.bouncer.stop()
        self.lapi.stop()


class Fail2ban:
    """fail2ban-server with one jail (sshd filter over an empty log file, nftables-allports
    action) in namespace ns, with a private copy of /etc/fail2ban under work."""

    JAIL = "gbench"

    def __init__(self, work, ns):
        self.dir = Path(work) / "fail2ban"
        if self.dir.exists():
            shutil.rmtree(self.dir)
        shutil.copytree("/etc/fail2ban", self.dir)
        for f in (self.dir / "jail.d").glob("*"):
            f.unlink()
        (self.dir / "empty.log").write_text("")
        self.sock = self.dir / "f2b.sock"
        self.pidfile = self.dir / "f2b.pid"
        (self.dir / "fail2ban.local").write_text(f"""[Definition]
logtarget = {self.dir}/server.log
socket = {self.sock}
pidfile = {self.pidfile}
dbfile = :memory:
""")
        (self.dir / "jail.local").write_text(f"""[DEFAULT]
banaction = nftables-allports
banaction_allports = nftables-allports
bantime = 3600
[{self.JAIL}]
enabled = true
filter = sshd
logpath = {self.dir}/empty.log
backend = auto
protocol = tcp,udp
""")
        self.ns = ns
        sh(["fail2ban-client", "-c", str(self.dir), "-s", str(self.sock), "-p",
            str(self.pidfile), "-x", "start"], ns=ns, timeout=60)
        on_exit(self.stop)
        if not wait_until(lambda: self.pidfile.exists(), 10):
            raise RuntimeError("fail2ban-server wrote no pid file")
        self.pid = int(self.pidfile.read_text().strip())
        self.client(["status", self.JAIL])

    def client(self, args, timeout=600, check=True):
        return sh(["fail2ban-client", "-s", str(self.sock)] + args, ns=self.ns,
                  timeout=timeout, check=check)

    def banip(self, ips, timeout=600):
        return self.client(["set", self.JAIL, "banip"] + list(ips), timeout=timeout)

    def stop(self):
        if getattr(self, "pid", None) is None:
            return
        self.client(["stop"], timeout=30, check=False)
        if wait_until(lambda: not Path(f"/proc/{self.pid}").exists(), 10):
            self.pid = None
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pid = None


class Meshd:
    """One meshd node (no peers) in namespace ns: its own CA, key, cgroup, bpffs pins."""

    def __init__(self, bins, work, ns, backend, iface):
        self.bins = bins
        self.dir = Path(work) / f"meshd-{backend}-{ns}"
        self.dir.mkdir(parents=True)
        (self.dir / "data").mkdir()
        ctl = str(bins / "meshctl")
        sh([ctl, "ca", "init", "--out", str(self.dir / "ca")])
        sh([ctl, "keys", "gen", "--out", str(self.dir)])
        sh([ctl, "ca", "sign", "--ca", str(self.dir / "ca"), "--pub", str(self.dir / "node.pub"),
            "--name", "bench1", "--domain", "zone-a", "--days", "1", "--out",
            str(self.dir / "node.cert")])
        self.cgroup = Path(cgroup2_mount()) / f"{PREFIX}-{backend}"
        self.cgroup.mkdir()
        on_exit(lambda: remove_cgroup(self.cgroup))
        self.pins = Path("/sys/fs/bpf") / f"{PREFIX}-{backend}"
        on_exit(lambda: shutil.rmtree(self.pins, ignore_errors=True))
        self.sock = self.dir / "ctl.sock"
        (self.dir / "config.yaml").write_text(f"""node:
  name: bench1
  key: {self.dir}/node.key
  cert: {self.dir}/node.cert
  ca: {self.dir}/ca/ca.pub
  data_dir: {self.dir}/data
mesh:
  listen: "127.0.0.1:7946"
  peers: []
control:
  socket: {self.sock}
metrics:
  listen: "127.0.0.1:9464"
enforcement:
  backend: {backend}
  interfaces: [{iface}]
  cgroup: {self.cgroup}
  pin_path: {self.pins}
log:
  format: text
  level: warn
""")
        sh([str(bins / "meshd"), "--check-config", str(self.dir / "config.yaml")])
        self.proc = Proc([str(bins / "meshd"), "--config", str(self.dir / "config.yaml")], ns=ns,
                         log_path=self.dir / "meshd.log")
        self.pid = self.proc.pid
        if not wait_until(lambda: self.ctl(["status"], check=False).returncode == 0, 20, 0.1):
            raise RuntimeError("meshd did not answer status: " + self.log_tail())
        self.events = {}
        self.lock = threading.Lock()
        self.follow = Proc([ctl, "--socket", str(self.sock), "events", "--follow", "--json",
                            "--limit", "1"], stdout=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.3)

    def log_tail(self):
        try:
            return (self.dir / "meshd.log").read_text()[-1500:]
        except OSError:
            return ""

    def _read(self):
        for line in self.follow.p.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if not isinstance(e, dict) or "prefix" not in e:
                continue
            with self.lock:
                self.events.setdefault((e.get("event"), e["prefix"]), e.get("at"))

    def event_at(self, kind, prefix):
        with self.lock:
            return self.events.get((kind, prefix))

    def ctl(self, args, check=True, timeout=30):
        return sh([str(self.bins / "meshctl"), "--socket", str(self.sock)] + args, check=check,
                  timeout=timeout)

    def block(self, prefix):
        return self.ctl(["block", "add", prefix, "--confidence", "0.9", "--reason", "bench"])

    def stop(self):
        self.follow.stop()
        self.proc.stop()


def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[2] == "cgroup2":
                return parts[1]
    raise RuntimeError("no cgroup v2 mount in /proc/mounts")


def remove_cgroup(path):
    if not path.exists():
        return
    root = Path(cgroup2_mount())
    try:
        for pid in (path / "cgroup.procs").read_text().split():
            try:
                (root / "cgroup.procs").write_text(pid)
            except OSError:
                pass
    except OSError:
        pass
    wait_until(lambda: not (path / "cgroup.procs").read_text().split(), 3)
    path.rmdir()


# ----------------------------------------------------------------------------- meshd benches


def bench_json(cmd, timeout, ns=None):
    """Runs one of meshd's benchmark programs (through sh: the caller's time bound), parses
    the last JSON line; returns (json, wall s, CPU s)."""
    wall, cpu, r = timed(cmd, ns=ns, timeout=timeout)
    for line in reversed(r.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line), wall, cpu
    raise RuntimeError(f"{cmd[0]} printed no JSON: {r.stdout[-300:]} {r.stderr[-300:]}")


def cmdline(cmd):
    return " ".join(str(c) if not str(c).startswith(str(REPO) + "/") else
                    str(c)[len(str(REPO)) + 1:] for c in cmd)


# ============================================================================ benchmark groups

G1 = "1. Detection → enforced"
G2 = "2. Install 100,000 blocked prefixes"
G3 = "3. Per-packet XDP cost (BPF_PROG_TEST_RUN)"
G4 = "4. Drop rate on a veth pair"
G5 = "5. Exactness with real packets"
G6 = "6. Other throughput figures"
G7 = "7. Memory and CPU"
G8 = "8. meshsim"
G9 = "9. meshd as the CrowdSec bouncer (same LAPI, same decisions, one run)"


def g1_detection(deadline, cfg):
    n = cfg.lat_samples
    # meshd, one node (bpf backend): meshctl block add -> block_enforce event.
    pair = Pair()
    m = Meshd(cfg.bins, cfg.work, pair.rx, "bpf", pair.rx_if)
    lat = []
    for k in range(n):
        ip = f"198.51.100.{k + 1}"
        t = time.time()
        m.block(ip)
        CTX.setdefault("meshctl_walls", []).append((time.time() - t) * 1000)
        if not wait_until(lambda: m.event_at("block_enforce", ip) is not None, 5, 0.002):
            raise RuntimeError(f"meshd did not enforce {ip} within 5 s")
        lat.append(m.event_at("block_enforce", ip) - t * 1000)
    m.stop()
    one = lat_fig(lat)
    CTX["meshd_one_node"] = one
    # meshd, 5 and 16 nodes: mesh_propagation_bench (from `meshctl block add` start).
    fleets = {}
    for nodes, claims in ((5, cfg.mesh_claims), (16, max(20, cfg.mesh_claims // 2))):
        cmd = [str(cfg.bins / "mesh_propagation_bench"), "--nodes", str(nodes), "--claims",
               str(claims)]
        j, _, _ = bench_json(cmd, timeout=min(240, left(deadline)))
        fleets[nodes] = (j, cmd)
    # CrowdSec at 10 s (default) and 1 s; fail2ban.
    cs_ns = make_ns("cs")
    cs = CrowdSec(cfg.work, cs_ns, "10s")
    peers = {}
    cli = {"cscli": [], "fail2ban-client": [], "meshctl": CTX.get("meshctl_walls", [])}
    for freq, samples in (("10s", cfg.cs_default_samples), ("1s", n)):
        if freq != cs.update_frequency:
            cs.start_bouncer(freq)
        w = NftWatch(cs_ns)
        lat = []
        for k in range(samples):
            ip = f"203.0.113.{k + 1}" if freq == "10s" else f"192.0.2.{k + 1}"
            # A random phase against the bouncer's poll, as a real detection would have.
            time.sleep(random.uniform(0, 0.3))
            t = time.time()
            cs.cscli(["decisions", "add", "--ip", ip, "--duration", "1h", "--reason", "bench"])
            cli["cscli"].append((time.time() - t) * 1000)
            if not wait_until(lambda: w.seen(ip) is not None, 25, 0.005):
                raise RuntimeError(f"CrowdSec bouncer ({freq}) did not add {ip} within 25 s")
            lat.append((w.seen(ip) - t) * 1000)
        w.stop()
        peers[freq] = lat_fig(lat)
    cs.stop()
    f2b_ns = make_ns("f2b")
    f2b = Fail2ban(cfg.work, f2b_ns)
    w = NftWatch(f2b_ns)
    lat = []
    for k in range(n):
        ip = f"100.64.0.{k + 1}"
        t = time.time()
        f2b.banip([ip])
        cli["fail2ban-client"].append((time.time() - t) * 1000)
        if not wait_until(lambda: w.seen(ip) is not None, 10, 0.005):
            raise RuntimeError(f"fail2ban did not add {ip} within 10 s")
        lat.append((w.seen(ip) - t) * 1000)
    w.stop()
    f2b.stop()
    peers["f2b"] = lat_fig(lat)

    cli["meshctl"] = CTX.get("meshctl_walls", [])
    CTX["cli_ms"] = {k: fig(v, "ms") for k, v in cli.items()}
    base = ("from the start of the CLI command to the address in the kernel; the CLI "
            "commands alone took (median ms) " + ", ".join(
                f"{k} {fmt_num(statistics.median(v))}" for k, v in cli.items() if v))
    add_row(G1, "one detection → enforced on the same node", one, peers["1s"],
            meshd_label="meshd, 1 node, bpf", peer_label="CrowdSec bouncer, update_frequency 1s",
            command="tests/bench/compare/compare.py (meshctl block add → block_enforce event; "
                    "cscli decisions add → `nft monitor` add element)",
            note=f"{base}; {n} samples each")
    add_row(G1, "one detection → enforced on the same node", one, peers["10s"],
            meshd_label="meshd, 1 node, bpf",
            peer_label="CrowdSec bouncer, default update_frequency 10s",
            command="same", note=f"{cfg.cs_default_samples} CrowdSec samples")
    add_row(G1, "one detection → enforced on the same node", one, peers["f2b"],
            meshd_label="meshd, 1 node, bpf", peer_label="fail2ban `banip` (nftables-allports)",
            command="fail2ban-client set JAIL banip IP → `nft monitor` add element",
            note=f"{n} samples")
    for nodes, (j, cmd) in fleets.items():
        f = {"median": j["fleet_from_cmd_p50_ms"], "p99": j["fleet_from_cmd_p99_ms"],
             "n": j["claims"], "unit": "ms", "min": None, "max": None}
        add_row(G1, f"one detection → enforced on EVERY node of a {nodes}-node netns mesh",
                f, peers["1s"], meshd_label=f"meshd, {nodes} nodes, bpf",
                peer_label="CrowdSec bouncer (1s), one host",
                command=cmdline(cmd),
                note=f"from `meshctl block add` start to the last node's block_enforce; "
                     f"from signing: p50 {fmt_num(j['fleet_p50_ms'])} ms, p99 "
                     f"{fmt_num(j['fleet_p99_ms'])} ms. CrowdSec reaches only the host its "
                     f"bouncer runs on in this figure (each host's bouncer polls the LAPI the "
                     f"same way)")


CTX = {}


def make_mix(n, seed=1):
    """The meshd install benchmarks' mix: 60% IPv4 /32, 30% IPv4 /24, 10% IPv6 (/64, /128
    in 2001:db8::/32), random addresses."""
    rng = random.Random(seed)
    v4, v6 = set(), set()
    while len(v4) + len(v6) < n:
        i = len(v4) + len(v6)
        kind = rng.randrange(10)
        if kind < 6:
            v4.add(f"{ipaddress.IPv4Address(rng.getrandbits(32))}/32")
        elif kind < 9:
            v4.add(f"{ipaddress.IPv4Address(rng.getrandbits(32) & 0xFFFFFF00)}/24")
        else:
            plen = 64 if (i // 10) % 2 else 128
            a = (0x20010DB8 << 96) | rng.getrandbits(96)
            a &= ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)
            v6.add(f"{ipaddress.IPv6Address(a)}/{plen}")
    return sorted(v4), sorted(v6)


def g2_install(deadline, cfg):
    n = cfg.prefixes
    reps = cfg.reps
    # meshd bpf and nftables enforcers.
    res = {}
    for name, prog in (("bpf", "bpf_apply_bench"), ("nft", "nft_install_bench")):
        walls, cpus = [], []
        cmd = [str(cfg.bins / prog), "--prefixes", str(n)]
        for _ in range(reps):
            j, _, _ = bench_json(cmd, timeout=min(300, left(deadline)))
            if j.get("applied") != n:
                raise RuntimeError(f"{prog}: applied {j.get('applied')} of {n}")
            walls.append(j["apply_s"])
            cpus.append(j["apply_cpu_s"])
        res[name] = (fig(walls, "s"), fig(cpus, "CPU s"), cmd)
    # One `nft -f` batch of the same mix into interval sets: the floor for nftables.
    v4, v6 = make_mix(n)
    batch = Path(cfg.work) / "batch.nft"
    lines = ["table inet gbench {",
             "  set b4 { type ipv4_addr; flags interval, timeout; auto-merge; }",
             "  set b6 { type ipv6_addr; flags interval, timeout; auto-merge; }",
             "  chain input { type filter hook input priority filter; policy accept;",
             "    ip saddr @b4 drop; ip6 saddr @b6 drop; }", "}"]
    for setname, elems in (("b4", v4), ("b6", v6)):
        for i in range(0, len(elems), 10000):
            chunk = elems[i:i + 10000]
            lines.append(f"add element inet gbench {setname} {{ "
                         + ", ".join(f"{e} timeout 1h" for e in chunk) + " }")
    batch.write_text("\n".join(lines) + "\n")
    walls, cpus = [], []
    for _ in range(reps):
        ns = make_ns("nft")
        wall, cpu, _ = timed(["nft", "-f", str(batch)], ns=ns, timeout=min(300, left(deadline)))
        walls.append(wall)
        cpus.append(cpu)
        sh(["ip", "netns", "del", ns])
    nftf = (fig(walls, "s"), fig(cpus, "CPU s"))
    # CrowdSec: cscli decisions import -> the bouncer's set (IPv4 addresses: its sets hold
    # no ranges).
    cs_ns = make_ns("csimp")
    cs = CrowdSec(cfg.work + "/imp", cs_ns, "1s")
    csv = Path(cfg.work) / "decisions.csv"
    rng = random.Random(7)
    ips = set()
    while len(ips) < n:
        ips.add(str(ipaddress.IPv4Address(rng.getrandbits(32))))
    csv.write_text("duration,scope,value,reason\n"
                   + "".join(f"4h,Ip,{ip},bench\n" for ip in sorted(ips)))
    cpu0 = {"lapi": proc_cpu_s(cs.lapi.pid), "bouncer": proc_cpu_s(cs.bouncer.pid)}
    base_added = cs.added_total()
    t = time.monotonic()
    wall_cli, cpu_cli, _ = timed(["cscli", "-c", str(cs.config), "decisions", "import", "-i",
                                  str(csv)], ns=cs_ns, timeout=min(600, left(deadline)))
    ok = wait_until(lambda: cs.added_total() - base_added >= n, max(5, left(deadline) - 60), 0.1)
    cs_wall = time.monotonic() - t
    cs_cpu = {"cscli": cpu_cli, "lapi": proc_cpu_s(cs.lapi.pid) - cpu0["lapi"],
              "bouncer": proc_cpu_s(cs.bouncer.pid) - cpu0["bouncer"]}
    in_set = len(json.loads(sh(["nft", "-j", "list", "set", "ip", "crowdsec",
                                "crowdsec-blacklists"], ns=cs_ns, timeout=120).stdout)
                    ["nftables"][1]["set"].get("elem", []))
    CTX["cs_import"] = {"wall": cs_wall, "cpu": cs_cpu, "in_set": in_set, "complete": ok,
                        "cscli_wall": wall_cli}
    # Memory/CPU of CrowdSec with 100k decisions, while it is up (group 7 reports it).
    CTX["cs_loaded"] = measure_procs({"LAPI": cs.lapi.pid, "bouncer": cs.bouncer.pid},
                                     cfg.idle_s)
    cs.stop()
    # fail2ban banip: one command with N addresses (the action runs one `nft add element`
    # per address).
    f2b_ns = make_ns("f2bimp")
    f2b = Fail2ban(cfg.work + "/imp", f2b_ns)
    nf = cfg.f2b_prefixes
    f2b_ips = sorted(ips)[:nf]
    c0 = proc_cpu_s(f2b.pid, children=True)
    t = time.monotonic()
    wall_cli, cpu_cli, _ = timed(["fail2ban-client", "-s", str(f2b.sock), "set", f2b.JAIL,
                                  "banip"] + f2b_ips, ns=f2b_ns, timeout=min(600, left(deadline)))

    def f2b_count():
        r = sh(["nft", "-j", "list", "set", "inet", "f2b-table", "addr-set-" + f2b.JAIL],
               ns=f2b_ns, check=False)
        if r.returncode:
            return 0
        return len(json.loads(r.stdout)["nftables"][1]["set"].get("elem", []))
    f2b_ok = wait_until(lambda: f2b_count() >= nf, max(5, left(deadline) - 30), 0.5)
    f2b_wall = time.monotonic() - t
    f2b_cpu = proc_cpu_s(f2b.pid, children=True) - c0 + cpu_cli
    f2b.stop()

    bw, bc, bcmd = res["bpf"]
    nw, nc, ncmd = res["nft"]
    cs_f = fig([cs_wall], "s")
    cs_c = fig([sum(cs_cpu.values())], "CPU s")
    if not ok:  # the bouncer had not finished within the time bound: lower bounds
        cs_f["lower_bound"] = cs_c["lower_bound"] = True
    f2b_per = f2b_wall / nf * n
    f2b_f = dict(fig([f2b_per], "s"), extrapolated=True)
    f2b_c = dict(fig([f2b_cpu / nf * n], "CPU s"), extrapolated=True)
    mixnote = (f"{n:,} prefixes: 60% IPv4 /32, 30% IPv4 /24, 10% IPv6 /64+/128 (the meshd "
               "benchmarks' mix)")
    add_row(G2, "install wall time", bw, nftf[0], meshd_label="meshd bpf enforcer (one apply)",
            peer_label="one `nft -f` batch, interval sets (nftables floor)",
            command=cmdline(bcmd) + "  |  nft -f batch.nft (generated by compare.py)",
            note=mixnote)
    add_row(G2, "install CPU seconds", bc, nftf[1], meshd_label="meshd bpf enforcer",
            peer_label="one `nft -f` batch", command="same", note="CPU of the installing process")
    add_row(G2, "install wall time", nw, nftf[0], meshd_label="meshd nftables enforcer",
            peer_label="one `nft -f` batch", command=cmdline(ncmd), note=mixnote)
    add_row(G2, "install CPU seconds", nc, nftf[1], meshd_label="meshd nftables enforcer",
            peer_label="one `nft -f` batch", command="same", note="")
    add_row(G2, "install wall time", bw, cs_f, meshd_label="meshd bpf enforcer",
            peer_label="CrowdSec `cscli decisions import` → bouncer set (1s)",
            command="cscli decisions import -i decisions.csv; wait for the bouncer's "
                    "`N decisions added` lines to reach N",
            note=f"CrowdSec: {n:,} IPv4 addresses (its nft sets take no ranges); "
                 f"{'complete' if ok else 'INCOMPLETE'}; {in_set:,} elements in the set at the end; "
                 f"cscli alone {fmt_num(wall_cli)} s; one repetition")
    add_row(G2, "install CPU seconds, every process", bc, cs_c, meshd_label="meshd bpf enforcer",
            peer_label="CrowdSec cscli + LAPI + bouncer", command="same",
            note="CrowdSec: cscli {:.1f} + LAPI {:.1f} + bouncer {:.1f} CPU s".format(
                cs_cpu["cscli"], cs_cpu["lapi"], cs_cpu["bouncer"]))
    add_row(G2, f"install wall time (extrapolated to {n:,} from N)", bw, f2b_f,
            meshd_label="meshd bpf enforcer", peer_label=f"fail2ban banip, N={nf:,}",
            command=f"fail2ban-client set JAIL banip <{nf} addresses>; wait for {nf} elements",
            note=f"fail2ban measured at N={nf:,} ({fmt_num(f2b_wall)} s, "
                 f"{'complete' if f2b_ok else 'INCOMPLETE'}) and scaled linearly to {n:,}: "
                 "it runs one `nft add element` process per address")
    add_row(G2, f"install CPU seconds (extrapolated to {n:,} from N)", bc, f2b_c,
            meshd_label="meshd bpf enforcer", peer_label="fail2ban server + its nft children",
            command="same", note=f"measured {fmt_num(f2b_cpu)} CPU s at N={nf:,}")


def xdp_frame(src):
    """The frame bpf_xdp_bench sends: Ethernet + IPv4 (TCP) from src to 10.0.0.1 + 20 bytes."""
    import struct
    b = bytes([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, 0x45, 0, 0, 40, 0,
               1, 0x40, 0, 64, 6, 0, 0])
    b += struct.pack("!I", src) + bytes([10, 0, 0, 1]) + bytes(20)
    return b


def xdp_filter_free():
    """xdp-filter pins its maps in bpffs (/sys/fs/bpf/xdp-filter), shared by every namespace:
    a second user would share our address lists. Refuse rather than touch someone's filter."""
    if Path("/sys/fs/bpf/xdp-filter").exists():
        raise RuntimeError("/sys/fs/bpf/xdp-filter exists: xdp-filter is in use elsewhere on "
                           "this machine (its pinned maps are global), not touching it")


def g3_xdp(deadline, cfg):
    sizes = [10, 10000, 1000000] if not cfg.smoke else [10, 10000, 100000]
    cmd = [str(cfg.bins / "bpf_xdp_bench"), "--entries", ",".join(map(str, sizes)), "--ipv6",
           "off", "--packets", "32", "--repeat", str(cfg.xdp_repeat)]
    meshd = {s: {"pass": [], "drop": []} for s in sizes}
    for _ in range(cfg.reps):
        j, _, _ = bench_json(cmd, timeout=min(300, left(deadline)))
        for r in j["results"]:
            meshd[r["entries"]]["pass"].append(r["pass_ns_per_packet"])
            meshd[r["entries"]]["drop"].append(r["drop_ns_per_packet"])
    # xdp-filter (xdp-tools): loaded on a test veth in a namespace of ours, default policy
    # allow, features ipv4+ipv6, so its program is xdpfilt_alw_ip; entries are source
    # addresses (its maps hold exact addresses, at most 10,000).
    ns = make_ns("xdpf")
    sh(["ip", "-n", ns, "link", "add", "gxf0", "type", "veth", "peer", "name", "gxf1"])
    sh(["ip", "-n", ns, "link", "set", "gxf0", "up"])
    sh(["ip", "-n", ns, "link", "set", "gxf1", "up"])
    xdp_filter_free()
    on_exit(lambda: sh(["xdp-filter", "unload", "gxf0"], ns=ns, check=False))
    sh(["xdp-filter", "load", "gxf0", "-f", "ipv4,ipv6"], ns=ns, timeout=60)
    link = sh(["ip", "-d", "link", "show", "gxf0"], ns=ns).stdout
    m = re.search(r"prog/xdp id (\d+) name (\S+)", link)
    if not m:
        raise RuntimeError("xdp-filter attached no XDP program to the test veth")
    prog, prog_name = m.group(1), m.group(2)
    maps = sh(["bpftool", "prog", "show", "id", prog]).stdout
    ids = re.search(r"map_ids ([\d,]+)", maps).group(1).split(",")
    map4 = None
    for i in ids:
        if "filter_ipv4" in sh(["bpftool", "map", "show", "id", i]).stdout:
            map4 = i
    if not map4:
        raise RuntimeError("xdp-filter's filter_ipv4 map not found")
    rng = random.Random(3)
    blocked = []
    filled = 0
    xf = {}
    pkt_dir = Path(cfg.work) / "xdpf"
    pkt_dir.mkdir(exist_ok=True)
    for size in (10, 10000):
        new = []
        while len(blocked) < size:
            a = rng.getrandbits(32)
            if a not in blocked:
                blocked.append(a)
                new.append(a)
        # Sources via xdp-filter's own CLI for the first 10 (checks the map format), the
        # rest written into its map in one bpftool batch (10,000 CLI calls take minutes).
        batch = []
        for a in new:
            if filled < 10:
                sh(["xdp-filter", "ip", "--mode", "src", str(ipaddress.IPv4Address(a))], ns=ns)
            else:
                key = " ".join(str(x) for x in a.to_bytes(4, "big"))
                batch.append(f"map update id {map4} key {key} value 1 0 0 0 0 0 0 0")
            filled += 1
        if batch:
            bf = pkt_dir / "batch.txt"
            bf.write_text("\n".join(batch) + "\n")
            r = sh(["bpftool", "batch", "file", str(bf)], timeout=120, check=False)
            if r.returncode != 0:
                got = sh(["bpftool", "map", "dump", "id", map4], timeout=120).stdout.count('"key"')
                NOTES.append(f"xdp-filter: bpftool batch stopped ({r.stderr.strip()[-120:]}); "
                             f"its map held {got:,} addresses instead of {size:,}")
        bset = set(blocked)
        res = {"pass": [], "drop": []}
        for rep in range(cfg.reps):
            for case in ("pass", "drop"):
                total, cnt = 0.0, 0
                for k in range(32):
                    if case == "drop":
                        src = blocked[(k * 7919) % len(blocked)]
                    else:
                        src = rng.getrandbits(32)
                        while src in bset:
                            src = rng.getrandbits(32)
                    f = pkt_dir / "pkt"
                    f.write_bytes(xdp_frame(src))
                    out = sh(["bpftool", "prog", "run", "id", prog, "data_in", str(f), "repeat",
                              str(cfg.xdp_repeat)]).stdout
                    mm = re.search(r"Return value: (\d+), duration \(average\): (\d+)ns", out)
                    want = 1 if case == "drop" else 2  # XDP_DROP, XDP_PASS
                    if not mm or int(mm.group(1)) != want:
                        raise RuntimeError(f"xdp-filter {case} verdict: {out.strip()}")
                    total += int(mm.group(2))
                    cnt += 1
                res[case].append(total / cnt)
        xf[size] = res
    sh(["xdp-filter", "unload", "gxf0"], ns=ns, check=False)
    for size in (10, 10000):
        for case in ("pass", "drop"):
            add_row(G3, f"ns per packet, {case}, {size:,} entries",
                    fig(meshd[size][case], "ns"), fig(xf[size][case], "ns"),
                    meshd_label="meshd_xdp_ingress (trie + exact maps)",
                    peer_label=f"xdp-filter {prog_name} (hash of exact addresses)",
                    command=cmdline(cmd) + f"  |  bpftool prog run id <xdp-filter> data_in "
                            f"<frame> repeat {cfg.xdp_repeat}",
                    note="same 54-byte IPv4/TCP frames, 32 sources per case; meshd's entries: "
                         "60% /32 + 30% /24 share as IPv4-only rules; xdp-filter: /32 "
                         "addresses only (it has no prefixes)")
    big = sizes[-1]
    for case in ("pass", "drop"):
        add_row(G3, f"ns per packet, {case}, {big:,} entries (meshd alone)",
                fig(meshd[big][case], "ns"), None,
                meshd_label="meshd_xdp_ingress", peer_label="xdp-filter: max 10,000 entries",
                command=cmdline(cmd), note="")


def g4_drop(deadline, cfg):
    cmd = [str(cfg.bins / "enforcer_drop_bench"), "--prefixes", str(cfg.drop_prefixes),
           "--rounds", str(cfg.drop_rounds), "--seconds", "0.4"]
    runs = []
    for _ in range(cfg.reps):
        j, _, _ = bench_json(cmd, timeout=min(120, left(deadline)))
        runs.append(j)
    CTX["drop"] = runs
    j = runs[0]

    def f(mode, key, unit):
        return fig([r[mode][key] for r in runs], unit)
    note = (f"{j['prefixes']:,} prefixes in both enforcers; each repetition = the median of "
            f"{j['rounds']} alternating rounds; XDP mode {j.get('xdp_mode')}; the sender "
            "thread pinned to one CPU; CPU = sender thread + ksoftirqd")
    add_row(G4, "drops per CPU second (whole cost: send + veth + drop)",
            f("xdp", "drops_per_cpu_s", "drops/CPU s"), f("nft", "drops_per_cpu_s", "drops/CPU s"),
            better="higher", meshd_label="meshd XDP ingress",
            peer_label="nftables drop rule (meshd's nftables enforcer, input chain)",
            command=cmdline(cmd), note=note)
    add_row(G4, "drops per wall second", f("xdp", "drops_per_s", "drops/s"),
            f("nft", "drops_per_s", "drops/s"), better="higher",
            meshd_label="meshd XDP ingress", peer_label="nftables drop rule",
            command="same", note="wall rates depend on the machine's other load")
    add_row(G4, "CPU ns per dropped frame", f("xdp", "cpu_ns_per_drop", "ns"),
            f("nft", "cpu_ns_per_drop", "ns"), meshd_label="meshd XDP ingress",
            peer_label="nftables drop rule", command="same", note="")
    add_row(G4, "CPU ns per dropped frame", f("xdp", "cpu_ns_per_drop", "ns"),
            f("tc_ingress", "cpu_ns_per_drop", "ns"), meshd_label="meshd XDP ingress",
            reference=True, peer_label="TC ingress: meshd's TC program (clsact, direct action)",
            command="same",
            note="TC frames all hit the /32 exact map on their destination (meshd's TC program "
                 "filters by destination); XDP frames' sources are a /32 + /24 mix. On veth, "
                 "native XDP runs after the sender built an skb, so XDP's advantage over TC on "
                 "a real NIC does not show here")
    add_row(G4, "CPU ns per dropped frame", f("xdp", "cpu_ns_per_drop", "ns"),
            f("xdp_drop_all_floor", "cpu_ns_per_drop", "ns"), meshd_label="meshd XDP ingress",
            reference=True, peer_label="2-instruction XDP_DROP program (floor)", command="same",
            note="the gap is meshd's lookup")


EXACT = [
    ("IPv4 /24", "10.9.8.0/24", ["10.9.8.0", "10.9.8.1", "10.9.8.128", "10.9.8.255"],
     ["10.9.7.255", "10.9.9.0"]),
    ("IPv6 /64", "2001:db8:1:2::/64",
     ["2001:db8:1:2::", "2001:db8:1:2::1", "2001:db8:1:2:8000::1",
      "2001:db8:1:2:ffff:ffff:ffff:ffff"],
     ["2001:db8:1:1:ffff:ffff:ffff:ffff", "2001:db8:1:3::"]),
    ("IPv6 /128", "2001:db8:5::7/128", ["2001:db8:5::7"], ["2001:db8:5::6", "2001:db8:5::8"]),
]


def g5_exact(deadline, cfg):
    sources = [a for _, _, i, o in EXACT for a in i + o]
    tools = {}

    def verdict(received, ban_ok=None):
        out = {}
        for label, prefix, inside, outside in EXACT:
            dropped_in = [a for a in inside if a not in received]
            passed_out = [a for a in outside if a in received]
            exact = len(dropped_in) == len(inside) and len(passed_out) == len(outside)
            if exact:
                detail = "all inside dropped, all outside passed"
            else:
                detail = (f"{len(dropped_in)}/{len(inside)} inside dropped"
                          + (f" (only {', '.join(dropped_in)})" if 0 < len(dropped_in) < len(inside) else "")
                          + f", {len(passed_out)}/{len(outside)} outside passed")
            out[label] = {"exact": exact, "detail": detail}
        return out

    def run_tool(name, setup):
        if time.monotonic() > deadline:
            ERRORS.append(f"exactness {name}: skipped, out of time")
            return
        pair = Pair()
        base = pair.probe(sources)
        if set(sources) - base:
            raise RuntimeError(f"exactness {name}: without bans these did not arrive: "
                               f"{sorted(set(sources) - base)}")
        notes = setup(pair) or ""
        got = pair.probe(sources)
        tools[name] = {"results": verdict(got), "note": notes}
        if name == "xdp-filter":  # its maps are pinned in bpffs, outside the namespace
            sh(["xdp-filter", "unload", pair.rx_if], ns=pair.rx, check=False)
        for ns in (pair.rx, pair.tx):
            sh(["ip", "netns", "del", ns], check=False)

    def meshd_setup(backend):
        def setup(pair):
            m = Meshd(cfg.bins, cfg.work, pair.rx, backend, pair.rx_if)
            for _, prefix, _, _ in EXACT:
                m.block(prefix)
            ok = wait_until(lambda: all(m.event_at("block_enforce", p.replace("/128", ""))
                                        or m.event_at("block_enforce", p) for _, p, _, _ in EXACT),
                            5)
            CTX.setdefault("meshd_exact_meshds", []).append(m)
            return "" if ok else "not every block_enforce event was seen"
        return setup

    def nft_setup(pair):
        sh(["nft", "-f", "-"], ns=pair.rx, input="""table inet gbench {
  set b4 { type ipv4_addr; flags interval; elements = { 10.9.8.0/24 } }
  set b6 { type ipv6_addr; flags interval; elements = { 2001:db8:1:2::/64, 2001:db8:5::7 } }
  chain input { type filter hook input priority filter; policy accept;
    ip saddr @b4 drop; ip6 saddr @b6 drop; }
}
""")
        return "set with `flags interval`"

    def xdpf_setup(pair):
        xdp_filter_free()
        on_exit(lambda: sh(["xdp-filter", "unload", pair.rx_if], ns=pair.rx, check=False))
        sh(["xdp-filter", "load", pair.rx_if, "-f", "ipv4,ipv6"], ns=pair.rx, timeout=60)
        refused = []
        for _, prefix, _, _ in EXACT:
            r = sh(["xdp-filter", "ip", "--mode", "src", prefix], ns=pair.rx, check=False)
            if r.returncode != 0:
                p = ipaddress.ip_network(prefix)
                if p.prefixlen == p.max_prefixlen:
                    sh(["xdp-filter", "ip", "--mode", "src", str(p.network_address)], ns=pair.rx)
                else:
                    refused.append(prefix)
        return ("xdp-filter refuses prefixes (exact addresses only): " + ", ".join(refused)
                if refused else "")

    def cs_setup(pair):
        cs = CrowdSec(cfg.work + "/exact", pair.rx, "1s")
        CTX["cs_exact"] = cs
        for _, prefix, _, _ in EXACT:
            p = ipaddress.ip_network(prefix)
            if p.prefixlen == p.max_prefixlen:
                cs.cscli(["decisions", "add", "--ip", str(p.network_address)])
            else:
                cs.cscli(["decisions", "add", "--range", prefix])
        wait_until(lambda: cs.added_total() >= 3, 10, 0.1)
        return "decisions: --range for /24 and /64, --ip for /128"

    def f2b_setup(pair):
        f2b = Fail2ban(cfg.work + "/exact", pair.rx)
        CTX["f2b_exact"] = f2b
        failed = []
        for _, prefix, _, _ in EXACT:
            p = ipaddress.ip_network(prefix)
            f2b.banip([str(p.network_address) if p.prefixlen == p.max_prefixlen else prefix])
        time.sleep(1.5)
        log_text = (f2b.dir / "server.log").read_text()
        for _, prefix, _, _ in EXACT:
            if f"Error banning {prefix}" in log_text:
                failed.append(prefix)
        return ("the nftables action failed (set without `flags interval`): " + ", ".join(failed)
                if failed else "")

    order = [("meshd bpf", meshd_setup("bpf")), ("meshd nftables", meshd_setup("nftables")),
             ("hand-written nft set", nft_setup), ("xdp-filter", xdpf_setup),
             ("CrowdSec nft bouncer", cs_setup), ("fail2ban nftables-allports", f2b_setup)]
    for name, setup in order:
        try:
            run_tool(name, setup)
        except Exception as e:  # noqa: BLE001
            ERRORS.append(f"exactness {name}: {e}")
            log(f"ERROR exactness {name}: {e}")
        finally:
            for key in ("cs_exact", "f2b_exact"):
                if key in CTX:
                    CTX.pop(key).stop()
            for m in CTX.pop("meshd_exact_meshds", []):
                m.stop()
    CTX["exact"] = tools


def g6_other(deadline, cfg):
    cmd = [str(cfg.bins / "bpf_connect_bench"), "--rounds", str(cfg.connect_rounds),
           "--seconds", "0.5"]
    udp, tcp = [], []
    for _ in range(cfg.reps):
        j, _, _ = bench_json(cmd, timeout=min(180, left(deadline)))
        udp.append((j["udp_connects_per_s_attached"], j["udp_connects_per_s_detached"]))
        tcp.append((j["tcp_connects_per_s_attached"], j["tcp_connects_per_s_detached"]))
    for label, v in (("UDP connect()", udp), ("TCP connect() to a loopback listener", tcp)):
        add_row(G6, f"{label} per second", fig([a for a, _ in v], "connects/s"),
                fig([d for _, d in v], "connects/s"), better="higher",
                meshd_label="with meshd's cgroup hooks", peer_label="no hooks (same machine)",
                reference=True,
                command=cmdline(cmd), note="ratio < 1 is the hooks' overhead")
    cmd = [str(cfg.bins / "net_claim_ingest_bench"), str(cfg.ingest_claims)]
    ing, raw = [], []
    for _ in range(cfg.reps):
        j, _, _ = bench_json(cmd, timeout=min(180, left(deadline)))
        CTX["ingest"] = j
        ing.append(pick(j, ["ingest_per_s"]))
        raw.append(pick(j, ["raw_verify_per_s"]))
    add_row(G6, "claims verified per second", fig(ing, "claims/s"), fig(raw, "verifies/s"),
            better="higher", meshd_label="claim ingest over one transport connection",
            reference=True,
            peer_label="raw libsodium crypto_sign_verify_detached, one core",
            command=cmdline(cmd), note="ratio < 1 is what transport + parsing cost on top of "
                                      "the signature check")


def pick(j, keys):
    for k in keys:
        if k in j:
            return j[k]
    raise RuntimeError(f"none of {keys} in {sorted(j)}")


def measure_procs(pids, seconds):
    """RSS (sum, MB) at the end and CPU % of one core (sum) over `seconds`."""
    c0 = {k: proc_task_cpu_s(p) for k, p in pids.items()}
    t = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t
    cpu = {k: (proc_task_cpu_s(p) - c0[k]) / wall * 100 for k, p in pids.items()}
    rss = {k: proc_rss_mb(p) for k, p in pids.items()}
    return {"rss_mb": sum(rss.values()), "cpu_pct": sum(cpu.values()), "rss_each": rss,
            "cpu_each": cpu, "window_s": wall}


def g7_memory(deadline, cfg):
    # meshd, one node: idle, then under ~1,000 connect()/s from a process in its cgroup.
    pair = Pair()
    m = Meshd(cfg.bins, cfg.work, pair.rx, "bpf", pair.rx_if)
    time.sleep(3)
    idle = measure_procs({"meshd": m.pid}, cfg.idle_s)
    load = Proc(["sh", "-c", f'echo $$ > {m.cgroup}/cgroup.procs && exec {PY} '
                 f'{HERE}/probe.py connect-load --rate 1000 --seconds {cfg.idle_s + 4} '
                 f'--dst 203.0.113.200'], stdout=subprocess.PIPE)
    time.sleep(2)
    loaded = measure_procs({"meshd": m.pid}, cfg.idle_s)
    rate = json.loads(load.p.stdout.readline() or "{}").get("rate")
    load.p.wait(30)
    m.stop()
    # meshd with 100k active claims: mesh_resources_bench (5-node mesh, a peer floods node1).
    cmd = [str(cfg.bins / "mesh_resources_bench"), "--claims", str(cfg.prefixes), "--idle-s",
           str(cfg.idle_s), "--max-load-s", str(int(min(240, max(30, left(deadline) - 60))))]
    j, _, _ = bench_json(cmd, timeout=min(420, left(deadline)))
    CTX["mesh_resources"] = j
    # CrowdSec idle (LAPI + bouncer, update_frequency default 10s).
    cs_ns = make_ns("csmem")
    cs = CrowdSec(cfg.work + "/mem", cs_ns, "10s")
    time.sleep(3)
    cs_idle = measure_procs({"LAPI": cs.lapi.pid, "bouncer": cs.bouncer.pid}, cfg.idle_s)
    cs.stop()
    f2b_ns = make_ns("f2bmem")
    f2b = Fail2ban(cfg.work + "/mem", f2b_ns)
    time.sleep(3)
    f2b_idle = measure_procs({"fail2ban-server": f2b.pid}, cfg.idle_s)
    f2b.stop()

    def rss(x):
        return {"median": x["rss_mb"], "min": x["rss_mb"], "max": x["rss_mb"], "n": 1,
                "unit": "MB"}

    def cpu(x):
        return {"median": x["cpu_pct"], "min": x["cpu_pct"], "max": x["cpu_pct"], "n": 1,
                "unit": "% of a core"}
    w = f"{cfg.idle_s} s window"
    add_row(G7, "idle RSS", rss(idle), rss(cs_idle), meshd_label="meshd, 1 node (bpf)",
            peer_label="CrowdSec LAPI + bouncer", command="compare.py: /proc/PID/status VmRSS",
            note="CrowdSec: LAPI {:.1f} MB + bouncer {:.1f} MB".format(
                cs_idle["rss_each"]["LAPI"], cs_idle["rss_each"]["bouncer"]))
    add_row(G7, "idle CPU", cpu(idle), cpu(cs_idle), meshd_label="meshd, 1 node (bpf)",
            peer_label="CrowdSec LAPI + bouncer (10s poll)",
            command="compare.py: utime+stime over the window", note=w)
    add_row(G7, "idle RSS", rss(idle), rss(f2b_idle), meshd_label="meshd, 1 node (bpf)",
            peer_label="fail2ban-server, one jail", command="same", note="")
    add_row(G7, "idle CPU", cpu(idle), cpu(f2b_idle), meshd_label="meshd, 1 node (bpf)",
            peer_label="fail2ban-server, one jail (backend auto)", command="same", note=w)
    csl = CTX.get("cs_loaded")
    mr_rss = {"median": j["loaded_rss_max_mb"], "min": j["loaded_rss_max_mb"],
              "max": j["loaded_rss_max_mb"], "n": 1, "unit": "MB"}
    add_row(G7, "RSS with 100,000 active blocks", mr_rss, rss(csl) if csl else None,
            meshd_label="meshd, largest node of a 5-node mesh, 100k claims",
            peer_label="CrowdSec LAPI + bouncer, 100k decisions",
            command=cmdline(cmd),
            note=("meshd: every node holds all claims: " + str(j.get("all_nodes_hold_all_claims"))
                  + f", took {fmt_num(j.get('load_seconds'))} s; CrowdSec measured after the "
                  "import of group 2"))
    if csl:
        add_row(G7, "CPU with 100,000 active blocks, right after the import", None, cpu(csl),
                meshd_label="meshd", peer_label="CrowdSec LAPI + bouncer, 100k decisions",
                command="compare.py", note=w + "; meshd: see the loaded row below")
    add_row(G7, f"CPU under ~1,000 connect()/s in its cgroup (achieved {fmt_num(rate)}/s)",
            cpu(loaded), None, meshd_label="meshd, 1 node (bpf): sensor + ring buffer",
            peer_label="(no peer has a connect sensor)", command="probe.py connect-load",
            note=f"RSS {fmt_num(loaded['rss_mb'])} MB; {w}")
    CTX["mem"] = {"meshd_idle": idle, "meshd_connect_load": loaded, "connect_rate": rate,
                  "crowdsec_idle": cs_idle, "crowdsec_100k": csl, "fail2ban_idle": f2b_idle}


def g8_meshsim(deadline, cfg):
    import yaml  # python3-yaml
    out = {}
    for base, nodes, targets, duration, start, spread in (
            ("honest_1k", 1000, cfg.sim_targets_1k, 150, 10, 60),
            ("scale_10k", 10000, cfg.sim_targets_10k, 60, 10, 20)):
        sc = yaml.safe_load((REPO / "simulations" / "scenarios" / f"{base}.yaml").read_text())
        sc["name"] = base + "_bench"
        sc["duration_s"] = duration
        sc["attacks"][0].update({"targets": targets, "start_s": start, "spread_s": spread})
        p = Path(cfg.work) / f"{base}_bench.yaml"
        p.write_text(yaml.safe_dump(sc))
        cmd = ["/usr/bin/time", "-f", "%e %M", str(cfg.bins / "meshsim"), "--scenario", str(p)]
        r = sh(cmd, timeout=min(400, left(deadline)))
        wall_s, rss_kb = r.stderr.strip().splitlines()[-1].split()
        j = json.loads(r.stdout.strip().splitlines()[-1])
        out[nodes] = (float(wall_s), int(rss_kb) / 1024, j, sc, cmd)
    for nodes, (wall, rss, j, sc, cmd) in out.items():
        claims = j.get("claims", {})
        claims = claims.get("valid", claims) if isinstance(claims, dict) else claims
        note = (f"REDUCED scenario: {sc['name']} = simulations/scenarios/"
                f"{sc['name'][:-6]}.yaml with attacks[0].targets={sc['attacks'][0]['targets']}, "
                f"duration_s={sc['duration_s']} (the full scenario takes "
                f"{'~130 s' if nodes == 1000 else '~900 s and 16.7 GB'}); claims: {claims}; "
                "both policies (trust + naive) in one invocation")
        add_row(G8, f"meshsim {nodes:,} nodes: wall time",
                {"median": wall, "min": wall, "max": wall, "n": 1, "unit": "s"}, None,
                meshd_label="meshsim", command=cmdline(cmd[3:]), note=note)
        add_row(G8, f"meshsim {nodes:,} nodes: peak RSS",
                {"median": rss, "min": rss, "max": rss, "n": 1, "unit": "MB"}, None,
                meshd_label="meshsim", command="/usr/bin/time -f %M", note="")
    CTX["meshsim"] = {str(k): {"wall_s": v[0], "peak_rss_mb": v[1]} for k, v in out.items()}


# ============================================================================ report


def g9_crowdsec(deadline, cfg):
    """crowdsec_bench: a real LAPI in node 1 of a 3-node meshd mesh (bpf), meshd polling it
    (poll_ms 1000) and crowdsec-firewall-bouncer (nftables) on the same LAPI; the same
    `cscli decisions add` timed to all 3 nodes' block_enforce and to the bouncer's set."""
    cmd = [str(cfg.bins / "crowdsec_bench"), "--decisions", str(cfg.cs_decisions), "--import",
           str(cfg.cs_import)]
    j, _, _ = bench_json(cmd, timeout=left(deadline))
    CTX["crowdsec_bench"] = j
    def summary_fig(sm):  # crowdsec_bench's own p50/p99 (nearest rank) and spread
        if not sm.get("n"):
            return None
        return {"median": sm["p50_ms"], "p99": sm["p99_ms"], "min": sm["min_ms"],
                "max": sm["max_ms"], "n": sm["n"], "unit": "ms", "values": sm["samples_ms"]}

    first = True
    for ph in j.get("phases", []):
        freq = ph["bouncer_update_frequency"]
        m = ph["meshd_add_to_enforced_on_all_nodes"]
        b = ph["bouncer_add_to_element_in_set"]
        add_row(G9, f"`cscli decisions add` → enforced (bouncer update_frequency {freq})",
                summary_fig(m), summary_fig(b),
                meshd_label="meshd, every node of a 3-node mesh, poll_ms 1000",
                peer_label=f"crowdsec-firewall-bouncer, update_frequency {freq}, its host",
                command=cmdline(cmd) if first else "same",
                note="meshd: to the last node's block_enforce; bouncer: to the element in its "
                     "nft set")
        first = False
    imp = j.get("import")
    if imp:
        n = imp["decisions"]
        m_ok = imp.get("meshd_complete", imp["meshd_node1_import_to_kernel_ms"] >= 0)
        b_ok = imp.get("bouncer_complete", imp["bouncer_import_to_all_in_set_ms"] >= 0)
        b_got = imp["bouncer_set_elements"] - imp.get("bouncer_set_elements_before", 0)
        note = (f"cscli alone {fmt_num(imp['cscli_import_ms'])} ms; meshd apply "
                f"{fmt_num(imp['meshd_node1_apply_ms'])} ms; the imported decisions reach the "
                f"other nodes as claims at sensor.crowdsec.max_claims_per_min")
        if not m_ok:
            note += f"; meshd INCOMPLETE: {imp['meshd_node1_enforced']:,} of {n:,}"
        if not b_ok:
            note += (f"; bouncer INCOMPLETE: {b_got:,} of {n:,} in its set, unchanged for 60 s "
                     f"(a chunk the LAPI's delta answers lost)")
        add_row(G9, f"`cscli decisions import` of {n:,} decisions → enforced",
                fig([imp["meshd_node1_import_to_kernel_ms"]], "ms") if m_ok else None,
                fig([imp["bouncer_import_to_all_in_set_ms"]], "ms") if b_ok else None,
                meshd_label="meshd, the LAPI's node (kernel)",
                peer_label="crowdsec-firewall-bouncer (1s), all in its set", command="same",
                note=note)


def tool_versions():
    v = {}
    for pkg in ("crowdsec", "crowdsec-firewall-bouncer", "fail2ban", "xdp-tools", "nftables"):
        r = sh(["dpkg-query", "-W", "-f=${Version}", pkg], check=False)
        v[pkg] = r.stdout.strip() if r.returncode == 0 else "not installed"
    return v


def write_report(cfg, meta):
    groups = [g for g in (G1, G2, G3, G4, G5, G6, G7, G8, G9)
              if any(r["group"] == g for r in ROWS) or (g == G5 and CTX.get("exact"))]
    md = []
    md.append("# BENCHMARKS — meshd next to the tools users would otherwise install\n")
    md.append("Generated by `tests/bench/run` (do not edit by hand; rerun it). Every figure "
              "below was measured in ONE run of that entry point on the machine described "
              "here, the peers installed from Debian and run side by side with meshd on the "
              "same inputs.\n")
    md.append("## The run\n")
    md.append(f"- started {meta['started']}, finished {meta['finished']} "
              f"({meta['duration_s']:.0f} s in total){' — SMOKE mode, small N' if cfg.smoke else ''}")
    md.append(f"- command: `{meta['command']}` at commit {meta['commit']}")
    md.append(f"- machine: {meta['cpus']} CPUs ({meta['cpu_model']}), kernel {meta['kernel']}, "
              f"{meta['mem_gb']:.1f} GB RAM")
    # The load says whether other jobs competed with the run; the run cannot know who ran them.
    md.append(f"- load average at start {meta['load_start']}, at the end {meta['load_end']} "
              f"(above the number of CPUs, other jobs competed with this run: wall times then "
              f"run high and noisy; CPU seconds and kernel-measured per-packet costs are less "
              f"affected). CPUs were not pinned (on a shared machine pinning would only choose "
              f"which other job to collide with).")
    md.append("- peers: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    md.append("- **ratio** = how many times better meshd is: peer ÷ meshd for "
              "lower-is-better figures (times, CPU, memory), meshd ÷ peer for "
              "higher-is-better figures (rates). **Below 1 means meshd loses**, and the row "
              "says so.")
    md.append("- each figure: median (min–max, n = repetitions); latencies: p50 and p99 over "
              "n samples (min–max of the samples).\n")
    loses = [r for r in ROWS if r["meshd_loses"]]
    md.append("## Where meshd loses\n")
    if loses:
        for r in loses:
            md.append(f"- **{r['what']}** — {r['meshd_label']}: {fmt_fig(r['meshd'])}; "
                      f"{r['peer_label']}: {fmt_fig(r['peer'])} (ratio {r['ratio']:.2f}).")
    else:
        md.append("- no row in this run.")
    md.append("")
    for g in groups:
        md.append(f"## {g}\n")
        if g == G5:
            md.append(exact_table())
            continue
        md.append("| what | meshd | figure | peer | figure | ratio | command / note |")
        md.append("|---|---|---|---|---|---|---|")
        prev_cmd = None
        for r in ROWS:
            if r["group"] != g:
                continue
            if r["command"] == prev_cmd:
                r = dict(r, command="same")
            else:
                prev_cmd = r["command"]
            ratio = "—" if r["ratio"] is None else (
                f"**{r['ratio']:.2f} (meshd loses)**" if r["meshd_loses"] else f"{r['ratio']:.2f}")
            if r["reference"] and r["ratio"] is not None:
                ratio += " (vs. a reference, not a peer)"
            code = r["command"].replace("`", "'")
            cmdnote = f"`{code}`" if r["command"] and r["command"] != "same" else (
                r["command"] or "")
            if r["note"]:
                cmdnote += ("; " if cmdnote else "") + r["note"]
            md.append(f"| {r['what']} | {r['meshd_label']} | {fmt_fig(r['meshd'])} | "
                      f"{r['peer_label'] or '—'} | {fmt_fig(r['peer']) if r['peer_label'] else '—'} | "
                      f"{ratio} | {cmdnote.replace('|', '/')} |")
        md.append("")
    md.append("## Section times\n")
    md.append("| section | seconds |")
    md.append("|---|---|")
    for k, v in SECTION_TIMES.items():
        md.append(f"| {k} | {v:.0f} |")
    md.append("")
    md.append("## Not measured, errors and deviations\n")
    for n in NOTES:
        md.append(f"- {n}")
    for e in ERRORS:
        md.append(f"- ERROR: {e}")
    if not NOTES and not ERRORS:
        md.append("- none")
    md.append("")
    # Measurements made by hand between runs (one program, not the whole comparison) live
    # below HAND_MARKER in the old file: they are kept, under the new generated part.
    md_path = Path(cfg.out) / "BENCHMARKS.md"
    old_md = md_path.read_text() if md_path.exists() else ""
    if HAND_MARKER in old_md:
        md.append(HAND_MARKER + old_md.split(HAND_MARKER, 1)[1].rstrip("\n") + "\n")
    md_path.write_text("\n".join(md))
    data = {"meta": meta, "rows": ROWS, "exactness": CTX.get("exact"), "errors": ERRORS,
            "notes": NOTES, "section_seconds": SECTION_TIMES,
            "details": {k: v for k, v in CTX.items() if k in (
                "cs_import", "cs_loaded", "drop", "ingest", "mesh_resources", "mem", "meshsim",
                "cli_ms", "crowdsec_bench")}}
    def clean(x):  # strict JSON: no Infinity/NaN
        if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
            return str(x)
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    (Path(cfg.out) / "BENCHMARKS.json").write_text(
        json.dumps(clean(data), indent=1, default=str, allow_nan=False) + "\n")


def exact_table():
    tools = CTX.get("exact") or {}
    if not tools:
        return "not measured (see errors)\n"
    labels = [e[0] for e in EXACT]
    lines = ["A ban on each range, then UDP datagrams from addresses just inside and just "
             "outside it, sent as real frames over a veth into the tool's namespace "
             "(`tests/bench/compare/probe.py`). **yes** = every inside address dropped and "
             "every outside address delivered. Inside: " + "; ".join(
                 f"{l}: {', '.join(i)}" for l, _, i, _ in EXACT) + ". Outside: " + "; ".join(
                 f"{l}: {', '.join(o)}" for l, _, _, o in EXACT) + ".\n",
             "| tool | " + " | ".join(f"{l} ({p})" for l, p, _, _ in EXACT) + " | note |",
             "|---|" + "---|" * (len(labels) + 1)]
    for name, t in tools.items():
        cells = []
        for l in labels:
            v = t["results"][l]
            cells.append("yes" if v["exact"] else f"**no**: {v['detail']}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {t['note']} |")
    return "\n".join(lines) + "\n"


# ============================================================================ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="directory with meshd's programs (build/bin)")
    ap.add_argument("--out", default=str(REPO), help="where BENCHMARKS.md/.json go")
    ap.add_argument("--smoke", action="store_true", help="small N everywhere (< 1 min)")
    ap.add_argument("--only", default="", help="comma-separated group numbers, e.g. 1,5")
    ap.add_argument("--command", default="tests/bench/run")
    cfg = ap.parse_args()
    cfg.bins = Path(cfg.bin).resolve()
    if os.geteuid() != 0:
        sys.exit("compare.py: needs root (namespaces, nftables, BPF)")
    libxdp_dir = Path("/sys/fs/bpf/xdp")  # libxdp's lock directory, made by xdp-filter
    if not libxdp_dir.exists():
        on_exit(lambda: libxdp_dir.exists() and not any(libxdp_dir.iterdir())
                and libxdp_dir.rmdir())
    work = tempfile.mkdtemp(prefix=f"{PREFIX}-")
    on_exit(lambda: shutil.rmtree(work, ignore_errors=True))
    cfg.work = work
    KEEP_CLEANUPS[0] = len(_cleanups)
    big = not cfg.smoke
    cfg.reps = 3 if big else 1
    cfg.prefixes = 100000 if big else 2000
    cfg.f2b_prefixes = 1000 if big else 20
    cfg.lat_samples = 30 if big else 5
    cfg.cs_default_samples = 10 if big else 2
    cfg.mesh_claims = 100 if big else 10
    cfg.xdp_repeat = 100000 if big else 1000
    cfg.drop_prefixes = 100000 if big else 1000
    cfg.drop_rounds = 5 if big else 1
    cfg.connect_rounds = 4 if big else 1
    cfg.ingest_claims = 30000 if big else 2000
    cfg.idle_s = 20 if big else 3
    cfg.sim_targets_1k = 10 if big else 1
    cfg.sim_targets_10k = 5 if big else 1
    cfg.cs_decisions = 20 if big else 3
    cfg.cs_import = 10000 if big else 500
    meta = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": cfg.command, "cpus": os.cpu_count(), "kernel": platform.release(),
            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "versions": tool_versions(), "smoke": cfg.smoke,
            "commit": sh(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         check=False).stdout.strip() or "unknown"}
    with open("/proc/cpuinfo") as f:
        meta["cpu_model"] = next((l.split(":", 1)[1].strip() for l in f
                                  if l.startswith("model name")), "?")
    with open("/proc/meminfo") as f:
        meta["mem_gb"] = int(f.readline().split()[1]) / 1024 / 1024
    only = set(cfg.only.split(",")) if cfg.only else None
    # Time bounds per group (seconds); they add up to 20 minutes.
    groups = [("1", "detection → enforced", g1_detection, 220),
              ("2", "install 100k", g2_install, 260),
              ("3", "XDP per packet", g3_xdp, 110),
              ("4", "drop rate", g4_drop, 80),
              ("5", "exactness", g5_exact, 90),
              ("6", "other throughput", g6_other, 80),
              ("7", "memory and CPU", g7_memory, 280),
              ("8", "meshsim", g8_meshsim, 80),
              ("9", "CrowdSec bouncer", g9_crowdsec, 420)]
    if cfg.smoke:
        groups = [(a, b, c, min(d, 60)) for a, b, c, d in groups]
    for num, name, fn, budget in groups:
        if only and num not in only:
            continue
        section(f"{num}. {name}", fn, budget, cfg)
        run_cleanups_partial()
    meta["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta["duration_s"] = time.monotonic() - T0
    meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    write_report(cfg, meta)
    log(f"wrote {cfg.out}/BENCHMARKS.md and BENCHMARKS.json; {len(ERRORS)} error(s)")
    return 1 if ERRORS else 0


KEEP_CLEANUPS = [0]


def run_cleanups_partial():
    """Between groups: stop every process and namespace the group left (not the work dir
    and the libxdp directory, registered first)."""
    while len(_cleanups) > KEEP_CLEANUPS[0]:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            log(f"clean-up: {e}")


if __name__ == "__main__":
    sys.exit(main())
