/**
 * A container's OOM kills, as its cgroup counts them (memory.events `oom_kill`): the kernel
 * notifies a change of that file (inotify), so nothing is polled.
 */
import { readFileSync, watch } from "node:fs";
import { join } from "node:path";

export interface OomWatch {
  /**
   * Reports the kills counted so far and not yet reported. The init's exit calls it before
   * it is sent: a kill that caused the exit is reported before it, whichever of the
   * inotify event and the reaper comes first.
   */
  flush(): void;
  stop(): void;
}

/** Calls onKill for each OOM kill in `cgroup` from now on. */
export function watchOomKills(cgroup: string, onKill: () => void): OomWatch {
  const file = join(cgroup, "memory.events");
  const count = (): number | undefined => {
    try {
      return Number(/^oom_kill (\d+)$/m.exec(readFileSync(file, "utf8"))?.[1] ?? 0);
    } catch {
      return undefined; // the cgroup went with the container
    }
  };
  let seen = count();
  if (seen === undefined) return { flush() {}, stop() {} };
  const flush = () => {
    const now = count();
    if (now === undefined || seen === undefined) return;
    for (; seen < now; seen++) onKill();
  };
  const watcher = watch(file, flush);
  watcher.on("error", () => {});
  return { flush, stop: () => watcher.close() };
}
