#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds the default preset and
# runs every CTest tier. Tiers that need root (bpf, netns, ui, pods) are skipped with a notice when
# not run as root. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)"

args=(--preset default -j "$(nproc)")
if [ "$(id -u)" -ne 0 ]; then
  echo "run-tests: not root: skipping the bpf, netns, crowdsec, ui and pods tiers (run with sudo for all)" >&2
  args+=(-LE 'bpf|netns|crowdsec|ui|pods')
elif ! reason=$(./deploy/local/pods.sh --preflight); then
  # The pods tier then reports itself as skipped; say why up front.
  echo "run-tests: the pods tier (Kubernetes pods under podman) will be skipped: $reason" >&2
fi
ctest "${args[@]}" "$@"
