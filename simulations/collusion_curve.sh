#!/usr/bin/env bash
# The collusion harm curve: k colluders in k different failure domains (`targeted`, the
# colluders_k3_domains.yaml fleet: 1,000 nodes, 20 domains) for k = 1..10, one meshsim run each
# (trust and naive). Writes OUT/k<k>.json and OUT/k<k>/ (meshsim --out: CSV, harm.svg), then
# OUT/curve.svg and the table (collusion_curve.py).
# Usage: simulations/collusion_curve.sh MESHSIM_BINARY OUT_DIR [k values...]
#   e.g. simulations/collusion_curve.sh build/bin/meshsim /tmp/curve 1 2 3
# CURVE_TEMPLATE=FILE uses another fleet (its `targeted` adversary line gets count/domains k).
# Long CPU job: on shared machines run it through the long-job gate (nice -n 10 /work/tools/long ...).
set -euo pipefail
bin=$1
out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
ks=("$@")
((${#ks[@]})) || ks=(1 2 3 4 5 6 7 8 9 10)
template=${CURVE_TEMPLATE:-$here/scenarios/colluders_k3_domains.yaml}
for k in "${ks[@]}"; do
  sed -E -e "s/^name: .*/name: colluders_k${k}_curve/" \
    -e "/strategy: targeted/ s/count: [0-9]+/count: $k/" \
    -e "/strategy: targeted/ s/domains: [0-9]+/domains: $k/" \
    "$template" >"$out/k$k.yaml"
  grep -q "count: $k, strategy: targeted.*domains: $k}" "$out/k$k.yaml"
  echo "meshsim: k = $k" >&2
  /usr/bin/time -f "k$k user_s=%U wall_s=%e max_rss_kb=%M" -a -o "$out/time.txt" \
    "$bin" --scenario "$out/k$k.yaml" --out "$out/k$k" >"$out/k$k.json"
done
python3 "$here/collusion_curve.py" "$out"
