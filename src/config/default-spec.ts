import { existsSync } from "node:fs";
import { join } from "node:path";
import { RuntimeError } from "../errors.ts";
import { writeFileNamed } from "../sys/files.ts";
import { NAME } from "./build.ts";

const CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/** runc's default spec (libcontainer/specconv/example.go), for a busybox-like rootfs in ./rootfs. */
export function defaultSpec(rootless: boolean): Record<string, unknown> {
  const namespaces = ["pid", "network", "ipc", "uts", "mount", "cgroup"].map((type) => ({ type }));
  const spec: Record<string, unknown> = {
    ociVersion: "1.0.2-dev",
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ["sh"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
      cwd: "/",
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS, ambient: CAPS },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: NAME,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
      },
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
      },
      {
        destination: "/dev/mqueue",
        type: "mqueue",
        source: "mqueue",
        options: ["nosuid", "noexec", "nodev"],
      },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      {
        destination: "/sys/fs/cgroup",
        type: "cgroup",
        source: "cgroup",
        options: ["nosuid", "noexec", "nodev", "relatime", "ro"],
      },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces,
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
  if (rootless) {
    const linux = spec.linux as Record<string, unknown>;
    // runc's rootless spec also drops the network namespace (the host's network, which a
    // user can use unprivileged); a VM has a network stack of its own and needs one.
    linux.namespaces = [...namespaces.filter((n) => n.type !== "cgroup"), { type: "user" }];
    linux.uidMappings = [{ containerID: 0, hostID: process.getuid?.() ?? 0, size: 1 }];
    linux.gidMappings = [{ containerID: 0, hostID: process.getgid?.() ?? 0, size: 1 }];
    delete linux.resources;
    // As runc's: no uid=/gid= mount options (devpts gid=5): the ids are not mapped.
    spec.mounts = (spec.mounts as { options?: string[] }[]).map((m) =>
      m.options ? { ...m, options: m.options.filter((o) => !/^[ug]id=/.test(o)) } : m,
    );
  }
  return spec;
}

/** `spec`: writes config.json into the bundle; never overwrites one (runc's rule). */
export function writeDefaultSpec(bundle: string, rootless: boolean): string {
  if (!existsSync(bundle)) throw new RuntimeError(`bundle directory ${bundle} does not exist`);
  const file = join(bundle, "config.json");
  if (existsSync(file)) throw new RuntimeError(`${file}: file already exists`);
  writeFileNamed(file, `${JSON.stringify(defaultSpec(rootless), null, "\t")}\n`, 0o644, "wx");
  return file;
}
