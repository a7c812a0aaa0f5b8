#!/usr/bin/env bash
# CTest (label pods): runs deploy/local/pods.sh --json on already-built binaries: the
# DaemonSet of deploy/kubernetes/base, as rendered by kustomize, as three pods under podman
# (init containers, capabilities, hostPath mounts, probe, enroll.sh, mesh, enforcement,
# restart, upgrade). Checks the outcomes and that nothing is left behind.
# Usage: pods_test.sh BIN_DIR. Exit 77 = skipped (the reason is printed).
set -euo pipefail
bin=${1:?usage: pods_test.sh BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
pods="$here/../../../deploy/local/pods.sh"
if ! reason=$("$pods" --preflight); then
  echo "pods_test: SKIPPED: $reason"
  exit 77
fi
name="mpt$$" # a name of its own, so it never collides with a run by hand
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$pods" --json --no-build --bin "$bin" --name "$name" >"$out"
cat "$out"
fail=0
check() {
  if jq -e "$1" "$out" >/dev/null; then
    echo "ok: $2"
  else
    echo "FAIL: $2 ($1)"
    fail=1
  fi
}
check '.pods == 3' "three pods"
check '.image_bytes > 0 and .image_bytes < 64 * 1024 * 1024' "the image is under 64 MiB"
check '[.play_to_wait_for_cert_ms[]] | all(. > 0)' "every pod's keygen ran and wait-for-cert waited"
check '[.play_to_ready_ms.first[]] | length == 3 and all(. < 60000)' "every pod became ready after enrollment"
check '.play_to_ready_ms.restart < 30000 and .play_to_ready_ms.upgrade < 30000' "restarted and upgraded pods became ready"
check '[.rss_kb[]] | all(. > 0 and . < 256 * 1024)' "every meshd's RSS is under the pod's 256Mi limit"
check '.block.eperm == "EPERM"' "node3's workload got EPERM for the address blocked in pod 1"
check '.block.xdp_ping_loss == 100 and .block.xdp_drops > 0' "XDP on node2 dropped the blocked source"
check '.block.explain_verdict | type == "string" and length > 0' "meshctl explain answered in the pod"
check '.restart.pinned_maps_kept and .restart.key_and_cert_kept' "the restart kept key, certificate and pinned maps"
check '.restart.down_ping_loss == 100 and .restart.down_connect == "EPERM"' "node2 kept enforcing while its pod was down"
check '.restart.pinned_links >= 5' "node2's program links were pinned (cgroup hooks, XDP, TC)"
check '.restart.catchup_ms < 30000' "the restarted pod caught up on the block added while it was down"
check '.upgrade.seq_after == .upgrade.seq_before + 1' "sequence numbers continue across the upgrade"
check '.upgrade.envelopes_after >= .upgrade.envelopes_before' "the upgrade lost no stored envelope"

# Nothing left behind.
leftover() { echo "FAIL: left behind: $*"; fail=1; }
ip netns list | grep -q "^$name-" && leftover "network namespaces $(ip netns list | grep "^$name-" | tr '\n' ' ')"
compgen -G "/sys/fs/bpf/$name-*" >/dev/null && leftover "bpffs pins /sys/fs/bpf/$name-*"
cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -e "$cg2/$name" ] && leftover "cgroup $cg2/$name"
[ -e "${TMPDIR:-/tmp}/$name" ] && leftover "${TMPDIR:-/tmp}/$name"
pgrep -f "$name/node" >/dev/null && leftover "processes $(pgrep -af "$name/node" | head -n 3)"
((fail == 0)) && echo "pods_test: every outcome holds and nothing was left behind"
exit "$fail"
