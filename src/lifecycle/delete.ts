import type { OciConfig } from "../config/oci-schema.ts";
import { RuntimeError } from "../errors.ts";
import { assertCan } from "../state/transitions.ts";
import type { RuntimeContext } from "./context.ts";
import { destroy, killProcess, killVm } from "./destroy.ts";
import { runHooks } from "./hooks.ts";
import { liveStatus, toSpecState } from "./query.ts";
import { savedConfig } from "./saved-config.ts";

/**
 * delete: only a stopped container, unless --force (which kills it first). Poststop hooks
 * run (failures only warn), then nothing of the container is left.
 * `delete --force` of an unknown id succeeds: containerd always sends it after delete.
 */
export async function deleteContainer(ctx: RuntimeContext, id: string, force: boolean): Promise<number> {
  const s = ctx.store.tryRead(id);
  if (!s) {
    if (force) {
      // A half-created container (no state.json yet) is removed too.
      await destroy(ctx.store, id);
      return 0;
    }
    ctx.store.read(id);
    return 1;
  }
  const status = liveStatus(s);
  await endPodMembers(ctx, id, force);
  if (status !== "stopped") {
    if (!force) assertCan("delete", id, status);
    // Being created: its create process goes first, or it would go on writing the state.
    if (status === "creating" && s.creator?.pid !== process.pid) await killProcess(s.creator);
    await killVm(s);
  }
  let oci: OciConfig | undefined;
  try {
    oci = savedConfig(ctx.store, id);
  } catch (err) {
    ctx.logger.warn(`${id}: poststop hooks not run: ${(err as Error).message}`);
  }
  if (oci) await runHooks(["poststop"], oci, { ...toSpecState(s), status: "stopped", pid: 0 }, ctx.logger);
  await destroy(ctx.store, id);
  return 0;
}

/**
 * A pod's sandbox goes last: while containers of the pod still run in its VM, its delete is
 * refused (CRI stops and removes them first); --force stops them first (their state stays
 * for their own delete, stopped).
 */
async function endPodMembers(ctx: RuntimeContext, id: string, force: boolean): Promise<void> {
  const running = ctx.store
    .list()
    .map((other) => ctx.store.tryRead(other))
    .filter((m) => m?.pod?.sandbox === id && liveStatus(m) !== "stopped");
  if (running.length === 0) return;
  const ids = running.map((m) => m?.id).join(", ");
  if (!force)
    throw new RuntimeError(`container "${id}" is the sandbox of a pod whose containers still run: ${ids}`);
  for (const m of running) await killProcess(m?.standin);
}
