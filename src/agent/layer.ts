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
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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
  return { upper: join(top, "upper"), work: join(top, "work"), root: join(ROOTS, id) };
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
  mkdirSync(d.upper, { recursive: true });
  mkdirSync(d.work, { recursive: true });
  // Plain overlayfs: no index, no redirects (a renamed directory is copied up whole, so the
  // layer holds only names and contents tar can copy), inode numbers the share's own.
  const options = `lowerdir=${lower},upperdir=${d.upper},workdir=${d.work},index=off,redirect_dir=off,metacopy=off,xino=off`;
  mount("overlay", d.root, "overlay", 0, options);
  return d.root;
}

function isOpaque(dir: string): boolean {
  const buf = Buffer.alloc(8);
  const n = Number(libc().lgetxattr(cstr(dir), cstr(OPAQUE), ptr(buf), BigInt(buf.length)));
  return n === 1 && buf[0] === "y".charCodeAt(0);
}

/** The names of the directories in `dir` (in the share): one readdir, not a stat per name. */
function directoryNames(dir: string): Set<string> {
  try {
    return new Set(
      readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name),
    );
  } catch {
    return new Set();
  }
}

/**
 * The layer's entries below `rel` applied to the share as removals, and listed (parents
 * first) for tar. `shareDirs`: the directories the share has in this directory (undefined:
 * the share has no such directory). A directory of the layer that is not opaque stands over
 * nothing or over a directory (overlayfs makes one over a removed name opaque), so only a
 * file over a directory needs finding, by one readdir of each directory, not a stat a name.
 * In the guest nothing is mounted below the share's rootfs (the container's volumes are
 * mounts in its own namespace, of mounts/N): a removal here is what the container's `rm -r`
 * through the share would have been.
 */
function prepare(upper: string, lower: string, rel: string, list: string[], shareDirs?: Set<string>): void {
  // The layer's types from its readdir (d_type): a stat only for a character device.
  for (const entry of readdirSync(join(upper, rel), { withFileTypes: true })) {
    const name = entry.name;
    const r = rel ? `${rel}/${name}` : name;
    const target = join(lower, r);
    if (entry.isCharacterDevice() && lstatSync(join(upper, r)).rdev === 0) {
      rmSync(target, { recursive: true, force: true });
      continue;
    }
    list.push(r);
    if (!entry.isDirectory()) {
      if (shareDirs?.has(name)) rmSync(target, { recursive: true, force: true });
    } else if (isOpaque(join(upper, r))) {
      rmSync(target, { recursive: true, force: true });
      prepare(upper, lower, r, list);
    } else {
      prepare(upper, lower, r, list, shareDirs?.has(name) ? directoryNames(target) : undefined);
    }
  }
}

/**
 * The copy's first half, at the exit of the container's init (its processes are gone, and
 * with them its PID namespace): the overlay unmounted, overlayfs's marks applied to the
 * share, and the list of what the archive (sendLayer) will hold.
 */
export function prepareCopy(id: string, lower: string): number {
  const d = layerDirs(id);
  if (libc().umount2(cstr(d.root), MNT_DETACH) !== 0) throw sysError("umount2", d.root);
  const list: string[] = [];
  prepare(d.upper, lower, "", list, directoryNames(lower));
  writeFileSync(listFile(id), list.map((r) => `./${r}\0`).join(""));
  return list.length;
}

function listFile(id: string): string {
  return join(DISK_MOUNT, `${id}.list`);
}

/**
 * The layer's entries (prepareCopy's list) as one tar archive on `stream` to the host, which
 * unpacks it into the rootfs (standin/layer.ts): one stream instead of a round trip to the
 * host for each create, write, chown, chmod and utime of every file (~7 ms a file under TCG).
 * Extended attributes: user.* only, those the share would have taken from the container
 * (QEMU may not set the others on the host: trusted.*, security.capability).
 */
export async function sendLayer(reaper: Reaper, channel: Channel, id: string, stream: number): Promise<void> {
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
      "--xattrs",
      "-cf",
      "-",
    ],
    ["ignore", "pipe", "pipe"],
  );
  const errors = new Response(tar.stderr as ReadableStream).text();
  try {
    for await (const chunk of tar.stdout as ReadableStream<Uint8Array>) await channel.sendData(stream, chunk);
  } finally {
    await channel.sendEof(stream).catch(() => {});
  }
  const code = await tar.exited;
  if (code !== 0)
    throw new Error(`archiving the writable layer failed (tar exit ${code}): ${(await errors).trim()}`);
}

/** After the copy (done or failed): the layer's files on the VM's disk are not kept. */
export function removeLayer(id: string): void {
  rmSync(listFile(id), { force: true });
  rmSync(join(DISK_MOUNT, id), { recursive: true, force: true });
}

/** A create that failed after its layer was mounted: the overlay and the layer gone. */
export function dropLayer(id: string): void {
  const d = layerDirs(id);
  libc().umount2(cstr(d.root), MNT_DETACH);
  if (!isMounted(d.root)) rmSync(join(DISK_MOUNT, id), { recursive: true, force: true });
}
