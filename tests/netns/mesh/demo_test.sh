#!/usr/bin/env bash
# CTest (label netns): runs the README's local demo with --json on already-built binaries
# and checks the outcomes of its story. Usage: demo_test.sh BIN_DIR. Exit 77 = skipped.
set -euo pipefail
bin=${1:?usage: demo_test.sh BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
demo="$here/../../../deploy/local/demo.sh"
if [ "$(id -u)" -ne 0 ]; then
  echo "demo_test: needs root (netns, eBPF, cgroups): skipped"
  exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# A name of its own, so it never collides with a demo someone runs by hand.
"$demo" --json --no-build --bin "$bin" --name "mdt$$" >"$out"
cat "$out"
check() {
  if ! jq -e "$1" "$out" >/dev/null; then
    echo "demo_test: FAILED: $2 ($1)" >&2
    exit 1
  fi
}
check '.nodes == 5' "five nodes"
check '(.enforcement.claim_to_enforce_ms | length) == 5' "every node enforced the C2 block"
check '.enforcement.max_ms <= 1000' "every node enforced within a second of the claim"
check '.eperm.errno == "EPERM"' "the connect from node4 to the C2 failed with EPERM"
check '.xdp.ping_loss_percent == 100 and .xdp.tcp != "connected" and .xdp.drops > 0' "XDP on node5 dropped the C2's traffic"
check '.xdp.benign_ping == "ok"' "the benign service still reaches node5"
check '.compromised.benign_claim.refused_on == .compromised.benign_claim.of' "every other node refused the claim on the benign service"
check '.compromised.budget.max_enforced < .compromised.budget.claims' "the compromised node's cheap claims were cut by its budget"
check '.collusion.of >= 2 and .collusion.refused_on == .collusion.of' "every honest node refused the three colluders' claim on the web service"
check '.collusion.verdict != "enforce" and (.collusion.refused_by | length) >= 1 and .collusion.refused_by[0] == .collusion.verdict' "explain names every rule that refused it, the verdict first"
check '.collusion.benign_E > 0' "node1 holds local benign evidence for the web service"
check '.collusion.contradicted_on == .collusion.of' "every colluder's claim contradicted each honest node's benign evidence"
check '[.collusion.trust_on_node1[] | .before >= 0 and .after < .before] | all' "node1's trust in every colluder fell"
check '.collusion.web_ok_on == .collusion.of' "the honest nodes' workloads still reach the web service"
check '.collusion.c2_eperm_on == .collusion.of' "the C2 is still blocked (EPERM) on every honest node"
check '.compromised.protected_claim.quarantined_on == 4' "the compromised node was quarantined on every other node"
check '.compromised.protected_claim.enforced_on == 0' "the protected address was never blocked"
check '.c2_still_enforced_on == 5' "the honest block stayed in place"
echo "demo_test: every outcome of the story holds"
