import { assertCan } from "../state/transitions.ts";
import type { RuntimeContext } from "./context.ts";
import { runHooks } from "./hooks.ts";
import { liveStatus, toSpecState } from "./query.ts";
import { savedConfig } from "./saved-config.ts";
import { callStandin } from "./standin-client.ts";

/** start: only from created; startContainer hooks, the user process, then poststart hooks. */
export async function startContainer(ctx: RuntimeContext, id: string): Promise<number> {
  const s = ctx.store.read(id);
  assertCan("start", id, liveStatus(s));
  const oci = savedConfig(ctx.store, id);
  await runHooks(["startContainer"], oci, toSpecState(s), ctx.logger);
  // The stand-in starts the process and records `running` (it writes the state from created on).
  ctx.logger.phase(id, "start");
  await callStandin(ctx.store.dir(id), id, "start", { id });
  ctx.logger.phase(id, "started");
  await runHooks(["poststart"], oci, toSpecState(ctx.store.read(id)), ctx.logger);
  return 0;
}
