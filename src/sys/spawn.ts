/**
 * Starting a program that must die with us (QEMU, whose parent is the container's
 * stand-in), in a session of its own so that it does not get the signals of our terminal
 * or process group.
 *
 * Bun has no pre-exec hook, so the child is this executable in its hidden `__exec` role
 * (src/main.ts -> execRole below), which sets PR_SET_PDEATHSIG(SIGKILL) and a new session,
 * then execve()s the program in place: same pid, so the pid we get back is the program's.
 *
 * PR_SET_PDEATHSIG fires when the THREAD that forked the child exits, not the process.
 * Bun 1.4.5 forks (vfork + exec) from the JS thread, i.e. the main thread for code outside
 * Workers, which lives as long as the process (checked by tests/unit/sys-spawn.test.ts).
 * Do not call spawnWithParentDeath from a Worker: the program would die with the Worker.
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import {
  cstr,
  libc,
  PR_CAP_AMBIENT,
  PR_CAP_AMBIENT_CLEAR_ALL,
  PR_CAPBSET_DROP,
  PR_SET_PDEATHSIG,
  ptr,
  SIGKILL,
  sysError,
} from "./libc.ts";
import { selfArgv } from "./self.ts";

/** Tells the `__exec` child which pid its parent must be (see the race in execRole). */
const PARENT_ENV = "CC_OCI_RUNTIME_EXEC_PARENT";
/** Tells it which capabilities the program may keep (numbers, comma-separated). */
const CAPS_ENV = "CC_OCI_RUNTIME_EXEC_CAPS";
/**
 * Tells it which fds above 2 it was given for the program (comma-separated): Bun marks the
 * fds it inherits from 4 on close-on-exec when it starts, so they must be cleared again.
 */
const FDS_ENV = "CC_OCI_RUNTIME_EXEC_FDS";
const F_SETFD = 2;

export interface SpawnOptions {
  cwd?: string;
  /** Node's stdio: for fds 0, 1, 2 (and more) "ignore", "inherit", "pipe" or an open fd. Default: all "ignore". */
  stdio?: StdioOptions;
  /** The program's environment. Default: ours. */
  env?: Record<string, string | undefined>;
  /**
   * The only capabilities the program may have (numbers, linux/capability.h): all others
   * leave the bounding set, and the inheritable set is emptied, before execve, so that not
   * even a root program gets them back.
   * Default: the caller's.
   */
  keepCapabilities?: number[];
}

export interface SpawnedProcess {
  /** The program's pid (the `__exec` child becomes the program by execve). */
  pid: number;
  /** Exit status, or 128+N after a death by signal N; 127 when the program could not be run. */
  exited: Promise<number>;
  child: ChildProcess;
}

/**
 * Starts argv (argv[0] a path, or a name looked up in PATH) so that it gets SIGKILL when
 * this process dies and is the leader of a new session. Throws if the child cannot even be
 * created; a program that cannot be executed exits 127 with a line on its stderr.
 */
export function spawnWithParentDeath(argv: string[], opts: SpawnOptions = {}): SpawnedProcess {
  if (argv.length === 0 || !argv[0]) throw new Error("spawnWithParentDeath: empty argv");
  const [cmd, ...args] = selfArgv("__exec", ...argv);
  const given = Array.isArray(opts.stdio)
    ? opts.stdio.flatMap((v, fd) => (fd > 2 && v !== "ignore" && v !== undefined && v !== null ? [fd] : []))
    : [];
  const child = spawn(cmd as string, args, {
    cwd: opts.cwd,
    stdio: opts.stdio ?? "ignore",
    env: {
      ...(opts.env ?? process.env),
      [PARENT_ENV]: String(process.pid),
      ...(opts.keepCapabilities ? { [CAPS_ENV]: opts.keepCapabilities.join(",") } : {}),
      ...(given.length ? { [FDS_ENV]: given.join(",") } : {}),
    },
  });
  if (child.pid === undefined) throw new Error(`cannot start ${argv[0]}`);
  const exited = new Promise<number>((resolve) => {
    child.on("error", () => resolve(127));
    child.on("exit", (code, signal) => {
      resolve(code ?? 128 + ((signal && osConstants.signals[signal]) || 0));
    });
  });
  return { pid: child.pid, exited, child };
}

/**
 * The `__exec PROGRAM ARGS...` role. Never returns on success; on failure it prints one
 * line to stderr and returns the exit status 127.
 */
export function execRole(argv: string[]): number {
  const fail = (why: string) => {
    process.stderr.write(`cc-oci-runtime: __exec ${argv[0] ?? ""}: ${why}\n`);
    return 127;
  };
  const program = argv[0];
  if (!program) return fail("usage: __exec PROGRAM [ARGS...]");
  const c = libc();
  if (c.prctl(PR_SET_PDEATHSIG, BigInt(SIGKILL), 0n, 0n, 0n) !== 0) return fail(sysError("prctl").message);
  // The parent may have died between fork and prctl: then nothing will ever signal us.
  const parent = Number(process.env[PARENT_ENV]);
  delete process.env[PARENT_ENV];
  if (parent && c.getppid() !== parent) return fail(`parent ${parent} exited before the program started`);
  // A new session; only fails when already a process group leader, which is fine if that
  // group is already a session of its own.
  if (c.setsid() < 0 && c.getsid(0) !== c.getpid()) return fail(sysError("setsid").message);
  const keep = process.env[CAPS_ENV];
  delete process.env[CAPS_ENV];
  if (keep !== undefined) {
    const why = limitCapabilities(keep.split(",").filter(Boolean).map(Number));
    if (why) return fail(why);
  }

  for (const fd of (process.env[FDS_ENV] ?? "").split(",").filter(Boolean).map(Number)) {
    if (c.fcntl(fd, F_SETFD, 0n) !== 0) return fail(`fd ${fd}: ${sysError("fcntl(F_SETFD)").message}`);
  }
  delete process.env[FDS_ENV];
  const path = program.includes("/") ? program : Bun.which(program, { PATH: process.env.PATH ?? "" });
  if (!path) return fail("not found in PATH");
  resetIgnoredSignals();

  const alive: Buffer[] = [];
  const array = (items: string[]) => {
    const ptrs = new BigUint64Array(items.length + 1); // NULL-terminated
    items.forEach((s, i) => {
      const b = cstr(s);
      alive.push(b);
      ptrs[i] = BigInt(ptr(b));
    });
    return ptrs;
  };
  const env = Object.entries(process.env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  const argvPtrs = array(argv);
  const envPtrs = array(env);
  c.execve(cstr(path), argvPtrs, envPtrs);
  const err = sysError("execve");
  alive.length = 0; // the buffers had to live until here
  return fail(err.message);
}

/**
 * Drops every capability but `keep` from the bounding set and clears the ambient and the
 * inheritable sets: a root program's capabilities after execve are its bounding set ORed
 * with the inheritable one (no file capabilities on it: the kernel takes them all ones), a
 * non-root one's the ambient set. Returns why it failed, or undefined.
 */
function limitCapabilities(keep: number[]): string | undefined {
  const last = Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8"));
  for (let cap = 0; cap <= last; cap++) {
    if (!keep.includes(cap) && libc().prctl(PR_CAPBSET_DROP, BigInt(cap), 0n, 0n, 0n) !== 0) {
      return `dropping capability ${cap}: ${sysError("prctl").message}`;
    }
  }
  if (libc().prctl(PR_CAP_AMBIENT, BigInt(PR_CAP_AMBIENT_CLEAR_ALL), 0n, 0n, 0n) !== 0) {
    return sysError("prctl(PR_CAP_AMBIENT)").message;
  }
  return setInheritableCapabilities(0n);
}

/** capget/capset's header version: 64-bit sets, as two 32-bit words each. */
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/**
 * Replaces this thread's inheritable set with `mask` (capset(2)), keeping the others.
 * Exported for the tests, which raise one into it. Returns why it failed, or undefined.
 */
export function setInheritableCapabilities(mask: bigint): string | undefined {
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]); // pid 0: the calling thread
  const data = new Uint32Array(6); // {effective, permitted, inheritable} for bits 0-31, then 32-63
  if (libc().capget(ptr(header), ptr(data)) !== 0) return sysError("capget").message;
  data[2] = Number(mask & 0xffffffffn);
  data[5] = Number(mask >> 32n);
  if (libc().capset(ptr(header), ptr(data)) !== 0) return sysError("capset").message;
  return undefined;
}

/**
 * Ignored signals stay ignored across execve. Bun ignores SIGPIPE and SIGXFSZ: give the
 * program the default dispositions, as a shell or Node's spawn would.
 */
function resetIgnoredSignals(): void {
  const hex = /^SigIgn:\s*([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
  if (!hex) return;
  const mask = BigInt(`0x${hex}`);
  for (let sig = 1; sig <= 64; sig++) {
    if (mask & (1n << BigInt(sig - 1))) libc().signal(sig, null); // SIG_DFL
  }
}
