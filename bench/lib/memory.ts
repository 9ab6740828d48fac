/**
 * Host memory per idle container (`sleep`), with 1 and with N (default 10) containers at
 * once. cc-oci-runtime: PSS of its QEMU + stand-in (/proc/PID/smaps_rollup), summed over the
 * containers and divided by their number (PSS shares the pages QEMUs or stand-ins have in
 * common between them); also the host's MemAvailable drop per container, which counts what
 * PSS does not (page tables, kernel memory). runc/crun: PSS of the container's process.
 * Each round, per contender: one container, settled and read; then N-1 more, created
 * PARALLEL at a time, settled and read; then all deleted; for cc-oci-runtime, then its VM's
 * host overhead against the budget (overhead.ts).
 */
import { CcContender, type Contender, NAMES } from "./contenders.ts";
import { type Ctx, inBatches, PARALLEL, rotate } from "./context.ts";
import type { Floor } from "./floor.ts";
import { hostOverhead } from "./overhead.ts";
import { kib, memAvailableKiB, smapsRollup } from "./proc.ts";

const S = "memory";
/** How long idle VMs are left alone before their memory is read. */
export const VM_SETTLE_MS = 3_000;
const PROCESS_SETTLE_MS = 500;

interface Reading {
  pssMiB: number;
  qemuMiB: number;
  standinMiB: number;
}

/** Total PSS of the containers' host processes. */
function read(c: Contender, fleet: Map<string, number>): Reading {
  const r: Reading = { pssMiB: 0, qemuMiB: 0, standinMiB: 0 };
  for (const [id, pid] of fleet) {
    if (c instanceof CcContender) {
      const q = kib(smapsRollup(c.vmPids(id).qemu).pssKiB);
      const s = kib(smapsRollup(pid).pssKiB);
      r.qemuMiB += q;
      r.standinMiB += s;
      r.pssMiB += q + s;
    } else {
      r.pssMiB += kib(smapsRollup(pid).pssKiB);
    }
  }
  return r;
}

export async function memorySection(
  ctx: Ctx,
  contenders: Contender[],
  count: number,
  floor?: Floor,
): Promise<void> {
  const res = ctx.results;
  const n = count;
  for (let round = 1; round <= ctx.runs && !ctx.stopped(); round++) {
    if (floor) await cloneFloor(ctx, floor, round, n);
    for (const c of rotate(contenders, round)) {
      if (ctx.stopped()) break;
      ctx.log(`memory: round ${round}/${ctx.runs}, ${c.name}, 1 then ${n} containers`);
      const settle = c.vm ? VM_SETTLE_MS : PROCESS_SETTLE_MS;
      const fleet = new Map<string, number>();
      const ids = Array.from({ length: n }, (_, j) => `m${round}-${j}`);
      const before = memAvailableKiB();
      try {
        const first = ids[0] as string;
        fleet.set(first, (await c.createIdle(first, ctx.bundles.sleep)).pid);
        await Bun.sleep(settle);
        const one = read(c, fleet);
        res.add(S, `mem.1.${c.key}`, `1 at once: ${c.name}`, "MiB", round, one.pssMiB);
        if (c.vm) {
          res.add(S, `mem.1.${c.key}.qemu`, `  of which QEMU: ${c.name}`, "MiB", round, one.qemuMiB);
          res.add(
            S,
            `mem.1.${c.key}.standin`,
            `  of which stand-in: ${c.name}`,
            "MiB",
            round,
            one.standinMiB,
          );
        }
        const pids = await inBatches(ids.slice(1), PARALLEL, async (id) => {
          const r = await c.createIdle(id, ctx.bundles.sleep);
          return [id, r.pid] as const;
        });
        for (const [id, pid] of pids) fleet.set(id, pid);
        await Bun.sleep(settle);
        const all = read(c, fleet);
        const drop = kib(before - memAvailableKiB()) / n;
        res.add(S, `mem.n.${c.key}`, `${n} at once, per container: ${c.name}`, "MiB", round, all.pssMiB / n);
        if (c.vm) {
          res.add(S, `mem.n.${c.key}.qemu`, `  of which QEMU: ${c.name}`, "MiB", round, all.qemuMiB / n);
          const sk = `mem.n.${c.key}.standin`;
          res.add(S, sk, `  of which stand-in: ${c.name}`, "MiB", round, all.standinMiB / n);
          const hk = `mem.n.${c.key}.host`;
          res.add(S, hk, `  host MemAvailable drop per container: ${c.name}`, "MiB", round, drop);
        }
      } finally {
        await c.deleteAll(PARALLEL);
      }
      if (c instanceof CcContender && !ctx.stopped()) await hostOverhead(ctx, c, round);
    }
  }
  const has = (k: string) => contenders.some((c) => c.key === k);
  const name = (k: string) =>
    contenders.find((c) => c.key === k)?.name ?? (k === "restore" ? NAMES.restore : k);
  for (const m of ["1", "n"]) {
    for (const [a, b] of [
      ["cc", "runc"],
      ["cc", "crun"],
      ["cc-template", "cc"],
      ["cc-template", "runc"],
      ["cc-template", "restore"],
    ] as const) {
      if (has(a) && (has(b) || (b === "restore" && floor)))
        res.ratio(
          S,
          `mem.${m}.${a}`,
          `mem.${m}.${b}`,
          `${m === "1" ? 1 : n} at once: ${name(a)} / ${name(b)}`,
        );
    }
  }
  for (const c of contenders)
    res.ratio(S, `mem.n.${c.key}`, `mem.1.${c.key}`, `${c.name}: per container, ${n} / 1 at once`);
  // Reading order: 1 at once (contenders, then ratios), N at once, then N / 1.
  const order = contenders.map((c) => c.key as string);
  const subs = ["", ".qemu", ".standin", ".host"];
  res.reorder(S, (r) => {
    const [num, den] = r.of ?? [r.key, ""];
    if (num.startsWith("overhead."))
      return (
        9000 +
        order.findIndex((k) => num.startsWith(`overhead.${k}.`) || num === `overhead.${k}`) * 10 +
        (num.endsWith(".peak") ? 0 : 1)
      );
    const m = num.startsWith("mem.1.") ? 0 : 2;
    if (r.of) return (den.startsWith("mem.1.") && m === 2 ? 4 : m + 1) * 1000;
    const rest = num.slice(6);
    const ci = order.findIndex((k) => rest === k || subs.some((x) => x && rest === k + x));
    const si = subs.findIndex((x) => x && rest.endsWith(x));
    return m * 1000 + ci * 10 + Math.max(0, si);
  });
}

/**
 * The clone floor: bare QEMU clones of one shared-memory snapshot (floor.ts), 1 and then
 * `n` at once, each answering on its console; their PSS per clone.
 */
async function cloneFloor(ctx: Ctx, floor: Floor, round: number, n: number): Promise<void> {
  const res = ctx.results;
  ctx.log(`memory: round ${round}/${ctx.runs}, ${NAMES.restore}, 1 then ${n} clones`);
  await floor.prepareRestore();
  const clones: Awaited<ReturnType<Floor["restoreClone"]>>[] = [];
  const pss = () => clones.reduce((a, c) => a + kib(smapsRollup(c.child.pid).pssKiB), 0);
  try {
    clones.push(await floor.restoreClone());
    await Bun.sleep(VM_SETTLE_MS);
    res.add(S, "mem.1.restore", `1 at once: ${NAMES.restore}`, "MiB", round, pss());
    while (clones.length < n) clones.push(await floor.restoreClone());
    await Bun.sleep(VM_SETTLE_MS);
    res.add(S, "mem.n.restore", `${n} at once, per clone: ${NAMES.restore}`, "MiB", round, pss() / n);
  } finally {
    for (const c of clones) await floor.stopClone(c);
  }
}
