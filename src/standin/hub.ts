/**
 * The stand-in is the only host process connected to the agent (QEMU's chardev takes one
 * client at a time). Every other runtime call (start, kill, exec, ps, update, events)
 * connects to this hub instead, and the hub forwards: requests as they are, and exec's
 * streams renumbered so that many clients can share the one agent connection.
 * A pod's sandbox (lifecycle/pod.ts) has one more kind of client: the stand-in of each
 * other container of the pod, which creates its container in this VM through the hub.
 */
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { Channel } from "../protocol/channel.ts";
import type { EventEnvelope, Op, RequestOf, Stdio } from "../protocol/messages.ts";
import { socketTransport } from "../protocol/socket.ts";

/** Hub-assigned stream ids start here; below are the stand-in's own (stdio.ts STREAMS). */
const FIRST_HUB_STREAM = 100;
const SIGKILL = 9;

export class Hub {
  private server?: Server;
  private nextStream = FIRST_HUB_STREAM;
  /** Running exec processes by execId: the client (an exec stand-in) that started each. */
  private readonly execOwners = new Map<string, { client: Channel; id: string }>();
  /** The pod's other containers in this VM by id: the client (their stand-in) that created each. */
  private readonly members = new Map<string, Channel>();
  /** Lets the owner see (and act on) a request first, e.g. a WINCH becomes a resize. */
  beforeForward: (op: Op, args: unknown) => Promise<void> = async () => {};
  /** Requests the owner answers itself for its own container (start, pause, resume). */
  readonly local: Partial<Record<Op, (args: unknown) => Promise<unknown>>> = {};

  /** `agent`: where requests go on (the agent, or a sandbox's hub); `own`: this stand-in's container. */
  constructor(
    private readonly agent: Channel,
    private readonly own: string,
  ) {}

  /** Events for exec processes and pod containers go to the client of each; true if consumed. */
  routeEvent(ev: EventEnvelope): boolean {
    if (ev.event === "exit" && ev.execId) {
      const owner = this.execOwners.get(ev.execId);
      this.execOwners.delete(ev.execId);
      owner?.client.sendEvent(ev).catch(() => {});
      return true;
    }
    if (ev.event === "log" || ev.id === this.own) return false;
    const member = this.members.get(ev.id);
    if (ev.event === "exit") this.members.delete(ev.id);
    member?.sendEvent(ev).catch(() => {});
    return member !== undefined;
  }

  /** The pod containers this VM holds besides its own (a sandbox's hub). */
  memberIds(): string[] {
    return [...this.members.keys()];
  }

  listen(path: string): Promise<void> {
    rmSync(path, { force: true });
    this.server = createServer((sock) => {
      const client = new Channel(socketTransport(sock));
      client.onRequest = (op, args) => this.forward(client, op, args);
      // An exec stand-in that goes (killed, or failed after the start) takes its process
      // along: nobody is left to hold its stdio or report its status.
      client.onClose = () => {
        for (const [execId, owner] of this.execOwners) {
          if (owner.client !== client) continue;
          this.execOwners.delete(execId);
          void this.agent.call("signal", { id: owner.id, execId, signal: SIGKILL }).catch(() => {});
        }
        // So does a pod container's stand-in (killed): its container leaves the VM.
        for (const [id, member] of this.members) {
          if (member !== client) continue;
          this.members.delete(id);
          void this.agent.call("remove", { id }).catch(() => {});
        }
      };
    });
    return new Promise((resolve, reject) => {
      this.server?.once("error", reject);
      this.server?.listen(path, () => resolve());
    });
  }

  close(): void {
    this.server?.close();
  }

  private async forward(client: Channel, op: Op, args: unknown): Promise<unknown> {
    await this.beforeForward(op, args);
    const target = (args as { id?: string } | undefined)?.id;
    const own = this.local[op];
    if (own && (target === undefined || target === this.own)) return own(args);
    if (op === "create") {
      // A pod's container (standin/member.ts), in this VM, its stdio renumbered as exec's.
      const req = args as RequestOf<"create">;
      if (req.id === this.own || this.members.has(req.id))
        throw new Error(`container "${req.id}" already exists in this VM`);
      const stdio = this.mapStreams(client, req.stdio);
      this.members.set(req.id, client);
      try {
        return await this.agent.call("create", { ...req, stdio });
      } catch (err) {
        this.members.delete(req.id);
        throw err;
      }
    }
    if (op === "exec") {
      const req = args as RequestOf<"exec">;
      const stdio = this.mapStreams(client, req.stdio);
      this.execOwners.set(req.execId, { client, id: req.id });
      try {
        return await this.agent.call("exec", { ...req, stdio });
      } catch (err) {
        this.execOwners.delete(req.execId);
        throw err;
      }
    }
    return this.agent.call(op, args as never);
  }

  /** Gives each of the client's streams a fresh agent-side id and relays both ways. */
  private mapStreams(client: Channel, local: Stdio): Stdio {
    const mapped: Stdio = {};
    for (const key of ["stdin", "stdout", "stderr", "tty"] as const) {
      const mine = local[key];
      if (mine === undefined) continue;
      const global = this.nextStream++;
      mapped[key] = global;
      if (key === "stdin" || key === "tty") {
        client.onStream(
          mine,
          (d) => this.agent.sendData(global, d),
          () => void this.agent.sendEof(global).catch(() => {}),
        );
      }
      if (key === "stdout" || key === "stderr") {
        // The client's reader went away (see standin/stdio.ts relayOut): so does the guest's.
        client.onStream(
          mine,
          () => undefined,
          () => void this.agent.sendEof(global).catch(() => {}),
        );
      }
      if (key !== "stdin") {
        this.agent.onStream(
          global,
          (d) => client.sendData(mine, d).catch(() => {}),
          () => {
            void client.sendEof(mine).catch(() => {});
            this.agent.dropStream(global);
          },
        );
      }
    }
    return mapped;
  }
}
