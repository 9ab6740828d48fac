/**
 * Where a start spends its time: one `create` + `start` of `true` with --debug, and the time
 * between the phase lines the runtime logs (`<id>: phase <name>`, log/logger.ts): in the
 * create call, its stand-in and the start call. Wall-clock times (the log's), ms apart.
 */
import { readFileSync, statSync } from "node:fs";
import type { CcContender } from "./contenders.ts";

/** The phases in the order they happen, each named for what ends it. */
export const PHASES: [key: string, label: string][] = [
  ["cli", "create's CLI start-up (exec to its first log line)"],
  ["standin-spawn", "create: bundle, config, template lookup"],
  ["standin-up", "stand-in start-up (exec of the binary)"],
  ["hypervisor-spawned", "stand-in: network namespace, taps, share, QEMU spawned"],
  ["restored", "QEMU start and restore from the template"],
  ["agent-ready", "agent reached (hello)"],
  ["guest-created", "guest: 9p mount, crun create"],
  ["standin-ready", "stand-in's ready message to create"],
  ["hooks-done", "create: hooks"],
  ["network-connected", "network connected"],
  ["created", "state recorded"],
  ["create-exit", "create's exit"],
  ["start-cli", "start's CLI start-up"],
  ["started", "start: crun start in the guest"],
  ["start-exit", "start's exit"],
];

export async function measurePhases(
  c: CcContender,
  bundle: string,
  id: string,
): Promise<Map<string, number>> {
  const log = c.session.rt.log;
  const from = sizeOf(log);
  c.created.add(id);
  const t0 = Date.now();
  const created = await c.call(["--debug", "create", "--bundle", bundle, id]);
  const createExit = Date.now();
  if (created.code !== 0) throw new Error(`${c.name} create: ${created.stderr.trim()}`);
  const started = await c.call(["--debug", "start", id]);
  const startExit = Date.now();
  if (started.code !== 0) throw new Error(`${c.name} start: ${started.stderr.trim()}`);
  await c.deleteForce(id);
  const at = new Map<string, number>([
    ["t0", t0],
    ["create-exit", createExit],
    ["start-exit", startExit],
  ]);
  const text = readFileSync(log, "utf8").slice(from);
  for (const line of text.split("\n")) {
    if (!line) continue;
    let rec: { msg?: string; time?: string };
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    const t = Date.parse(rec.time ?? "");
    const msg = rec.msg ?? "";
    const phase = msg.startsWith(`${id}: phase `) ? msg.slice(id.length + 8) : undefined;
    if (phase && !at.has(phase)) at.set(phase, t);
    if (msg.startsWith("create: ") && !at.has("cli")) at.set("cli", t);
    if (msg.startsWith("start: ") && !at.has("start-cli")) at.set("start-cli", t);
  }
  const out = new Map<string, number>();
  let prev = t0;
  for (const [key] of PHASES) {
    const t = at.get(key);
    if (t === undefined) continue; // (a cold start has no "restored")
    out.set(key, t - prev);
    prev = t;
  }
  return out;
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
