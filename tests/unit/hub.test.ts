/**
 * The stand-in's hub as a pod's sandbox has it (standin/hub.ts): a pod container's stand-in
 * creates its container through it and gets that container's events back; nobody else acts
 * on that container through it; exec ids are per container; the VM's own operations are
 * never a client's; a member whose stand-in goes leaves the VM. The agent is a fake here.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { Channel } from "../../src/protocol/channel.ts";
import type { EventEnvelope } from "../../src/protocol/messages.ts";
import { connectUnix, socketTransport } from "../../src/protocol/socket.ts";
import { Hub } from "../../src/standin/hub.ts";
import { tempDir } from "../lib/cli.ts";

const dir = tempDir();
const closers: (() => void)[] = [];
afterAll(() => {
  for (const c of closers) c();
});

/** The stand-in's end of the agent connection, and the fake agent's. */
async function agentPair(): Promise<[Channel, Channel]> {
  const path = join(dir, `agent-${closers.length}.sock`);
  let serverSock: Socket | undefined;
  const server = createServer((s) => {
    serverSock = s;
  });
  await new Promise<void>((r) => server.listen(path, r));
  closers.push(() => server.close());
  const client = await connectUnix(path);
  while (!serverSock) await Bun.sleep(1);
  return [new Channel(socketTransport(client)), new Channel(socketTransport(serverSock))];
}

const client = async (path: string) => new Channel(socketTransport(await connectUnix(path)));

describe("a pod sandbox's hub", () => {
  test("routing, ownership and clean-up of the pod's containers", async () => {
    const [standin, agent] = await agentPair();
    const calls: { op: string; args: Record<string, unknown> }[] = [];
    agent.onRequest = async (op, args) => {
      calls.push({ op, args: args as Record<string, unknown> });
      return op === "create" || op === "exec" ? { pid: 42 } : {};
    };
    const hub = new Hub(standin, "sandbox");
    standin.onEvent = (ev) => {
      hub.routeEvent(ev);
    };
    const path = join(dir, "hub.sock");
    await hub.listen(path);
    closers.push(() => hub.close());

    const member = await client(path);
    const memberEvents: EventEnvelope[] = [];
    member.onEvent = (ev) => memberEvents.push(ev);
    expect(await member.call("create", { id: "m1", config: {}, stdio: { stdout: 2 } })).toEqual({ pid: 42 });
    // Its exit reaches its stand-in, not the sandbox's own handling.
    await agent.sendEvent({ t: "event", event: "exit", id: "m1", status: 3 });
    for (let i = 0; i < 100 && memberEvents.length === 0; i++) await Bun.sleep(5);
    expect(memberEvents).toEqual([{ t: "event", event: "exit", id: "m1", status: 3 }]);

    // Another client may not act on it, nor on the VM.
    const other = await client(path);
    await expect(other.call("signal", { id: "m1", signal: 9 })).rejects.toThrow(
      'container "m1" is not reached through this client',
    );
    await expect(other.call("shutdown", {})).rejects.toThrow(
      "shutdown is not taken from a client of the hub",
    );
    expect(await other.call("signal", { id: "sandbox", signal: 15 })).toEqual({});

    // One exec id in two containers: each exit goes to the client of its own.
    const otherEvents: EventEnvelope[] = [];
    other.onEvent = (ev) => otherEvents.push(ev);
    await member.call("exec", { id: "m1", execId: "x", process: {}, stdio: {} });
    await other.call("exec", { id: "sandbox", execId: "x", process: {}, stdio: {} });
    await agent.sendEvent({ t: "event", event: "exit", id: "sandbox", execId: "x", status: 0 });
    for (let i = 0; i < 100 && otherEvents.length === 0; i++) await Bun.sleep(5);
    expect(otherEvents).toEqual([{ t: "event", event: "exit", id: "sandbox", execId: "x", status: 0 }]);
    expect(memberEvents).toHaveLength(1);

    // Its stand-in gone (killed, after the exit and before its `remove`): the hub removes it.
    member.close();
    for (let i = 0; i < 100 && !calls.some((c) => c.op === "remove"); i++) await Bun.sleep(5);
    expect(calls.filter((c) => c.op === "remove").map((c) => c.args)).toEqual([{ id: "m1" }]);
    expect(calls.filter((c) => c.op === "signal").map((c) => c.args)).toContainEqual({
      id: "m1",
      execId: "x",
      signal: 9,
    });
    other.close();
  });
});
