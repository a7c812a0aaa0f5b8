#!/usr/bin/env bash
# Builds the Debian package with CPack into a temporary directory and checks it: the
# binaries, the unit and the conffile are where the unit and the docs say, dependencies
# came from dpkg-shlibdeps, the packaged binaries run and accept the packaged config, and
# the packaged unit verifies against the packaged binary. As root (and only if no meshd
# package is installed already) it also installs the package with `dpkg -i` and purges
# it again, also on failure.
# usage: package_test.sh BUILD_DIR "meshd;meshctl"
set -euo pipefail
build=${1:?build dir}
binaries=${2:-}
if [[ "$binaries" != *meshd* || "$binaries" != *meshctl* ]]; then
  echo "SKIP: the meshd and meshctl targets do not both exist yet (have: '${binaries}')"
  exit 77
fi

tmp=$(mktemp -d)
installed_by_us=0
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if ((installed_by_us)); then
    dpkg --purge meshd >/dev/null 2>&1 || echo "WARNING: dpkg --purge meshd failed" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}
# shellcheck disable=SC2317 # called through check
quiet() { "$@" >/dev/null 2>&1; }

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; echo "FAIL: cpack"; exit 1; }
debs=("$tmp"/out/meshd_*.deb)
[[ -f "${debs[0]}" ]] || { ls -la "$tmp/out"; echo "FAIL: no meshd_*.deb produced"; exit 1; }
deb=${debs[0]}
echo "package: $(basename "$deb") ($(stat -c %s "$deb") bytes)"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/bin/meshd ./usr/bin/meshctl ./lib/systemd/system/meshd.service \
  ./etc/meshd/meshd.yaml ./usr/share/doc/meshd/README.systemd.md \
  ./usr/share/meshd/kubernetes/enroll.sh; do
  check "contains $path" grep -qx -- "$path" <<<"$contents"
done
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
check "Depends computed by dpkg-shlibdeps (libc6)" grep -q 'libc6' <<<"$depends"
check "meshd.yaml is a conffile" \
  grep -qx /etc/meshd/meshd.yaml <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)

root=$tmp/root
dpkg-deb -x "$deb" "$root"
# Every library meshd links shared is a dependency (SQLite, libsodium and protobuf-lite are
# linked statically where their archives are installed: MESHD_STATIC_DEPS).
needed=$(objdump -p "$root/usr/bin/meshd" | awk '/NEEDED/ {print $2}')
check "meshd links some libraries shared" grep -q 'libyaml-cpp' <<<"$needed"
for lib in libsodium libsqlite3 libprotobuf-lite libyaml-cpp libspdlog libbpf; do
  if grep -q "^$lib" <<<"$needed"; then
    check "Depends include $lib (meshd links it shared)" grep -q "$lib" <<<"$depends"
  fi
done
"$root/usr/bin/meshd" --help >"$tmp/help" 2>&1 || true
check "meshd --help" quiet "$root/usr/bin/meshd" --help
check "meshd --help documents --config" grep -q -- --config "$tmp/help"
check "meshctl --help" quiet "$root/usr/bin/meshctl" --help
check "packaged config passes meshd --check-config" \
  "$root/usr/bin/meshd" --check-config "$root/etc/meshd/meshd.yaml"
sed "s#/usr/bin/meshd#$root/usr/bin/meshd#g" "$root/lib/systemd/system/meshd.service" \
  >"$tmp/meshd.service"
if command -v systemd-analyze >/dev/null; then
  out=$(cd "$tmp" && systemd-analyze verify meshd.service 2>&1) || true
  check "packaged unit verifies against the packaged binary" test -z "$out"
  [[ -z "$out" ]] || echo "$out"
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "note: not root: dpkg -i not tried"
elif dpkg-query -W -f='${Status}' meshd 2>/dev/null | grep -q installed; then
  echo "note: a meshd package is installed on this machine; dpkg -i not tried (it would replace it)"
else
  installed_by_us=1
  for attempt in 1 2 3; do # dpkg's lock may be held by a concurrent apt
    if dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1; then break; fi
    if ! grep -q 'lock' "$tmp/dpkg.log" || ((attempt == 3)); then
      cat "$tmp/dpkg.log"; echo "FAIL: dpkg -i"; exit 1
    fi
    sleep 5
  done
  check "dpkg -i: installed" \
    test "$(dpkg-query -W -f='${Status}' meshd)" = "install ok installed"
  check "installed /usr/bin/meshd runs" quiet /usr/bin/meshd --help
  check "installed unit in /lib/systemd/system" test -f /lib/systemd/system/meshd.service
  dpkg --purge meshd >/dev/null
  installed_by_us=0
  check "dpkg --purge removes /usr/bin/meshd" test ! -e /usr/bin/meshd
  check "dpkg --purge removes /etc/meshd/meshd.yaml" test ! -e /etc/meshd/meshd.yaml
fi
exit "$fail"
