/**
 * `Cri`: a client of Kubernetes' CRI `runtime.v1` (RuntimeService, ImageService) on
 * containerd's unix socket, without kubelet or crictl (a Go module this machine cannot
 * fetch). Messages as lib/cri/types.ts describes them (fields in camelCase, int64 as numbers,
 * enums as their names, unset fields at their defaults); the calls go through a transport of
 * lib/cri/transport.ts (by default grpc-js in the machine's node). Every call has a deadline
 * and fails with a `CriError`.
 */

import * as grpc from "@grpc/grpc-js";
import { InProcessTransport, NodeTransport, type Service, type Transport } from "./transport.ts";
import type {
  Container,
  ContainerConfig,
  ContainerFilter,
  ContainerStatusResponse,
  ExecResult,
  Image,
  PodSandbox,
  PodSandboxConfig,
  PodSandboxFilter,
  PodSandboxStatusResponse,
  StatusResponse,
  VersionResponse,
} from "./types.ts";

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
