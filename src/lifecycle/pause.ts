import type { App } from "../cli/app.ts";
import { assertCan } from "../state/transitions.ts";
import { liveStatus } from "./query.ts";
import { callStandin } from "./standin-client.ts";

/**
 * pause/resume freeze and thaw the whole VM (QMP stop/cont, done by the container's
 * stand-in, which records the new status): every vCPU stops, so the workload, its execs
 * and the agent all stand still, as a frozen cgroup does for runc.
 */
async function change(app: App, id: string, op: "pause" | "resume"): Promise<number> {
  assertCan(op, id, liveStatus(app.store.read(id)));
  await callStandin(app.store.dir(id), id, op, { id });
  return 0;
}

export const pauseContainer = (app: App, id: string) => change(app, id, "pause");
export const resumeContainer = (app: App, id: string) => change(app, id, "resume");
