#!/usr/bin/env python3
"""Table and SVG of the collusion harm curve from collusion_curve.sh output.

Usage: simulations/collusion_curve.py OUT_DIR
Reads OUT_DIR/k<k>.json (meshsim JSON), prints a markdown table and writes OUT_DIR/curve.svg:
harm.ratio_vs_naive against k (log scale), with the issue's targets marked.
"""
import glob
import json
import math
import os
import re
import sys


def main(out):
    rows = []
    for path in glob.glob(os.path.join(out, "k*.json")):
        m = re.search(r"k(\d+)\.json$", path)
        if not m:
            continue
        with open(path) as f:
            text = f.read().strip()
        if not text:
            continue
        j = json.loads(text)
        rows.append((int(m.group(1)), j))
    rows.sort(key=lambda r: r[0])
    if not rows:
        sys.exit(f"no k*.json in {out}")
    print("| k (colluding domains) | nodes | seed | harm ratio vs naive | harm / naive harm (flows) "
          "| tp.coverage vs naive | delivery p99 ms | contradictions |")
    print("|---|---|---|---|---|---|---|---|")
    for k, j in rows:
        h = j["harm"]
        print(f"| {k} | {j['nodes']} | {j['seed']} | {h['ratio_vs_naive']:.2e} | "
              f"{h['total']:.0f} / {h['naive_total']:.0f} | {j['tp']['coverage_vs_naive']:.4f} | "
              f"{j['delivery']['p99_ms']:.1f} | {j['counters'].get('contradictions', '-')} |")
    # The fleet's domains and the attack window, from the scenario file collusion_curve.sh wrote.
    domains, window = 20, ""
    try:
        with open(os.path.join(out, f"k{rows[0][0]}.yaml")) as f:
            text = f.read()
        m = re.search(r"^domains: (\d+)", text, re.M)
        domains = int(m.group(1)) if m else domains
        d = re.search(r"^duration_s: (\d+)", text, re.M)
        a = re.search(r"strategy: targeted.*start_s: (\d+)", text)
        if d and a:
            window = f", attack {a.group(1)}–{d.group(1)} s"
    except FileNotFoundError:
        pass
    # SVG: log10(ratio) vs k; a ratio of 0 is drawn at the floor.
    w, hgt, ml, mr, mt, mb = 640, 360, 70, 20, 30, 50
    lo, hi = -6, 0
    kmax = max(10, rows[-1][0])

    def x(k):
        return ml + (k - 1) / max(1, kmax - 1) * (w - ml - mr)

    def y(r):
        v = lo if r <= 0 else max(lo, min(hi, math.log10(r)))
        return mt + (hi - v) / (hi - lo) * (hgt - mt - mb)

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{hgt}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{hgt}" fill="white"/>',
         f'<text x="{w/2}" y="18" text-anchor="middle">harm vs naive: k colluders in k of '
         f'{domains} failure domains, targeted ({rows[0][1]["nodes"]} nodes{window})</text>']
    for e in range(lo, hi + 1):
        yy = y(10 ** e)
        s.append(f'<line x1="{ml}" x2="{w-mr}" y1="{yy}" y2="{yy}" stroke="#ddd"/>')
        label = "0 / 1e-6" if e == lo else f"1e{e}"
        s.append(f'<text x="{ml-6}" y="{yy+4}" text-anchor="end">{label}</text>')
    for k in range(1, kmax + 1):
        s.append(f'<text x="{x(k)}" y="{hgt-mb+18}" text-anchor="middle">{k}</text>')
    s.append(f'<text x="{w/2}" y="{hgt-8}" text-anchor="middle">k (colluders, one per domain)</text>')
    for k, r, label in [(3, 0.02, "target k=3: 0.02"), (5, 0.05, "target k=5: 0.05")]:
        s.append(f'<circle cx="{x(k)}" cy="{y(r)}" r="4" fill="none" stroke="#c00"/>')
        s.append(f'<text x="{x(k)+8}" y="{y(r)-6}" fill="#c00">{label}</text>')
    pts = " ".join(f"{x(k)},{y(j['harm']['ratio_vs_naive'])}" for k, j in rows)
    s.append(f'<polyline points="{pts}" fill="none" stroke="#06c" stroke-width="2"/>')
    for k, j in rows:
        s.append(f'<circle cx="{x(k)}" cy="{y(j["harm"]["ratio_vs_naive"])}" r="3" fill="#06c"/>')
    s.append("</svg>")
    with open(os.path.join(out, "curve.svg"), "w") as f:
        f.write("\n".join(s) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
