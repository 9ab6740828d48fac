/** Runs Debian's crun in the guest: it applies the OCI process settings, not our code. */
import { existsSync, readFileSync } from "node:fs";
import type { Subprocess } from "bun";
import type { Reaper } from "./init.ts";

export const CRUN = "/usr/bin/crun";

export type StdioSpec = "pipe" | "ignore" | number;

/**
 * crun and what it starts would inherit the agent's oom_score_adj of -1000 (never killed,
 * not even by a container's memory cgroup), and crun applies a process's `oomScoreAdj` only
 * when it is not 0: crun is started at the default 0 instead (busybox sh lowers it, execs).
 */
const OOM_DEFAULT = ["/bin/sh", "-c", 'echo 0 >/proc/self/oom_score_adj && exec "$0" "$@"'];

/**
 * Starts `crun --log=file:LOG ARGS...`. crun's own messages go to LOG, never to the
 * container's stdio (create and exec hand those pipes to the process they start).
 */
export function spawnCrun(
  reaper: Reaper,
  log: string,
  args: string[],
  stdio: [StdioSpec, StdioSpec, StdioSpec] = ["ignore", "ignore", "ignore"],
): Subprocess<StdioSpec, StdioSpec, StdioSpec> {
  // Only create and exec start processes; the other calls need no extra exec of sh.
  const wrap = args[0] === "create" || args[0] === "exec" ? OOM_DEFAULT : [];
  return spawnReaped(reaper, [...wrap, CRUN, `--log=file:${log}`, "--log-format=json", ...args], stdio);
}

/**
 * A program of the guest image (crun, criu, insmod), reaped by Bun rather than by the
 * agent's reaper (which leaves its pid alone meanwhile), with the image's PATH.
 */
export function spawnReaped<S extends StdioSpec | "pipe">(
  reaper: Reaper,
  argv: string[],
  stdio: S[],
): Subprocess<StdioSpec, StdioSpec, StdioSpec> {
  const proc = Bun.spawn(argv, { stdio: stdio as never, env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
  reaper.ownedByBun(proc.pid);
  void proc.exited.then(() => reaper.releasedByBun(proc.pid));
  return proc as unknown as Subprocess<StdioSpec, StdioSpec, StdioSpec>;
}

/** Waits for a crun call; a failure throws crun's last logged error. */
export async function crunDone(proc: Subprocess, log: string, what: string): Promise<void> {
  const code = await proc.exited;
  if (code !== 0) throw new Error(`crun ${what}: ${lastError(log) ?? `exit status ${code}`}`);
}

export async function crun(reaper: Reaper, log: string, args: string[]): Promise<void> {
  await crunDone(spawnCrun(reaper, log, args), log, args[0] ?? "");
}

/** crun with its stdout collected (ps). */
export async function crunOutput(reaper: Reaper, log: string, args: string[]): Promise<string> {
  const proc = spawnCrun(reaper, log, args, ["ignore", "pipe", "ignore"]);
  const out = await new Response(proc.stdout as ReadableStream).text();
  await crunDone(proc, log, args[0] ?? "");
  return out;
}

function lastError(log: string): string | undefined {
  if (!existsSync(log)) return undefined;
  for (const line of readFileSync(log, "utf8").trim().split("\n").reverse()) {
    try {
      const j = JSON.parse(line) as { level?: string; msg?: string };
      if (j.level === "error" && j.msg) return j.msg;
    } catch {
      if (line.trim()) return line.trim();
    }
  }
  return undefined;
}
