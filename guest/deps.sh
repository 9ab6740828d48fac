#!/bin/sh
# Install (with apt-get) the Debian packages the guest build and the smoke boot need.
# Idempotent and quick when everything is present: one dpkg-query, no apt call.
#   guest/deps.sh            install what is missing (needs root, or sudo)
#   guest/deps.sh --check    only list what is missing; exit 1 if anything is
set -eu

PKGS="
busybox-static
cpio
criu
crun
dpkg
apt
erofs-utils
iproute2
kmod
libc-bin
lz4
qemu-system-x86
tar
xz-utils
zstd
"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done

if [ -z "$missing" ]; then
	exit 0
fi
if [ "${1:-}" = --check ]; then
	echo "guest/deps.sh: missing packages:$missing" >&2
	exit 1
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "guest/deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# An empty package list (fresh machine) makes install fail: update first if needed.
if ! $SUDO apt-get install -y --no-install-recommends $missing; then
	$SUDO apt-get update
	$SUDO apt-get install -y --no-install-recommends $missing
fi
