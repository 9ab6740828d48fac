/**
 * From `created` on, the stand-in is the one writer of the container's state.json: the
 * calls that change the status (start, pause, resume) reach it through its hub, and it
 * records the new status once the change is done (the transition table decides).
 */
import { errorMessage } from "../errors.ts";
import { socketPath, VM_FILES } from "../hypervisor/launcher.ts";
import { Qmp } from "../hypervisor/qmp.ts";
import type { Logger } from "../log/logger.ts";
import type { Channel } from "../protocol/channel.ts";
import type { StateStore } from "../state/store.ts";
import { advance, type NEXT } from "../state/transitions.ts";
import type { Hub } from "./hub.ts";

/**
 * `freeze`: how the container is paused and resumed: its whole VM stopped (QMP, `vmFreeze`),
 * or, for one container of a pod's VM, its cgroup in the guest (standin/member.ts).
 */
export function serveStateChanges(
  hub: Hub,
  agent: Channel,
  store: StateStore,
  id: string,
  freeze: (frozen: boolean) => Promise<unknown> = vmFreeze,
): void {
  /**
   * Checks the change against the current state, does it, then records it, unless the
   * status moved on meanwhile: a workload that exits before crun's start answer has already
   * been recorded stopped (by this process's exit path), and that must stay.
   */
  const change = async (op: keyof typeof NEXT, act: () => Promise<unknown>) => {
    const from = store.read(id).status;
    const to = advance(op, id, from);
    await act();
    store.update(id, (s) => (s.status === from ? { ...s, status: to } : s));
    return {};
  };
  hub.local.start = () => change("start", () => agent.call("start", { id }));
  hub.local.pause = () => change("pause", () => freeze(true));
  hub.local.resume = () => change("resume", () => freeze(false));
}

/** The whole VM stops (every vCPU), as a frozen cgroup does for runc. */
function vmFreeze(frozen: boolean): Promise<void> {
  return qmp(frozen ? "stop" : "cont");
}

/** One QMP command on the container's VM (the stand-in's cwd is the state directory). */
export async function qmp(command: string): Promise<void> {
  const q = await Qmp.connect(socketPath(".", VM_FILES.qmp));
  try {
    await q.execute(command);
  } finally {
    q.close();
  }
}

/**
 * The workload's exit status, recorded as it ends. While `creating`, the create call is the
 * state's one writer (it fails on seeing the stand-in gone); the status is kept all the same.
 * A write that fails is logged: the stand-in still exits with the status, and `state` then
 * reports the container stopped, its stand-in gone (lifecycle/query.ts liveStatus).
 */
export function recordExit(store: StateStore, id: string, status: number, log: Logger): void {
  try {
    store.update(id, (s) =>
      s.status === "creating"
        ? { ...s, exitStatus: status }
        : { ...s, status: "stopped", exitStatus: status },
    );
  } catch (err) {
    log.error(`${id}: cannot record the exit status ${status}: ${errorMessage(err)}`);
  }
}

/** A process of the container killed by its cgroup's OOM killer (in the guest), counted. */
export function recordOomKill(store: StateStore, id: string, log: Logger): void {
  log.warn(`${id}: out of memory: the OOM killer of the container's cgroup killed a process`);
  try {
    store.update(id, (s) => ({ ...s, oomKills: (s.oomKills ?? 0) + 1 }));
  } catch (err) {
    log.error(`${id}: cannot record the OOM kill: ${errorMessage(err)}`);
  }
}
