/** Small tmpfs mounts for tests of a full disk (mounting needs root). */
import { expect } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unmountAndRemove } from "../../src/sys/mounts.ts";
import { tempDir } from "./cli.ts";

const MiB = 1024 * 1024;
const mounted: string[] = [];

/** A new directory with a tmpfs of `mib` MiB on it; `full`: every block of it taken. */
export function tmpfsDir(prefix: string, mib: number, full: boolean): string {
  const dir = tempDir(prefix);
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${mib}m,mode=0700`, "tmpfs", dir]);
  expect(mount.exitCode).toBe(0);
  mounted.push(dir);
  if (full) {
    let code: string | undefined;
    try {
      writeFileSync(join(dir, ".filler"), Buffer.alloc(2 * mib * MiB));
    } catch (err) {
      code = (err as NodeJS.ErrnoException).code;
    }
    expect(code).toBe("ENOSPC");
  }
  return dir;
}

/** Unmounts and removes every tmpfs directory made by this test process (for afterAll). */
export function removeTmpfsDirs(): void {
  for (const dir of mounted) if (existsSync(dir)) unmountAndRemove(dir);
}
