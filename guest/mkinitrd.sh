#!/bin/sh
# Build the guest initramfs: busybox-static, /init, and only the kernel modules the guest
# needs (guest/modules.list plus their dependencies), loaded in order by /init.
#   guest/mkinitrd.sh KROOT INIT MODLIST OUT [none|lz4]
# KROOT is the unpacked kernel package (with modules.dep from depmod -b). The modules are
# stored uncompressed (busybox insmod cannot read .ko.xz/.ko.zst) under /lib/modules/ with
# their load order in /etc/modules. Output is a newc cpio, optionally lz4 (legacy frames,
# the only lz4 format the kernel's initramfs unpacker reads).
# The staging tree is OUT.stage, removed afterwards unless KEEP_STAGE=1.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kroot=${1:?usage: mkinitrd.sh KROOT INIT MODLIST OUT [none|lz4]}
init=${2:?}
list=${3:?}
out=${4:?}
comp=${5:-none}

BUSYBOX=${BUSYBOX:-/bin/busybox}
file "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$BUSYBOX" 2>&1 | grep -q 'not a dynamic executable' ||
	{ echo "mkinitrd.sh: $BUSYBOX is not static (install busybox-static)" >&2; exit 1; }

stage="$out.stage"
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/newroot" \
	"$stage/lib/modules" "$stage/etc"
cp "$BUSYBOX" "$stage/bin/busybox"
for a in sh mount insmod switch_root poweroff reboot mkdir usleep sync cat echo ls ln; do
	ln -s busybox "$stage/bin/$a"
done
cp "$init" "$stage/init"
chmod 0755 "$stage/init"

: >"$stage/etc/modules"
"$here/copy-modules.sh" "$kroot" "$list" "$stage/lib/modules" "$stage/etc/modules"

# Reproducible archive: sorted names, fixed owner and time.
find "$stage" -exec touch -h -d @0 {} +
tmp="$out.tmp"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) >"$tmp.cpio"
case $comp in
none) mv "$tmp.cpio" "$tmp" ;;
lz4) lz4 -q -l -9 -f "$tmp.cpio" "$tmp" && rm -f "$tmp.cpio" ;;
*) echo "mkinitrd.sh: unknown compression $comp" >&2; exit 1 ;;
esac
mv "$tmp" "$out"
n=$(grep -c . "$stage/etc/modules")
kb=$(du -ck "$stage"/lib/modules/*.ko | tail -n 1 | cut -f1)
echo "mkinitrd.sh: $out: $n modules ($kb KiB), $(wc -c <"$out") bytes ($comp)" >&2
[ -n "${KEEP_STAGE:-}" ] || rm -rf "$stage"
