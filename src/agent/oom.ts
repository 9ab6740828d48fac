/**
 * A container's OOM kills, as its cgroup counts them (memory.events `oom_kill`): the kernel
 * notifies a change of that file (inotify), so nothing is polled.
 */
import { readFileSync, watch } from "node:fs";
import { join } from "node:path";

/** Calls onKill for each OOM kill in `cgroup` from now on; returns the stop. */
export function watchOomKills(cgroup: string, onKill: () => void): () => void {
  const file = join(cgroup, "memory.events");
  const count = (): number | undefined => {
    try {
      return Number(/^oom_kill (\d+)$/m.exec(readFileSync(file, "utf8"))?.[1] ?? 0);
    } catch {
      return undefined; // the cgroup went with the container
    }
  };
  let seen = count();
  if (seen === undefined) return () => {};
  const watcher = watch(file, () => {
    const now = count();
    if (now === undefined || seen === undefined) return;
    for (; seen < now; seen++) onKill();
  });
  watcher.on("error", () => {});
  return () => watcher.close();
}
