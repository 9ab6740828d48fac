import { forwardSignals } from "../standin/forward.ts";
import type { RuntimeContext } from "./context.ts";
import { type CreateRequest, create } from "./create.ts";
import { deleteContainer } from "./delete.ts";
import { callStandin } from "./standin-client.ts";
import { startContainer } from "./start.ts";
import { callerTerminal } from "./terminal.ts";

/**
 * run: create + start; without -d, wait for the workload (its stand-in relays stdio),
 * delete the container unless --keep, and exit with the workload's status.
 */
export async function runContainer(
  ctx: RuntimeContext,
  id: string,
  flags: CreateRequest & { keep?: boolean },
): Promise<number> {
  // A person at a terminal running a terminal container: use their terminal.
  const console = flags.consoleSocket || flags.console || flags.detach ? flags.console : callerTerminal();
  const standin = await create(ctx, id, { ...flags, console }, flags.detach === true);
  try {
    await startContainer(ctx, id);
  } catch (err) {
    await deleteContainer(ctx, id, true);
    throw err;
  }
  if (flags.detach) return 0;
  standin.child.ref();
  forwardSignals(
    (signal) => void callStandin(ctx.store.dir(id), id, "signal", { id, signal }).catch(() => {}),
  );
  const status = await standin.exited;
  if (!flags.keep) await deleteContainer(ctx, id, true);
  return status;
}
