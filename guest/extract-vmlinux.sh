#!/bin/sh
# Extract the uncompressed ELF vmlinux from a bzImage (in the manner of the kernel's
# scripts/extract-vmlinux): look for each compression format's magic in the image, try to
# decompress from every hit, keep the first result that is an ELF file.
# Booting the ELF directly (PVH entry, QEMU -kernel) skips the in-guest decompression,
# which is slow under TCG (Debian's generic kernel is XZ-compressed).
#   guest/extract-vmlinux.sh BZIMAGE OUT
set -eu

img=${1:?usage: extract-vmlinux.sh BZIMAGE OUT}
out=${2:?usage: extract-vmlinux.sh BZIMAGE OUT}
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT

is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

try() { # magic(PCRE bytes) command...
	magic=$1
	shift
	for pos in $(LC_ALL=C grep -obUaP "$magic" "$img" | cut -d: -f1); do
		# Trailing data after the stream makes the decompressors complain; the output is whole.
		tail -c "+$((pos + 1))" "$img" | "$@" >"$tmp" 2>/dev/null || true
		if [ -s "$tmp" ] && is_elf "$tmp"; then
			mv "$tmp" "$out"
			echo "extract-vmlinux.sh: $1 stream at offset $pos -> $out ($(wc -c <"$out") bytes)" >&2
			exit 0
		fi
	done
}

if is_elf "$img"; then
	cp "$img" "$tmp" && mv "$tmp" "$out"
	exit 0
fi
try '\xFD7zXZ\x00' xz -dc
try '\x02\x21\x4C\x18' lz4 -dc
try '\x28\xB5\x2F\xFD' zstd -dcq
try '\x1F\x8B\x08' gzip -dc
echo "extract-vmlinux.sh: no compressed ELF kernel found in $img" >&2
exit 1
