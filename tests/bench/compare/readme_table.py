#!/usr/bin/env python3
"""Prints the README's "How it compares" table from BENCHMARKS.json (written by
tests/bench/run), so that the README uses only figures of that run.

Usage: tests/bench/compare/readme_table.py [BENCHMARKS.json] [--readme README.md]
  --readme FILE  replace the body of FILE's "## How it compares" section (up to the next
                 "## " heading) instead of printing
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import fmt_num  # noqa: E402


def main():
    args = sys.argv[1:]
    readme = None
    if "--readme" in args:
        i = args.index("--readme")
        readme = Path(args[i + 1])
        del args[i:i + 2]
    path = Path(args[0] if args else Path(__file__).resolve().parents[2] / "BENCHMARKS.json")
    data = json.loads(path.read_text())
    rows = data["rows"]

    def row(group_prefix, what, peer_prefix=None, meshd_prefix=None):
        for r in rows:
            if not r["group"].startswith(group_prefix) or r["what"] != what:
                continue
            if peer_prefix and not (r["peer_label"] or "").startswith(peer_prefix):
                continue
            if meshd_prefix and not r["meshd_label"].startswith(meshd_prefix):
                continue
            return r
        return None

    def med(f, unit=True):
        if not f:
            return "not measured"
        s = ("> " if f.get("lower_bound") else "") + fmt_num(f["median"])
        return f"{s} {f['unit']}" if unit else s

    def lat(f):
        if not f:
            return "not measured"
        return f"p50 {fmt_num(f['median'])} ms, p99 {fmt_num(f['p99'])} ms"

    def side(r, which, fmt=med):
        if not r:
            return "not measured"
        text = fmt(r[which])
        # A peer that had not finished within its time bound: the figure is a lower bound.
        if which == "peer" and "INCOMPLETE" in r.get("note", "") and not text.startswith(">"):
            text = "> " + text
        return text

    same = "one detection → enforced on the same node"
    r_cs1 = row("1.", same, "CrowdSec bouncer, update_frequency 1s")
    r_cs10 = row("1.", same, "CrowdSec bouncer, default")
    r_f2b = row("1.", same, "fail2ban")
    r_m5 = row("1.", "one detection → enforced on EVERY node of a 5-node netns mesh")
    r_m16 = row("1.", "one detection → enforced on EVERY node of a 16-node netns mesh")
    n = "100,000"
    i_nft = row("2.", "install wall time", "one `nft -f`", "meshd bpf")
    i_nftc = row("2.", "install CPU seconds", "one `nft -f`", "meshd bpf")
    i_men = row("2.", "install wall time", "one `nft -f`", "meshd nftables")
    i_cs = row("2.", "install wall time", "CrowdSec")
    i_csc = row("2.", "install CPU seconds, every process", "CrowdSec")
    i_f2b = row("2.", f"install wall time (extrapolated to {n} from N)")
    x_pass = row("3.", "ns per packet, pass, 10,000 entries")
    x_drop = row("3.", "ns per packet, drop, 10,000 entries")
    m_rss_cs = row("7.", "idle RSS", "CrowdSec")
    m_rss_f2b = row("7.", "idle RSS", "fail2ban")
    m_cpu_cs = row("7.", "idle CPU", "CrowdSec")
    m_cpu_f2b = row("7.", "idle CPU", "fail2ban")
    m_100k = row("7.", "RSS with 100,000 active blocks")
    d_nft = row("4.", "CPU ns per dropped frame", "nftables drop rule")
    exact = data.get("exactness") or {}

    def ex(tool):
        t = exact.get(tool)
        if not t:
            return "not measured"
        return " / ".join("yes" if v["exact"] else "**no**" for v in t["results"].values())

    def ratio(r):
        return (f" ({r['ratio']:,.0f}× meshd bpf's)" if r and isinstance(r.get("ratio"), float)
                and r["ratio"] >= 2 else "")

    date = data["meta"]["started"][:10]
    out = []
    out.append("| | meshd | CrowdSec + nft bouncer | fail2ban | xdp-filter | hand-written nft set |")
    out.append("|---|---|---|---|---|---|")
    out.append("| role | detects, signs, gossips and enforces blocks across a fleet | log-based "
               "detection; bouncers poll its API and apply decisions | bans IPs found in local "
               "logs, per host | XDP filter of addresses/ports you add by hand | whatever you "
               "write |")
    out.append("| a lying node | trust policy, failure-domain support, budgets, quarantine "
               "(simulated in `simulations/`) | a compromised agent's decisions are applied by "
               "every bouncer of its LAPI | — (single host) | — | — |")
    out.append("| why is this IP blocked? | `meshctl explain IP`: support, cost, threshold, "
               "every claim | `cscli decisions list` | banned IPs per jail | `xdp-filter "
               "status` | `nft list set` |")
    out.append(f"| detection → blocked on the same host | {side(r_cs1, 'meshd', lat)} | "
               f"1 s poll: {side(r_cs1, 'peer', lat)}; default 10 s poll: "
               f"{side(r_cs10, 'peer', lat)} | {side(r_f2b, 'peer', lat)} | — (no detection) | "
               "— |")
    out.append(f"| detection → blocked on every node | 5 nodes: {side(r_m5, 'meshd', lat)}; "
               f"16 nodes: {side(r_m16, 'meshd', lat)} | each host's bouncer polls the LAPI: "
               "as above, per host | per host only | — | — |")
    c9 = "`cscli decisions add` → enforced (bouncer update_frequency {})"
    c9_1, c9_10 = row("9.", c9.format("1s")), row("9.", c9.format("10s"))
    if c9_1 or c9_10:
        out.append(f"| CrowdSec decision (`cscli decisions add`) → blocked, one LAPI | meshd as "
                   f"its bouncer (poll 1 s), every node of a 3-node mesh: "
                   f"{side(c9_1 or c9_10, 'meshd', lat)} | crowdsec-firewall-bouncer, its host: "
                   f"1 s poll: {side(c9_1, 'peer', lat)}; default 10 s poll: "
                   f"{side(c9_10, 'peer', lat)} | — | — | — |")
    out.append(f"| install {n} prefixes (wall) | bpf: {side(i_nft, 'meshd')}; nftables "
               f"enforcer: {side(i_men, 'meshd')} | {side(i_cs, 'peer')} (IPv4 addresses "
               f"only){ratio(i_cs)} | ≈ {side(i_f2b, 'peer')}, extrapolated from "
               f"{i_f2b['peer_label'].split('N=')[-1] if i_f2b else '?'} addresses"
               f"{ratio(i_f2b)} | at most 10,000 entries | one `nft -f` batch: "
               f"{side(i_nft, 'peer')} |")
    cs_incomplete = bool(i_cs and "INCOMPLETE" in i_cs.get("note", ""))
    cs_cpu = side(i_csc, "peer")  # already "> ..." when the CPU row itself is incomplete
    if cs_incomplete and not cs_cpu.startswith(">"):
        cs_cpu = "> " + cs_cpu
    out.append(f"| install {n} prefixes (CPU, every process) | bpf: {side(i_nftc, 'meshd')} | "
               f"{cs_cpu} | — | — | {side(i_nftc, 'peer')} |")
    out.append(f"| XDP cost per packet, 10,000 entries (pass / drop) | "
               f"{side(x_pass, 'meshd')} / {side(x_drop, 'meshd')} | — (nftables) | — (nftables) "
               f"| {side(x_pass, 'peer')} / {side(x_drop, 'peer')} | — |")
    out.append(f"| CPU per dropped frame on a veth (whole path) | XDP: {side(d_nft, 'meshd')} | "
               f"nft rule: see the nft column | nft rule: see the nft column | — | "
               f"nft drop rule: {side(d_nft, 'peer')} |")
    out.append(f"| exact IPv4 /24 / IPv6 /64 / IPv6 /128 ban (real packets) | "
               f"bpf: {ex('meshd bpf')}; nftables: {ex('meshd nftables')} | "
               f"{ex('CrowdSec nft bouncer')} | {ex('fail2ban nftables-allports')} | "
               f"{ex('xdp-filter')} | {ex('hand-written nft set')} |")
    out.append(f"| idle RSS | {side(m_rss_cs, 'meshd')} | {side(m_rss_cs, 'peer')} (LAPI + "
               f"bouncer) | {side(m_rss_f2b, 'peer')} | — | — |")
    out.append(f"| idle CPU | {side(m_cpu_cs, 'meshd')} | {side(m_cpu_cs, 'peer')} | "
               f"{side(m_cpu_f2b, 'peer')} | — | — |")
    out.append(f"| RSS with 100,000 active blocks | {side(m_100k, 'meshd')} (largest node of a "
               f"5-node mesh) | {side(m_100k, 'peer')}"
               f"{' (its bouncer still inserting)' if cs_incomplete else ''} | — | — | — |")
    text = (f"Measured side by side in one run of `tests/bench/run` on {date} (a shared 2-core "
            "machine); every figure, its spread, the exact command and the rows where meshd "
            "loses are in [BENCHMARKS.md](BENCHMARKS.md).\n\n" + "\n".join(out) + "\n")
    if readme is None:
        print(text, end="")
        return
    lines = readme.read_text().split("\n")
    start = lines.index("## How it compares")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    lines[start + 1:end] = [""] + text.split("\n")
    readme.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
