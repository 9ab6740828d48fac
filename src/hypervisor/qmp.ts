/**
 * A minimal QMP client: greeting, qmp_capabilities, then one command at a time, and the
 * asynchronous events (MIGRATION) for whoever waits for one. A hypervisor that goes away
 * fails every pending wait at once.
 */
import type { Socket } from "node:net";
import { RuntimeError } from "../errors.ts";
import { connectUnix } from "../protocol/socket.ts";

export const QMP_TIMEOUT_MS = 5_000;

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class Qmp {
  private buf = "";
  private waiters: { resolve: (msg: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  private eventWaiters = new Set<{
    match: (ev: QmpEvent) => boolean;
    resolve: (ev: QmpEvent) => void;
    reject: (e: Error) => void;
  }>();
  private gone?: Error;

  private constructor(private readonly sock: Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ("event" in msg) {
          this.dispatchEvent(msg as unknown as QmpEvent);
          continue;
        }
        this.waiters.shift()?.resolve(msg);
      }
    });
    sock.on("close", () =>
      this.fail(new RuntimeError("QMP: the hypervisor closed its control socket (it exited)")),
    );
    sock.on("error", () => {});
  }

  private dispatchEvent(ev: QmpEvent): void {
    for (const w of this.eventWaiters) {
      if (!w.match(ev)) continue;
      this.eventWaiters.delete(w);
      w.resolve(ev);
    }
  }

  private fail(err: Error): void {
    this.gone ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
    for (const w of this.eventWaiters) w.reject(err);
    this.eventWaiters.clear();
  }

  /** The first event that `match`es from now on; rejects if the hypervisor goes, or after `timeoutMs`. */
  waitEvent(match: (ev: QmpEvent) => boolean, timeoutMs: number, what: string): Promise<QmpEvent> {
    if (this.gone) return Promise.reject(this.gone);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.eventWaiters.delete(w);
        reject(new RuntimeError(`QMP: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const w = {
        match,
        resolve: (ev: QmpEvent) => {
          clearTimeout(timer);
          resolve(ev);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.eventWaiters.add(w);
    });
  }

  static async connect(path: string): Promise<Qmp> {
    let sock: Socket;
    try {
      sock = await connectUnix(path);
    } catch (err) {
      throw new RuntimeError(
        `cannot reach the hypervisor's control socket ${path}: ${(err as Error).message}`,
      );
    }
    const q = new Qmp(sock);
    await q.next(); // greeting
    await q.execute("qmp_capabilities");
    return q;
  }

  private next(): Promise<Record<string, unknown>> {
    if (this.gone) return Promise.reject(this.gone);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RuntimeError("QMP: no answer from the hypervisor")),
        QMP_TIMEOUT_MS,
      );
      this.waiters.push({
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const answer = this.next();
    this.sock.write(
      `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`,
    );
    const msg = await answer;
    if ("error" in msg) {
      const e = msg.error as { desc?: string };
      throw new RuntimeError(`QMP ${command}: ${e.desc ?? JSON.stringify(e)}`);
    }
    return msg.return;
  }

  close(): void {
    this.sock.destroy();
  }
}
