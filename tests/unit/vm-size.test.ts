import { describe, expect, test } from "bun:test";
import { GUEST_RESERVE_MIB } from "../../src/lifecycle/guest-config.ts";
import { sliceDir } from "../../src/lifecycle/host-cgroup.ts";
import { podSizing } from "../../src/lifecycle/pod.ts";
import { MEMORY_STEP_MIB, sizeVm } from "../../src/lifecycle/vm-size.ts";

const MIB = 1024 * 1024;
const DEFAULTS = { vcpus: 1, memoryMiB: 256 };
const HOST = { cpus: 2, memoryMiB: 24 * 1024 };

describe("a VM's size from its container's limits", () => {
  test("no limits: the defaults", () => {
    expect(sizeVm(undefined, DEFAULTS, HOST)).toEqual(DEFAULTS);
    expect(sizeVm({ cpu: { shares: 512 } as never }, { vcpus: 2, memoryMiB: 512 }, HOST)).toEqual({
      vcpus: 2,
      memoryMiB: 512,
    });
  });

  test("vCPUs: quota/period rounded up, the cpuset's count, the smaller of both, at most the host's", () => {
    const notes: string[] = [];
    const size = (cpu: object) => sizeVm({ cpu }, DEFAULTS, HOST, (m) => notes.push(m)).vcpus;
    expect(size({ quota: 150_000, period: 100_000 })).toBe(2);
    expect(size({ quota: 50_000, period: 100_000 })).toBe(1);
    expect(size({ quota: 100_000 })).toBe(1); // period defaults to 100 ms
    expect(size({ cpus: "1" })).toBe(1);
    expect(size({ cpus: "0-1", quota: 50_000, period: 100_000 })).toBe(1);
    expect(notes).toEqual([]);
    expect(size({ quota: 400_000, period: 100_000 })).toBe(2);
    expect(notes.join()).toMatch(/asks for 4 CPUs, this host lets us run on 2/);
  });

  test("memory: the limit plus the guest's reserve, in steps, never below the default, at most the host's", () => {
    const notes: string[] = [];
    const size = (limit: number) =>
      sizeVm({ memory: { limit } }, DEFAULTS, HOST, (m) => notes.push(m)).memoryMiB;
    // 256 MiB + the reserve, rounded up to the step.
    const want = Math.ceil((256 + GUEST_RESERVE_MIB) / MEMORY_STEP_MIB) * MEMORY_STEP_MIB;
    expect(size(256 * MIB)).toBe(want);
    expect(want - GUEST_RESERVE_MIB).toBeGreaterThanOrEqual(256);
    expect(size(2 * 1024 * MIB)).toBe(
      Math.ceil((2048 + GUEST_RESERVE_MIB) / MEMORY_STEP_MIB) * MEMORY_STEP_MIB,
    );
    expect(size(16 * MIB)).toBe(256);
    expect(notes).toEqual([]);
    expect(size(100 * 1024 * MIB)).toBe(24 * 1024);
    expect(notes.join()).toMatch(/more than this host has: the VM gets 24576 MiB/);
  });
});

describe("systemd's cgroup paths (--systemd-cgroup)", () => {
  test("a slice's directory nests its parents; -.slice is the root", () => {
    expect(sliceDir("system.slice")).toBe("/system.slice");
    expect(sliceDir("kubepods-besteffort-pod1.slice")).toBe(
      "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice",
    );
    expect(sliceDir("-.slice")).toBe("/");
  });
});

describe("a pod's VM", () => {
  test("sized for the pod's totals (containerd's sandbox annotations), else the sandbox's own limits", () => {
    const host = { cpus: 8, memoryMiB: 16384 };
    const defaults = { vcpus: 1, memoryMiB: 256 };
    const pod = podSizing(
      {
        "io.kubernetes.cri.sandbox-memory": String(512 * 1024 * 1024),
        "io.kubernetes.cri.sandbox-cpu-quota": "250000",
        "io.kubernetes.cri.sandbox-cpu-period": "100000",
      },
      undefined,
    );
    expect(sizeVm(pod, defaults, host)).toEqual({ vcpus: 3, memoryMiB: 704 });
    // "0": the pod's containers set no limits (containerd sends the annotations all the same).
    const none = { "io.kubernetes.cri.sandbox-memory": "0", "io.kubernetes.cri.sandbox-cpu-quota": "0" };
    expect(sizeVm(podSizing(none, undefined), defaults, host)).toEqual(defaults);
    const own = { memory: { limit: 100 * 1024 * 1024 } };
    expect(podSizing(none, own)).toBe(own);
  });
});
