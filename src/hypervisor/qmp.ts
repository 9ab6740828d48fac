/**
 * A minimal QMP client: greeting, qmp_capabilities, then one command at a time.
 * Used for pause (stop), resume (cont), status and quit.
 */
import type { Socket } from "node:net";
import { RuntimeError } from "../errors.ts";
import { connectUnix } from "../protocol/socket.ts";

export const QMP_TIMEOUT_MS = 5_000;

export class Qmp {
  private buf = "";
  private waiters: ((msg: Record<string, unknown>) => void)[] = [];

  private constructor(private readonly sock: Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ("event" in msg) continue; // asynchronous events are not used here
        this.waiters.shift()?.(msg);
      }
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
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RuntimeError("QMP: no answer from the hypervisor")),
        QMP_TIMEOUT_MS,
      );
      this.waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
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
