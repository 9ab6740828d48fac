/**
 * How the CRI client's calls reach containerd's socket: one gRPC channel (@grpc/grpc-js and
 * @grpc/proto-loader over the vendored api.proto next to this file), either in the machine's
 * node (`NodeTransport`, bridge.mjs here, JSON lines on its stdio: the default) or in this Bun
 * process (`InProcessTransport`: under Bun 1.4.5 a reply is lost now and then). A failed call
 * rejects with an Error carrying the gRPC status `code`; lib/cri/client.ts makes it a CriError.
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO = join(import.meta.dir, "api.proto");
const BRIDGE = join(import.meta.dir, "bridge.mjs");
/** The machine's node (Debian 12: v20), which runs lib/cri/bridge.mjs. */
const NODE = process.env.CC_E2E_NODE || (existsSync("/usr/bin/node") ? "/usr/bin/node" : "node");
const LOADER = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

export type Service = "runtime" | "image";

/** How calls reach the socket: one gRPC channel, in a node process or in this one. */
export interface Transport {
  call(service: Service, method: string, req: object, timeoutMs: number): Promise<unknown>;
  close(): void;
}

/**
 * @grpc/grpc-js in a node process (lib/cri/bridge.mjs), JSON lines both ways. Bun 1.4.5's
 * node:http2 client drops a reply now and then: in the probe (cri-runc-probe.test.ts), every
 * run, PodSandboxStatus of a pod just removed waited for its deadline although containerd's
 * NOT_FOUND reached the socket (strace) and grpc-js saw no headers; node gets it.
 */
export class NodeTransport implements Transport {
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
export class InProcessTransport implements Transport {
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
