#!/usr/bin/env bash
# Builds the from-scratch container image with deploy/docker/build-image.sh (buildah,
# private vfs storage, no base image pulled) and checks that it is complete: the OCI
# archive carries the tag, and meshd and meshctl run inside the image's root filesystem
# (chroot), i.e. every shared library they need was copied. Root only.
# usage: image_test.sh SOURCE_DIR BUILD_DIR "meshd;meshctl"
set -euo pipefail
src=${1:?source dir}
build=${2:?build dir}
binaries=${3:-}
[[ "$binaries" == *meshd* && "$binaries" == *meshctl* ]] ||
  { echo "SKIP: the meshd and meshctl targets do not both exist yet"; exit 77; }
[[ $(id -u) -eq 0 ]] || { echo "SKIP: buildah and chroot need root"; exit 77; }
command -v buildah >/dev/null ||
  { echo "SKIP: buildah is not installed (deploy/install-deps.sh installs it)"; exit 77; }

tmp=$(mktemp -d)
storage=$tmp/storage
b() { buildah --root "$storage/root" --runroot "$storage/runroot" --storage-driver vfs "$@"; }
container=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [[ -n "$container" ]]; then b umount "$container" >/dev/null 2>&1; b rm "$container" >/dev/null 2>&1; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}
# shellcheck disable=SC2317 # called through check
quiet() { "$@" >/dev/null 2>&1; }

tag=localhost/meshd-test:$$
"$src/deploy/docker/build-image.sh" --build "$build" --tag "$tag" --storage "$storage" \
  --oci-archive "$tmp/meshd.tar"
check "OCI archive names the image" grep -q "$tag" <(tar -xOf "$tmp/meshd.tar" index.json)

container=$(b from "$tag")
rootfs=$(b mount "$container")
check "meshd runs inside the image" quiet chroot "$rootfs" /usr/bin/meshd --help
check "meshctl runs inside the image" quiet chroot "$rootfs" /usr/bin/meshctl --help
check "default config passes --check-config inside the image" \
  chroot "$rootfs" /usr/bin/meshd --check-config /etc/meshd/meshd.yaml
# What the keygen init container runs, with no shell in the image.
check "meshctl enroll keygen works inside the image" \
  quiet chroot "$rootfs" /usr/bin/meshctl enroll keygen --dir /var/lib/meshd
check "and made a key pair" test -s "$rootfs/var/lib/meshd/node.key" -a -s "$rootfs/var/lib/meshd/node.pub"
check "the image has no shell" test ! -e "$rootfs/bin/sh"
rm -f "$rootfs/var/lib/meshd/node.key" "$rootfs/var/lib/meshd/node.pub"
size_kb=$(du -sk "$rootfs" | cut -f1)
echo "image root filesystem: ${size_kb} KiB"
check "image is minimal (< 64 MiB)" test "$size_kb" -lt 65536
exit "$fail"
