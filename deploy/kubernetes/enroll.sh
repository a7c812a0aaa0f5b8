#!/usr/bin/env bash
# Enrolls the meshd nodes of a cluster: for every meshd pod, reads the node's own public
# key (generated on the node by the keygen init container; the private key never leaves
# the node), signs it with the fleet CA held by the operator outside the cluster, and
# writes the certificate back to the node's state dir. Also publishes the CA's public key
# as the "meshd-ca" ConfigMap. Safe to re-run: enrolled nodes are skipped.
#
# The certificate's name is the pod's spec.nodeName and its failure domain the Node's
# zone label, both read from the API server, never from what the node reports: a
# compromised node cannot obtain a certificate for another node's name or domain.
#
# Without an API server (deploy/local/pods.sh runs the DaemonSet's pods under podman),
# --exec replaces `kubectl exec` and --pod names the pods, their nodes and domains.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: enroll.sh --ca DIR [options]

  --ca DIR             CA directory from `meshctl ca init --out DIR` (ca.key, ca.pub)
  --namespace NS       namespace of the DaemonSet (default meshd-system)
  --selector SEL       label selector of the meshd pods (default app.kubernetes.io/name=meshd)
  --node NAME          enroll only this node (repeatable)
  --domain-label L     Node label giving the failure domain
                       (default topology.kubernetes.io/zone; falls back to
                       kubernetes.io/hostname, then the node name, with a warning)
  --days N             certificate validity in days (default 365)
  --renew              also re-sign nodes that already have a certificate, then delete
                       their pod so the DaemonSet restarts it with the new certificate
  --dry-run            print what would be done; change nothing
  --exec CMD           run commands on the nodes with `CMD POD CONTAINER COMMAND...`
                       (stdin passed through) instead of
                       `kubectl exec -i POD -c CONTAINER -- COMMAND...`; CMD is split on
                       spaces
  --pod POD:NODE:DOMAIN
                       enroll this pod, on this node, in this failure domain, instead of
                       asking the API server (repeatable; then kubectl is not used, the
                       CA's public key is not published, and --renew restarts no pod)
Environment: KUBECTL (default kubectl), MESHCTL (default meshctl).
EOF
}

die() {
  echo "enroll: $*" >&2
  exit 1
}

kubectl_bin=${KUBECTL:-kubectl}
meshctl_bin=${MESHCTL:-meshctl}
ca_dir=""
ns=meshd-system
selector=app.kubernetes.io/name=meshd
domain_label=topology.kubernetes.io/zone
days=365
renew=0
dry_run=0
only_nodes=()
exec_cmd=()
given_pods=()

while (($# > 0)); do
  case "$1" in
    --ca) ca_dir=${2:?--ca needs a directory}; shift 2 ;;
    --namespace) ns=${2:?--namespace needs a value}; shift 2 ;;
    --selector) selector=${2:?--selector needs a value}; shift 2 ;;
    --node) only_nodes+=("${2:?--node needs a name}"); shift 2 ;;
    --domain-label) domain_label=${2:?--domain-label needs a label}; shift 2 ;;
    --days) days=${2:?--days needs a number}; shift 2 ;;
    --renew) renew=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    --exec) read -r -a exec_cmd <<<"${2:?--exec needs a command}"; shift 2 ;;
    --pod)
      [[ "${2:-}" =~ ^[^:]+:[^:]+:[^:]+$ ]] || die "--pod: '${2:-}' is not POD:NODE:DOMAIN"
      given_pods+=("$2"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[[ -n "$ca_dir" ]] || { usage >&2; die "--ca DIR is required"; }
[[ -r "$ca_dir/ca.key" && -r "$ca_dir/ca.pub" ]] ||
  die "$ca_dir: no readable ca.key and ca.pub (create them with: meshctl ca init --out $ca_dir)"
[[ "$days" =~ ^[1-9][0-9]*$ ]] || die "--days: '$days' is not a positive number of days"
((${#given_pods[@]} == 0)) || ((${#exec_cmd[@]} > 0)) ||
  die "--pod needs --exec (without an API server there is no kubectl exec)"
if ((${#given_pods[@]} == 0)); then
  command -v "$kubectl_bin" >/dev/null || die "kubectl not found ($kubectl_bin); set KUBECTL"
fi
if ((${#exec_cmd[@]} > 0)); then
  command -v "${exec_cmd[0]}" >/dev/null || die "--exec: '${exec_cmd[0]}' not found"
fi
command -v "$meshctl_bin" >/dev/null || die "meshctl not found ($meshctl_bin); set MESHCTL"

k() { "$kubectl_bin" "$@"; }
# Runs COMMAND... in container CONTAINER of pod POD, stdin passed through.
node_exec() {
  local pod=$1 container=$2
  shift 2
  if ((${#exec_cmd[@]} > 0)); then
    "${exec_cmd[@]}" "$pod" "$container" "$@"
  else
    k -n "$ns" exec -i "$pod" -c "$container" -- "$@"
  fi
}
state=/var/lib/meshd

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The CA public key, for every node to verify its peers. Applied every time so that a
#    re-run after a CA rotation publishes the new key.
if ((${#given_pods[@]} > 0)); then
  echo "enroll: --pod: no API server; ca.pub must already be published as ConfigMap meshd-ca"
elif ((dry_run)); then
  echo "enroll: would publish $ca_dir/ca.pub as ConfigMap $ns/meshd-ca"
else
  k -n "$ns" create configmap meshd-ca --from-file=ca.pub="$ca_dir/ca.pub" \
    --dry-run=client -o yaml | k apply -f - >/dev/null
  echo "enroll: published the CA public key as ConfigMap $ns/meshd-ca"
fi

# 2. The pods, with which of their containers is running: "wait-for-cert" while the node
#    is not enrolled, "meshd" once it is.
if ((${#given_pods[@]} > 0)); then
  # Which container runs is found by running meshctl in it: wait-for-cert while the node
  # is not enrolled, meshd once it is.
  pods=""
  for entry in "${given_pods[@]}"; do
    IFS=: read -r pod node domain <<<"$entry"
    waiting="" running=""
    if node_exec "$pod" wait-for-cert meshctl enroll --help </dev/null >/dev/null 2>&1; then
      waiting=yes
    elif node_exec "$pod" meshd meshctl enroll --help </dev/null >/dev/null 2>&1; then
      running=yes
    fi
    pods+="$pod|$node|$waiting|$running|$domain"$'\n'
  done
else
pods=$(k -n "$ns" get pods -l "$selector" -o jsonpath='{range .items[*]}{.metadata.name}{"|"}{.spec.nodeName}{"|"}{.status.initContainerStatuses[?(@.name=="wait-for-cert")].state.running.startedAt}{"|"}{.status.containerStatuses[?(@.name=="meshd")].state.running.startedAt}{"\n"}{end}')
fi
[[ -n "$pods" ]] || die "no pods match '$selector' in namespace $ns (is the DaemonSet applied?)"

wanted() {
  ((${#only_nodes[@]} == 0)) && return 0
  local n
  for n in "${only_nodes[@]}"; do [[ "$n" == "$1" ]] && return 0; done
  return 1
}

# The failure domain of a node: its zone label, else its hostname label, else its name.
domain_of() {
  local node=$1 label value
  for label in "$domain_label" kubernetes.io/hostname; do
    value=$(k get node "$node" -o jsonpath="{.metadata.labels.${label//./\\.}}" 2>/dev/null || true)
    if [[ -n "$value" ]]; then
      [[ "$label" == "$domain_label" ]] ||
        echo "enroll: warning: node $node has no $domain_label label; its failure domain is its hostname '$value'" >&2
      echo "$value"
      return
    fi
  done
  echo "enroll: warning: node $node has no $domain_label nor hostname label; its failure domain is its name" >&2
  echo "$node"
}

enrolled=0 skipped=0 failed=0
while IFS='|' read -r -u 3 pod node waiting running given_domain; do
  [[ -n "$pod" ]] || continue
  wanted "$node" || continue
  if [[ -n "$waiting" ]]; then
    container=wait-for-cert
  elif [[ -n "$running" ]]; then
    container=meshd
  else
    echo "enroll: $node: pod $pod has neither wait-for-cert nor meshd running (still generating its key, or crashing: describe pod $pod); skipped" >&2
    failed=$((failed + 1))
    continue
  fi
  pexec() { node_exec "$pod" "$container" "$@" </dev/null; }
  pexec_stdin() { node_exec "$pod" "$container" "$@"; }

  # A certificate that does not match the node's current key (the node was re-keyed)
  # counts as not enrolled.
  if ((!renew)) && pexec meshctl enroll status --dir "$state" >/dev/null 2>&1; then
    echo "enroll: $node: already enrolled (use --renew to re-sign)"
    skipped=$((skipped + 1))
    continue
  fi
  if ! pexec meshctl enroll pub --dir "$state" >"$work/$node.pub" || [[ ! -s "$work/$node.pub" ]]; then
    echo "enroll: $node: cannot read $state/node.pub from pod $pod" >&2
    failed=$((failed + 1))
    continue
  fi
  domain=${given_domain:-$(domain_of "$node")}
  if ((dry_run)); then
    echo "enroll: $node: would sign its key (pod $pod) with name '$node', domain '$domain', $days days"
    continue
  fi
  if ! "$meshctl_bin" ca sign --ca "$ca_dir" --pub "$work/$node.pub" --name "$node" \
    --domain "$domain" --days "$days" --out "$work/$node.cert" >/dev/null; then
    echo "enroll: $node: meshctl ca sign failed" >&2
    failed=$((failed + 1))
    continue
  fi
  # meshctl on the node refuses a certificate for another key and writes it atomically,
  # so the waiting init container never reads a partial certificate. No shell needed.
  if ! pexec_stdin meshctl enroll install --dir "$state" <"$work/$node.cert" >/dev/null; then
    echo "enroll: $node: writing $state/node.cert through pod $pod failed" >&2
    failed=$((failed + 1))
    continue
  fi
  echo "enroll: $node: enrolled (domain '$domain', valid $days days)"
  enrolled=$((enrolled + 1))
  if ((renew)) && [[ "$container" == meshd ]] && ((${#given_pods[@]} > 0)); then
    echo "enroll: $node: restart pod $pod so that meshd uses the new certificate"
  elif ((renew)) && [[ "$container" == meshd ]]; then
    k -n "$ns" delete pod "$pod" --wait=false >/dev/null
    echo "enroll: $node: deleted pod $pod so that meshd restarts with the new certificate"
  fi
done 3<<<"$pods"

echo "enroll: $enrolled enrolled, $skipped already enrolled, $failed failed"
((failed == 0))
