/**
 * Running the managers' clients from e2e tests: every command has a time limit, its output
 * goes to files (a detached container's shim or conmon may inherit and keep a pipe open
 * for ever), and a failed check throws with everything needed to see why.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

export interface Cmd {
  argv: string[];
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** The time limit ran out and the command was killed. */
  timedOut: boolean;
}

export interface CmdOptions {
  stdin?: string;
  env?: Record<string, string | undefined>;
  /** Milliseconds; the command gets SIGKILL after it. */
  timeout?: number;
  cwd?: string;
}

let outDir = "";
let seq = 0;

/** Where command output files go (a directory of the test's workspace). */
export function setOutputDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  outDir = dir;
}

export async function cmd(argv: string[], opts: CmdOptions = {}): Promise<Cmd> {
  const dir = outDir && existsSync(outDir) ? outDir : "/tmp";
  const n = seq++;
  const out = join(dir, `.cmd-${process.pid}-${n}.out`);
  const err = join(dir, `.cmd-${process.pid}-${n}.err`);
  const started = performance.now();
  const limit = opts.timeout ?? 120_000;
  let timedOut = false;
  const child = Bun.spawn(argv, {
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: Bun.file(out),
    stderr: Bun.file(err),
    env: opts.env as Record<string, string> | undefined,
    cwd: opts.cwd,
  });
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, limit);
  const code = await child.exited;
  clearTimeout(timer);
  const read = (f: string) => (existsSync(f) ? readFileSync(f, "utf8") : "");
  const r: Cmd = {
    argv,
    code,
    stdout: read(out),
    stderr: read(err),
    ms: Math.round(performance.now() - started),
    timedOut,
  };
  rmSync(out, { force: true });
  rmSync(err, { force: true });
  return r;
}

/** A command that must work while setting up: throws with its output otherwise. */
export async function must(argv: string[], opts: CmdOptions = {}): Promise<Cmd> {
  const r = await cmd(argv, opts);
  if (r.code !== 0) throw new Error(`setup command failed:\n${describe(r)}`);
  return r;
}

export function describe(r: Cmd | undefined): string {
  if (!r) return "(the command never ran: an earlier step of its scenario threw)";
  const clip = (s: string) => (s.length > 4000 ? `${s.slice(0, 2000)}\n...\n${s.slice(-2000)}` : s);
  return [
    `$ ${r.argv.map((a) => (/[\s'"$]/.test(a) ? JSON.stringify(a) : a)).join(" ")}`,
    `exit ${r.code}${r.timedOut ? " (TIMED OUT, killed)" : ""} after ${r.ms} ms`,
    `stdout: ${JSON.stringify(clip(r.stdout))}`,
    `stderr: ${JSON.stringify(clip(r.stderr))}`,
  ].join("\n");
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined, or the time is up. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** At most `n` scenarios at once (each one boots VMs; TCG boots share 2 cores). */
export class Slots {
  private free: number;
  private waiters: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async with<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiters.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    }
  }
}

/** How many scenarios run at once: CC_E2E_JOBS, else 3. */
export function jobs(): number {
  const n = Number(process.env.CC_E2E_JOBS);
  return Number.isInteger(n) && n > 0 ? n : 3;
}

/** How many lines of `text` match `re` (anchored with ^ and $ per line). */
export function countLines(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, "gm"))?.length ?? 0;
}
