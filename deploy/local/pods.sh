#!/usr/bin/env bash
# The Kubernetes DaemonSet's own pod spec, run for real: a 3-node meshd fleet under podman.
#
#   sudo ./deploy/local/pods.sh [--no-build] [--bin DIR] [--name P] [--json] [--keep]
#   sudo ./deploy/local/pods.sh --cleanup [--name P]
#   ./deploy/local/pods.sh --preflight     # can podman run the pods here? (exit 0 or 1)
#
# 1. Builds the image (deploy/docker/build-image.sh, into a private podman storage) and
#    renders deploy/kubernetes/base with kustomize, through a test overlay that changes only
#    the ConfigMap (host:port seeds instead of the headless Service, which needs cluster DNS,
#    and the nodes' uplink eth0). The DaemonSet's pod template, as rendered, becomes one Pod
#    per node (daemonset_to_pod.py).
# 2. Three "nodes": network namespaces joined by a bridge, each with its own cgroup (the
#    node's cgroup root), bpffs directory and state directory for the hostPath volumes.
#    Each pod is started with `nsenter --net=NODE podman kube play`: keygen makes the key,
#    wait-for-cert waits.
# 3. deploy/kubernetes/enroll.sh enrolls the nodes, with `podman exec` as its --exec hook.
# 4. Ready: the readiness probe's httpGet, as the kubelet would send it from the node.
# 5. Mesh; 6. `meshctl block add` in pod 1 is enforced by pods 2 and 3 (EPERM for a workload
#    in node 3's cgroup, XDP drops on node 2), `meshctl explain` in the pod.
# 7. Pod 2 is deleted and played again: key, certificate and pinned maps survive, the
#    kernel keeps enforcing while no meshd runs (pinned program links: EPERM and XDP drops
#    asserted), and the new pod takes the programs over and catches up.
# 8. Pod 3 is upgraded to a new image tag over its state: nothing lost, sequence continues.
# 9. Everything is removed on exit, also on failure (unless --keep).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

KEEP=0
JSON=0
BUILD=1
BIN=""
PREFIX=meshd-pods
CLEANUP_ONLY=0
PREFLIGHT=0

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  cat <<EOF
Options:
  --no-build    do not install packages or build; use --bin (default: build/bin)
  --bin DIR     directory holding meshd and meshctl
  --name P      prefix of every name it creates (default meshd-pods)
  --json        print a JSON summary of the measured outcomes instead of the story
  --keep        leave the pods running at the end and print how to talk to them
  --cleanup     remove what an earlier run (e.g. with --keep) left behind, then exit
  --preflight   check that podman can run the pods on this machine, then exit
EOF
}

while (($#)); do
  case "$1" in
    --no-build) BUILD=0; shift ;;
    --bin) BIN=${2:?--bin needs a directory}; shift 2 ;;
    --name) PREFIX=${2:?--name needs a prefix}; shift 2 ;;
    --json) JSON=1; shift ;;
    --keep) KEEP=1; shift ;;
    --cleanup) CLEANUP_ONLY=1; shift ;;
    --preflight) PREFLIGHT=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "pods.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$PREFIX" =~ ^[a-z][a-z0-9-]{0,19}$ ]]; then
  echo "pods.sh: --name must be lower-case letters, digits and '-', at most 20 characters" >&2
  exit 2
fi

# ---- names ----------------------------------------------------------------------------------
N=3
WORK="${TMPDIR:-/tmp}/$PREFIX"
HUB="$PREFIX-hub"
OUT="$PREFIX-out"
SUBNET=10.214.0
C2_IP=$SUBNET.200     # blocked from pod 1, before the restart
C2B_IP=$SUBNET.201    # blocked from pod 1 while pod 2 is down
C2C_IP=$SUBNET.202    # blocked from pod 3, before its upgrade
C2D_IP=$SUBNET.203    # blocked from pod 3, after its upgrade
ZONES=(zone-a zone-b zone-c)
IMAGE=localhost/$PREFIX

ns_of() { echo "$PREFIX-n$1"; }
ip_of() { echo "$SUBNET.$((10 + $1))"; }
pod_of() { echo "meshd-node$1"; } # daemonset_to_pod.py: <daemonset>-<node>
dir_of() { echo "$WORK/node$1"; }
cgroup2_mount() { awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts; }
# Each node has a container runtime of its own, as a Kubernetes node does: podman with a
# private storage (images, containers, volumes, pods, its state database) under the node's
# directory. Nothing is shared between nodes (podman 4.3 names an emptyDir volume after
# the volume, so pods sharing a storage would share their emptyDirs), nor with other
# podman users of the machine.
# Its locks too: podman's default lock type is one shared-memory segment for every storage
# on the machine, and a podman whose --tmpdir is new frees all its locks (it takes that for a
# reboot), locks that pods of other storages hold: pods then deadlock. File locks live in the
# node's --tmpdir. $WORK/containers.conf (CONTAINERS_CONF) says so.
CONF=$WORK/containers.conf
podman_of() {
  local s
  s="$(dir_of "$1")/storage"
  echo "podman --root $s/root --runroot $s/runroot --storage-driver vfs --tmpdir $s/tmp --runtime runc"
}
pm() { # pm NODE PODMAN-ARGS...
  local -a cmd
  read -r -a cmd <<<"$(podman_of "$1")"
  [ -f "$CONF" ] || { echo "pods.sh: $CONF is missing" >&2; return 1; }
  CONTAINERS_CONF=$CONF "${cmd[@]}" "${@:2}"
}

# ---- output ---------------------------------------------------------------------------------
if [ -t 1 ] && ((!JSON)); then B=$'\e[1m'; R=$'\e[31m'; Z=$'\e[0m'; else B=; R=; Z=; fi
say() { ((JSON)) || printf '%s\n' "$*"; }
step() { say ""; say "${B}== $* ==${Z}"; }
indent() { if ((JSON)); then cat >/dev/null; else sed 's/^/    /'; fi; }
now_ms() { date +%s%3N; }

show_logs() {
  local i
  for i in $(seq 1 "$N"); do
    [ -d "$(dir_of "$i")/storage" ] || continue
    pm "$i" ps -a --format '{{.Names}} {{.Status}}' >&2 2>/dev/null || true
    echo "--- $(pod_of "$i"): last lines of its meshd container ---" >&2
    pm "$i" logs --tail 12 "$(pod_of "$i")-meshd" >&2 2>/dev/null || true
    [ -f "$(dir_of "$i")/play.log" ] && tail -n 5 "$(dir_of "$i")/play.log" >&2
  done
}
die() {
  echo "${R}pods.sh: $*${Z}" >&2
  show_logs
  exit 1
}

# ---- preflight ------------------------------------------------------------------------------
# Prints why the pods cannot run here, or nothing.
preflight() {
  local tool
  [ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces, eBPF, cgroups, podman)"; return; }
  for tool in podman runc buildah kubectl python3 jq curl ping nsenter ip bpftool; do
    command -v "$tool" >/dev/null || { echo "'$tool' is missing (deploy/install-deps.sh installs it)"; return; }
  done
  python3 -c 'import yaml' 2>/dev/null || { echo "python3 has no yaml module (python3-yaml)"; return; }
  [ -n "$(cgroup2_mount)" ] || { echo "no cgroup v2 hierarchy in /proc/mounts"; return; }
  local info
  info=$(podman --runtime runc info --format '{{.Host.OCIRuntime.Name}}' 2>&1) ||
    { echo "podman --runtime runc info failed: $info"; return; }
  # Podman's default ulimits (nofile 1048576) exceed the hard limit of some machines;
  # deploy/install-deps.sh writes containers.conf with default_ulimits = [].
  local hard
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && ((hard < 1048576)) &&
    ! grep -qs '^default_ulimits *= *\[ *\]' /etc/containers/containers.conf; then
    echo "the hard nofile limit ($hard) is below podman's default ulimits: set default_ulimits = [] in /etc/containers/containers.conf (deploy/install-deps.sh does)"
    return
  fi
}
if ((PREFLIGHT)); then
  reason=$(preflight)
  if [ -n "$reason" ]; then echo "pods.sh: cannot run pods here: $reason"; exit 1; fi
  echo "pods.sh: podman can run the pods here"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "pods.sh: needs root (network namespaces, eBPF, cgroups, podman): run it with sudo" >&2; exit 1; }

# ---- clean-up (also of an earlier run with the same --name) ---------------------------------
cleanup_resources() {
  local pidfile ns cg pid m i
  for pidfile in "$WORK"/*.pid "$WORK"/node*/*.pid; do
    [ -f "$pidfile" ] && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  done
  for i in $(seq 1 "$N"); do
    [ -d "$(dir_of "$i")/storage" ] || continue
    pm "$i" pod rm -a -f -t 0 >/dev/null 2>&1 || true
    pm "$i" rm -a -f -t 0 >/dev/null 2>&1 || true
    pm "$i" volume rm -a -f >/dev/null 2>&1 || true
    pm "$i" rmi -a -f >/dev/null 2>&1 || true
  done
  for pidfile in "$WORK"/*.pid "$WORK"/node*/*.pid; do
    [ -f "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  done
  local cg2
  cg2=$(cgroup2_mount)
  if [ -n "$cg2" ] && [ -d "$cg2/$PREFIX" ]; then
    for cg in "$cg2/$PREFIX"/*/; do
      [ -f "$cg/cgroup.procs" ] || continue
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$cg/cgroup.procs"
    done
    for _ in $(seq 20); do
      rmdir "$cg2/$PREFIX"/*/ 2>/dev/null || true
      rmdir "$cg2/$PREFIX" 2>/dev/null && break
      sleep 0.1
    done
  fi
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case "$ns" in "$HUB" | "$OUT" | "$PREFIX"-n[0-9]*) ip netns del "$ns" 2>/dev/null || true ;; esac
  done
  rm -rf /sys/fs/bpf/"$PREFIX"-node[0-9]* 2>/dev/null || true
  # podman's cgroupfs parent of all pods, if no other pod is left in it.
  rmdir /sys/fs/cgroup/*/libpod_parent 2>/dev/null || true
  # Mounts podman may have left under its storage (shm, volumes) if it was killed.
  if [ -d "$WORK" ]; then
    awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  # The pods' conmon processes finish their clean-up (exit commands) just after `pod rm`.
  for _ in $(seq 20); do
    rm -rf "$WORK" 2>/dev/null && break
    sleep 0.2
  done
  [ ! -e "$WORK" ] || echo "pods.sh: could not remove $WORK" >&2
}

if ((CLEANUP_ONLY)); then
  cleanup_resources
  echo "pods.sh: removed what '$PREFIX' had created"
  exit 0
fi

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if ((KEEP && rc == 0)); then
    cat <<EOF

The pods are still running (--keep). Talk to them with, for example:
  CONTAINERS_CONF=$CONF $(podman_of 1) ps --pod
  CONTAINERS_CONF=$CONF $(podman_of 1) exec $(pod_of 1)-meshd meshctl status
  nsenter --net=/run/netns/$(ns_of 1) curl -s 127.0.0.1:9464/metrics
Remove everything with:
  sudo $0 --cleanup --name $PREFIX
EOF
    return
  fi
  if ((rc != 0)) && ((rc != 130)) && ((rc != 143)); then
    echo "pods.sh: failed (exit $rc); cleaning up" >&2
  fi
  cleanup_resources
  if ((!JSON && rc == 0)); then
    say ""
    say "clean-up done: pods, images, volumes, namespaces, bridge, cgroups, pins and $WORK removed."
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

reason=$(preflight)
[ -z "$reason" ] || { echo "pods.sh: cannot run pods here: $reason" >&2; exit 1; }

# ---- build ----------------------------------------------------------------------------------
if ((BUILD)); then
  say "${B}meshd pods${Z}: installing what is missing and building (this can take a while)..."
  "$repo/deploy/install-deps.sh" >&2
  (cd "$repo" && cmake --preset default >/dev/null && cmake --build --preset default --target meshd meshctl) >&2
fi
BIN=${BIN:-$repo/build/bin}
BIN=$(cd "$BIN" 2>/dev/null && pwd) || { echo "pods.sh: --bin directory does not exist" >&2; exit 1; }
for tool in "$BIN/meshd" "$BIN/meshctl"; do
  [ -x "$tool" ] || { echo "pods.sh: $tool not found (build it, or pass --bin DIR)" >&2; exit 1; }
done

# ---- helpers --------------------------------------------------------------------------------
in_ns() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" "$@"
}
# Runs COMMAND in pod I's meshd container (what `kubectl exec` would do).
pexec() {
  local i=$1
  shift
  pm "$i" exec "$(pod_of "$i")-meshd" "$@"
}
ctl() {
  local i=$1
  shift
  pexec "$i" meshctl "$@"
}
# Runs workload.py as a workload of node I: inside its cgroup and its network namespace.
workload() {
  local i=$1
  shift
  sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CGROOT/node$i" \
    nsenter --net="/run/netns/$(ns_of "$i")" python3 "$here/workload.py" "$@"
}
metric() {
  in_ns "$(ns_of "$1")" curl -sf --max-time 2 http://127.0.0.1:9464/metrics |
    awk -v n="$2" '$1 == n { printf "%d\n", $2; found = 1 } END { if (!found) print 0 }'
}
state_of() { pm "$1" container inspect --format '{{.State.Status}}' "$2" 2>/dev/null || echo absent; }
exited() { ! kill -0 "$1" 2>/dev/null; }
is_running() { [ "$(state_of "$1" "$2")" = running ]; }
# wait_for TIMEOUT_MS DESCRIPTION COMMAND...: polls COMMAND every 100 ms.
wait_for() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$(($(now_ms) + timeout))
  until "$@" >/dev/null 2>&1; do
    (($(now_ms) < deadline)) || die "timed out after ${timeout} ms waiting for $what"
    sleep 0.1
  done
}
enforced_on() { ctl "$1" blocks --json | jq -e --arg p "$2" 'any(.[]; .prefix == $p and .enforced)'; }
# The readiness probe of the pod's meshd container, as a URL the kubelet would request
# from the node (hostNetwork: the node's namespace).
probe_url() {
  python3 - "$(dir_of "$1")/pod.yaml" <<'EOF'
import sys, yaml
pod = yaml.safe_load(open(sys.argv[1]))
meshd = next(c for c in pod["spec"]["containers"] if c["name"] == "meshd")
get = meshd["readinessProbe"]["httpGet"]
print(f"http://{get.get('host', '127.0.0.1')}:{get['port']}{get['path']}")
EOF
}
ready() { in_ns "$(ns_of "$1")" curl -sf --max-time 1 -o /dev/null "$(probe_url "$1")"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# pinned_maps_hold PINDIR IPV4: some pinned IPv4 block map under /sys/fs/bpf/PINDIR/meshd
# has a key for IPV4 (struct meshd_v4_key: prefixlen, then the address in network order).
pinned_maps_hold() {
  local m
  for m in /sys/fs/bpf/"$1"/meshd/meshd_exact_v4 /sys/fs/bpf/"$1"/meshd/meshd_block_v4; do
    [ -e "$m" ] || continue
    bpftool -j map dump pinned "$m" 2>/dev/null | python3 -c '
import json, sys
want = [int(b) for b in sys.argv[1].split(".")]
keys = [[int(b, 16) for b in e["key"]] for e in json.load(sys.stdin) if "key" in e]
sys.exit(0 if any(k[4:8] == want for k in keys) else 1)' "$2" && return 0
  done
  return 1
}

# transform I IMAGE: pod I's pod.yaml and ConfigMaps from the rendered manifests.
transform() {
  local i=$1 image=$2
  python3 "$here/daemonset_to_pod.py" "$WORK/rendered.yaml" --node "node$i" --image "$image" \
    --out "$(dir_of "$i")" \
    --host-path "/var/lib/meshd=$(dir_of "$i")/var-lib-meshd" \
    --host-path "/sys/fs/bpf=/sys/fs/bpf/$PREFIX-node$i" \
    --host-path "/sys/fs/cgroup=$CGROOT/node$i" >/dev/null
}
# play I: `kube play` pod I in node I's namespace, in the background: it returns only once
# the init containers are done (wait-for-cert waits for enrollment). Sets PLAY_AT[I].
declare -A PLAY_AT
play() {
  local i=$1 d
  d=$(dir_of "$i")
  local cms=()
  for f in "$d"/configmap-*.yaml "$WORK/configmap-meshd-ca.yaml"; do cms+=(--configmap "$f"); done
  local -a podman
  read -r -a podman <<<"$(podman_of "$i")"
  PLAY_AT[$i]=$(now_ms)
  # nsenter execs podman: the pid is podman's (a backgrounded function would be a subshell).
  CONTAINERS_CONF=$CONF nsenter --net="/run/netns/$(ns_of "$i")" "${podman[@]}" kube play "${cms[@]}" "$d/pod.yaml" >"$d/play.log" 2>&1 &
  echo $! >"$d/play.pid"
}
# Waits for pod I's `kube play` to return, then for its meshd container to run and its
# readiness probe to pass. Sets READY_MS[I] (from kube play).
declare -A READY_MS
wait_ready() {
  local i=$1 d pid
  d=$(dir_of "$i")
  pid=$(cat "$d/play.pid")
  wait_for 60000 "kube play of $(pod_of "$i") to return" exited "$pid"
  rm -f "$d/play.pid"
  # kube play exits 0 even when a container fails to start: look at the container.
  [ "$(state_of "$i" "$(pod_of "$i")-meshd")" = running ] ||
    die "$(pod_of "$i"): the meshd container is $(state_of "$i" "$(pod_of "$i")-meshd") after kube play: $(grep -i error "$d/play.log" | tail -n 2)"
  wait_for 30000 "$(pod_of "$i")'s readiness probe $(probe_url "$i")" ready "$i"
  READY_MS[$i]=$(($(now_ms) - PLAY_AT[$i]))
}
# The meshd container's memory limit as the pod spec states it, in bytes.
spec_memory_limit() {
  python3 - "$(dir_of "$1")/pod.yaml" <<'EOF'
import sys, yaml
pod = yaml.safe_load(open(sys.argv[1]))
meshd = next(c for c in pod["spec"]["containers"] if c["name"] == "meshd")
q = str(meshd["resources"]["limits"]["memory"])
units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
print(int(q[:-2]) * units[q[-2:]] if q[-2:] in units else int(q))
EOF
}
rss_kb() {
  local pid
  pid=$(pm "$1" container inspect --format '{{.State.Pid}}' "$(pod_of "$1")-meshd")
  awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"
}

# ---- 1. image and manifests -----------------------------------------------------------------
T_START=$(now_ms)
cleanup_resources # leftovers of an interrupted run with the same name
mkdir -p "$WORK"
chmod 700 "$WORK"
# Replaces /etc/containers/containers.conf for this run's podman; default_ulimits as
# deploy/install-deps.sh writes it there.
cat >"$CONF" <<EOF
[containers]
default_ulimits = []
[engine]
lock_type = "file"
EOF
CG2=$(cgroup2_mount)
CGROOT="$CG2/$PREFIX"
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != "bpf_fs" ]; then
  mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs at /sys/fs/bpf"
fi
for i in $(seq 1 "$N"); do
  mkdir -p "$(dir_of "$i")" "$CGROOT/node$i" "/sys/fs/bpf/$PREFIX-node$i"
done

step "1. The image, and the DaemonSet's pod template as one Pod per node"
# build_image TAG: built once with buildah, loaded into every node's podman from the OCI
# archive (as nodes pull from a registry).
build_image() {
  local i
  # build-image.sh takes a build directory holding bin/meshd and bin/meshctl.
  mkdir -p "$WORK/image-build/bin"
  ln -sf "$BIN/meshd" "$BIN/meshctl" "$WORK/image-build/bin/"
  "$repo/deploy/docker/build-image.sh" --build "$WORK/image-build" --tag "$IMAGE:$1" \
    --storage "$WORK/build-storage" --oci-archive "$WORK/meshd-$1.tar" | indent
  for i in $(seq 1 "$N"); do
    pm "$i" load -q -i "$WORK/meshd-$1.tar" >/dev/null || die "node$i: podman load of $IMAGE:$1 failed"
  done
}
t=$(now_ms)
build_image 1
IMAGE_BUILD_MS=$(($(now_ms) - t))
IMAGE_BYTES=$(pm 1 image inspect --format '{{.Size}}' "$IMAGE:1") || die "podman does not see $IMAGE:1"
IMAGE_ARCHIVE_BYTES=$(stat -c %s "$WORK/meshd-1.tar")
say "  $IMAGE:1: $((IMAGE_BYTES / 1024)) KiB unpacked, $((IMAGE_ARCHIVE_BYTES / 1024)) KiB as OCI archive; built and loaded into"
say "  each node's podman in $IMAGE_BUILD_MS ms"

# The test overlay: deploy/kubernetes/base, with a ConfigMap whose seeds are the nodes'
# addresses (no cluster DNS here) and whose uplink is eth0. Nothing else changes.
mkdir -p "$WORK/overlay"
seeds=$(for i in $(seq 1 "$N"); do echo "$(ip_of "$i"):7960"; done | paste -sd,)
python3 - "$repo/deploy/kubernetes/base/meshd.yaml" "$WORK/overlay/meshd.yaml" "$seeds" <<'EOF'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
config["mesh"]["peers"] = sys.argv[3].split(",")
config["enforcement"]["interfaces"] = ["eth0"]
yaml.safe_dump(config, open(sys.argv[2], "w"), sort_keys=False)
EOF
cat >"$WORK/overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$WORK/overlay" "$repo/deploy/kubernetes/base")
configMapGenerator:
  - name: meshd-config
    behavior: replace
    files:
      - meshd.yaml
EOF
kubectl kustomize "$WORK/overlay" >"$WORK/rendered.yaml" || die "kubectl kustomize failed on the test overlay"
kubectl kustomize "$repo/deploy/kubernetes/base" >"$WORK/base.yaml" || die "kubectl kustomize failed on deploy/kubernetes/base"
# The DaemonSet exercised is the base's, byte for byte but for the config's generated name.
python3 - "$WORK/base.yaml" "$WORK/rendered.yaml" <<'EOF' || die "the test overlay changed the DaemonSet"
import sys, yaml
def daemonset(path):
    ds = next(d for d in yaml.safe_load_all(open(path)) if d and d["kind"] == "DaemonSet")
    for v in ds["spec"]["template"]["spec"]["volumes"]:
        if v["name"] == "config":
            v["configMap"]["name"] = "meshd-config"
    return ds
sys.exit(daemonset(sys.argv[1]) != daemonset(sys.argv[2]))
EOF
for i in $(seq 1 "$N"); do transform "$i" "$IMAGE:1"; done
say "  rendered deploy/kubernetes/base (test overlay: ConfigMap seeds $seeds, interfaces [eth0]);"
say "  the DaemonSet is the base's unchanged. Pod $(pod_of 1), as podman gets it:"
sed -n '/^spec:/,$p' "$(dir_of 1)/pod.yaml" | grep -E 'image:|hostPath|path:|seccomp|type: (Unconfined|RuntimeDefault)|restartPolicy|nodeName' | indent

# ---- 2. nodes and pods ----------------------------------------------------------------------
step "2. Three nodes (network namespaces on a bridge); kube play in each"
ip netns add "$HUB"
ip -n "$HUB" link set lo up
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
for i in $(seq 1 "$N"); do
  ns=$(ns_of "$i")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$HUB" link add "v$i" type veth peer name eth0 netns "$ns"
  ip -n "$HUB" link set "v$i" master br0 up
  ip -n "$ns" addr add "$(ip_of "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
done
ip netns add "$OUT"
ip -n "$OUT" link set lo up
ip -n "$HUB" link add vout type veth peer name eth0 netns "$OUT"
ip -n "$HUB" link set vout master br0 up
for a in "$C2_IP" "$C2B_IP" "$C2C_IP" "$C2D_IP"; do ip -n "$OUT" addr add "$a/24" dev eth0; done
ip -n "$OUT" link set eth0 up

# The operator's CA, outside the "cluster"; its public key is the meshd-ca ConfigMap, made
# the way enroll.sh makes it. podman reads ConfigMaps only when a pod is played.
"$BIN/meshctl" ca init --out "$WORK/ca" >/dev/null
kubectl create configmap meshd-ca --namespace meshd-system --from-file=ca.pub="$WORK/ca/ca.pub" \
  --dry-run=client -o yaml >"$WORK/configmap-meshd-ca.yaml"

for i in $(seq 1 "$N"); do play "$i"; done
declare -A KEYGEN_MS
for i in $(seq 1 "$N"); do
  wait_for 60000 "$(pod_of "$i")'s wait-for-cert init container to run" \
    is_running "$i" "$(pod_of "$i")-wait-for-cert"
  KEYGEN_MS[$i]=$(($(now_ms) - PLAY_AT[$i]))
  key="$(dir_of "$i")/var-lib-meshd/node.key"
  [ -s "$key" ] && [ "$(stat -c %a "$key")" = 600 ] || die "node$i: keygen made no node.key (0600) on the hostPath"
  [ "$(state_of "$i" "$(pod_of "$i")-meshd")" = created ] || die "$(pod_of "$i"): meshd started before enrollment"
  say "  $(pod_of "$i") on node$i ($(ip_of "$i")): keygen made node.key (0600) on the hostPath; wait-for-cert is waiting ($((KEYGEN_MS[$i])) ms after kube play)"
done

# ---- 3. enrollment --------------------------------------------------------------------------
step "3. Enrollment with deploy/kubernetes/enroll.sh --exec (podman exec for kubectl exec)"
{
  echo '#!/bin/sh'
  echo '# enroll.sh --exec hook: POD CONTAINER COMMAND... = podman exec -i POD-CONTAINER COMMAND...'
  echo '# on the node the pod runs on.'
  echo 'pod=$1 container=$2'
  echo 'shift 2'
  echo 'case "$pod" in'
  for i in $(seq 1 "$N"); do echo "  $(pod_of "$i")) podman=\"$(podman_of "$i")\" ;;"; done
  echo '  *) echo "pod-exec: no pod $pod" >&2; exit 1 ;;'
  echo 'esac'
  echo "export CONTAINERS_CONF=$CONF"
  echo 'exec $podman exec -i "$pod-$container" "$@"'
} >"$WORK/pod-exec"
chmod +x "$WORK/pod-exec"
pods_args=()
for i in $(seq 1 "$N"); do pods_args+=(--pod "$(pod_of "$i"):node$i:${ZONES[$((i - 1))]}"); done
t=$(now_ms)
MESHCTL="$BIN/meshctl" "$repo/deploy/kubernetes/enroll.sh" --ca "$WORK/ca" --exec "$WORK/pod-exec" \
  "${pods_args[@]}" --days 2 2>&1 | indent
ENROLL_MS=$(($(now_ms) - t))

# ---- 4. ready -------------------------------------------------------------------------------
step "4. Ready: the readiness probe ($(probe_url 1)), from each node"
declare -A FIRST_READY_MS
for i in $(seq 1 "$N"); do wait_ready "$i"; done
for i in $(seq 1 "$N"); do
  backend=$(ctl "$i" status --json | jq -r .backend)
  [ "$backend" = bpf ] || die "$(pod_of "$i") enforces with '$backend', not bpf (programs not loaded under the pod's seccomp profile and capabilities?)"
  say "  $(pod_of "$i"): ready $((READY_MS[$i])) ms after kube play (enrollment included); pod $(pm "$i" pod inspect --format '{{.State}}' "$(pod_of "$i")"), backend bpf, caps $(pm "$i" container inspect --format '{{.EffectiveCaps}}' "$(pod_of "$i")-meshd")"
  FIRST_READY_MS[$i]=${READY_MS[$i]}
done

T_ALL_READY=$(now_ms)

# ---- 5. mesh --------------------------------------------------------------------------------
step "5. The pods form the mesh (host:port seeds)"
mesh_ready() {
  local i
  for i in $(seq 1 "$N"); do
    ctl "$i" status --json | jq -e --argjson w "$((N - 1))" '.peers >= $w' >/dev/null || return 1
  done
}
wait_for 30000 "every pod to have $((N - 1)) peers" mesh_ready
MESH_MS=$(($(now_ms) - T_ALL_READY))
say "  full mesh $MESH_MS ms after the last pod was ready"
for i in $(seq 1 "$N"); do
  say "  $(pod_of "$i"): $(ctl "$i" status --json | jq -r '"node \(.node), domain \(.domain), \(.peers) peers"')"
done

# ---- 6. end to end --------------------------------------------------------------------------
step "6. meshctl block add $C2_IP in $(pod_of 1)"
nsenter --net="/run/netns/$OUT" python3 "$here/workload.py" serve "$C2_IP:443" "$C2B_IP:443" >"$WORK/outside.log" 2>&1 &
echo $! >"$WORK/outside.pid"
wait_for 5000 "the outside service to listen" grep -q listening "$WORK/outside.log"
before=$(workload 3 connect "$C2_IP" 443 --timeout 1 || true)
[ "$(jq -r .ok <<<"$before")" = 1 ] || die "baseline: node3's workload cannot reach $C2_IP: $before"
in_ns "$OUT" ping -c 1 -W 1 -I "$C2_IP" "$(ip_of 2)" >/dev/null || die "baseline: $C2_IP cannot ping node2"
ctl 1 block add "$C2_IP" --confidence 1 --severity critical --reason "pods test" | indent
T_BLOCK=$(now_ms)
enforced_by() {
  local p=$1 i
  shift
  for i in "$@"; do enforced_on "$i" "$p" >/dev/null || return 1; done
}
wait_for 10000 "pods 2 and 3 to enforce $C2_IP" enforced_by "$C2_IP" 2 3
ENFORCE_MS=$(($(now_ms) - T_BLOCK))
say "  enforced by $(pod_of 2) and $(pod_of 3) within $ENFORCE_MS ms (polled)"
eperm=$(workload 3 connect "$C2_IP" 443 --timeout 1 || true)
EPERM_ERRNO=$(jq -r 'if .ok == 1 then "connected" else .errno end' <<<"$eperm")
say "  a workload in node3's cgroup: connect($C2_IP:443) -> $EPERM_ERRNO"
[ "$EPERM_ERRNO" = EPERM ] || die "node3: expected EPERM connecting to $C2_IP, got $eperm"
xdp_check() { # xdp_check NODE SOURCE: prints "LOSS DROPS"
  local before after out loss
  before=$(metric "$1" meshd_packets_dropped_total)
  out=$(in_ns "$OUT" ping -c 3 -i 0.2 -W 1 -I "$2" "$(ip_of "$1")" 2>&1 || true)
  loss=$(grep -oE '[0-9]+% packet loss' <<<"$out" | grep -oE '^[0-9]+' || echo "?")
  after=$(metric "$1" meshd_packets_dropped_total)
  echo "$loss $((after - before))"
}
read -r XDP_LOSS XDP_DROPS <<<"$(xdp_check 2 "$C2_IP")"
say "  $C2_IP -> node2: ping ${XDP_LOSS}% loss, XDP drops on node2 +$XDP_DROPS"
[ "$XDP_LOSS" = 100 ] && ((XDP_DROPS > 0)) || die "node2: XDP did not drop $C2_IP's traffic (loss $XDP_LOSS%, drops +$XDP_DROPS)"
say "  meshctl explain $C2_IP, in $(pod_of 2):"
ctl 2 explain "$C2_IP" | indent
EXPLAIN_VERDICT=$(ctl 2 explain "$C2_IP" --json | jq -r '.targets[0].verdict')
[ -n "$EXPLAIN_VERDICT" ] && [ "$EXPLAIN_VERDICT" != null ] || die "meshctl explain gave no verdict"

# ---- 7. restart -----------------------------------------------------------------------------
step "7. $(pod_of 2) is deleted and played again"
state2="$(dir_of 2)/var-lib-meshd"
key2=$(sha "$state2/node.key")
cert2=$(sha "$state2/node.cert")
pm 2 kube down "$(dir_of 2)/pod.yaml" >/dev/null 2>&1 || pm 2 pod rm -f "$(pod_of 2)" >/dev/null
[ "$(pm 2 pod exists "$(pod_of 2)" && echo yes || echo no)" = no ] || die "$(pod_of 2) still exists after kube down"
pinned_maps_hold "$PREFIX-node2" "$C2_IP" || die "node2's pinned block maps lost $C2_IP with its pod"
# The kernel still enforces while no meshd runs: the program links are pinned next to the
# maps (sensor/bpf_loader.hpp), so the programs stay attached when the daemon exits.
read -r DOWN_LOSS _ <<<"$(xdp_check 2 "$C2_IP")"
down_eperm=$(workload 2 connect "$C2_IP" 443 --timeout 1 || true)
DOWN_ERRNO=$(jq -r 'if .ok == 1 then "connected" else .errno end' <<<"$down_eperm")
DOWN_LINKS=$(find "/sys/fs/bpf/$PREFIX-node2/meshd/links" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
say "  while it is down: the pinned maps under /sys/fs/bpf/$PREFIX-node2/meshd still hold $C2_IP,"
say "  $DOWN_LINKS program links are pinned next to them;"
say "  enforcement while down: $C2_IP -> node2 ping ${DOWN_LOSS}% loss, a workload in node2's cgroup"
say "  connect($C2_IP:443) -> $DOWN_ERRNO"
[ "$DOWN_LOSS" = 100 ] || die "node2 stopped dropping $C2_IP's traffic while its pod was down (ping loss $DOWN_LOSS%)"
[ "$DOWN_ERRNO" = EPERM ] || die "node2 stopped denying connects to $C2_IP while its pod was down: $down_eperm"
ctl 1 block add "$C2B_IP" --confidence 1 --severity critical --reason "pods test, node2 down" | indent
wait_for 10000 "pod 3 to enforce $C2B_IP" enforced_by "$C2B_IP" 3
play 2
wait_ready 2
RESTART_READY_MS=${READY_MS[2]}
[ "$(sha "$state2/node.key")" = "$key2" ] || die "node2's key changed across the restart"
[ "$(sha "$state2/node.cert")" = "$cert2" ] || die "node2's certificate changed across the restart"
wait_for 15000 "the restarted $(pod_of 2) to catch up on $C2B_IP" enforced_by "$C2B_IP" 2
CATCHUP_MS=$(($(now_ms) - PLAY_AT[2]))
enforced_on 2 "$C2_IP" >/dev/null || die "the restarted $(pod_of 2) lost the block on $C2_IP"
# Taken over, not stacked: the same number of pinned links, and the daemon says so.
AFTER_LINKS=$(find "/sys/fs/bpf/$PREFIX-node2/meshd/links" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
[ "$AFTER_LINKS" = "$DOWN_LINKS" ] || die "node2 has $AFTER_LINKS pinned links after the restart, $DOWN_LINKS before"
# The log is read whole before it is searched: with pipefail, `podman logs | grep -q` failed
# whenever grep matched and exited while podman was still writing (SIGPIPE), a false failure.
node2_log=$(pm 2 logs "$(pod_of 2)-meshd" 2>&1) || die "podman logs of $(pod_of 2)-meshd failed: $node2_log"
[[ $node2_log == *"taken over"* ]] ||
  die "the restarted $(pod_of 2) did not take node2's pinned programs over (no 'taken over' in its log)"
say "  it took the $AFTER_LINKS pinned program links over in place (no second program on any hook)"
say "  back: ready $RESTART_READY_MS ms after kube play (no enrollment needed: same key and certificate),"
say "  enforces $C2_IP (from before) and $C2B_IP (added while it was down) $CATCHUP_MS ms after kube play"

# ---- 8. upgrade -----------------------------------------------------------------------------
step "8. $(pod_of 3) is upgraded to $IMAGE:2 over its state"
ctl 3 block add "$C2C_IP" --confidence 1 --severity critical --reason "pods test, before upgrade" | indent
st=$(ctl 3 status --json)
SEQ_BEFORE=$(jq -r .own_seq <<<"$st")
ENV_BEFORE=$(jq -r .store_envelopes <<<"$st")
BLOCKS_BEFORE=$(ctl 3 blocks --json | jq -c '[.[] | .prefix] | sort')
key3=$(sha "$(dir_of 3)/var-lib-meshd/node.key")
build_image 2
pm 3 kube down "$(dir_of 3)/pod.yaml" >/dev/null 2>&1 || pm 3 pod rm -f "$(pod_of 3)" >/dev/null
transform 3 "$IMAGE:2"
play 3
wait_ready 3
UPGRADE_READY_MS=${READY_MS[3]}
running_image=$(pm 3 container inspect --format '{{.ImageName}}' "$(pod_of 3)-meshd")
[ "$running_image" = "$IMAGE:2" ] || die "$(pod_of 3) runs $running_image, not $IMAGE:2"
[ "$(sha "$(dir_of 3)/var-lib-meshd/node.key")" = "$key3" ] || die "node3's key changed across the upgrade"
st=$(ctl 3 status --json)
ENV_AFTER=$(jq -r .store_envelopes <<<"$st")
BLOCKS_AFTER=$(ctl 3 blocks --json | jq -c '[.[] | .prefix] | sort')
[ "$BLOCKS_AFTER" = "$BLOCKS_BEFORE" ] || die "node3's blocks changed across the upgrade: $BLOCKS_BEFORE -> $BLOCKS_AFTER"
((ENV_AFTER >= ENV_BEFORE)) || die "node3's store lost envelopes: $ENV_BEFORE -> $ENV_AFTER"
SEQ_AFTER_OUT=$(ctl 3 block add "$C2D_IP" --confidence 1 --severity critical --reason "pods test, after upgrade")
SEQ_AFTER=$(grep -oE 'seq [0-9]+' <<<"$SEQ_AFTER_OUT" | grep -oE '[0-9]+')
say "  $SEQ_AFTER_OUT"
((SEQ_AFTER == SEQ_BEFORE + 1)) || die "node3's sequence numbers do not continue: $SEQ_BEFORE before, $SEQ_AFTER after"
known_by() {
  local p=$1 i
  shift
  for i in "$@"; do ctl "$i" blocks --json | jq -e --arg p "$p" 'any(.[]; .prefix == $p)' >/dev/null || return 1; done
}
wait_for 10000 "pods 1 and 2 to receive node3's post-upgrade claim" known_by "$C2D_IP" 1 2
say "  ready $UPGRADE_READY_MS ms after kube play; runs $running_image; same key; blocks $BLOCKS_AFTER kept;"
say "  $ENV_BEFORE -> $ENV_AFTER stored envelopes; own sequence $SEQ_BEFORE before, $SEQ_AFTER for the first claim after"

# ---- measurements ---------------------------------------------------------------------------
declare -A RSS CGMEM
for i in $(seq 1 "$N"); do
  RSS[$i]=$(rss_kb "$i")
  # The pod's cgroup: what the container runtime charges it (BPF maps included).
  CGMEM[$i]=$(pm "$i" stats --no-stream --format json "$(pod_of "$i")-meshd" | jq -r '.[0].mem_usage')
  limit=$(pm "$i" container inspect --format '{{.HostConfig.Memory}}' "$(pod_of "$i")-meshd")
  [ "$limit" = "$(spec_memory_limit "$i")" ] ||
    die "$(pod_of "$i"): memory limit $limit, the pod spec says $(spec_memory_limit "$i") bytes"
done
T_END=$(now_ms)
if ((JSON)); then
  ready_json=$(for i in $(seq 1 "$N"); do echo "\"node$i\": ${FIRST_READY_MS[$i]}"; done | paste -sd, -)
  rss_json=$(for i in $(seq 1 "$N"); do echo "\"node$i\": ${RSS[$i]}"; done | paste -sd, -)
  cgmem_json=$(for i in $(seq 1 "$N"); do echo "\"node$i\": \"${CGMEM[$i]}\""; done | paste -sd, -)
  keygen_json=$(for i in $(seq 1 "$N"); do echo "\"node$i\": ${KEYGEN_MS[$i]}"; done | paste -sd, -)
  jq -n --argjson image_bytes "$IMAGE_BYTES" --argjson image_build_ms "$IMAGE_BUILD_MS" \
    --argjson keygen "{$keygen_json}" --argjson enroll_ms "$ENROLL_MS" \
    --argjson first_ready "{$ready_json}" --argjson rss "{$rss_json}" --argjson cgmem "{$cgmem_json}" \
    --argjson enforce_ms "$ENFORCE_MS" --arg eperm "$EPERM_ERRNO" \
    --arg xdp_loss "$XDP_LOSS" --argjson xdp_drops "$XDP_DROPS" --arg verdict "$EXPLAIN_VERDICT" \
    --arg down_loss "$DOWN_LOSS" --arg down_errno "$DOWN_ERRNO" --argjson down_links "$DOWN_LINKS" \
    --argjson restart_ready "$RESTART_READY_MS" --argjson catchup "$CATCHUP_MS" \
    --argjson upgrade_ready "$UPGRADE_READY_MS" --argjson seq_before "$SEQ_BEFORE" \
    --argjson seq_after "$SEQ_AFTER" --argjson env_before "$ENV_BEFORE" --argjson env_after "$ENV_AFTER" \
    --argjson total_ms "$((T_END - T_START))" --argjson mesh_ms "$MESH_MS" \
    --argjson image_archive_bytes "$IMAGE_ARCHIVE_BYTES" \
    '{pods: 3, image_bytes: $image_bytes, image_archive_bytes: $image_archive_bytes,
      image_build_ms: $image_build_ms,
      play_to_wait_for_cert_ms: $keygen, enroll_ms: $enroll_ms,
      play_to_ready_ms: {first: $first_ready, restart: $restart_ready, upgrade: $upgrade_ready},
      mesh_after_ready_ms: $mesh_ms, rss_kb: $rss, cgroup_memory: $cgmem,
      block: {enforce_ms: $enforce_ms, eperm: $eperm, xdp_ping_loss: ($xdp_loss | tonumber? // $xdp_loss),
              xdp_drops: $xdp_drops, explain_verdict: $verdict},
      restart: {pinned_maps_kept: true, key_and_cert_kept: true,
                down_ping_loss: ($down_loss | tonumber? // $down_loss), down_connect: $down_errno,
                pinned_links: $down_links,
                catchup_ms: $catchup},
      upgrade: {seq_before: $seq_before, seq_after: $seq_after,
                envelopes_before: $env_before, envelopes_after: $env_after},
      total_ms: $total_ms}'
else
  step "Summary (measured)"
  say "  image $IMAGE:1: $((IMAGE_BYTES / 1024)) KiB"
  say "  kube play -> ready: first start $(for i in $(seq 1 "$N"); do printf '%s ' "${FIRST_READY_MS[$i]:-?}"; done)ms (enrollment $ENROLL_MS ms included),"
  say "                      restart $RESTART_READY_MS ms, upgrade $UPGRADE_READY_MS ms"
  say "  meshd RSS per pod: $(for i in $(seq 1 "$N"); do printf 'node%s %s KiB  ' "$i" "${RSS[$i]}"; done)"
  say "  pod cgroup memory (usage / the spec's limit): $(for i in $(seq 1 "$N"); do printf 'node%s %s  ' "$i" "${CGMEM[$i]}"; done)"
  say "    (pages and maps stay charged to the cgroup that first touched them: re-created pods show less)"
  say "  whole run: $(((T_END - T_START) / 1000)) s"
fi
