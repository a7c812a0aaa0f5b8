#!/usr/bin/env python3
"""Table and per-group spread of collusion_variants.sh (or any meshsim --out JSON) output.

Usage: simulations/collusion_variants.py OUT_DIR
Reads OUT_DIR/*.json (one meshsim JSON each; OUT_DIR/<name>.yaml for the adversary line) and
prints one row per run, then, per group (the name up to the first '_', e.g. k3, k5), the spread:
min/max harm ratio vs naive, min/max tp.coverage ratio vs naive, max harm.protected, min/max
delivery p99.
"""
import glob
import json
import os
import re
import sys


def scenario_text(out, name):
    try:
        with open(os.path.join(out, name + ".yaml")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def fleet_domains(text):
    m = re.search(r"^domains: (\d+)", text, re.M)
    return m.group(1) if m else "-"


def adversary(text):
    m = re.search(r"adversaries:\n\s*- \{([^}]*)\}", text)
    if not m:
        return "-"
    kv = dict(p.strip().split(": ", 1) for p in m.group(1).split(","))
    d = re.search(r"^duration_s: (\d+)", text, re.M)
    return (f"{kv.get('count')} in {kv.get('domains')} domains, {kv.get('strategy')}, "
            f"{kv.get('rate_per_min')}/min from {kv.get('start_s')} s"
            + (f" (duration {d.group(1)} s)" if d else ""))


def g3(x):
    return "-" if x is None else f"{x:.3g}"


def main(out):
    runs = []
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        with open(path) as f:
            text = f.read().strip()
        if not text:
            continue
        j = json.loads(text)
        runs.append((os.path.basename(path)[:-5], j))
    if not runs:
        sys.exit(f"no *.json in {out}")
    print("| run | nodes / domains | seed | adversaries | harm ratio vs naive | harm / naive (flows) "
          "| protected | tp.coverage (naive) → ratio | delivery fraction / p99 ms | tp p99 ms "
          "| contradictions |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    groups = {}
    for name, j in runs:
        h, tp, d = j["harm"], j["tp"], j["delivery"]
        text = scenario_text(out, name)
        print(f"| {name} | {j['nodes']} / {fleet_domains(text)} | {j['seed']} | {adversary(text)} "
              f"| {g3(h['ratio_vs_naive'])} | {h['total']:.0f} / {h['naive_total']:.0f} "
              f"| {h['protected']:.0f} | {tp['coverage']:.4f} ({tp['naive_coverage']:.4f}) → "
              f"{tp['coverage_vs_naive']:.4f} | {d['fraction']:.4g} / {d['p99_ms']:.1f} | {tp['p99_ms']:.1f} "
              f"| {j['counters'].get('contradictions', '-')} |")
        groups.setdefault(name.split("_")[0], []).append(j)
    print()
    print("| group | runs | harm ratio vs naive min – max | tp.coverage vs naive min – max "
          "| harm.protected max | delivery p99 ms min – max |")
    print("|---|---|---|---|---|---|")
    for g, js in groups.items():
        r = [j["harm"]["ratio_vs_naive"] or 0 for j in js]
        c = [j["tp"]["coverage_vs_naive"] for j in js]
        p = [j["harm"]["protected"] for j in js]
        d = [j["delivery"]["p99_ms"] for j in js]
        print(f"| {g} | {len(js)} | {min(r):.3g} – {max(r):.3g} | {min(c):.4f} – {max(c):.4f} "
              f"| {max(p):.0f} | {min(d):.1f} – {max(d):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
