/**
 * The container's cgroup (v2) in the guest, read and signalled directly: each of these
 * would otherwise start crun (~100 ms under TCG).
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * `kill --all`: every process of the container's cgroup and of the cgroups below it.
 * SIGKILL through cgroup.kill, which also takes processes forked meanwhile.
 */
export function signalCgroup(dir: string, signal: number): void {
  if (signal === SIGKILL) {
    try {
      writeFileSync(join(dir, "cgroup.kill"), "1");
      return;
    } catch {
      // A kernel without cgroup.kill: one process at a time.
    }
  }
  for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
    try {
      process.kill(Number(pid), signal);
    } catch {
      // Gone meanwhile.
    }
  }
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) signalCgroup(join(dir, entry.name), signal);
  }
}

const SIGKILL = 9;

function readNum(file: string): number | undefined {
  try {
    const v = readFileSync(file, "utf8").trim();
    return v === "max" ? undefined : Number(v);
  } catch {
    return undefined;
  }
}

function keyed(file: string): Record<string, number> {
  try {
    return Object.fromEntries(
      readFileSync(file, "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split(" "))
        .map(([k, v]) => [k, Number(v)]),
    );
  } catch {
    return {};
  }
}

/** runc's stats shape (types.Stats) from the container's cgroup v2 files. */
export function cgroupStats(dir: string): Record<string, unknown> {
  const cpu = keyed(join(dir, "cpu.stat"));
  const mem = keyed(join(dir, "memory.stat"));
  return {
    cpu: {
      usage: {
        total: (cpu.usage_usec ?? 0) * 1000,
        kernel: (cpu.system_usec ?? 0) * 1000,
        user: (cpu.user_usec ?? 0) * 1000,
      },
      throttling: {
        periods: cpu.nr_periods ?? 0,
        throttledPeriods: cpu.nr_throttled ?? 0,
        throttledTime: (cpu.throttled_usec ?? 0) * 1000,
      },
    },
    memory: {
      usage: {
        usage: readNum(join(dir, "memory.current")) ?? 0,
        limit: readNum(join(dir, "memory.max")) ?? 0,
      },
      swap: {
        usage: readNum(join(dir, "memory.swap.current")) ?? 0,
        limit: readNum(join(dir, "memory.swap.max")) ?? 0,
      },
      cache: mem.file ?? 0,
      raw: mem,
    },
    pids: { current: readNum(join(dir, "pids.current")) ?? 0, limit: readNum(join(dir, "pids.max")) ?? 0 },
  };
}
