#!/usr/bin/env bash
# The local mesh demo: a real meshd fleet on this machine, one network namespace per node.
#
#   sudo ./deploy/local/demo.sh [-n N] [--keep] [--json] [--no-build] [--bin DIR] [--name P]
#   sudo ./deploy/local/demo.sh --cleanup [--name P]
#
# Builds meshd and meshctl (unless --no-build), then creates N nodes (default 5), each a
# network namespace with its own meshd (bpf enforcement: cgroup connect hooks on the node's
# own cgroup, XDP/TC on its uplink), data dir, control socket and bpffs pin directory, all
# joined by veths to a bridge that lives in a namespace of its own (the machine's
# interfaces are never touched). An "outside" namespace hosts a stand-in C2 server, a
# benign web service and a "kubernetes API" stand-in that every node's config protects.
# The story then runs with measured (not decorative) timings:
#   1. a workload in node 1's cgroup connects to the C2 address, which is in node 1's threat
#      feed: detection, signed claim;
#   2. every node enforces it (claim-to-enforcement time per node from the daemons' own
#      event timestamps), a connect from node N-1 fails with EPERM, the C2's traffic to
#      node N is dropped by XDP (ping and TCP fail, the drop counter rises);
#   3. the compromised node 3 claims the benign service: the policy refuses it on the other
#      nodes (explain shows why), and its claims on unused addresses stay within its budget;
#   4. nodes 3, 4 and 5, compromised in three different zones, claim the benign service
#      together: the nodes whose workloads use it steadily refuse it (explain prints every
#      term, including every rule that refuses it), the colluders' trust falls there, and the
#      real C2 stays blocked (EPERM);
#   5. node 3's claim on the protected address gets it quarantined fleet-wide;
#   6. everything it created is removed on exit, Ctrl-C or failure (unless --keep).
# --json prints one JSON summary of the measured outcomes on stdout instead of the story.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

N=5
KEEP=0
JSON=0
BUILD=1
BIN=""
PREFIX=meshd-demo
CLEANUP_ONLY=0

usage() {
  sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
  cat <<EOF
Options:
  -n N          number of nodes (5..20, default 5)
  --keep        leave the mesh running at the end and print how to talk to it
  --json        print a JSON summary of the measured outcomes instead of the story
  --no-build    do not install packages or build; use --bin (default: build/bin)
  --bin DIR     directory holding meshd and meshctl
  --name P      prefix of every name the demo creates (default meshd-demo)
  --cleanup     remove what an earlier run (e.g. with --keep) left behind, then exit
EOF
}

while (($#)); do
  case "$1" in
    -n) N=${2:?-n needs a number}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --json) JSON=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --bin) BIN=${2:?--bin needs a directory}; shift 2 ;;
    --name) PREFIX=${2:?--name needs a prefix}; shift 2 ;;
    --cleanup) CLEANUP_ONLY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$N" =~ ^[0-9]+$ ]] || ((N < 5 || N > 20)); then
  echo "demo.sh: -n must be a number from 5 to 20 (the story needs nodes 1, 3, N-1 and N)" >&2
  exit 2
fi
if ! [[ "$PREFIX" =~ ^[a-z][a-z0-9-]{0,19}$ ]]; then
  echo "demo.sh: --name must be lower-case letters, digits and '-', at most 20 characters" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: needs root (network namespaces, eBPF, cgroups): run it with sudo" >&2
  exit 1
fi

# ---- names and addresses ------------------------------------------------------------------
WORK="${TMPDIR:-/tmp}/$PREFIX"
HUB="$PREFIX-hub"
OUT="$PREFIX-out"
SUBNET=10.213.0
C2_IP=$SUBNET.200      # the command-and-control server (in node 1's threat feed)
WEB_IP=$SUBNET.201     # a benign service every node uses
KAPI_IP=$SUBNET.202    # "kubernetes API" stand-in: protected in every honest node's config
BUDGET_NET=10.213.9    # unused addresses the compromised node claims (budget demo)
MESH_PORT=7946
QUARANTINE_MS=86400000
ZONES=(zone-a zone-b zone-c)
DET=1                  # the node whose workload meets the C2
BAD=3                  # the compromised node
COLLUDERS=(3 4 5)      # step 4: node 3 and the two it recruits, one per zone
# Strong local benign evidence needs steady use over benign_strong_span_ms (default 1 min);
# the demo compresses that to 5 s so the story fits in well under a minute.
STRONG_SPAN_MS=5000
EPERM_NODE=$((N - 1))
XDP_NODE=$N

ns_of() { echo "$PREFIX-n$1"; }
ip_of() { echo "$SUBNET.$((10 + $1))"; }
zone_of() { echo "${ZONES[$((($1 - 1) % 3))]}"; }
dir_of() { echo "$WORK/node$1"; }
is_colluder() { [[ " ${COLLUDERS[*]} " == *" $1 "* ]]; }
honest_nodes() { for i in $(seq 1 "$N"); do is_colluder "$i" || echo "$i"; done; }

cgroup2_mount() { awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts; }

# ---- output -------------------------------------------------------------------------------
if [ -t 1 ] && ((!JSON)); then B=$'\e[1m'; R=$'\e[31m'; Z=$'\e[0m'; else B=; R=; Z=; fi
say() { ((JSON)) || printf '%s\n' "$*"; }
step() { say ""; say "${B}== $* ==${Z}"; }
indent() {
  if ((JSON)); then cat >/dev/null; else sed 's/^/    /'; fi
}
now_ms() { date +%s%3N; }

show_logs() {
  [ -d "$WORK" ] || return 0
  for i in $(seq 1 "$N"); do
    local log
    log="$(dir_of "$i")/meshd.log"
    [ -f "$log" ] || continue
    echo "--- node$i: last lines of $log ---" >&2
    tail -n 12 "$log" >&2
  done
}
die() {
  echo "${R}demo.sh: $*${Z}" >&2
  show_logs
  exit 1
}

# ---- clean-up (also of an earlier run with the same --name) -------------------------------
cleanup_resources() {
  local pidfile pid
  # Daemons and listeners we started: SIGTERM, then SIGKILL after 3 s.
  for pidfile in "$WORK"/*.pid "$WORK"/node*/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 30); do
    local alive=0
    for pidfile in "$WORK"/*.pid "$WORK"/node*/*.pid; do
      [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  for pidfile in "$WORK"/*.pid "$WORK"/node*/*.pid; do
    [ -f "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  done
  # Workloads still inside the node cgroups, then the cgroups themselves.
  local cg2 cg
  cg2=$(cgroup2_mount)
  if [ -n "$cg2" ] && [ -d "$cg2/$PREFIX" ]; then
    # Node cgroups and the workload cgroups inside them (deepest first).
    while read -r cg; do
      [ -f "$cg/cgroup.procs" ] || continue
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$cg/cgroup.procs"
    done < <(find "$cg2/$PREFIX" -mindepth 1 -depth -type d)
    for _ in $(seq 20); do
      find "$cg2/$PREFIX" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
      rmdir "$cg2/$PREFIX" 2>/dev/null && break
      sleep 0.1
    done
  fi
  # Namespaces: deleting one removes its veth ends; the bridge goes with the hub. Processes
  # still inside one go first: a pid file of a listener started through a shell function
  # names the subshell, not the listener, which would otherwise outlive its namespace.
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case "$ns" in
      "$PREFIX"-hub | "$PREFIX"-out | "$PREFIX"-n[0-9]*)
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
        ;;
    esac
  done
  # Pinned maps and links.
  local pin
  for pin in /sys/fs/bpf/"$PREFIX"-node*; do
    [ -e "$pin" ] && rm -rf "$pin"
  done
  rm -rf "$WORK"
}

if ((CLEANUP_ONLY)); then
  cleanup_resources
  echo "demo.sh: removed what '$PREFIX' had created"
  exit 0
fi

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if ((KEEP && rc == 0)); then
    cat <<EOF

The mesh is still running (--keep). Talk to it with, for example:
  $BIN/meshctl --socket $(dir_of 1)/ctl.sock status
  $BIN/meshctl --socket $(dir_of 1)/ctl.sock events --follow
  nsenter --net=/run/netns/$(ns_of 1) curl -s 127.0.0.1:9464/metrics
  logs: $WORK/node*/meshd.log
Remove everything with:
  sudo $0 --cleanup --name $PREFIX
EOF
    return
  fi
  if ((rc != 0)) && ((rc != 130)) && ((rc != 143)); then
    echo "demo.sh: failed (exit $rc); cleaning up" >&2
  fi
  cleanup_resources
  if ((!JSON && rc == 0)); then
    say ""
    say "clean-up done: daemons, namespaces, bridge, veths, cgroups, pins and $WORK removed."
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- install and build --------------------------------------------------------------------
if ((BUILD)); then
  say "${B}meshd local demo${Z}: installing what is missing and building (this can take a while)..."
  "$repo/deploy/install-deps.sh" >&2
  (cd "$repo" && cmake --preset default >/dev/null && cmake --build --preset default --target meshd meshctl) >&2
  BIN=${BIN:-$repo/build/bin}
fi
BIN=${BIN:-$repo/build/bin}
BIN=$(cd "$BIN" 2>/dev/null && pwd) || { echo "demo.sh: --bin directory does not exist" >&2; exit 1; }
for tool in "$BIN/meshd" "$BIN/meshctl"; do
  [ -x "$tool" ] || { echo "demo.sh: $tool not found (build it, or pass --bin DIR)" >&2; exit 1; }
done
for tool in python3 jq curl ping nsenter ip; do
  command -v "$tool" >/dev/null || { echo "demo.sh: '$tool' is missing (deploy/install-deps.sh installs it)" >&2; exit 1; }
done

ctl() {
  local i=$1
  shift
  "$BIN/meshctl" --socket "$(dir_of "$i")/ctl.sock" "$@"
}
in_ns() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" "$@"
}
# Runs workload.py as a workload of node $1: inside its cgroup and its network namespace.
workload() {
  local i=$1
  shift
  workload_in "node$i" "$i" "$@"
}
# Same, in the cgroup $CGROOT/$1 (a node's cgroup or one inside it: one workload of many).
workload_in() {
  local cg=$1 i=$2
  shift 2
  sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CGROOT/$cg" \
    nsenter --net="/run/netns/$(ns_of "$i")" python3 "$here/workload.py" "$@"
}
metric() {
  in_ns "$(ns_of "$1")" curl -sf --max-time 2 http://127.0.0.1:9464/metrics |
    awk -v n="$2" '$1 == n { printf "%d\n", $2; found = 1 } END { if (!found) print 0 }'
}
check_daemons() {
  local i
  for i in $(seq 1 "$N"); do
    kill -0 "$(cat "$(dir_of "$i")/meshd.pid")" 2>/dev/null || die "meshd of node$i exited"
  done
}
# wait_for TIMEOUT_MS DESCRIPTION COMMAND...: polls COMMAND every 50 ms.
wait_for() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$(($(now_ms) + timeout))
  until "$@" >/dev/null 2>&1; do
    check_daemons
    (($(now_ms) < deadline)) || die "timed out after ${timeout} ms waiting for $what"
    sleep 0.05
  done
}
# First event of kind $2 for prefix $3 on node $1: its "at" (ms), or nothing.
event_at() {
  ctl "$1" events --json --limit 2000 |
    jq -r --arg e "$2" --arg p "$3" 'select(.event == $e and .prefix == $p) | .at' | head -n 1
}
enforced_on() { ctl "$1" blocks --json | jq -e --arg p "$2" 'any(.[]; .prefix == $p and .enforced)'; }
known_on() { ctl "$1" blocks --json | jq -e --arg p "$2" 'any(.[]; .prefix == $p)'; }
others() { seq 1 "$N" | grep -vx "$1"; }

# ---- the mesh -----------------------------------------------------------------------------
T_START=$(now_ms)
cleanup_resources # leftovers of an interrupted run with the same name
mkdir -p "$WORK"
chmod 700 "$WORK"

CG2=$(cgroup2_mount)
[ -n "$CG2" ] || die "no cgroup v2 hierarchy in /proc/mounts (meshd's connect hooks need one)"
CGROOT="$CG2/$PREFIX"
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != "bpf_fs" ]; then
  mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs at /sys/fs/bpf"
fi

step "Setting up a $N-node mesh on this machine"
ip netns add "$HUB"
ip -n "$HUB" link set lo up
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
mkdir -p "$CGROOT"
for i in $(seq 1 "$N"); do
  ns=$(ns_of "$i")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$HUB" link add "v$i" type veth peer name eth0 netns "$ns"
  ip -n "$HUB" link set "v$i" master br0 up
  ip -n "$ns" addr add "$(ip_of "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  mkdir -p "$CGROOT/node$i" "/sys/fs/bpf/$PREFIX-node$i"
done
ip netns add "$OUT"
ip -n "$OUT" link set lo up
ip -n "$HUB" link add vout type veth peer name eth0 netns "$OUT"
ip -n "$HUB" link set vout master br0 up
for a in "$C2_IP" "$WEB_IP" "$KAPI_IP"; do ip -n "$OUT" addr add "$a/24" dev eth0; done
ip -n "$OUT" link set eth0 up

# Fleet CA and one certified key per node, all made with meshctl.
"$BIN/meshctl" ca init --out "$WORK/ca" >/dev/null
for i in $(seq 1 "$N"); do
  d=$(dir_of "$i")
  mkdir -p "$d/data"
  "$BIN/meshctl" keys gen --out "$d" >/dev/null
  "$BIN/meshctl" ca sign --ca "$WORK/ca" --pub "$d/node.pub" --name "node$i" \
    --domain "$(zone_of "$i")" --days 1 --out "$d/node.cert" >/dev/null
  : >"$d/feed.txt"
done
printf '# demo threat feed (one IP/CIDR per line)\n%s\n' "$C2_IP" >"$(dir_of "$DET")/feed.txt"

for i in $(seq 1 "$N"); do
  d=$(dir_of "$i")
  # The compromised node runs a tampered config without the protected list: an honest meshd
  # refuses to sign a claim on a prefix it protects.
  protected="[\"$KAPI_IP/32\"]"
  [ "$i" = "$BAD" ] && protected="[]  # tampered: the fleet protects $KAPI_IP/32"
  peers=""
  for j in $(others "$i"); do peers+="${peers:+, }\"$(ip_of "$j"):$MESH_PORT\""; done
  cat >"$d/config.yaml" <<EOF
# node$i of the local demo ($(zone_of "$i"))
node:
  name: node$i
  key: $d/node.key
  cert: $d/node.cert
  ca: $WORK/ca/ca.pub
  data_dir: $d/data
mesh:
  listen: "$(ip_of "$i"):$MESH_PORT"
  peers: [$peers]
  handshake_timeout_ms: 2000
control:
  socket: $d/ctl.sock
metrics:
  listen: "127.0.0.1:9464"
enforcement:
  backend: bpf
  interfaces: [eth0]
  cgroup: $CGROOT/node$i
  pin_path: /sys/fs/bpf/$PREFIX-node$i
sensor:
  feeds: [$d/feed.txt]
protected: $protected
policy:
  quarantine_ms: $QUARANTINE_MS
  benign_strong_span_ms: $STRONG_SPAN_MS  # demo only: the default is 60000 (1 min)
log:
  format: text
  level: info
EOF
  "$BIN/meshd" --check-config "$d/config.yaml" >/dev/null || die "node$i: config rejected"
done

for i in $(seq 1 "$N"); do
  d=$(dir_of "$i")
  nsenter --net="/run/netns/$(ns_of "$i")" "$BIN/meshd" --config "$d/config.yaml" >"$d/meshd.log" 2>&1 &
  echo $! >"$d/meshd.pid"
done
want_peers=$((N - 1 < 6 ? N - 1 : 6))
mesh_ready() {
  local i
  for i in $(seq 1 "$N"); do
    ctl "$i" status --json | jq -e --argjson w "$want_peers" '.peers >= $w and .backend == "bpf"' >/dev/null || return 1
  done
}
wait_for 30000 "every node to answer 'meshctl status' with >= $want_peers peers and the bpf backend" mesh_ready
T_READY=$(now_ms)
READY_MS=$((T_READY - T_START))

# Services in the outside namespace and on node N; readiness = the "listening" line.
in_ns "$OUT" python3 "$here/workload.py" serve "$C2_IP:443" "$WEB_IP:80" "$KAPI_IP:443" >"$WORK/outside.log" 2>&1 &
echo $! >"$WORK/outside.pid"
in_ns "$(ns_of "$XDP_NODE")" python3 "$here/workload.py" serve "$(ip_of "$XDP_NODE"):8080" >"$WORK/node$XDP_NODE-svc.log" 2>&1 &
echo $! >"$WORK/node$XDP_NODE-svc.pid"
wait_for 5000 "the outside services to listen" grep -q listening "$WORK/outside.log"
wait_for 5000 "node$XDP_NODE's service to listen" grep -q listening "$WORK/node$XDP_NODE-svc.log"

say "  $N nodes in ${#ZONES[@]} failure domains, each a network namespace with its own meshd (bpf backend),"
say "  cgroup, bpffs pins and veth into a bridge; a fleet CA signed every node's key (meshctl ca sign)."
for i in $(seq 1 "$N"); do
  role=""
  [ "$i" = "$DET" ] && role=" (has the C2 address in its threat feed)"
  [ "$i" = "$BAD" ] && role=" (will be compromised)"
  say "    node$i  $(ip_of "$i")  $(zone_of "$i")  $(ctl "$i" status --json | jq -r '"\(.peers) peers"')$role"
done
say "    outside  C2 $C2_IP, web service $WEB_IP, \"kubernetes API\" $KAPI_IP (protected fleet-wide)"
say "  mesh ready after ${READY_MS} ms"

# Baselines: the C2 can reach node N, and every node's workloads use the web service.
baseline_ping=$(in_ns "$OUT" ping -c 1 -W 1 -I "$C2_IP" "$(ip_of "$XDP_NODE")" >/dev/null 2>&1 && echo ok || echo fail)
baseline_tcp=$(in_ns "$OUT" python3 "$here/workload.py" connect "$(ip_of "$XDP_NODE")" 8080 --source "$C2_IP" --timeout 1 | jq -r .ok)
[ "$baseline_ping" = ok ] && [ "$baseline_tcp" = 1 ] || die "baseline: the outside namespace cannot reach node$XDP_NODE (ping $baseline_ping, tcp ok=$baseline_tcp)"
WEB_FLOWS=50
web_pids=()
for i in $(seq 1 "$N"); do
  workload "$i" connect "$WEB_IP" 80 --count "$WEB_FLOWS" >"$WORK/web$i.json" &
  web_pids+=($!)
done
wait "${web_pids[@]}" || true # (a bare `wait` would wait for the daemons too)
for i in $(seq 1 "$N"); do
  [ "$(jq -r .ok "$WORK/web$i.json")" = "$WEB_FLOWS" ] || die "node$i's workload could not use the web service: $(cat "$WORK/web$i.json")"
done
say "  before any block: the C2 reaches node$XDP_NODE (ping and TCP), and each node's workloads"
say "  made $WEB_FLOWS connections to the web service $WEB_IP (that usage is what blocking it would cost)."
# From now on, two workloads (two cgroups inside the node's: two distinct sources) on each node
# that stays honest use the web service steadily, 4 connects a second each, until the end.
for i in $(honest_nodes); do
  for app in web-a web-b; do
    mkdir -p "$CGROOT/node$i/$app"
    workload_in "node$i/$app" "$i" connect "$WEB_IP" 80 --count 1000000 --interval 0.25 --timeout 1 >/dev/null 2>&1 &
    echo $! >"$WORK/use-node$i-$app.pid"
  done
done
say "  two workloads on each of node$(honest_nodes | paste -sd, - | sed 's/,/, node/g') keep using it, 4 connects a second each."

# ---- 1. detection -------------------------------------------------------------------------
C2_PREFIX="$C2_IP"
step "1. A workload on node$DET connects to the C2 server $C2_IP"
first=$(workload "$DET" connect "$C2_IP" 443 --timeout 1 || true)
say "  node$DET workload: connect($C2_IP:443) -> $(jq -r 'if .ok == 1 then "connected (not blocked yet)" else "\(.errno) \(.error)" end' <<<"$first")"
claim_signed() { [ -n "$(event_at "$DET" claim_signed "$C2_PREFIX")" ]; }
wait_for 5000 "node$DET to sign a claim on $C2_PREFIX" claim_signed
CLAIM_AT=$(event_at "$DET" claim_signed "$C2_PREFIX")
T_CONNECT=$(jq -r '.at_ms' <<<"$first") # the connect() itself, not the interpreter start
DETECT_MS=$((CLAIM_AT - T_CONNECT))
say "  threat-feed match -> signed claim, ${DETECT_MS} ms after the connect:"
ctl "$DET" events --limit 2000 | grep claim_signed | grep -F "$C2_PREFIX" | head -n 1 | indent

# ---- 2. fleet-wide enforcement ------------------------------------------------------------
step "2. Every node enforces the block"
all_enforced() {
  local i
  for i in $(seq 1 "$N"); do enforced_on "$i" "$C2_PREFIX" >/dev/null || return 1; done
}
wait_for 10000 "every node to enforce $C2_PREFIX" all_enforced
declare -A ENFORCE_MS
max_enforce=0
for i in $(seq 1 "$N"); do
  at=$(event_at "$i" block_enforce "$C2_PREFIX")
  [ -n "$at" ] || die "node$i enforces $C2_PREFIX but logged no block_enforce event"
  ENFORCE_MS[$i]=$((at - CLAIM_AT))
  ((ENFORCE_MS[$i] > max_enforce)) && max_enforce=${ENFORCE_MS[$i]}
  say "  node$i: enforced $((at - CLAIM_AT)) ms after the claim was signed"
done
say "  slowest node: ${max_enforce} ms (claim_signed at node$DET vs block_enforce at each node, same clock)"
say ""
say "  meshctl blocks, per node:"
for i in $(seq 1 "$N"); do
  say "  node$i:"
  ctl "$i" blocks | indent
done

eperm=$(workload "$EPERM_NODE" connect "$C2_IP" 443 --timeout 1 || true)
EPERM_ERRNO=$(jq -r .errno <<<"$eperm")
say ""
say "  node$EPERM_NODE workload: connect($C2_IP:443) -> $(jq -r 'if .ok == 1 then "CONNECTED" else "\(.error) (\(.errno))" end' <<<"$eperm")"
[ "$EPERM_ERRNO" = EPERM ] || die "node$EPERM_NODE: expected EPERM connecting to the C2, got: $eperm"

drops_before=$(metric "$XDP_NODE" meshd_packets_dropped_total)
ping_out=$(in_ns "$OUT" ping -c 3 -i 0.2 -W 1 -I "$C2_IP" "$(ip_of "$XDP_NODE")" 2>&1 || true)
PING_LOSS=$(grep -oE '[0-9]+% packet loss' <<<"$ping_out" | grep -oE '^[0-9]+' || echo "?")
tcp=$(in_ns "$OUT" python3 "$here/workload.py" connect "$(ip_of "$XDP_NODE")" 8080 --source "$C2_IP" --timeout 1 || true)
XDP_TCP_ERRNO=$(jq -r 'if .ok == 1 then "connected" else .errno end' <<<"$tcp")
sleep 0.2
drops_after=$(metric "$XDP_NODE" meshd_packets_dropped_total)
XDP_DROPS=$((drops_after - drops_before))
web_ping=$(in_ns "$OUT" ping -c 1 -W 1 -I "$WEB_IP" "$(ip_of "$XDP_NODE")" >/dev/null 2>&1 && echo ok || echo lost)
say "  C2 -> node$XDP_NODE: ping ${PING_LOSS}% loss, TCP to :8080 $XDP_TCP_ERRNO; XDP drops on node$XDP_NODE +$XDP_DROPS"
say "  (meshd_packets_dropped_total $drops_before -> $drops_after); the web service's ping to node$XDP_NODE: $web_ping"
[ "$PING_LOSS" = 100 ] && [ "$XDP_TCP_ERRNO" != connected ] && ((XDP_DROPS > 0)) ||
  die "node$XDP_NODE: the C2's traffic was not dropped by XDP (ping loss $PING_LOSS%, tcp $XDP_TCP_ERRNO, drops +$XDP_DROPS)"

# ---- 3. a compromised node ----------------------------------------------------------------
WEB_PREFIX="$WEB_IP"
step "3. node$BAD is compromised and lies"
say "  node$BAD claims the web service $WEB_IP (confidence 1.0, severity critical):"
ctl "$BAD" block add "$WEB_IP" --confidence 1 --severity critical --reason "compromised node lies" | indent
known_everywhere() {
  local i
  for i in $(others "$BAD"); do known_on "$i" "$1" >/dev/null || return 1; done
}
wait_for 5000 "the other nodes to receive node$BAD's claim on $WEB_PREFIX" known_everywhere "$WEB_PREFIX"
sleep 0.3 # a wrong enforcement would show up within this
WEB_REFUSED=0
for i in $(others "$BAD"); do
  if enforced_on "$i" "$WEB_PREFIX" >/dev/null; then
    say "  node$i: ${R}ENFORCED${Z}"
  else
    WEB_REFUSED=$((WEB_REFUSED + 1))
  fi
done
WEB_VERDICT=$(ctl "$DET" explain "$WEB_IP" --json | jq -r '.targets[0].verdict')
say "  refused on $WEB_REFUSED of $((N - 1)) other nodes. Why, according to node$DET (meshctl explain $WEB_IP):"
ctl "$DET" explain "$WEB_IP" | indent

BUDGET_CLAIMS=30
say ""
say "  node$BAD now claims $BUDGET_CLAIMS addresses nobody uses ($BUDGET_NET.1-$BUDGET_CLAIMS): cheap to block, so"
say "  each node enforces them only within node$BAD's budget (single-domain blocks, at most 15 min):"
for k in $(seq 1 "$BUDGET_CLAIMS"); do
  ctl "$BAD" block add "$BUDGET_NET.$k" --confidence 1 --severity critical --reason "compromised node floods" >/dev/null
done
budget_known() {
  local i
  for i in $(others "$BAD"); do
    [ "$(ctl "$i" blocks --json | jq --arg n "$BUDGET_NET." '[.[] | select(.prefix | startswith($n))] | length')" -ge "$BUDGET_CLAIMS" ] || return 1
  done
}
wait_for 10000 "the other nodes to receive node$BAD's $BUDGET_CLAIMS claims" budget_known
sleep 0.3
declare -A BUDGET_ENFORCED
budget_max=0
for i in $(others "$BAD"); do
  BUDGET_ENFORCED[$i]=$(ctl "$i" blocks --json | jq --arg n "$BUDGET_NET." '[.[] | select((.prefix | startswith($n)) and .enforced)] | length')
  ((BUDGET_ENFORCED[$i] > budget_max)) && budget_max=${BUDGET_ENFORCED[$i]}
  say "  node$i: ${BUDGET_ENFORCED[$i]} of $BUDGET_CLAIMS enforced, $((BUDGET_CLAIMS - BUDGET_ENFORCED[$i])) waiting for node$BAD's budget"
done

# ---- 4. colluders in three zones -----------------------------------------------------------
step "4. node$BAD recruits node${COLLUDERS[1]} and node${COLLUDERS[2]}: three compromised nodes in three zones"
mapfile -t HONEST < <(honest_nodes)
say "  colluders: $(for c in "${COLLUDERS[@]}"; do printf 'node%s (%s) ' "$c" "$(zone_of "$c")"; done)"
say "  honest:    $(for i in "${HONEST[@]}"; do printf 'node%s (%s) ' "$i" "$(zone_of "$i")"; done)"
# The honest nodes' own sensors have seen their workloads use the web service steadily.
web_x() { ctl "$1" explain "$WEB_IP" --json | jq -c '.targets[0]'; }
strong_on() { web_x "$1" | jq -e '.benign_evidence.strong' >/dev/null; }
strong_everywhere() {
  local i
  for i in "${HONEST[@]}"; do strong_on "$i" || return 1; done
}
wait_for $((STRONG_SPAN_MS + 20000)) "strong local benign evidence for $WEB_IP on every honest node" strong_everywhere
say "  local benign evidence for $WEB_IP before the attack:"
for i in "${HONEST[@]}"; do
  say "    node$i: $(web_x "$i" | jq -r '.benign_evidence | "E = \(.E) flows from \(.sources) sources over \(.span_ms / 1000 | floor) s, strong"')"
done
trust_in() { ctl "$1" trust --json | jq -r --arg n "node$2" '[.[] | select(.node == $n) | .trust][0] // -1'; }
declare -A TRUST_BEFORE TRUST_AFTER
for c in "${COLLUDERS[@]}"; do TRUST_BEFORE[$c]=$(trust_in "$DET" "$c"); done
say "  each colluder claims $WEB_IP (confidence 1.0, severity critical):"
for c in "${COLLUDERS[@]}"; do
  ctl "$c" block add "$WEB_IP" --confidence 1 --severity critical --reason "colluders cut off the web" |
    sed "s/^/node$c: /" | indent
done
colluders_known() {
  local i
  for i in "${HONEST[@]}"; do
    ctl "$i" blocks --json | jq -e --arg p "$WEB_PREFIX" --argjson k "${#COLLUDERS[@]}" \
      'any(.[]; .prefix == $p and (.origins | length) >= $k)' >/dev/null || return 1
  done
}
wait_for 5000 "the honest nodes to receive the three colluders' claims" colluders_known
sleep 0.3 # a wrong enforcement would show up within this
COLL_REFUSED=0
COLL_CONTRADICTED=0
COLL_WEB_OK=0
COLL_C2_EPERM=0
for i in "${HONEST[@]}"; do
  x=$(web_x "$i")
  if enforced_on "$i" "$WEB_PREFIX" >/dev/null; then
    say "  node$i: ${R}ENFORCED${Z}"
  else
    COLL_REFUSED=$((COLL_REFUSED + 1))
  fi
  # Every colluder's claim cost its origin trust here.
  jq -e --argjson k "${#COLLUDERS[@]}" '[.claims[] | select(.contradicted)] | length >= $k' <<<"$x" >/dev/null &&
    COLL_CONTRADICTED=$((COLL_CONTRADICTED + 1))
  web=$(workload_in "node$i/web-a" "$i" connect "$WEB_IP" 80 --count 3 --timeout 1 || true)
  [ "$(jq -r .ok <<<"$web")" = 3 ] && COLL_WEB_OK=$((COLL_WEB_OK + 1))
  c2=$(workload "$i" connect "$C2_IP" 443 --timeout 1 || true)
  [ "$(jq -r .errno <<<"$c2")" = EPERM ] && COLL_C2_EPERM=$((COLL_C2_EPERM + 1))
  say "  node$i: $(jq -r '"\(.verdict) (refused by \(.refused_by | join(" + "))): S = \(.score * 1000 | round / 1000) < C/(B+C) = \(.threshold * 1000 | round / 1000), \(.domains_supporting) domains (\(.domains_required) required)"' <<<"$x");"
  say "         its workloads still reach $WEB_IP ($(jq -r '"\(.ok)/\(.attempts)"' <<<"$web") connects), the C2: $(jq -r 'if .ok == 1 then "CONNECTED" else .errno end' <<<"$c2")"
done
COLL_ENFORCED_BY_COLLUDERS=0
for c in "${COLLUDERS[@]}"; do
  enforced_on "$c" "$WEB_PREFIX" >/dev/null && COLL_ENFORCED_BY_COLLUDERS=$((COLL_ENFORCED_BY_COLLUDERS + 1))
done
COLL_VERDICT=$(web_x "$DET" | jq -r .verdict)
COLL_REFUSED_BY=$(web_x "$DET" | jq -c .refused_by)
COLL_E=$(web_x "$DET" | jq -r .benign_evidence.E)
say "  refused on $COLL_REFUSED of ${#HONEST[@]} honest nodes (the colluders enforce it on themselves: $COLL_ENFORCED_BY_COLLUDERS of ${#COLLUDERS[@]})."
say "  Why, according to node$DET (meshctl explain $WEB_IP):"
ctl "$DET" explain "$WEB_IP" | indent
say "  node$DET's trust in the colluders, before -> after their claims (meshctl trust):"
for c in "${COLLUDERS[@]}"; do
  TRUST_AFTER[$c]=$(trust_in "$DET" "$c")
  say "    node$c: $(printf '%.3f -> %.3f' "${TRUST_BEFORE[$c]}" "${TRUST_AFTER[$c]}")"
done
say "  and the real C2 stays blocked on every node (meshctl explain $C2_IP on node$DET):"
ctl "$DET" explain "$C2_IP" | head -n 3 | indent

# ---- 5. a provable offence ----------------------------------------------------------------
KAPI_PREFIX="$KAPI_IP"
step "5. node$BAD claims a protected address"
say "  node$BAD (its config tampered with: no protected list) claims the protected \"kubernetes API\""
say "  $KAPI_IP: provable misbehaviour."
ctl "$BAD" block add "$KAPI_IP" --confidence 1 --severity critical --reason "compromised node attacks the API" 2>&1 | indent || true
T_KAPI=$(now_ms)
quarantined_on() { ctl "$1" trust --json | jq -e --arg n "node$BAD" 'any(.[]; .node == $n and .quarantined)'; }
all_quarantined() {
  local i
  for i in $(others "$BAD"); do quarantined_on "$i" >/dev/null || return 1; done
}
wait_for 10000 "every other node to quarantine node$BAD" all_quarantined
KAPI_CLAIM_AT=$(event_at "$BAD" claim_signed "$KAPI_PREFIX")
[ -n "$KAPI_CLAIM_AT" ] || KAPI_CLAIM_AT=$T_KAPI
declare -A QUAR_MS
quar_max=0
for i in $(others "$BAD"); do
  until_ms=$(ctl "$i" trust --json | jq -r --arg n "node$BAD" '.[] | select(.node == $n) | .quarantine_until')
  QUAR_MS[$i]=$((until_ms - QUARANTINE_MS - KAPI_CLAIM_AT))
  ((QUAR_MS[$i] > quar_max)) && quar_max=${QUAR_MS[$i]}
  say "  node$i: node$BAD quarantined ${QUAR_MS[$i]} ms after its claim was signed"
done
say "  meshctl trust on node$DET:"
ctl "$DET" trust | indent
lifted_everywhere() {
  local i
  for i in $(others "$BAD"); do
    [ "$(ctl "$i" blocks --json | jq --arg n "$BUDGET_NET." '[.[] | select((.prefix | startswith($n)) and .enforced)] | length')" = 0 ] || return 1
  done
}
wait_for 5000 "node$BAD's budget blocks to be lifted" lifted_everywhere
KAPI_ENFORCED=0
for i in $(others "$BAD"); do enforced_on "$i" "$KAPI_PREFIX" >/dev/null && KAPI_ENFORCED=$((KAPI_ENFORCED + 1)); done
C2_STILL=0
for i in $(seq 1 "$N"); do enforced_on "$i" "$C2_PREFIX" >/dev/null && C2_STILL=$((C2_STILL + 1)); done
say "  the blocks that rested on node$BAD alone are lifted on every node; $KAPI_IP was never blocked;"
say "  the C2 block (node$DET's claim) stays enforced on $C2_STILL of $N nodes."

# ---- summary ------------------------------------------------------------------------------
T_END=$(now_ms)
if ((JSON)); then
  enforce_json=$(for i in $(seq 1 "$N"); do echo "\"node$i\": ${ENFORCE_MS[$i]}"; done | paste -sd, -)
  budget_json=$(for i in $(others "$BAD"); do echo "\"node$i\": ${BUDGET_ENFORCED[$i]}"; done | paste -sd, -)
  quar_json=$(for i in $(others "$BAD"); do echo "\"node$i\": ${QUAR_MS[$i]}"; done | paste -sd, -)
  trust_json=$(for c in "${COLLUDERS[@]}"; do
    echo "\"node$c\": {\"before\": ${TRUST_BEFORE[$c]}, \"after\": ${TRUST_AFTER[$c]}}"
  done | paste -sd, -)
  collusion_json=$(jq -n \
    --argjson colluders "$(printf '"node%s"\n' "${COLLUDERS[@]}" | jq -s .)" \
    --argjson honest "$(printf '"node%s"\n' "${HONEST[@]}" | jq -s .)" \
    --arg target "$WEB_PREFIX" --argjson refused "$COLL_REFUSED" \
    --argjson contradicted "$COLL_CONTRADICTED" --argjson web_ok "$COLL_WEB_OK" \
    --argjson c2_eperm "$COLL_C2_EPERM" --argjson by_colluders "$COLL_ENFORCED_BY_COLLUDERS" \
    --arg verdict "$COLL_VERDICT" --argjson refused_by "$COLL_REFUSED_BY" \
    --argjson e "$COLL_E" --argjson trust "{$trust_json}" \
    '{colluders: $colluders, honest: $honest, target: $target, of: ($honest | length),
      refused_on: $refused, contradicted_on: $contradicted, web_ok_on: $web_ok,
      c2_eperm_on: $c2_eperm, enforced_by_colluders: $by_colluders, verdict: $verdict,
      refused_by: $refused_by, benign_E: $e, trust_on_node1: $trust}')
  jq -n \
    --argjson nodes "$N" --argjson ready_ms "$READY_MS" --argjson detect_ms "$DETECT_MS" \
    --argjson enforce "{$enforce_json}" --argjson enforce_max "$max_enforce" \
    --arg eperm_errno "$EPERM_ERRNO" --argjson eperm_node "$EPERM_NODE" \
    --argjson xdp_node "$XDP_NODE" --arg ping_loss "$PING_LOSS" --arg xdp_tcp "$XDP_TCP_ERRNO" \
    --argjson xdp_drops "$XDP_DROPS" --arg web_ping "$web_ping" \
    --argjson bad "$BAD" --argjson web_refused "$WEB_REFUSED" --arg web_verdict "$WEB_VERDICT" \
    --argjson budget_claims "$BUDGET_CLAIMS" --argjson budget "{$budget_json}" --argjson budget_max "$budget_max" \
    --argjson quar "{$quar_json}" --argjson quar_max "$quar_max" --argjson kapi_enforced "$KAPI_ENFORCED" \
    --argjson c2_still "$C2_STILL" --argjson total_ms "$((T_END - T_START))" \
    --argjson collusion "$collusion_json" \
    '{demo: "meshd-local", nodes: $nodes, ready_ms: $ready_ms,
      detection: {node: "node1", target: "'"$C2_PREFIX"'", connect_to_claim_ms: $detect_ms},
      enforcement: {claim_to_enforce_ms: $enforce, max_ms: $enforce_max},
      eperm: {node: "node\($eperm_node)", errno: $eperm_errno},
      xdp: {node: "node\($xdp_node)", ping_loss_percent: ($ping_loss | tonumber? // $ping_loss),
            tcp: $xdp_tcp, drops: $xdp_drops, benign_ping: $web_ping},
      compromised: {node: "node\($bad)",
                    benign_claim: {target: "'"$WEB_PREFIX"'", refused_on: $web_refused, of: ($nodes - 1), verdict: $web_verdict},
                    budget: {claims: $budget_claims, enforced_per_node: $budget, max_enforced: $budget_max},
                    protected_claim: {target: "'"$KAPI_PREFIX"'", quarantine_ms: $quar, max_ms: $quar_max,
                                      quarantined_on: ($quar | length), enforced_on: $kapi_enforced}},
      collusion: $collusion,
      c2_still_enforced_on: $c2_still, total_ms: $total_ms}'
else
  step "Summary (measured)"
  say "  mesh ready:                 ${READY_MS} ms after start"
  say "  connect -> signed claim:    ${DETECT_MS} ms on node$DET"
  say "  claim -> enforced:          slowest of $N nodes ${max_enforce} ms"
  say "  node$EPERM_NODE connect to the C2:   $EPERM_ERRNO; C2 -> node$XDP_NODE: ${PING_LOSS}% ping loss, +$XDP_DROPS XDP drops"
  say "  benign claim by node$BAD:     refused on $WEB_REFUSED of $((N - 1)) nodes ($WEB_VERDICT)"
  say "  budget:                     at most $budget_max of $BUDGET_CLAIMS cheap claims enforced per node"
  say "  colluders in 3 zones:       refused on $COLL_REFUSED of ${#HONEST[@]} honest nodes ($COLL_VERDICT, refused by $(jq -r 'join(" + ")' <<<"$COLL_REFUSED_BY")); E = $COLL_E on node$DET"
  say "                              node$DET's trust in them: $(for c in "${COLLUDERS[@]}"; do printf 'node%s %.2f -> %.2f  ' "$c" "${TRUST_BEFORE[$c]}" "${TRUST_AFTER[$c]}"; done)"
  say "                              web still reached on $COLL_WEB_OK, C2 EPERM on $COLL_C2_EPERM of ${#HONEST[@]}"
  say "  protected claim -> quarantined fleet-wide: slowest node ${quar_max} ms"
  say "  whole story: $(((T_END - T_START) / 1000)) s"
fi
