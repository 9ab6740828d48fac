/**
 * A container's writable layer in the guest (config/writable-layer.ts "guest"): its rootfs
 * is an overlay, the share's rootfs (9p) below and a directory on the VM's own disk (ext4,
 * hypervisor/layer-disk.ts) or on a tmpfs above, so that creating, writing and reading back files costs no
 * round trip to the host. When the container's init has exited, what the layer holds is
 * copied into the host's rootfs before the exit is reported: the host sees the container's
 * writes in its rootfs directory as it would have with the share alone.
 *
 * The copy is one GNU tar archive (tar is in the image for CRIU) of the layer's entries,
 * streamed to the stand-in, which unpacks it (standin/layer.ts): owners, modes, times, hard
 * links and sparse files as they are. What tar does not know is overlayfs's own marks, done
 * here first, through the share: a whiteout (a 0/0 character device) removes its name, an
 * opaque directory (trusted.overlay.opaque=y) replaces the share's, and an entry whose type
 * changed (a directory where a file was, or the other way round) removes the share's first.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { errorMessage } from "../errors.ts";
import type { Channel } from "../protocol/channel.ts";
import { type GuestLayerKind, LAYER_DISK_SERIAL } from "../protocol/guest-layout.ts";
import { cstr, libc, ptr, sysError } from "../sys/libc.ts";
import { spawnReaped } from "./crun.ts";
import { isMounted, mount, type Reaper } from "./init.ts";
import { loadModules } from "./modules.ts";

const DISK_MOUNT = "/run/cc/layer";
const ROOTS = "/run/cc/roots";
const TAR = "/usr/bin/tar";
const BLKFLSBUF = 0x1261;
const MNT_DETACH = 2;
const OPAQUE = "trusted.overlay.opaque";

function layerDirs(id: string) {
  const top = join(DISK_MOUNT, id);
  return { top, upper: join(top, "upper"), work: join(top, "work"), root: join(ROOTS, id) };
}

/** /dev/vdX of the layer's disk, by its serial (not by the order the devices were probed in). */
function layerDevice(): string {
  for (const name of readdirSync("/sys/block")) {
    const serial = join("/sys/block", name, "serial");
    if (existsSync(serial) && readFileSync(serial, "utf8").trim() === LAYER_DISK_SERIAL)
      return `/dev/${name}`;
  }
  throw new Error(`the VM has no writable layer disk (no block device with serial ${LAYER_DISK_SERIAL})`);
}

/** The layer's filesystem, once per VM: the layer disk (ext4), or a tmpfs. */
async function mountLayers(reaper: Reaper, kind: GuestLayerKind): Promise<void> {
  if (isMounted(DISK_MOUNT)) return;
  if (kind === "memory") {
    // tmpfs's own bound (half the guest's memory); its pages count in the writer's cgroup.
    mount("cc-layer", DISK_MOUNT, "tmpfs", 0, "mode=0700");
    return;
  }
  await loadModules(reaper, "layer");
  const dev = layerDevice();
  // A template's clone: the kernel read the disk's first page when the template booted
  // (partition scan), from the template's blank file. Dropped, so ext4 reads this one's.
  const fd = libc().open(cstr(dev), 0, 0);
  if (fd < 0) throw sysError("open", dev);
  const flushed = libc().ioctl(fd, BLKFLSBUF, null);
  const failed = flushed !== 0 ? sysError("ioctl(BLKFLSBUF)", dev) : undefined;
  libc().close(fd);
  if (failed) throw failed;
  // noinit_itable: mke2fs left the inode tables uninitialised; nobody needs them zeroed.
  mount(dev, DISK_MOUNT, "ext4", 0, "noinit_itable");
}

/** The container's rootfs in the guest: the overlay of its layer over the share's `lower`. */
export async function mountLayer(
  reaper: Reaper,
  id: string,
  lower: string,
  kind: GuestLayerKind,
): Promise<string> {
  await mountLayers(reaper, kind);
  const d = layerDirs(id);
  try {
    mkdirSync(d.upper, { recursive: true });
    mkdirSync(d.work, { recursive: true });
    // The overlay's root is the layer's: it takes the rootfs's owner and mode (copied back as "./").
    const top = lstatSync(lower);
    chownSync(d.upper, top.uid, top.gid);
    chmodSync(d.upper, top.mode & 0o7777);
    // Plain overlayfs: no index, no redirects (a renamed directory is copied up whole, so the
    // layer holds only names and contents tar can copy), inode numbers the share's own.
    const options = `lowerdir=${lower},upperdir=${d.upper},workdir=${d.work},index=off,redirect_dir=off,metacopy=off,xino=off`;
    mount("overlay", d.root, "overlay", 0, options);
  } catch (err) {
    rmSync(d.top, { recursive: true, force: true });
    throw err;
  }
  return d.root;
}

function isOpaque(dir: string): boolean {
  const buf = Buffer.alloc(8);
  const n = Number(libc().lgetxattr(cstr(dir), cstr(OPAQUE), ptr(buf), BigInt(buf.length)));
  return n === 1 && buf[0] === "y".charCodeAt(0);
}

/**
 * What the share has in `dir`, name -> is it a directory: one readdir, not a stat per name
 * (a stat only where the share gives no type, DT_UNKNOWN).
 */
function shareEntries(dir: string): Map<string, boolean> {
  const m = new Map<string, boolean>();
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const typed =
        e.isDirectory() ||
        e.isFile() ||
        e.isSymbolicLink() ||
        e.isFIFO() ||
        e.isSocket() ||
        e.isBlockDevice() ||
        e.isCharacterDevice();
      m.set(e.name, typed ? e.isDirectory() : isDirectory(join(dir, e.name)));
    }
  } catch {
    // Not there (any more): nothing of it stands in the way.
  }
  return m;
}

function isDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Removals through the share go on past one that fails: every failure is reported at the end. */
class Removals {
  readonly failed: string[] = [];
  remove(path: string): void {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch (err) {
      this.failed.push(`${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
  }
}

/**
 * The layer's entries below `rel` applied to the share as removals, and listed (parents
 * first) for tar. `share`: what the share has in this directory (undefined: no such
 * directory). Whatever in the share stands where the layer has another kind of entry goes: a
 * whiteout's name, everything below an opaque directory, a directory under a file, a file
 * (or symlink) under a directory. overlayfs makes a directory over a removed name opaque, but
 * the share may have changed under the container (`docker cp`), so each name is checked, by
 * one readdir of each of the share's directories. In the guest nothing is mounted below the
 * share's rootfs (the container's volumes are mounts in its own namespace, of mounts/N): a
 * removal here is what the container's `rm -r` through the share would have been.
 */
function prepare(
  upper: string,
  lower: string,
  rel: string,
  list: string[],
  out: Removals,
  share?: Map<string, boolean>,
): void {
  // The layer's types from its readdir (d_type): a stat only for a character device.
  for (const entry of readdirSync(join(upper, rel), { withFileTypes: true })) {
    const name = entry.name;
    const r = rel ? `${rel}/${name}` : name;
    const target = join(lower, r);
    const there = share?.get(name);
    if (entry.isCharacterDevice() && lstatSync(join(upper, r)).rdev === 0) {
      if (there !== undefined) out.remove(target);
      continue;
    }
    list.push(r);
    if (!entry.isDirectory()) {
      if (there === true) out.remove(target);
    } else if (there !== undefined && (there === false || isOpaque(join(upper, r)))) {
      out.remove(target);
      prepare(upper, lower, r, list, out);
    } else {
      prepare(upper, lower, r, list, out, there ? shareEntries(target) : undefined);
    }
  }
}

/**
 * The copy's first half, at the exit of the container's init (its processes are gone, and
 * with them its PID namespace): the overlay unmounted, overlayfs's marks applied to the
 * share, and the list of what the archive (sendLayer) will hold: the rootfs itself ("./",
 * its owner, mode and times), then every entry of the layer, parents first.
 */
export function prepareCopy(id: string, lower: string): { entries: number; failed: string[] } {
  const d = layerDirs(id);
  if (libc().umount2(cstr(d.root), MNT_DETACH) !== 0) throw sysError("umount2", d.root);
  const list: string[] = [];
  const out = new Removals();
  prepare(d.upper, lower, "", list, out, shareEntries(lower));
  writeFileSync(listFile(id), ["", ...list].map((r) => `./${r}\0`).join(""));
  return { entries: list.length, failed: out.failed };
}

function listFile(id: string): string {
  return join(DISK_MOUNT, `${id}.list`);
}

/** The archiving tar of each container whose layer is being sent (removeLayer waits for it). */
const sending = new Map<string, Subprocess>();

/**
 * The layer's entries (prepareCopy's list) as one tar archive on `stream` to the host, which
 * unpacks it into the rootfs (standin/layer.ts): one stream instead of a round trip to the
 * host for each create, write, chown, chmod and utime of every file (~7 ms a file under TCG).
 * POSIX ACLs and user.* xattrs are kept: what the share would have taken from the container
 * (QEMU may set no trusted.* or security.capability on the host). An EOF from the host ends
 * it early (its tar failed). tar's exit 1 (a file changed as it was read: a process outlived
 * the init) is a warning, not a failure: what it read is sent.
 */
export async function sendLayer(
  reaper: Reaper,
  channel: Channel,
  id: string,
  stream: number,
  warn: (message: string) => void,
): Promise<void> {
  const d = layerDirs(id);
  const tar = spawnReaped(
    reaper,
    [
      TAR,
      "-C",
      d.upper,
      "--null",
      "--no-recursion",
      "-T",
      listFile(id),
      "--numeric-owner",
      "-S",
      "--acls",
      "--xattrs",
      "-cf",
      "-",
    ],
    ["ignore", "pipe", "pipe"],
  );
  sending.set(id, tar);
  channel.onStream(
    stream,
    () => undefined,
    () => tar.kill("SIGKILL"),
  );
  const errors = new Response(tar.stderr as ReadableStream).text();
  let sent = false;
  try {
    for await (const chunk of tar.stdout as ReadableStream<Uint8Array>) await channel.sendData(stream, chunk);
    sent = true;
  } finally {
    channel.dropStream(stream);
    // The channel failed mid-archive: tar would wait on a pipe nobody reads.
    if (!sent) tar.kill("SIGKILL");
    await channel.sendEof(stream).catch(() => {});
  }
  const code = await tar.exited;
  sending.delete(id);
  const said = (await errors).trim().split("\n").slice(-3).join(" | ");
  if (code === 1) warn(`archiving the writable layer: ${said}`);
  else if (code !== 0) throw new Error(`archiving the writable layer failed (tar exit ${code}): ${said}`);
}

/** After the copy (done or failed): its archiving stopped, the layer's files on the VM's disk gone. */
export async function removeLayer(id: string): Promise<void> {
  const tar = sending.get(id);
  tar?.kill("SIGKILL");
  await tar?.exited;
  rmSync(listFile(id), { force: true });
  rmSync(layerDirs(id).top, { recursive: true, force: true });
}

/** A create that failed after its layer was mounted: the overlay and the layer gone. */
export function dropLayer(id: string): void {
  const d = layerDirs(id);
  libc().umount2(cstr(d.root), MNT_DETACH);
  if (!isMounted(d.root)) rmSync(d.top, { recursive: true, force: true });
}
