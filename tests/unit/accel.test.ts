/**
 * The accelerator probe, on fake hosts: every branch is tested whatever this machine has
 * (no /dev/kvm, a PVM one, a usable one), and nothing here reads the real host.
 */
import { describe, expect, test } from "bun:test";
import { chooseAccel, type HostFacts, kvmUsable, readTscKhz } from "../../src/hypervisor/accel.ts";

interface Fake {
  files?: Record<string, string>;
  readWrite?: string[];
  dmesg?: string;
}

function fakeHost(f: Fake): HostFacts {
  const files = f.files ?? {};
  return {
    exists: (p) => p in files,
    readWrite: (p) => p in files && (f.readWrite ?? []).includes(p),
    read: (p) => files[p] ?? "",
    kernelLog: () => f.dmesg ?? "",
  };
}

const TSC = { "/sys/devices/system/cpu/cpu0/tsc_freq_khz": "2100000\n" };
const noKvm = fakeHost({ files: { ...TSC } });
const kvmNotOpenable = fakeHost({ files: { ...TSC, "/dev/kvm": "" } });
const pvm = fakeHost({
  files: { ...TSC, "/dev/kvm": "", "/sys/module/kvm_pvm": "" },
  readWrite: ["/dev/kvm"],
});
const usable = fakeHost({
  files: { ...TSC, "/dev/kvm": "", "/sys/module/kvm": "" },
  readWrite: ["/dev/kvm"],
});
const auto = {};

describe("accelerator probe", () => {
  test("no /dev/kvm: TCG with -cpu max and tsc_early_khz", () => {
    expect(kvmUsable(noKvm)).toEqual({ ok: false, reason: "no /dev/kvm" });
    expect(chooseAccel(undefined, noKvm, auto)).toEqual({
      accel: "tcg",
      cpu: "max",
      kernelParams: ["tsc_early_khz=2100000"],
      reason: "no /dev/kvm",
    });
  });

  test("a /dev/kvm that does not open read-write: TCG", () => {
    expect(kvmUsable(kvmNotOpenable).reason).toBe("/dev/kvm is not read-writable");
    expect(chooseAccel(undefined, kvmNotOpenable, auto).accel).toBe("tcg");
  });

  test("PVM KVM (kvm_pvm) cannot run a stock kernel: TCG", () => {
    const probe = kvmUsable(pvm);
    expect(probe.ok).toBe(false);
    expect(probe.reason).toContain("PVM");
    expect(chooseAccel(undefined, pvm, auto)).toMatchObject({ accel: "tcg", cpu: "max" });
  });

  test("a usable /dev/kvm: KVM with -cpu host and no TSC parameter", () => {
    expect(kvmUsable(usable).ok).toBe(true);
    expect(chooseAccel(undefined, usable, auto)).toEqual({
      accel: "kvm",
      cpu: "host",
      kernelParams: [],
      reason: "/dev/kvm usable",
    });
  });

  test("an explicit choice (argument, then CC_OCI_ACCEL) wins over the probe", () => {
    expect(chooseAccel("kvm", noKvm, auto)).toMatchObject({ accel: "kvm", reason: "configured" });
    expect(chooseAccel("tcg", usable, auto)).toMatchObject({ accel: "tcg", reason: "configured" });
    expect(chooseAccel(undefined, usable, { CC_OCI_ACCEL: "tcg" }).accel).toBe("tcg");
    expect(chooseAccel(undefined, noKvm, { CC_OCI_ACCEL: "kvm" }).accel).toBe("kvm");
    expect(chooseAccel("tcg", noKvm, { CC_OCI_ACCEL: "kvm" }).accel).toBe("tcg");
  });
});

describe("host TSC frequency (microvm under TCG hangs without it)", () => {
  test("sysfs first", () => {
    expect(readTscKhz(fakeHost({ files: TSC, dmesg: "tsc: Detected 999.000 MHz processor" }))).toBe(
      2_100_000,
    );
  });
  test("then the kernel log: the refined calibration over the first detection", () => {
    const dmesg =
      "[0.0] tsc: Detected 2994.372 MHz processor\n[1.2] tsc: Refined TSC clocksource calibration: 2994.379 MHz\n";
    expect(readTscKhz(fakeHost({ dmesg }))).toBe(2_994_379);
    expect(readTscKhz(fakeHost({ dmesg: "tsc: Detected 2400.000 MHz processor" }))).toBe(2_400_000);
  });
  test("then cpuinfo, only with a constant TSC", () => {
    const cpuinfo = (flags: string) => `processor\t: 0\nflags\t\t: fpu ${flags} sse\ncpu MHz\t\t: 3100.123\n`;
    expect(readTscKhz(fakeHost({ files: { "/proc/cpuinfo": cpuinfo("constant_tsc") } }))).toBe(3_100_123);
    expect(readTscKhz(fakeHost({ files: { "/proc/cpuinfo": cpuinfo("tsc") } }))).toBeUndefined();
  });
  test("unknown: no tsc_early_khz at all rather than a wrong one", () => {
    expect(chooseAccel(undefined, fakeHost({}), auto).kernelParams).toEqual([]);
  });
});
