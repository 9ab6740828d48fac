/**
 * One private temporary directory per test file holding every manager's state, and the
 * teardown that runs in afterAll whatever happened: the managers' own clean-up first, then
 * daemons stopped by pid, leftover processes of this workspace (shims, conmon, stand-ins,
 * QEMU) killed by pid, every mount under the directory unmounted (deepest first), logs kept
 * under build/test-results/e2e/, the directory removed.
 */
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { cmd, setOutputDir, sleep } from "./proc.ts";

export const ROOT_DIR = resolve(import.meta.dir, "../../..");
/**
 * The runtime under test, by absolute path (what the managers are given). CC_E2E_RUNTIME
 * names another one: /usr/bin/runc checks the tests themselves.
 */
export const BIN = process.env.CC_E2E_RUNTIME || join(ROOT_DIR, "bin/cc-oci-runtime");
const RESULTS = join(ROOT_DIR, "build/test-results/e2e");

type Cleanup = { what: string; fn: () => Promise<unknown> | unknown };

const PREFIX = "cc-e2e-";
/** The pid of the test process that owns a workspace. */
const OWNER = "owner.pid";
/** Container ids that mark processes as the workspace's, one a line. */
const MARKERS = "markers";
/** Network namespaces (names under /run/netns) the workspace made, one a line. */
const NETNS = "netns";

function readLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

/**
 * Workspaces whose test process died without its afterAll (SIGKILL, a crash): their
 * daemons, shims and VMs are stopped, their mounts and files removed. Never another live
 * run's: only those whose owner pid is gone.
 */
function reapStale(): void {
  for (const name of readdirSync("/tmp")) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join("/tmp", name);
    const owner = Number(readLines(join(dir, OWNER))[0]);
    if (!owner || alive(owner)) continue;
    const stale = new Workspace(name.slice(PREFIX.length).replace(/-[^-]*$/, ""), dir);
    void stale.teardown();
  }
}

export class Workspace {
  readonly dir: string;
  readonly name: string;
  /** Strings that mark a process as this workspace's (besides the directory): container ids. */
  readonly markers = new Set<string>();
  /** Network namespaces it made (`ip netns add`): every process in them is its own. */
  readonly netns = new Set<string>();
  private cleanups: Cleanup[] = [];
  readonly problems: string[] = [];
  /** A dead run's workspace: cleaned without keeping its logs over the live run's. */
  private readonly stale: boolean;

  private readonly onSignal = (sig: NodeJS.Signals) => {
    void this.teardown().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  };

  constructor(name: string, dir?: string) {
    this.name = name;
    this.stale = dir !== undefined;
    if (dir) {
      // A stale workspace being reclaimed.
      this.dir = dir;
      for (const m of readLines(join(dir, MARKERS))) this.markers.add(m);
      for (const n of readLines(join(dir, NETNS))) this.netns.add(n);
      return;
    }
    reapStale();
    // Short: unix socket paths (containerd's, dockerd's, the runtime's) live under it.
    this.dir = mkdtempSync(`/tmp/${PREFIX}${name}-`);
    writeFileSync(join(this.dir, OWNER), String(process.pid));
    setOutputDir(join(this.dir, ".out"));
    // An interrupted run still stops its daemons and VMs (afterAll does not run then).
    process.once("SIGINT", this.onSignal);
    process.once("SIGTERM", this.onSignal);
  }

  /** Marks processes whose command line or cwd holds `m` (a podman container id) as ours. */
  mark(m: string): void {
    this.markers.add(m);
    appendFileSync(join(this.dir, MARKERS), `${m}\n`);
  }

  /** Records a network namespace the workspace made: teardown empties and deletes it. */
  addNetns(name: string): void {
    this.netns.add(name);
    appendFileSync(join(this.dir, NETNS), `${name}\n`);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** Registered clean-ups run in reverse order; each failure is noted, none stops the rest. */
  onTeardown(what: string, fn: () => Promise<unknown> | unknown): void {
    this.cleanups.push({ what, fn });
  }

  async teardown(): Promise<void> {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
    const cleanups = this.cleanups.reverse();
    this.cleanups = [];
    for (const c of cleanups) {
      try {
        await c.fn();
      } catch (err) {
        this.problems.push(`${c.what}: ${(err as Error).message}`);
      }
    }
    for (let round = 0; round < 5; round++) {
      const pids = this.processes();
      if (pids.length === 0) break;
      for (const pid of pids) killPid(pid, "SIGKILL");
      await sleep(300);
    }
    // Empty now: deleting the name ends the namespace with its bridges, veths and rules.
    for (const n of this.netns) {
      const r = await cmd(["ip", "netns", "del", n], { timeout: 30_000 });
      if (r.code !== 0 && existsSync(netnsPath(n))) {
        this.problems.push(`ip netns del ${n}: ${r.stderr.trim()}`);
      }
    }
    await unmountUnder(this.dir);
    if (!this.stale) this.keepLogs();
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch (err) {
      this.problems.push(`removing ${this.dir}: ${(err as Error).message}`);
    }
    if (this.problems.length) console.warn(`e2e ${this.name} teardown:\n  ${this.problems.join("\n  ")}`);
  }

  /**
   * Processes (not this one) whose command line or cwd names the workspace or a marker, or
   * that live in one of its network namespaces.
   */
  processes(): number[] {
    const found: number[] = [];
    const nets = new Set<string>();
    for (const n of this.netns) {
      try {
        nets.add(`net:[${statSync(netnsPath(n)).ino}]`);
      } catch {
        // already deleted
      }
    }
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      try {
        const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
        let cwd = "";
        try {
          cwd = readlinkSync(`/proc/${name}/cwd`);
        } catch {
          // a kernel thread or gone
        }
        let net = "";
        try {
          if (nets.size) net = readlinkSync(`/proc/${name}/ns/net`);
        } catch {
          // a kernel thread or gone
        }
        const mine =
          nets.has(net) ||
          cmdline.includes(this.dir) ||
          cwd.startsWith(this.dir) ||
          [...this.markers].some((m) => cmdline.includes(m) || cwd.includes(m));
        if (mine) found.push(Number(name));
      } catch {
        // gone
      }
    }
    return found;
  }

  /** Copies the logs (daemons', the runtime's global logs) to build/test-results/e2e/NAME/. */
  private keepLogs(): void {
    const dest = join(RESULTS, this.name);
    try {
      rmSync(dest, { recursive: true, force: true });
      mkdirSync(dest, { recursive: true });
      for (const rel of readdirSync(this.dir, { recursive: true }) as string[]) {
        if (!/(\.log|log\.json)$/.test(rel)) continue;
        const file = join(this.dir, rel);
        if (!statSync(file).isFile() || statSync(file).size > 20 << 20) continue;
        cpSync(file, join(dest, rel.replaceAll("/", "__")));
      }
    } catch (err) {
      this.problems.push(`keeping logs: ${(err as Error).message}`);
    }
  }
}

/** Where `ip netns add NAME` keeps the namespace. */
export function netnsPath(name: string): string {
  return join("/run/netns", name);
}

export function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie is not alive for our purposes.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; waits until the pid is gone. */
export async function stopPid(pid: number, graceMs: number): Promise<void> {
  killPid(pid, "SIGTERM");
  const end = Date.now() + graceMs;
  while (alive(pid) && Date.now() < end) await sleep(100);
  if (alive(pid)) killPid(pid, "SIGKILL");
  for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
}

/** Mount points at or under `dir`, in this process's mount namespace (the machine's). */
export function mountsUnder(dir: string): string[] {
  const unoctal = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8)));
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    .map(unoctal)
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

/** Unmounts everything at or under `dir`, deepest first (lazily when busy). */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir).sort((a, b) => b.length - a.length);
    if (mounts.length === 0) return;
    for (const m of mounts) {
      const r = await cmd(["umount", m], { timeout: 30_000 });
      if (r.code !== 0) await cmd(["umount", "-l", m], { timeout: 30_000 });
    }
  }
}

/**
 * The managers give the runtime bundles of their own, so it finds vm.json and
 * hypervisor.args in $(sysconfdir)/cc-oci-runtime/ (/etc/cc-oci-runtime), as an installed
 * runtime would. This writes the build tree's (build/local: this tree's guest) there and
 * returns how to put back whatever was there before. Several e2e runs may overlap (two
 * `make check`s): each registers its pid under USERS, the first one saves the original
 * files there, and only the last one to leave puts them back.
 */
const ETC = "/etc/cc-oci-runtime";
const USERS = "/run/cc-oci-e2e-config";
const CONFIG_FILES = ["vm.json", "hypervisor.args"];

function liveUsers(): string[] {
  return readdirSync(USERS).filter((n) => /^\d+$/.test(n) && alive(Number(n)) && Number(n) !== process.pid);
}

export function installRuntimeConfig(): () => void {
  mkdirSync(USERS, { recursive: true });
  // The originals are saved once; a run that died before putting them back left them here.
  if (liveUsers().length === 0 && !existsSync(join(USERS, "saved"))) {
    mkdirSync(join(USERS, "saved.tmp"), { recursive: true });
    for (const f of CONFIG_FILES) {
      if (existsSync(join(ETC, f))) cpSync(join(ETC, f), join(USERS, "saved.tmp", f));
    }
    renameSync(join(USERS, "saved.tmp"), join(USERS, "saved"));
  }
  writeFileSync(join(USERS, String(process.pid)), "");
  mkdirSync(ETC, { recursive: true });
  for (const f of CONFIG_FILES) {
    const src = join(ROOT_DIR, "build/local", f);
    if (!existsSync(src)) throw new Error(`${src} is missing: run make first`);
    writeFileSync(join(ETC, f), readFileSync(src));
  }
  return () => {
    rmSync(join(USERS, String(process.pid)), { force: true });
    if (liveUsers().length > 0) return;
    for (const f of CONFIG_FILES) {
      const saved = join(USERS, "saved", f);
      if (existsSync(saved)) cpSync(saved, join(ETC, f));
      else rmSync(join(ETC, f), { force: true });
    }
    if (readdirSync(ETC).length === 0) rmSync(ETC, { recursive: true, force: true });
    rmSync(USERS, { recursive: true, force: true });
  };
}

/** What a test file needs before anything: root, the built runtime and guest. */
export function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error("the e2e tests need root (the managers do)");
  for (const f of [
    "bin/cc-oci-runtime",
    "build/guest/vmlinux",
    "build/guest/rootfs.erofs",
    "build/local/vm.json",
  ]) {
    if (!existsSync(join(ROOT_DIR, f))) throw new Error(`${f} is missing: run make first`);
  }
}
