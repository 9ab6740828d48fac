/**
 * Turns the bundle's config.json into the one crun gets inside the guest, and lists the
 * host paths that must be shared for it. Host-only parts are removed (hooks run on the
 * host; namespace paths and the vm object mean nothing in the guest); bind mounts of host
 * files and directories are redirected to their copies in the share.
 */
import { accessSync, constants, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import type { OciConfig } from "../config/oci-schema.ts";
import { RuntimeError } from "../errors.ts";
import { ioReason } from "../sys/files.ts";

/** Where the agent mounts the share in the guest (agent/containers.ts SHARE_MOUNT). */
export { GUEST_SHARE } from "../protocol/guest-layout.ts";

import { GUEST_SHARE } from "../protocol/guest-layout.ts";

/** The newest runtime-spec version the guest's crun accepts. */
const GUEST_OCI_VERSION = "1.1.0";

/** A host path bind-mounted into the shared directory at `target` (relative). */
export interface HostShare {
  /** The config field it comes from (root.path, mounts[N]), for errors. */
  field: string;
  source: string;
  target: string;
  file: boolean;
  readonly: boolean;
}

export function isBindMount(m: { type?: string; options?: string[] }): boolean {
  return m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
}

function isDirectory(path: string): boolean | undefined {
  try {
    return statSync(path).isDirectory();
  } catch {
    return undefined;
  }
}

/** Why `path` cannot be used, as stat(2) then access(2) say (ENOENT: "does not exist"). */
function pathProblem(path: string, mode?: number): string | undefined {
  const reason = (err: unknown, denied: string) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "does not exist";
    return code === "EACCES" ? denied : ioReason(err);
  };
  try {
    statSync(path);
  } catch (err) {
    return reason(err, "cannot be reached (permission denied)");
  }
  try {
    if (mode !== undefined) accessSync(path, mode);
  } catch (err) {
    return reason(err, "cannot be read by this user");
  }
  return undefined;
}

/**
 * The host paths a container needs, checked as soon as its bundle is resolved: a bad one is
 * an error naming its config field before any VM or template work (a rootfs that is a file
 * would otherwise fail as errno 20 from mount(2), after a template build).
 */
export function checkHostPaths(oci: OciConfig, rootfs: string, configFile: string, asUser = false): void {
  // A user's QEMU reads and writes as the user: a source it cannot read would be a share
  // whose every access fails in the guest, so it is an error now, naming the field.
  const dirMode = asUser ? constants.R_OK | constants.X_OK : undefined;
  const rootProblem = pathProblem(rootfs, dirMode);
  if (rootProblem) throw new RuntimeError(`rootfs ${rootfs} ${rootProblem} (root.path in ${configFile})`);
  if (!isDirectory(rootfs))
    throw new RuntimeError(`rootfs ${rootfs} is not a directory (root.path in ${configFile})`);
  (oci.mounts ?? []).forEach((m, i) => {
    if (!isBindMount(m) || !m.source) return;
    const mode = asUser ? (isDirectory(m.source) === false ? constants.R_OK : dirMode) : undefined;
    const problem = pathProblem(m.source, mode);
    if (problem) throw new RuntimeError(`${configFile}: field "mounts[${i}].source": ${m.source} ${problem}`);
  });
}

/** What the guest config depends on besides the bundle: the VM's size, and where notes go. */
export interface GuestContext {
  vcpus: number;
  /** The VM's memory, MiB: the container's memory bound is below it (GUEST_RESERVE_MIB). */
  memoryMiB: number;
  /** A decision worth a debug line (a field ignored, and why). */
  note: (msg: string) => void;
  /**
   * A user's container (sys/privilege.ts "user"): its QEMU runs in a user namespace that maps
   * only this uid and gid, as 0, so the guest sees the user's files as root's and any other
   * owner as nobody. Mappings of the spec's user namespace name host ids: these become 0.
   */
  ownIds?: { uid: number; gid: number };
  /**
   * Where below the VM's share this container's rootfs and volumes go: "" for the VM's own
   * container, `pods/<id>/` for each other container of a pod (lifecycle/create-member.ts).
   */
  shareDir?: string;
}

/**
 * linux.uidMappings / gidMappings as the guest must read them: host ids seen through the
 * share. Root's QEMU sees host ids as they are; a user's sees its own id as 0 and no other,
 * so a mapping to another host id cannot be honoured (a user without newuidmap cannot map
 * other ids for runc either).
 */
function guestIdMappings(
  mappings: unknown,
  field: "uidMappings" | "gidMappings",
  ctx: GuestContext,
): unknown {
  if (!ctx.ownIds || !Array.isArray(mappings)) return mappings;
  const own = field === "uidMappings" ? ctx.ownIds.uid : ctx.ownIds.gid;
  return (mappings as { containerID: number; hostID: number; size: number }[]).map((m, i) => {
    if (m.hostID !== own || m.size !== 1) {
      throw new RuntimeError(
        `field "linux.${field}[${i}]": host ids ${m.hostID}-${m.hostID + m.size - 1} cannot be mapped: a user's container maps only its own ${field === "uidMappings" ? "uid" : "gid"} ${own} (size 1)`,
      );
    }
    return { ...m, hostID: 0 };
  });
}

/** CPU numbers of a cpuset list ("0-2,5"); undefined if it does not parse. */
export function cpusetCpus(list: string): number[] | undefined {
  const out: number[] = [];
  for (const part of list.split(",")) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return undefined;
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return out;
}

/**
 * linux.resources as the guest's cgroup v2 can take them. memory.kernel and kernelTCP are
 * deprecated (runtime-spec: "may be ignored") and cgroup v2 has no such files: dropped.
 */
function guestResources(resources: Record<string, unknown> | undefined, ctx: GuestContext) {
  const r = structuredClone(resources ?? {});
  r.memory = boundMemory(r.memory as Record<string, unknown> | undefined, ctx);
  const memory = r.memory as Record<string, unknown> | undefined;
  for (const field of ["kernel", "kernelTCP"] as const) {
    if (memory && memory[field] !== undefined) {
      ctx.note(`linux.resources.memory.${field} ignored (deprecated; no such limit in cgroup v2)`);
      delete memory[field];
    }
  }
  const cpu = r.cpu as { cpus?: string; mems?: string } | undefined;
  if (cpu?.cpus) {
    if (!cpusetCpus(cpu.cpus))
      throw new RuntimeError(
        `field "linux.resources.cpu.cpus": ${JSON.stringify(cpu.cpus)} is not a CPU list`,
      );
  }
  // The cpuset names host CPUs and memory nodes: the host cgroup pins the VM to them
  // (host-cgroup.ts), and the VM has as many vCPUs as they are (vm-size.ts), all the container's.
  for (const field of ["cpus", "mems"] as const) {
    if (cpu?.[field] !== undefined) {
      ctx.note(
        `linux.resources.cpu.${field} ${JSON.stringify(cpu[field])} applied on the host (the VM has ${ctx.vcpus} vCPUs)`,
      );
      delete cpu[field];
    }
  }
  return r;
}

/**
 * What the guest keeps for itself out of the VM's memory: its kernel (page tables, slab,
 * the page cache the agent and crun run from) and the agent. Measured in a 256 MiB guest
 * (README "Memory of a VM"): MemTotal 206 MiB (the kernel keeps 50), 48 MiB of it in use
 * with a container idle (agent, slab, the agent's page cache), and a 62 MiB margin. The
 * margin is measured too: with 30 MiB (a 128 MiB reserve) a container at its bound left the
 * guest 4 MiB free, reclaim took the agent's own pages and an exec took 5.4 s (ps 2.5 s);
 * with 62 MiB the slowest exec while a tmpfs filled the cgroup was 1.5 s (ps 0.5 s), as idle.
 */
export const GUEST_RESERVE_MIB = 160;
const MIB = 1024 * 1024;

/**
 * The container's memory limit in the guest is always below the VM's memory: its own limit
 * when smaller, else the VM's memory minus the reserve. So a container that fills its memory
 * is OOM-killed inside its cgroup, never by a guest-wide OOM that leaves the agent starving.
 */
function boundMemory(memory: Record<string, unknown> | undefined, ctx: GuestContext) {
  const bound = Math.max(32, ctx.memoryMiB - GUEST_RESERVE_MIB) * MIB;
  const m = { ...(memory ?? {}) };
  const limit = typeof m.limit === "number" && m.limit > 0 ? m.limit : undefined;
  if (limit === undefined || limit > bound) {
    if (limit !== undefined)
      ctx.note(
        `linux.resources.memory.limit ${limit} is more than the VM can give: ${bound} (VM ${ctx.memoryMiB} MiB)`,
      );
    m.limit = bound;
  }
  return m;
}

/**
 * The agent (and crun, its child) run at oom_score_adj -1000: never the OOM killer's choice.
 * A container's process would inherit that, and a memory cgroup's OOM killer spares it too,
 * so a process that does not say is given the default, 0, as it would have on a host.
 */
export function processOomScoreAdj(given: unknown): number {
  return typeof given === "number" ? given : 0;
}

export function guestConfig(
  oci: OciConfig,
  id: string,
  rootfs: string,
  ctx: GuestContext,
): { config: Record<string, unknown>; shares: HostShare[] } {
  const config = structuredClone(oci) as Record<string, unknown> & OciConfig;
  delete config.vm;
  delete config.hooks;
  // crun 1.8 (Debian 12) refuses ociVersion above 1.1; the fields it reads are the same.
  if (/^1\.([2-9]|\d\d)/.test(oci.ociVersion)) config.ociVersion = GUEST_OCI_VERSION;
  const here = ctx.shareDir ?? "";
  const shares: HostShare[] = [
    { field: "root.path", source: rootfs, target: `${here}rootfs`, file: false, readonly: false },
  ];
  config.root = { ...oci.root, path: `${GUEST_SHARE}/${here}rootfs` };
  config.mounts = (oci.mounts ?? []).map((m, i) => {
    if (!isBindMount(m) || !m.source) return m;
    const isDir = isDirectory(m.source);
    // Checked by checkHostPaths; gone since then.
    if (isDir === undefined) throw new RuntimeError(`bind-mount source ${m.source} is gone (mounts[${i}])`);
    const file = !isDir;
    // The source's own name stays the last component (tools match mounts by it in mountinfo).
    // (resolved: a source spelled `/a/b/..` or `/a/.` is named by what it is, `a`)
    const name = basename(resolve(m.source));
    const target = name ? `${here}mounts/${i}/${name}` : `${here}mounts/${i}`;
    const readonly = (m.options ?? []).includes("ro");
    shares.push({ field: `mounts[${i}]`, source: m.source, target, file, readonly });
    return { ...m, source: `${GUEST_SHARE}/${target}` };
  });
  const proc = config.process as Record<string, unknown> | undefined;
  for (const field of ["apparmorProfile", "selinuxLabel"] as const) {
    if (proc?.[field] !== undefined) {
      // Docker sets an AppArmor profile on every container of an AppArmor host: refusing it
      // would refuse Docker. The guest kernel runs no LSM; the VM is the isolation boundary.
      ctx.note(`process.${field} ${JSON.stringify(proc[field])} not applied: the guest kernel runs no LSM`);
      delete proc[field];
    }
  }
  if (proc) proc.oomScoreAdj = processOomScoreAdj(proc.oomScoreAdj);
  const linux = { ...(oci.linux ?? {}) } as Record<string, unknown>;
  if (linux.mountLabel !== undefined) {
    ctx.note("linux.mountLabel not applied: the guest kernel runs no LSM");
    delete linux.mountLabel;
  }
  linux.resources = guestResources(linux.resources as Record<string, unknown> | undefined, ctx);
  for (const field of ["uidMappings", "gidMappings"] as const) {
    if (linux[field] !== undefined) linux[field] = guestIdMappings(linux[field], field, ctx);
  }
  if (Array.isArray(linux.namespaces)) {
    // No network namespace in the guest: the container shares the guest's, where its NICs
    // are (standin/network.ts); the VM is what isolates it.
    linux.namespaces = (linux.namespaces as { type: string; path?: string }[])
      .filter(({ type }) => type !== "network")
      .map(({ type }) => ({ type }));
  }
  // cgroups live in the guest (v2, no systemd): one fixed place per container.
  linux.cgroupsPath = `/cc-oci/${id}`;
  config.linux = linux;
  return { config, shares };
}
