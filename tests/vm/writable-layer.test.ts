/**
 * A container's writable layer in the guest (config/writable-layer.ts, issue 19): its rootfs
 * is an overlay in the VM, and what it wrote there (new files, rewrites, removals of the
 * image's files and directories, a file become a directory and back, modes, owners, times,
 * links) is in the host's rootfs, byte for byte, once it has exited; not before. Two boots:
 * one on the layer's disk, one in the guest's memory.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { WRITABLE_LAYER_ANNOTATION } from "../../src/config/writable-layer.ts";
import { LAYER_DISK_DIR } from "../../src/hypervisor/layer-disk.ts";
import { makeBundle } from "../lib/bundle.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
});

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

function layered(layer: "guest" | "guest-memory", script: string): { bundle: string; rootfs: string } {
  const bundle = makeBundle({
    writable: true,
    args: ["sh", "-c", script],
    edit: (s) => {
      s.annotations = { [WRITABLE_LAYER_ANNOTATION]: layer };
      // chown of a file (the default spec's root may not).
      const caps = ["CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_KILL"];
      s.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
    },
  });
  return { bundle, rootfs: join(bundle, "rootfs") };
}

/** The image's files the container changes: below /old in the host's rootfs. */
function seedOld(rootfs: string): void {
  const old = join(rootfs, "old");
  const file = (rel: string, text: string) => {
    mkdirSync(join(old, rel, ".."), { recursive: true });
    writeFileSync(join(old, rel), text);
  };
  file("keep.txt", "keep\n");
  file("gone.txt", "gone\n");
  file("dir-gone/a", "a\n");
  file("dir-gone/sub/b", "b\n");
  file("opaque/x", "x\n");
  file("opaque/y", "y\n");
  file("f2d", "a file\n");
  file("d2f/p", "p\n");
  file("rewrite.txt", "before\n");
  file("mode.txt", "mode\n");
  file("renamed-from", "moved\n");
}

const CHANGES = [
  // Which filesystem the container's / is: the layer's overlay.
  `awk '$2=="/"{print "root:" $3}' /proc/mounts`,
  "head -c 3145731 /dev/urandom > /blob && dd if=/dev/urandom of=/blob bs=4097 count=3 seek=5 conv=notrunc 2>/dev/null",
  "sha256sum /blob",
  "mkdir -p /new/deep/er /new/empty-dir",
  "i=0; while [ $i -lt 300 ]; do echo file$i > /new/deep/er/f$i; i=$((i+1)); done",
  "ln /new/deep/er/f0 /new/deep/hard && ln -s ../old/keep.txt /new/sym",
  "echo owned > /new/owned && chown 1234:5678 /new/owned && touch -d '2001-09-09 01:46:40' /new/owned",
  "echo scratch > /new/scratch && rm /new/scratch",
  // Refused through the share (Limits: ENXIO); the layer's own filesystem makes it.
  "mkfifo /new/fifo",
  "rm /old/gone.txt && rm -r /old/dir-gone",
  "rm -r /old/opaque && mkdir /old/opaque && echo z > /old/opaque/z",
  "rm /old/f2d && mkdir /old/f2d && echo inner > /old/f2d/inner",
  "rm -r /old/d2f && echo now-a-file > /old/d2f",
  "echo after > /old/rewrite.txt && chmod 0600 /old/mode.txt && mv /old/renamed-from /old/renamed-to",
  // The rootfs itself: its mode as the host has it, then changed.
  "stat -c root-mode:%a /",
  "chmod 0751 /",
].join(" && ");

describe("writable layer in the guest", () => {
  test("an annotation it does not take is an error naming it, before any VM; nothing is left", async () => {
    const bundle = makeBundle({
      args: ["true"],
      writable: true,
      edit: (s) => {
        s.annotations = { [WRITABLE_LAYER_ANNOTATION]: "disk" };
      },
    });
    const r = await rt.run(["create", "--bundle", bundle, "layer-bad"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `annotation "${WRITABLE_LAYER_ANNOTATION}": expected "share", "guest", "guest-memory", got "disk"`,
    );
    expect(existsSync(join(rt.root, "layer-bad"))).toBe(false);
  });

  test("restore into a container with a layer in the guest is an error naming the annotation; nothing is left", async () => {
    const { bundle } = layered("guest", "true");
    const images = join(bundle, "ck");
    mkdirSync(images);
    for (const f of ["inventory.img", "cc-externals.json"]) writeFileSync(join(images, f), "");
    const r = await rt.run(["restore", "--image-path", images, "--bundle", bundle, "layer-restore"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`restore with a writable layer in the guest is not supported`);
    expect(r.stderr).toContain(`annotation "${WRITABLE_LAYER_ANNOTATION}"`);
    expect(existsSync(join(rt.root, "layer-restore"))).toBe(false);
  });

  test("on the layer's disk: everything the container did to its rootfs is on the host after it exited", async () => {
    const { bundle, rootfs } = layered("guest", CHANGES);
    seedOld(rootfs);
    chmodSync(rootfs, 0o755);
    const disks = () => (existsSync(LAYER_DISK_DIR) ? readdirSync(LAYER_DISK_DIR).sort() : []);
    const disksBefore = disks();
    const r = await rt.run(["--debug", "run", "--bundle", bundle, "layer-disk"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [fsType, digest, rootMode] = r.stdout.trim().split("\n");
    expect(fsType).toBe("root:overlay");
    expect(rootMode).toBe("root-mode:755");
    expect(lstatSync(rootfs).mode & 0o7777).toBe(0o751);
    expect(`${sha256(join(rootfs, "blob"))}  /blob`).toBe(digest as string);
    expect(lstatSync(join(rootfs, "blob")).size).toBe(3145731);

    const deep = join(rootfs, "new/deep/er");
    expect(readdirSync(deep).length).toBe(300);
    expect(readFileSync(join(deep, "f299"), "utf8")).toBe("file299\n");
    expect(lstatSync(join(rootfs, "new/deep/hard")).ino).toBe(lstatSync(join(deep, "f0")).ino);
    expect(readlinkSync(join(rootfs, "new/sym"))).toBe("../old/keep.txt");
    const owned = lstatSync(join(rootfs, "new/owned"));
    expect([owned.uid, owned.gid, owned.mtimeMs]).toEqual([1234, 5678, 1_000_000_000_000]);
    expect(readdirSync(join(rootfs, "new/empty-dir"))).toEqual([]);
    expect(existsSync(join(rootfs, "new/scratch"))).toBe(false);
    expect(lstatSync(join(rootfs, "new/fifo")).isFIFO()).toBe(true);

    const old = join(rootfs, "old");
    expect(readdirSync(old).sort()).toEqual(
      ["d2f", "f2d", "keep.txt", "mode.txt", "opaque", "renamed-to", "rewrite.txt"].sort(),
    );
    expect(readFileSync(join(old, "keep.txt"), "utf8")).toBe("keep\n");
    expect(readdirSync(join(old, "opaque"))).toEqual(["z"]);
    expect(readFileSync(join(old, "f2d/inner"), "utf8")).toBe("inner\n");
    expect(readFileSync(join(old, "d2f"), "utf8")).toBe("now-a-file\n");
    expect(readFileSync(join(old, "rewrite.txt"), "utf8")).toBe("after\n");
    expect(lstatSync(join(old, "mode.txt")).mode & 0o7777).toBe(0o600);
    expect(readFileSync(join(old, "renamed-to"), "utf8")).toBe("moved\n");
    // `run` deleted the container, and its layer's disk with its state directory.
    expect((await rt.run(["state", "layer-disk"])).code).not.toBe(0);
    expect(existsSync(join(rt.root, "layer-disk"))).toBe(false);
    expect(disks()).toEqual(disksBefore);
    expect(readFileSync(rt.log, "utf8")).toMatch(
      /layer-disk: writable layer copied into the rootfs: \d+ entries/,
    );
  }, 300_000);

  test("in the guest's memory: the host sees the writes only once the container exited; no checkpoint meanwhile", async () => {
    const { bundle, rootfs } = layered("guest-memory", "echo hello > /made && exec sleep 100000");
    expect((await rt.run(["run", "-d", "--bundle", bundle, "layer-mem"])).code).toBe(0);
    const seen = await rt.run([
      "exec",
      "layer-mem",
      "sh",
      "-c",
      "cat /made; awk '$2==\"/\"{print $3}' /proc/mounts",
    ]);
    expect(seen.stdout).toBe("hello\noverlay\n");
    expect(existsSync(join(rootfs, "made"))).toBe(false);
    const ck = await rt.run(["checkpoint", "--image-path", join(bundle, "ck"), "layer-mem"]);
    expect(ck.code).not.toBe(0);
    expect(ck.stderr).toContain(
      "checkpoint of a container with its writable layer in the guest is not supported",
    );
    expect((await rt.run(["kill", "layer-mem", "KILL"])).code).toBe(0);
    const until = Date.now() + 60_000;
    let status = "";
    while (Date.now() < until) {
      status = JSON.parse((await rt.run(["state", "layer-mem"])).stdout).status;
      if (status === "stopped") break;
      await Bun.sleep(200);
    }
    expect(status).toBe("stopped");
    expect(readFileSync(join(rootfs, "made"), "utf8")).toBe("hello\n");
    expect((await rt.run(["delete", "layer-mem"])).code).toBe(0);
  }, 300_000);
});
