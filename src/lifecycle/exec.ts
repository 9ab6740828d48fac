/**
 * exec: a new process in the running container, in the guest (same rootfs, namespaces and
 * cgroup, through `crun exec`). Like create, it starts a stand-in that holds the process's
 * stdio and exits with its status; without -d this call waits and exits with it too.
 * The runtime's own errors exit 255 (runc's convention), the process's status otherwise.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type OciConfig, Process } from "../config/oci-schema.ts";
import { validate } from "../config/validate.ts";
import { EXEC_FAILED, RuntimeError } from "../errors.ts";
import { VM_FILES } from "../hypervisor/launcher.ts";
import { forgetExec } from "../standin/exec.ts";
import type { ExecLaunch } from "../standin/launch.ts";
import { assertCan } from "../state/transitions.ts";
import { readFileNamed, writeFileNamed } from "../sys/files.ts";
import type { RuntimeContext } from "./context.ts";
import { checkPidFileDir, refusePreservedFds, writePidFile } from "./create.ts";
import { processOomScoreAdj } from "./guest-config.ts";
import { liveStatus } from "./query.ts";
import { savedConfig } from "./saved-config.ts";
import { startStandin } from "./spawn-standin.ts";
import { callerTerminal } from "./terminal.ts";

/** What exec is asked: runc's exec flags, by name. */
export interface ExecRequest {
  process?: string;
  tty?: boolean;
  consoleSocket?: string;
  detach?: boolean;
  pidFile?: string;
  env?: string[];
  cwd?: string;
  user?: string;
  additionalGids?: string[];
  cap?: string[];
  noNewPrivs?: boolean;
  preserveFds?: number;
}

const EXEC_READY_MS = 60_000;

type ExecProcess = OciConfig["process"] & object;

function parseUser(user: string): { uid: number; gid?: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m)
    throw new RuntimeError(`--user: expected UID[:GID] (numbers), got ${JSON.stringify(user)}`, EXEC_FAILED);
  return { uid: Number(m[1]), gid: m[2] === undefined ? undefined : Number(m[2]) };
}

/** The process to run: --process FILE, or the container's process with runc's overrides. */
export function execProcessSpec(base: OciConfig, command: string[], flags: ExecRequest): ExecProcess {
  if (flags.process) {
    const file = flags.process === "-" ? "/dev/stdin" : flags.process;
    const text = readFileNamed(file, "the process file", flags.process);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new RuntimeError(`${flags.process}: invalid JSON: ${(err as Error).message}`, EXEC_FAILED);
    }
    return validate(Process, json, flags.process);
  }
  if (command.length === 0) throw new RuntimeError("exec: no command given (ARGS or --process)", EXEC_FAILED);
  const p = structuredClone(base.process) as ExecProcess | undefined;
  if (!p) throw new RuntimeError("config.json has no process to base exec on: use --process", EXEC_FAILED);
  p.args = command;
  p.terminal = flags.tty ?? false;
  if (flags.env) p.env = [...(p.env ?? []), ...flags.env];
  if (flags.cwd) p.cwd = flags.cwd;
  if (flags.user) {
    const u = parseUser(flags.user);
    p.user = { ...p.user, uid: u.uid, gid: u.gid ?? p.user.gid };
  }
  if (flags.additionalGids) p.user = { ...p.user, additionalGids: flags.additionalGids.map(Number) };
  if (flags.cap?.length) {
    const caps = (p.capabilities ?? {}) as Record<string, string[]>;
    for (const set of ["bounding", "effective", "permitted", "ambient", "inheritable"]) {
      caps[set] = [...new Set([...(caps[set] ?? []), ...flags.cap])];
    }
    p.capabilities = caps;
  }
  // commander's --no-new-privs sets newPrivs=false.
  if ((flags as { newPrivs?: boolean }).newPrivs === false || flags.noNewPrivs) p.noNewPrivileges = true;
  return p;
}

export async function execProcess(
  ctx: RuntimeContext,
  id: string,
  command: string[],
  flags: ExecRequest,
): Promise<number> {
  try {
    return await execInner(ctx, id, command, flags);
  } catch (err) {
    if (err instanceof RuntimeError && err.exitCode !== EXEC_FAILED)
      throw new RuntimeError(err.message, EXEC_FAILED);
    throw err;
  }
}

async function execInner(
  ctx: RuntimeContext,
  id: string,
  command: string[],
  flags: ExecRequest,
): Promise<number> {
  checkPidFileDir(flags.pidFile, EXEC_FAILED);
  refusePreservedFds(flags.preserveFds);
  const f = flags as { apparmor?: string; processLabel?: string };
  ctx.noteIgnored("--apparmor", f.apparmor);
  ctx.noteIgnored("--process-label", f.processLabel);
  const s = ctx.store.read(id);
  assertCan("exec", id, liveStatus(s));
  const oci = savedConfig(ctx.store, id);
  const proc = execProcessSpec(oci, command, flags);
  (proc as Record<string, unknown>).oomScoreAdj = processOomScoreAdj(proc.oomScoreAdj);
  let terminal: ExecLaunch["terminal"];
  if (proc.terminal) {
    const console = flags.consoleSocket ? undefined : callerTerminal();
    if (!flags.consoleSocket && !console) {
      throw new RuntimeError(
        "exec with a terminal needs --console-socket (or a terminal on stdin)",
        EXEC_FAILED,
      );
    }
    terminal = { consoleSocket: flags.consoleSocket, console };
  }
  const dir = ctx.store.dir(id);
  const execId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const launch: ExecLaunch = {
    kind: "exec",
    id,
    execId,
    stateDir: dir,
    process: proc as Record<string, unknown>,
    terminal,
    detached: flags.detach === true,
    log: ctx.loggerOptions,
  };
  mkdirSync(join(dir, VM_FILES.execs), { recursive: true, mode: 0o700 });
  const launchFile = join(dir, VM_FILES.execs, `${execId}.launch.json`);
  writeFileNamed(launchFile, JSON.stringify(launch));
  const standin = await startStandin(launchFile, EXEC_READY_MS, terminal !== undefined);
  standin.release();
  if (flags.pidFile) {
    try {
      writePidFile(flags.pidFile, standin.ready.pid);
    } catch (err) {
      // The process must not run on unknown to the caller: a killed stand-in takes it down,
      // and what it recorded goes with it.
      standin.child.kill("SIGKILL");
      await standin.exited;
      forgetExec(dir, execId);
      throw err;
    }
  }
  if (flags.detach) {
    standin.child.unref();
    return 0;
  }
  return await standin.exited;
}
