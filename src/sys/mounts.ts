/**
 * Mounts and the removal of directories that may hold them. A container's state directory
 * holds bind mounts of the user's data (its rootfs, its volumes): a recursive remove that
 * runs into one deletes that data. So every path is resolved before it is compared with
 * /proc/self/mountinfo (which shows resolved paths: `/var/run` is a symlink to `/run`),
 * everything below is unmounted and the unmount verified, and the removal walk refuses to
 * enter a mount point or another filesystem instead of deleting what is there.
 */
import {
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmdirSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { RuntimeError } from "../errors.ts";
import { cstr, errno, libc, SysError } from "./libc.ts";

const MNT_DETACH = 2;

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

/** Every mount point of this mount namespace (field 5 of /proc/self/mountinfo). */
export function mountPoints(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => unescapeMountinfo(l.split(" ")[4] ?? ""));
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
 * be mounted at or below it (checked first), and a directory on another device is an error
 * rather than something to skip or enter. A missing `dir` is not an error.
 */
export function removeTree(dir: string): void {
  const top = realPath(dir);
  let dev: number;
  try {
    dev = lstatSync(top).dev;
  } catch {
    return;
  }
  const mounted = mountsBelow(top);
  if (mounted.length > 0) throw new RuntimeError(`refusing to remove ${top}: ${mounted[0]} is mounted`);
  const walk = (path: string) => {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(path);
    } catch {
      return; // removed meanwhile
    }
    if (!st.isDirectory()) {
      unlinkSync(path);
      return;
    }
    if (st.dev !== dev) throw new RuntimeError(`refusing to remove ${path}: it is on another filesystem`);
    for (const name of readdirSync(path)) walk(join(path, name));
    rmdirSync(path);
  };
  walk(top);
}

/** Unmounts below `dir`, verifies, then removes it: the one way a state directory goes. */
export function unmountAndRemove(dir: string): void {
  unmountBelow(dir);
  removeTree(dir);
}
