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
/** The stand-in's own business with its agent (the VM's, not a container's): never a client's. */
const NOT_FROM_CLIENTS = new Set<Op>(["hello", "shutdown", "prepare", "network", "dns"]);

/** Exec ids are a container's own: in a pod's VM two containers may use the same one. */
const execKey = (id: string, execId: string) => `${id}\u0000${execId}`;

export class Hub {
  private server?: Server;
  private nextStream = FIRST_HUB_STREAM;
  /** Running exec processes by container and execId: the client (an exec stand-in) that started each. */
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
      const key = execKey(ev.id, ev.execId);
      const owner = this.execOwners.get(key);
      this.execOwners.delete(key);
      owner?.client.sendEvent(ev).catch(() => {});
      return true;
    }
    if (ev.event === "log" || ev.id === this.own) return false;
    // A member stays one until it is removed (its stand-in's `remove`, or its going away).
    const member = this.members.get(ev.id);
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
        for (const [key, owner] of this.execOwners) {
          if (owner.client !== client) continue;
          this.execOwners.delete(key);
          const execId = key.slice(owner.id.length + 1);
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
    if (NOT_FROM_CLIENTS.has(op)) throw new Error(`${op} is not taken from a client of the hub`);
    const target = (args as { id?: string } | undefined)?.id;
    // A client acts on this stand-in's container, or on the pod container it created here.
    if (
      op !== "create" &&
      target !== this.own &&
      (target === undefined || this.members.get(target) !== client)
    )
      throw new Error(`container "${target}" is not reached through this client`);
    await this.beforeForward(op, args);
    const own = this.local[op];
    if (own && target === this.own) return own(args);
    if (op === "create") return this.createMember(client, args as RequestOf<"create">);
    if (op === "remove" && target !== undefined) {
      const done = await this.agent.call("remove", { id: target });
      this.members.delete(target);
      return done;
    }
    if (op === "exec") {
      const req = args as RequestOf<"exec">;
      const stdio = this.mapStreams(client, req.stdio);
      const key = execKey(req.id, req.execId);
      this.execOwners.set(key, { client, id: req.id });
      try {
        return await this.agent.call("exec", { ...req, stdio });
      } catch (err) {
        this.execOwners.delete(key);
        throw err;
      }
    }
    return this.agent.call(op, args as never);
  }

  /** A pod's container (standin/member.ts), created in this VM, its stdio renumbered as exec's. */
  private async createMember(client: Channel, req: RequestOf<"create">): Promise<unknown> {
    if (req.id === this.own || this.members.has(req.id))
      throw new Error(`container "${req.id}" already exists in this VM`);
    const stdio = this.mapStreams(client, req.stdio);
    this.members.set(req.id, client);
    try {
      const created = await this.agent.call("create", { ...req, stdio });
      // Its stand-in went while crun created it (the `remove` of its going found nothing yet).
      if (this.members.get(req.id) !== client) void this.agent.call("remove", { id: req.id }).catch(() => {});
      return created;
    } catch (err) {
      if (this.members.get(req.id) === client) this.members.delete(req.id);
      throw err;
    }
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
