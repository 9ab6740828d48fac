import { z } from "zod";
import { GuestLayerKind } from "../protocol/guest-layout.ts";

export const STATUSES = ["creating", "created", "running", "paused", "stopped"] as const;
export type Status = (typeof STATUSES)[number];

/** A process on the host, with its start time so a reused pid is never mistaken for it (crun). */
export const HostProcess = z.object({
  pid: z.number().int().positive(),
  /** Field 22 of /proc/PID/stat, in clock ticks since boot. */
  startTime: z.number().int().nonnegative(),
});
export type HostProcess = z.infer<typeof HostProcess>;

export const VmInfo = z.object({
  hypervisor: z.string(),
  kernel: z.string(),
  image: z.string(),
  initrd: z.string().optional(),
  accelerator: z.string(),
  uuid: z.string(),
  name: z.string(),
  vcpus: z.number().int().positive().optional(),
  memoryMiB: z.number().int().positive().optional(),
  qemu: HostProcess.optional(),
  /** The template memory file this VM maps privately (restored from it), if any. */
  template: z.string().optional(),
  /** The container's writes go to a layer on the VM's own disk (config/writable-layer.ts). */
  guestLayer: GuestLayerKind.optional(),
  /** Its layer's disk file while it has a name (hypervisor/layer-disk.ts): delete removes it. */
  layerDisk: z.string().optional(),
});
export type VmInfo = z.infer<typeof VmInfo>;

/** The container's cgroup on the host (lifecycle/host-cgroup.ts), as sys/cgroups.ts made it. */
export const HostCgroup = z.object({
  version: z.union([z.literal(1), z.literal(2)]),
  /** controller (v1) or "" (v2) -> directory */
  dirs: z.record(z.string(), z.string()),
  /** The directories made for it: removed on delete. */
  created: z.array(z.string()),
});

/**
 * What `<root>/<id>/state.json` holds: the runtime-spec state fields, plus what this
 * runtime needs to find the container's stand-in and VM again from another process.
 */
export const StoredState = z.object({
  ociVersion: z.string(),
  id: z.string(),
  status: z.enum(STATUSES),
  bundle: z.string(),
  rootfs: z.string(),
  created: z.string(),
  owner: z.string().default(""),
  annotations: z.record(z.string(), z.string()).default({}),
  /** The `create` (or `run`) process, the one writer of this file while status is creating. */
  creator: HostProcess.optional(),
  /** The stand-in, the one writer of this file from created on. */
  standin: HostProcess.optional(),
  vm: VmInfo.optional(),
  /**
   * A pod's container other than its sandbox (lifecycle/pod.ts): it runs in the sandbox's
   * VM, which its state does not own (no `vm`: deleting it leaves the VM).
   */
  pod: z.object({ sandbox: z.string() }).optional(),
  hostCgroup: HostCgroup.optional(),
  exitStatus: z.number().int().optional(),
  /** Processes of the container its memory cgroup's OOM killer killed (the stand-in counts). */
  oomKills: z.number().int().optional(),
});
export type StoredState = z.infer<typeof StoredState>;

/** The runtime-spec `state` output (plus runc's `owner`). */
export interface SpecState {
  ociVersion: string;
  id: string;
  status: Exclude<Status, "creating"> | "creating";
  pid: number;
  bundle: string;
  rootfs: string;
  created: string;
  annotations: Record<string, string>;
  owner: string;
}
