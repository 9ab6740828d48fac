import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { chooseAccel, hostTscKhz, kvmUsable } from "../../src/hypervisor/accel.ts";

describe("accelerator", () => {
  test("the probe refuses PVM KVM (these machines) and falls back to TCG with -cpu max and tsc_early_khz", () => {
    const probe = kvmUsable();
    const choice = chooseAccel();
    if (existsSync("/sys/module/kvm_pvm")) {
      expect(probe.ok).toBe(false);
      expect(probe.reason).toContain("PVM");
    }
    if (!probe.ok) {
      expect(choice.accel).toBe("tcg");
      expect(choice.cpu).toBe("max");
      expect(choice.kernelParams).toEqual([`tsc_early_khz=${hostTscKhz()}`]);
    } else {
      expect(choice).toMatchObject({ accel: "kvm", cpu: "host", kernelParams: [] });
    }
  });
  test("an explicit choice wins over the probe", () => {
    expect(chooseAccel("kvm").accel).toBe("kvm");
    expect(chooseAccel("tcg").accel).toBe("tcg");
    expect(chooseAccel("tcg").reason).toBe("configured");
  });
  test("the host TSC frequency is known here (microvm under TCG hangs without it)", () => {
    expect(hostTscKhz()).toBeGreaterThan(100_000);
  });
});
