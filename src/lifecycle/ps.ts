import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { VM_FILES } from "../hypervisor/launcher.ts";
import { HostProcess } from "../state/schema.ts";
import { assertCan } from "../state/transitions.ts";
import { isAlive } from "../sys/proc.ts";
import type { RuntimeContext } from "./context.ts";
import { liveStatus, tabulate } from "./query.ts";
import { callStandin } from "./standin-client.ts";

/** Host pids of the container's stand-in and of its live exec stand-ins. */
export function hostPids(ctx: RuntimeContext, id: string): number[] {
  const s = ctx.store.read(id);
  const pids = s.standin && isAlive(s.standin) ? [s.standin.pid] : [];
  const dir = join(ctx.store.dir(id), VM_FILES.execs);
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".pid.json"));
  } catch {
    // No exec yet.
  }
  for (const n of names) {
    try {
      const p = HostProcess.parse(JSON.parse(readFileSync(join(dir, n), "utf8")));
      if (isAlive(p)) pids.push(p.pid);
    } catch {
      // Being written or removed right now.
    }
  }
  return pids;
}

/**
 * ps: `-f json` prints the HOST pids that stand for the container's processes (what
 * docker top and ctr task ps parse); the table lists the processes inside the guest.
 */
export async function psContainer(ctx: RuntimeContext, id: string, format: string): Promise<string> {
  if (format !== "table" && format !== "json")
    throw new UsageError(`--format: expected table or json, got ${format}`);
  const s = ctx.store.read(id);
  assertCan("ps", id, liveStatus(s));
  if (format === "json") return JSON.stringify(hostPids(ctx, id));
  const { processes } = await callStandin(ctx.store.dir(id), id, "ps", { id });
  return tabulate([
    ["PID", "USER", "TIME", "CMD"],
    ...processes.map((p) => [String(p.pid), p.user, p.time, p.cmd]),
  ]);
}
