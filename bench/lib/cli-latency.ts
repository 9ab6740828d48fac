/**
 * CLI latency: `state ID`, `list` and `kill ID SIGCONT` (harmless to `sleep`) against one
 * idle container per contender. Each round, per contender (order rotated), each command is
 * called K times; the round's figure is the median of those K calls.
 */
import { constants } from "node:os";
import type { Contender } from "./contenders.ts";
import { type Ctx, rotate } from "./context.ts";
import { median } from "./stats.ts";

const S = "cli";
const SIGCONT = String(constants.signals.SIGCONT);

export async function cliSection(ctx: Ctx, contenders: Contender[], calls: number): Promise<void> {
  const res = ctx.results;
  const id = "cli-0";
  try {
    for (const c of contenders) await c.createIdle(id, ctx.bundles.sleep);
    const commands: [string, string[]][] = [
      ["state", ["state", id]],
      ["list", ["list"]],
      ["kill", ["kill", id, SIGCONT]],
    ];
    for (let round = 1; round <= ctx.runs && !ctx.stopped(); round++) {
      ctx.log(`cli: round ${round}/${ctx.runs}`);
      for (const c of rotate(contenders, round)) {
        for (const [name, args] of commands) {
          const ms: number[] = [];
          for (let k = 0; k < calls; k++) {
            const r = await c.must(args);
            if (name === "state" && (JSON.parse(r.stdout) as { status: string }).status !== "running")
              throw new Error(`${c.name} state ${id}: not running: ${r.stdout}`);
            if (name === "list" && !r.stdout.includes(id))
              throw new Error(`${c.name} list: no ${id}: ${r.stdout}`);
            ms.push(r.ms);
          }
          const label = name === "kill" ? "kill ID SIGCONT" : name === "state" ? "state ID" : "list";
          res.add(S, `cli.${name}.${c.key}`, `${label}: ${c.name}`, "ms", round, median(ms));
        }
      }
    }
  } finally {
    for (const c of contenders) await c.deleteAll();
  }
  const has = (k: string) => contenders.some((c) => c.key === k);
  const name = (k: string) => contenders.find((c) => c.key === k)?.name ?? k;
  for (const cmd of ["state", "list", "kill"]) {
    for (const [a, b] of [
      ["cc", "runc"],
      ["cc", "crun"],
      ["cc-template", "cc"],
      ["crun", "runc"],
    ] as const) {
      if (has(a) && has(b))
        res.ratio(S, `cli.${cmd}.${a}`, `cli.${cmd}.${b}`, `${cmd}: ${name(a)} / ${name(b)}`);
    }
  }
  const cmds = ["state", "list", "kill"];
  res.reorder(S, (r) => cmds.findIndex((c) => r.key.startsWith(`cli.${c}.`)) * 2 + (r.of ? 1 : 0));
}
