/**
 * Which accelerator a guest gets. `/dev/kvm` opening is not enough: on hosts that are
 * themselves PVM guests (kvm_pvm) KVM runs only PVM-enabled kernels, and a stock guest
 * kernel crawls and then stops with an emulation failure. So KVM is used when it exists,
 * opens read-write and is not PVM; otherwise TCG. An explicit choice (vm.json
 * "accelerator", or CC_OCI_ACCEL in the environment) wins over the probe.
 */

import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";

export type Accel = "kvm" | "tcg";

export interface AccelChoice {
  accel: Accel;
  cpu: string;
  /** Extra kernel parameters the accelerator needs. */
  kernelParams: string[];
  reason: string;
}

/** What the probe reads of the host: an interface so that tests can give it any host. */
export interface HostFacts {
  exists(path: string): boolean;
  readWrite(path: string): boolean;
  read(path: string): string;
  kernelLog(): string;
}

export const realHost: HostFacts = {
  exists: existsSync,
  readWrite(path) {
    try {
      accessSync(path, constants.R_OK | constants.W_OK);
      return true;
    } catch {
      return false;
    }
  },
  read: readOr,
  kernelLog() {
    try {
      return execFileSync("dmesg", { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch {
      return ""; // dmesg may be restricted: cpuinfo is the last source.
    }
  },
};

export function kvmUsable(host: HostFacts = realHost): { ok: boolean; reason: string } {
  if (!host.exists("/dev/kvm")) return { ok: false, reason: "no /dev/kvm" };
  if (!host.readWrite("/dev/kvm")) return { ok: false, reason: "/dev/kvm is not read-writable" };
  if (host.exists("/sys/module/kvm_pvm")) {
    return { ok: false, reason: "/dev/kvm is PVM (kvm_pvm): it cannot run a stock guest kernel" };
  }
  return { ok: true, reason: "/dev/kvm usable" };
}

export function chooseAccel(
  explicit?: string,
  host: HostFacts = realHost,
  env: Record<string, string | undefined> = process.env,
): AccelChoice {
  const wanted = explicit ?? env.CC_OCI_ACCEL ?? "auto";
  let accel: Accel;
  let reason: string;
  if (wanted === "kvm" || wanted === "tcg") {
    accel = wanted;
    reason = "configured";
  } else {
    const probe = kvmUsable(host);
    accel = probe.ok ? "kvm" : "tcg";
    reason = probe.reason;
  }
  if (accel === "kvm") return { accel, cpu: "host", kernelParams: [], reason };
  // Under TCG the guest reads the host's TSC; microvm has no PIT/HPET to calibrate it
  // against and hangs in timer setup unless told the frequency.
  const khz = host === realHost ? hostTscKhz() : readTscKhz(host);
  return { accel, cpu: "max", kernelParams: khz ? [`tsc_early_khz=${khz}`] : [], reason };
}

let tscCache: number | undefined;

/** The host TSC frequency in kHz (sysfs, then the kernel log, then cpuinfo with constant_tsc). */
export function hostTscKhz(): number | undefined {
  tscCache ??= readTscKhz(realHost);
  return tscCache;
}

export function readTscKhz(host: HostFacts): number | undefined {
  const fromSysfs = host.read("/sys/devices/system/cpu/cpu0/tsc_freq_khz").trim();
  if (/^\d+$/.test(fromSysfs)) return Number(fromSysfs);
  const log = host.kernelLog();
  const mhz =
    /tsc: Refined TSC clocksource calibration: ([\d.]+) MHz/.exec(log)?.[1] ??
    /tsc: Detected ([\d.]+) MHz processor/.exec(log)?.[1];
  if (mhz) return Math.round(Number(mhz) * 1000);
  const cpuinfo = host.read("/proc/cpuinfo");
  if (/^flags.*\bconstant_tsc\b/m.test(cpuinfo)) {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1];
    if (m) return Math.round(Number(m) * 1000);
  }
  return undefined;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
