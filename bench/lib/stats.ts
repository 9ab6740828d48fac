/** Figures (min / median / max over runs) and the plain table bench/guest.ts prints. */

export interface Figure {
  key: string;
  label: string;
  unit: "ms" | "MiB" | "count";
  values: number[];
}

export function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { min: s[0] ?? Number.NaN, median, max: s[s.length - 1] ?? Number.NaN };
}

export function median(values: number[]): number {
  return summary(values).median;
}

export function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return "-";
  return unit === "MiB" ? v.toFixed(1) : v.toFixed(0);
}

/** Columns padded to their widest cell; the first left-aligned, the others right-aligned. */
export function aligned(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)));
  return [line(head), widths.map((w) => "-".repeat(w)), ...rows.map(line)].map((r) => r.join("  "));
}

export function table(figures: Figure[], runs: number): string {
  const rows = figures.map((f) => {
    const s = summary(f.values);
    return [
      f.label,
      fmt(s.min, f.unit),
      fmt(s.median, f.unit),
      fmt(s.max, f.unit),
      f.unit,
      `${f.values.length}/${runs}`,
    ];
  });
  return aligned(["figure", "min", "median", "max", "unit", "n"], rows).join("\n");
}
