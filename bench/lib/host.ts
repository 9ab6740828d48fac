/** The machine and software a bench ran on (for the README line and the JSON). */
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";

function firstLine(argv: string[]): string {
  try {
    const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    return r.stdout.toString().split("\n")[0]?.trim() ?? "";
  } catch {
    return "";
  }
}

export function hostInfo(qemu: string, bin: string) {
  return {
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "?",
    memGiB: Math.round(totalmem() / 2 ** 30),
    loadAfter: loadavg(),
    qemu: firstLine([qemu, "--version"]),
    runc: firstLine(["runc", "--version"]),
    crun: firstLine(["crun", "--version"]),
    ccOciRuntime: firstLine([bin, "--version"]),
    kvm: readOr("/sys/module/kvm_pvm/initstate") ? "PVM (unusable for stock kernels)" : "",
  };
}

function readOr(f: string): string {
  try {
    return readFileSync(f, "utf8");
  } catch {
    return "";
  }
}
