#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds the default preset and
# runs every CTest tier. Tiers that need root (bpf, netns, ui, pods) are skipped with a notice when
# not run as root. Extra arguments go to ctest (e.g. -L unit) and select what runs.
#
# Without extra arguments (CI) more passes follow the default tiers:
#   - the unit and sim tiers under ASan + UBSan (preset asan: builds only what they run; the
#     five slowest scale tests are left to the default tier, see CMakePresets.json);
#   - every libFuzzer target, coverage-guided, for MESHD_FUZZ_SECONDS (20 s here) each, as
#     many at a time as there are cores (preset fuzz, clang 16, label fuzz);
#   - as root, the netns mesh tests (label mesh) once more with the asan build's meshd and
#     meshctl (preset asan-netns): a sanitizer report from any daemon fails the run. It needs no
#     extra build (the asan pass built both) and takes about 75 s; MESHD_ASAN_NETNS=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)"

args=(--preset default -j "$(nproc)")
root=1
if [ "$(id -u)" -ne 0 ]; then
  root=0
  echo "run-tests: not root: skipping the bpf, netns, crowdsec, ui and pods tiers (run with sudo for all)" >&2
  args+=(-LE 'bpf|netns|crowdsec|ui|pods')
elif ! reason=$(./deploy/local/pods.sh --preflight); then
  # The pods tier then reports itself as skipped; say why up front.
  echo "run-tests: the pods tier (Kubernetes pods under podman) will be skipped: $reason" >&2
fi
ctest "${args[@]}" "$@"
if [ "$#" -gt 0 ]; then
  exit 0  # a filter selected what runs: no sanitizer or fuzz passes
fi

step() {
  echo "run-tests: $1 ($(date -u +%T))" >&2
}

step "unit and sim tiers under ASan + UBSan (preset asan)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$(nproc)"
ctest --preset asan -j "$(nproc)"

if [ "$root" -eq 1 ] && [ "${MESHD_ASAN_NETNS:-1}" = 1 ]; then
  step "netns mesh tests with sanitized daemons (preset asan-netns)"
  reports=build-asan/sanitizer-reports
  rm -rf "$reports" && mkdir -p "$reports"
  status=0
  ctest --preset asan-netns || status=$?
  if [ -n "$(ls -A "$reports")" ]; then
    echo "run-tests: sanitizer reports from the daemons of the netns mesh tests:" >&2
    for f in "$reports"/*; do
      echo "== $f" >&2
      cat "$f" >&2
    done
    status=1
  fi
  [ "$status" -eq 0 ] || exit "$status"
fi

step "libFuzzer targets (preset fuzz)"
cmake --preset fuzz -DMESHD_FUZZ_SECONDS=20 >/dev/null
cmake --build --preset fuzz -j "$(nproc)"
ctest --preset fuzz -j "$(nproc)"
step "done"
