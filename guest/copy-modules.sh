#!/bin/sh
# Copy the kernel modules named in LIST, with their dependencies, uncompressed (busybox
# insmod cannot read .ko.xz/.ko.zst) into MODDIR, and append their names to ORDER in load
# order. Used by mkinitrd.sh (the boot modules) and mkrootfs.sh (those loaded on demand).
#   guest/copy-modules.sh KROOT LIST MODDIR ORDER
set -eu
kroot=${1:?usage: copy-modules.sh KROOT LIST MODDIR ORDER}
list=${2:?}
moddir=${3:?}
order=${4:?}
here=$(dirname "$0")
kver=$(ls "$kroot/lib/modules" | head -n 1)
[ -n "$kver" ] || { echo "copy-modules.sh: no kernel modules in $kroot/lib/modules" >&2; exit 1; }
mdir="$kroot/lib/modules/$kver"
mkdir -p "$moddir"
for rel in $("$here/resolve-modules.sh" "$kroot" "$kver" "$list"); do
	name=$(basename "$rel")
	case $name in
	*.ko.xz) xz -dc "$mdir/$rel" >"$moddir/${name%.xz}" ;;
	*.ko.zst) zstd -dcq "$mdir/$rel" >"$moddir/${name%.zst}" ;;
	*.ko.gz) gzip -dc "$mdir/$rel" >"$moddir/${name%.gz}" ;;
	*.ko) cp "$mdir/$rel" "$moddir/$name" ;;
	*) echo "copy-modules.sh: unexpected module file $rel" >&2; exit 1 ;;
	esac
	echo "${name%.ko*}.ko" >>"$order"
done
