#!/usr/bin/env bash
# meshsim's scale figures as ONE JSON object on stdout (issue "Scale"): per scenario the wall
# time, the CPU time (user + sys, less sensitive to a loaded machine than wall), peak RSS, the
# event rate and the memory per (node, claim) record, with the targets and whether they are met.
#
# Usage: simulations/bench.sh MESHSIM_BINARY [scenario names or .yaml paths...]
#   default scenarios: scale_10k (10,000 nodes, both policies) and milking_pair_one_domain
#   (1,500 nodes, 25 simulated minutes).
# BENCH_OUT=DIR keeps meshsim's own JSON and stderr (progress lines) as DIR/<scenario>.{json,err}.
# Long CPU job (scale_10k: minutes, GBs): on a shared machine run it through the long-job gate.
# Needs GNU time (/usr/bin/time) and python3.
#
# Memory per (node, claim) record = peak RSS / (runs x nodes x valid claims), runs = 2 (the
# policy and `naive` run side by side in one process). It includes the fixed costs (model,
# queues, binary), so it is an upper bound of the marginal cost; at 10,000 nodes x ~1,000
# claims the fixed part is small.
set -euo pipefail
if (($# < 1)); then
  echo "usage: $0 MESHSIM_BINARY [scenario...]" >&2
  exit 2
fi
bin=$1
shift
[[ -x $bin ]] || { echo "bench.sh: '$bin' is not an executable meshsim" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "bench.sh: needs GNU time at /usr/bin/time" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
(($#)) || set -- scale_10k milking_pair_one_domain
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=()
for s in "$@"; do
  if [[ $s == *.yaml ]]; then f=$s; else f=$here/scenarios/$s.yaml; fi
  [[ -f $f ]] || { echo "bench.sh: no scenario '$f'" >&2; exit 2; }
  n=$(basename "$f" .yaml)
  echo "bench.sh: $n" >&2
  load=$(cut -d' ' -f1 /proc/loadavg)
  if ! /usr/bin/time -f '%U %S %e %M' -o "$tmp/$n.time" "$bin" --scenario "$f" --progress \
    --progress-every 30 >"$tmp/$n.json" 2>"$tmp/$n.err"; then
    echo "bench.sh: meshsim failed on $n:" >&2
    cat "$tmp/$n.err" >&2
    exit 1
  fi
  echo "$load" >"$tmp/$n.load"
  if [[ -n ${BENCH_OUT:-} ]]; then
    mkdir -p "$BENCH_OUT"
    cp "$tmp/$n.json" "$tmp/$n.err" "$BENCH_OUT/"
  fi
  results+=("$n")
done
python3 - "$tmp" "$bin" "${results[@]}" <<'EOF'
import json, os, sys
tmp, binary, names = sys.argv[1], sys.argv[2], sys.argv[3:]
out = {"meshsim": os.path.abspath(binary), "cpus": os.cpu_count(), "scenarios": []}
for n in names:
    d = json.load(open(f"{tmp}/{n}.json"))
    user, sys_, wall, maxrss_kb = open(f"{tmp}/{n}.time").read().split()[-4:]
    runs = 1 if d["policy"] == "naive" else 2
    records = runs * d["nodes"] * d["claims"]["valid"]
    peak_bytes = d["peak_rss_mb"] * 1024 * 1024
    r = {
        "scenario": n,
        "nodes": d["nodes"],
        "valid_claims": d["claims"]["valid"],
        "runs": runs,
        "wall_s": round(float(wall), 1),
        "cpu_s": round(float(user) + float(sys_), 1),
        "peak_rss_mb": round(d["peak_rss_mb"], 1),
        "events": d["events"],
        "events_per_cpu_s": round(d["events"] / max(1e-9, float(user) + float(sys_))),
        "bytes_per_node_claim": round(peak_bytes / records) if records else None,
        "loadavg_at_start": float(open(f"{tmp}/{n}.load").read()),
    }
    targets = {"wall_s": 60}
    if d["nodes"] >= 10000:
        targets["peak_rss_mb"] = 3072
    r["targets"] = targets
    r["met"] = all(r[k] <= v for k, v in targets.items())
    out["scenarios"].append(r)
print(json.dumps(out, indent=1))
EOF
