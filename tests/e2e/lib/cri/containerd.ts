/**
 * `CriContainerd`: containerd 1.6 with its CRI plugin on, in a network namespace of the test
 * (lib/netns.ts), so the CNI bridge and the pods' veths are made there: the CNI config
 * (Debian's bridge plugin from /usr/lib/cni, host-local IPAM with its data in the workspace)
 * in the workspace, the pods' network namespaces under containerd's state directory
 * (`netns_mounts_under_state_dir`), a busybox image and a pause image of it imported into
 * containerd's `k8s.io` namespace, runtime handlers `runc` (Debian's /usr/bin/runc, the
 * default) and `cc` (the runtime under test, BIN), each with its state (`--root`) in the
 * workspace, and a connected client (lib/cri/client.ts). Teardown removes every pod and
 * container through CRI before containerd stops; `leftovers()` lists what pods left behind.
 *
 * Outside the workspace, containerd's CRI writes:
 * - libcni's cache, `/var/lib/cni/results/` (no setting moves it in 1.6): files
 *   `cc-e2e-cri-POD-eth0` and `cni-loopback-POD-lo` while a pod has its network, removed by
 *   StopPodSandbox;
 * - the containers' cgroups, `/k8s.io/ID` in every hierarchy (a pod without `cgroupParent`),
 *   removed by the runtime's delete;
 * the teardown removes those directories (`/var/lib/cni/results`, `/sys/fs/cgroup/CTRL/k8s.io`)
 * if it made them and they are empty. Shims' sockets are in /run/containerd/s/ (gone with the
 * shims).
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildImage, IMAGE } from "../image.ts";
import { Containerd } from "../managers.ts";
import type { Netns } from "../netns.ts";
import { CNI_PLUGINS, CTR } from "../packages.ts";
import { type Cmd, type CmdOptions, cmd, describe } from "../proc.ts";
import { BIN, mountsUnder, type Workspace } from "../workspace.ts";
import { Cri } from "./client.ts";

/** The sandbox ("pause") image: the busybox rootfs whose process waits for a signal. */
export const PAUSE_IMAGE = "localhost/cc-e2e-pause:latest";
/** The pause process: PID 1 of the sandbox, it ends on SIGTERM/SIGINT (containerd sends SIGKILL). */
export const PAUSE_ENTRYPOINT = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep inf & wait"];
/** The CNI network's name (libcni's cache names its files after it). */
export const CRI_NETWORK = "cc-e2e-cri";
/** The namespace of containerd that CRI uses (images must be imported there). */
export const CRI_NS = "k8s.io";

/** A runtime handler of the CRI plugin: a runc-compatible binary under containerd's runc shim. */
export interface CriRuntime {
  /** Absolute path of the runtime (the shim's `BinaryName`). */
  binary: string;
  /** The runtime's state, given as `--root ROOT/k8s.io` by the shim (`Root`); default: the workspace's runtimes/NAME. */
  root?: string;
  /** Pod annotations (glob patterns) copied into the OCI spec of the pod's containers (`pod_annotations`). */
  podAnnotations?: string[];
  /** Container annotations (glob patterns) copied into its OCI spec (`container_annotations`). */
  containerAnnotations?: string[];
  /** `privileged_without_host_devices`. */
  privilegedWithoutHostDevices?: boolean;
  /** More keys of the shim's `[...options]` (e.g. `NoPivotRoot`, `SystemdCgroup`). */
  options?: Record<string, string | number | boolean>;
}

export interface CriOptions {
  /** Runtime handlers, merged over the defaults: `runc` (/usr/bin/runc) and `cc` (BIN). */
  runtimes?: Record<string, CriRuntime>;
  /** The handler of RunPodSandbox's `runtimeHandler: ""`; default `runc`. */
  defaultRuntime?: string;
  /** The pods' subnet (host-local IPAM), a /24; default 10.78.0.0/24, the bridge cni-cri0 at .1. */
  subnet?: string;
  /** Pods' network namespaces under containerd's state directory (default) or in /run/netns. */
  netnsUnderState?: boolean;
  /** More TOML lines under `[plugins."io.containerd.grpc.v1.cri"]` (before its sub-tables). */
  extra?: string[];
  /** The client's transport (ConnectOptions); default CC_E2E_CRI_TRANSPORT, else "node". */
  transport?: "node" | "bun";
}

const toml = (v: string | number | boolean | string[]): string =>
  Array.isArray(v) ? `[${v.map((x) => JSON.stringify(x)).join(", ")}]` : JSON.stringify(v);

/** Whether this process has capability number `cap` (CapEff of /proc/self/status). */
function hasCap(cap: number): boolean {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0";
  return ((BigInt(`0x${hex}`) >> BigInt(cap)) & 1n) === 1n;
}

function apparmorEnabled(): boolean {
  try {
    return readFileSync("/sys/module/apparmor/parameters/enabled", "utf8").trim() === "Y";
  } catch {
    return false;
  }
}

const CAP_SYS_RESOURCE = 24;

/** A directory's entries, none if it does not exist. */
const ls = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);
const CNI_CACHE = "/var/lib/cni";

export class CriContainerd {
  /** containerd's state directory of the CRI plugin (sandboxes' files, netns). */
  readonly criState: string;
  /** Where the pods' network namespaces are (bind mounts named cni-UUID). */
  readonly netnsDir: string;
  /** Where the pods' log directories go (one per pod: `podLogDir`). */
  readonly logRoot: string;
  /** host-local's reservations: `IPAM/cc-e2e-cri/ADDRESS` files, named by address. */
  readonly ipamDir: string;
  readonly confDir: string;
  /** The runtime handlers, with their resolved state roots. */
  readonly runtimes: Record<string, Required<Pick<CriRuntime, "binary" | "root">>>;
  /** The busybox image (lib/image.ts) and the sandbox image, both in `k8s.io`. */
  readonly image = IMAGE;
  readonly pauseImage = PAUSE_IMAGE;
  readonly subnet: string;
  readonly gateway: string;

  private constructor(
    private readonly ws: Workspace,
    readonly containerd: Containerd,
    readonly cri: Cri,
    readonly netns: Netns,
    paths: {
      criState: string;
      netnsDir: string;
      logRoot: string;
      ipamDir: string;
      confDir: string;
      subnet: string;
      gateway: string;
      runtimes: Record<string, Required<Pick<CriRuntime, "binary" | "root">>>;
    },
  ) {
    this.criState = paths.criState;
    this.netnsDir = paths.netnsDir;
    this.logRoot = paths.logRoot;
    this.ipamDir = paths.ipamDir;
    this.confDir = paths.confDir;
    this.subnet = paths.subnet;
    this.gateway = paths.gateway;
    this.runtimes = paths.runtimes;
    this.cacheAtStart = new Set(ls(join(CNI_CACHE, "results")));
  }

  /** libcni's cache as this containerd found it: entries of another run's pods are not this one's. */
  private readonly cacheAtStart: Set<string>;

  get sock(): string {
    return this.containerd.sock;
  }

  /** The runtime's `--root` as the shim gives it: its state and (cc-oci-runtime) global log there. */
  runtimeRoot(handler: string): string {
    const r = this.runtimes[handler];
    if (!r) throw new Error(`no runtime handler ${handler}`);
    return join(r.root, CRI_NS);
  }

  /** A pod's log directory, kubelet's way (NAMESPACE_NAME_UID), under the workspace; made. */
  podLogDir(name: string, namespace = "cc-e2e", uid = `${name}-uid`): string {
    const dir = join(this.logRoot, `${namespace}_${name}_${uid}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /**
   * containerd with CRI in `netns`, the busybox and pause images imported, a connected client;
   * teardown (registered here) removes every pod and container through CRI, then stops it.
   */
  static async start(ws: Workspace, netns: Netns, opts: CriOptions = {}): Promise<CriContainerd> {
    const base = ws.path("cri");
    const confDir = join(base, "net.d");
    const ipamDir = join(base, "ipam");
    const logRoot = join(base, "pods");
    for (const d of [confDir, ipamDir, logRoot]) mkdirSync(d, { recursive: true });
    const subnet = opts.subnet ?? "10.78.0.0/24";
    const gateway = subnet.replace(/\.0\/24$/, ".1");
    writeFileSync(
      join(confDir, "10-cc-e2e-cri.conflist"),
      JSON.stringify(
        {
          cniVersion: "1.0.0",
          name: CRI_NETWORK,
          plugins: [
            {
              type: "bridge",
              bridge: "cni-cri0",
              isGateway: true,
              ipMasq: false,
              hairpinMode: true,
              ipam: {
                type: "host-local",
                dataDir: ipamDir,
                ranges: [[{ subnet, gateway }]],
                routes: [{ dst: "0.0.0.0/0" }],
              },
            },
          ],
        },
        null,
        2,
      ),
    );

    const runtimes: Record<string, Required<Pick<CriRuntime, "binary" | "root">>> = {};
    const specs: Record<string, CriRuntime> = {
      runc: { binary: "/usr/bin/runc" },
      cc: { binary: BIN },
      ...opts.runtimes,
    };
    const cri = `plugins."io.containerd.grpc.v1.cri"`;
    const lines = [
      `[${cri}]`,
      `  sandbox_image = ${toml(PAUSE_IMAGE)}`,
      // No AppArmor on these machines (containerd 1.6 would skip it there anyway).
      `  disable_apparmor = ${toml(!apparmorEnabled())}`,
      // Without CAP_SYS_RESOURCE no process may lower its oom_score_adj: the sandbox's -998
      // fails runc's create ("can't get final child's PID from pipe: EOF"); restricted,
      // containerd raises it to its own (0 here). The containers' RLIMIT_NOFILE needs nothing:
      // CRI's spec sets no rlimits, they inherit containerd's (20000 here).
      `  restrict_oom_score_adj = ${toml(!hasCap(CAP_SYS_RESOURCE))}`,
      `  netns_mounts_under_state_dir = ${toml(opts.netnsUnderState ?? true)}`,
      ...(opts.extra ?? []).map((l) => `  ${l}`),
      `[${cri}.containerd]`,
      `  snapshotter = "overlayfs"`,
      `  default_runtime_name = ${toml(opts.defaultRuntime ?? "runc")}`,
    ];
    for (const [name, r] of Object.entries(specs)) {
      const root = r.root ?? ws.path("runtimes", name);
      mkdirSync(root, { recursive: true });
      runtimes[name] = { binary: r.binary, root };
      lines.push(
        `[${cri}.containerd.runtimes.${name}]`,
        `  runtime_type = "io.containerd.runc.v2"`,
        ...(r.podAnnotations ? [`  pod_annotations = ${toml(r.podAnnotations)}`] : []),
        ...(r.containerAnnotations ? [`  container_annotations = ${toml(r.containerAnnotations)}`] : []),
        ...(r.privilegedWithoutHostDevices !== undefined
          ? [`  privileged_without_host_devices = ${toml(r.privilegedWithoutHostDevices)}`]
          : []),
        `[${cri}.containerd.runtimes.${name}.options]`,
        `  BinaryName = ${toml(r.binary)}`,
        `  Root = ${toml(root)}`,
        ...Object.entries(r.options ?? {}).map(([k, v]) => `  ${k} = ${toml(v)}`),
      );
    }
    lines.push(`[${cri}.cni]`, `  bin_dir = ${toml(CNI_PLUGINS)}`, `  conf_dir = ${toml(confDir)}`);

    // libcni's cache: if CRI makes /var/lib/cni, the teardown takes it back once empty
    // (after containerd stopped: registered first, runs last).
    // The same for the containers' cgroup parent, /k8s.io in every hierarchy.
    const made = [CNI_CACHE, join(CNI_CACHE, "results"), ...cgroupParents()].filter((d) => !existsSync(d));
    ws.onTeardown("libcni's cache directories, the cgroup parents", () => {
      for (const d of made.reverse()) {
        try {
          rmdirSync(d);
        } catch {
          // not empty (another run's, or a leftover the test reports), or not made
        }
      }
    });

    const containerd = await Containerd.start(ws, netns, { cri: lines });
    const transport = opts.transport ?? (process.env.CC_E2E_CRI_TRANSPORT === "bun" ? "bun" : "node");
    const client = await Cri.connect(containerd.sock, { transport });
    ws.onTeardown("CRI client", () => client.close());
    const paths = {
      criState: ws.path("containerd/state/io.containerd.grpc.v1.cri"),
      netnsDir:
        (opts.netnsUnderState ?? true)
          ? ws.path("containerd/state/io.containerd.grpc.v1.cri/netns")
          : "/run/netns",
      logRoot,
      ipamDir,
      confDir,
      subnet,
      gateway,
      runtimes,
    };
    const c = new CriContainerd(ws, containerd, client, netns, paths);
    ws.onTeardown("CRI pods and containers", () => c.removeAll());

    const images = ws.path("cri/images");
    const busybox = await buildImage(join(images, "busybox"));
    const pause = await buildImage(join(images, "pause"), {
      name: PAUSE_IMAGE,
      entrypoint: PAUSE_ENTRYPOINT,
    });
    await c.importImage(busybox.ociTar);
    await c.importImage(pause.ociTar);
    return c;
  }

  /** ctr in containerd's `k8s.io` namespace (CRI's). */
  ctr(args: string[], opts: CmdOptions = {}): Promise<Cmd> {
    return cmd([CTR, "-a", this.sock, "-n", CRI_NS, ...args], opts);
  }

  /** An OCI layout tarball (lib/image.ts) into `k8s.io`, where CRI finds it. */
  async importImage(ociTar: string): Promise<void> {
    const r = await this.ctr(["images", "import", ociTar], { timeout: 120_000 });
    if (r.code !== 0) throw new Error(`ctr images import failed:\n${describe(r)}`);
  }

  /** The pod's containers, then the pod: stopped and removed through CRI; errors collected. */
  async removePod(id: string, problems: string[] = []): Promise<string[]> {
    const note = (what: string) => (err: unknown) => problems.push(`${what}: ${(err as Error).message}`);
    for (const ctr of await this.cri.listContainers({ podSandboxId: id }).catch(() => [])) {
      await this.cri.stopContainer(ctr.id, 0).catch(note(`StopContainer ${ctr.id}`));
      await this.cri.removeContainer(ctr.id).catch(note(`RemoveContainer ${ctr.id}`));
    }
    await this.cri.stopPodSandbox(id).catch(note(`StopPodSandbox ${id}`));
    await this.cri.removePodSandbox(id).catch(note(`RemovePodSandbox ${id}`));
    return problems;
  }

  /** Every pod and container CRI knows, removed (the teardown's first step). */
  async removeAll(): Promise<void> {
    const problems: string[] = [];
    for (const pod of await this.cri.listPodSandbox()) await this.removePod(pod.id, problems);
    for (const ctr of await this.cri.listContainers()) {
      await this.cri
        .removeContainer(ctr.id)
        .catch((e) => problems.push(`RemoveContainer ${ctr.id}: ${e.message}`));
    }
    if (problems.length) throw new Error(problems.join("\n"));
  }

  /**
   * What the pods left once removed, one description an item (empty: nothing): pods and
   * containers CRI still lists, network namespace files, host-local reservations, libcni
   * cache entries of the network, mounts under the workspace other than containerd's own
   * (none while no container exists), the runtimes' state directories, shims of the workspace.
   */
  async leftovers(): Promise<string[]> {
    const left: string[] = [];
    for (const p of await this.cri.listPodSandbox())
      left.push(`pod ${p.id} (${p.metadata?.name}) ${p.state}`);
    for (const c of await this.cri.listContainers())
      left.push(`container ${c.id} (${c.metadata?.name}) ${c.state}`);
    for (const f of ls(this.netnsDir).filter((f) => f.startsWith("cni-")))
      left.push(`netns ${join(this.netnsDir, f)}`);
    for (const f of ls(join(this.ipamDir, CRI_NETWORK)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))) {
      left.push(`host-local reservation ${f}`);
    }
    const cache = ls(join(CNI_CACHE, "results"));
    const ours = (f: string) => !this.cacheAtStart.has(f);
    for (const f of cache.filter(
      (f) => ours(f) && (f.startsWith(`${CRI_NETWORK}-`) || f.startsWith("cni-loopback-")),
    )) {
      left.push(`libcni cache ${join(CNI_CACHE, "results", f)}`);
    }
    for (const m of mountsUnder(this.ws.dir)) left.push(`mount ${m}`);
    for (const [name] of Object.entries(this.runtimes)) {
      for (const id of ls(this.runtimeRoot(name))) {
        if (/^[0-9a-f]{64}$/.test(id)) left.push(`${name} state ${join(this.runtimeRoot(name), id)}`);
      }
    }
    for (const pid of shimsOf(this.sock)) left.push(`shim pid ${pid}`);
    return left;
  }
}

/** `/k8s.io` in each cgroup hierarchy (v1: every controller's, v2: the one). */
function cgroupParents(): string[] {
  const base = "/sys/fs/cgroup";
  if (existsSync(join(base, "cgroup.controllers"))) return [join(base, CRI_NS)];
  return readdirSync(base)
    .map((d) => join(base, d))
    .filter((d) => existsSync(join(d, "cgroup.procs")))
    .map((d) => join(d, CRI_NS));
}

/** Pids of containerd-shim-runc-v2 processes of the containerd at `sock`. */
function shimsOf(sock: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (argv[0]?.endsWith("containerd-shim-runc-v2") && argv.includes(sock)) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}
