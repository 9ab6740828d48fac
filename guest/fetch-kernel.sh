#!/bin/sh
# Pick and download the Debian GENERIC 6.1 kernel package for the guest.
#   guest/fetch-kernel.sh PKGDIR [PACKAGE]
# Prints the path of the .deb on stdout.
#
# PACKAGE empty or "auto": reuse a linux-image-6.1.0-*-amd64 .deb already in PKGDIR (so
# rebuilds work offline and never switch kernels behind one's back); otherwise ask apt-cache
# for the highest ABI number N for which linux-image-6.1.0-N-amd64-unsigned or
# linux-image-6.1.0-N-amd64 (signed) has a candidate, preferring -unsigned (same vmlinuz
# and modules, without the EFI-signed wrapper). Both carry /boot/vmlinuz-*, /boot/config-*
# and /lib/modules. The generic flavour is needed: the cloud one does not build 9p.
# `make guest-distclean` forgets the downloaded package; GUEST_KERNEL_PKG=NAME pins one.
set -eu

dir=${1:?usage: fetch-kernel.sh PKGDIR [PACKAGE]}
want=${2:-auto}
mkdir -p "$dir"

newest_local() {
	ls "$dir"/linux-image-6.1.0-*-amd64*.deb 2>/dev/null | grep -v -e -dbg_ -e -cloud- -e -rt- |
		sort -V | tail -n 1
}

has_candidate() {
	c=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
	[ -n "$c" ] && [ "$c" != "(none)" ]
}

if [ "$want" = auto ]; then
	deb=$(newest_local)
	if [ -n "$deb" ]; then
		echo "$deb"
		exit 0
	fi
	abis=$(apt-cache pkgnames linux-image-6.1.0- |
		sed -n 's/^linux-image-6\.1\.0-\([0-9][0-9]*\)-amd64\(-unsigned\)\{0,1\}$/\1/p' |
		sort -un -r)
	want=""
	for n in $abis; do
		for p in "linux-image-6.1.0-$n-amd64-unsigned" "linux-image-6.1.0-$n-amd64"; do
			if has_candidate "$p"; then
				want=$p
				break 2
			fi
		done
	done
	if [ -z "$want" ]; then
		echo "fetch-kernel.sh: no linux-image-6.1.0-*-amd64 package known to apt (run apt-get update?)" >&2
		exit 1
	fi
fi

existing=$(ls "$dir/${want}_"*_amd64.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$existing" ]; then
	echo "$existing"
	exit 0
fi

echo "fetch-kernel.sh: downloading $want" >&2
# apt-get download writes into the current directory. As root, apt would first try to
# fetch as the _apt user, who may not write there, and warn: fetch as root directly.
sandbox=
[ "$(id -u)" != 0 ] || sandbox="-o APT::Sandbox::User=root"
(cd "$dir" && apt-get download -q $sandbox "$want" >&2) || {
	echo "fetch-kernel.sh: apt-get download $want failed" >&2
	exit 1
}
deb=$(ls "$dir/${want}_"*_amd64.deb 2>/dev/null | sort -V | tail -n 1)
[ -n "$deb" ] || { echo "fetch-kernel.sh: $want downloaded but no .deb found in $dir" >&2; exit 1; }
echo "$deb"
