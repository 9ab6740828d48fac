/** Reading host processes and memory from /proc. */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface Mem {
  rssKiB: number;
  pssKiB: number;
  /** Private_Clean + Private_Dirty: what this process alone costs (USS). */
  ussKiB: number;
  anonKiB: number;
}

export function smapsRollup(pid: number): Mem {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    if (!m) throw new Error(`/proc/${pid}/smaps_rollup: no ${name}`);
    return Number(m[1]);
  };
  return {
    rssKiB: field("Rss"),
    pssKiB: field("Pss"),
    ussKiB: field("Private_Clean") + field("Private_Dirty"),
    anonKiB: field("Anonymous"),
  };
}

export interface QemuRegions {
  guestRamKiB: number;
  tcgCodeKiB: number;
  kernelImageKiB: number;
  otherKiB: number;
  anonHugeKiB: number;
}

/**
 * QEMU's RSS by mapping (/proc/PID/smaps): the guest RAM (the anonymous mapping of exactly
 * the guest's memory size), the TCG translation buffer (the anonymous rwx mapping), the
 * guest kernel file QEMU keeps mapped for reset, and everything else.
 */
export function qemuRegions(pid: number, memoryMiB: number, kernel: string): QemuRegions {
  const r: QemuRegions = { guestRamKiB: 0, tcgCodeKiB: 0, kernelImageKiB: 0, otherKiB: 0, anonHugeKiB: 0 };
  let kind: keyof QemuRegions = "otherKiB";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const size = Number.parseInt(head[2] ?? "0", 16) - Number.parseInt(head[1] ?? "0", 16);
      const perms = head[3] ?? "";
      const path = (head[5] ?? "").trim();
      if (path === "" && size === memoryMiB * 1024 * 1024) kind = "guestRamKiB";
      else if (path === "" && perms.includes("x")) kind = "tcgCodeKiB";
      else if (path === kernel) kind = "kernelImageKiB";
      else kind = "otherKiB";
      continue;
    }
    const m = /^(Rss|AnonHugePages):\s+(\d+) kB/.exec(line);
    if (m?.[1] === "Rss") r[kind] += Number(m[2]);
    else if (m?.[1] === "AnonHugePages") r.anonHugeKiB += Number(m[2]);
  }
  return r;
}

function pids(): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return undefined; // Gone.
  }
}

function cwdOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return ""; // Not ours to read, or gone.
  }
}

/** qemu-system processes whose cwd and command line lie outside every one of `mine`. */
export function foreignQemus(...mine: string[]): number {
  let n = 0;
  for (const pid of pids()) {
    const cmd = cmdline(pid);
    if (cmd === undefined || !/^\S*qemu-system/.test(cmd.split("\0")[0] ?? "")) continue;
    const cwd = cwdOf(pid);
    if (!mine.some((d) => cmd.includes(d) || cwd.startsWith(d))) n++;
  }
  return n;
}

/** Host processes whose cwd or command line lies under `dir` (QEMU and stand-ins do). */
export function processesUnder(dir: string): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const pid of pids()) {
    if (pid === process.pid) continue;
    const raw = cmdline(pid);
    if (raw === undefined) continue;
    const cmd = raw.replaceAll("\0", " ").trim();
    if (cwdOf(pid).startsWith(dir) || cmd.includes(dir)) out.push({ pid, cmd });
  }
  return out;
}

export function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${dir}/`));
}

/** /proc/meminfo's MemAvailable, KiB. */
export function memAvailableKiB(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}

export const kib = (k: number) => k / 1024;
