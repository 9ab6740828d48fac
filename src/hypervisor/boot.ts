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
import { listenUnix } from "../sys/unix-socket.ts";
import { consoleTail, QEMU_CAPABILITIES, socketPath, VM_FILES, VM_SOCKET_FDS } from "./launcher.ts";
import { TAP_FD_BASE } from "./nics.ts";

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

/** What a VM inherits besides its sockets: a clone's snapshot (fd 3) and the taps (fd 7...). */
export interface HypervisorFds {
  incoming?: number;
  taps?: number[];
}

/**
 * Whether a socket chardev of `args` is given `fd` (`socket,...,fd=N`): only then is a
 * socket bound for it. A hypervisor.args whose QEMU binds the path itself must not find
 * ours there first, or a connect would reach a socket nobody accepts on.
 */
function takesSocketFd(args: string[], fd: number): boolean {
  return args.some((a) => a.startsWith("socket,") && a.split(",").includes(`fd=${fd}`));
}

/**
 * Starts `path args` with `dir` (the VM's directory) as its cwd, its output appended to the
 * hypervisor log there, sockets listening at the VM's socket paths as VM_SOCKET_FDS (those
 * its arguments take by fd), and
 * `fds` (closed here once QEMU has them, as are our copies of the sockets).
 */
export function startHypervisor(
  path: string,
  args: string[],
  dir: string,
  fds: HypervisorFds = {},
): Hypervisor {
  const given = [fds.incoming, ...(fds.taps ?? [])].filter((fd): fd is number => fd !== undefined);
  const owned: number[] = [...given];
  let proc: SpawnedProcess;
  try {
    const hvLog = openNamed(join(dir, VM_FILES.hypervisorLog), "a");
    owned.push(hvLog);
    // Indexed by the fd the hypervisor gets.
    const inherited: (number | "ignore")[] = ["ignore", hvLog, hvLog, fds.incoming ?? "ignore"];
    for (const [name, fd] of Object.entries(VM_SOCKET_FDS)) {
      if (!takesSocketFd(args, fd)) continue;
      const socket = listenUnix(join(dir, VM_FILES[name as keyof typeof VM_SOCKET_FDS]));
      owned.push(socket);
      inherited[fd] = socket;
    }
    (fds.taps ?? []).forEach((tap, i) => {
      inherited[TAP_FD_BASE + i] = tap;
    });
    proc = spawnWithParentDeath([path, ...args], {
      cwd: dir,
      stdio: inherited,
      keepCapabilities: Object.keys(QEMU_CAPABILITIES),
    });
  } finally {
    for (const fd of owned) closeSync(fd);
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
