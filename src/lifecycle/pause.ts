import { assertCan } from "../state/transitions.ts";
import type { RuntimeContext } from "./context.ts";
import { liveStatus } from "./query.ts";
import { callStandin } from "./standin-client.ts";

/**
 * pause/resume freeze and thaw the whole VM (QMP stop/cont, done by the container's
 * stand-in, which records the new status): every vCPU stops, so the workload, its execs
 * and the agent all stand still, as a frozen cgroup does for runc.
 */
async function change(ctx: RuntimeContext, id: string, op: "pause" | "resume"): Promise<number> {
  assertCan(op, id, liveStatus(ctx.store.read(id)));
  await callStandin(ctx.store.dir(id), id, op, { id });
  return 0;
}

export const pauseContainer = (ctx: RuntimeContext, id: string) => change(ctx, id, "pause");
export const resumeContainer = (ctx: RuntimeContext, id: string) => change(ctx, id, "resume");
