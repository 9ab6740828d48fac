/**
 * checkpoint and restore (runc's commands): CRIU in the container's guest dumps its process
 * tree into --image-path on the host (through the VM share), and restores it into a new VM
 * (agent/checkpoint.ts, standin/checkpoint.ts). Without --leave-running the checkpointed
 * container stops, as runc's does; its state stays until `delete` (runc removes it: the
 * managers delete it themselves, and a stopped state answers them as they expect).
 */

import { existsSync, mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { WRITABLE_LAYER_ANNOTATION } from "../config/writable-layer.ts";
import { RuntimeError } from "../errors.ts";
import { CHECKPOINT_EXTERNALS } from "../protocol/guest-layout.ts";
import { forwardSignals } from "../standin/forward.ts";
import { assertCan } from "../state/transitions.ts";
import { isAlive } from "../sys/proc.ts";
import type { RuntimeContext } from "./context.ts";
import { checkPidFileDir, create } from "./create.ts";
import { deleteContainer } from "./delete.ts";
import { podRole } from "./pod.ts";
import { liveStatus } from "./query.ts";
import { callStandin } from "./standin-client.ts";
import { callerTerminal } from "./terminal.ts";

export interface CriuFlags {
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  extUnixSk?: boolean;
  shellJob?: boolean;
  manageCgroupsMode?: string;
  emptyNs?: string;
  autoDedup?: boolean;
  lazyPages?: boolean;
}

export interface CheckpointFlags extends CriuFlags {
  imagePath: string;
  workPath?: string;
  leaveRunning?: boolean;
  parentPath?: string;
  preDump?: boolean;
  pageServer?: string;
  statusFd?: string;
}

export interface RestoreFlags extends CriuFlags {
  bundle: string;
  imagePath: string;
  workPath?: string;
  consoleSocket?: string;
  detach?: boolean;
  pidFile?: string;
  subreaper?: boolean;
  pivot?: boolean;
}

/** Options CRIU would need features this runtime does not drive: refused, never ignored. */
function refuseUnsupported(ctx: RuntimeContext, f: CheckpointFlags | RestoreFlags): void {
  const unsupported: [string, unknown][] = [
    ["--lazy-pages", f.lazyPages],
    ["--empty-ns", f.emptyNs],
    ["--pre-dump", (f as CheckpointFlags).preDump],
    ["--parent-path", (f as CheckpointFlags).parentPath],
    ["--page-server", (f as CheckpointFlags).pageServer],
    ["--status-fd", (f as CheckpointFlags).statusFd],
  ];
  for (const [name, v] of unsupported) {
    if (v !== undefined && v !== false)
      throw new RuntimeError(`${name} is not supported by this runtime's checkpoints`);
  }
  // soft is what the guest's CRIU is given: the container's cgroup is its own in the guest.
  ctx.noteIgnored("--manage-cgroups-mode", f.manageCgroupsMode);
  ctx.noteIgnored("--auto-dedup", f.autoDedup);
  // A terminal is always dumped as external and restored on a new pty (agent/checkpoint.ts).
  ctx.noteIgnored("--shell-job", f.shellJob);
}

function criuOptions(f: CriuFlags) {
  return {
    tcpEstablished: f.tcpEstablished === true,
    fileLocks: f.fileLocks === true,
    extUnixSk: f.extUnixSk === true,
  };
}

/** A directory for CRIU (made if missing, 0700 as runc makes it), absolute. */
function criuDir(path: string, flag: string): string {
  const dir = resolve(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
  } catch (err) {
    throw new RuntimeError(`${flag} ${dir}: ${(err as Error).message}`);
  }
  return dir;
}

export async function checkpointContainer(
  ctx: RuntimeContext,
  id: string,
  flags: CheckpointFlags,
): Promise<number> {
  refuseUnsupported(ctx, flags);
  const s = ctx.store.read(id);
  assertCan("checkpoint", id, liveStatus(s));
  // One VM holds the pod: a dump of one container's tree would not bring the pod back.
  if (s.pod || podRole(id, s.annotations, `${id}'s state`).kind === "sandbox")
    throw new RuntimeError(`checkpoint of a pod's container is not supported (container "${id}" is one)`);
  // Its rootfs writes are in the VM until its init exits: a restore elsewhere would lack them.
  if (s.vm?.guestLayer)
    throw new RuntimeError(
      `checkpoint of a container with its writable layer in the guest is not supported (container "${id}": vm.json "writableLayer" or annotation "${WRITABLE_LAYER_ANNOTATION}")`,
    );
  const imagesDir = criuDir(flags.imagePath, "--image-path");
  const workDir = flags.workPath ? criuDir(flags.workPath, "--work-path") : imagesDir;
  await callStandin(ctx.store.dir(id), id, "checkpoint", {
    id,
    imagesDir,
    workDir,
    leaveRunning: flags.leaveRunning === true,
    ...criuOptions(flags),
  });
  // The dump ended the workload: the stand-in records that and winds down (its VM killed)
  // right after its answer. `checkpoint` returns once it is gone, as runc's returns with the
  // container's init dead: the manager then hears of the exit (its subreaper) at once.
  if (!flags.leaveRunning) {
    const until = Date.now() + STOP_RECORDED_MS;
    while (isAlive(s.standin) && Date.now() < until) await Bun.sleep(50);
  }
  return 0;
}

/** Bound on the stand-in's end after a dump (its drain, state write and the VM's teardown). */
const STOP_RECORDED_MS = 15_000;

export async function restoreContainer(
  ctx: RuntimeContext,
  id: string,
  flags: RestoreFlags,
): Promise<number> {
  refuseUnsupported(ctx, flags);
  ctx.noteIgnored("--no-subreaper", flags.subreaper === false);
  ctx.noteIgnored("--no-pivot", flags.pivot === false);
  const imagesDir = resolve(flags.imagePath);
  // Checked before any VM work: the error names the flag and the file.
  for (const f of ["inventory.img", CHECKPOINT_EXTERNALS]) {
    if (!existsSync(join(imagesDir, f)))
      throw new RuntimeError(`--image-path ${imagesDir}: no checkpoint there (${f} is missing)`);
  }
  const workDir = flags.workPath ? criuDir(flags.workPath, "--work-path") : imagesDir;
  checkPidFileDir(flags.pidFile);
  const detach = flags.detach === true;
  // As run's: a person at a terminal restoring a terminal container gets it on theirs.
  const console = flags.consoleSocket || detach ? undefined : callerTerminal();
  const standin = await create(
    ctx,
    id,
    {
      bundle: flags.bundle,
      consoleSocket: flags.consoleSocket,
      console,
      pidFile: flags.pidFile,
      detach,
      noTerminal: `restore needs --console-socket${detach ? "" : ", or a terminal on its stdin"}`,
    },
    detach,
    { imagesDir, workDir, ...criuOptions(flags) },
  );
  if (detach) return 0;
  // In the foreground, as runc: the workload's stdio is the caller's; its status is ours.
  standin.child.ref();
  forwardSignals(
    (signal) => void callStandin(ctx.store.dir(id), id, "signal", { id, signal }).catch(() => {}),
  );
  const status = await standin.exited;
  await deleteContainer(ctx, id, true);
  return status;
}
