/**
 * The host's cgroups, through cgroupfs: where the hierarchies are mounted (v1, one per
 * controller or group of them; v2, one unified tree), making a container's cgroup in each,
 * moving a process into it, writing its limits, and removing it. Which limits a VM gets is
 * decided elsewhere (lifecycle/host-cgroup.ts); this module only knows the files.
 *
 * On a hybrid host (v1 controllers, and a cgroup2 `unified` tree beside them without
 * controllers, as here) the v1 hierarchies are the ones that hold limits: v1 is used.
 */
import { mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";

/** v1 controllers this runtime writes limits to or reads statistics from. */
const V1_CONTROLLERS = ["cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer"] as const;
/** v2 controllers enabled for the container's cgroup in its parents (cgroup.subtree_control). */
const V2_CONTROLLERS = ["cpu", "cpuset", "memory", "pids"] as const;

export interface CgroupMounts {
  version: 1 | 2;
  /** v1: controller -> mount point of its hierarchy; v2: "" -> the unified mount. */
  roots: Record<string, string>;
}

/** The cgroup of this process in each hierarchy, from /proc/self/cgroup ("" for v2). */
function ownCgroups(): Record<string, string> {
  const own: Record<string, string> = {};
  for (const line of readFileSync("/proc/self/cgroup", "utf8").split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const c of (m[1] as string).split(",")) own[c] = m[2] as string;
  }
  return own;
}

/** The mounted hierarchies, from /proc/self/mountinfo. */
export function cgroupMounts(mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): CgroupMounts {
  const v1: Record<string, string> = {};
  let v2: string | undefined;
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const point = left.split(" ")[4];
    const [fstype, , superOpts] = right.split(" ");
    if (!point) continue;
    if (fstype === "cgroup2") v2 ??= point;
    if (fstype !== "cgroup") continue;
    for (const opt of (superOpts ?? "").split(",")) {
      if ((V1_CONTROLLERS as readonly string[]).includes(opt)) v1[opt] ??= point;
    }
  }
  if (v1.memory || v1.cpu) return { version: 1, roots: v1 };
  if (v2) return { version: 2, roots: { "": v2 } };
  throw new Error("no cgroup hierarchy is mounted (/proc/self/mountinfo)");
}

/** A container's cgroup: its directory in each hierarchy, and which of those we made. */
export interface HostCgroupDirs {
  version: 1 | 2;
  /** controller (v1) or "" (v2) -> directory. */
  dirs: Record<string, string>;
  /** Directories made for it, parents before children: removed children first. */
  created: string[];
}

/**
 * Where `cgroupsPath` is in each hierarchy: an absolute path from the hierarchy's root, a
 * relative one from this process's own cgroup there (as runc reads them).
 */
export function resolveCgroupDirs(cgroupsPath: string, mounts: CgroupMounts): Record<string, string> {
  const own = ownCgroups();
  const dirs: Record<string, string> = {};
  if (!cgroupsPath.startsWith("/") && mounts.version === 2)
    throw new Error(
      `cgroupsPath ${JSON.stringify(cgroupsPath)}: a relative path on cgroup v2 would be below the runtime's own cgroup, which holds processes (give an absolute one)`,
    );
  for (const [controller, root] of Object.entries(mounts.roots)) {
    const base = cgroupsPath.startsWith("/") ? "/" : (own[controller] ?? "/");
    // Normalised from "/" as runc does: ".." cannot climb out of the hierarchy.
    dirs[controller] = join(root, posix.normalize(`/${base}/${cgroupsPath}`));
  }
  return dirs;
}

function read(file: string): string {
  return readFileSync(file, "utf8").trim();
}

/** Writes one value to a cgroup file; the error names the file and the value. */
export function writeCgroupFile(dir: string, file: string, value: string): void {
  try {
    writeFileSync(join(dir, file), value);
  } catch (err) {
    throw new Error(`cannot write ${JSON.stringify(value)} to ${join(dir, file)}: ${(err as Error).message}`);
  }
}

function exists(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** The directories from below the hierarchy's root down to `dir`, in order. */
function chain(root: string, dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; d.length > root.length; d = dirname(d)) out.unshift(d);
  return out;
}

/**
 * Makes the cgroup `cgroupsPath` in every hierarchy. A v1 cpuset on the way (made here, or
 * made by another create a moment ago and not filled in yet) takes its parent's CPUs and
 * memory nodes when it has none (a new one has none, and no process could join it); in v2
 * the controllers are enabled all the way down. On failure, what was made is removed.
 */
export function makeCgroup(cgroupsPath: string, mounts = cgroupMounts()): HostCgroupDirs {
  const dirs = resolveCgroupDirs(cgroupsPath, mounts);
  const made: HostCgroupDirs = { version: mounts.version, dirs, created: [] };
  try {
    for (const [controller, dir] of Object.entries(dirs)) {
      const root = mounts.roots[controller] as string;
      for (const d of chain(root, dir)) {
        if (mounts.version === 2) enableV2Controllers(dirname(d));
        if (!exists(d)) {
          try {
            mkdirSync(d);
            made.created.push(d);
          } catch (err) {
            // Made meanwhile by another container's create (a shared parent): not ours.
            if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
          }
        }
        if (controller === "cpuset") {
          for (const f of ["cpuset.cpus", "cpuset.mems"])
            if (!read(join(d, f))) writeCgroupFile(d, f, read(join(dirname(d), f)));
        }
      }
    }
    return made;
  } catch (err) {
    removeCgroup(made);
    throw err;
  }
}

/** Enables in `dir` the v2 controllers it offers, for its children. */
function enableV2Controllers(dir: string): void {
  const offered = read(join(dir, "cgroup.controllers")).split(" ");
  const wanted = V2_CONTROLLERS.filter((c) => offered.includes(c));
  if (wanted.length) writeCgroupFile(dir, "cgroup.subtree_control", wanted.map((c) => `+${c}`).join(" "));
}

/** Moves `pid` (0: this process) into the cgroup, in every hierarchy. */
export function joinCgroup(cg: Pick<HostCgroupDirs, "dirs">, pid = 0): void {
  for (const dir of new Set(Object.values(cg.dirs))) writeCgroupFile(dir, "cgroup.procs", String(pid));
}

/** The pids in the cgroup (its memory hierarchy's, or v2's). */
export function cgroupPids(cg: Pick<HostCgroupDirs, "dirs">): number[] {
  const dir = cg.dirs.memory ?? cg.dirs[""] ?? Object.values(cg.dirs)[0];
  if (!dir) return [];
  try {
    return read(join(dir, "cgroup.procs")).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Removes the directories the container's cgroup was given, children first: its own (the
 * deepest in each hierarchy) must go, and one still holding a process cannot (EBUSY); a
 * parent made for it stays while it holds other containers' cgroups. Ones already gone are
 * fine. With `busyOk`, returns its own directories that were busy instead of throwing.
 */
export function removeCgroup(cg: Pick<HostCgroupDirs, "created" | "dirs">, busyOk = false): string[] {
  const own = new Set(Object.values(cg.dirs));
  const failed: string[] = [];
  const busy: string[] = [];
  for (const d of [...cg.created].reverse()) {
    try {
      rmdirSync(d);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || !own.has(d)) continue;
      if (code === "EBUSY" && busyOk) busy.push(d);
      else failed.push(`${d} (${code})`);
    }
  }
  if (failed.length) throw new Error(`cannot remove the host cgroup ${failed.join(", ")}`);
  return busy;
}

/**
 * removeCgroup once the processes just killed have left it: a killed process stays a
 * member until its exit is complete (a QEMU frees its guest's memory first), which cgroup
 * v1 does not announce; so EBUSY is retried for a bounded time, then the parents go.
 */
export async function removeCgroupWhenEmpty(
  cg: Pick<HostCgroupDirs, "created" | "dirs">,
  timeoutMs = 5_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (let busy = removeCgroup(cg, true); busy.length; busy = removeCgroup(cg, true)) {
    if (Date.now() > until) {
      removeCgroup(cg);
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Limits of a cgroup, in runtime-spec units; a field left out is not written. */
export interface CgroupLimits {
  /** Bytes; null: no limit. */
  memory?: number | null;
  /** CFS quota and period, µs; quota null: no limit. */
  cpuQuota?: number | null;
  cpuPeriod?: number;
  /** v1 cpu.shares (2-262144); v2 takes it as a cpu.weight, converted as runc does. */
  cpuShares?: number;
  cpus?: string;
  mems?: string;
}

/** runc's conversion of cpu.shares to cgroup v2's cpu.weight (1-10000). */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** Writes `limits` to the cgroup's files, in v1's or v2's names. */
export function setCgroupLimits(cg: Pick<HostCgroupDirs, "version" | "dirs">, limits: CgroupLimits): void {
  const at = (controller: string) => (cg.version === 2 ? cg.dirs[""] : cg.dirs[controller]);
  const write = (controller: string, file: string, value: string) => {
    const dir = at(controller);
    if (!dir) throw new Error(`no ${controller} cgroup hierarchy is mounted (needed for ${file})`);
    writeCgroupFile(dir, file, value);
  };
  const { memory, cpuQuota, cpuPeriod, cpuShares, cpus, mems } = limits;
  if (cg.version === 1) {
    if (cpus !== undefined) write("cpuset", "cpuset.cpus", cpus);
    if (mems !== undefined) write("cpuset", "cpuset.mems", mems);
    if (memory !== undefined)
      write("memory", "memory.limit_in_bytes", memory === null ? "-1" : String(memory));
    if (cpuPeriod !== undefined) write("cpu", "cpu.cfs_period_us", String(cpuPeriod));
    if (cpuQuota !== undefined) write("cpu", "cpu.cfs_quota_us", cpuQuota === null ? "-1" : String(cpuQuota));
    if (cpuShares !== undefined) write("cpu", "cpu.shares", String(cpuShares));
    return;
  }
  if (cpus !== undefined) write("cpuset", "cpuset.cpus", cpus);
  if (mems !== undefined) write("cpuset", "cpuset.mems", mems);
  if (memory !== undefined) write("memory", "memory.max", memory === null ? "max" : String(memory));
  if (cpuQuota !== undefined || cpuPeriod !== undefined) {
    const [q, p] = read(join(at("cpu") as string, "cpu.max")).split(" ");
    const quota = cpuQuota === undefined ? q : cpuQuota === null ? "max" : String(cpuQuota);
    write("cpu", "cpu.max", `${quota} ${cpuPeriod ?? p}`);
  }
  if (cpuShares !== undefined) write("cpu", "cpu.weight", String(sharesToWeight(cpuShares)));
}
