/**
 * Nothing of the user's is lost (safety issue, item 1): the bundle's rootfs and a bind-mounted
 * volume keep their content through `run`, `delete`, `delete -f`, a killed stand-in and a
 * killed QEMU, with `--root` reached through a symlink (Debian's /var/run -> /run) and given
 * as a relative path. After each: no container directory, no mount below the root.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mountsBelow, unmountAndRemove } from "../../src/sys/mounts.ts";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { Runtime } from "../lib/runtime.ts";

// base/real/root is the root; base/link -> base/real is how it is named.
const base = tempDir("cc-oci-root-");
mkdirSync(join(base, "real/root"), { recursive: true });
mkdirSync(join(base, "real/rel-root"), { recursive: true });
symlinkSync(join(base, "real"), join(base, "link"));
const viaSymlink = new Runtime({ root: join(base, "real/root"), rootArg: join(base, "link/root") });
const relative = new Runtime({ root: join(base, "real/rel-root"), rootArg: "link/rel-root", cwd: base });

interface UserData {
  bundle: string;
  rootfsFile: string;
  volumeFile: string;
}

/** A writable rootfs and a volume, each with a file the container never touches. */
function userData(args: string[]): UserData {
  const volume = tempDir("cc-oci-volume-");
  const volumeFile = join(volume, "keep.txt");
  writeFileSync(volumeFile, "volume data\n");
  const bundle = makeBundle({
    args,
    writable: true,
    edit: (s) => {
      (s.mounts as unknown[]).push({
        destination: "/mnt/vol",
        type: "bind",
        source: volume,
        options: ["rbind"],
      });
    },
  });
  const rootfsFile = join(bundle, "rootfs/data/keep.txt");
  writeFileSync(rootfsFile, "rootfs data\n");
  return { bundle, rootfsFile, volumeFile };
}

function expectIntact(rt: Runtime, d: UserData): void {
  expect(existsSync(d.rootfsFile) && readFileSync(d.rootfsFile, "utf8")).toBe("rootfs data\n");
  expect(existsSync(d.volumeFile) && readFileSync(d.volumeFile, "utf8")).toBe("volume data\n");
  expect(existsSync(join(d.bundle, "rootfs/bin/busybox"))).toBe(true);
  expect(rt.leftovers()).toEqual([]);
  expect(mountsBelow(rt.root)).toEqual([]);
}

async function statusOf(rt: Runtime, id: string): Promise<string> {
  const r = await rt.run(["state", id]);
  return r.code === 0 ? (JSON.parse(r.stdout) as { status: string }).status : `error: ${r.stderr}`;
}

async function waitStopped(rt: Runtime, id: string): Promise<void> {
  for (let i = 0; i < 150 && (await statusOf(rt, id)) !== "stopped"; i++) await Bun.sleep(100);
  expect(await statusOf(rt, id)).toBe("stopped");
}

const stateFile = (rt: Runtime, id: string) =>
  JSON.parse(readFileSync(join(rt.root, id, "state.json"), "utf8")) as {
    standin: { pid: number };
    vm: { qemu: { pid: number } };
  };

describe("the user's data survives, --root through a symlink", () => {
  test("run: the workload reads the volume, its exit leaves rootfs and volume intact", async () => {
    const d = userData(["sh", "-c", "cat /mnt/vol/keep.txt /data/keep.txt"]);
    const r = await viaSymlink.run(["run", "--bundle", d.bundle, "run1"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("volume data\nrootfs data\n");
    expect(r.code).toBe(0);
    expectIntact(viaSymlink, d);
  }, 180_000);

  test("delete -f of a running container", async () => {
    const d = userData(["sleep", "1000"]);
    expect((await viaSymlink.run(["run", "-d", "--bundle", d.bundle, "force1"])).code).toBe(0);
    expect(await statusOf(viaSymlink, "force1")).toBe("running");
    expect(mountsBelow(viaSymlink.root).length).toBeGreaterThan(0);
    expect((await viaSymlink.run(["delete", "-f", "force1"])).code).toBe(0);
    expectIntact(viaSymlink, d);
  }, 180_000);

  test("delete after the workload exited", async () => {
    const d = userData(["true"]);
    expect((await viaSymlink.run(["create", "--bundle", d.bundle, "plain1"])).code).toBe(0);
    expect((await viaSymlink.run(["start", "plain1"])).code).toBe(0);
    await waitStopped(viaSymlink, "plain1");
    expect((await viaSymlink.run(["delete", "plain1"])).code).toBe(0);
    expectIntact(viaSymlink, d);
  }, 180_000);

  test("a killed stand-in, then delete", async () => {
    const d = userData(["sleep", "1000"]);
    expect((await viaSymlink.run(["run", "-d", "--bundle", d.bundle, "standin1"])).code).toBe(0);
    process.kill(stateFile(viaSymlink, "standin1").standin.pid, "SIGKILL");
    await waitStopped(viaSymlink, "standin1");
    // The stand-in had no chance to unmount: the share's mounts are still there.
    expect(mountsBelow(viaSymlink.root).length).toBeGreaterThan(0);
    expect((await viaSymlink.run(["delete", "standin1"])).code).toBe(0);
    expectIntact(viaSymlink, d);
  }, 180_000);

  test("a killed QEMU, then delete", async () => {
    const d = userData(["sleep", "1000"]);
    expect((await viaSymlink.run(["run", "-d", "--bundle", d.bundle, "qemu1"])).code).toBe(0);
    process.kill(stateFile(viaSymlink, "qemu1").vm.qemu.pid, "SIGKILL");
    await waitStopped(viaSymlink, "qemu1");
    expect((await viaSymlink.run(["delete", "qemu1"])).code).toBe(0);
    expectIntact(viaSymlink, d);
  }, 180_000);
});

describe("the user's data survives, a relative --root", () => {
  test("run, then run -d and delete -f", async () => {
    const env = { CC_OCI_TEMPLATE: "0" };
    const d = userData(["cat", "/mnt/vol/keep.txt"]);
    const r = await relative.run(["run", "--bundle", d.bundle, "rel1"], { env });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("volume data\n");
    expect(r.code).toBe(0);
    expectIntact(relative, d);
    const e = userData(["sleep", "1000"]);
    expect((await relative.run(["run", "-d", "--bundle", e.bundle, "rel2"], { env })).code).toBe(0);
    expect((await relative.run(["delete", "-f", "rel2"])).code).toBe(0);
    expectIntact(relative, e);
  }, 180_000);
});

afterAll(async () => {
  await viaSymlink.dispose();
  await relative.dispose();
  unmountAndRemove(base);
});
