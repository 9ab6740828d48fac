/**
 * The directory shared with the guest (@WORKLOAD_DIR@): the container's rootfs and the
 * sources of its bind mounts, each bind-mounted under it on the host, so that one 9p
 * share carries them all (a 9p share must be a directory; Docker's resolv.conf is a file).
 */
import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname, join } from "node:path";
import { RuntimeError } from "../errors.ts";
import { cstr, errno, libc, ptr } from "../sys/libc.ts";
import type { ContainerLaunch } from "./launch.ts";

const MS_RDONLY = 1;
const MS_REMOUNT = 32;
const MS_BIND = 4096;
const MS_REC = 16384;
const MS_PRIVATE = 1 << 18;

function mountCall(source: string, target: string, flags: number): number {
  const none = cstr("");
  return libc().mount(cstr(source), cstr(target), cstr("none"), BigInt(flags), ptr(none));
}

export function bindShares(sharedDir: string, shares: ContainerLaunch["shares"]): void {
  // 0711: a container's mapped root (user namespace) must pass through to its rootfs in the
  // guest; on the host the state directory above (0700) keeps everyone else out.
  mkdirSync(join(sharedDir, "mounts"), { recursive: true, mode: 0o711 });
  chmodSync(sharedDir, 0o711);
  chmodSync(join(sharedDir, "mounts"), 0o711);
  for (const s of shares) {
    const target = join(sharedDir, s.target);
    mkdirSync(dirname(target), { recursive: true, mode: 0o711 });
    if (s.file) closeSync(openSync(target, "a"));
    else mkdirSync(target, { recursive: true });
    if (mountCall(s.source, target, MS_BIND | MS_REC) !== 0) {
      throw new RuntimeError(`cannot bind ${s.source} into the VM share: errno ${errno()}`);
    }
    mountCall("none", target, MS_PRIVATE | MS_REC);
    if (s.readonly && mountCall("none", target, MS_BIND | MS_REMOUNT | MS_RDONLY) !== 0) {
      throw new RuntimeError(`cannot make ${target} read-only: errno ${errno()}`);
    }
  }
}
