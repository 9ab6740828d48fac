import { UsageError } from "../errors.ts";
import { assertCan } from "../state/transitions.ts";
import type { RuntimeContext } from "./context.ts";
import { liveStatus } from "./query.ts";
import { containerStats } from "./stats.ts";

/** Go's time.ParseDuration for the forms people use: 500ms, 5s, 1m, 1m30s. */
export function parseDuration(text: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * (unit[m[2] as string] ?? 0);
    consumed += m[0].length;
  }
  if (consumed !== text.length || total <= 0)
    throw new UsageError(`--interval: invalid duration ${JSON.stringify(text)}`);
  return total;
}

/**
 * events: with --stats one stats record; otherwise a record every interval until the
 * container stops. Each line is runc's shape: {"type":"stats","id":...,"data":{...}}.
 */
export async function containerEvents(
  ctx: RuntimeContext,
  id: string,
  interval: string,
  once: boolean,
  /** Where each record goes (one JSON line): the CLI prints it. */
  emit: (line: string) => void,
): Promise<number> {
  const every = parseDuration(interval);
  const first = ctx.store.read(id);
  assertCan("events", id, liveStatus(first));
  // OOM kills as the stand-in records them: one {"type":"oom"} record each (runc's shape).
  let kills = first.oomKills ?? 0;
  const oom = (s: { oomKills?: number } | undefined) => {
    for (; s && kills < (s.oomKills ?? 0); kills++) emit(JSON.stringify({ type: "oom", id }));
  };
  for (;;) {
    const data = await containerStats(ctx, id);
    emit(JSON.stringify({ type: "stats", id, data }));
    if (once) return 0;
    const until = Date.now() + every;
    while (Date.now() < until) {
      const s = ctx.store.tryRead(id);
      oom(s);
      if (!s || liveStatus(s) === "stopped") return 0;
      await Bun.sleep(Math.min(200, until - Date.now()));
    }
  }
}
