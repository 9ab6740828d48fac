/**
 * Making a (possibly cloned) guest its own: mix host-given random bytes into the kernel's
 * pool and set the wall clock. A guest restored from a template snapshot resumes with the
 * template's pool and the clock of the moment the snapshot was taken.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { errno, libc, ptr } from "../sys/libc.ts";

const CLOCK_REALTIME = 0;

/**
 * ioctl RNDRESEEDCRNG (_IO('R', 0x07)): the kernel's CRNG reseeded from its input pool now.
 * A write to /dev/urandom only mixes into that pool (Linux 5.18 and later): the clones of one
 * snapshot would go on drawing the same bytes until the CRNG's next scheduled reseed.
 */
const RNDRESEEDCRNG = 0x5207;

/** Returns what could not be done (a reseed refused): the host logs it as a warning. */
export function adoptIdentity(seedHex: string | undefined, timeMs: number | undefined): string | undefined {
  let problem: string | undefined;
  if (seedHex) {
    try {
      const fd = openSync("/dev/urandom", "w");
      try {
        writeSync(fd, Buffer.from(seedHex, "hex"));
        if (libc().ioctl(fd, RNDRESEEDCRNG, null) !== 0)
          problem = `the kernel's random generator was not reseeded (RNDRESEEDCRNG: errno ${errno()}): this guest may draw the same bytes as another clone of its template`;
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      problem = `the host's seed could not be mixed in: ${(err as Error).message}`;
    }
  }
  if (timeMs !== undefined) {
    const ts = new BigInt64Array([BigInt(Math.floor(timeMs / 1000)), BigInt((timeMs % 1000) * 1_000_000)]);
    libc().clock_settime(CLOCK_REALTIME, ptr(ts));
  }
  return problem;
}
