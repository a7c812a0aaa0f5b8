#!/usr/bin/env bash
# The capability set that deploy/ grants (DaemonSet base: add BPF, NET_ADMIN, PERFMON,
# drop ALL; systemd unit: CapabilityBoundingSet/AmbientCapabilities the same) is enough
# for meshd to do its job: meshd runs with exactly those three capabilities (setpriv:
# bounding, inheritable and ambient sets), loads and pins its maps, attaches the cgroup
# connect hooks and XDP/TC on a veth, serves /healthz, and a block it enforces makes a
# connect() in its cgroup fail with EPERM. Without any one of the three, it cannot load.
# Everything it creates is its own and removed on exit: a network namespace with a veth
# pair, a cgroup, a bpffs pin directory, a temp dir. Needs root, bpffs and cgroup v2.
# usage: capabilities_test.sh MESHD MESHCTL
set -euo pipefail
meshd=${1:-}
meshctl=${2:-}
[[ -x "$meshd" && -x "$meshctl" ]] || { echo "SKIP: meshd and meshctl are not both built"; exit 77; }
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (netns, cgroup, bpffs)"; exit 77; }
for tool in setpriv nsenter ip; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
cgroot=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
bpffs=$(awk '$3 == "bpf" {print $2; exit}' /proc/mounts)
[[ -n "$cgroot" ]] || { echo "SKIP: no cgroup v2 mount"; exit 77; }
[[ -n "$bpffs" ]] || { echo "SKIP: no bpffs mounted"; exit 77; }

id=meshd-capt-$$
tmp=$(mktemp -d)
ns=$id
cg=$cgroot/$id
pins=$bpffs/$id
pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  set +e # clean up everything, whatever fails
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  # The cgroup can only go once its processes have: move stragglers out first.
  if [[ -d "$cg" ]]; then
    while read -r p; do echo "$p" >"$cgroot/cgroup.procs" 2>/dev/null; done <"$cg/cgroup.procs"
    rmdir "$cg" 2>/dev/null || echo "WARNING: could not remove $cg" >&2
  fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$pins" "$tmp"
}
trap cleanup EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }

# Identity, as enrollment would leave it.
"$meshctl" ca init --out "$tmp/ca" >/dev/null
"$meshctl" enroll keygen --dir "$tmp/state" >/dev/null
"$meshctl" ca sign --ca "$tmp/ca" --pub "$tmp/state/node.pub" --name capt --domain test \
  --out "$tmp/cert" >/dev/null
"$meshctl" enroll install --dir "$tmp/state" --ca "$tmp/ca" <"$tmp/cert" >/dev/null

ip netns add "$ns"
in_ns ip link set lo up
in_ns ip link add up0 type veth peer name up1
in_ns ip link set up0 up
in_ns ip link set up1 up
mkdir "$cg"

cat >"$tmp/meshd.yaml" <<EOF
node: {key: $tmp/state/node.key, cert: $tmp/state/node.cert, ca: $tmp/ca/ca.pub, data_dir: $tmp/state}
mesh: {listen: "127.0.0.1:7960", peers: []}
control: {socket: $tmp/meshd.sock}
metrics: {listen: "127.0.0.1:9464"}
enforcement: {backend: bpf, cgroup: $cg, pin_path: $pins, interfaces: [up0]}
sensor: {enabled: true}
log: {format: text, level: info}
EOF
caps=-all,+bpf,+net_admin,+perfmon
# nsenter and setpriv exec, so $! is meshd itself (not a subshell: no function here).
nsenter --net="/run/netns/$ns" \
  setpriv --bounding-set="$caps" --inh-caps="$caps" --ambient-caps="$caps" -- \
  "$meshd" --config "$tmp/meshd.yaml" >"$tmp/meshd.log" 2>&1 &
pid=$!

healthy=0
for _ in $(seq 1 50); do
  if in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null |
    grep -q '200'; then
    healthy=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
check "meshd with only BPF NET_ADMIN PERFMON answers /healthz" test "$healthy" -eq 1
if ((!healthy)); then cat "$tmp/meshd.log"; exit 1; fi

# CAP_BPF = 39, CAP_PERFMON = 38, CAP_NET_ADMIN = 12.
check "its effective capabilities are exactly those three" \
  grep -qx $'CapEff:\t000000c000001000' "/proc/$pid/status"
check "and its bounding set too" grep -qx $'CapBnd:\t000000c000001000' "/proc/$pid/status"

"$meshctl" --socket "$tmp/meshd.sock" status >"$tmp/status" 2>&1 || true
check "backend is bpf" grep -q '^backend: bpf' "$tmp/status"
check "connect hooks attached to its cgroup" grep -q "meshd_connect4 -> $cg" "$tmp/status"
check "XDP attached to the veth" grep -Eq 'xdp[^;]* -> up0|-> up0 \(xdp' "$tmp/status"
check "TC attached to the veth" grep -Eq -- '-> up0 \((tcx|clsact)' "$tmp/status"
check "maps pinned" test -e "$pins/meshd_block_v4"

"$meshctl" --socket "$tmp/meshd.sock" block add 198.51.100.7/32 --confidence 0.9 \
  --reason capabilities-test >/dev/null
sleep 0.5
out=$(in_ns bash -c "echo \$\$ >$cg/cgroup.procs; exec 3<>/dev/tcp/198.51.100.7/80" 2>&1 || true)
check "a connect() in its cgroup to a blocked address fails with EPERM" \
  grep -q 'Operation not permitted' <<<"$out"
((fail == 0)) || { cat "$tmp/status"; tail -20 "$tmp/meshd.log"; }
kill "$pid"
wait "$pid" || true
pid=""

# And each of the three is needed: without any one of them the bpf backend cannot load
# (BPF, NET_ADMIN: EPERM; PERFMON: the verifier refuses the sensor's pointer use).
for missing in bpf net_admin perfmon; do
  fewer=-all
  for c in bpf net_admin perfmon; do [[ "$c" == "$missing" ]] || fewer+=",+$c"; done
  rm -rf "$pins"
  rc=0
  timeout 20 nsenter --net="/run/netns/$ns" \
    setpriv --bounding-set="$fewer" --inh-caps="$fewer" --ambient-caps="$fewer" -- \
    "$meshd" --config "$tmp/meshd.yaml" >"$tmp/fewer.log" 2>&1 || rc=$?
  check "without CAP_${missing^^} meshd refuses to start (bpf backend)" \
    test "$rc" -ne 0 -a "$rc" -ne 124
  grep -q 'cannot start' "$tmp/fewer.log" || tail -3 "$tmp/fewer.log"
done
exit "$fail"
