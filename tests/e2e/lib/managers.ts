/**
 * The three managers, started by hand (no systemd here) with all their state in a
 * Workspace, each wired to the runtime under test by absolute path:
 * - containerd 1.6: own root/state/gRPC socket, CRI disabled; `ctr --runc-binary BIN`. With
 *   `{ cri }` its CRI plugin on instead (lib/cri.ts writes that configuration).
 * - dockerd 20.10 on that containerd, `--add-runtime cor=BIN`, no bridge, no iptables.
 * - podman 4.3: no daemon; `--runtime BIN`, a private containers.conf (ulimits this machine
 *   can grant), its own storage, tmp and network directories.
 * Each registers its clean-up with the workspace, so teardown happens also on failure.
 * Given a Netns (lib/netns.ts), each runs in that network namespace with its networking on
 * (dockerd: its default bridge and iptables; podman: its default network; ctr: `--cni`).
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asUser, chownTo, type TestUser } from "../../lib/user.ts";
import type { Netns } from "./netns.ts";
import { CONTAINERD, CTR, DOCKER, DOCKERD, PODMAN } from "./packages.ts";
import { type Cmd, type CmdOptions, cmd, describe, must, waitFor } from "./proc.ts";
import { BIN, stopPid, unmountUnder, type Workspace } from "./workspace.ts";

/** Starts a daemon in its own session, output to `log`; returns its pid. */
function spawnDaemon(argv: string[], log: string, env?: Record<string, string | undefined>): number {
  const fd = openSync(log, "a");
  const child = Bun.spawn(["setsid", ...argv], {
    stdin: "ignore",
    stdout: fd,
    stderr: fd,
    env: env as Record<string, string> | undefined,
  });
  closeSync(fd);
  child.unref();
  return child.pid;
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export interface ContainerdOptions {
  /**
   * TOML of the CRI plugin (`[plugins."io.containerd.grpc.v1.cri"]` and its sub-tables), one
   * line an item: the plugin is enabled with it, disabled without (lib/cri.ts).
   */
  cri?: string[];
}

export class Containerd {
  readonly sock: string;
  readonly log: string;
  /** The namespace ctr uses (dockerd uses "moby"). */
  readonly ns = "cc-e2e";
  /** --runc-root for ctr: the runtime's state directories stay in the workspace. */
  readonly runcRoot: string;
  private pid = 0;
  /** How ctr is run: as it is, or in a network namespace (see `withCtr`). */
  private wrap: (argv: string[]) => string[] = (argv) => argv;

  private constructor(ws: Workspace) {
    this.sock = ws.path("containerd.sock");
    this.log = ws.path("containerd.log");
    this.runcRoot = ws.path("runc-root");
  }

  /** containerd in the workspace; in `netns` when given (its shims and their children too). */
  static async start(ws: Workspace, netns?: Netns, opts: ContainerdOptions = {}): Promise<Containerd> {
    const c = new Containerd(ws);
    const config = ws.path("containerd.toml");
    writeFileSync(
      config,
      [
        "version = 2",
        `root = "${ws.path("containerd/root")}"`,
        `state = "${ws.path("containerd/state")}"`,
        ...(opts.cri ? [] : ['disabled_plugins = ["io.containerd.grpc.v1.cri"]']),
        "[grpc]",
        `  address = "${c.sock}"`,
        "[ttrpc]",
        `  address = "${c.sock}.ttrpc"`,
        "[debug]",
        `  address = "${ws.path("containerd-debug.sock")}"`,
        // Its "opt" plugin would make /opt/containerd otherwise.
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${ws.path("containerd/opt")}"`,
        ...(opts.cri ?? []),
        "",
      ].join("\n"),
    );
    const argv = [CONTAINERD, "--config", config];
    c.pid = spawnDaemon(netns ? netns.enter(argv) : argv, c.log);
    ws.onTeardown("containerd", () => c.stop());
    try {
      await waitFor("containerd to answer", async () => {
        const r = await cmd([CTR, "-a", c.sock, "version"], { timeout: 10_000 });
        return r.code === 0 ? true : undefined;
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}\ncontainerd log:\n${tail(c.log)}`);
    }
    return c;
  }

  /** From now on every ctr command (the file's and teardown's) runs as `wrap(argv)`. */
  withCtr(wrap: (argv: string[]) => string[]): void {
    this.wrap = wrap;
  }

  ctr(args: string[], opts: CmdOptions = {}): Promise<Cmd> {
    return cmd(this.wrap([CTR, "-a", this.sock, "-n", this.ns, ...args]), opts);
  }

  async importImage(ociTar: string): Promise<void> {
    const r = await this.ctr(["images", "import", ociTar], { timeout: 120_000 });
    if (r.code !== 0) throw new Error(`ctr images import failed:\n${describe(r)}`);
  }

  /** Kills and deletes whatever tasks and containers ctr left in its namespace. */
  async removeAll(): Promise<void> {
    const tasks = await this.ctr(["tasks", "ls", "-q"], { timeout: 20_000 });
    for (const id of tasks.stdout.split("\n").filter(Boolean)) {
      await this.ctr(["tasks", "kill", "-a", "-s", "SIGKILL", id], { timeout: 20_000 });
      await this.ctr(["tasks", "delete", "-f", id], { timeout: 30_000 });
    }
    const ctrs = await this.ctr(["containers", "ls", "-q"], { timeout: 20_000 });
    for (const id of ctrs.stdout.split("\n").filter(Boolean)) {
      await this.ctr(["containers", "delete", id], { timeout: 30_000 });
    }
  }

  async stop(): Promise<void> {
    if (this.pid) await stopPid(this.pid, 10_000);
    this.pid = 0;
  }
}

export class Dockerd {
  readonly sock: string;
  readonly log: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  /** Where the runtime's state (and its global log) lands: the shim's --root. */
  readonly runtimeRoot: string;
  private readonly env: Record<string, string | undefined>;

  private constructor(ws: Workspace) {
    this.sock = ws.path("docker.sock");
    this.log = ws.path("dockerd.log");
    this.dataRoot = ws.path("docker/data");
    this.execRoot = ws.path("docker/exec");
    this.runtimeRoot = join(this.execRoot, "runtime-runc/moby");
    // A private client configuration; never the machine's DOCKER_HOST.
    this.env = { ...process.env, DOCKER_CONFIG: ws.path("docker-cli"), DOCKER_HOST: undefined };
  }

  /**
   * dockerd on `containerd`. Without `netns`: no networking at all (`--bridge=none`, no
   * iptables; containers need `--network none`). In `netns`: docker's defaults, its default
   * bridge (docker0), iptables rules and docker-proxy, all in that namespace.
   */
  static async start(ws: Workspace, containerd: Containerd, netns?: Netns): Promise<Dockerd> {
    const d = new Dockerd(ws);
    const pidfile = ws.path("dockerd.pid");
    const daemonJson = ws.path("daemon.json");
    writeFileSync(daemonJson, "{}\n");
    const noNetwork = ["--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none"];
    const argv = [
      DOCKERD,
      "--config-file",
      daemonJson,
      "--data-root",
      d.dataRoot,
      "--exec-root",
      d.execRoot,
      "-H",
      `unix://${d.sock}`,
      "--pidfile",
      pidfile,
      "--containerd",
      containerd.sock,
      ...(netns ? [] : noNetwork),
      "--storage-driver",
      "overlay2",
      "--add-runtime",
      `cor=${BIN}`,
      // docker checkpoint create / docker start --checkpoint
      "--experimental",
    ];
    spawnDaemon(netns ? netns.enter(argv) : argv, d.log);
    ws.onTeardown("dockerd", async () => {
      let pid = 0;
      try {
        pid = Number(readFileSync(pidfile, "utf8").trim());
      } catch {
        // never came up
      }
      if (pid > 0) await stopPid(pid, 30_000);
      // dockerd can leave a bind mount of its data root on itself.
      await unmountUnder(d.dataRoot);
    });
    ws.onTeardown("docker containers", () => d.removeAll());
    try {
      await waitFor("dockerd to answer", async () => {
        const r = await d.docker(["version", "--format", "{{.Server.Version}}"], { timeout: 10_000 });
        return r.code === 0 ? true : undefined;
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}\ndockerd log:\n${tail(d.log)}`);
    }
    return d;
  }

  argv(args: string[]): string[] {
    return [DOCKER, "-H", `unix://${this.sock}`, ...args];
  }

  clientEnv(): Record<string, string | undefined> {
    return this.env;
  }

  docker(args: string[], opts: CmdOptions = {}): Promise<Cmd> {
    return cmd(this.argv(args), { ...opts, env: { ...this.env, ...opts.env } });
  }

  async importImage(rootfsTar: string, name: string): Promise<void> {
    await must(this.argv(["import", rootfsTar, name]), { env: this.env, timeout: 120_000 });
  }

  async inspect(id: string, format: string): Promise<string> {
    const r = await this.docker(["inspect", "-f", format, id], { timeout: 30_000 });
    if (r.code !== 0) throw new Error(`docker inspect failed:\n${describe(r)}`);
    return r.stdout.trim();
  }

  async removeAll(): Promise<void> {
    const ids = await this.docker(["ps", "-aq"], { timeout: 30_000 });
    const list = ids.stdout.split("\n").filter(Boolean);
    if (list.length) await this.docker(["rm", "-f", ...list], { timeout: 60_000 });
  }
}

export class Podman {
  readonly root: string;
  readonly runroot: string;
  readonly conf: string;
  /** The runtime's root: podman/conmon pass no --root (rootless: under XDG_RUNTIME_DIR). */
  readonly runtimeRoot: string;
  private readonly env: Record<string, string | undefined>;
  /** The runtime's default root: podman/conmon pass no --root. */
  static readonly RUNTIME_ROOT = "/run/opencontainer/containers";

  /**
   * In `netns` when given: every podman command, conmon and netavark run there. As `user`
   * when given: rootless podman (its user namespace from /etc/subuid, its storage, its
   * XDG_RUNTIME_DIR) in a directory of the workspace that the user owns.
   */
  constructor(
    private ws: Workspace,
    private netns?: Netns,
    private user?: TestUser,
    /** The runtime podman is given (podman checkpoints only with one named runc or crun). */
    private runtime = BIN,
  ) {
    const base = user ? userDir(ws, user) : ws.path("podman");
    mkdirSync(base, { recursive: true });
    this.root = join(base, "root");
    this.runroot = join(base, "runroot");
    this.conf = join(base, "containers.conf");
    const runtimeDir = join(base, "run");
    this.runtimeRoot = user ? join(runtimeDir, "cc-oci-runtime") : Podman.RUNTIME_ROOT;
    writeFileSync(
      this.conf,
      [
        "[containers]",
        // No CAP_SYS_RESOURCE here, and RLIMIT_NOFILE is capped at 20000: podman's defaults
        // (1048576) cannot be granted.
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
        // No journald here: container logs in files, as `podman logs` reads them.
        'log_driver = "k8s-file"',
        "[engine]",
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `tmp_dir = "${join(base, "tmp")}"`,
        `volume_path = "${join(base, "volumes")}"`,
        "[network]",
        `network_config_dir = "${join(base, "net")}"`,
        "",
      ].join("\n"),
    );
    const storage = join(base, "storage.conf");
    writeFileSync(
      storage,
      `[storage]\ndriver = "overlay"\nrunroot = "${this.runroot}"\ngraphroot = "${this.root}"\n`,
    );
    const registries = join(base, "registries.conf");
    writeFileSync(registries, "unqualified-search-registries = []\n");
    this.env = {
      ...process.env,
      CONTAINERS_CONF: this.conf,
      CONTAINERS_STORAGE_CONF: storage,
      CONTAINERS_REGISTRIES_CONF: registries,
    };
    if (user) {
      mkdirSync(runtimeDir, { mode: 0o700 });
      chownTo(user, base);
      Object.assign(this.env, {
        HOME: user.home,
        USER: user.name,
        LOGNAME: user.name,
        XDG_RUNTIME_DIR: runtimeDir,
      });
      // The user's podman keeps its user namespace in a pause process: it goes last.
      ws.onTeardown("rootless podman's pause process", () => {
        // podman 4.3 keeps its pid in tmp_dir (containers.conf), later ones under XDG_RUNTIME_DIR.
        for (const file of [join(base, "tmp/pause.pid"), join(runtimeDir, "libpod/tmp/pause.pid")]) {
          const pid = existsSync(file) ? Number(readFileSync(file, "utf8")) : 0;
          if (pid > 0) process.kill(pid, "SIGKILL");
        }
      });
    }
    ws.onTeardown("podman containers", () => this.removeAll());
  }

  argv(args: string[]): string[] {
    const argv = [
      PODMAN,
      "--root",
      this.root,
      "--runroot",
      this.runroot,
      "--storage-driver",
      "overlay",
      "--cgroup-manager",
      "cgroupfs",
      "--events-backend",
      "file",
      "--runtime",
      this.runtime,
      ...args,
    ];
    const as = this.user ? asUser(this.user, argv) : argv;
    return this.netns ? this.netns.enter(as) : as;
  }

  podman(args: string[], opts: CmdOptions = {}): Promise<Cmd> {
    return cmd(this.argv(args), { ...opts, env: { ...this.env, ...opts.env } });
  }

  async importImage(ociTar: string): Promise<void> {
    await must(this.argv(["load", "-i", ociTar]), { env: this.env, timeout: 120_000 });
  }

  /** Container ids, remembered so teardown can find their processes and runtime state. */
  remember(id: string): void {
    if (/^[0-9a-f]{64}$/.test(id)) this.ws.mark(id);
  }

  async removeAll(): Promise<void> {
    const ids = await this.podman(["ps", "-aq", "--no-trunc"], { timeout: 30_000 });
    for (const id of ids.stdout.split("\n").filter(Boolean)) this.remember(id);
    await this.podman(["rm", "-af", "-t", "0"], { timeout: 120_000 });
    // Whatever podman could not remove: the runtime's own forced delete, by id (rootless:
    // in podman's user and mount namespaces, where the container's mounts are).
    for (const id of this.ws.markers) {
      const del = [BIN, "--root", this.runtimeRoot, "delete", "--force", id];
      if (this.user) await this.podman(["unshare", ...del], { timeout: 60_000 });
      else await cmd(del, { timeout: 60_000 });
    }
  }
}

/**
 * A directory of the workspace for `user`: the workspace (root's, 0700) lets it pass, the
 * directory is its own. Podman's rootless storage under it holds files of the user's
 * subordinate ids; the workspace's teardown removes them as root.
 */
function userDir(ws: Workspace, user: TestUser): string {
  chmodSync(ws.dir, 0o711);
  // Short: podman refuses a runroot of more than 50 characters.
  const dir = ws.path("u");
  mkdirSync(dir);
  chownTo(user, dir);
  return dir;
}
