/**
 * The containers of this guest (one, or a pod's: its sandbox and the others, lifecycle/pod.ts)
 * and their processes. Each handler is: check the request's target exists -> do it through crun ->
 * answer. Process output goes to the host on the stream ids the host chose.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { errorMessage } from "../errors.ts";
import type { Channel } from "../protocol/channel.ts";
import type { RequestOf, ResultOf } from "../protocol/messages.ts";
import { cgroupStats, signalCgroup } from "./cgroup.ts";
import {
  criuLogTail,
  dumpTree,
  isTerminalKey,
  readExternals,
  restoreArgs,
  spawnRestore,
  writeCrunState,
} from "./checkpoint.ts";
import { crun, crunDone, crunOutput, spawnCrun } from "./crun.ts";
import type { Reaper } from "./init.ts";
import { mount } from "./init.ts";
import { dropLayer, mountLayer, prepareCopy, removeLayer, sendLayer } from "./layer.ts";
import { loadModules } from "./modules.ts";
import { type OomWatch, watchOomKills } from "./oom.ts";
import { joinPodNamespaces } from "./pod.ts";
import { type GuestProcess, wireNewTerminal, wirePipes, wireTerminal } from "./stdio.ts";

/** Where the host's share (9p tag "workload") is mounted: rootfs/ and mounts/N below it. */
export const SHARE_MOUNT = "/run/cc/shared";
export const SHARE_TAG = "workload";
const BUNDLES = "/run/cc/bundles";
const NINEP_OPTIONS = "trans=virtio,version=9p2000.L,msize=262144,cache=mmap,access=client";
/** How long an exited process's output may still drain before its exit is reported anyway. */
const DRAIN_AFTER_EXIT_MS = 2_000;

interface Container {
  id: string;
  bundle: string;
  log: string;
  cgroup: string;
  /** The rootfs in the guest (config.json root.path): CRIU's --root. */
  rootfs: string;
  init?: GuestProcess;
  /** Reaped: its pid may be another process's now. */
  initExited?: boolean;
  oom?: OomWatch;
  execs: Map<string, GuestProcess>;
  /** The share's rootfs below the container's layer in the guest (agent/layer.ts), if it has one. */
  layerLower?: string;
}

export class Containers {
  private readonly containers = new Map<string, Container>();

  constructor(
    private readonly channel: Channel,
    private readonly reaper: Reaper,
  ) {}

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw new Error(`container "${id}" does not exist in the guest`);
    return c;
  }

  create(req: RequestOf<"create">): Promise<ResultOf<"create">> {
    return this.reaper.holding(() => this.doCreate(req));
  }

  exec(req: RequestOf<"exec">): Promise<ResultOf<"exec">> {
    return this.reaper.holding(() => this.doExec(req));
  }

  /**
   * The share mounted (once), the container's bundle in the guest written, and its record
   * (not yet registered): what create and restore both start from.
   */
  private prepare(id: string, config: Record<string, unknown>): Container {
    if (this.containers.has(id)) throw new Error(`container "${id}" already exists in the guest`);
    mountShare();
    const bundle = join(BUNDLES, id);
    mkdirSync(bundle, { recursive: true });
    applyNetworkSysctls(config);
    writeFileSync(join(bundle, "config.json"), JSON.stringify(config));
    // Annotations are visible in the VM here (and in config.json beside it).
    writeFileSync(join(bundle, "annotations.json"), JSON.stringify(config.annotations ?? {}));
    const linux = (config.linux ?? {}) as { cgroupsPath?: string };
    return {
      id,
      bundle,
      log: join(bundle, "crun.log"),
      cgroup: join("/sys/fs/cgroup", linux.cgroupsPath ?? ""),
      rootfs: rootPath(config),
      execs: new Map(),
    };
  }

  private async doCreate(req: RequestOf<"create">): Promise<ResultOf<"create">> {
    let config = req.config;
    if (req.pod) {
      const sandbox = this.get(req.pod.sandbox);
      if (!sandbox.init || sandbox.initExited)
        throw new Error(`the pod's sandbox container "${sandbox.id}" is not running`);
      config = joinPodNamespaces(config, sandbox.init.pid, req.pod.join);
    }
    const layerLower = req.guestLayer ? rootPath(config) : undefined;
    if (req.guestLayer && layerLower) {
      mountShare();
      const root = await mountLayer(this.reaper, req.id, layerLower, req.guestLayer);
      config = { ...config, root: { ...(config.root as object), path: root } };
    }
    let c: Container;
    try {
      c = this.prepare(req.id, config);
    } catch (err) {
      if (layerLower) dropLayer(req.id);
      throw err;
    }
    c.layerLower = layerLower;
    const bundle = c.bundle;
    const pidFile = join(bundle, "init.pid");
    const terminal = (config.process as { terminal?: boolean } | undefined)?.terminal === true;
    const args = ["create", "--bundle", bundle, "--pid-file", pidFile];
    let proc: GuestProcess;
    try {
      proc = await this.launch(
        c,
        "create",
        args,
        pidFile,
        terminal,
        req.stdio,
        req.consoleSize,
        "console.sock",
      );
    } catch (err) {
      // A pod's VM lives on after a container that failed: nothing of it may stay (guest tmpfs).
      rmSync(bundle, { recursive: true, force: true });
      if (layerLower) dropLayer(req.id);
      throw err;
    }
    this.adopt(c, proc);
    return { pid: proc.pid };
  }

  /** `proc` is the container's init (crun's, or CRIU's restored one): registered and watched. */
  private adopt(c: Container, proc: GuestProcess): void {
    c.init = proc;
    this.containers.set(c.id, c);
    // Before the exit it may cause: the init killed by its cgroup's OOM killer exits 137.
    c.oom = watchOomKills(c.cgroup, () => {
      void this.channel.sendEvent({ t: "event", event: "oom", id: c.id }).catch(() => {});
    });
    this.watchExit(c, proc);
  }

  /** The container's tree dumped by CRIU (agent/checkpoint.ts); without leaveRunning it is killed. */
  checkpoint(req: RequestOf<"checkpoint">): Promise<ResultOf<"checkpoint">> {
    return this.reaper.holding(async () => {
      const c = this.get(req.id);
      if (!c.init || c.initExited) throw new Error(`container "${c.id}" is not running`);
      await dumpTree(this.reaper, c.init.pid, c.rootfs, req);
      return {};
    });
  }

  /** create's counterpart: the container's tree restored from a checkpoint, running. */
  restore(req: RequestOf<"restore">): Promise<ResultOf<"restore">> {
    return this.reaper.holding(() => this.doRestore(req));
  }

  private async doRestore(req: RequestOf<"restore">): Promise<ResultOf<"restore">> {
    const c = this.prepare(req.id, req.config);
    const bundle = c.bundle;
    const ext = readExternals(req.imagesDir);
    const terminal = (req.config.process as { terminal?: boolean } | undefined)?.terminal === true;
    if (terminal !== ext.stdio.some(isTerminalKey)) {
      throw new Error(
        terminal
          ? "process.terminal is true and the checkpoint is of a container without a terminal"
          : "the checkpoint is of a container with a terminal and process.terminal is not true",
      );
    }
    await loadModules(this.reaper, "criu");
    // CRIU's log until the restore is done; crun's (exec, ps, update) from then on.
    const crunLog = c.log;
    c.log = join(req.workDir, "restore.log");
    const linux = (req.config.linux ?? {}) as { cgroupsPath?: string };
    const pidFile = join(bundle, "init.pid");
    const cgroup = linux.cgroupsPath ?? `/cc-oci/${req.id}`;
    const restored = async (p: Subprocess) => {
      const code = await p.exited;
      if (code !== 0) throw new Error(`criu restore failed (exit ${code}): ${criuLogTail(c.log)}`);
    };
    const proc = terminal
      ? await wireNewTerminal(
          this.channel,
          req.stdio,
          req.consoleSize,
          (slave, slaveName) =>
            spawnRestore(this.reaper, restoreArgs(req, ext, c.rootfs, cgroup, pidFile, slaveName), [
              slave,
              slave,
              slave,
            ]),
          restored,
        )
      : await (async () => {
          // Before any pipe exists: a refused configuration leaves none open.
          const plain = restoreArgs(req, ext, c.rootfs, cgroup, pidFile);
          return wirePipes(
            this.channel,
            req.stdio,
            (spec) => spawnRestore(this.reaper, plain, spec),
            restored,
          );
        })();
    proc.pid = Number(readFileSync(pidFile, "utf8"));
    writeCrunState(req.id, proc.pid, req.config, bundle);
    c.log = crunLog;
    this.adopt(c, proc);
    return { pid: proc.pid };
  }

  /**
   * A pod's container gone from the VM that goes on (its sandbox's): killed if it still
   * runs, crun's state and cgroup removed, its bundle too (guest tmpfs: nothing mounted).
   */
  remove(req: RequestOf<"remove">): Promise<ResultOf<"remove">> {
    return this.reaper.holding(async () => {
      const c = this.get(req.id);
      await crun(this.reaper, c.log, ["delete", "--force", c.id]);
      c.oom?.stop();
      this.containers.delete(c.id);
      rmSync(c.bundle, { recursive: true, force: true });
      return {};
    });
  }

  /** A pod's container paused alone: its cgroup frozen (the pod's VM, shared, runs on). */
  async freeze(req: RequestOf<"freeze">): Promise<ResultOf<"freeze">> {
    const c = this.get(req.id);
    await crun(this.reaper, c.log, [req.frozen ? "pause" : "resume", c.id]);
    return {};
  }

  async start(req: RequestOf<"start">): Promise<ResultOf<"start">> {
    const c = this.get(req.id);
    await crun(this.reaper, c.log, ["start", c.id]);
    return {};
  }

  private async doExec(req: RequestOf<"exec">): Promise<ResultOf<"exec">> {
    const c = this.get(req.id);
    if (c.execs.has(req.execId)) throw new Error(`exec "${req.execId}" already exists`);
    const processFile = join(c.bundle, `exec-${req.execId}.json`);
    const pidFile = join(c.bundle, `exec-${req.execId}.pid`);
    writeFileSync(processFile, JSON.stringify(req.process));
    const args = ["exec", "--detach", "--pid-file", pidFile, "--process", processFile];
    const terminal = req.process.terminal === true;
    const proc = await this.launch(
      c,
      "exec",
      args,
      pidFile,
      terminal,
      req.stdio,
      req.consoleSize,
      `exec-${req.execId}.sock`,
    );
    proc.execId = req.execId;
    c.execs.set(req.execId, proc);
    this.watchExit(c, proc);
    return { pid: proc.pid };
  }

  async signal(req: RequestOf<"signal">): Promise<ResultOf<"signal">> {
    const c = this.get(req.id);
    if (req.execId) {
      const p = c.execs.get(req.execId);
      if (!p) throw new Error(`exec "${req.execId}" does not exist`);
      process.kill(p.pid, req.signal);
      return {};
    }
    // Straight from here, as crun kill would do it, without starting crun (~100 ms under TCG).
    if (req.all) signalCgroup(c.cgroup, req.signal);
    else if (!c.init || c.initExited) throw new Error(`container "${c.id}" is not running`);
    else process.kill(c.init.pid, req.signal);
    return {};
  }

  async resize(req: RequestOf<"resize">): Promise<ResultOf<"resize">> {
    const c = this.get(req.id);
    const p = req.execId ? c.execs.get(req.execId) : c.init;
    p?.resize?.(req.rows, req.cols);
    return {};
  }

  async ps(req: RequestOf<"ps">): Promise<ResultOf<"ps">> {
    const c = this.get(req.id);
    const pids = JSON.parse(
      await crunOutput(this.reaper, c.log, ["ps", "--format", "json", c.id]),
    ) as number[];
    const execOf = new Map([...c.execs.values()].map((p) => [p.pid, p.execId]));
    return { processes: pids.map((pid) => ({ ...describeProcess(pid), execId: execOf.get(pid) })) };
  }

  async stats(req: RequestOf<"stats">): Promise<ResultOf<"stats">> {
    return cgroupStats(this.get(req.id).cgroup);
  }

  async update(req: RequestOf<"update">): Promise<ResultOf<"update">> {
    const c = this.get(req.id);
    const file = join(c.bundle, "resources.json");
    writeFileSync(file, JSON.stringify(req.resources));
    await crun(this.reaper, c.log, ["update", "--resources", file, c.id]);
    return {};
  }

  /** Runs crun create/exec with the process's stdio wired to the host; returns it with its pid. */
  private async launch(
    c: Container,
    what: "create" | "exec",
    args: string[],
    pidFile: string,
    terminal: boolean,
    stdio: RequestOf<"create">["stdio"],
    consoleSize: RequestOf<"create">["consoleSize"],
    socketName: string,
  ): Promise<GuestProcess> {
    const proc = terminal
      ? await wireTerminal(
          this.channel,
          stdio,
          join(c.bundle, socketName),
          consoleSize,
          c.log,
          what,
          (sock) => spawnCrun(this.reaper, c.log, [...args, "--console-socket", sock, c.id]),
        )
      : await wirePipes(
          this.channel,
          stdio,
          (spec) => spawnCrun(this.reaper, c.log, [...args, c.id], spec),
          (p) => crunDone(p, c.log, what),
        );
    proc.pid = Number(readFileSync(pidFile, "utf8"));
    return proc;
  }

  /**
   * The layer into the host's rootfs: marks applied here, the rest unpacked by the stand-in
   * (applyLayer, which asks for it with sendLayer). A failed copy loses the container's
   * writes: said in the runtime's log, as an error.
   */
  private async copyLayerBack(c: Container, lower: string): Promise<void> {
    c.layerLower = undefined;
    const t0 = performance.now();
    try {
      const { entries, failed } = prepareCopy(c.id, lower);
      if (failed.length)
        await this.log(
          "error",
          `${c.id}: writable layer: ${failed.length} removals failed in the rootfs: ${failed.slice(0, 5).join(", ")}`,
        );
      const t1 = performance.now();
      await this.channel.call("applyLayer", { id: c.id });
      const ms = (a: number, b: number) => `${(b - a).toFixed(0)} ms`;
      await this.log(
        "debug",
        `${c.id}: writable layer copied into the rootfs: ${entries} entries (marks ${ms(t0, t1)}, archive ${ms(t1, performance.now())})`,
      );
    } catch (err) {
      await this.log(
        "error",
        `${c.id}: the writable layer was not copied into the rootfs: ${errorMessage(err)}`,
      );
    } finally {
      await removeLayer(c.id);
    }
  }

  /** The layer's archive for the stand-in (within its applyLayer). */
  async sendLayer(req: RequestOf<"sendLayer">): Promise<ResultOf<"sendLayer">> {
    this.get(req.id);
    await sendLayer(
      this.reaper,
      this.channel,
      req.id,
      req.stream,
      (m) => void this.log("warning", `${req.id}: ${m}`),
    );
    return {};
  }

  private log(level: "debug" | "warning" | "error", message: string): Promise<void> {
    return this.channel.sendEvent({ t: "event", event: "log", level, message }).catch(() => {});
  }

  private watchExit(c: Container, p: GuestProcess): void {
    this.reaper.watch(p.pid, async (status) => {
      if (p === c.init) c.initExited = true;
      await Promise.race([p.drained, Bun.sleep(DRAIN_AFTER_EXIT_MS)]);
      if (p.execId) c.execs.delete(p.execId);
      // An OOM kill that ended the init is sent first (the channel keeps the order).
      else c.oom?.flush();
      // The container's writes are in the host's rootfs before anyone hears it exited.
      if (p === c.init && c.layerLower) await this.copyLayerBack(c, c.layerLower);
      await this.channel
        .sendEvent({ t: "event", event: "exit", id: c.id, execId: p.execId, status })
        .catch(() => {});
    });
  }
}

function rootPath(config: Record<string, unknown>): string {
  return ((config.root ?? {}) as { path?: string }).path ?? "";
}

/** The share mounted, once per VM (every container's rootfs and volumes are below it). */
function mountShare(): void {
  if (!existsSync(join(SHARE_MOUNT, "rootfs"))) mount(SHARE_TAG, SHARE_MOUNT, "9p", 0, NINEP_OPTIONS);
}

const CLK_TCK = 100;

function describeProcess(pid: number): { pid: number; user: string; time: string; cmd: string } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const secs = Math.floor((Number(f[11]) + Number(f[12])) / CLK_TCK);
    const time = [Math.floor(secs / 3600), Math.floor(secs / 60) % 60, secs % 60]
      .map((n) => String(n).padStart(2, "0"))
      .join(":");
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "?";
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    return { pid, user: uid === "0" ? "root" : uid, time, cmd: cmdline || `[${comm}]` };
  } catch {
    return { pid, user: "?", time: "00:00:00", cmd: "?" };
  }
}

/**
 * The container shares the guest's network namespace (its VM is its isolation), so crun
 * would refuse the net.* sysctls the spec asks for ("requires a new network namespace"; Docker
 * sets net.ipv4.ip_unprivileged_port_start). They are the container's own all the same: they
 * are applied here, to the guest's namespace, and taken out of what crun gets.
 */
function applyNetworkSysctls(config: Record<string, unknown>): void {
  const linux = config.linux as { sysctl?: Record<string, string> } | undefined;
  if (!linux?.sysctl) return;
  for (const [key, value] of Object.entries(linux.sysctl)) {
    if (!key.startsWith("net.")) continue;
    const file = join("/proc/sys", key.replaceAll(".", "/"));
    try {
      writeFileSync(file, value);
    } catch (err) {
      throw new Error(`linux.sysctl ${key}=${value}: cannot set it in the VM: ${(err as Error).message}`);
    }
    delete linux.sysctl[key];
  }
}
