/** The bench's clock and time limits. */
import { dlopen, FFIType, ptr } from "bun:ffi";

const libc = dlopen("libc.so.6", {
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
});
const CLOCK_BOOTTIME = 7;
const timespec = new BigInt64Array(2);

/** Milliseconds since host boot (CLOCK_BOOTTIME): the clock of /proc/PID/stat start times. */
export function now(): number {
  if (libc.symbols.clock_gettime(CLOCK_BOOTTIME, ptr(timespec)) !== 0) throw new Error("clock_gettime");
  return Number(timespec[0]) * 1000 + Number(timespec[1]) / 1e6;
}

export const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
