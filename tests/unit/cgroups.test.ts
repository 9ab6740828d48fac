import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import {
  cgroupMounts,
  cgroupPids,
  joinCgroup,
  makeCgroup,
  removeCgroup,
  removeCgroupWhenEmpty,
  resolveCgroupDirs,
  sharesToWeight,
} from "../../src/sys/cgroups.ts";

const V1 = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;
const V2 = "30 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";

describe("host cgroups", () => {
  test("hierarchies from mountinfo: v1 controllers win over a unified tree beside them; v2 alone", () => {
    expect(cgroupMounts(V1)).toEqual({
      version: 1,
      roots: {
        cpu: "/sys/fs/cgroup/cpu,cpuacct",
        cpuacct: "/sys/fs/cgroup/cpu,cpuacct",
        memory: "/sys/fs/cgroup/memory",
      },
    });
    expect(cgroupMounts(V2)).toEqual({ version: 2, roots: { "": "/sys/fs/cgroup" } });
    expect(() => cgroupMounts("")).toThrow(/no cgroup hierarchy/);
  });

  test("an absolute cgroupsPath is from each hierarchy's root", () => {
    expect(resolveCgroupDirs("/docker/abc", cgroupMounts(V1))).toEqual({
      cpu: "/sys/fs/cgroup/cpu,cpuacct/docker/abc",
      cpuacct: "/sys/fs/cgroup/cpu,cpuacct/docker/abc",
      memory: "/sys/fs/cgroup/memory/docker/abc",
    });
  });

  test("cpu.shares to v2's cpu.weight, as runc converts", () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262144)).toBe(10000);
  });

  test("two containers under one new parent: the parent stays while the other is there", async () => {
    const top = `/cc-oci-unit-${process.pid}`;
    const a = makeCgroup(`${top}/a`);
    const b = makeCgroup(`${top}/b`);
    expect(a.created.length).toBeGreaterThan(b.created.length); // a made the parent
    for (const dir of Object.values(b.dirs)) expect(existsSync(dir)).toBe(true);
    await removeCgroupWhenEmpty(a);
    for (const dir of Object.values(a.dirs)) expect(existsSync(dir)).toBe(false);
    for (const dir of Object.values(b.dirs)) expect(existsSync(dir)).toBe(true);
    removeCgroup(b);
    removeCgroup({ created: a.created, dirs: a.dirs }); // the parent, now empty
    for (const dir of Object.values(resolveCgroupDirs(top, cgroupMounts())))
      expect(existsSync(dir)).toBe(false);
  });

  test("v2 (the unified tree beside v1 here, without controllers): made, joined by a process, removed once it has left", async () => {
    const unified = "/sys/fs/cgroup/unified";
    if (!existsSync(`${unified}/cgroup.procs`)) return; // a v2-only host: the VM tests use v2 itself
    const mounts = { version: 2 as const, roots: { "": unified } };
    const cg = makeCgroup(`/cc-oci-unit-v2-${process.pid}/c`, mounts);
    expect(cg.dirs).toEqual({ "": `${unified}/cc-oci-unit-v2-${process.pid}/c` });
    const child = Bun.spawn(["sleep", "30"]);
    try {
      joinCgroup(cg, child.pid);
      expect(cgroupPids(cg)).toEqual([child.pid]);
      expect(() => removeCgroup(cg)).toThrow(/EBUSY/);
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    await removeCgroupWhenEmpty(cg);
    expect(existsSync(`${unified}/cc-oci-unit-v2-${process.pid}`)).toBe(false);
  });
});
