/** Starting a stand-in (the hidden `__standin` role of this executable) and hearing back from it. */
import { type ChildProcess, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { RuntimeError } from "../errors.ts";
import { READY_FD, type ReadyMessage, ReadyMessage as ReadySchema } from "../standin/launch.ts";
import { selfArgv } from "../sys/self.ts";
import { signalNumber } from "./signals.ts";

/** How long a stand-in that reported a failure gets to exit (it has already cleaned up). */
const FAILED_EXIT_WAIT_MS = 3_000;

export interface StartedStandin {
  child: ChildProcess;
  ready: Extract<ReadyMessage, { ok: true }>;
  /** The stand-in's exit status (its workload's), for `run` and `exec` in the foreground. */
  exited: Promise<number>;
  /**
   * Closes this end of the ready link. A container's stand-in takes that as "create is
   * over": if the state still says creating then, create failed or was killed.
   */
  release(): void;
}

/**
 * util-linux's unshare, for a user's container: the stand-in (and QEMU, its child) in a
 * user namespace where the user is root over its own uid and gid only, and a mount
 * namespace of that user namespace, private. There the stand-in can bind the container's
 * rootfs and volumes into the VM share (sys/mounts.ts, as root does on the host) and make
 * its network namespace and taps; the mounts go with the namespace when the stand-in and
 * QEMU have exited, so nothing is left to unmount, and nothing is ever mounted in the
 * user's own view of the state directory. unshare execs the stand-in in place (no --fork):
 * the pid stays the one create records. A user namespace cannot be made by Bun itself:
 * unshare(CLONE_NEWUSER) refuses a process with threads.
 */
const UNSHARE = [
  "/usr/bin/unshare",
  "--user",
  "--map-root-user",
  "--mount",
  "--propagation",
  "private",
  "--",
];

/**
 * The stand-in inherits fds 0-2 (the container's stdio; not with a terminal) and gets a socket as fd 3 for
 * its one ready message. It runs in its own session so that it outlives this call.
 * `onSpawned` learns its pid at once (create records it, so that `delete -f` finds it).
 */
export async function startStandin(
  launchFile: string,
  timeoutMs: number,
  terminal: boolean,
  onSpawned: (pid: number) => void = () => {},
  ownUserNamespace = false,
): Promise<StartedStandin> {
  const [cmd, ...args] = [...(ownUserNamespace ? UNSHARE : []), ...selfArgv("__standin", launchFile)];
  // With a terminal the process's stdio is the pty: the stand-in must not hold the caller's
  // stdout/stderr, which managers read to the end before they take the pty master.
  const stdio = terminal ? "ignore" : "inherit";
  const child = spawn(cmd as string, args, { detached: true, stdio: [stdio, stdio, stdio, "pipe"] });
  const exited = new Promise<number>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)));
  });
  if (child.pid) onSpawned(child.pid);
  const readyPipe = child.stdio[READY_FD] as Readable;
  const release = () => readyPipe.destroy();
  // The first line is the answer (the link may stay open after it).
  let closed = false;
  const line = await new Promise<string>((resolve) => {
    let buf = "";
    const done = () => {
      clearTimeout(timer);
      resolve(buf);
    };
    const timer = setTimeout(done, timeoutMs);
    readyPipe.setEncoding("utf8");
    readyPipe.on("data", (d: string) => {
      buf += d;
      if (buf.includes("\n")) done();
    });
    readyPipe.on("close", () => {
      closed = true;
      done();
    });
  });
  let parsed: ReturnType<typeof ReadySchema.safeParse> | undefined;
  try {
    parsed = ReadySchema.safeParse(JSON.parse(line.split("\n")[0] ?? ""));
  } catch {
    // Not JSON: no report.
  }
  if (!parsed?.success) {
    release();
    child.kill("SIGKILL");
    if (closed) {
      const status = await exited;
      throw new RuntimeError(
        `the container's stand-in exited (status ${status}) without reporting; see the log`,
      );
    }
    throw new RuntimeError(`the container's stand-in did not report within ${timeoutMs} ms`);
  }
  if (!parsed.data.ok) {
    // It exits right after telling (it has torn its VM down): wait for it, so that no
    // stand-in outlives the error nor acts after it (a retry starts another one); one that
    // does not exit in time is killed, and waited for.
    release();
    const bound = new Promise((r) => setTimeout(r, FAILED_EXIT_WAIT_MS).unref());
    if ((await Promise.race([exited.then(() => true), bound])) !== true) {
      child.kill("SIGKILL");
      await exited;
    }
    throw new RuntimeError(parsed.data.error);
  }
  return { child, ready: parsed.data, exited, release };
}
