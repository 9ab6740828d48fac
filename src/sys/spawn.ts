/**
 * Starting a program that must die with us (QEMU, whose parent is the container's
 * stand-in), in a session of its own so that it does not get the signals of our terminal
 * or process group.
 *
 * Bun has no pre-exec hook. The child is util-linux's setpriv (in every Debian system),
 * which sets PR_SET_PDEATHSIG(SIGKILL) and narrows the capability sets, then a shell that
 * checks that its parent is still us and execs the program in place: same pid, so the pid
 * we get back is the program's. The new session is the spawn's own `detached` (setsid).
 * This replaced a re-exec of this 112 MB executable in a hidden role, which cost a Bun
 * start-up (tens of ms under load) per VM.
 *
 * PR_SET_PDEATHSIG fires when the THREAD that forked the child exits, not the process.
 * Bun 1.4.5 forks (vfork + exec) from the JS thread, i.e. the main thread for code outside
 * Workers, which lives as long as the process (checked by tests/unit/sys-spawn.test.ts).
 * Do not call spawnWithParentDeath from a Worker: the program would die with the Worker.
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { constants as osConstants } from "node:os";
import { libc, sysError } from "./libc.ts";

const SETPRIV = "/usr/bin/setpriv";
/**
 * Run by /bin/sh between setpriv and the program: $1 is the pid our parent must be. If we
 * died between the fork and setpriv's prctl, nothing will ever signal the program: it is
 * then not started. Bun's spawn gives the child default signal dispositions, and fds
 * beyond 2 in `stdio` reach it as given (setpriv and sh are not Bun, which would mark
 * them close-on-exec).
 */
export const PARENT_GUARD =
  '[ "$PPID" = "$1" ] || { echo "cc-oci-runtime: $2: parent $1 exited before the program started" >&2; exit 127; }; shift; exec "$@"';

export interface SpawnOptions {
  cwd?: string;
  /** Node's stdio: for fds 0, 1, 2 (and more) "ignore", "inherit", "pipe" or an open fd. Default: all "ignore". */
  stdio?: StdioOptions;
  /** The program's environment. Default: ours. */
  env?: Record<string, string | undefined>;
  /**
   * The only capabilities the program may have (names as in linux/capability.h, CAP_CHOWN):
   * all others leave the bounding set, and the inheritable and ambient sets are emptied,
   * before execve, so that not even a root program gets them back.
   * Default: the caller's.
   */
  keepCapabilities?: string[];
}

export interface SpawnedProcess {
  /** The program's pid (setpriv and the guard shell become the program by execve). */
  pid: number;
  /**
   * Exit status, or 128+N after a death by signal N; as a shell's when the program could not
   * be run: 127 not found, 126 not executable (with a line on its stderr).
   */
  exited: Promise<number>;
  child: ChildProcess;
}

/** fcntl's F_DUPFD_CLOEXEC: a copy of the fd at the lowest free number >= the argument. */
const F_DUPFD_CLOEXEC = 1030;

/**
 * The stdio array with every fd given moved above all the fds the child gets (copies, closed
 * by release() once it is spawned), and holes filled with "ignore". Bun's spawn dup2()s them
 * into place in index order without first moving them out of the way: an fd 5 meant for the
 * child's fd 8 would be overwritten by whatever goes to 5 before it is copied to 8.
 */
function safeStdio(given: StdioOptions | undefined): { stdio: StdioOptions; release: () => void } {
  if (!Array.isArray(given)) return { stdio: given ?? "ignore", release: () => {} };
  const copies: number[] = [];
  const release = () => {
    for (const fd of copies) libc().close(fd);
  };
  try {
    const stdio = Array.from(given, (v) => {
      if (typeof v !== "number") return v ?? "ignore";
      const copy = libc().fcntl(v, F_DUPFD_CLOEXEC, BigInt(given.length));
      if (copy < 0) throw sysError("fcntl(F_DUPFD_CLOEXEC)", `fd ${v}`);
      copies.push(copy);
      return copy;
    });
    return { stdio, release };
  } catch (err) {
    release();
    throw err;
  }
}

/** setpriv's arguments that leave the program `keep` only (setpriv names them without CAP_). */
export function capabilityArgs(keep: string[] | undefined): string[] {
  if (!keep) return [];
  const names = keep.map((c) => `+${c.toLowerCase().replace(/^cap_/, "")}`);
  return ["--bounding-set", ["-all", ...names].join(","), "--inh-caps", "-all", "--ambient-caps", "-all"];
}

/**
 * Starts argv (argv[0] a path, or a name looked up in PATH) so that it gets SIGKILL when
 * this process dies and is the leader of a new session. Throws if the child cannot even be
 * created.
 */
export function spawnWithParentDeath(argv: string[], opts: SpawnOptions = {}): SpawnedProcess {
  if (argv.length === 0 || !argv[0]) throw new Error("spawnWithParentDeath: empty argv");
  const args = [
    "--pdeathsig",
    "KILL",
    ...capabilityArgs(opts.keepCapabilities),
    "--",
    "/bin/sh",
    "-c",
    PARENT_GUARD,
    "sh",
    String(process.pid),
    ...argv,
  ];
  const { stdio, release } = safeStdio(opts.stdio);
  let child: ChildProcess;
  try {
    child = spawn(SETPRIV, args, { cwd: opts.cwd, stdio, env: opts.env ?? process.env, detached: true });
  } finally {
    release();
  }
  if (child.pid === undefined) throw new Error(`cannot start ${argv[0]}`);
  const exited = new Promise<number>((resolve) => {
    child.on("error", () => resolve(127));
    child.on("exit", (code, signal) => {
      resolve(code ?? 128 + ((signal && osConstants.signals[signal]) || 0));
    });
  });
  return { pid: child.pid, exited, child };
}
