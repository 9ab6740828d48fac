#!/bin/bash
# How the ways of sharing host files with the guest compare (issue 19), without the runtime:
# one boot of the guest (its kernel, initramfs with virtiofs added, erofs image, microvm,
# TCG unless ACCEL=kvm) times the file operations of bench/lib/file-ops.sh on
#   tmpfs            the guest's own memory (the goal's reference)
#   9p-mmap          9p as the runtime mounts the share (cache=mmap, msize 262144)
#   9p-loose         a second 9p device, cache=loose, msize 512000
#   virtiofs         virtio-fs: Debian's virtiofsd (qemu-system-common), cache=always;
#                    it needs the guest's RAM shared (memory-backend-memfd,share=on)
# busybox runs from the guest's tmpfs in every case, so only the file operations differ.
#   bench/share-modes.sh      (VIRTIOFSD_OPTS="-o writeback" adds virtiofsd options)
# Prints "RES <where> <op> <ms>" lines (bench/lib/file-ops.sh). Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$(pwd)
KERNEL=build/guest/vmlinux
IMAGE=build/guest/rootfs.erofs
MEM=${MEM:-512}
D=$(mktemp -d /tmp/cc-share-modes-XXXXXX)
VPID=
cleanup() {
	[ -z "$VPID" ] || kill "$VPID" 2>/dev/null || true
	rm -rf "$D"
}
trap cleanup EXIT

# The initramfs of the build plus fuse and virtiofs (the build's loads 9p only).
{ cat guest/modules.list; echo virtiofs; } >"$D/modules.list"
guest/mkinitrd.sh build/guest/kernel guest/init "$D/modules.list" "$D/initrd.img" none >/dev/null

mkdir -p "$D/w/m/tmp" "$D/w/m/loose" "$D/w/m/vfs" "$D/w/data" "$D/l/data" "$D/v/data"
cp /bin/busybox "$D/w/busybox"
cp bench/lib/file-ops.sh "$D/w/file-ops.sh"
cat >"$D/w/guest.sh" <<'GUEST'
mount -t tmpfs tmpfs /mnt/m/tmp
B=/mnt/m/tmp
mkdir -p $B/bb && cp /mnt/busybox $B/bb/busybox && $B/bb/busybox --install -s $B/bb
export PATH=$B/bb:$PATH
. /mnt/file-ops.sh
make_src_tar $B
measure $B/meas tmpfs | sed 's/^/RES /'
measure /mnt/data 9p-mmap | sed 's/^/RES /'
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,access=client loose /mnt/m/loose && measure /mnt/m/loose/data 9p-loose | sed 's/^/RES /'
mount -t virtiofs vfs /mnt/m/vfs && measure /mnt/m/vfs/data virtiofs | sed 's/^/RES /' || echo "RES virtiofs mount failed"
poweroff -f
GUEST

KHZ=$(guest/host-tsc-khz.sh)
PARAMS="$(sed -n 's/^ *"parameters": *"\(.*\)",\{0,1\} *$/\1/p' data/vm.json.in) tsc_early_khz=$KHZ"
MOUNT="mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap,access=client workload /mnt"
PARAMS="$PARAMS cc.init=\"/bin/sh -c '$MOUNT && exec /bin/sh /mnt/guest.sh'\""
# shellcheck disable=SC2086 # VIRTIOFSD_OPTS is a list of options
/usr/lib/qemu/virtiofsd --socket-path="$D/vfs.sock" -o source="$D/v" -o cache=always ${VIRTIOFSD_OPTS:-} \
	>"$D/virtiofsd.log" 2>&1 &
VPID=$!
for _ in $(seq 50); do [ -S "$D/vfs.sock" ] && break; sleep 0.1; done
# TCG unless told (ACCEL=kvm CPU=host on a host whose KVM works: the runtime's own check of
# that is src/hypervisor/accel.ts).
ACCEL=${ACCEL:-tcg}
CPU=${CPU:-max}
timeout 900 /usr/bin/qemu-system-x86_64 -machine microvm,memory-backend=mem -accel $ACCEL -cpu $CPU -m "${MEM}M" \
	-object "memory-backend-memfd,id=mem,size=${MEM}M,share=on" -smp 1 -nodefaults -no-user-config -nographic \
	-no-reboot -global virtio-mmio.force-legacy=false \
	-kernel "$TOP/$KERNEL" -initrd "$D/initrd.img" -append "$PARAMS" \
	-drive "file=$TOP/$IMAGE,if=none,id=image,format=raw,readonly=on" -device virtio-blk-device,drive=image \
	-fsdev "local,id=workload,path=$D/w,security_model=passthrough,multidevs=remap" \
	-device virtio-9p-device,fsdev=workload,mount_tag=workload \
	-fsdev "local,id=loose,path=$D/l,security_model=passthrough,multidevs=remap" \
	-device virtio-9p-device,fsdev=loose,mount_tag=loose \
	-chardev "socket,id=vfs,path=$D/vfs.sock" -device vhost-user-fs-device,chardev=vfs,tag=vfs \
	-serial stdio >"$D/console.log" 2>&1 || echo "QEMU exited with $?"
grep '^RES' "$D/console.log" || { echo "no results; console:"; tail -30 "$D/console.log"; exit 1; }
