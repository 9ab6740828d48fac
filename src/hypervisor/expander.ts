import { RuntimeError } from "../errors.ts";
import type { ArgLine, HypervisorArgsFile } from "./args-file.ts";

/**
 * The @TAG@s of hypervisor.args. The first ten are the seed's; the rest were added for
 * this runtime's guest (initrd, agent channel, accelerator, CPU model, memory size,
 * the sockets' fds, the share's security model).
 * This module is the only place that turns hypervisor.args into an argv.
 */
export const TAGS = {
  COMMS_SOCKET: "QMP control socket path",
  CONSOLE_DEVICE: "chardev spec where the guest console goes (a file under the state directory)",
  IMAGE: "guest root image path (vm.image)",
  KERNEL_PARAMS: "kernel command line, as ONE argument",
  KERNEL: "guest kernel path (vm.kernel.path)",
  NAME: "VM name",
  PROCESS_SOCKET: "socket whose hangup tells the host the hypervisor is gone",
  SIZE: "size of @IMAGE@ in bytes, computed from the file",
  UUID: "VM uuid",
  WORKLOAD_DIR: "host directory shared with the guest (the container's rootfs and bind-mount sources)",
  INITRD: "guest initramfs path (vm.kernel.initrd)",
  AGENT_SOCKET: "unix socket of the virtio-serial port the agent listens on",
  ACCEL: "accelerator: kvm or tcg",
  CPU: "CPU model: host with KVM, max under TCG",
  MEMORY: "guest memory in MiB",
  VCPUS: "number of vCPUs",
  COMMS_FD: "fd of a socket listening at @COMMS_SOCKET@, for QEMU's `fd=` (the runtime bound it)",
  AGENT_FD: "fd of a socket listening at @AGENT_SOCKET@",
  PROCESS_FD: "fd of a socket listening at @PROCESS_SOCKET@",
  SHARE_SECURITY:
    "9p security_model of the share: passthrough as root, none as a user (no chown to other ids)",
} as const;

export type Tag = keyof typeof TAGS;
export type TagValues = Partial<Record<Tag, string>>;

const TAG_RE = /@([A-Z][A-Z0-9_]*)@/g;

function isTag(name: string): name is Tag {
  return Object.hasOwn(TAGS, name);
}

function expandOne(arg: ArgLine, values: TagValues, file: string): string {
  return arg.text.replace(TAG_RE, (_whole, name: string) => {
    if (!isTag(name)) throw new RuntimeError(`${file}:${arg.line}: unknown tag @${name}@`);
    const value = values[name];
    if (value === undefined || value === "") {
      throw new RuntimeError(`${file}:${arg.line}: tag @${name}@ has no value`);
    }
    return value;
  });
}

/** Expands every tag; returns the executable and its argv (without argv[0]). */
export function expand(parsed: HypervisorArgsFile, values: TagValues): { path: string; args: string[] } {
  return {
    path: expandOne(parsed.path, values, parsed.file),
    args: parsed.args.map((a) => expandOne(a, values, parsed.file)),
  };
}

/**
 * Joins kernel parameters into one command line. A parameter whose value holds white
 * space is quoted the way the kernel's parser accepts: name="value with spaces".
 */
export function kernelCmdline(params: string[]): string {
  return params
    .map((p) => {
      if (!/\s/.test(p) || p.includes('"')) return p;
      const eq = p.indexOf("=");
      return eq < 0 ? `"${p}"` : `${p.slice(0, eq + 1)}"${p.slice(eq + 1)}"`;
    })
    .join(" ");
}
