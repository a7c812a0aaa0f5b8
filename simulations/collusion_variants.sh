#!/usr/bin/env bash
# Robustness of the collusion results (simulations/README.md "Robustness"): the shipped
# colluders_k3_domains / colluders_k5_domains fleets under other seeds, another attacker rate
# and another fleet size, random_four_domains under other seeds, colluders_three_domains and
# colluders_one_domain (shortened with VARIANT_SET), at the trust defaults (nothing
# tuned), and honest baselines of the same fleets (adv=none). Each variant is the shipped file
# with the values in VARIANTS replaced (simulations/variant.py); writes OUT/<name>.yaml,
# OUT/<name>.json, OUT/<name>/ (meshsim --out) and OUT/time.txt, then the table
# (collusion_variants.py).
# Usage: simulations/collusion_variants.sh MESHSIM_BINARY OUT_DIR [variant names...]
# VARIANT_SET="key=value ..." is added to every variant (e.g. duration_s=600).
# Long CPU job: on shared machines run it through the long-job gate (nice -n 10 /work/tools/long ...).
set -euo pipefail
bin=$1
out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# name  base scenario  replaced values
VARIANTS=(
  "h_s11    colluders_k3_domains adv=none"
  "h_n600   colluders_k3_domains adv=none nodes=600 domains=12"
  "k3_s11   colluders_k3_domains"
  "k3_s101  colluders_k3_domains seed=101"
  "k3_s202  colluders_k3_domains seed=202"
  "k3_r30   colluders_k3_domains adv.rate_per_min=30"
  "k3_n600  colluders_k3_domains nodes=600 domains=12"
  "k5_s12   colluders_k5_domains"
  "k5_s101  colluders_k5_domains seed=101"
  "k5_s202  colluders_k5_domains seed=202"
  "k5_r30   colluders_k5_domains adv.rate_per_min=30"
  "k5_n600  colluders_k5_domains nodes=600 domains=12"
  "k3_n600_s101 colluders_k3_domains nodes=600 domains=12 seed=101"
  "k3_n600_s202 colluders_k3_domains nodes=600 domains=12 seed=202"
  "k3_n600_r30  colluders_k3_domains nodes=600 domains=12 adv.rate_per_min=30"
  "k5_n600_s101 colluders_k5_domains nodes=600 domains=12 seed=101"
  "k5_n600_s202 colluders_k5_domains nodes=600 domains=12 seed=202"
  "k5_n600_r30  colluders_k5_domains nodes=600 domains=12 adv.rate_per_min=30"
  "c3d_s7   colluders_three_domains"
  "c1d_s7   colluders_one_domain"
  "r4_s14   random_four_domains"
  "r4_s101  random_four_domains seed=101"
  "r4_s202  random_four_domains seed=202"
  "c3d_n600 colluders_three_domains nodes=600 domains=12"
  "c1d_n600 colluders_one_domain nodes=600 domains=12"
  "r4_n600_s14  random_four_domains nodes=600 domains=12"
  "r4_n600_s101 random_four_domains nodes=600 domains=12 seed=101"
  "r4_n600_s202 random_four_domains nodes=600 domains=12 seed=202"
  "m3_n600      milking_three_domains nodes=600 domains=12"
  "m3_n600_s101 milking_three_domains nodes=600 domains=12 seed=101"
  "k5_n600_r300 colluders_k5_domains nodes=600 domains=12 adv.rate_per_min=300"
  "r4_n600_r20  random_four_domains nodes=600 domains=12 adv.rate_per_min=20"
)
want=("$@")
for v in "${VARIANTS[@]}"; do
  read -r name base sets <<<"$v"
  if ((${#want[@]})) && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086
  python3 "$here/variant.py" "$here/scenarios/$base.yaml" name="$name" $sets ${VARIANT_SET:-} \
    >"$out/$name.yaml"
  echo "meshsim: $name" >&2
  /usr/bin/time -f "$name user_s=%U wall_s=%e max_rss_kb=%M" -a -o "$out/time.txt" \
    "$bin" --scenario "$out/$name.yaml" --out "$out/$name" >"$out/$name.json"
done
python3 "$here/collusion_variants.py" "$out"
