#!/usr/bin/env bash
# make demo: run a busybox container in its own VM and show that it is one.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
work=$(mktemp -d /tmp/cc-oci-demo.XXXXXX)
root="$work/root"
trap 'bin/cc-oci-runtime --root "$root" delete --force demo >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# A busybox rootfs from Debian's busybox-static: no registry involved.
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/bundle/rootfs/bin/$a"; done
mkdir -p "$work/bundle/rootfs/"{proc,sys,dev,tmp,etc}

bin/cc-oci-runtime spec --bundle "$work/bundle"
# Not a terminal, our own hostname, and the command to run.
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"hostname": "cc-oci-runtime"/"hostname": "demo-container"/' \
  -e 's|"sh"$|"sh", "-c", "echo guest kernel: $(uname -r); echo container hostname: $(hostname)"|' \
  "$work/bundle/config.json"
# The VM configuration of this build tree (an installed runtime finds its own defaults).
cp build/local/vm.json build/local/hypervisor.args "$work/bundle/"

echo "host kernel: $(uname -r)"
time bin/cc-oci-runtime --root "$root" run --bundle "$work/bundle" demo
