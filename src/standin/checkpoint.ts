/**
 * The stand-in's side of checkpoint and restore (the agent's is agent/checkpoint.ts): the
 * host directories CRIU writes to and reads from are bound into the VM share under
 * .checkpoint/ (a checkpoint's for the length of the call; a restore's by create, with the
 * container's other shares), and the agent is given their paths in the guest.
 */
import { rmdirSync } from "node:fs";
import { join } from "node:path";
import type { Channel } from "../protocol/channel.ts";
import { GUEST_SHARE } from "../protocol/guest-layout.ts";
import type { RequestOf } from "../protocol/messages.ts";
import type { StateStore } from "../state/store.ts";
import { unmountBelow } from "../sys/mounts.ts";
import type { Hub } from "./hub.ts";
import { bindShares } from "./share.ts";

/** Where in the share a checkpoint's or a restore's images and work directories are bound. */
export const CHECKPOINT_TARGETS = { images: ".checkpoint/images", work: ".checkpoint/work" } as const;

/** The guest's paths of the bound directories. */
export function guestCheckpointDirs(): { imagesDir: string; workDir: string } {
  return {
    imagesDir: join(GUEST_SHARE, CHECKPOINT_TARGETS.images),
    workDir: join(GUEST_SHARE, CHECKPOINT_TARGETS.work),
  };
}

/** The shares that bind a checkpoint's host directories (bindShares' entries). */
export function checkpointShares(imagesDir: string, workDir: string) {
  return [
    {
      field: "--image-path",
      source: imagesDir,
      target: CHECKPOINT_TARGETS.images,
      file: false,
      readonly: false,
    },
    { field: "--work-path", source: workDir, target: CHECKPOINT_TARGETS.work, file: false, readonly: false },
  ];
}

/**
 * hub `checkpoint` (host paths in): the directories bound, the agent's dump, unbound. A
 * paused VM is run for the dump and paused again if its processes are left running (they
 * run meanwhile for as long as CRIU takes to seize them: milliseconds). A dump without
 * leaveRunning ends the workload, and so this stand-in: `idle()` settles once no
 * checkpoint is being answered, so that the stand-in's exit waits for the answer.
 */
export function serveCheckpoint(
  hub: Hub,
  agent: Channel,
  store: StateStore,
  id: string,
  shared: string,
  vm: { stop: () => Promise<void>; cont: () => Promise<void> },
): { idle: () => Promise<unknown> } {
  let current: Promise<unknown> = Promise.resolve();
  hub.local.checkpoint = (args) => {
    current = answer(args);
    return current;
  };
  const answer = async (args: unknown) => {
    const req = args as RequestOf<"checkpoint">;
    const paused = store.read(id).status === "paused";
    bindShares(shared, checkpointShares(req.imagesDir, req.workDir));
    try {
      if (paused) await vm.cont();
      try {
        await agent.call("checkpoint", { ...req, ...guestCheckpointDirs() });
      } finally {
        if (paused && req.leaveRunning) await vm.stop();
      }
      return {};
    } finally {
      const top = join(shared, ".checkpoint");
      unmountBelow(top);
      for (const d of [CHECKPOINT_TARGETS.images, CHECKPOINT_TARGETS.work, ".checkpoint"]) {
        try {
          rmdirSync(join(shared, d));
        } catch {
          // not made, or not empty: left for delete (it unmounts, then removes)
        }
      }
    }
  };
  return { idle: () => current.catch(() => {}) };
}
