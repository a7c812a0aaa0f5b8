#!/usr/bin/env bash
# Runs shipped scenarios with meshsim and appends one JSON line per scenario to
# OUT/results.jsonl (plus per-scenario --out directories with CSV and SVG files).
# Usage: simulations/run_scenarios.sh MESHSIM_BINARY OUT_DIR [scenario names...]
# Without names, every scenarios/*.yaml runs. Summarise with simulations/summarize.py.
set -euo pipefail
bin=$1
out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
if (($# == 0)); then
  set -- $(cd "$here/scenarios" && ls *.yaml | sed 's/\.yaml$//')
fi
for name in "$@"; do
  echo "meshsim: $name" >&2
  /usr/bin/time -f "$name user_s=%U wall_s=%e max_rss_kb=%M" -a -o "$out/time.txt" \
    "$bin" --scenario "$here/scenarios/$name.yaml" --out "$out/$name" >>"$out/results.jsonl"
done
