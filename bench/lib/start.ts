/**
 * Start latency, each round measuring every contender back to back (the order rotated
 * from round to round):
 *  - `run` of `true`, spawn to exit (run deletes the container: for every runtime);
 *  - `create` of `echo` with stdout a pipe, then `start`: spawn of create to the workload's
 *    first output byte (also create's and start's own times);
 *  - cc-oci-runtime: one more create + start, --debug, split into its phases (phases.ts);
 *  - the bare QEMU floor: spawn to the marker of its init;
 *  - the bare restore floor: spawn of a clone of a bare guest saved with its RAM in a shared
 *    file (as the runtime's templates are) to the guest's echo of a line on its console.
 * A warm-up round (not counted) comes first: page cache, and the template that
 * CC_OCI_TEMPLATE=1 may build on its first use (its time is kept in the JSON).
 */
import { now, withTimeout } from "./clock.ts";
import { CcContender, type Contender, NAMES, RATIO_PAIRS } from "./contenders.ts";
import { type Ctx, ECHO_TEXT, rotate } from "./context.ts";
import type { Floor } from "./floor.ts";
import { measurePhases, PHASES } from "./phases.ts";
import { median } from "./stats.ts";

const S = "start";

async function runTrue(c: Contender, bundle: string, id: string): Promise<number> {
  c.created.add(id);
  const r = await c.call(["run", "--bundle", bundle, id]);
  if (r.code !== 0) throw new Error(`${c.name} run true: exit ${r.code}: ${r.stderr.trim()}`);
  c.created.delete(id);
  return r.ms;
}

/** create (stdout a pipe) + start: ms to the first output byte, and create's and start's times. */
async function createToOutput(c: Contender, bundle: string, id: string) {
  c.created.add(id);
  const t0 = now();
  const child = Bun.spawn(c.argv(["create", "--bundle", bundle, id]), {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: c.env(),
  });
  let out = "";
  let first: number | undefined;
  let gotFirst: () => void = () => {};
  const firstOutput = new Promise<void>((res) => {
    gotFirst = res;
  });
  const reading = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) {
      if (first === undefined) {
        first = now();
        gotFirst();
      }
      out += dec.decode(chunk, { stream: true });
    }
  })();
  // The stand-in (or the container, for runc/crun) keeps stderr open: never wait for its end.
  let err = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stderr) err += dec.decode(chunk, { stream: true });
  })();
  const code = await withTimeout(child.exited, 120_000, `${c.name} create`);
  const createMs = now() - t0;
  if (code !== 0) throw new Error(`${c.name} create: exit ${code}: ${err.trim()}`);
  const s = await c.must(["start", id]);
  await withTimeout(firstOutput, 60_000, `${c.name}: first output of echo`);
  await withTimeout(reading, 60_000, `${c.name}: end of echo's output`);
  if (out !== `${ECHO_TEXT}\n`) throw new Error(`${c.name} echo: stdout ${JSON.stringify(out)}`);
  await c.deleteForce(id);
  return { firstMs: (first as number) - t0, createMs, startMs: s.ms };
}

export interface StartOutcome {
  /** CC_OCI_TEMPLATE=1 made start latency different (undefined: not measured). */
  templateDiffers?: boolean;
  templateSummary?: string;
}

export async function startSection(ctx: Ctx, contenders: Contender[], floor?: Floor): Promise<StartOutcome> {
  const { results: res } = ctx;
  const items: (Contender | "floor")[] = [...contenders, ...(floor ? (["floor"] as const) : [])];
  const warmup: Record<string, number> = {};
  for (let round = 0; round <= ctx.runs && !ctx.stopped(); round++) {
    ctx.log(round === 0 ? "start: warm-up round" : `start: round ${round}/${ctx.runs}`);
    for (const it of rotate(items, round)) {
      if (it === "floor") {
        const f = await (floor as Floor).boot();
        if (round === 0) warmup.floor = f.markerMs;
        res.add(S, "start.floor.marker", `${NAMES.floor}: spawn -> init's marker`, "ms", round, f.markerMs);
        res.add(S, "start.floor.exit", `${NAMES.floor}: spawn -> QEMU exit`, "ms", round, f.exitMs);
        await (floor as Floor).prepareRestore();
        const clone = await (floor as Floor).restoreClone();
        await (floor as Floor).stopClone(clone);
        res.add(
          S,
          "start.restore.echo",
          `${NAMES.restore}: spawn -> the guest's echo`,
          "ms",
          round,
          clone.ms,
        );
        continue;
      }
      const k = it.key;
      const runMs = await runTrue(it, ctx.bundles.tru, `s-true-${round}`);
      if (round === 0) {
        warmup[k] = runMs;
        continue;
      }
      res.add(S, `start.run.${k}`, `run true, end to end: ${it.name}`, "ms", round, runMs);
      const e = await createToOutput(it, ctx.bundles.echo, `s-echo-${round}`);
      res.add(S, `start.first.${k}`, `create -> first output: ${it.name}`, "ms", round, e.firstMs);
      res.add(S, `start.create.${k}`, `  create returns: ${it.name}`, "ms", round, e.createMs);
      res.add(S, `start.start.${k}`, `  start returns: ${it.name}`, "ms", round, e.startMs);
      if (it instanceof CcContender) {
        const phases = await measurePhases(it, ctx.bundles.tru, `s-phases-${round}`);
        for (const [key, label] of PHASES) {
          const ms = phases.get(key);
          if (ms !== undefined)
            res.add(S, `start.phase.${key}.${k}`, `  ${label}: ${it.name}`, "ms", round, ms);
        }
      }
    }
  }
  // The warm-up round measured the floor too: keep only rounds 1..N.
  for (const key of ["start.floor.marker", "start.floor.exit", "start.restore.echo"]) {
    const row = res.rows.get(key);
    if (row) row.samples = row.samples.filter((s) => s.run > 0);
  }
  res.raw.startWarmupMs = warmup;

  for (const m of ["run", "first"] as const) {
    for (const [a, b] of RATIO_PAIRS) {
      const key = (x: string) =>
        x === "floor" ? "start.floor.marker" : x === "restore" ? "start.restore.echo" : `start.${m}.${x}`;
      const nm = (x: string) =>
        x === "floor" ? "QEMU floor" : x === "restore" ? "restore floor" : NAMES[x as keyof typeof NAMES];
      res.ratio(S, key(a), key(b), `${nm(a)} / ${nm(b)}`);
    }
  }
  // Rows in reading order: the floor, then per figure its contenders and its ratios.
  const prefixes = [
    "start.floor",
    "start.restore",
    "start.run.",
    "start.first.",
    "start.create.",
    "start.start.",
  ];
  res.reorder(S, (r) => prefixes.findIndex((p) => r.key.startsWith(p)) * 2 + (r.of ? 1 : 0));

  const tpl = res.rows.get("start.run.cc-template/start.run.cc");
  if (!tpl) return {};
  const v = tpl.samples.map((s) => s.value);
  const med = median(v);
  // Different: the median ratio off 1 by more than 10 %, and 4 rounds in 5 on its side
  // (one slow round, e.g. a template rebuilt, does not hide a real change).
  const side = v.filter((x) => (med < 1 ? x < 1 : x > 1)).length;
  const differs = (med < 0.9 || med > 1.1) && side >= Math.ceil(0.8 * v.length);
  const txt =
    `CC_OCI_TEMPLATE=1 ${differs ? "changes" : "does not change"} start latency: run true, ` +
    `templated / plain = ${med.toFixed(2)} (${Math.min(...v).toFixed(2)}-${Math.max(...v).toFixed(2)}) ` +
    `over ${v.length} rounds; warm-up run true ${Math.round(warmup["cc-template"] ?? Number.NaN)} ms ` +
    `vs ${Math.round(warmup.cc ?? Number.NaN)} ms plain`;
  return { templateDiffers: differs, templateSummary: txt };
}
