/**
 * From `created` on, the stand-in is the one writer of the container's state.json: the
 * calls that change the status (start, pause, resume) reach it through its hub, and it
 * records the new status once the change is done (the transition table decides).
 */
import { socketPath, VM_FILES } from "../hypervisor/launcher.ts";
import { Qmp } from "../hypervisor/qmp.ts";
import type { Channel } from "../protocol/channel.ts";
import type { StateStore } from "../state/store.ts";
import { advance, type NEXT } from "../state/transitions.ts";
import type { Hub } from "./hub.ts";

export function serveStateChanges(hub: Hub, agent: Channel, store: StateStore, id: string): void {
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
  // The whole VM stops (every vCPU), as a frozen cgroup does for runc.
  hub.local.pause = () => change("pause", () => qmp("stop"));
  hub.local.resume = () => change("resume", () => qmp("cont"));
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
