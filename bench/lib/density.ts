/**
 * Density: how many idle containers run at once before start latency doubles, per
 * cc-oci-runtime variant. Baseline: the median of 3 `run true` with none of the bench's
 * containers running. Then idle containers (`sleep`) are added one at a time; after each, a
 * short settle (during which the fleet's idle CPU is read from /proc/PID/stat) and one timed
 * `run true`; at >= 2x the baseline a second one must confirm it. The ramp stops there, at
 * --max-density containers, when MemAvailable would fall under a reserve, or when its time
 * budget is spent; then the fleet's idle CPU is read over 20 s, an `exec` goes into each
 * container (the slowest is reported), and every container is deleted. The figure is the
 * largest count at which start latency was still under twice the baseline ("≥ N" when it
 * never doubled).
 */
import { procStat } from "../../src/sys/proc.ts";
import { CLK_TCK, now } from "./clock.ts";
import type { CcContender } from "./contenders.ts";
import type { Ctx } from "./context.ts";
import { kib, memAvailableKiB, smapsRollup } from "./proc.ts";
import { mdTable } from "./report.ts";
import { median } from "./stats.ts";

const S = "density";
const BASELINE_PROBES = 3;
const SETTLE_MS = 2_000;
/** How long the full fleet's idle CPU is read over. */
const IDLE_WINDOW_MS = 20_000;
/** MemAvailable kept free: no container is added below this plus one VM's worth. */
const RESERVE_MIB = 2048;
const VM_MIB = 512;

export interface DensityOptions {
  max: number;
  budgetS: number;
}

interface Step {
  idle: number;
  runTrueMs: number;
  confirmMs?: number;
  ratio: number;
  createMs: number;
  idleCpuPct: number;
  pssMiB: number;
  memAvailableMiB: number;
}

function cpuTicks(pids: number[]): number {
  return pids.reduce((a, p) => {
    const st = procStat(p);
    return a + (st ? st.utime + st.stime : 0);
  }, 0);
}

export async function densitySection(ctx: Ctx, variants: CcContender[], opts: DensityOptions): Promise<void> {
  const res = ctx.results;
  for (const c of variants) {
    const t0 = now();
    const steps: Step[] = [];
    let stop = "";
    let doubledAt: number | undefined;
    let probes = 0;
    const idleIds: string[] = [];
    const probe = async () => {
      const id = `d-probe-${probes++}`;
      c.created.add(id);
      const r = await c.must(["run", "--bundle", ctx.bundles.tru, id]);
      c.created.delete(id);
      return r.ms;
    };
    try {
      ctx.log(`density: ${c.name}: baseline`);
      const base: number[] = [];
      for (let k = 0; k < BASELINE_PROBES; k++) base.push(await probe());
      const baseline = median(base);
      res.add(S, `density.baseline.${c.key}`, `run true, no idle container: ${c.name}`, "ms", 1, baseline);
      const pids: number[] = [];
      for (let k = 1; ; k++) {
        if (ctx.stopped()) stop = "interrupted";
        else if (k > opts.max) stop = `--max-density ${opts.max} reached`;
        else if ((now() - t0) / 1000 > opts.budgetS) stop = `time budget ${opts.budgetS} s spent`;
        else if (kib(memAvailableKiB()) < RESERVE_MIB + VM_MIB) stop = "host memory reserve reached";
        if (stop) break;
        const id = `d-idle-${k}`;
        const made = await c.createIdle(id, ctx.bundles.sleep);
        const vm = c.vmPids(id);
        pids.push(vm.qemu, vm.standin);
        const ticks0 = cpuTicks(pids);
        const w0 = now();
        await Bun.sleep(SETTLE_MS);
        const cpu = ((cpuTicks(pids) - ticks0) / CLK_TCK / ((now() - w0) / 1000)) * 100;
        const pss = pids.reduce((a, p) => a + kib(smapsRollup(p).pssKiB), 0);
        ctx.log(`density: ${c.name}: ${k} idle`);
        const ms = await probe();
        const step: Step = {
          idle: k,
          runTrueMs: ms,
          ratio: ms / baseline,
          createMs: made.createMs,
          idleCpuPct: cpu / k,
          pssMiB: pss,
          memAvailableMiB: kib(memAvailableKiB()),
        };
        if (ms >= 2 * baseline) {
          step.confirmMs = await probe();
          step.ratio = Math.min(ms, step.confirmMs) / baseline;
        }
        steps.push(step);
        idleIds.push(id);
        if (step.ratio >= 2) {
          doubledAt = k;
          stop = `start latency doubled with ${k} idle`;
          break;
        }
      }
      // The fleet at its largest: its idle CPU over a longer window, then an exec into each.
      if (idleIds.length && !ctx.stopped()) {
        const t = cpuTicks(pids);
        const w = now();
        await Bun.sleep(IDLE_WINDOW_MS);
        const pct = ((cpuTicks(pids) - t) / CLK_TCK / ((now() - w) / 1000)) * 100;
        const n = idleIds.length;
        res.add(S, `density.cpu.${c.key}`, `idle CPU per VM, ${n} idle: ${c.name}`, "%", 1, pct / n);
        let slowest = 0;
        let failed = 0;
        for (const id of idleIds) {
          const r = await c.call(["exec", id, "true"]);
          slowest = Math.max(slowest, r.ms);
          if (r.code !== 0) failed++;
        }
        res.add(S, `density.exec.${c.key}`, `slowest exec of ${n} idle: ${c.name}`, "ms", 1, slowest);
        if (failed) res.notes.push(`density, ${c.name}: ${failed} of ${n} execs failed`);
      }
    } finally {
      ctx.log(`density: ${c.name}: deleting ${c.created.size} containers`);
      await c.deleteAll(2);
    }
    const density = doubledAt !== undefined ? doubledAt - 1 : (steps[steps.length - 1]?.idle ?? 0);
    res.add(
      S,
      `density.${c.key}`,
      `idle containers before start latency doubles: ${c.name}`,
      "count",
      1,
      density,
    );
    const row = res.rows.get(`density.${c.key}`);
    if (row && doubledAt === undefined) row.atLeast = true;
    const last = steps[steps.length - 1];
    if (last) {
      res.add(
        S,
        `density.last.${c.key}`,
        `run true with ${last.idle} idle: ${c.name}`,
        "ms",
        1,
        last.runTrueMs,
      );
      res.add(
        S,
        `density.ratio.${c.key}`,
        `  / baseline, with ${last.idle} idle: ${c.name}`,
        "x",
        1,
        last.ratio,
      );
    }
    res.notes.push(`density, ${c.name}: stopped: ${stop} (${((now() - t0) / 1000).toFixed(0)} s)`);
    res.raw[`density.${c.key}`] = { steps, stop };
    const rows = steps.map((s) => [
      String(s.idle),
      `${(s.runTrueMs / 1000).toFixed(2)} s${s.confirmMs !== undefined ? `, ${(s.confirmMs / 1000).toFixed(2)} s` : ""}`,
      `${s.ratio.toFixed(2)}×`,
      `${(s.createMs / 1000).toFixed(2)} s`,
      `${s.idleCpuPct.toFixed(1)} %`,
      `${(s.pssMiB / 1024).toFixed(2)} GiB`,
      `${(s.memAvailableMiB / 1024).toFixed(1)} GiB`,
    ]);
    const head = ["idle", "run true", "/ baseline", "create", "idle CPU per VM", "PSS, all", "MemAvailable"];
    const table = [`${c.name}, density ramp:`, "", ...mdTable(head, rows)].join("\n");
    res.extraTables.set(S, [...(res.extraTables.get(S) ?? []), table]);
  }
}
