/** How CLI calls reach a container's VM: through its stand-in's hub socket. */
import type { Socket } from "node:net";
import { RuntimeError } from "../errors.ts";
import { socketPath, VM_FILES } from "../hypervisor/launcher.ts";
import { Channel } from "../protocol/channel.ts";
import type { Op, RequestOf, ResultOf } from "../protocol/messages.ts";
import { connectUnix, socketTransport } from "../protocol/socket.ts";

export async function connectStandin(stateDir: string, id: string): Promise<Channel> {
  const path = socketPath(stateDir, VM_FILES.hub);
  // A long state path is reached relative to the state directory (see socketPath).
  if (!path.startsWith("/")) process.chdir(stateDir);
  let sock: Socket;
  try {
    sock = await connectUnix(path);
  } catch {
    throw new RuntimeError(`container "${id}" is not reachable (its stand-in is gone)`);
  }
  return new Channel(socketTransport(sock));
}

export async function callStandin<O extends Op>(
  stateDir: string,
  id: string,
  op: O,
  args: RequestOf<O>,
  timeoutMs?: number,
): Promise<ResultOf<O>> {
  const ch = await connectStandin(stateDir, id);
  try {
    return await ch.call(op, args, timeoutMs);
  } catch (err) {
    throw new RuntimeError(`${op} in container "${id}": ${(err as Error).message}`);
  } finally {
    ch.close();
  }
}
