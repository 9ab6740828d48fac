/**
 * What the agent does as the guest's PID 1: the mounts the initramfs did not make,
 * reaping every orphan (containers' processes are re-parented to us), and powering off.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { errorMessage } from "../errors.ts";
import { cstr, libc, ptr, sysError, WNOHANG } from "../sys/libc.ts";

const MS_NOSUID = 2;
const MS_NODEV = 4;
const MS_NOEXEC = 8;
const MS_RELATIME = 1 << 21;
const RB_POWER_OFF = 0x4321fedc;
/**
 * A safety net only: SIGCHLD triggers a poll at once. Each poll lists /proc; at 1 s this
 * took an idle VM's QEMU from 1.1 to 2.3 % of a host core (TCG, measured).
 */
const REAP_INTERVAL_MS = 60_000;

export function mount(source: string, target: string, fstype: string, flags: number, data = ""): void {
  mkdirSync(target, { recursive: true });
  const d = cstr(data);
  if (libc().mount(cstr(source), cstr(target), cstr(fstype), BigInt(flags), ptr(d)) !== 0) {
    throw sysError("mount", `mount ${fstype} ${source} on ${target}`);
  }
}

export function isMounted(target: string): boolean {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[1] === target);
}

/**
 * Mounts needed by crun and the containers: cgroup2, devpts, shm. Idempotent. Returns
 * what did not work but leaves containers usable (to be reported to the host).
 */
export function setupMounts(): string[] {
  const plan: [string, string, string, number, string][] = [
    ["cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME, "nsdelegate"],
    ["devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"],
    ["shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"],
  ];
  for (const [src, target, type, flags, data] of plan) {
    if (!isMounted(target)) mount(src, target, type, flags, data);
  }
  // Controllers are enabled for the children of the root cgroup so containers can be limited.
  // Synchronous, so that a failure is caught here (a failed unawaited write ended PID 1).
  try {
    const controllers = readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8").trim().split(/\s+/);
    writeFileSync("/sys/fs/cgroup/cgroup.subtree_control", controllers.map((c) => `+${c}`).join(" "));
  } catch (err) {
    return [`cannot enable cgroup controllers, containers run without resource limits: ${errorMessage(err)}`];
  }
  return [];
}

/**
 * An idle guest should cost its host nothing: under TCG every wakeup of the guest is host
 * CPU. Proactive compaction wakes kcompactd twice a second for huge pages this guest has no
 * use for; off, an idle VM's QEMU took 0.9 % of a host core instead of 1.2 % (measured).
 */
export function quietIdleGuest(): string[] {
  try {
    writeFileSync("/proc/sys/vm/compaction_proactiveness", "0");
    return [];
  } catch (err) {
    return [`cannot turn off proactive compaction: ${errorMessage(err)}`];
  }
}

export type ExitHandler = (status: number) => void;

/**
 * Reaps processes. Those we wait for (container and exec processes) are watched by pid;
 * other orphans are reaped too, except the ones Bun itself spawned and will reap.
 */
export class Reaper {
  private readonly watched = new Map<number, ExitHandler>();
  private readonly bunChildren = new Set<number>();
  private readonly statusBuf = new Int32Array(1);
  /** While > 0 a crun create/exec is running: its process may exit before it is watched. */
  private holds = 0;

  start(): void {
    process.on("SIGCHLD", () => this.poll());
    setInterval(() => this.poll(), REAP_INTERVAL_MS).unref?.();
  }

  watch(pid: number, onExit: ExitHandler): void {
    this.watched.set(pid, onExit);
    this.poll();
  }

  /** Holds back orphan reaping until the pid of a starting process is known and watched. */
  async holding<T>(fn: () => Promise<T>): Promise<T> {
    this.holds++;
    try {
      return await fn();
    } finally {
      this.holds--;
    }
  }

  /** Marks a pid as Bun's (Bun.spawn): never reaped here. */
  ownedByBun(pid: number): void {
    this.bunChildren.add(pid);
  }

  releasedByBun(pid: number): void {
    this.bunChildren.delete(pid);
  }

  poll(): void {
    for (const [pid, onExit] of this.watched) {
      const r = libc().waitpid(pid, ptr(this.statusBuf), WNOHANG);
      if (r === pid) {
        this.watched.delete(pid);
        onExit(decodeWaitStatus(this.statusBuf[0] ?? 0));
      } else if (r < 0) {
        // Not our child (already reaped elsewhere): report it gone.
        this.watched.delete(pid);
        onExit(255);
      }
    }
    if (process.pid === 1 && this.holds === 0) this.reapOrphans();
  }

  private reapOrphans(): void {
    for (const name of readdirSync("/proc")) {
      const pid = Number(name);
      if (!pid || this.bunChildren.has(pid) || this.watched.has(pid)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      } catch {
        continue;
      }
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z" && fields[1] === "1") libc().waitpid(pid, ptr(this.statusBuf), WNOHANG);
    }
  }
}

/** waitpid status -> exit code, or 128+N for a death by signal N (the shell's convention). */
export function decodeWaitStatus(status: number): number {
  const sig = status & 0x7f;
  if (sig === 0) return (status >> 8) & 0xff;
  return 128 + sig;
}

export function syncFilesystems(): void {
  libc().sync();
}

export function powerOff(): never {
  libc().sync();
  libc().reboot(RB_POWER_OFF);
  process.exit(0);
}
