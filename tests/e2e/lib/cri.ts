/**
 * Kubernetes' CRI for the e2e tests, without kubelet or crictl (a Go module this machine
 * cannot fetch):
 * - `Cri`: a client of CRI `runtime.v1` (RuntimeService, ImageService) on containerd's unix
 *   socket, from the vendored subset lib/cri/api.proto: @grpc/grpc-js and @grpc/proto-loader
 *   (fields in camelCase, int64 as numbers, enums as their names, unset fields at their
 *   defaults), run by the machine's node (lib/cri/bridge.mjs, JSON lines on its stdio): under
 *   Bun 1.4.5 a reply is lost now and then (see NodeTransport). Every call has a deadline and
 *   fails with a `CriError`.
 * - `CriContainerd`: containerd 1.6 with its CRI plugin on, in a network namespace of the test
 *   (lib/netns.ts), so the CNI bridge and the pods' veths are made there: the CNI config
 *   (Debian's bridge plugin from /usr/lib/cni, host-local IPAM with its data in the
 *   workspace) in the workspace, the pods' network namespaces under containerd's state
 *   directory (`netns_mounts_under_state_dir`), a busybox image and a pause image of it
 *   imported into containerd's `k8s.io` namespace, runtime handlers `runc` (Debian's
 *   /usr/bin/runc, the default) and `cc` (the runtime under test, BIN), each with its state
 *   (`--root`) in the workspace. Teardown removes every pod and container through CRI before
 *   containerd stops.
 * - `podConfig`, `containerConfig`: configurations shaped like kubelet's; `readCriLog`: a
 *   container's log file (CRI format) back to its stdout and stderr.
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
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { buildImage, IMAGE } from "./image.ts";
import { Containerd } from "./managers.ts";
import type { Netns } from "./netns.ts";
import { CNI_PLUGINS, CTR } from "./packages.ts";
import { type Cmd, type CmdOptions, cmd, describe } from "./proc.ts";
import { BIN, mountsUnder, type Workspace } from "./workspace.ts";

// ---------------------------------------------------------------------------------------
// Messages (camelCase, as proto-loader gives them with keepCase false). Requests: only what
// the caller sets (every field optional, proto3 defaults for the rest). Responses: every
// field there (defaults: true); an unset message field is null.

type Labels = Record<string, string>;
export type NamespaceMode = "POD" | "CONTAINER" | "NODE" | "TARGET";
export type PodSandboxState = "SANDBOX_READY" | "SANDBOX_NOTREADY";
export type ContainerState =
  | "CONTAINER_CREATED"
  | "CONTAINER_RUNNING"
  | "CONTAINER_EXITED"
  | "CONTAINER_UNKNOWN";

export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}

export interface SecurityProfile {
  profileType?: "RuntimeDefault" | "Unconfined" | "Localhost";
  localhostRef?: string;
}

export interface LinuxContainerResources {
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimitInBytes?: number;
  oomScoreAdj?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  unified?: Labels;
  memorySwapLimitInBytes?: number;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  /** A host directory; each container's `logPath` is relative to it. */
  logDirectory?: string;
  dnsConfig?: { servers?: string[]; searches?: string[]; options?: string[] };
  portMappings?: {
    protocol?: "TCP" | "UDP" | "SCTP";
    containerPort?: number;
    hostPort?: number;
    hostIp?: string;
  }[];
  labels?: Labels;
  annotations?: Labels;
  linux?: {
    cgroupParent?: string;
    securityContext?: {
      namespaceOptions?: NamespaceOption;
      runAsUser?: { value: number };
      runAsGroup?: { value: number };
      readonlyRootfs?: boolean;
      supplementalGroups?: number[];
      privileged?: boolean;
      seccomp?: SecurityProfile;
      apparmor?: SecurityProfile;
    };
    sysctls?: Labels;
    overhead?: LinuxContainerResources;
    resources?: LinuxContainerResources;
  };
}

export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly?: boolean;
  selinuxRelabel?: boolean;
  propagation?: "PROPAGATION_PRIVATE" | "PROPAGATION_HOST_TO_CONTAINER" | "PROPAGATION_BIDIRECTIONAL";
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string; annotations?: Labels };
  /** The entrypoint (docker's ENTRYPOINT); `args` are docker's CMD. */
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: { key: string; value: string }[];
  mounts?: Mount[];
  devices?: { containerPath: string; hostPath: string; permissions: string }[];
  labels?: Labels;
  annotations?: Labels;
  /** Relative to the pod's `logDirectory`. */
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  linux?: {
    resources?: LinuxContainerResources;
    securityContext?: {
      capabilities?: {
        addCapabilities?: string[];
        dropCapabilities?: string[];
        addAmbientCapabilities?: string[];
      };
      privileged?: boolean;
      namespaceOptions?: NamespaceOption;
      runAsUser?: { value: number };
      runAsGroup?: { value: number };
      runAsUsername?: string;
      readonlyRootfs?: boolean;
      supplementalGroups?: number[];
      noNewPrivs?: boolean;
      maskedPaths?: string[];
      readonlyPaths?: string[];
      seccomp?: SecurityProfile;
      apparmor?: SecurityProfile;
    };
  };
}

export interface VersionResponse {
  version: string;
  runtimeName: string;
  runtimeVersion: string;
  runtimeApiVersion: string;
}

export interface StatusResponse {
  status: { conditions: { type: string; status: boolean; reason: string; message: string }[] } | null;
  info: Labels;
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: PodSandboxState;
  /** Nanoseconds (as a number: its last digits are rounded). */
  createdAt: number;
  network: { ip: string; additionalIps: { ip: string }[] } | null;
  linux: {
    namespaces: { options: Required<NamespaceOption> | null } | null;
  } | null;
  labels: Labels;
  annotations: Labels;
  runtimeHandler: string;
}

export interface PodSandboxStatusResponse {
  status: PodSandboxStatus | null;
  /** Verbose only: JSON strings (containerd: `info`, with pid, netns path, OCI spec...). */
  info: Labels;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: PodSandboxState;
  createdAt: number;
  labels: Labels;
  annotations: Labels;
  runtimeHandler: string;
}

export interface PodSandboxFilter {
  id?: string;
  state?: { state: PodSandboxState };
  labelSelector?: Labels;
}

export interface Container {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number } | null;
  image: { image: string; annotations: Labels } | null;
  imageRef: string;
  state: ContainerState;
  createdAt: number;
  labels: Labels;
  annotations: Labels;
}

export interface ContainerFilter {
  id?: string;
  state?: { state: ContainerState };
  podSandboxId?: string;
  labelSelector?: Labels;
}

export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number } | null;
  state: ContainerState;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  image: { image: string; annotations: Labels } | null;
  imageRef: string;
  reason: string;
  message: string;
  labels: Labels;
  annotations: Labels;
  mounts: Required<Mount>[];
  /** Absolute: the pod's logDirectory joined with the container's logPath. */
  logPath: string;
  resources: { linux: Required<LinuxContainerResources> | null } | null;
}

export interface ContainerStatusResponse {
  status: ContainerStatus | null;
  /** Verbose only: JSON strings (containerd: `info`, with pid, OCI spec...). */
  info: Labels;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The raw bytes. */
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
}

export interface Image {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
  uid: { value: number } | null;
  username: string;
  pinned: boolean;
}

// ---------------------------------------------------------------------------------------
// The client.

const PROTO = join(import.meta.dir, "cri/api.proto");
const BRIDGE = join(import.meta.dir, "cri/bridge.mjs");
/** The machine's node (Debian 12: v20), which runs lib/cri/bridge.mjs. */
const NODE = process.env.CC_E2E_NODE || (existsSync("/usr/bin/node") ? "/usr/bin/node" : "node");
const LOADER = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

/** A failed CRI call: the gRPC status (`codeName`: e.g. NOT_FOUND, DEADLINE_EXCEEDED) and its details. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`CRI ${method}: ${grpc.status[code] ?? code}: ${details}`);
    this.name = "CriError";
  }

  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

/** A call's own deadline, in milliseconds from now. */
export interface CallOptions {
  timeoutMs?: number;
}

type Service = "runtime" | "image";

/** How calls reach the socket: one gRPC channel, in a node process or in this one. */
interface Transport {
  call(service: Service, method: string, req: object, timeoutMs: number): Promise<unknown>;
  close(): void;
}

/**
 * @grpc/grpc-js in a node process (lib/cri/bridge.mjs), JSON lines both ways. Bun 1.4.5's
 * node:http2 client drops a reply now and then: in the probe (cri-runc-probe.test.ts), every
 * run, PodSandboxStatus of a pod just removed waited for its deadline although containerd's
 * NOT_FOUND reached the socket (strace) and grpc-js saw no headers; node gets it.
 */
class NodeTransport implements Transport {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly proc: ReturnType<typeof Bun.spawn<"pipe", "pipe", "pipe">>;
  private ready: Promise<void>;
  private stderr = "";
  private closed = false;

  constructor(sock: string) {
    this.proc = Bun.spawn([NODE, BRIDGE, sock, PROTO], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    let onReady: { resolve: () => void; reject: (e: Error) => void } | undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = { resolve, reject };
    });
    void this.pump(this.proc.stderr, (l) => {
      this.stderr = `${this.stderr}${l}\n`.slice(-4000);
    });
    void this.pump(this.proc.stdout, (l) => {
      const msg = JSON.parse(l, (_k, v) =>
        v && typeof v.$b64 === "string" ? Buffer.from(v.$b64, "base64") : v,
      );
      if (msg.ready) onReady?.resolve();
      else if (msg.fatal) onReady?.reject(new Error(msg.fatal));
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.err) p.reject(Object.assign(new Error(msg.err.details), { code: msg.err.code }));
      else p.resolve(msg.res);
    });
    void this.proc.exited.then((code) => {
      const err = new Error(`the CRI bridge (node) exited ${code}: ${this.stderr.trim() || "(no output)"}`);
      onReady?.reject(err);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.closed = true;
    });
  }

  private async pump(stream: ReadableStream<Uint8Array>, line: (l: string) => void): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (l.trim()) line(l);
      }
    }
  }

  /** Resolves once the socket answers (within 30 s), or rejects. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  call(service: Service, method: string, req: object, timeoutMs: number): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error("the CRI client is closed"));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      // The bridge answers DEADLINE_EXCEEDED at the deadline; this is for a bridge that hangs.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          Object.assign(new Error(`no answer from the CRI bridge in ${timeoutMs + 10_000} ms`), { code: 4 }),
        );
      }, timeoutMs + 10_000);
      const done =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          f(v);
        };
      this.pending.set(id, { resolve: done(resolve), reject: done(reject) });
      this.proc.stdin.write(`${JSON.stringify({ id, service, method, req, timeoutMs })}\n`);
      this.proc.stdin.flush();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.proc.stdin.end();
    // It ends with its stdin; not for ever.
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 5_000);
    void this.proc.exited.then(() => clearTimeout(timer));
  }
}

/** @grpc/grpc-js in this (Bun) process: see NodeTransport for why it is not the default. */
class InProcessTransport implements Transport {
  private readonly clients: Record<Service, grpc.Client>;

  constructor(sock: string) {
    const v1 = (grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, LOADER)).runtime as grpc.GrpcObject)
      .v1 as grpc.GrpcObject;
    const creds = grpc.credentials.createInsecure();
    // ExecSync's output may be up to 16 MiB a stream (CRI caps it there).
    const options = { "grpc.max_receive_message_length": 64 << 20 };
    const address = `unix://${sock}`;
    this.clients = {
      runtime: new (v1.RuntimeService as grpc.ServiceClientConstructor)(address, creds, options),
      image: new (v1.ImageService as grpc.ServiceClientConstructor)(address, creds, options),
    };
  }

  whenReady(sock: string): Promise<void> {
    return new Promise<void>((resolve, reject) =>
      this.clients.runtime.waitForReady(Date.now() + 30_000, (err) =>
        err ? reject(new Error(`CRI socket ${sock}: ${err.message}`)) : resolve(),
      ),
    );
  }

  call(service: Service, method: string, req: object, timeoutMs: number): Promise<unknown> {
    type Unary = (
      req: unknown,
      meta: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res: unknown) => void,
    ) => void;
    const client = this.clients[service];
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (!fn)
      return Promise.reject(Object.assign(new Error(`no method ${method} in ${service}`), { code: 12 }));
    return new Promise((resolve, reject) =>
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(Object.assign(new Error(err.details || err.message), { code: err.code })) : resolve(res),
      ),
    );
  }

  close(): void {
    this.clients.runtime.close();
    this.clients.image.close();
  }
}

export interface ConnectOptions {
  /** Every call's deadline unless it gives its own; default 120 s (a VM boots in RunPodSandbox). */
  timeoutMs?: number;
  /** Where grpc-js runs: "node" (default, lib/cri/bridge.mjs) or "bun" (this process). */
  transport?: "node" | "bun";
}

export class Cri {
  private constructor(
    readonly sock: string,
    private readonly transport: Transport,
    /** Every call's deadline unless it says otherwise. */
    readonly timeoutMs: number,
  ) {}

  /** A client of the CRI server on unix socket `sock`, once the socket answers. */
  static async connect(sock: string, opts: ConnectOptions = {}): Promise<Cri> {
    const timeoutMs = opts.timeoutMs ?? 120_000;
    if (opts.transport === "bun") {
      const t = new InProcessTransport(sock);
      await t.whenReady(sock);
      return new Cri(sock, t, timeoutMs);
    }
    const t = new NodeTransport(sock);
    try {
      await t.whenReady();
    } catch (err) {
      t.close();
      throw err;
    }
    return new Cri(sock, t, timeoutMs);
  }

  close(): void {
    this.transport.close();
  }

  /** Any RuntimeService or ImageService method of api.proto, by its name (`RunPodSandbox`). */
  async call<T>(service: Service, method: string, req: object, opts: CallOptions = {}): Promise<T> {
    try {
      return (await this.transport.call(service, method, req, opts.timeoutMs ?? this.timeoutMs)) as T;
    } catch (err) {
      const e = err as Error & { code?: number };
      throw new CriError(method, e.code ?? 2, e.message);
    }
  }

  version(opts?: CallOptions): Promise<VersionResponse> {
    return this.call("runtime", "Version", { version: "v1" }, opts);
  }

  /** Conditions RuntimeReady and NetworkReady (false until a CNI config loads). */
  status(verbose = false, opts?: CallOptions): Promise<StatusResponse> {
    return this.call("runtime", "Status", { verbose }, opts);
  }

  /** The pod's id. `runtimeHandler`: a runtime of the CRI config ("" = its default). */
  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = "", opts?: CallOptions): Promise<string> {
    const r = await this.call<{ podSandboxId: string }>(
      "runtime",
      "RunPodSandbox",
      { config, runtimeHandler },
      opts,
    );
    return r.podSandboxId;
  }

  async stopPodSandbox(podSandboxId: string, opts?: CallOptions): Promise<void> {
    await this.call("runtime", "StopPodSandbox", { podSandboxId }, opts);
  }

  async removePodSandbox(podSandboxId: string, opts?: CallOptions): Promise<void> {
    await this.call("runtime", "RemovePodSandbox", { podSandboxId }, opts);
  }

  podSandboxStatus(
    podSandboxId: string,
    verbose = false,
    opts?: CallOptions,
  ): Promise<PodSandboxStatusResponse> {
    return this.call("runtime", "PodSandboxStatus", { podSandboxId, verbose }, opts);
  }

  async listPodSandbox(filter?: PodSandboxFilter, opts?: CallOptions): Promise<PodSandbox[]> {
    const r = await this.call<{ items: PodSandbox[] }>("runtime", "ListPodSandbox", { filter }, opts);
    return r.items;
  }

  /** The container's id. `sandboxConfig`: the pod's config, as given to runPodSandbox. */
  async createContainer(
    podSandboxId: string,
    config: ContainerConfig,
    sandboxConfig: PodSandboxConfig,
    opts?: CallOptions,
  ): Promise<string> {
    const r = await this.call<{ containerId: string }>(
      "runtime",
      "CreateContainer",
      { podSandboxId, config, sandboxConfig },
      opts,
    );
    return r.containerId;
  }

  async startContainer(containerId: string, opts?: CallOptions): Promise<void> {
    await this.call("runtime", "StartContainer", { containerId }, opts);
  }

  /** SIGTERM (or the image's stop signal), SIGKILL after `timeoutSec` (0: at once). */
  async stopContainer(containerId: string, timeoutSec = 0, opts?: CallOptions): Promise<void> {
    await this.call("runtime", "StopContainer", { containerId, timeout: timeoutSec }, opts);
  }

  async removeContainer(containerId: string, opts?: CallOptions): Promise<void> {
    await this.call("runtime", "RemoveContainer", { containerId }, opts);
  }

  async listContainers(filter?: ContainerFilter, opts?: CallOptions): Promise<Container[]> {
    const r = await this.call<{ containers: Container[] }>("runtime", "ListContainers", { filter }, opts);
    return r.containers;
  }

  containerStatus(
    containerId: string,
    verbose = false,
    opts?: CallOptions,
  ): Promise<ContainerStatusResponse> {
    return this.call("runtime", "ContainerStatus", { containerId, verbose }, opts);
  }

  /**
   * `cmd` in the container, its output when it ends. `timeoutSec`: the CRI timeout (0: none),
   * the call's deadline 30 s after it unless `opts` says otherwise.
   */
  async execSync(
    containerId: string,
    cmd: string[],
    timeoutSec = 0,
    opts?: CallOptions,
  ): Promise<ExecResult> {
    const timeoutMs = opts?.timeoutMs ?? (timeoutSec > 0 ? timeoutSec * 1000 + 30_000 : undefined);
    const r = await this.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>(
      "runtime",
      "ExecSync",
      { containerId, cmd, timeout: timeoutSec },
      { timeoutMs },
    );
    const out = Buffer.from(r.stdout ?? []);
    const err = Buffer.from(r.stderr ?? []);
    return {
      exitCode: r.exitCode,
      stdout: out.toString("utf8"),
      stderr: err.toString("utf8"),
      stdoutBytes: out,
      stderrBytes: err,
    };
  }

  async listImages(image?: string, opts?: CallOptions): Promise<Image[]> {
    const r = await this.call<{ images: Image[] }>(
      "image",
      "ListImages",
      { filter: image ? { image: { image } } : undefined },
      opts,
    );
    return r.images;
  }

  /** null when the image is not there. */
  async imageStatus(image: string, opts?: CallOptions): Promise<Image | null> {
    const r = await this.call<{ image: Image | null }>("image", "ImageStatus", { image: { image } }, opts);
    return r.image;
  }
}

// ---------------------------------------------------------------------------------------
// Configurations as kubelet makes them.

/**
 * A pod's config like kubelet's: metadata, hostname `name`, its log directory `logDirectory`
 * (kubelet: /var/log/pods/NAMESPACE_NAME_UID; give one in the workspace), the namespaces kubelet
 * asks for (network and IPC of the pod, PID of each container: the pause process is not every
 * container's PID 1). `extra` is merged over it (shallowly).
 */
export function podConfig(
  name: string,
  logDirectory: string,
  extra: Partial<PodSandboxConfig> & { uid?: string; namespace?: string } = {},
): PodSandboxConfig {
  const { uid, namespace, ...rest } = extra;
  return {
    metadata: { name, uid: uid ?? `${name}-uid`, namespace: namespace ?? "cc-e2e", attempt: 0 },
    hostname: name,
    logDirectory,
    linux: { securityContext: { namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
    ...rest,
  };
}

/**
 * A container's config like kubelet's: its log at `NAME/0.log` in the pod's log directory,
 * `command` as the entrypoint (`args` as docker's CMD when given), the pod's namespaces.
 */
export function containerConfig(
  name: string,
  image: string,
  command: string[],
  extra: Partial<ContainerConfig> = {},
): ContainerConfig {
  return {
    metadata: { name, attempt: 0 },
    image: { image },
    command,
    logPath: `${name}/0.log`,
    linux: { securityContext: { namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
    ...extra,
  };
}

export interface CriLogLine {
  /** RFC 3339 with nanoseconds, as containerd writes it. */
  time: string;
  stream: "stdout" | "stderr";
  /** Whether the line ends a line of the container's output (F) or is part of a longer one (P). */
  full: boolean;
  text: string;
}

/**
 * A CRI log file (`TIME STREAM F|P TEXT` lines) back to the container's output: every line,
 * and each stream's text as the container wrote it (a full line gets its newline back).
 */
export function readCriLog(file: string): { lines: CriLogLine[]; stdout: string; stderr: string } {
  const lines: CriLogLine[] = [];
  const out = { stdout: "", stderr: "" };
  const raw = existsSync(file) ? readFileSync(file, "utf8") : "";
  for (const l of raw.split("\n")) {
    // Tags are `:`-separated, the first one P (partial) or F (full).
    const m = /^(\S+) (stdout|stderr) (\S+)(?: (.*))?$/.exec(l);
    if (!m) continue;
    const line: CriLogLine = {
      time: m[1] ?? "",
      stream: m[2] as "stdout" | "stderr",
      full: m[3]?.split(":")[0] !== "P",
      text: m[4] ?? "",
    };
    lines.push(line);
    out[line.stream] += line.full ? `${line.text}\n` : line.text;
  }
  return { lines, ...out };
}

// ---------------------------------------------------------------------------------------
// containerd with its CRI plugin.

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
