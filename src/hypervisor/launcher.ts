/**
 * From a resolved bundle to the exact hypervisor command line of one container's VM.
 * This is the only place the tag values are decided; expander.ts does the substitution.
 */
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { v4 as uuidv4 } from "uuid";
import type { ResolvedBundle } from "../config/resolver.ts";
import { guestLayer } from "../config/writable-layer.ts";
import { RuntimeError } from "../errors.ts";
import type { GuestLayerKind } from "../protocol/guest-layout.ts";
import { shareSecurityModel } from "../sys/privilege.ts";
import { type AccelChoice, chooseAccel } from "./accel.ts";
import { readHypervisorArgs } from "./args-file.ts";
import { expand, kernelCmdline } from "./expander.ts";
import { LAYER_DISK_DIR, layerDiskArgs } from "./layer-disk.ts";
import { DEFAULT_NICS, type NicBackend, nicArgs } from "./nics.ts";

export const DEFAULT_MEMORY_MIB = 256;
/** sun_path holds 108 bytes; longer socket paths are given relative to the VM's cwd. */
export const SUN_PATH_MAX = 107;

export interface VmPlan {
  path: string;
  args: string[];
  accel: AccelChoice;
  uuid: string;
  name: string;
  memoryMiB: number;
  vcpus: number;
  kernel: string;
  initrd?: string;
  image: string;
  /** Network cards (nics.ts): card i is backed by the fd TAP_FD_BASE+i, a tap. */
  nics: number;
  /** The container's writable layer in the guest (config/writable-layer.ts). */
  layer?: GuestLayerKind;
  /** With a layer on a disk: the disk's file (hypervisor/layer-disk.ts). */
  layerDisk?: string;
}

/**
 * The capabilities QEMU keeps (it runs as root): those its 9p server needs to act on the
 * container's files as their owners would (security_model=passthrough: create files
 * owned by any user, device nodes, set modes and times). Not CAP_SETFCAP: a guest could
 * otherwise give a file in a host directory capabilities. No CAP_SETUID/SETGID either
 * (the seccomp filter forbids those calls anyway).
 */
export const QEMU_CAPABILITIES = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_MKNOD: 27,
} as const;

/** Files of a VM inside the container's state directory (QEMU runs with it as cwd). */
export const VM_FILES = {
  qmp: "qmp.sock",
  agent: "agent.sock",
  process: "process.sock",
  console: "console.log",
  hypervisorLog: "hypervisor.log",
  hub: "standin.sock",
  shared: "shared",
  /** One launch file and one pid file per running exec (ps -f json lists the live ones). */
  execs: "execs",
  /** A template's blank layer disk (hypervisor/layer-disk.ts; a container's is in LAYER_DISK_DIR). */
  layer: "layer.ext4",
} as const;

/**
 * The fds at which QEMU inherits the sockets the runtime listens on for it (boot.ts binds
 * them before QEMU starts, so that a connect succeeds at once instead of being retried
 * until QEMU has bound its own). fd 3 is a clone's snapshot (template-vm.ts INCOMING_FD),
 * the taps follow (nics.ts TAP_FD_BASE).
 */
export const VM_SOCKET_FDS = { qmp: 4, agent: 5, process: 6 } as const;

/** The path to use for a socket in `dir`: absolute when it fits in sun_path, else relative. */
export function socketPath(dir: string, name: string): string {
  const abs = join(dir, name);
  return abs.length <= SUN_PATH_MAX ? abs : name;
}

function mustExist(file: string | undefined, what: string, source: string): string {
  if (!file) throw new RuntimeError(`${source}: no ${what} configured`);
  try {
    statSync(file);
  } catch {
    throw new RuntimeError(`${what} ${file} does not exist (configured in ${source})`);
  }
  return file;
}

/** The size of a VM whose container sets no limits: vm.json's, else 1 vCPU and 256 MiB. */
export function defaultVmSize(r: ResolvedBundle): { vcpus: number; memoryMiB: number } {
  return { vcpus: r.vm.vm.vcpus ?? 1, memoryMiB: r.vm.vm.memoryMiB ?? DEFAULT_MEMORY_MIB };
}

export function planVm(
  r: ResolvedBundle,
  stateDir: string,
  id: string,
  nicBackend: NicBackend = "tap",
  wanted = defaultVmSize(r),
  layerDiskFile?: string,
): VmPlan {
  const vm = r.vm.vm;
  const src = r.vm.source;
  const kernel = mustExist(vm.kernelPath, "guest kernel", src);
  const image = mustExist(vm.imagePath, "guest image", src);
  const initrd = vm.initrd ? mustExist(vm.initrd, "guest initrd", src) : undefined;
  const accel = chooseAccel(vm.accelerator === "auto" ? undefined : vm.accelerator);
  const uuid = uuidv4();
  const name = `cc-${id}`.slice(0, 64);
  const parsed = readHypervisorArgs(r.hypervisorArgsFile);
  const memoryMiB = wanted.memoryMiB;
  const expanded = expand(parsed, {
    COMMS_SOCKET: socketPath(stateDir, VM_FILES.qmp),
    AGENT_SOCKET: socketPath(stateDir, VM_FILES.agent),
    PROCESS_SOCKET: socketPath(stateDir, VM_FILES.process),
    COMMS_FD: String(VM_SOCKET_FDS.qmp),
    AGENT_FD: String(VM_SOCKET_FDS.agent),
    PROCESS_FD: String(VM_SOCKET_FDS.process),
    CONSOLE_DEVICE: `file,id=console,path=${join(stateDir, VM_FILES.console)}`,
    WORKLOAD_DIR: join(stateDir, VM_FILES.shared),
    KERNEL: kernel,
    INITRD: initrd,
    IMAGE: image,
    SIZE: String(statSync(image).size),
    KERNEL_PARAMS: kernelCmdline([...vm.kernelParameters, ...accel.kernelParams]),
    NAME: name,
    UUID: uuid,
    ACCEL: accel.accel,
    CPU: accel.cpu,
    MEMORY: String(memoryMiB),
    VCPUS: String(wanted.vcpus),
    SHARE_SECURITY: shareSecurityModel(),
  });
  // A hypervisor named by the vm object overrides the first line of hypervisor.args.
  const path = vm.hypervisorPath ?? expanded.path;
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new RuntimeError(
      `hypervisor ${path} is not an executable file (configured in ${vm.hypervisorPath ? src : r.hypervisorArgsFile})`,
    );
  }
  const nics = vm.networkInterfaces ?? DEFAULT_NICS;
  const layer = guestLayer(r);
  const layerDisk = layer === "disk" ? (layerDiskFile ?? join(LAYER_DISK_DIR, `${uuid}.ext4`)) : undefined;
  const args = [
    ...expanded.args,
    ...nicArgs(nics, nicBackend),
    ...(layerDisk ? layerDiskArgs(layerDisk) : []),
    ...vm.hypervisorParameters,
  ];
  const size = vmSize(args, memoryMiB);
  return {
    path,
    args,
    accel,
    uuid,
    name,
    // What QEMU is given (its last -m and -smp win, as in QEMU), not what we meant to give it.
    memoryMiB: size.memoryMiB,
    vcpus: size.vcpus,
    kernel,
    initrd,
    image,
    nics,
    layer,
    layerDisk,
  };
}

/**
 * The VM's size as QEMU reads its arguments: `-m N[M|G]` or `-m size=N...`, `-smp N` or
 * `-smp cpus=N,...` (the last of each counts; QEMU's defaults are 1 vCPU and 128 MiB).
 */
export function vmSize(args: string[], fallbackMiB = 128): { vcpus: number; memoryMiB: number } {
  let vcpus = 1;
  let memoryMiB = fallbackMiB;
  args.forEach((a, i) => {
    const v = args[i + 1];
    if (v === undefined) return;
    if (a === "-smp") {
      const n = /^(?:cpus=)?(\d+)/.exec(v.split(",").find((p) => /^(cpus=)?\d+$/.test(p)) ?? "")?.[1];
      if (n) vcpus = Number(n);
    } else if (a === "-m") {
      const m = /^(?:size=)?(\d+)([MG]?)/i.exec(v.split(",").find((p) => /^(size=)?\d/.test(p)) ?? "");
      if (m) memoryMiB = Number(m[1]) * (m[2]?.toUpperCase() === "G" ? 1024 : 1);
    }
  });
  return { vcpus, memoryMiB };
}

/** The last lines of the guest console, for errors about a guest that did not come up. */
export function consoleTail(stateDir: string, lines = 15): string {
  const parts: string[] = [];
  for (const f of [VM_FILES.console, VM_FILES.hypervisorLog]) {
    try {
      const text = readFileSync(join(stateDir, f), "utf8").trimEnd();
      if (text) parts.push(`${f}: ${text.split("\n").slice(-lines).join(" | ")}`);
    } catch {
      // Not written yet.
    }
  }
  return parts.length ? parts.join(" || ") : "(no console output)";
}
