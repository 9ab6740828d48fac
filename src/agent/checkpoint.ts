/**
 * Checkpoint and restore of a container's process tree with CRIU in the guest (Debian's
 * criu 3.17, in the guest image), driven the way runc drives it, by its command line: crun
 * in Debian is built without CRIU, and a whole-VM snapshot is refused while the 9p share is
 * mounted. What runc does and this does too:
 *  - the rootfs is CRIU's --root; mounts whose source is outside the container are
 *    "external": the masked paths (binds of the guest's /dev/null) and the bind mounts from
 *    the share (9p), each keyed by its mount point and given its new source on restore;
 *  - the init's fds 0-2 lead outside the tree (pipes to the agent, /dev/null): their keys
 *    are kept beside the images (cc-externals.json, runc's descriptors.json) and the
 *    restored tree inherits the new stdio in their place (--inherit-fd);
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
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { CHECKPOINT_EXTERNALS } from "../protocol/guest-layout.ts";
import type { RequestOf } from "../protocol/messages.ts";
import { mountinfo } from "../sys/mounts.ts";
import { spawnReaped } from "./crun.ts";
import type { Reaper } from "./init.ts";

const CRIU = "/usr/sbin/criu";
const MODULES = "/usr/lib/modules/cc";
const EXTERNALS = CHECKPOINT_EXTERNALS;
const CRUN_STATE = "/run/crun";

/** What a restore needs to know of the dumped tree besides CRIU's images. */
const Externals = z.object({
  /** Mount points of masked files (binds of /dev/null). */
  masks: z.array(z.string()),
  /** Mount points of bind mounts from the share. */
  shares: z.array(z.string()),
  /** CRIU's keys of the init's fds 0, 1, 2 (pipe:[N] or file[mnt:inode]). */
  stdio: z.array(z.string()),
});
type Externals = z.infer<typeof Externals>;

let modulesLoaded = false;

/** insmod of CRIU's modules, in their order; one loaded already (EEXIST) is fine. */
export async function loadModules(reaper: Reaper): Promise<void> {
  if (modulesLoaded || !existsSync(join(MODULES, "order"))) return;
  for (const name of readFileSync(join(MODULES, "order"), "utf8").split("\n").filter(Boolean)) {
    const p = spawnReaped(reaper, ["/usr/sbin/insmod", join(MODULES, name)], ["ignore", "ignore", "pipe"]);
    const err = await new Response(p.stderr as ReadableStream).text();
    if ((await p.exited) !== 0 && !/exists/i.test(err)) throw new Error(`insmod ${name}: ${err.trim()}`);
  }
  modulesLoaded = true;
}

/** CRIU's key for fd `fd` of `pid`: its pipe, or the file by mount id and inode (hex). */
function fdKey(pid: number, fd: number): { key: string; file: boolean } {
  const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
  if (/^pipe:\[\d+\]$/.test(link)) return { key: link, file: false };
  if (link.startsWith("/dev/pts/")) {
    throw new Error("a container with a terminal cannot be checkpointed yet (its pty is the host's)");
  }
  const mnt = /^mnt_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))?.[1];
  const ino = statSync(`/proc/${pid}/fd/${fd}`).ino;
  return { key: `file[${Number(mnt).toString(16)}:${ino.toString(16)}]`, file: true };
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
  await loadModules(reaper);
  const mounts = mountinfo(pid).filter((m) => m.mountPoint !== "/");
  const stdio = [0, 1, 2].map((fd) => fdKey(pid, fd));
  const ext: Externals = {
    masks: mounts.filter((m) => m.root === "/null").map((m) => m.mountPoint),
    shares: mounts.filter((m) => m.fstype === "9p").map((m) => m.mountPoint),
    stdio: stdio.map((s) => s.key),
  };
  mkdirSync(req.workDir, { recursive: true });
  const args = [
    "dump",
    "--tree",
    String(pid),
    ...commonArgs(req, rootfs, "dump.log"),
    ...(req.leaveRunning ? ["--leave-running"] : []),
    ...[...ext.masks, ...ext.shares].flatMap((mp) => ["--external", `mnt[${mp}]:${mp}`]),
    ...[...new Set(stdio.filter((s) => s.file).map((s) => s.key))].flatMap((k) => ["--external", k]),
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
 * The arguments of `criu restore` for a tree restored into container `id` of `config`, its
 * stdio on criu's fds 0-2 (they take the places of the dumped keys).
 */
export function restoreArgs(
  req: RequestOf<"restore">,
  ext: Externals,
  rootfs: string,
  cgroup: string,
  pidFile: string,
): string[] {
  const mounts = ((req.config.mounts ?? []) as { destination: string; source?: string }[]).filter(
    (m) => m.source,
  );
  const shares = ext.shares.map((mp) => {
    const m = mounts.find((x) => x.destination.replace(/\/+$/, "") === mp);
    if (!m?.source)
      throw new Error(`the checkpoint has a bind mount at ${mp} and the new configuration none`);
    return ["--external", `mnt[${mp}]:${m.source}`];
  });
  const inherited = new Set<string>();
  const inherit = ext.stdio.flatMap((key, fd) => {
    if (inherited.has(key)) return [];
    inherited.add(key);
    return ["--inherit-fd", `fd[${INHERITED_FD_BASE + fd}]:${key}`];
  });
  return [
    "restore",
    ...commonArgs(req, rootfs, "restore.log"),
    "--restore-detached",
    "--restore-sibling",
    "--pidfile",
    pidFile,
    "--cgroup-root",
    cgroup,
    ...ext.masks.flatMap((mp) => ["--external", `mnt[${mp}]:/dev/null`]),
    ...shares.flat(),
    ...inherit,
  ];
}

/**
 * Where criu gets the restored process's stdio: fds 3-5, not its own 0-2, so that what criu
 * itself prints (its libraries write to stderr) is not the workload's output.
 */
const INHERITED_FD_BASE = 3;

/** Starts `criu restore` with the process's stdio (wirePipes' spawn); its exit is the restore's. */
export function spawnRestore(reaper: Reaper, args: string[], stdio: ("ignore" | number | "pipe")[]) {
  const nulls: number[] = [];
  const given = stdio.map((s) => {
    if (typeof s === "number") return s;
    const fd = openSync("/dev/null", "r+");
    nulls.push(fd);
    return fd;
  });
  try {
    return spawnReaped(reaper, [CRIU, ...args], ["ignore", "ignore", "ignore", ...given]);
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
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const startTime = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
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
