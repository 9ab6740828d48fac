import { readFileSync } from "node:fs";
/** A host process, with its start time so a reused pid is never mistaken for it (state/schema.ts stores it). */
export interface HostProcess {
  pid: number;
  startTime: number;
}

interface ProcStat {
  state: string;
  ppid: number;
  /** The controlling terminal's device number (0: none). */
  ttyNr: number;
  /** User and system CPU time, in clock ticks. */
  utime: number;
  stime: number;
  startTime: number;
}

/** Parses /proc/PID/stat; undefined when the process does not exist. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: split after the LAST ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    state: rest[0] ?? "?",
    ppid: Number(rest[1]),
    ttyNr: Number(rest[4]),
    utime: Number(rest[11]),
    stime: Number(rest[12]),
    startTime: Number(rest[19]),
  };
}

export function hostProcess(pid: number): HostProcess | undefined {
  const st = procStat(pid);
  return st ? { pid, startTime: st.startTime } : undefined;
}

/** True when the very process recorded (same pid AND start time) is alive and not a zombie. */
export function isAlive(p: HostProcess | undefined): boolean {
  if (!p) return false;
  const st = procStat(p.pid);
  return st !== undefined && st.startTime === p.startTime && st.state !== "Z" && st.state !== "X";
}

/** Resident and proportional set size in KiB, from /proc/PID/smaps_rollup. */
export function memoryKiB(pid: number): { rss: number; pss: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
    return { rss: field("Rss"), pss: field("Pss") };
  } catch {
    return undefined;
  }
}
