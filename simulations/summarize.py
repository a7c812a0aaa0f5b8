#!/usr/bin/env python3
"""Prints the README's results table from run_scenarios.sh output.

Usage: simulations/summarize.py OUT_DIR
Reads OUT_DIR/results.jsonl (one meshsim JSON per line) and OUT_DIR/time.txt.
"""
import json
import sys


def fmt(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if x != 0 and (abs(x) < 10 ** -digits or abs(x) >= 1e6):
            return f"{x:.2e}"
        text = f"{x:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(x)


def main(out):
    runs = {}
    with open(f"{out}/results.jsonl") as f:
        for line in f:
            if line.strip():
                j = json.loads(line)
                runs[j["scenario"]] = j
    times = {}
    try:
        with open(f"{out}/time.txt") as f:
            for line in f:
                # "NAME user_s=U [wall_s=W] max_rss_kb=M" (run_scenarios.sh's /usr/bin/time)
                parts = line.split()
                kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
                if parts and "user_s" in kv and "max_rss_kb" in kv:
                    times[parts[0]] = (float(kv["user_s"]), int(kv["max_rss_kb"]) / 1024)
    except FileNotFoundError:
        pass
    print("| scenario | nodes | harm ratio vs naive | harm.protected | tp.coverage (naive) "
          "| quarantine detected / p99 ms | delivery fraction / p99 ms | msgs/node/claim "
          "| diameter | wall s | cpu s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, j in runs.items():
        h, tp, q, d = j["harm"], j["tp"], j["quarantine"], j["delivery"]
        cpu, rss = times.get(name, (None, j.get("peak_rss_mb")))
        quarantine = (f"{fmt(q['detected'])} / {fmt(q['p99_ms'], 1)}"
                      if q["offenders"] else "n/a")
        print(f"| {name} | {j['nodes']} | {fmt(h['ratio_vs_naive'], 4)} | {fmt(h['protected'])} "
              f"| {fmt(tp['coverage'], 4)} ({fmt(tp['naive_coverage'], 4)}) | {quarantine} "
              f"| {fmt(d['fraction'], 5)} / {fmt(d['p99_ms'], 1)} "
              f"| {fmt(j['messages']['per_node_per_claim'])} | {j['overlay']['diameter']} "
              f"| {fmt(j['wall_s'], 1)} | {fmt(cpu, 1)} | {fmt(rss, 0)} |")
    extra = [(n, j) for n, j in runs.items() if "partition" in j or "crash" in j]
    for name, j in extra:
        if "partition" in j:
            p = j["partition"]
            print(f"\n{name}: pairs pending at heal {p['pairs_pending_at_heal']}, all reached: "
                  f"{fmt(p['all_reached'])}, latest arrival after heal {fmt(p['heal_max_ms'], 1)} ms")
        if "crash" in j:
            c = j["crash"]
            print(f"\n{name}: restarts {c['restarts']}, latest catch-up after restart "
                  f"{fmt(c['catchup_max_ms'], 1)} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
