/**
 * The disk of a container's writable layer in the guest (config/writable-layer.ts "guest"):
 * a sparse file, ext4 made by the host's mke2fs (e2fsprogs, required on Debian) before the VM
 * starts, a virtio-blk device the guest finds by its serial. The host never mounts it: what
 * the guest wrote there reaches the host only as files copied into the rootfs at the
 * container's exit (agent/layer.ts, standin/layer.ts), never as an image the host kernel reads.
 *
 * The file is in LAYER_DISK_DIR, not in the state directory: a manager's --root is often a
 * tmpfs (Docker's /run/docker/runtime-*), where the layer would take the host's memory. Its
 * name is removed once QEMU has it open (create.ts), so that its blocks go with QEMU however
 * it ends; delete removes a name that is still there (a create that failed).
 */
import { spawnSync } from "node:child_process";
import { closeSync, ftruncateSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { RuntimeError } from "../errors.ts";
import { LAYER_DISK_SERIAL } from "../protocol/guest-layout.ts";
import { openNamed } from "../sys/files.ts";

/** Where the containers' layer disks are made (root's: the guest layer is refused to users). */
export const LAYER_DISK_DIR = "/var/lib/cc-oci-runtime/layers";
/** Its size as the guest sees it; on the host it takes only what the guest wrote. */
export const LAYER_DISK_BYTES = 16 * 1024 ** 3;
const MKE2FS = "/usr/sbin/mke2fs";

export function layerDiskArgs(file: string): string[] {
  return [
    "-drive",
    // unsafe: the guest's flushes are not passed on. Nothing reads this file after the VM
    // (the layer is copied to the host's rootfs by the guest), so they would buy nothing.
    `file=${file},if=none,id=layer,format=raw,cache=unsafe`,
    "-device",
    `virtio-blk-device,drive=layer,serial=${LAYER_DISK_SERIAL}`,
  ];
}

/**
 * The sparse file, with an empty ext4 on it when `format` (a container's), else blank (a
 * template's: its guest never mounts the disk, a clone gets its own formatted one).
 */
export function makeLayerDisk(file: string, format: boolean): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const fd = openNamed(file, "wx", 0o600);
  try {
    ftruncateSync(fd, LAYER_DISK_BYTES);
  } finally {
    closeSync(fd);
  }
  if (!format) return;
  // No journal: nothing replays it (a VM that dies loses the layer either way); inode tables
  // left uninitialised, and the guest mounts with noinit_itable, so nobody zeroes them.
  const made = spawnSync(
    MKE2FS,
    ["-q", "-F", "-t", "ext4", "-O", "^has_journal", "-m", "0", "-E", "lazy_itable_init=1,nodiscard", file],
    { encoding: "utf8" },
  );
  if (made.error || made.status !== 0) {
    const why = made.error?.message ?? (made.stderr.trim() || `exit ${made.status}`);
    throw new RuntimeError(`cannot make the writable layer's disk ${file}: ${MKE2FS}: ${why}`);
  }
}
