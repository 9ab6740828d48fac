#!/bin/sh
# Installs a cc-oci-runtime release tarball (made by `make dist`) with no network:
#   tar xzf cc-oci-runtime-VERSION.tar.gz && cd cc-oci-runtime-VERSION && sudo ./install.sh
# DESTDIR=/some/root stages the install elsewhere. The executable reads its defaults from
# /usr/share/defaults/cc-oci-runtime/ and /etc/cc-oci-runtime/ (the release's --prefix=/usr).
# Needs on the host: qemu-system-x86 (the hypervisor); nothing else from the network.
set -eu
here=$(dirname "$0")
DESTDIR=${DESTDIR:-}
install -D -m 0755 "$here/bin/cc-oci-runtime" "$DESTDIR/usr/bin/cc-oci-runtime"
for f in hypervisor.args vm.json vmlinux initrd.img rootfs.erofs; do
  install -D -m 0644 "$here/defaults/$f" "$DESTDIR/usr/share/defaults/cc-oci-runtime/$f"
done
echo "installed cc-oci-runtime into ${DESTDIR}/usr"
command -v qemu-system-x86_64 >/dev/null || echo "note: qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86)"
