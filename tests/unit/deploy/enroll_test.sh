#!/usr/bin/env bash
# Runs deploy/kubernetes/enroll.sh against a simulated cluster: a stand-in `kubectl`
# whose pods are directories (each node's /var/lib/meshd) and whose jsonpath queries are
# evaluated by the real kubectl (`kubectl label --local`) on pod and node objects. The
# node side runs the real meshctl (`meshctl enroll keygen|pub|status|install`), the
# operator side the real `meshctl ca sign`. Checks: every running node gets its own
# certificate for its own key, named after its Node and in its zone (hostname when it has
# no zone), nodes not yet running are reported and make the script fail, re-runs skip
# enrolled nodes, --renew re-signs and restarts the pod, --exec/--pod enroll without any
# kubectl, and a certificate for another key is refused by the node.
# usage: enroll_test.sh SOURCE_DIR MESHCTL
set -euo pipefail
src=${1:?source dir}
meshctl=${2:-}
[[ -x "$meshctl" ]] || { echo "SKIP: meshctl is not built yet"; exit 77; }
meshctl=$(readlink -f "$meshctl")
"$meshctl" enroll --help >/dev/null 2>&1 ||
  { echo "SKIP: this meshctl has no 'enroll' commands yet"; exit 77; }
command -v kubectl >/dev/null || { echo "FAIL: kubectl not found (deploy/install-deps.sh)"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}
# shellcheck disable=SC2317 # called through check
quiet() { "$@" >/dev/null 2>&1; }

cluster=$tmp/cluster
mkdir -p "$cluster/bin" "$cluster/pods" "$cluster/nodes"
ln -s "$(command -v kubectl)" "$cluster/bin/real-kubectl"
ln -s "$meshctl" "$cluster/bin/meshctl"

# pod NAME NODE STATE(init|running|pending) [ZONE]
pod() {
  local name=$1 node=$2 state=$3 zone=${4:-} init='' main=''
  case "$state" in
    init) init='"running":{"startedAt":"2024-01-01T00:00:00Z"}'; main='"waiting":{"reason":"PodInitializing"}' ;;
    running) init='"terminated":{"exitCode":0}'; main='"running":{"startedAt":"2024-01-01T00:00:00Z"}' ;;
    pending) init='"waiting":{"reason":"PodInitializing"}'; main='"waiting":{"reason":"PodInitializing"}' ;;
  esac
  cat >"$cluster/pods/$name.json" <<EOF
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"$name","namespace":"meshd-system",
 "labels":{"app.kubernetes.io/name":"meshd"}},
 "spec":{"nodeName":"$node","containers":[{"name":"meshd","image":"meshd"}]},
 "status":{"initContainerStatuses":[{"name":"keygen","state":{"terminated":{"exitCode":0}}},
   {"name":"wait-for-cert","state":{$init}}],
  "containerStatuses":[{"name":"meshd","state":{$main}}]}}
EOF
  local labels="\"kubernetes.io/hostname\":\"$node\""
  [[ -n "$zone" ]] && labels+=",\"topology.kubernetes.io/zone\":\"$zone\""
  echo "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$node\",\"labels\":{$labels}}}" \
    >"$cluster/nodes/$node.json"
  # The node's state dir, with the key its keygen init container made.
  mkdir -p "$cluster/state/$node"
  [[ "$state" == pending ]] || "$meshctl" enroll keygen --dir "$cluster/state/$node" >/dev/null
}

# The stand-in kubectl. Logs every call; answers the calls enroll.sh makes.
cat >"$cluster/bin/kubectl" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
cluster=$(cd "$(dirname "$0")/.." && pwd)
echo "kubectl $*" >>"$cluster/calls.log"
ns=""
if [[ "$1" == -n ]]; then ns=$2; shift 2; fi
jsonpath_of() { local a; for a in "$@"; do [[ "$a" == jsonpath=* ]] && echo "${a#jsonpath=}"; done; }
case "$1" in
  create) # create configmap meshd-ca --from-file=ca.pub=PATH --dry-run=client -o yaml
    file=$(printf '%s\n' "$@" | sed -n 's/^--from-file=ca.pub=//p')
    printf 'kind: ConfigMap\nmetadata: {name: %s, namespace: %s}\ndata:\n  ca.pub: %s\n' \
      "$3" "$ns" "$(cat "$file")" ;;
  apply) cat >"$cluster/applied.yaml" ;;
  get)
    shift
    if [[ "$1" == pods ]]; then
      # {range .items[*]}EXPR{end}: evaluate EXPR on each pod with the real kubectl.
      expr=$(jsonpath_of "$@"); expr=${expr#'{range .items[*]}'}; expr=${expr%'{end}'}
      for f in "$cluster"/pods/*.json; do
        "$cluster/bin/real-kubectl" label --local -f "$f" x=y -o "jsonpath=$expr"
      done
    elif [[ "$1" == node ]]; then
      "$cluster/bin/real-kubectl" label --local -f "$cluster/nodes/$2.json" x=y \
        -o "jsonpath=$(jsonpath_of "$@")"
    fi ;;
  exec) # exec [-i] POD -c CONTAINER -- CMD...: CMD runs on the pod's node, where
        # /var/lib/meshd is that node's state dir.
    shift; [[ "$1" == -i ]] && shift
    pod=$1 container=$3; shift 4
    node=$(sed -n 's/.*"nodeName":"\([^"]*\)".*/\1/p' "$cluster/pods/$pod.json")
    echo "exec $pod $container $1 $2 $3" >>"$cluster/exec.log"
    args=(); for a in "$@"; do args+=("${a//\/var\/lib\/meshd/$cluster/state/$node}"); done
    PATH=$cluster/bin:$PATH "${args[@]}" ;;
  delete) echo "$*" >>"$cluster/deleted.log" ;;
  *) echo "fake kubectl: unexpected call: $*" >&2; exit 2 ;;
esac
EOF
chmod +x "$cluster/bin/kubectl"

pod meshd-a node-a init zone-1
pod meshd-b node-b running
pod meshd-c node-c pending zone-2
"$meshctl" ca init --out "$tmp/ca" >/dev/null

enroll() { KUBECTL=$cluster/bin/kubectl MESHCTL=$meshctl "$src/deploy/kubernetes/enroll.sh" --ca "$tmp/ca" "$@"; }
cert_field() { "$meshctl" cert show --json "$cluster/state/$1/node.cert" | sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p"; }

echo "--- dry run"
enroll --dry-run >"$tmp/out0" 2>&1 || true
check "dry run signs nothing" test ! -e "$cluster/state/node-a/node.cert"
check "dry run applies nothing" test ! -e "$cluster/applied.yaml"
check "dry run says what it would do" grep -q "node-a: would sign its key (pod meshd-a) with name 'node-a', domain 'zone-1'" "$tmp/out0"

echo "--- first run"
rc=0; enroll >"$tmp/out1" 2>&1 || rc=$?; cat "$tmp/out1"
check "fails while a node is not running yet" test "$rc" -ne 0
check "reports the pending node" grep -q "node-c: pod meshd-c has neither" "$tmp/out1"
check "publishes the CA public key as meshd-ca" grep -q "$(cut -d' ' -f2 "$tmp/ca/ca.pub")" "$cluster/applied.yaml"
for n in node-a node-b; do
  check "$n: certificate verifies with the CA and matches the node's own key" \
    quiet "$meshctl" enroll status --dir "$cluster/state/$n" --ca "$tmp/ca"
  check "$n: certificate names the Node" test "$(cert_field "$n" node_id)" = "$n"
done
check "node-a: failure domain is its zone" test "$(cert_field node-a failure_domain)" = zone-1
check "node-b: no zone label, failure domain is its hostname" test "$(cert_field node-b failure_domain)" = node-b
check "no certificate for the pending node" test ! -e "$cluster/state/node-c/node.cert"
check "each node has its own key" test "$(cat "$cluster/state/node-a/node.pub")" != "$(cat "$cluster/state/node-b/node.pub")"
check "only 'meshctl enroll pub|status|install' ran on the nodes (no key leaves them)" \
  test -z "$(grep -v '^exec [^ ]* [^ ]* meshctl enroll \(pub\|status\|install\)$' "$cluster/exec.log" || true)"
check "the initialising pod was reached through wait-for-cert" grep -q "exec meshd-a wait-for-cert" "$cluster/exec.log"
check "the running pod was reached through meshd" grep -q "exec meshd-b meshd" "$cluster/exec.log"

echo "--- second run, enrolled nodes only"
rc=0; enroll --node node-a --node node-b >"$tmp/out2" 2>&1 || rc=$?; cat "$tmp/out2"
check "re-run succeeds" test "$rc" -eq 0
check "re-run skips enrolled nodes" test "$(grep -c 'already enrolled (use --renew' "$tmp/out2")" -eq 2

echo "--- renew node-b"
serial_before=$(cert_field node-b serial)
rc=0; enroll --node node-b --renew --days 30 >"$tmp/out3" 2>&1 || rc=$?; cat "$tmp/out3"
check "renew succeeds" test "$rc" -eq 0
check "renew re-signs" test "$(cert_field node-b serial)" != "$serial_before"
check "renew restarts the running pod" grep -q "delete pod meshd-b" "$cluster/deleted.log"

echo "--- without an API server: --exec hook and --pod"
# The hook runs the command on the pod's node (here: with /var/lib/meshd being that node's
# state dir), as pods.sh's runs `podman exec`. node-d is not enrolled; node-a is.
pod meshd-d node-d init
cat >"$tmp/hook" <<EOF
#!/usr/bin/env bash
pod=\$1 container=\$2
shift 2
echo "\$pod \$container \$1 \$2 \$3" >>"$tmp/hook.log"
node=\${pod/meshd-/node-}
[[ "\$container" == wait-for-cert && "\$node" == node-d ]] || [[ "\$container" == meshd && "\$node" != node-d ]] || exit 1
args=(); for a in "\$@"; do args+=("\${a//\/var\/lib\/meshd/$cluster/state/\$node}"); done
PATH=$cluster/bin:\$PATH "\${args[@]}"
EOF
chmod +x "$tmp/hook"
calls_before=$(wc -l <"$cluster/calls.log")
rc=0; KUBECTL=/nonexistent MESHCTL=$meshctl "$src/deploy/kubernetes/enroll.sh" --ca "$tmp/ca" \
  --exec "$tmp/hook" --pod meshd-d:node-d:zone-9 --pod meshd-a:node-a:zone-1 >"$tmp/out4" 2>&1 || rc=$?
cat "$tmp/out4"
check "--exec/--pod run succeeds without kubectl" test "$rc" -eq 0
check "no kubectl call was made" test "$(wc -l <"$cluster/calls.log")" -eq "$calls_before"
check "node-d: enrolled through the hook, in the given domain" test "$(cert_field node-d failure_domain)" = zone-9
check "node-d: reached through wait-for-cert" grep -q "meshd-d wait-for-cert meshctl enroll install" "$tmp/hook.log"
check "node-a: already enrolled, reached through meshd" grep -q "node-a: already enrolled" "$tmp/out4"
check "--pod without --exec is refused" \
  bash -c "! KUBECTL=/nonexistent MESHCTL='$meshctl' '$src/deploy/kubernetes/enroll.sh' --ca '$tmp/ca' --pod a:b:c 2>/dev/null"
check "a malformed --pod is refused" \
  bash -c "! MESHCTL='$meshctl' '$src/deploy/kubernetes/enroll.sh' --ca '$tmp/ca' --exec true --pod a:b 2>/dev/null"

echo "--- a certificate for another key"
"$meshctl" ca sign --ca "$tmp/ca" --pub "$cluster/state/node-a/node.pub" --name node-b \
  --domain zone-1 --out "$tmp/stolen.cert" >/dev/null
check "the node refuses a certificate that is not for its key" \
  bash -c "! '$meshctl' enroll install --dir '$cluster/state/node-b' <'$tmp/stolen.cert' 2>/dev/null"
check "and keeps its own" test "$(cert_field node-b node_id)" = node-b

exit "$fail"
