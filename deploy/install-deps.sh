#!/usr/bin/env bash
# Installs every Debian package meshd needs to build, test and run. Idempotent: packages
# already present are skipped, so it is cheap to call from every entry script.
set -euo pipefail

build=(build-essential cmake ninja-build pkg-config clang llvm libbpf-dev bpftool
       linux-libc-dev libsodium-dev libboost-dev libboost-system-dev libnftnl-dev libmnl-dev
       protobuf-compiler libprotobuf-dev libspdlog-dev libfmt-dev libsqlite3-dev
       libyaml-cpp-dev libcli11-dev nlohmann-json3-dev)
test=(libgtest-dev libgmock-dev libbenchmark-dev nftables iproute2 iputils-ping sqlite3
      clang-format prometheus systemd buildah python3 jq curl)

missing=()
for p in "${build[@]}" "${test[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# kubectl (for rendering the kustomize manifests) may come from another package (the
# machine image ships Google's kubectl, which conflicts with Debian's kubernetes-client).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Retried once: unpacking a large package has been seen to fail transiently.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
