import type { App } from "../cli/app.ts";
import type { CreateFlags } from "../commands/create.ts";
import { forwardSignals } from "../standin/forward.ts";
import { create } from "./create.ts";
import { deleteContainer } from "./delete.ts";
import { callStandin } from "./standin-client.ts";
import { startContainer } from "./start.ts";
import { callerTerminal } from "./terminal.ts";

/**
 * run: create + start; without -d, wait for the workload (its stand-in relays stdio),
 * delete the container unless --keep, and exit with the workload's status.
 */
export async function runContainer(
  app: App,
  id: string,
  flags: CreateFlags & { keep?: boolean },
): Promise<number> {
  // A person at a terminal running a terminal container: use their terminal.
  const console = flags.consoleSocket || flags.console || flags.detach ? flags.console : callerTerminal();
  const standin = await create(app, id, { ...flags, console }, flags.detach === true);
  try {
    await startContainer(app, id);
  } catch (err) {
    await deleteContainer(app, id, true);
    throw err;
  }
  if (flags.detach) return 0;
  standin.child.ref();
  forwardSignals(
    (signal) => void callStandin(app.store.dir(id), id, "signal", { id, signal }).catch(() => {}),
  );
  const status = await standin.exited;
  if (!flags.keep) await deleteContainer(app, id, true);
  return status;
}
