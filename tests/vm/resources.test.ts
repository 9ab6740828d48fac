/**
 * A container's resources are its VM's (issue: resources): the VM is sized from the
 * container's limits, the container's cgroup in the guest carries the limits themselves,
 * and the stand-in and QEMU live in the container's cgroupsPath on the host, bounded by the
 * VM's size plus its measured overhead; the cgroup goes with the container.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { hostOverheadMiB } from "../../src/lifecycle/host-cgroup.ts";
import { cgroupMounts, resolveCgroupDirs } from "../../src/sys/cgroups.ts";
import { makeBundle } from "../lib/bundle.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const MIB = 1024 * 1024;

afterAll(async () => {
  await rt.dispose();
});

afterEach(async () => {
  for (const id of rt.leftovers()) await rt.run(["delete", "--force", id]);
});

const mounts = cgroupMounts();
/** The file of a controller's cgroup `path` on the host (v1: its hierarchy; v2: the one tree). */
const hostFile = (path: string, controller: string, file: string) => {
  const dirs = resolveCgroupDirs(path, mounts);
  return join((mounts.version === 2 ? dirs[""] : dirs[controller]) as string, file);
};
const readHost = (path: string, controller: string, file: string) =>
  readFileSync(hostFile(path, controller, file), "utf8").trim();

/** Prints what the guest shows the container: its CPUs, MemTotal, its cgroup's limits. */
const SHOW = "nproc; grep MemTotal /proc/meminfo; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max";

describe("VM size and host cgroup from the container's limits", () => {
  test("256 MiB, 1.5 CPUs: 2 vCPUs, 256 MiB + the guest's reserve; the guest cgroup has the limits; the host cgroup holds QEMU with its bound; gone after delete", async () => {
    const path = `/cc-oci-test/${process.pid}/limited`;
    const b = makeBundle({
      args: ["sh", "-c", `${SHOW}; sleep 600`],
      edit: (s) => {
        const linux = s.linux as Record<string, unknown>;
        linux.resources = { memory: { limit: 256 * MIB }, cpu: { quota: 150_000, period: 100_000 } };
        linux.cgroupsPath = path;
      },
    });
    const r = await rt.run(["run", "-d", "--bundle", b, "limited"]);
    expect(r.code).toBe(0);
    const state = JSON.parse((await rt.run(["state", "limited"])).stdout);
    const memoryMiB = Number(state.annotations["io.cc-oci-runtime.vm.memory-mib"]);
    expect(state.annotations["io.cc-oci-runtime.vm.vcpus"]).toBe("2");
    expect(memoryMiB).toBeGreaterThanOrEqual(256 + 160);
    const rows = JSON.parse((await rt.run(["list", "--all", "-f", "json"])).stdout);
    expect(rows.find((row: { id: string }) => row.id === "limited").vm).toMatchObject({
      vcpus: 2,
      memoryMiB,
    });

    const shown = await rt.run(["exec", "limited", "sh", "-c", SHOW]);
    const [nproc, memTotal, memoryMax, cpuMax] = shown.stdout.trim().split("\n");
    expect(nproc).toBe("2");
    const totalKiB = Number(/(\d+) kB/.exec(memTotal ?? "")?.[1]);
    // The guest kernel keeps some of the VM's memory for itself; the rest is MemTotal.
    expect(totalKiB / 1024).toBeGreaterThan(memoryMiB - 80);
    expect(totalKiB / 1024).toBeLessThanOrEqual(memoryMiB);
    expect(memoryMax).toBe(String(256 * MIB));
    expect(cpuMax).toBe("150000 100000");

    const stored = JSON.parse(readFileSync(join(rt.root, "limited", "state.json"), "utf8"));
    const procs = readHost(path, "memory", "cgroup.procs").split("\n").map(Number);
    expect(procs).toContain(state.pid);
    expect(procs).toContain(stored.vm.qemu.pid);
    const overhead = hostOverheadMiB(stored.vm.accelerator as string);
    const memFile = mounts.version === 2 ? "memory.max" : "memory.limit_in_bytes";
    expect(Number(readHost(path, "memory", memFile))).toBe((memoryMiB + overhead) * MIB);
    if (mounts.version === 1) expect(readHost(path, "cpu", "cpu.cfs_quota_us")).toBe("150000");
    else expect(readHost(path, "cpu", "cpu.max")).toBe("150000 100000");

    // update: within the VM, in the guest and on the host.
    expect((await rt.run(["update", "--cpu-quota", "50000", "limited"])).code).toBe(0);
    if (mounts.version === 1) expect(readHost(path, "cpu", "cpu.cfs_quota_us")).toBe("50000");
    else expect(readHost(path, "cpu", "cpu.max")).toBe("50000 100000");
    const after = await rt.run(["exec", "limited", "cat", "/sys/fs/cgroup/cpu.max"]);
    expect(after.stdout.trim()).toBe("50000 100000");

    expect((await rt.run(["delete", "--force", "limited"])).code).toBe(0);
    for (const dir of Object.values(resolveCgroupDirs(`/cc-oci-test/${process.pid}`, mounts)))
      expect(existsSync(dir)).toBe(false);
  }, 300_000);

  test("no limits: the default VM (1 vCPU, 256 MiB); no cgroupsPath: runc's /<id>, without a memory bound", async () => {
    const id = `cc-default-${process.pid}`;
    const b = makeBundle({ args: ["sleep", "600"] });
    expect((await rt.run(["run", "-d", "--bundle", b, id])).code).toBe(0);
    const state = JSON.parse((await rt.run(["state", id])).stdout);
    expect(state.annotations).toMatchObject({
      "io.cc-oci-runtime.vm.vcpus": "1",
      "io.cc-oci-runtime.vm.memory-mib": "256",
    });
    expect(readHost(`/${id}`, "memory", "cgroup.procs").split("\n").map(Number)).toContain(state.pid);
    const limit = Number(
      readHost(`/${id}`, "memory", mounts.version === 2 ? "memory.max" : "memory.limit_in_bytes"),
    );
    expect(Number.isNaN(limit) || limit > 2 ** 60).toBe(true); // "max", or v1's near-2^63
    expect((await rt.run(["delete", "--force", id])).code).toBe(0);
    for (const dir of Object.values(resolveCgroupDirs(`/${id}`, mounts))) expect(existsSync(dir)).toBe(false);
  }, 300_000);

  test("--systemd-cgroup: systemd's slice:prefix:name, or without systemd running an error naming the option", async () => {
    const b = makeBundle({ args: ["sleep", "600"] });
    const r = await rt.run(["--systemd-cgroup", "run", "-d", "--bundle", b, "sdcg"]);
    if (existsSync("/run/systemd/system")) {
      expect(r.code).toBe(0);
      const stored = JSON.parse(readFileSync(join(rt.root, "sdcg", "state.json"), "utf8"));
      expect(stored.hostCgroup.dirs.memory ?? stored.hostCgroup.dirs[""]).toMatch(
        /\/system\.slice\/cc-oci-runtime-sdcg\.scope$/,
      );
      expect((await rt.run(["delete", "--force", "sdcg"])).code).toBe(0);
      return;
    }
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--systemd-cgroup: systemd is not running on this host/);
    expect(rt.leftovers()).toEqual([]);
    expect(existsSync(hostFile("/sdcg", "memory", ""))).toBe(false);
  });
});
