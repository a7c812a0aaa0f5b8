#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds the default preset and
# runs every CTest tier. Tiers that need root (bpf, netns) are skipped with a notice when
# not run as root. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)"

args=(--preset default -j "$(nproc)")
if [ "$(id -u)" -ne 0 ]; then
  echo "run-tests: not root: skipping the bpf and netns tiers (run with sudo for all)" >&2
  args+=(-LE 'bpf|netns')
fi
ctest "${args[@]}" "$@"
