/**
 * The one boot path of a VM: start the hypervisor (as our child, dying with us), then reach
 * its agent and say hello. A container's stand-in and a template build both start their
 * VMs here, so both fail with the same words and wait by the same bound.
 */
import { randomBytes } from "node:crypto";
import { closeSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../errors.ts";
import { Channel } from "../protocol/channel.ts";
import { PROTOCOL_VERSION, type ResultOf } from "../protocol/messages.ts";
import { connectUnixRetry, socketTransport } from "../protocol/socket.ts";
import { openNamed } from "../sys/files.ts";
import { type SpawnedProcess, spawnWithParentDeath } from "../sys/spawn.ts";
import { consoleTail, QEMU_CAPABILITIES, socketPath, VM_FILES } from "./launcher.ts";

/** How often hello is repeated until the guest's agent answers. */
const HELLO_INTERVAL_MS = 250;
/** How long a guest whose agent channel closed gets to exit, so the error can say how. */
const EXIT_WAIT_MS = 2_000;

export interface Hypervisor {
  readonly process: SpawnedProcess;
  readonly pid: number;
  /** Its exit status once it has exited. */
  exitStatus(): number | undefined;
  alive(): boolean;
  /** `what`, with how the hypervisor ended if it did, and the guest console's last lines. */
  failure(what: string): string;
}

/**
 * Starts `path args` with `dir` (the VM's directory) as its cwd, its output appended to the
 * hypervisor log there, and `fds` as its fds 3, 4, ... (closed here once QEMU has them).
 */
export function startHypervisor(
  path: string,
  args: string[],
  dir: string,
  fds: (number | "ignore")[] = [],
): Hypervisor {
  const hvLog = openNamed(join(dir, VM_FILES.hypervisorLog), "a");
  let proc: SpawnedProcess;
  try {
    proc = spawnWithParentDeath([path, ...args], {
      cwd: dir,
      stdio: ["ignore", hvLog, hvLog, ...fds],
      keepCapabilities: Object.values(QEMU_CAPABILITIES),
    });
  } finally {
    for (const fd of [hvLog, ...fds]) if (fd !== "ignore") closeSync(fd);
  }
  let status: number | undefined;
  void proc.exited.then((code) => {
    status = code;
  });
  return {
    process: proc,
    pid: proc.pid,
    exitStatus: () => status,
    alive: () => status === undefined,
    failure: (what) =>
      `${what}${status !== undefined ? ` (hypervisor exited with status ${status})` : ""}; console: ${consoleTail(dir)}`,
  };
}

export interface ReadyAgent {
  agent: Channel;
  hello: ResultOf<"hello">;
}

/**
 * Connects to the agent socket of `vm` in `dir` and repeats hello until the agent answers
 * (bytes sent before the guest opened its port are lost), by `deadline`. `setup` runs on
 * the channel before the first hello: handlers for what the agent may send from then on.
 * Each hello hands the guest fresh entropy and the host's time (template clones share both).
 */
export async function reachAgent(
  vm: Hypervisor,
  dir: string,
  deadline: number,
  timeoutMs: number,
  setup: (agent: Channel) => void = () => {},
): Promise<ReadyAgent> {
  let sock: Awaited<ReturnType<typeof connectUnixRetry>>;
  try {
    sock = await connectUnixRetry(socketPath(dir, VM_FILES.agent), deadline, vm.alive);
  } catch {
    throw new Error(vm.failure("the hypervisor did not open the agent socket"));
  }
  const agent = new Channel(socketTransport(sock));
  setup(agent);
  // A closed channel (QEMU gone) fails each call at once, without a turn of the event loop:
  // without the isClosed check this loop would spin to the deadline.
  while (Date.now() < deadline && vm.alive() && !agent.isClosed) {
    let hello: ResultOf<"hello">;
    try {
      hello = await agent.call(
        "hello",
        { version: PROTOCOL_VERSION, seed: randomBytes(32).toString("hex"), timeMs: Date.now() },
        HELLO_INTERVAL_MS,
      );
    } catch (err) {
      if (agent.isClosed) break;
      if (!/no answer within/.test(errorMessage(err))) throw err;
      continue;
    }
    if (hello.version !== PROTOCOL_VERSION) {
      agent.close();
      throw new Error(`agent speaks protocol version ${hello.version}, this runtime ${PROTOCOL_VERSION}`);
    }
    return { agent, hello };
  }
  // A guest whose channel closed is going: its exit gets a moment, so the error can say how.
  // (an unref'd timer: a pending one would keep the caller alive after the error)
  if (agent.isClosed && vm.alive())
    await Promise.race([vm.process.exited, new Promise((r) => setTimeout(r, EXIT_WAIT_MS).unref())]);
  agent.close();
  throw new Error(vm.failure(`the guest agent did not come up within ${timeoutMs} ms`));
}
