#!/usr/bin/env bash
# The collusion harm curve: k colluders in k different failure domains (`targeted`, the
# colluders_k3_domains.yaml fleet: 1,000 nodes, 20 domains) for k = 1..10, one meshsim run each
# (trust and naive). Writes OUT/k<k>.json and OUT/k<k>/ (meshsim --out: CSV, harm.svg), then
# OUT/curve.svg and the table (collusion_curve.py).
# Usage: simulations/collusion_curve.sh MESHSIM_BINARY OUT_DIR [k values...] [-- sed edits]
#   e.g. simulations/collusion_curve.sh build/bin/meshsim /tmp/curve 1 2 3
# Long CPU job: run it through the build gate on shared machines.
set -euo pipefail
bin=$1
out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
ks=("$@")
((${#ks[@]})) || ks=(1 2 3 4 5 6 7 8 9 10)
for k in "${ks[@]}"; do
  sed -e "s/^name: .*/name: colluders_k${k}_curve/" \
    -e "s/count: 3, strategy: targeted, rate_per_min: 100, start_s: 300, domains: 3/count: $k, strategy: targeted, rate_per_min: 100, start_s: 300, domains: $k/" \
    "$here/scenarios/colluders_k3_domains.yaml" >"$out/k$k.yaml"
  grep -q "count: $k," "$out/k$k.yaml"
  echo "meshsim: k = $k" >&2
  /usr/bin/time -f "k$k user_s=%U max_rss_kb=%M" -a -o "$out/time.txt" \
    "$bin" --scenario "$out/k$k.yaml" --out "$out/k$k" >"$out/k$k.json"
done
python3 "$here/collusion_curve.py" "$out"
