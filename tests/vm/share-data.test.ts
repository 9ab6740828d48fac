/**
 * The files a container shares with the host (issue 19), whatever the share's caching:
 * what it writes on its rootfs is on the host, byte for byte, once it has exited; a volume
 * bind-mounted into two running containers (two VMs) shows each one the other's writes, and
 * the host's, as they happen. Two boots.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
});

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

describe("data through the share", () => {
  test("what the container wrote on its rootfs is on the host after it exited, byte for byte", async () => {
    const bundle = makeBundle({
      writable: true,
      args: [
        "sh",
        "-c",
        // Random data, written in odd-sized pieces, a rewrite in place and an append; its digest.
        "head -c 6291459 /dev/urandom > /data/blob && dd if=/dev/urandom of=/data/blob bs=4097 count=3 seek=7 conv=notrunc 2>/dev/null && echo tail >> /data/blob && sha256sum /data/blob && wc -c < /data/blob",
      ],
    });
    const r = await rt.run(["run", "--bundle", bundle, "writer"]);
    expect(r.code).toBe(0);
    const [digest, size] = r.stdout.trim().split("\n");
    const onHost = join(bundle, "rootfs/data/blob");
    expect(String(statSync(onHost).size)).toBe((size ?? "").trim());
    expect(`${sha256(onHost)}  /data/blob`).toBe(digest as string);
  }, 180_000);

  test("a volume shared by two running containers: each sees the other's writes and the host's", async () => {
    const vol = join(tempDir(), "vol");
    mkdirSync(vol);
    const withVolume = () =>
      makeBundle({
        args: ["sleep", "100000"],
        edit: (s) => {
          (s.mounts as unknown[]).push({
            destination: "/vol",
            type: "bind",
            source: vol,
            options: ["rbind", "rw"],
          });
        },
      });
    for (const id of ["vol-a", "vol-b"])
      expect((await rt.run(["run", "-d", "--bundle", withVolume(), id])).code).toBe(0);
    const sh = (id: string, script: string) => rt.run(["exec", id, "sh", "-c", script]);

    // B reads (and so may cache) the file first; then A rewrites it and makes a new one.
    expect((await sh("vol-a", "echo one > /vol/shared")).code).toBe(0);
    expect((await sh("vol-b", "cat /vol/shared; ls /vol")).stdout).toBe("one\nshared\n");
    expect((await sh("vol-a", "echo two > /vol/shared; echo new > /vol/made-by-a")).code).toBe(0);
    expect((await sh("vol-b", "cat /vol/shared /vol/made-by-a; ls /vol")).stdout).toBe(
      "two\nnew\nmade-by-a\nshared\n",
    );
    // B appends; A and the host see it; the host writes; both see that.
    expect((await sh("vol-b", "echo three >> /vol/shared")).code).toBe(0);
    expect((await sh("vol-a", "cat /vol/shared")).stdout).toBe("two\nthree\n");
    expect(readFileSync(join(vol, "shared"), "utf8")).toBe("two\nthree\n");
    writeFileSync(join(vol, "shared"), "from the host\n");
    for (const id of ["vol-a", "vol-b"])
      expect((await sh(id, "cat /vol/shared")).stdout).toBe("from the host\n");
    // A removes it: gone for B too.
    expect((await sh("vol-a", "rm /vol/made-by-a")).code).toBe(0);
    expect((await sh("vol-b", "ls /vol")).stdout).toBe("shared\n");
    for (const id of ["vol-a", "vol-b"]) expect((await rt.run(["delete", "--force", id])).code).toBe(0);
  }, 300_000);
});
