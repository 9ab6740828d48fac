/**
 * The compact view of a bench/run.ts result, the one the README shows: medians per runtime
 * (one column each), and the ratios (median, with min-max over the rounds) of
 * cc-oci-runtime against the others.
 */
import { NAMES, RATIO_PAIRS } from "./contenders.ts";
import { fmtValue, mdTable, type Results } from "./report.ts";
import { summary } from "./stats.ts";

const COLUMNS = ["cc", "cc-template", "runc", "crun", "floor", "restore"] as const;
type Col = (typeof COLUMNS)[number];

/** Figure rows: label, and the key of each column's figure. */
function figureRows(memN: number): [string, (c: Col) => string][] {
  return [
    ["`run` of `true`, end to end", (c) => startKey(c, "run")],
    ["`create` to the workload's first output", (c) => startKey(c, "first")],
    ["`state`", (c) => `cli.state.${c}`],
    ["`list`", (c) => `cli.list.${c}`],
    ["`kill`", (c) => `cli.kill.${c}`],
    ["host PSS per idle container, 1 at once", (c) => `mem.1.${c}`],
    [`host PSS per idle container, ${memN} at once`, (c) => `mem.n.${c}`],
    ["idle containers before start latency doubles", (c) => `density.${c}`],
    ["idle CPU per VM, the ramp's fleet", (c) => `density.cpu.${c}`],
    ["slowest `exec` into the ramp's fleet", (c) => `density.exec.${c}`],
  ];
}

const PAIRS: [Col, Col][] = RATIO_PAIRS;

/** A floor's one start figure stands for both start rows. */
function startKey(c: Col, m: "run" | "first"): string {
  if (c === "floor") return "start.floor.marker";
  if (c === "restore") return "start.restore.echo";
  return `start.${m}.${c}`;
}

const SHORT: Partial<Record<Col, string>> = {
  floor: "QEMU floor",
  restore: "restore floor",
  "cc-template": "template",
  cc: "cc-oci-runtime",
};
const short = (c: Col) => SHORT[c] ?? c;

export function summaryTables(res: Results, memN: number): string {
  const cell = (key: string) => {
    const row = res.rows.get(key);
    if (!row?.samples.length) return undefined;
    const s = summary(row.samples.map((x) => x.value));
    return (row.atLeast ? "≥ " : "") + fmtValue(s.median, row.unit);
  };
  const rows = figureRows(memN);
  const cols = COLUMNS.filter((c) => rows.some(([, k]) => cell(k(c)) !== undefined));
  const figs = rows
    .map(([label, k]) => [label, ...cols.map((c) => cell(k(c)) ?? "")])
    .filter((r) => r.slice(1).some(Boolean));
  const HEAD: Partial<Record<Col, string>> = {
    floor: "bare QEMU boot to init",
    restore: "bare QEMU restore (shared-memory clone)",
  };
  const head = ["median", ...cols.map((c) => HEAD[c] ?? NAMES[c])];

  const ratio = (key: string) => {
    const row = res.rows.get(key);
    if (!row?.samples.length) return undefined;
    const s = summary(row.samples.map((x) => x.value));
    const r = (v: number) => fmtValue(v, "x").replace("×", "");
    return `${r(s.median)}× (${r(s.min)}-${r(s.max)})`;
  };
  const pairs = PAIRS.filter(([a, b]) => rows.some(([, k]) => ratio(`${k(a)}/${k(b)}`) !== undefined));
  const rrows = rows
    .map(([label, k]) => [label, ...pairs.map(([a, b]) => ratio(`${k(a)}/${k(b)}`) ?? "")])
    .filter((r) => r.slice(1).some(Boolean));
  const rhead = ["ratio, median (min-max)", ...pairs.map(([a, b]) => `${short(a)} / ${short(b)}`)];
  return [...mdTable(head, figs), "", ...mdTable(rhead, rrows)].join("\n");
}
