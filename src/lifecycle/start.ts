import type { App } from "../cli/app.ts";
import { assertCan } from "../state/transitions.ts";
import { runHooks } from "./hooks.ts";
import { liveStatus, toSpecState } from "./query.ts";
import { savedConfig } from "./saved-config.ts";
import { callStandin } from "./standin-client.ts";

/** start: only from created; startContainer hooks, the user process, then poststart hooks. */
export async function startContainer(app: App, id: string): Promise<number> {
  const s = app.store.read(id);
  assertCan("start", id, liveStatus(s));
  const oci = savedConfig(app.store, id);
  await runHooks(["startContainer"], oci, toSpecState(s), app.logger);
  // The stand-in starts the process and records `running` (it writes the state from created on).
  await callStandin(app.store.dir(id), id, "start", { id });
  await runHooks(["poststart"], oci, toSpecState(app.store.read(id)), app.logger);
  return 0;
}
