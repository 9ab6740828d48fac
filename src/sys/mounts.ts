/**
 * Mounts and the removal of directories that may hold them. A container's state directory
 * holds bind mounts of the user's data (its rootfs, its volumes): a recursive remove that
 * runs into one deletes that data. So every path is resolved before it is compared with
 * /proc/self/mountinfo (which shows resolved paths: `/var/run` is a symlink to `/run`),
 * everything below is unmounted and the unmount verified, and the removal walk refuses to
 * enter or unlink a mount point (by mount id, which a bind of the same filesystem does not
 * share, unlike st_dev) instead of deleting what is there.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, rmdirSync, unlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { RuntimeError } from "../errors.ts";
import { cstr, ENOENT, errno, libc, ptr, SysError, sysError } from "./libc.ts";

const MNT_DETACH = 2;
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_TYPE = 0x1;
const STATX_MNT_ID = 0x1000;
const STATX_SIZE = 256;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** The absolute, symlink-free form of `path`; a part that does not exist yet is kept as written. */
export function realPath(path: string): string {
  const abs = resolve(path);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  return parent === abs ? abs : join(realPath(parent), basename(abs));
}

function unescapeMountinfo(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** One line of /proc/PID/mountinfo: paths as that process sees them (from its root). */
export interface MountinfoEntry {
  /** The mounted directory's path within its filesystem (field 4: `/null` for a bind of /dev/null). */
  root: string;
  mountPoint: string;
  /** Per-mount options (field 6). */
  options: string[];
  fstype: string;
}

export function mountinfo(pid: number | "self" = "self"): MountinfoEntry[] {
  return readFileSync(`/proc/${pid}/mountinfo`, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const f = l.split(" ");
      return {
        root: unescapeMountinfo(f[3] ?? ""),
        mountPoint: unescapeMountinfo(f[4] ?? ""),
        options: (f[5] ?? "").split(","),
        fstype: f[f.indexOf("-") + 1] ?? "",
      };
    });
}

/** Every mount point of this mount namespace. */
export function mountPoints(): string[] {
  return mountinfo().map((m) => m.mountPoint);
}

/** The per-mount options (field 6 of mountinfo) of the topmost mount at `path` (resolved), if any. */
export function mountOptionsAt(path: string): string[] | undefined {
  const target = realPath(path);
  return mountinfo()
    .filter((m) => m.mountPoint === target)
    .pop()?.options;
}

/** Mount points at or below `dir` (resolved first), deepest first. */
export function mountsBelow(dir: string): string[] {
  const top = realPath(dir);
  return mountPoints()
    .filter((m) => m === top || m.startsWith(`${top}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Unmounts everything at or below `dir`, deepest first, then checks mountinfo: a mount that
 * is still there is an error naming it (never ignored, never removed through). Detached
 * lazily, so a busy mount (a process still inside it) leaves the tree at once all the same.
 */
export function unmountBelow(dir: string): void {
  for (let round = 0; round < 3; round++) {
    const mounts = mountsBelow(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) {
      // EINVAL: no longer a mount point (went with its parent); mountinfo is re-read below.
      if (libc().umount2(cstr(m), MNT_DETACH) !== 0 && errno() !== 22) {
        throw new RuntimeError(`cannot unmount ${m}: ${new SysError("umount2", errno()).message}`);
      }
    }
  }
  const left = mountsBelow(dir);
  if (left.length > 0) throw new RuntimeError(`cannot unmount ${left[0]}: still mounted`);
}

/**
 * Removes `dir` and what it holds, like `rm -r --one-file-system` but stricter: nothing may
 * be mounted at or below it (checked first), and an entry on another mount is an error
 * rather than something to skip or enter. A missing `dir` is not an error.
 */
export function removeTree(dir: string): void {
  const top = realPath(dir);
  const mounted = mountsBelow(top);
  if (mounted.length > 0) throw new RuntimeError(`refusing to remove ${top}: ${mounted[0]} is mounted`);
  removeWalk(top);
}

/**
 * The walk of removeTree, without its mountinfo check (exported for the tests). Each entry's
 * mount id is compared with the top's before it is unlinked or entered: a bind mount of the
 * same filesystem has the same st_dev, and one made after the check (or that it missed)
 * would otherwise have the user's data behind it deleted. Stops at the first such entry.
 */
export function removeWalk(top: string): void {
  const mount = entryOf(top)?.mount;
  if (mount === undefined) return;
  const walk = (path: string) => {
    const entry = entryOf(path);
    if (!entry) return; // removed meanwhile
    // Never entered a mount, so an entry on another one is a mount point itself.
    if (entry.mount !== mount) throw new RuntimeError(`refusing to remove ${path}: it is a mount point`);
    if (!entry.dir) {
      unlinkSync(path);
      return;
    }
    for (const name of readdirSync(path)) walk(join(path, name));
    rmdirSync(path);
  };
  walk(top);
}

/**
 * Whether `path` (a symlink not followed) is a directory, and the id of the mount it is on
 * (statx(2): lstat has no mount id); undefined if it does not exist.
 */
function entryOf(path: string): { dir: boolean; mount: bigint } | undefined {
  const buf = new Uint8Array(STATX_SIZE);
  if (libc().statx(AT_FDCWD, cstr(path), AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MNT_ID, ptr(buf)) !== 0) {
    if (errno() === ENOENT) return undefined;
    throw sysError("statx", path);
  }
  const stx = new DataView(buf.buffer);
  // A kernel before 5.8 leaves the mount id out: then nothing may be removed at all.
  if ((stx.getUint32(0, true) & STATX_MNT_ID) === 0) {
    throw new RuntimeError(`cannot tell the mount of ${path}: the kernel reports no mount ids`);
  }
  return { dir: (stx.getUint16(0x1c, true) & S_IFMT) === S_IFDIR, mount: stx.getBigUint64(0x90, true) };
}

/** Unmounts below `dir`, verifies, then removes it: the one way a state directory goes. */
export function unmountAndRemove(dir: string): void {
  unmountBelow(dir);
  removeTree(dir);
}
