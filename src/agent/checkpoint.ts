/**
 * Checkpoint and restore of a container's process tree with CRIU in the guest (Debian's
 * criu 3.17, in the guest image), driven the way runc drives it, by its command line: crun
 * in Debian is built without CRIU, and a whole-VM snapshot is refused while the 9p share is
 * mounted. What runc does and this does too:
 *  - the rootfs is CRIU's --root; mounts whose source is outside the container are
 *    "external": the masked paths (binds of the guest's /dev/null) and the bind mounts from
 *    the share (9p), each keyed by its mount point and given its new source on restore;
 *  - the init's fds 0-2 lead outside the tree (pipes to the agent, /dev/null, or the slave
 *    of a pty whose master the agent holds): their keys are kept beside the images
 *    (cc-externals.json, runc's descriptors.json) and the restored tree inherits the new
 *    stdio in their place (--inherit-fd). A terminal is CRIU's "external tty": the restore
 *    gets the slave of a new pty (CRIU makes it the session's controlling terminal again),
 *    and the container's /dev/console (crun's bind of the old slave) becomes a bind of the
 *    new one. (crun and runc use CRIU's orphan-pts-master instead, which hands the new
 *    master over CRIU's RPC socket; the command line has no such socket.)
 *  - cgroups: --manage-cgroups, and on restore --cgroup-root moves the tree into the new
 *    container's cgroup (/cc-oci/<id>);
 *  - the restored init is the agent's child (--restore-sibling), reaped like crun's; crun's
 *    state for it is written here (crun cannot restore), so that exec, ps and update work.
 * The network is locked with nftables (no iptables in the guest); the socket-diagnostic and
 * nf_tables modules are loaded on first use, not at boot.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  type Stats,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { CHECKPOINT_EXTERNALS } from "../protocol/guest-layout.ts";
import type { RequestOf } from "../protocol/messages.ts";
import { mountinfo } from "../sys/mounts.ts";
import { procStat } from "../sys/proc.ts";
import { spawnReaped } from "./crun.ts";
import type { Reaper } from "./init.ts";
import { loadModules } from "./modules.ts";

const CRIU = "/usr/sbin/criu";
const EXTERNALS = CHECKPOINT_EXTERNALS;
const CRUN_STATE = "/run/crun";

/** What a restore needs to know of the dumped tree besides CRIU's images. */
const Externals = z.object({
  /** Mount points of masked files (binds of /dev/null). */
  masks: z.array(z.string()),
  /** Mount points of bind mounts from the share. */
  shares: z.array(z.string()),
  /** CRIU's keys of the init's fds 0, 1, 2 (pipe:[N], file[mnt:inode] or tty[rdev:dev]). */
  stdio: z.array(z.string()),
  /** Mount points of binds of a pty slave (crun's /dev/console of a terminal container). */
  consoles: z.array(z.string()).default([]),
  /**
   * CRIU's keys of every terminal open in the tree (the pty slave, /dev/tty, which an
   * interactive shell opens for job control): all external, all the new slave on restore.
   */
  ttys: z.array(z.string()).default([]),
});
type Externals = z.infer<typeof Externals>;

/**
 * CRIU's key for fd `fd` of `pid`: its pipe, a pty slave by its device and devpts instance,
 * or the file by mount id and inode (all hex); `external`: one CRIU must be told of on dump.
 */
function fdKey(pid: number, fd: number): { key: string; external: boolean; link: string; rdev: number } {
  const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
  if (/^pipe:\[\d+\]$/.test(link)) return { key: link, external: false, link, rdev: 0 };
  const st = statSync(`/proc/${pid}/fd/${fd}`);
  if (isTerminalPath(link)) return { key: ttyKey(st), external: true, link, rdev: st.rdev };
  const mnt = /^mnt_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))?.[1];
  return {
    key: `file[${Number(mnt).toString(16)}:${st.ino.toString(16)}]`,
    external: true,
    link,
    rdev: st.rdev,
  };
}

/** CRIU's key of a terminal: its device and the device of the filesystem its node is on. */
function ttyKey(st: Stats): string {
  return `tty[${st.rdev.toString(16)}:${st.dev.toString(16)}]`;
}

function isTerminalPath(link: string): boolean {
  return link.startsWith("/dev/pts/") || link === "/dev/tty" || link === "/dev/console";
}

/**
 * The keys of every fd of the tree of `pid` on its terminal (the pty slave whose device is
 * `console`): the slave itself, /dev/console, and /dev/tty where the terminal is the
 * process's controlling one. A pty the workload made itself (master and slave in the tree)
 * is CRIU's to restore, not one of these; but CRIU keys /dev/tty by its device node only,
 * so a /dev/tty open in a session of such an inner pty (tmux, script) is restored as the
 * container's terminal too. The walk is before CRIU freezes the tree: a terminal opened in
 * between is not external and the dump fails on it (a retry then succeeds).
 */
function treeTerminals(pid: number, console: number): string[] {
  const keys = new Set<string>();
  // Each read may find its fd, task or process gone meanwhile: it is skipped, not the rest.
  const tryRead = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch {
      return undefined;
    }
  };
  const visit = (p: number) => {
    const ctty = procStat(p)?.ttyNr;
    if (ctty === undefined) return;
    for (const fd of tryRead(() => readdirSync(`/proc/${p}/fd`)) ?? []) {
      const path = `/proc/${p}/fd/${fd}`;
      const key = tryRead(() => {
        const link = readlinkSync(path, { encoding: "utf8" });
        if (!isTerminalPath(link)) return undefined;
        const st = statSync(path);
        const ours = link === "/dev/tty" ? ctty === console : st.rdev === console;
        return ours ? ttyKey(st) : undefined;
      });
      if (key) keys.add(key);
    }
    for (const task of tryRead(() => readdirSync(`/proc/${p}/task`)) ?? []) {
      const children = tryRead(() => readFileSync(`/proc/${p}/task/${task}/children`, "utf8")) ?? "";
      for (const child of children.split(" ").filter(Boolean)) visit(Number(child));
    }
  };
  visit(pid);
  return [...keys];
}

/** Whether a dumped stdio key is a terminal's (restored with a new pty). */
export function isTerminalKey(key: string): boolean {
  return key.startsWith("tty[");
}

function flagArgs(req: { tcpEstablished: boolean; fileLocks: boolean; extUnixSk: boolean }): string[] {
  return [
    ...(req.tcpEstablished ? ["--tcp-established"] : []),
    ...(req.fileLocks ? ["--file-locks"] : []),
    ...(req.extUnixSk ? ["--ext-unix-sk"] : []),
  ];
}

/** The last error lines of a CRIU log, for the one-line error the host shows. */
export function criuLogTail(log: string, lines = 3): string {
  try {
    const errors = readFileSync(log, "utf8")
      .split("\n")
      .filter((l) => /Error|Warn \(criu/.test(l))
      .map((l) => l.replace(/^\(\d+\.\d+\)\s*/, "").trim());
    return errors.slice(-lines).join(" | ") || "(no error in its log)";
  } catch {
    return `(no log at ${log})`;
  }
}

async function runCriu(reaper: Reaper, args: string[]): Promise<number> {
  return spawnReaped(reaper, [CRIU, ...args], ["ignore", "ignore", "ignore"]).exited;
}

/** Dumps the tree of `pid` (the container's init); throws with CRIU's log tail. */
export async function dumpTree(
  reaper: Reaper,
  pid: number,
  rootfs: string,
  req: RequestOf<"checkpoint">,
): Promise<void> {
  await loadModules(reaper, "criu");
  const mounts = mountinfo(pid).filter((m) => m.mountPoint !== "/");
  const stdio = [0, 1, 2].map((fd) => fdKey(pid, fd));
  // The terminal of a terminal container: on its init's stdio; crun binds it at /dev/console
  // (a devpts mount whose root is the slave's index).
  const onTty = stdio.find((s) => isTerminalKey(s.key));
  const console = onTty?.rdev;
  const slaveIndex = onTty?.link.replace(/^\/dev\/pts\//, "");
  const ext: Externals = {
    masks: mounts.filter((m) => m.root === "/null").map((m) => m.mountPoint),
    shares: mounts.filter((m) => m.fstype === "9p").map((m) => m.mountPoint),
    stdio: stdio.map((s) => s.key),
    consoles: mounts
      .filter((m) => m.fstype === "devpts" && m.root === `/${slaveIndex}`)
      .map((m) => m.mountPoint),
    ttys: console === undefined ? [] : treeTerminals(pid, console),
  };
  mkdirSync(req.workDir, { recursive: true });
  const args = [
    "dump",
    "--tree",
    String(pid),
    ...commonArgs(req, rootfs, "dump.log"),
    ...(req.leaveRunning ? ["--leave-running"] : []),
    ...[...ext.masks, ...ext.shares, ...ext.consoles].flatMap((mp) => ["--external", `mnt[${mp}]:${mp}`]),
    ...[...new Set([...stdio.filter((s) => s.external).map((s) => s.key), ...ext.ttys])].flatMap((k) => [
      "--external",
      k,
    ]),
  ];
  const code = await runCriu(reaper, args);
  if (code !== 0) {
    throw new Error(`criu dump failed (exit ${code}): ${criuLogTail(join(req.workDir, "dump.log"))}`);
  }
  // Last: a directory without it is no checkpoint (readExternals).
  try {
    writeFileSync(join(req.imagesDir, EXTERNALS), JSON.stringify(ext));
  } catch (err) {
    throw new Error(`cannot write ${EXTERNALS} beside the images: ${(err as Error).message}`);
  }
}

function commonArgs(
  req: {
    imagesDir: string;
    workDir: string;
    tcpEstablished: boolean;
    fileLocks: boolean;
    extUnixSk: boolean;
  },
  rootfs: string,
  log: string,
): string[] {
  return [
    "--images-dir",
    req.imagesDir,
    "--work-dir",
    req.workDir,
    "--log-file",
    log,
    "-v4",
    "--root",
    rootfs,
    "--manage-cgroups=soft",
    "--network-lock",
    "nftables",
    ...flagArgs(req),
  ];
}

/** The dumped tree's externals, checked: a missing or damaged images directory says so. */
export function readExternals(imagesDir: string): Externals {
  const file = join(imagesDir, EXTERNALS);
  if (!existsSync(join(imagesDir, "inventory.img")) || !existsSync(file)) {
    throw new Error(`${imagesDir} holds no checkpoint of this runtime (no inventory.img or ${EXTERNALS})`);
  }
  const parsed = Externals.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success) throw new Error(`${file} is damaged: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/**
 * `criu restore` of a tree into container `id` of `config`: its arguments, and which of
 * the new stdio (0-2) each inherited fd (3, 4, ...) is, one per dumped key (CRIU moves
 * each inherited fd into its store and closes it: two keys cannot share one);
 * `ttySlave`: the path of the new pty's slave, when the tree had a terminal.
 */
export interface CriuRestore {
  args: string[];
  /** For each inherited fd: which of the new stdio it is, or /dev/null. */
  inheritedFrom: (number | "null")[];
}

export function restoreArgs(
  req: RequestOf<"restore">,
  ext: Externals,
  rootfs: string,
  cgroup: string,
  pidFile: string,
  ttySlave?: string,
): CriuRestore {
  const mounts = ((req.config.mounts ?? []) as { destination: string; source?: string }[]).filter(
    (m) => m.source,
  );
  const shares = ext.shares.map((mp) => {
    const m = mounts.find((x) => x.destination.replace(/\/+$/, "") === mp);
    if (!m?.source)
      throw new Error(`the checkpoint has a bind mount at ${mp} and the new configuration none`);
    return ["--external", `mnt[${mp}]:${m.source}`];
  });
  const keys = new Map<string, number | "null">();
  for (const [fd, key] of [...ext.stdio, ...ext.ttys].entries()) {
    // Every terminal becomes the new slave (on all three of the new stdio); with a terminal,
    // a stdio fd that was not on it (`exec </dev/null`) becomes /dev/null.
    if (!keys.has(key)) keys.set(key, isTerminalKey(key) ? 0 : ttySlave ? "null" : fd);
  }
  const inherit = [...keys.keys()].flatMap((key, i) => [
    "--inherit-fd",
    `fd[${INHERITED_FD_BASE + i}]:${key}`,
  ]);
  const args = [
    "restore",
    ...commonArgs(req, rootfs, "restore.log"),
    "--restore-detached",
    "--restore-sibling",
    "--pidfile",
    pidFile,
    "--cgroup-root",
    cgroup,
    ...ext.masks.flatMap((mp) => ["--external", `mnt[${mp}]:/dev/null`]),
    ...ext.consoles.flatMap((mp) => ["--external", `mnt[${mp}]:${ttySlave}`]),
    ...shares.flat(),
    ...inherit,
  ];
  return { args, inheritedFrom: [...keys.values()] };
}

/**
 * Where criu gets the restored process's stdio: fds from 3, not its own 0-2, so that what
 * criu itself prints (its libraries write to stderr) is not the workload's output.
 */
const INHERITED_FD_BASE = 3;

/** Starts `criu restore` with the process's stdio (wirePipes' spawn); its exit is the restore's. */
export function spawnRestore(reaper: Reaper, restore: CriuRestore, stdio: ("ignore" | number | "pipe")[]) {
  const nulls: number[] = [];
  const given = restore.inheritedFrom.map((i) => {
    const s = i === "null" ? "ignore" : stdio[i];
    if (typeof s === "number") return s;
    const fd = openSync("/dev/null", "r+");
    nulls.push(fd);
    return fd;
  });
  try {
    return spawnReaped(reaper, [CRIU, ...restore.args], ["ignore", "ignore", "ignore", ...given]);
  } finally {
    for (const fd of nulls) closeSync(fd);
  }
}

/**
 * crun's state for a container it did not start (libcrun status.c's fields), so that crun
 * exec, ps and update find the restored init: its pid and start time, cgroup, bundle.
 */
export function writeCrunState(
  id: string,
  pid: number,
  config: Record<string, unknown>,
  bundle: string,
): void {
  const dir = join(CRUN_STATE, id);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  const startTime = procStat(pid)?.startTime;
  if (startTime === undefined) throw new Error(`the restored init (pid ${pid}) is gone`);
  const linux = (config.linux ?? {}) as { cgroupsPath?: string };
  const root = (config.root ?? {}) as { path?: string };
  const status = {
    pid,
    "process-start-time": startTime,
    "cgroup-path": linux.cgroupsPath ?? "",
    scope: "",
    rootfs: root.path ?? "",
    "systemd-cgroup": false,
    bundle,
    created: new Date().toISOString(),
    owner: "root",
    detached: true,
    external_descriptors: JSON.stringify(["/dev/null", "/dev/null", "/dev/null"]),
  };
  writeFileSync(join(dir, "status"), JSON.stringify(status));
}
