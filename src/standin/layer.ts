/**
 * The host's half of a container's writable layer in the guest (config/writable-layer.ts):
 * when its init has exited, the agent asks (applyLayer) and streams the layer as a tar
 * archive (sendLayer), which is unpacked here into the rootfs, before the agent reports the
 * exit.
 *
 * The archive is the guest's work, and the guest is not trusted: it may hold anything tar
 * can express, and the rootfs it lands in may hold any symlink the guest made through the
 * share. So Debian's GNU tar unpacks it in a mount namespace of its own, chrooted into a
 * fresh tmpfs (nosuid, nodev, noexec) that holds only the host's /usr (read-only, for tar
 * and its libraries) and the rootfs: a symlink to "/" or "../.." there leads to that tmpfs,
 * never to the host's files. tar runs with no new privileges and only the capabilities of
 * QEMU's 9p server (hypervisor/launcher.ts QEMU_CAPABILITIES): the guest gets nothing from
 * an archive it could not have done through the share. Owners and modes are kept (numeric
 * ids: no /etc), POSIX ACLs and user.* xattrs too, as through the share.
 */
import { mkdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../errors.ts";
import { QEMU_CAPABILITIES } from "../hypervisor/launcher.ts";
import type { Channel } from "../protocol/channel.ts";
import { capabilityArgs, spawnWithParentDeath } from "../sys/spawn.ts";
import { STREAMS } from "./stdio.ts";

const UNSHARE = "/usr/bin/unshare";
/** setpriv's bounding, inheritable and ambient sets for tar: QEMU's capabilities, no others. */
const TAR_CAPS = capabilityArgs(Object.keys(QEMU_CAPABILITIES)).join(" ");

/** $1: the chroot's mount point, $2: the rootfs (the host's, with what is mounted below it, as the share has it). */
const UNPACK = `set -eu
root=$1 rootfs=$2
mount -n -t tmpfs -o mode=0755,size=1m,nosuid,nodev,noexec cc-layer "$root"
mkdir "$root/usr" "$root/rootfs"
mount -n --bind /usr "$root/usr"
mount -n -o remount,bind,ro,nosuid,nodev "$root/usr"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
ln -s usr/bin "$root/bin"
mount -n --rbind "$rootfs" "$root/rootfs"
exec chroot "$root" /usr/bin/setpriv --no-new-privs ${TAR_CAPS} -- \\
  /usr/bin/tar -C /rootfs --numeric-owner -p --acls --xattrs -xf -`;

/** The unpacking in progress, to be stopped (and waited for) when the stand-in winds down. */
export interface LayerUnpack {
  done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * The layer unpacked into `rootfs`: `done` resolves once tar is done, or rejects with its
 * error. `stateDir` holds the chroot's mount point (empty on the host: the tmpfs is
 * mounted in tar's namespace only).
 */
export function applyLayer(channel: Channel, id: string, stateDir: string, rootfs: string): LayerUnpack {
  const root = join(stateDir, "layer-root");
  try {
    mkdirSync(root, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const tar = spawnWithParentDeath(
    [UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c", UNPACK, "sh", root, rootfs],
    {
      stdio: ["pipe", "ignore", "pipe"],
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    },
  );
  let stderr = "";
  tar.child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const stdin = tar.child.stdin;
  stdin?.on("error", () => {});
  // tar's stdin as the stream's sink: each chunk written before the next is taken (the
  // channel's credit holds the agent back meanwhile).
  channel.onStream(
    STREAMS.layer,
    (data) => new Promise<void>((resolve) => (stdin ? stdin.write(data, () => resolve()) : resolve())),
    () => stdin?.end(),
  );
  // Settled either way (never an unhandled rejection): tar's failure is the one reported.
  const sent = channel.call("sendLayer", { id, stream: STREAMS.layer }).then(
    () => undefined,
    (err: unknown) => err,
  );
  // tar failed before the archive's end: the agent is told to stop sending (an EOF to it).
  const exited = tar.exited.then((code) => {
    channel.dropStream(STREAMS.layer);
    if (code !== 0) void channel.sendEof(STREAMS.layer).catch(() => {});
    return code;
  });
  const done = (async () => {
    try {
      const code = await exited;
      if (code !== 0)
        throw new Error(
          `cannot unpack the writable layer into ${rootfs}: tar exit ${code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
        );
      const failed = await sent;
      if (failed) throw new Error(`cannot unpack the writable layer into ${rootfs}: ${errorMessage(failed)}`);
    } finally {
      stdin?.destroy();
      try {
        rmdirSync(root);
      } catch {
        // Gone with the state directory (delete --force), or never made.
      }
    }
  })();
  return {
    done,
    stop: async () => {
      tar.child.kill("SIGKILL");
      await done.catch(() => {});
    },
  };
}
