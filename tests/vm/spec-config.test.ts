/**
 * runtime-spec runtime.md, "create": changes to config.json after create MUST NOT affect the
 * container. start, exec and delete (its poststop hooks) use what create was given.
 */
import { afterAll, expect, test } from "bun:test";
import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
});

test("runtime-spec create: config.json replaced after create changes nothing (start, exec, poststop)", async () => {
  const marks = tempDir();
  const poststop = join(marks, "poststop");
  const bundle = makeBundle({
    args: ["sleep", "1000"],
    edit: (s) => {
      s.process.env = ["PATH=/bin", "FROM_CREATE=yes"];
      s.hooks = { poststop: [{ path: "/bin/sh", args: ["sh", "-c", `echo ran > ${poststop}`] }] };
    },
  });
  expect((await rt.run(["create", "--bundle", bundle, "cfg"])).code).toBe(0);
  writeFileSync(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.0" }));
  const start = await rt.run(["start", "cfg"]);
  expect(start.stderr).toBe("");
  expect(start.code).toBe(0);
  // exec's base process is the container's as created: its env is there.
  const exec = await rt.run(["exec", "cfg", "sh", "-c", "echo $FROM_CREATE"]);
  expect(exec).toMatchObject({ code: 0, stdout: "yes\n" });
  const del = await rt.run(["delete", "-f", "cfg"]);
  expect(del.stderr).toBe("");
  expect(del.code).toBe(0);
  expect(existsSync(poststop) && readFileSync(poststop, "utf8")).toBe("ran\n");
  expect(rt.leftovers()).toEqual([]);
}, 180_000);

const netnsOf = (pid: number) => readlinkSync(`/proc/${pid}/ns/net`);

test("runtime-spec namespaces: a network namespace path is where the stand-in lives; none asked (host network) is an error", async () => {
  const name = `cc-oci-spec-${process.pid}`;
  expect(Bun.spawnSync(["ip", "netns", "add", name]).exitCode).toBe(0);
  try {
    const path = `/run/netns/${name}`;
    const joined = makeBundle({
      args: ["sleep", "1000"],
      edit: (s) => {
        const linux = s.linux as { namespaces: { type: string; path?: string }[] };
        linux.namespaces = linux.namespaces.map((n) =>
          n.type === "network" ? { type: "network", path } : n,
        );
      },
    });
    expect((await rt.run(["run", "-d", "--bundle", joined, "netpath"])).code).toBe(0);
    const pid = JSON.parse((await rt.run(["state", "netpath"])).stdout).pid as number;
    expect(netnsOf(pid)).toBe(`net:[${statSync(path).ino}]`);
    expect((await rt.run(["delete", "-f", "netpath"])).code).toBe(0);

    const none = makeBundle({
      args: ["sleep", "1000"],
      edit: (s) => {
        const linux = s.linux as { namespaces: { type: string }[] };
        linux.namespaces = linux.namespaces.filter((n) => n.type !== "network");
      },
    });
    const r = await rt.run(["run", "-d", "--bundle", none, "nonet"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/field "linux.namespaces" has no network namespace: .*--network host/);
    expect((await rt.run(["state", "nonet"])).stderr).toMatch(/does not exist/);
    expect(rt.leftovers()).toEqual([]);
  } finally {
    Bun.spawnSync(["ip", "netns", "delete", name]);
  }
}, 180_000);

test("runtime-spec config-linux user namespace mappings: root inside is hostID 1000 where the share shows it", async () => {
  const bundle = makeBundle({
    args: ["sh", "-c", "id -u; touch /tmp/made-inside; stat -c %u /tmp/made-inside"],
    writable: true,
    edit: (s) => {
      const linux = s.linux as Record<string, unknown> & { namespaces: { type: string }[] };
      linux.namespaces.push({ type: "user" });
      linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 65536 }];
      linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 65536 }];
    },
  });
  // As with runc: the mapped root writes where the rootfs gives the mapped ids the right.
  chownSync(join(bundle, "rootfs/tmp"), 1000, 1000);
  const r = await rt.run(["run", "--bundle", bundle, "userns"]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("0\n0\n");
  expect(r.code).toBe(0);
  const made = statSync(join(bundle, "rootfs/tmp/made-inside"));
  expect([made.uid, made.gid]).toEqual([1000, 1000]);
  expect(rt.leftovers()).toEqual([]);
}, 180_000);

test("runtime-spec config mounts: a bind mount's root in the guest's mountinfo ends with its source's name", async () => {
  const volume = join(tempDir(), "myvolume");
  mkdirSync(volume);
  const bundle = makeBundle({
    args: ["sh", "-c", "grep ' /data ' /proc/self/mountinfo | cut -d' ' -f4"],
    edit: (s) => {
      (s.mounts as unknown[]).push({
        destination: "/data",
        type: "bind",
        source: volume,
        options: ["rbind"],
      });
    },
  });
  const r = await rt.run(["run", "--bundle", bundle, "mntname"]);
  expect(r.code).toBe(0);
  expect(r.stdout.trim()).toMatch(/\/myvolume$/);
}, 180_000);
