#!/usr/bin/env bash
# Builds the meshd container image with buildah, from scratch and without pulling any
# base image (no registry access needed): the built meshd and meshctl, exactly the
# shared libraries `ldd` says they load, the default config, and the directories the
# DaemonSet mounts over. The result is a few MB.
#
# usage: deploy/docker/build-image.sh [--build DIR] [--tag NAME] [--oci-archive FILE]
#                                     [--storage DIR]
#   --build DIR        CMake build dir holding bin/meshd and bin/meshctl (default: build)
#   --tag NAME         image name (default localhost/meshd:<version from CMakeLists.txt>)
#   --oci-archive F    also write the image as an OCI archive (for `ctr images import`,
#                      `skopeo copy oci-archive:F docker://REGISTRY/meshd:TAG`, ...)
#   --storage DIR      private buildah storage (vfs) under DIR instead of the system's;
#                      the tests use it so they leave nothing behind
# Needs root (buildah) and buildah (Debian package "buildah").
set -euo pipefail
cd "$(dirname "$0")/../.."

die() {
  echo "build-image: $*" >&2
  exit 1
}

build=build
tag=""
archive=""
storage=""
while (($# > 0)); do
  case "$1" in
    --build) build=${2:?}; shift 2 ;;
    --tag) tag=${2:?}; shift 2 ;;
    --oci-archive) archive=${2:?}; shift 2 ;;
    --storage) storage=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

command -v buildah >/dev/null || die "buildah is not installed (apt-get install buildah)"
for bin in meshd meshctl; do
  [[ -x "$build/bin/$bin" ]] || die "$build/bin/$bin not found: build it first (cmake --build $build --target meshd meshctl)"
done
version=$(sed -n 's/^project(meshd VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
tag=${tag:-localhost/meshd:${version:-latest}}

buildah_cmd=(buildah)
if [[ -n "$storage" ]]; then
  mkdir -p "$storage"
  buildah_cmd+=(--root "$storage/root" --runroot "$storage/runroot" --storage-driver vfs)
fi
b() { "${buildah_cmd[@]}" "$@"; }

rootfs=$(mktemp -d)
container=""
cleanup() {
  [[ -n "$container" ]] && b rm "$container" >/dev/null 2>&1
  rm -rf "$rootfs"
}
trap cleanup EXIT

# The root filesystem: binaries, then every library they load at the path the dynamic
# linker will look for it (ldd prints resolved absolute paths, the loader included).
# Stripped: the build type may carry debug info (RelWithDebInfo), the image need not.
install -D -s -m 0755 "$build/bin/meshd" "$rootfs/usr/bin/meshd"
install -D -s -m 0755 "$build/bin/meshctl" "$rootfs/usr/bin/meshctl"
for bin in "$build/bin/meshd" "$build/bin/meshctl"; do
  ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
    [[ -e "$rootfs$lib" ]] || install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done
done
# Debian's multiarch loader path is /lib64/ld-linux-x86-64.so.2 -> a file under /lib:
# ldd named it above, so it is present. The rest is what the daemon reads or writes.
install -D -m 0644 deploy/config/meshd.yaml "$rootfs/etc/meshd/meshd.yaml"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
mkdir -p "$rootfs/tmp" "$rootfs/var/lib/meshd" "$rootfs/run/meshd" "$rootfs/sys/fs/bpf" \
  "$rootfs/host/sys/fs/cgroup" "$rootfs/etc/meshd/ca" "$rootfs/etc/meshd/config"
chmod 1777 "$rootfs/tmp"

container=$(b from scratch)
b copy "$container" "$rootfs/" / >/dev/null
b config --cmd '["/usr/bin/meshd", "--config", "/etc/meshd/meshd.yaml"]' \
  --env PATH=/usr/bin \
  --label org.opencontainers.image.title=meshd \
  --label org.opencontainers.image.version="${version:-unknown}" \
  --label org.opencontainers.image.description="meshd peer-to-peer defence mesh daemon and meshctl" \
  "$container"
b commit --quiet "$container" "$tag" >/dev/null
echo "build-image: built $tag ($(du -sh "$rootfs" | cut -f1) uncompressed)"
if [[ -n "$archive" ]]; then
  b push --quiet "$tag" "oci-archive:$archive:$tag" >/dev/null
  echo "build-image: wrote $archive"
fi
