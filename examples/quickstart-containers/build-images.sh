#!/usr/bin/env bash
# Builds the quickstart's container images locally, without a registry:
#   localhost/edgesec/busybox:1          a static busybox, nothing else
#   localhost/edgesec/demo:quickstart    + edgesec-demo and the shared libraries it links
#   localhost/edgesec/agent:quickstart   + edgesec-agent and the shared libraries it links
# Usage: build-images.sh [BIN_DIR]   (default: target/release of this repository)
# Needs: a running engine reachable by the `docker` CLI (DOCKER_HOST for another socket; for
# podman, `podman` works as well through CONTAINER_CLI=podman), busybox-static, tar, ldd.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="${1:-$here/../../target/release}"
cli="${CONTAINER_CLI:-docker}"
busybox="${BUSYBOX:-/bin/busybox}"   # must be a static build (Debian: busybox-static)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# rootfs DIR: a static busybox with its applets as symlinks, and the usual empty directories
rootfs() {
  local d="$1"
  mkdir -p "$d/bin" "$d/tmp" "$d/etc" "$d/proc" "$d/sys" "$d/dev" "$d/var/run/iotedge"
  chmod 1777 "$d/tmp"
  cp "$busybox" "$d/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$d/bin/$applet"
  done
  printf 'root:x:0:0:root:/:/bin/sh\n' > "$d/etc/passwd"
  printf 'root:x:0:\n' > "$d/etc/group"
}

# add_binary DIR BINARY: the binary at /opt/edgesec/, its shared libraries at their host paths
add_binary() {
  local d="$1" b="$2"
  mkdir -p "$d/opt/edgesec"
  cp "$b" "$d/opt/edgesec/"
  for lib in $(ldd "$b" | grep -oE '/[^ ]+'); do
    mkdir -p "$d$(dirname "$lib")"
    cp -L "$lib" "$d$lib"
  done
}

# import DIR TAG CMD-JSON
import() {
  tar -C "$1" -cf "$work/rootfs.tar" .
  "$cli" import --change "CMD $3" "$work/rootfs.tar" "$2" >/dev/null
  echo "built $2"
}

rootfs "$work/busybox"
import "$work/busybox" localhost/edgesec/busybox:1 '["/bin/sh"]'
for name in demo agent; do
  binary="$bin_dir/edgesec-$name"
  [ -x "$binary" ] || { echo "build-images.sh: $binary is missing (cargo build first)" >&2; exit 1; }
  rootfs "$work/$name"
  add_binary "$work/$name" "$binary"
  import "$work/$name" "localhost/edgesec/$name:quickstart" "[\"/opt/edgesec/edgesec-$name\"]"
done
