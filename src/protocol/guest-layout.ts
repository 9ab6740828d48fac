/**
 * Names both sides of the VM agree on, beside the messages: where the guest mounts the
 * workload share, and what the guest calls its network cards.
 */
import { z } from "zod";

/** Where the guest mounts the 9p share (the host's `<state>/shared`). */
export const GUEST_SHARE = "/run/cc/shared";

/** The guest's name for network card i (virtio-net devices in the order QEMU was given them). */
export function guestNicName(i: number): string {
  return `eth${i}`;
}

/**
 * Beside a checkpoint's CRIU images: what a restore needs of the dumped tree besides them
 * (agent/checkpoint.ts), and what tells the host a directory holds a checkpoint of ours.
 */
export const CHECKPOINT_EXTERNALS = "cc-externals.json";

/**
 * Where below the share each container of a pod other than its sandbox has its rootfs and
 * volumes (the sandbox's are at the top): `pods/<id>/rootfs`, `pods/<id>/mounts/N/NAME`.
 */
export function podShareDir(id: string): string {
  return `pods/${id}/`;
}

/** The serial of the disk of a container's writable layer (hypervisor/layer-disk.ts, agent/layer.ts). */
export const LAYER_DISK_SERIAL = "cc-layer";

/**
 * Where a container's writable layer in the guest lives (config/writable-layer.ts): on the
 * VM's own disk (ext4), or in the guest's memory (tmpfs).
 */
export const GuestLayerKind = z.enum(["disk", "memory"]);
export type GuestLayerKind = z.infer<typeof GuestLayerKind>;
