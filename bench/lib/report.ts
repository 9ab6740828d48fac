/**
 * Results of bench/run.ts: figures measured run by run, ratios computed pair by pair (run i
 * of one figure over run i of another, both measured in the same round), rendered as
 * Markdown tables (min / median / max) and as JSON.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { summary } from "./stats.ts";

export type Unit = "ms" | "MiB" | "MiB/s" | "count" | "x" | "%";

export interface Sample {
  run: number;
  value: number;
}

export interface Row {
  key: string;
  section: string;
  label: string;
  unit: Unit;
  samples: Sample[];
  /** Ratios only: the figures divided. */
  of?: [string, string];
  /** A figure reached a bound, not measured to its end (density: ">= N"). */
  atLeast?: boolean;
}

export function fmtValue(v: number, unit: Unit): string {
  if (!Number.isFinite(v)) return "-";
  switch (unit) {
    case "ms":
      if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ms`;
    case "MiB":
      return `${v >= 10 ? v.toFixed(1) : v.toFixed(2)} MiB`;
    case "MiB/s":
      return `${v >= 10 ? v.toFixed(1) : v.toFixed(2)} MiB/s`;
    case "count":
      return v.toFixed(0);
    case "%":
      return `${v.toFixed(2)} %`;
    case "x":
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}×`;
  }
}

export class Results {
  readonly rows = new Map<string, Row>();
  readonly notes: string[] = [];
  /** Extra tables (Markdown) printed after a section's rows. */
  readonly extraTables = new Map<string, string[]>();
  readonly raw: Record<string, unknown> = {};

  add(section: string, key: string, label: string, unit: Unit, run: number, value: number | undefined): void {
    let r = this.rows.get(key);
    if (!r) {
      r = { key, section, label, unit, samples: [] };
      this.rows.set(key, r);
    }
    if (value !== undefined && Number.isFinite(value)) r.samples.push({ run, value });
  }

  values(key: string): number[] {
    return (this.rows.get(key)?.samples ?? []).map((s) => s.value);
  }

  /** Ratio num/den, run by run (only runs where both were measured). */
  ratio(section: string, num: string, den: string, label: string): Row | undefined {
    const a = this.rows.get(num);
    const b = this.rows.get(den);
    if (!a || !b) return undefined;
    const key = `${num}/${den}`;
    const row: Row = { key, section, label, unit: "x", samples: [], of: [num, den] };
    for (const s of a.samples) {
      const d = b.samples.find((t) => t.run === s.run);
      if (d && d.value > 0) row.samples.push({ run: s.run, value: s.value / d.value });
    }
    if (!row.samples.length) return undefined;
    this.rows.set(key, row);
    return row;
  }

  /** Puts a section's rows in the order of `rank` (stable). */
  reorder(section: string, rank: (r: Row) => number): void {
    const mine = [...this.rows.values()].filter((r) => r.section === section);
    for (const r of mine.sort((x, y) => rank(x) - rank(y))) {
      this.rows.delete(r.key);
      this.rows.set(r.key, r);
    }
  }

  markdown(sections: { name: string; title: string }[]): string {
    const out: string[] = [];
    for (const { name, title } of sections) {
      const rows = [...this.rows.values()].filter((r) => r.section === name);
      if (!rows.length && !this.extraTables.has(name)) continue;
      out.push(`### ${title}`, "");
      if (rows.length) {
        const cells = rows.map((r) => {
          const s = summary(r.samples.map((x) => x.value));
          const label = r.of ? `  ratio ${r.label}` : r.label;
          const pre = r.atLeast ? "≥ " : "";
          return [
            label,
            pre + fmtValue(s.min, r.unit),
            pre + fmtValue(s.median, r.unit),
            pre + fmtValue(s.max, r.unit),
            String(r.samples.length),
          ];
        });
        out.push(...mdTable(["figure", "min", "median", "max", "n"], cells), "");
      }
      for (const t of this.extraTables.get(name) ?? []) out.push(t, "");
    }
    return out.join("\n");
  }

  json(): Record<string, unknown> {
    return Object.fromEntries(
      [...this.rows.values()].map((r) => [
        r.key,
        {
          section: r.section,
          label: r.label,
          unit: r.unit,
          ...(r.of ? { ratioOf: r.of } : {}),
          ...(r.atLeast ? { atLeast: true } : {}),
          ...summary(r.samples.map((s) => s.value)),
          samples: r.samples,
        },
      ]),
    );
  }
}

/** A Markdown table whose columns are padded (readable as text too). */
export function mdTable(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${"-".repeat(w + 2)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(head), rule, ...rows.map(line)];
}

/** bench/results/KIND-<UTC date and time>.json, the directory made if needed. */
export function resultFile(kind: string, started: Date): string {
  const dir = join(import.meta.dir, "..", "results");
  mkdirSync(dir, { recursive: true });
  return join(dir, `${kind}-${started.toISOString().slice(0, 19).replace(/:/g, "")}.json`);
}
