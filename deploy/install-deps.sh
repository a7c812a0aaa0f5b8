#!/usr/bin/env bash
# Installs every Debian package meshd needs to build, test and run. Idempotent: packages
# already present are skipped, so it is cheap to call from every entry script.
set -euo pipefail

build=(build-essential cmake ninja-build pkg-config clang llvm libbpf-dev bpftool
       linux-libc-dev libsodium-dev libboost-dev libboost-system-dev libnftnl-dev libmnl-dev
       protobuf-compiler libprotobuf-dev libspdlog-dev libfmt-dev libsqlite3-dev
       libyaml-cpp-dev libcli11-dev nlohmann-json3-dev)
test=(libgtest-dev libgmock-dev libbenchmark-dev nftables iproute2 iputils-ping sqlite3
      clang-format clang-tidy-16 prometheus systemd buildah python3 jq curl chromium chromium-driver)
# Coverage-guided fuzzing (preset fuzz): clang 16 compiles the project's std::expected with
# libstdc++ 12 (clang 14 cannot); libFuzzer and the sanitizer runtimes.
fuzz=(clang-16 libclang-rt-16-dev libfuzzer-16-dev)
# The pods tier (deploy/local/pods.sh): podman runs the DaemonSet's pods with runc (crun
# refuses hybrid cgroup layouts); catatonit is the pods' pause process; python3-yaml reads
# the rendered manifests.
pods=(podman runc catatonit python3-yaml)
# The crowdsec tier (tests/netns/crowdsec) and tests/bench/crowdsec: a real CrowdSec LAPI and
# its nftables firewall bouncer.
crowdsec=(crowdsec crowdsec-firewall-bouncer)

missing=()
for p in "${build[@]}" "${test[@]}" "${fuzz[@]}" "${pods[@]}" "${crowdsec[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl (for rendering the kustomize manifests) may come from another package (the
# machine image ships Google's kubectl, which conflicts with Debian's kubernetes-client).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
# crowdsec's postinst registers with CrowdSec's online API unless this file exists and is not
# empty; offline that fails and leaves dpkg half-configured. The local API needs none of it.
capi=/etc/crowdsec/online_api_credentials.yaml
if [ ! -s "$capi" ]; then
  $sudo mkdir -p /etc/crowdsec
  echo '# CAPI disabled: offline' | $sudo tee "$capi" >/dev/null
  # Mends an earlier install that stopped half-way for want of this file.
  if dpkg-query -W -f='${Status}' crowdsec 2>/dev/null | grep -q "half-configured\|unpacked"; then
    $sudo dpkg --configure -a
  fi
fi
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # Retried once: unpacking a large package has been seen to fail transiently.
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Podman's default container ulimits (nofile 1048576) exceed the hard nofile limit of some
# machines, and then no container starts: containers inherit the limits instead. Written
# once; a containers.conf that already sets default_ulimits is left as it is.
conf=/etc/containers/containers.conf
if ! grep -qs '^[[:space:]]*default_ulimits[[:space:]]*=' "$conf"; then
  echo "install-deps: setting default_ulimits = [] in $conf" >&2
  $sudo mkdir -p "$(dirname "$conf")"
  if grep -qs '^[[:space:]]*\[containers\]' "$conf"; then
    $sudo sed -i '0,/^[[:space:]]*\[containers\]/s//&\ndefault_ulimits = []/' "$conf"
  else
    printf '[containers]\ndefault_ulimits = []\n' | $sudo tee -a "$conf" >/dev/null
  fi
fi
