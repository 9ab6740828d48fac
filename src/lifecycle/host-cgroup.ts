/**
 * A container's cgroup on the host: its stand-in and QEMU live in the container's
 * `cgroupsPath` (runc's default when there is none: `/<id>`), so that the host bounds the
 * VM and managers that read the cgroup of the pid they were given (`docker stats`, `ctr task
 * metrics`, `podman stats`) see the VM's real CPU and memory. Limits:
 *  - memory: a container with a memory limit gets the VM's memory plus what QEMU and the
 *    stand-in use beyond it (HOST_OVERHEAD_MIB); without one, none (as runc).
 *  - cpu: the container's quota/period and shares, as given; its cpuset pins the VM.
 *  - pids and devices are not set on the host: the container's processes and devices are
 *    the guest's (its own cgroup there has them); on the host QEMU must open /dev/kvm and
 *    its threads are not the container's processes.
 * The stand-in joins it before it starts QEMU, so QEMU is born in it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { RuntimeError } from "../errors.ts";
import type { StoredState } from "../state/schema.ts";
import {
  type CgroupLimits,
  type HostCgroupDirs,
  makeCgroup,
  removeCgroup,
  removeCgroupWhenEmpty,
  setCgroupLimits,
} from "../sys/cgroups.ts";
import { privilege } from "../sys/privilege.ts";
import type { VmSize } from "./vm-size.ts";

/**
 * What a VM uses on the host beyond its guest's memory, MiB: QEMU's own (its binary, devices,
 * the 9p server, I/O buffers), with TCG its translation buffer, which grows with the guest
 * code it runs (`-accel tcg,tb-size` bounds it; measured below), and the stand-in (a Bun
 * program). Measured 2026-12-02 (README "Host cgroups"): see the figures there.
 */
export const HOST_OVERHEAD_MIB = { kvm: 192, tcg: 448 } as const;

/** The overhead of a VM on `accel` (anything but kvm is TCG). */
export function hostOverheadMiB(accel: string | undefined): number {
  return accel === "kvm" ? HOST_OVERHEAD_MIB.kvm : HOST_OVERHEAD_MIB.tcg;
}

interface Resources {
  memory?: { limit?: number };
  cpu?: { quota?: number; period?: number; shares?: number; cpus?: string; mems?: string };
}

/** The host cgroup's limits for a container of `resources` in a VM of `size`. */
export function hostLimits(resources: Resources | undefined, size: VmSize, accel: string): CgroupLimits {
  const limits: CgroupLimits = {};
  const mib = 1024 * 1024;
  const limit = resources?.memory?.limit;
  if (limit !== undefined && limit > 0) limits.memory = (size.memoryMiB + hostOverheadMiB(accel)) * mib;
  const cpu = resources?.cpu;
  if (cpu?.period) limits.cpuPeriod = cpu.period;
  // -1 (update's "no limit") lifts the host's quota too.
  if (cpu?.quota !== undefined && cpu.quota !== 0) limits.cpuQuota = cpu.quota > 0 ? cpu.quota : null;
  if (cpu?.shares) limits.cpuShares = cpu.shares;
  if (cpu?.cpus) limits.cpus = cpu.cpus;
  if (cpu?.mems) limits.mems = cpu.mems;
  return limits;
}

/**
 * The cgroup path a container's VM lives in on the host: cgroupsPath (runc's default
 * `/<id>` when there is none) or, with --systemd-cgroup, where systemd keeps the scope
 * that `slice:prefix:name` names (runc's default `system.slice:<prefix>:<id>`). The scope's
 * directory is made through cgroupfs, not through systemd's D-Bus API (README "Host cgroups").
 */
export function hostCgroupPath(cgroupsPath: string | undefined, id: string, systemd: boolean): string {
  if (!systemd) return cgroupsPath || `/${id}`;
  if (!existsSync("/run/systemd/system"))
    throw new RuntimeError(
      "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use cgroupfs paths",
    );
  const parts = (cgroupsPath || `system.slice:cc-oci-runtime:${id}`).split(":");
  if (parts.length !== 3 || !parts[0]?.endsWith(".slice"))
    throw new RuntimeError(
      `field "linux.cgroupsPath": ${JSON.stringify(cgroupsPath)} is not systemd's slice:prefix:name (--systemd-cgroup)`,
    );
  const [slice, prefix, name] = parts as [string, string, string];
  return join(sliceDir(slice), `${prefix}-${name}.scope`);
}

/** systemd's directory of a slice: `a-b.slice` is `/a.slice/a-b.slice`; `-.slice` the root. */
export function sliceDir(slice: string): string {
  if (slice === "-.slice") return "/";
  const words = slice.slice(0, -".slice".length).split("-");
  return `/${words.map((_, i) => `${words.slice(0, i + 1).join("-")}.slice`).join("/")}`;
}

/**
 * Makes the container's host cgroup with its limits (removed again if a limit cannot be
 * written). Only the host's root can: a user, or root of a user namespace (rootless
 * podman), has none, and `note` says so; the container's limits still hold in the guest,
 * and the VM's size bounds the whole.
 */
export function makeHostCgroup(
  cgroupsPath: string,
  limits: CgroupLimits,
  note: (msg: string) => void,
): HostCgroupDirs | undefined {
  if (privilege() !== "host-root") {
    note(`no host cgroup ${cgroupsPath}: only the host's root can make one`);
    return undefined;
  }
  const cg = makeCgroup(cgroupsPath);
  try {
    setCgroupLimits(cg, limits);
  } catch (err) {
    removeCgroup(cg);
    throw err;
  }
  return cg;
}

/** Removes what the container's host cgroup was given, once nothing runs in it. */
export async function removeHostCgroup(state: StoredState | undefined): Promise<void> {
  if (state?.hostCgroup) await removeCgroupWhenEmpty(state.hostCgroup);
}
