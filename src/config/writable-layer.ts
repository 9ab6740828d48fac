/**
 * Where a container's writes to its rootfs go while it runs.
 *
 * - "share" (the default): through the 9p share, straight into the host's rootfs directory.
 *   Every create, write and stat is a round trip to the host: what the container writes is
 *   on the host at once (`docker cp`, `docker diff` of a running container see it), and
 *   creating small files costs ~25x the guest's tmpfs under TCG (README "Files through the
 *   share").
 * - "guest": an overlay in the guest, the share's rootfs below, a directory on a disk of the
 *   VM's own above (ext4 on a sparse file in the state directory, hypervisor/layer-disk.ts).
 * - "guest-memory": the same overlay, its upper directory on a tmpfs of the guest (no disk:
 *   the layer holds at most half the VM's memory, and counts in the container's).
 *
 * With either guest layer, files are created, written and read back without a round trip to
 * the host; the layer is copied into the host's rootfs when the container's init exits,
 * before its exit is reported (agent/layer.ts, standin/layer.ts). Until then the host does
 * not see those writes, and a VM that dies first (killed, host crash) loses them.
 *
 * Set per container by the annotation, else for every container by vm.json. A pod's
 * containers share one VM and write through the share, and so do a user's: the annotation on
 * one of them is an error, vm.json's setting does not apply to them.
 */
import { RuntimeError } from "../errors.ts";
import type { GuestLayerKind } from "../protocol/guest-layout.ts";
import { privilege } from "../sys/privilege.ts";
import { POD_ANNOTATIONS } from "./pod-annotations.ts";
import type { ResolvedBundle } from "./resolver.ts";
import { WRITABLE_LAYERS } from "./vm-schema.ts";

export const WRITABLE_LAYER_ANNOTATION = "io.cc-oci-runtime.writable-layer";
export type WritableLayer = (typeof WRITABLE_LAYERS)[number];

export function writableLayer(r: ResolvedBundle): WritableLayer {
  const given = r.oci.annotations?.[WRITABLE_LAYER_ANNOTATION];
  if (given === undefined) return r.vm.vm.writableLayer ?? "share";
  if ((WRITABLE_LAYERS as readonly string[]).includes(given)) return given as WritableLayer;
  throw new RuntimeError(
    `${r.configFile}: annotation "${WRITABLE_LAYER_ANNOTATION}": expected ${WRITABLE_LAYERS.map((l) => `"${l}"`).join(", ")}, got ${JSON.stringify(given)}`,
  );
}

function inPod(r: ResolvedBundle): boolean {
  return POD_ANNOTATIONS.some((keys) => r.oci.annotations?.[keys.type] !== undefined);
}

/**
 * The container's layer in the guest, if it gets one; a read-only rootfs has nothing to copy
 * back. A pod's container, or any container of a runtime run as a user (the layer is
 * unpacked in a mount namespace of the host's root, standin/layer.ts), gets none.
 */
export function guestLayer(r: ResolvedBundle, asUser = privilege() === "user"): GuestLayerKind | undefined {
  const wanted = writableLayer(r);
  if (wanted === "share" || r.oci.root?.readonly === true) return undefined;
  const refused = inPod(r)
    ? "for a pod's containers (they share one VM and write through the share)"
    : asUser
      ? "when the runtime is run as a user"
      : undefined;
  if (!refused) return wanted === "guest" ? "disk" : "memory";
  if (r.oci.annotations?.[WRITABLE_LAYER_ANNOTATION] === undefined) return undefined;
  throw new RuntimeError(
    `${r.configFile}: annotation "${WRITABLE_LAYER_ANNOTATION}": "${wanted}" is not supported ${refused}`,
  );
}
