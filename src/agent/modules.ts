/**
 * Kernel modules the guest loads on first use, not at boot (most VMs never need them): one
 * set per guest/NAME-modules.list, in the image at /usr/lib/modules/cc/NAME/ with the load
 * order (dependencies first) in its file `order` (guest/mkrootfs.sh).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnReaped } from "./crun.ts";
import type { Reaper } from "./init.ts";

const MODULES = "/usr/lib/modules/cc";
export type ModuleSet = "criu" | "layer";
const loaded = new Set<ModuleSet>();

/** insmod of the set's modules, in their order; one loaded already (EEXIST) is fine. */
export async function loadModules(reaper: Reaper, set: ModuleSet): Promise<void> {
  const dir = join(MODULES, set);
  if (loaded.has(set) || !existsSync(join(dir, "order"))) return;
  for (const name of readFileSync(join(dir, "order"), "utf8").split("\n").filter(Boolean)) {
    const p = spawnReaped(reaper, ["/usr/sbin/insmod", join(dir, name)], ["ignore", "ignore", "pipe"]);
    const err = await new Response(p.stderr as ReadableStream).text();
    if ((await p.exited) !== 0 && !/exists/i.test(err)) throw new Error(`insmod ${name}: ${err.trim()}`);
  }
  loaded.add(set);
}
