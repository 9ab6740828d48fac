/**
 * The two migrations of VM templating: saving a booted template guest to its snapshot file,
 * and restoring a container's VM from it. Both follow QMP's MIGRATION events (never a poll
 * to a deadline): a failed or refused migration, or a hypervisor that exits, is an error at
 * once, naming the snapshot file. QEMU runs under `-sandbox spawn=deny`, so neither
 * migration may go through `exec:`: the build's guest migrates to a unix socket this
 * process listens on and writes to the file; a clone reads the file from an fd its
 * stand-in opened for it (INCOMING_FD).
 */

import { chmodSync, createWriteStream, mkdirSync, statfsSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import type { ResolvedBundle } from "../config/resolver.ts";
import { errorMessage, RuntimeError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import { connectUnixRetry } from "../protocol/socket.ts";
import { unmountAndRemove } from "../sys/mounts.ts";
import { reachAgent, startHypervisor } from "./boot.ts";
import { planVm, socketPath, VM_FILES } from "./launcher.ts";
import { makeLayerDisk } from "./layer-disk.ts";
import { Qmp } from "./qmp.ts";

export const SNAPSHOT = "snapshot";
/**
 * The template guest's RAM: a file the template maps shared (its writes land in the file)
 * and every clone maps privately (copy-on-write: a page stays one page in the host's cache
 * for all clones until one of them writes it). The migration then carries device state
 * only (`x-ignore-shared`).
 */
export const MEMORY = "memory";
/** How a restore failure starts: create recognises it (it crosses from the stand-in as text). */
export const RESTORE_FAILED = "restoring the VM template";
const MIGRATE_MS = 60_000;
/** Where a template build receives its guest's migration stream. */
const MIGRATION_SOCKET = "migration.sock";
const MIB = 1024 * 1024;
/** Free space below which a failed snapshot write is taken to have filled its filesystem. */
const FULL_BELOW_BYTES = MIB;
const ENDED = new Set(["completed", "failed", "cancelled"]);

/**
 * A clone starts paused, waiting for its state (`-incoming defer`), with the snapshot open
 * as this fd of its own (the stand-in passes it); migrate-incoming `fd:3` then reads it.
 */
export const INCOMING_FD = 3;
export const INCOMING_ARGS = ["-incoming", "defer"];

/** QEMU's guest RAM in `file` (`shared`: the template's mapping; else a clone's, private). */
export function memoryArgs(file: string, memoryMiB: number, shared: boolean): string[] {
  if (file.includes(","))
    throw new RuntimeError(`VM template memory file ${file}: a path with ',' cannot be given to QEMU`);
  return [
    "-object",
    `memory-backend-file,id=cc-mem,size=${memoryMiB}M,mem-path=${file},share=${shared ? "on" : "off"}`,
    "-machine",
    "memory-backend=cc-mem",
  ];
}

/**
 * Runs one migration command (`migrate` out, `migrate-incoming` in) and waits for its
 * MIGRATION event to say how it ended; returns that status.
 */
export async function migration(qmp: Qmp, command: string, uri: string): Promise<string> {
  await qmp.execute("migrate-set-capabilities", {
    capabilities: [
      { capability: "events", state: true },
      { capability: "x-ignore-shared", state: true },
    ],
  });
  const ended = qmp.waitEvent(
    (ev) => ev.event === "MIGRATION" && ENDED.has(String(ev.data?.status)),
    MIGRATE_MS,
    "end of the migration",
  );
  ended.catch(() => {});
  await qmp.execute(command, { uri });
  return String((await ended).data?.status);
}

/** Builds the template of `r`'s VMs of `size` in `dir`. */
export async function buildTemplate(
  r: ResolvedBundle,
  size: { vcpus: number; memoryMiB: number },
  dir: string,
  log: Logger,
  bootTimeoutMs: number,
): Promise<void> {
  unmountAndRemove(dir);
  mkdirSync(join(dir, VM_FILES.shared), { recursive: true, mode: 0o700 });
  // The same devices as its clones, the layer's disk blank: the template's guest never uses it.
  const plan = planVm(r, dir, "template", "hub", size, join(dir, VM_FILES.layer));
  if (plan.layerDisk) makeLayerDisk(plan.layerDisk, false);
  const memory = join(dir, MEMORY);
  // The guest's RAM lands in this file as the guest touches it: a filesystem that fills up
  // under it kills QEMU (SIGBUS) at some page. Room for all of it is asked first.
  const free = freeBytes(dir);
  if (free !== undefined && free < plan.memoryMiB * MIB) {
    unmountAndRemove(dir);
    throw new RuntimeError(
      `building the VM template: no space left on device for the guest memory ${memory} (${plan.memoryMiB} MiB needed, ${Math.floor(free / MIB)} MiB free)`,
    );
  }
  plan.args.push(...memoryArgs(memory, plan.memoryMiB, true));
  const vm = startHypervisor(plan.path, plan.args, dir);
  // The same words as a container's boot errors: one boot path, one bound, one story.
  const fail = (what: string) => new RuntimeError(`building the VM template: ${what}`);
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const deadline = Date.now() + bootTimeoutMs;
    const { agent } = await reachAgent(vm, dir, deadline, bootTimeoutMs).catch((err: unknown) => {
      throw fail(errorMessage(err));
    });
    await agent.call("prepare", {});
    const qmp = await Qmp.connect(socketPath(dir, VM_FILES.qmp));
    await qmp.execute("stop");
    const snapshot = join(dir, SNAPSHOT);
    const saved = await receiveSnapshot(socketPath(dir, MIGRATION_SOCKET), snapshot);
    try {
      const writeFailed = (err: unknown) =>
        fail(vm.failure(snapshotFailure(snapshot, `write: ${errorMessage(err)}`)));
      // Whichever ends first: QEMU's migration, or our writing of what it sends.
      const status = await Promise.race([
        migration(qmp, "migrate", `unix:${socketPath(dir, MIGRATION_SOCKET)}`),
        saved.written.then(
          () => new Promise<never>(() => {}),
          (err) => Promise.reject(writeFailed(err)),
        ),
      ]);
      if (status !== "completed") throw fail(vm.failure(snapshotFailure(snapshot, status)));
      await saved.written.catch((err) => {
        throw writeFailed(err);
      });
    } finally {
      saved.close();
    }
    await qmp.execute("quit").catch(() => {});
    qmp.close();
    agent.close();
    await vm.process.exited;
    // QEMU made it with the umask's mode: the guest's RAM (its random pool among it) is ours alone.
    chmodSync(memory, 0o600);
    log.debug(`template saved: ${statSync(join(dir, SNAPSHOT)).size} bytes of device state`);
  } catch (err) {
    if (vm.alive()) process.kill(vm.pid, "SIGKILL");
    unmountAndRemove(dir);
    throw err;
  } finally {
    process.chdir(cwd);
  }
}

/**
 * Why saving to `snapshot` failed. QEMU only sees its `cat` go away; cat's own error is lost
 * (the hypervisor log is on the same full filesystem), so a filesystem left without space
 * is what says it ran out.
 */
function snapshotFailure(snapshot: string, status: string): string {
  const free = freeBytes(dirname(snapshot));
  if (free !== undefined && free < FULL_BELOW_BYTES) {
    return `no space left on device for the snapshot ${snapshot} (${Math.floor(free / MIB)} MiB free)`;
  }
  return `saving the guest to ${snapshot}: migration ${status}`;
}

/** Space this process may still write in `dir`'s filesystem (root may use the reserved blocks). */
function freeBytes(dir: string): number | undefined {
  try {
    const st = statfsSync(dir);
    return (process.getuid?.() === 0 ? st.bfree : st.bavail) * st.bsize;
  } catch {
    return undefined;
  }
}

/**
 * A listener for the one migration stream QEMU sends, written to `file`; `written` settles
 * when the stream has ended and is on disk (or rejects with the write's error).
 */
async function receiveSnapshot(path: string, file: string) {
  const server = createServer();
  const written = new Promise<void>((resolve, reject) => {
    server.once("connection", (sock) => {
      server.close();
      const out = createWriteStream(file, { mode: 0o600 });
      sock.pipe(out);
      out.once("finish", () => resolve());
      // A write that fails (a full disk) ends the stream: QEMU's migration then fails at
      // once instead of stalling on a reader that stopped.
      out.once("error", (err) => {
        sock.destroy();
        reject(err);
      });
      sock.once("error", reject);
    });
  });
  written.catch(() => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  return { written, close: () => server.close() };
}

/**
 * Loads the snapshot (open as the clone's INCOMING_FD) into the clone waiting with
 * INCOMING_ARGS; fails at once, naming `snapshot`, if QEMU refuses it or exits (`exitStatus`
 * says whether and how it did: a QEMU that dies before its QMP socket opens is not waited for).
 */
export async function restoreFromTemplate(
  qmpPath: string,
  snapshot: string,
  deadline: number,
  exitStatus: () => number | undefined,
): Promise<void> {
  const exited = () => {
    const status = exitStatus();
    return status === undefined ? "" : ` (hypervisor exited with status ${status})`;
  };
  let qmp: Qmp | undefined;
  try {
    const sock = await connectUnixRetry(qmpPath, deadline, () => exitStatus() === undefined).catch(
      (err: unknown) => {
        throw new Error(`no QMP socket: ${errorMessage(err)}`);
      },
    );
    sock.destroy();
    qmp = await Qmp.connect(qmpPath);
    const status = await migration(qmp, "migrate-incoming", `fd:${INCOMING_FD}`);
    if (status !== "completed") throw new Error(`migration ${status}`);
    // Without -S the guest runs once its state is in: cont is then a no-op.
    await qmp.execute("cont").catch(() => {});
  } catch (err) {
    throw new RuntimeError(`${RESTORE_FAILED} ${snapshot}: ${errorMessage(err)}${exited()}`);
  } finally {
    qmp?.close();
  }
}
