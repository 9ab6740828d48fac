/**
 * Removing every trace of a container: stand-in, VM, mounts, sockets, state directory.
 * Used by delete, and by create/start when they fail part-way ("as if never tried").
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { errorMessage, RuntimeError } from "../errors.ts";
import { VM_FILES } from "../hypervisor/launcher.ts";
import { podShareDir } from "../protocol/guest-layout.ts";
import { cleanLeftJoins } from "../standin/network-record.ts";
import type { StoredState } from "../state/schema.ts";
import type { StateStore } from "../state/store.ts";
import { unmountAndRemove, unmountBelow } from "../sys/mounts.ts";
import { isAlive } from "../sys/proc.ts";
import { removeHostCgroup } from "./host-cgroup.ts";

const KILL_WAIT_MS = 3_000;

/** SIGKILL, then waits (bounded) until it is gone. */
export async function killProcess(p: StoredState["standin"]): Promise<void> {
  if (!p || !isAlive(p)) return;
  try {
    process.kill(p.pid, "SIGKILL");
  } catch {
    return;
  }
  const until = Date.now() + KILL_WAIT_MS;
  while (isAlive(p) && Date.now() < until) await Bun.sleep(10);
}

/** Kills what still runs of the container (VM first: the stand-in would report it). */
export async function killVm(state: StoredState | undefined): Promise<void> {
  await killProcess(state?.vm?.qemu);
  await killProcess(state?.standin);
}

export async function destroy(store: StateStore, id: string): Promise<void> {
  const dir = store.dir(id);
  const state = store.tryRead(id);
  await killVm(state);
  // Empty now: its stand-in and QEMU are gone. A cgroup that still holds a process after
  // the wait (a QEMU stuck in the kernel) is an error; the container's mounts go all the
  // same, and its state stays, so that a later delete can finish.
  let busy: string | undefined;
  try {
    await removeHostCgroup(state);
  } catch (err) {
    busy = errorMessage(err);
  }
  // A stand-in killed outright left its tc redirects in a namespace that outlives it.
  const left = cleanLeftJoins(dir);
  if (left) throw new RuntimeError(`${id}: ${left}`);
  if (busy) {
    unmountBelow(dir);
    throw new RuntimeError(`${id}: ${busy}`);
  }
  // A pod's container whose stand-in was killed left its shares in the sandbox's (the
  // sandbox's hub has taken the container itself out of the VM as the stand-in went).
  if (state?.pod) unmountAndRemove(join(store.dir(state.pod.sandbox), VM_FILES.shared, podShareDir(id)));
  // A create that failed before it unlinked its layer's disk (hypervisor/layer-disk.ts).
  if (state?.vm?.layerDisk) rmSync(state.vm.layerDisk, { force: true });
  // Everything mounted below the directory (the share: the user's rootfs and volumes)
  // is unmounted and verified gone before anything is removed.
  unmountAndRemove(dir);
}
