/**
 * Making a (possibly cloned) guest its own: mix host-given random bytes into the kernel's
 * pool and set the wall clock. A guest restored from a template snapshot resumes with the
 * template's pool and the clock of the moment the snapshot was taken.
 */
import { writeFileSync } from "node:fs";
import { libc, ptr } from "../sys/libc.ts";

const CLOCK_REALTIME = 0;

export function adoptIdentity(seedHex: string | undefined, timeMs: number | undefined): void {
  if (seedHex) {
    try {
      writeFileSync("/dev/urandom", Buffer.from(seedHex, "hex"));
    } catch {
      // No /dev/urandom: nothing to reseed.
    }
  }
  if (timeMs !== undefined) {
    const ts = new BigInt64Array([BigInt(Math.floor(timeMs / 1000)), BigInt((timeMs % 1000) * 1_000_000)]);
    libc().clock_settime(CLOCK_REALTIME, ptr(ts));
  }
}
