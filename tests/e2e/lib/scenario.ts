/**
 * A scenario is one container's story (run it, exec into it, pause it, remove it...), run
 * concurrently with the others of its file within a few VM slots. Its steps are recorded,
 * not asserted, as they happen; a step that cannot go on throws, which ends the scenario and
 * is recorded too. The tests then assert the recorded steps, each failure message carrying
 * the command, its output, the scenario's error and the runtime's latest log errors.
 */
import { existsSync, readFileSync } from "node:fs";
import { type Cmd, describe, type Slots } from "./proc.ts";

export class Scenario {
  readonly steps: Record<string, Cmd | undefined> = {};
  /** Observations that are not commands (a pid, a path, a count...). */
  readonly facts: Record<string, unknown> = {};
  error: Error | undefined;
  ms = 0;
  /** Runtime log lines older than this belong to others (the default root's log is shared). */
  readonly since = new Date().toISOString();

  constructor(
    readonly name: string,
    /** The runtime's global log(s) for this manager, quoted on failure. */
    readonly logs: () => string[],
  ) {}

  /** Records a step; returns it for the scenario's own decisions. */
  async step(key: string, run: Promise<Cmd>): Promise<Cmd> {
    const r = await run;
    this.steps[key] = r;
    return r;
  }

  /** A step the rest of the scenario depends on: throws when it fails. */
  async need(key: string, run: Promise<Cmd>): Promise<Cmd> {
    const r = await this.step(key, run);
    if (r.code !== 0) throw new Error(`step "${key}" failed, the rest of "${this.name}" could not run`);
    return r;
  }

  /** The failure message for `key`, with everything that explains it. */
  explain(key: string, problem: string, stepKey = key): string {
    const parts = [`${this.name} / ${key}: ${problem}`, describe(this.steps[stepKey])];
    if (this.error) parts.push(`scenario stopped early: ${this.error.message}`);
    const facts = Object.entries(this.facts);
    if (facts.length) parts.push(`facts: ${JSON.stringify(Object.fromEntries(facts))}`);
    const log = runtimeLogTail(this.logs(), this.since);
    if (log) parts.push(`runtime log (last errors/warnings):\n${log}`);
    return parts.join("\n");
  }

  /** Asserts a recorded step's exit code and output. */
  check(key: string, want: { code?: number; stdout?: string | RegExp; stderr?: RegExp }): Cmd {
    const r = this.steps[key];
    if (!r) throw new Error(this.explain(key, "the step never ran"));
    if (want.code !== undefined && r.code !== want.code) {
      throw new Error(this.explain(key, `exit code ${r.code}, expected ${want.code}`));
    }
    const out = want.stdout;
    if (typeof out === "string" && r.stdout !== out) {
      throw new Error(
        this.explain(key, `stdout ${JSON.stringify(r.stdout)}, expected ${JSON.stringify(out)}`),
      );
    }
    if (out instanceof RegExp && !out.test(r.stdout)) {
      throw new Error(this.explain(key, `stdout does not match ${out}`));
    }
    if (want.stderr && !want.stderr.test(r.stderr)) {
      throw new Error(this.explain(key, `stderr does not match ${want.stderr}`));
    }
    return r;
  }

  /** Asserts a fact; `stepKey` names the step whose output explains it. */
  fact<T>(key: string, ok: (v: T) => boolean, expected: string, stepKey?: string): T {
    const v = this.facts[key] as T;
    if (!(key in this.facts) || !ok(v)) {
      const what = key in this.facts ? JSON.stringify(v) : "(never observed)";
      throw new Error(this.explain(key, `fact ${key} = ${what}, expected ${expected}`, stepKey));
    }
    return v;
  }
}

/** Starts `body` in a slot; the promise never rejects (the error is kept in the scenario). */
export function start(
  slots: Slots,
  name: string,
  logs: () => string[],
  body: (s: Scenario) => Promise<void>,
): Promise<Scenario> {
  const s = new Scenario(name, logs);
  return slots.with(async () => {
    const t0 = performance.now();
    try {
      await body(s);
    } catch (err) {
      s.error = err as Error;
    }
    s.ms = Math.round(performance.now() - t0);
    return s;
  });
}

/** The last error and warning lines (`<ISO time> [pid] level: msg`) written since `since`. */
function runtimeLogTail(files: string[], since: string, n = 8): string {
  const lines: string[] = [];
  for (const f of files) {
    if (!existsSync(f)) continue;
    for (const l of readFileSync(f, "utf8").split("\n")) {
      if (l.slice(0, since.length) >= since && /\] (error|warn(ing)?):/.test(l)) lines.push(l);
    }
  }
  return lines.slice(-n).join("\n");
}
