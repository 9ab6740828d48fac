/**
 * update: new limits for the container's cgroup inside the guest (crun update there), and
 * for its VM's cgroup on the host (lifecycle/host-cgroup.ts).
 * The VM itself is not resized (no memory or CPU hotplug on microvm): a limit beyond what
 * the VM has is refused with an error rather than accepted and meaningless.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { validate } from "../config/validate.ts";
import { errorMessage, RuntimeError } from "../errors.ts";
import { assertCan } from "../state/transitions.ts";
import { setCgroupLimits } from "../sys/cgroups.ts";
import type { RuntimeContext } from "./context.ts";
import { GUEST_RESERVE_MIB } from "./guest-config.ts";
import { hostLimits } from "./host-cgroup.ts";
import { liveStatus } from "./query.ts";
import { callStandin } from "./standin-client.ts";

export interface UpdateFlags {
  resources?: string;
  memory?: number;
  memoryReservation?: number;
  memorySwap?: number;
  cpuShares?: number;
  cpuShare?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: number;
  blkioWeight?: number;
}

const Resources = z.looseObject({
  memory: z
    .looseObject({
      limit: z.number().int().optional(),
      reservation: z.number().int().optional(),
      swap: z.number().int().optional(),
    })
    .optional(),
  cpu: z
    .looseObject({
      shares: z.number().int().optional(),
      quota: z.number().int().optional(),
      period: z.number().int().optional(),
      cpus: z.string().optional(),
      mems: z.string().optional(),
    })
    .optional(),
  pids: z.looseObject({ limit: z.number().int() }).optional(),
  blockIO: z.looseObject({ weight: z.number().int().optional() }).optional(),
});
type Resources = z.infer<typeof Resources>;

function prune<T extends Record<string, unknown>>(o: T): T | undefined {
  const kept = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  return Object.keys(kept).length ? (kept as T) : undefined;
}

export function resourcesFrom(flags: UpdateFlags): Resources {
  let r: Resources = {};
  if (flags.resources) {
    const file = flags.resources === "-" ? "/dev/stdin" : flags.resources;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new RuntimeError(`${flags.resources}: invalid JSON: ${(err as Error).message}`);
    }
    r = validate(Resources, json, flags.resources === "-" ? "resources (stdin)" : flags.resources);
  }
  const memory = prune({ limit: flags.memory, reservation: flags.memoryReservation, swap: flags.memorySwap });
  const cpu = prune({
    shares: flags.cpuShares ?? flags.cpuShare,
    quota: flags.cpuQuota,
    period: flags.cpuPeriod,
    cpus: flags.cpusetCpus,
    mems: flags.cpusetMems,
  });
  if (memory) r.memory = { ...r.memory, ...memory };
  if (cpu) r.cpu = { ...r.cpu, ...cpu };
  if (flags.pidsLimit !== undefined) r.pids = { limit: flags.pidsLimit };
  if (flags.blkioWeight !== undefined) r.blockIO = { ...r.blockIO, weight: flags.blkioWeight };
  return r;
}

export async function updateContainer(ctx: RuntimeContext, id: string, flags: UpdateFlags): Promise<number> {
  const s = ctx.store.read(id);
  assertCan("update", id, liveStatus(s));
  const r = resourcesFrom(flags);
  if (Object.keys(r).length === 0)
    throw new RuntimeError("update: nothing to change (give --resources or a limit flag)");
  // What the container may have of its VM: the guest keeps its reserve (guest-config.ts).
  // A pod's container has its sandbox's VM.
  const vm = s.vm ?? (s.pod ? ctx.store.tryRead(s.pod.sandbox)?.vm : undefined);
  const vmMiB = vm?.memoryMiB ?? 0;
  const bound = Math.max(32, vmMiB - GUEST_RESERVE_MIB) * 1024 * 1024;
  const limit = r.memory?.limit;
  // (-1 or 0 would be "no limit": the whole VM, the guest's reserve included)
  if (vmMiB && limit !== undefined && (limit > bound || limit <= 0)) {
    throw new RuntimeError(
      `memory limit ${limit} exceeds the VM's memory (${vmMiB} MiB, of which ${GUEST_RESERVE_MIB} MiB the guest keeps); the VM is not resized`,
    );
  }
  // A cpuset names host CPUs: it pins the VM on the host; the guest's CPUs are all the container's.
  const { cpus, mems, ...guestCpu } = r.cpu ?? {};
  const guest = { ...r, ...(r.cpu ? { cpu: guestCpu } : {}) };
  if (r.cpu && Object.keys(guestCpu).length === 0) delete guest.cpu;
  if (Object.keys(guest).length) await callStandin(ctx.store.dir(id), id, "update", { id, resources: guest });
  if (s.hostCgroup) {
    const size = { memoryMiB: vmMiB, vcpus: vm?.vcpus ?? 1 };
    try {
      setCgroupLimits(s.hostCgroup, hostLimits(r, size, vm?.accelerator ?? "tcg"));
    } catch (err) {
      throw new RuntimeError(`update of the host cgroup: ${errorMessage(err)}`);
    }
  } else if (cpus !== undefined || mems !== undefined) {
    throw new RuntimeError("update: a cpuset pins the VM on the host, and this container has no host cgroup");
  }
  return 0;
}
