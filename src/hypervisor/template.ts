/**
 * VM templating: boot one guest per configuration until its agent is ready (no container,
 * no share mounted: QEMU refuses to migrate with a 9p mount), save it with QMP `migrate`
 * to a file, and start each container's VM from that file (`-incoming defer`, then
 * `migrate-incoming`) with its own sockets, share, name and uuid. The stand-in then gives
 * the clone its own identity (random seed, clock) in the agent's hello. (template-vm.ts
 * does the two migrations.)
 *
 * A template is keyed by everything that shapes the saved guest: kernel, initrd, image,
 * hypervisor.args, the hypervisor binary (another QEMU may not load the snapshot), kernel
 * parameters, accelerator, memory, and this executable.
 *
 *   <root>/.templates/<key>/snapshot       the saved guest's device state
 *   <root>/.templates/<key>/memory         its RAM, mapped by every clone privately (sparse)
 *   <root>/.templates/<key>/template.json  its inputs (files and their identity), and the
 *                                          snapshot's and memory's size, mtime, inode, sha256
 *   <root>/.templates/<key>/.inuse         flock: shared while a create restores from it
 *   <root>/.templates/.lock                flock: one builder at a time
 *
 * One template per key. A template is removed only when nobody holds it (an exclusive
 * non-blocking lock on .inuse) and it is stale (one of its input files changed or went) or
 * damaged (its snapshot no longer matches what was recorded). A damaged snapshot is found
 * by its size, mtime and inode before every use, and by its checksum after a failed restore;
 * either way it is rebuilt. Every removal happens under the build lock, and a template is
 * discarded only if it is still the one the caller held (its snapshot's inode).
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
} from "node:fs";
import { dirname, join } from "node:path";
import type { ResolvedBundle } from "../config/resolver.ts";
import { RuntimeError } from "../errors.ts";
import type { Logger } from "../log/logger.ts";
import { openNamed, writeFileNamed } from "../sys/files.ts";
import { LOCK_EX, LOCK_UN, libc } from "../sys/libc.ts";
import { unmountAndRemove } from "../sys/mounts.ts";
import { shareSecurityModel } from "../sys/privilege.ts";
import type { VmPlan } from "./launcher.ts";
import { buildTemplate, MEMORY, SNAPSHOT } from "./template-vm.ts";

export { INCOMING_ARGS, memoryArgs, RESTORE_FAILED, restoreFromTemplate } from "./template-vm.ts";

export const TEMPLATES_DIR = ".templates";
const META = "template.json";
const IN_USE = ".inuse";
const LOCK_SH = 1;
const LOCK_NB = 4;

/** On when vm.json says `"template": true` or CC_OCI_TEMPLATE=1; CC_OCI_TEMPLATE=0 wins. */
export function templatingEnabled(r: ResolvedBundle): boolean {
  const env = process.env.CC_OCI_TEMPLATE;
  if (env === "0" || env === "1") return env === "1";
  return r.vm.vm.template === true;
}

function fileId(path: string | undefined): string {
  if (!path) return "-";
  try {
    const st = statSync(path);
    return `${path}:${st.size}:${st.mtimeMs}`;
  } catch {
    return `${path}:missing`;
  }
}

function contentId(path: string): string {
  try {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
  } catch {
    return "missing";
  }
}

interface Input {
  path: string;
  id: string;
  /** How the id is computed: file identity, or content (a text file copied between bundles). */
  by: "file" | "content";
}

interface FileMeta {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

interface Meta {
  inputs: Input[];
  snapshot: FileMeta;
  memory: FileMeta;
}

const SAVED = { snapshot: SNAPSHOT, memory: MEMORY } as const;

function inputsOf(r: ResolvedBundle, plan: VmPlan): Input[] {
  const files = [plan.kernel, plan.initrd, plan.image, plan.path, process.execPath].filter(
    (f): f is string => !!f,
  );
  return [
    ...files.map((path) => ({ path, id: fileId(path), by: "file" as const })),
    { path: r.hypervisorArgsFile, id: contentId(r.hypervisorArgsFile), by: "content" },
  ];
}

export function templateKey(r: ResolvedBundle, plan: VmPlan): string {
  const h = createHash("sha256");
  h.update(
    JSON.stringify({
      kernel: fileId(plan.kernel),
      initrd: fileId(plan.initrd),
      image: fileId(plan.image),
      hypervisorArgs: readFileSync(r.hypervisorArgsFile, "utf8"),
      hypervisor: fileId(plan.path),
      kernelParams: r.vm.vm.kernelParameters,
      extra: r.vm.vm.hypervisorParameters,
      accel: plan.accel,
      memory: plan.memoryMiB,
      vcpus: plan.vcpus,
      nics: plan.nics,
      // Only the disk changes the devices (a layer in memory is the same VM as the share's).
      layerDisk: plan.layer === "disk",
      share: shareSecurityModel(),
      runtime: fileId(process.execPath),
    }),
  );
  return h.digest("hex").slice(0, 16);
}

/** A template in use: its snapshot cannot be removed until release(). */
export interface TemplateLease {
  snapshot: string;
  /** The guest's RAM, for the clone to map (privately). */
  memory: string;
  /** The snapshot's inode when it was held: which build of the template this is. */
  ino: number;
  release(): void;
}

/** Runs `body` as the one builder (and remover) of templates under `top`. */
async function withBuildLock<T>(top: string, body: () => Promise<T> | T): Promise<T> {
  mkdirSync(top, { recursive: true, mode: 0o700 });
  const lock = openNamed(join(top, ".lock"), "a");
  try {
    if (libc().flock(lock, LOCK_EX) !== 0) throw new RuntimeError(`cannot lock ${join(top, ".lock")}`);
    return await body();
  } finally {
    libc().flock(lock, LOCK_UN);
    closeSync(lock);
  }
}

/** The snapshot for this configuration, held, and built now (under a lock) if there is none. */
export async function ensureTemplate(
  root: string,
  r: ResolvedBundle,
  plan: VmPlan,
  log: Logger,
  bootTimeoutMs: number,
): Promise<TemplateLease> {
  const top = join(root, TEMPLATES_DIR);
  const dir = join(top, templateKey(r, plan));
  const ready = lease(dir);
  if (ready) return ready;
  return withBuildLock(top, async () => {
    const built = lease(dir);
    if (built) return built;
    // Missing or damaged: whoever still holds a damaged one fails with it; wait for them.
    if (!remove(dir, true)) throw new RuntimeError(`cannot remove the damaged VM template ${dir}`);
    const build = `${dir}.build`;
    await buildTemplate(r, { vcpus: plan.vcpus, memoryMiB: plan.memoryMiB }, build, log, bootTimeoutMs);
    recordMeta(build, inputsOf(r, plan));
    renameSync(build, dir);
    log.info(`built VM template ${dir}`);
    pruneStale(top, dir, log);
    const fresh = lease(dir);
    if (!fresh) throw new RuntimeError(`VM template ${dir}: unusable right after its build`);
    return fresh;
  });
}

function readMeta(dir: string): Meta | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, META), "utf8")) as Meta;
  } catch {
    return undefined;
  }
}

function fileSha256(file: string): string {
  const h = createHash("sha256");
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

function fileMeta(file: string): FileMeta {
  const st = statSync(file);
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: fileSha256(file) };
}

/** Size, time and inode as recorded (the cheap check before every use). */
function unchanged(file: string, m: FileMeta | undefined): boolean {
  const st = statSync(file);
  return !!m && st.size === m.size && st.mtimeMs === m.mtimeMs && st.ino === m.ino;
}

function recordMeta(dir: string, inputs: Input[]): void {
  const meta: Meta = {
    inputs,
    snapshot: fileMeta(join(dir, SAVED.snapshot)),
    memory: fileMeta(join(dir, SAVED.memory)),
  };
  writeFileNamed(join(dir, META), `${JSON.stringify(meta, null, 2)}\n`);
  closeSync(openNamed(join(dir, IN_USE), "a"));
}

/**
 * Holds `dir`'s template (shared lock) if it is whole: the snapshot is as recorded, and the
 * lock file locked is still the template's (not one removed while this call waited for it).
 */
function lease(dir: string): TemplateLease | undefined {
  let fd: number;
  try {
    fd = openSync(join(dir, IN_USE), "r");
  } catch {
    return undefined;
  }
  let held = libc().flock(fd, LOCK_SH) === 0;
  const release = () => {
    if (!held) return;
    held = false;
    libc().flock(fd, LOCK_UN);
  };
  try {
    if (!held || fstatSync(fd).ino !== statSync(join(dir, IN_USE)).ino) return undefined;
    const meta = readMeta(dir);
    const snapshot = join(dir, SNAPSHOT);
    const memory = join(dir, MEMORY);
    if (unchanged(snapshot, meta?.snapshot) && unchanged(memory, meta?.memory)) {
      const st = statSync(snapshot);
      const lockFd = fd;
      fd = -1; // from here on closed by the lease's release
      return {
        snapshot,
        memory,
        ino: st.ino,
        release: () => {
          if (!held) return;
          release();
          closeSync(lockFd);
        },
      };
    }
  } catch {
    // no snapshot, or the template went meanwhile
  } finally {
    if (fd !== -1) {
      release();
      closeSync(fd);
    }
  }
  return undefined;
}

/** True when the snapshot's or the memory's content is no longer what was recorded at its build. */
export function snapshotDamaged(snapshot: string): boolean {
  const dir = dirname(snapshot);
  const meta = readMeta(dir);
  try {
    return (
      !meta?.memory ||
      fileSha256(snapshot) !== meta.snapshot.sha256 ||
      fileSha256(join(dir, MEMORY)) !== meta.memory.sha256
    );
  } catch {
    return true;
  }
}

/**
 * Removes a template unless someone holds it (`wait`: until they let go). Returns whether
 * it is gone. Callers hold the build lock: nobody can make or hold a template meanwhile
 * except through its .inuse file, so a template without one is a partial one.
 */
function remove(dir: string, wait: boolean): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(join(dir, IN_USE), "r");
  } catch {
    // No lock file: a partial template nobody can hold.
  }
  try {
    if (fd !== undefined && libc().flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) !== 0) return false;
    unmountAndRemove(dir);
    return true;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Removes a template that failed to restore, once nobody holds it, unless it is no longer
 * the build that failed (another create already rebuilt it). `lease` must be released.
 */
export function discardTemplate(root: string, failed: TemplateLease): Promise<void> {
  return withBuildLock(join(root, TEMPLATES_DIR), () => {
    try {
      if (statSync(failed.snapshot).ino !== failed.ino) return;
    } catch {
      return; // gone already
    }
    if (!remove(dirname(failed.snapshot), true))
      throw new RuntimeError(`cannot remove the VM template ${dirname(failed.snapshot)}`);
  });
}

function stale(dir: string): boolean {
  const meta = readMeta(dir);
  if (!meta) return true;
  return meta.inputs.some((i) => (i.by === "file" ? fileId(i.path) : contentId(i.path)) !== i.id);
}

/** Under the build lock: unfinished builds, and stale templates nobody holds, go. */
function pruneStale(top: string, keep: string, log: Logger): void {
  for (const name of readdirSync(top)) {
    const dir = join(top, name);
    if (name === ".lock" || dir === keep) continue;
    if (name.endsWith(".build")) unmountAndRemove(dir);
    else if (stale(dir) && remove(dir, false)) log.debug(`removed stale VM template ${dir}`);
  }
}
