/**
 * The host's half of a container's writable layer in the guest (config/writable-layer.ts):
 * when its init has exited, the agent asks (applyLayer) and streams the layer as a tar
 * archive (sendLayer), which is unpacked here into the rootfs, before the agent reports the
 * exit.
 *
 * The archive is the guest's work, and the guest is not trusted: it may hold anything tar
 * can express, and the rootfs it lands in may hold any symlink the guest made through the
 * share. So Debian's GNU tar unpacks it in a mount namespace of its own, chrooted into a
 * fresh tmpfs that holds only the host's /usr (read-only, for tar and its libraries) and the
 * rootfs (bound without what is mounted below it): a symlink to "/" or "../.." there leads
 * to that tmpfs, never to the host's files. Owners and modes are kept (numeric ids: no
 * /etc), extended attributes user.* only, as through the share (QEMU may set no others).
 */
import { spawn } from "node:child_process";
import { mkdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../errors.ts";
import type { Channel } from "../protocol/channel.ts";
import { STREAMS } from "./stdio.ts";

const UNPACK = `set -eu
root=$1 rootfs=$2
mount -t tmpfs -o mode=0755,size=1m cc-layer "$root"
mkdir "$root/usr" "$root/rootfs"
mount --bind /usr "$root/usr"
mount -o remount,bind,ro "$root/usr"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
ln -s usr/bin "$root/bin"
mount --bind "$rootfs" "$root/rootfs"
exec chroot "$root" /usr/bin/tar -C /rootfs --numeric-owner -p --xattrs -xf -`;

/** The layer unpacked into `rootfs` (the share's): resolves once tar is done, or throws its error. */
export async function applyLayer(
  channel: Channel,
  id: string,
  stateDir: string,
  rootfs: string,
): Promise<void> {
  // The chroot's mount point: empty on the host, the tmpfs is mounted in tar's namespace only.
  const root = join(stateDir, "layer-root");
  mkdirSync(root, { recursive: true, mode: 0o700 });
  try {
    const tar = spawn(
      "unshare",
      ["--mount", "--propagation", "private", "/bin/sh", "-c", UNPACK, "sh", root, rootfs],
      {
        stdio: ["pipe", "ignore", "pipe"],
      },
    );
    let stderr = "";
    tar.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    const exited = new Promise<number>((resolve, reject) => {
      tar.on("error", reject);
      tar.on("close", (code, signal) => resolve(code ?? 128 + (signal ? 9 : 0)));
    });
    // tar's stdin as the stream's sink: each chunk written before the next is taken (the
    // channel's credit holds the agent back meanwhile).
    tar.stdin.on("error", () => {});
    channel.onStream(
      STREAMS.layer,
      (data) => new Promise<void>((resolve) => tar.stdin.write(data, () => resolve())),
      () => tar.stdin.end(),
    );
    const sent = channel.call("sendLayer", { id, stream: STREAMS.layer }).finally(() => {
      channel.dropStream(STREAMS.layer);
      tar.stdin.end();
    });
    const [sendResult, code] = await Promise.allSettled([sent, exited]);
    if (code.status === "rejected") throw new Error(`cannot run unshare: ${errorMessage(code.reason)}`);
    if (code.value !== 0)
      throw new Error(
        `unpacking the writable layer failed (exit ${code.value}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
      );
    if (sendResult.status === "rejected") throw sendResult.reason;
  } finally {
    rmdirSync(root);
  }
}
