#!/bin/sh
# Build the guest's read-only root image (erofs):
#   glibc (loader, libc, libm, libpthread, libdl, librt), crun and the libraries ldd finds
#   for it, the agent (the project's executable) at /usr/bin/cc-oci-runtime plus its
#   libraries, busybox-static at /bin/busybox with applet links, the mount points
#   /proc /sys /dev /run /tmp /mnt, and a minimal /etc; CRIU (/usr/sbin/criu, the agent's
#   checkpoint/restore) with its libraries; and the kernel modules the agent loads on first
#   use (not at boot: most VMs never need them), one set per list guest/NAME-modules.list,
#   in /usr/lib/modules/cc/NAME/ in the order its file `order` gives (agent/modules.ts).
#   guest/mkrootfs.sh AGENT OUT [KROOT MODLIST...]   (no modules without KROOT)
# Layout is Debian's merged /usr: /bin /sbin /lib /lib64 are links into /usr.
# Uncompressed erofs: under TCG, in-guest decompression costs more than the reads it saves.
# The staging tree is OUT.stage, removed afterwards unless KEEP_STAGE=1.
set -eu
agent=${1:?usage: mkrootfs.sh AGENT OUT [KROOT MODLIST...]}
out=${2:?}
kroot=${3:-}
[ $# -ge 3 ] && shift 3 || shift $#
here=$(cd "$(dirname "$0")" && pwd)
BUSYBOX=${BUSYBOX:-/bin/busybox}
CRUN=${CRUN:-/usr/bin/crun}
CRIU=${CRIU:-/usr/sbin/criu}
# GNU tar: CRIU runs `tar --create --gzip --no-unquote ...` on every tmpfs it dumps (the
# container's /dev, /dev/shm), options busybox's tar does not have.
TAR=${TAR:-/bin/tar}
MKFS_EROFS=${MKFS_EROFS:-mkfs.erofs}

for f in "$agent" "$BUSYBOX" "$CRUN" "$CRIU" "$TAR"; do
	[ -x "$f" ] || { echo "mkrootfs.sh: $f missing or not executable" >&2; exit 1; }
done

stage="$out.stage"
rm -rf "$stage"
mkdir -p "$stage/usr/bin" "$stage/usr/sbin" "$stage/usr/lib/x86_64-linux-gnu" "$stage/usr/lib64"
ln -s usr/bin "$stage/bin"
ln -s usr/sbin "$stage/sbin"
ln -s usr/lib "$stage/lib"
ln -s usr/lib64 "$stage/lib64"
for d in proc sys dev run tmp mnt etc root; do mkdir -p "$stage/$d"; done
chmod 1777 "$stage/tmp"
chmod 0700 "$stage/root"

# copy_lib HOSTPATH: copy a shared object (following links) to the same directory in the
# merged-/usr layout, keeping the name it was asked by.
copy_lib() {
	src=$1
	name=$(basename "$src")
	dir=$(dirname "$src")
	case $dir in
	/lib/* | /lib) dir=/usr$dir ;;
	/lib64) dir=/usr/lib64 ;;
	esac
	mkdir -p "$stage$dir"
	[ -e "$stage$dir/$name" ] || cp -L "$src" "$stage$dir/$name"
}

# copy_deps BINARY: every library ldd resolves for it, and the loader.
copy_deps() {
	if ldd "$1" >/dev/null 2>&1; then
		ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
			while read -r lib; do copy_lib "$lib"; done
		if ldd "$1" | grep -q 'not found'; then
			echo "mkrootfs.sh: unresolved libraries for $1:" >&2
			ldd "$1" | grep 'not found' >&2
			exit 1
		fi
	fi
}

# glibc, whatever the binaries happen to link: the agent may dlopen some of these.
for lib in libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1; do
	copy_lib "/lib/x86_64-linux-gnu/$lib"
done
loader=/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
copy_lib "$loader"
ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$stage/usr/lib64/ld-linux-x86-64.so.2"

cp "$CRUN" "$stage/usr/bin/crun"
copy_deps "$CRUN"
cp "$CRIU" "$stage/usr/sbin/criu"
copy_deps "$CRIU"
cp "$TAR" "$stage/usr/bin/tar"
copy_deps "$TAR"
if [ -n "$kroot" ]; then
	for list in "$@"; do
		set_dir="$stage/usr/lib/modules/cc/$(basename "$list" -modules.list)"
		mkdir -p "$set_dir"
		: >"$set_dir/order"
		"$here/copy-modules.sh" "$kroot" "$list" "$set_dir" "$set_dir/order"
	done
fi
cp "$agent" "$stage/usr/bin/cc-oci-runtime"
chmod 0755 "$stage/usr/bin/cc-oci-runtime"
copy_deps "$agent"

# busybox at /bin/busybox (= /usr/bin/busybox) and relative links for its applets,
# never replacing a real file.
cp "$BUSYBOX" "$stage/usr/bin/busybox"
"$BUSYBOX" --list-full | while read -r app; do
	case $app in
	bin/* | sbin/*) app=usr/$app ;;
	usr/bin/* | usr/sbin/*) ;;
	*) continue ;;
	esac
	[ -e "$stage/$app" ] || [ -L "$stage/$app" ] && continue
	case $app in
	usr/bin/*) ln -s busybox "$stage/$app" ;;
	usr/sbin/*) ln -s ../bin/busybox "$stage/$app" ;;
	esac
done

cat >"$stage/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$stage/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo "cc-oci-runtime" >"$stage/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$stage/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$stage/etc/nsswitch.conf"
ln -s ../proc/self/mounts "$stage/etc/mtab"

# Reproducible image: fixed times, root owner, fixed UUID.
find "$stage" -exec touch -h -d @0 {} +
tmp="$out.tmp"
rm -f "$tmp"
"$MKFS_EROFS" --quiet --all-root -T0 -U 6e1b4a3c-7c0a-4f4e-9a53-cc0c1e0e0f5a "$tmp" "$stage" >&2
mv "$tmp" "$out"
echo "mkrootfs.sh: $out: $(wc -c <"$out") bytes, $(find "$stage" | wc -l) entries" >&2
[ -n "${KEEP_STAGE:-}" ] || rm -rf "$stage"
