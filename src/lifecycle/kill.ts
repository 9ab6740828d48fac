import { assertCan } from "../state/transitions.ts";
import type { RuntimeContext } from "./context.ts";
import { killProcess, killVm } from "./destroy.ts";
import { liveStatus } from "./query.ts";
import { parseSignal } from "./signals.ts";
import { callStandin } from "./standin-client.ts";

/** How long a SIGKILL may wait for the agent before the VM itself is killed. */
const KILL_AGENT_WAIT_MS = 3_000;
const SIGKILL = 9;
/** A signal to a paused VM is handed over, not waited for: the guest answers on resume. */
const PAUSED_QUEUE_MS = 1_000;

/**
 * kill: the signal goes to the workload in the guest. SIGKILL must work even when the
 * agent is stuck (or the VM paused): then the VM is killed, and the stand-in reports 137.
 */
export async function killContainer(
  ctx: RuntimeContext,
  id: string,
  signal: string,
  all: boolean,
): Promise<number> {
  const sig = parseSignal(signal);
  const s = ctx.store.read(id);
  const status = liveStatus(s);
  assertCan("kill", id, status);
  const dir = ctx.store.dir(id);
  // A pod's container paused is a frozen cgroup in a VM that runs: the guest takes signals.
  const vmPaused = status === "paused" && !s.pod;
  // Its stand-in gone, the sandbox's hub takes the container out of the VM.
  const killHard = () => (s.pod ? killProcess(s.standin) : killVm({ ...s, standin: undefined }));
  if (sig === SIGKILL) {
    if (vmPaused) {
      await killVm({ ...s, standin: undefined });
      return 0;
    }
    try {
      await callStandin(dir, id, "signal", { id, signal: sig, all }, KILL_AGENT_WAIT_MS);
    } catch (err) {
      ctx.logger.warn(
        `${id}: agent did not take SIGKILL (${(err as Error).message}); ${s.pod ? "ending its stand-in" : "killing the VM"}`,
      );
      await killHard();
    }
    return 0;
  }
  if (vmPaused) {
    // As on a frozen cgroup: the signal is queued and delivered when the VM is resumed.
    await callStandin(dir, id, "signal", { id, signal: sig, all }, PAUSED_QUEUE_MS).catch((err: Error) => {
      if (!/no answer within/.test(err.message)) throw err;
    });
    return 0;
  }
  await callStandin(dir, id, "signal", { id, signal: sig, all });
  return 0;
}
