import { join } from "node:path";
import type { App } from "../cli/app.ts";
import { socketPath, VM_FILES } from "../hypervisor/launcher.ts";
import { Qmp } from "../hypervisor/qmp.ts";
import type { Status } from "../state/schema.ts";
import { assertCan } from "../state/transitions.ts";
import { liveStatus } from "./query.ts";

/**
 * pause/resume freeze and thaw the whole VM (QMP stop/cont): every vCPU stops, so the
 * workload, its execs and the agent all stand still, as a frozen cgroup does for runc.
 */
async function qmpCommand(
  app: App,
  id: string,
  op: "pause" | "resume",
  command: string,
  next: Status,
): Promise<number> {
  const s = app.store.read(id);
  assertCan(op, id, liveStatus(s));
  const dir = app.store.dir(id);
  const path = socketPath(dir, VM_FILES.qmp);
  if (!path.startsWith("/")) process.chdir(dir);
  const qmp = await Qmp.connect(path.startsWith("/") ? path : join(".", path));
  try {
    await qmp.execute(command);
  } finally {
    qmp.close();
  }
  app.store.update(id, (st) => ({ ...st, status: next }));
  return 0;
}

export const pauseContainer = (app: App, id: string) => qmpCommand(app, id, "pause", "stop", "paused");
export const resumeContainer = (app: App, id: string) => qmpCommand(app, id, "resume", "cont", "running");
