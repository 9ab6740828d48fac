/** What every section of bench/run.ts is handed. */
import { cpus } from "node:os";
import type { Results } from "./report.ts";

export interface Bundles {
  /** `true` */
  tru: string;
  /** `echo bench-hello` */
  echo: string;
  /** `sleep 100000`: an idle container */
  sleep: string;
}

export interface Ctx {
  results: Results;
  runs: number;
  bundles: Bundles;
  log(msg: string): void;
  /** Set by SIGINT/SIGTERM: sections stop at their next step. */
  stopped(): boolean;
}

export const ECHO_TEXT = "bench-hello";
/** Containers created at once when building a fleet (one boot takes about one core). */
export const PARALLEL = Math.max(1, cpus().length);

/** The list rotated by `n` places: each round starts with a different contender. */
export function rotate<T>(items: T[], n: number): T[] {
  if (!items.length) return items;
  const k = n % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Runs `f` on every item, `parallel` at a time. */
export async function inBatches<T, R>(items: T[], parallel: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let k = 0; k < items.length; k += parallel)
    out.push(...(await Promise.all(items.slice(k, k + parallel).map(f))));
  return out;
}
