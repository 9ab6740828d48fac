/**
 * Starting a program that must die with us: QEMU, whose parent is the container's
 * stand-in. Bun has no pre-exec hook, so the child is this executable in its hidden
 * `__exec` role, which sets PR_SET_PDEATHSIG(SIGKILL) and a new session, then execve()s
 * the program in place (same pid).
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { cstr, libc, PR_SET_PDEATHSIG, ptr, SIGKILL } from "./libc.ts";
import { selfArgv } from "./self.ts";

export interface SpawnedProcess {
  pid: number;
  /** Exit status, or 128+N for a death by signal N. */
  exited: Promise<number>;
  child: ChildProcess;
}

export function spawnWithParentDeath(
  argv: string[],
  opts: { cwd?: string; stdio?: StdioOptions; env?: Record<string, string> } = {},
): SpawnedProcess {
  const [cmd, ...args] = selfArgv("__exec", ...argv);
  const child = spawn(cmd as string, args, {
    cwd: opts.cwd,
    stdio: opts.stdio ?? "ignore",
    env: opts.env ?? process.env,
  });
  if (child.pid === undefined) throw new Error(`cannot start ${argv[0]}`);
  const exited = new Promise<number>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? 128 + (signal ? signalNum(signal) : 0)));
  });
  return { pid: child.pid, exited, child };
}

function signalNum(name: string): number {
  return (require("node:os").constants.signals as Record<string, number>)[name] ?? 0;
}

/** The `__exec PROGRAM ARGS...` role: never returns on success. */
export function execRole(argv: string[]): number {
  const program = argv[0];
  if (!program) {
    process.stderr.write("usage: __exec PROGRAM [ARGS...]\n");
    return 127;
  }
  const c = libc();
  c.prctl(PR_SET_PDEATHSIG, BigInt(SIGKILL), 0n, 0n, 0n);
  c.setsid();
  const keep: Buffer[] = [];
  const array = (items: string[]) => {
    const ptrs = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      const b = cstr(s);
      keep.push(b);
      ptrs[i] = BigInt(ptr(b));
    });
    return ptrs;
  };
  const argvPtrs = array(argv);
  const envPtrs = array(Object.entries(process.env).map(([k, v]) => `${k}=${v}`));
  c.execve(cstr(program), ptr(argvPtrs), ptr(envPtrs));
  process.stderr.write(`cc-oci-runtime: cannot execute ${program}\n`);
  return 127;
}
