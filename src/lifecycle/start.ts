import type { App } from "../cli/app.ts";
import { loadOciConfig } from "../config/resolver.ts";
import { assertCan } from "../state/transitions.ts";
import { runHooks } from "./hooks.ts";
import { liveStatus, toSpecState } from "./query.ts";
import { callStandin } from "./standin-client.ts";

/** start: only from created; startContainer hooks, the user process, then poststart hooks. */
export async function startContainer(app: App, id: string): Promise<number> {
  const s = app.store.read(id);
  assertCan("start", id, liveStatus(s));
  const { oci } = loadOciConfig(s.bundle);
  await runHooks(["startContainer"], oci, toSpecState(s), app.logger);
  await callStandin(app.store.dir(id), id, "start", { id });
  const running = app.store.update(id, (st) => (st.status === "created" ? { ...st, status: "running" } : st));
  await runHooks(["poststart"], oci, toSpecState(running), app.logger);
  return 0;
}
