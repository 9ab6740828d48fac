/**
 * The directory shared with the guest (@WORKLOAD_DIR@): the container's rootfs and the
 * sources of its bind mounts, each bind-mounted under it on the host, so that one 9p
 * share carries them all (a 9p share must be a directory; Docker's resolv.conf is a file).
 */
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync } from "node:fs";
import { dirname, join } from "node:path";
import { RuntimeError } from "../errors.ts";
import { ioReason } from "../sys/files.ts";
import { cstr, errno, libc, ptr, SysError } from "../sys/libc.ts";
import { mountOptionsAt } from "../sys/mounts.ts";
import type { ContainerLaunch } from "./launch.ts";

const MS_RDONLY = 1;
const MS_REMOUNT = 32;
/**
 * Per-mount flags a read-only remount must repeat: one that drops them is refused (EPERM)
 * in a user namespace, where they are locked (a user's stand-in, spawn-standin.ts), and
 * would lift nosuid/nodev/noexec of the source's mount as root.
 */
const KEPT_FLAGS: Record<string, number> = {
  nosuid: 2,
  nodev: 4,
  noexec: 8,
  noatime: 1024,
  nodiratime: 2048,
  relatime: 1 << 21,
};
const MS_BIND = 4096;
const MS_REC = 16384;
const MS_PRIVATE = 1 << 18;

function mountCall(source: string, target: string, flags: number): number {
  const none = cstr("");
  return libc().mount(cstr(source), cstr(target), cstr("none"), BigInt(flags), ptr(none));
}

/**
 * Binds each share below `sharedDir`, which must exist: made by the stand-in inside the
 * state directory, it is gone only if a concurrent `delete -f` removed that, and then
 * nothing may be mounted (nobody would unmount it).
 */
export function bindShares(sharedDir: string, shares: ContainerLaunch["shares"]): void {
  const st = lstatSync(sharedDir, { throwIfNoEntry: false });
  if (!st?.isDirectory()) {
    throw new RuntimeError(
      `cannot bind the VM shares: ${sharedDir} ${st ? "is not a directory" : "does not exist"}`,
    );
  }
  // 0711: a container's mapped root (user namespace) must pass through to its rootfs in the
  // guest; on the host the state directory above (0700) keeps everyone else out.
  chmodSync(sharedDir, 0o711);
  for (const s of shares) {
    const target = join(sharedDir, s.target);
    makeBelow(sharedDir, s.file ? dirname(s.target) : s.target);
    if (s.file) closeSync(openSync(target, "a"));
    if (mountCall(s.source, target, MS_BIND | MS_REC) !== 0) {
      const why = new SysError("mount", errno()).message;
      throw new RuntimeError(`${s.field}: cannot share ${s.source} with the VM: ${why}`);
    }
    mountCall("none", target, MS_PRIVATE | MS_REC);
    if (!s.readonly) continue;
    const kept = (mountOptionsAt(target) ?? []).reduce((f, o) => f | (KEPT_FLAGS[o] ?? 0), 0);
    if (mountCall("none", target, MS_BIND | MS_REMOUNT | MS_RDONLY | kept) !== 0) {
      const why = new SysError("mount", errno()).message;
      throw new RuntimeError(`${s.field}: cannot make ${s.source} read-only in the VM: ${why}`);
    }
  }
}

/**
 * Creates the directories of `rel` below `top` (0711, as above), one level at a time. Not
 * mkdir -p, which would re-create `top` and the state directory above it had they been
 * removed meanwhile: here a missing level fails its child's mkdir (ENOENT).
 */
function makeBelow(top: string, rel: string): void {
  let path = top;
  for (const part of rel.split("/").filter((p) => p !== "" && p !== ".")) {
    if (part === "..") throw new RuntimeError(`cannot bind into ${join(top, rel)}: it is not below ${top}`);
    path = join(path, part);
    try {
      mkdirSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw new RuntimeError(`cannot create ${path}: ${ioReason(err)}`);
    }
    chmodSync(path, 0o711); // whatever the umask
  }
}
