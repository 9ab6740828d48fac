/**
 * Every direct libc call of the runtime goes through this module (bun:ffi), so that the
 * rest of the code sees ordinary functions and the set of system calls made outside
 * Node's API is visible in one place. libc is opened lazily: commands that never need
 * FFI do not pay for it.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { constants as osConstants } from "node:os";

const symbols = {
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  waitid: { args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  kill: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  posix_openpt: { args: [FFIType.i32], returns: FFIType.i32 },
  grantpt: { args: [FFIType.i32], returns: FFIType.i32 },
  unlockpt: { args: [FFIType.i32], returns: FFIType.i32 },
  ptsname_r: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  sendmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64 },
  recvmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64 },
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  setsockopt: {
    args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32],
    returns: FFIType.i32,
  },
  inet_pton: { args: [FFIType.i32, FFIType.cstring, FFIType.ptr], returns: FFIType.i32 },
  inet_ntop: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.u32], returns: FFIType.ptr },
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  accept4: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  // open and fcntl are variadic in C; their optional third argument is an int, which the
  // x86_64 ABI passes in a register exactly like a fixed argument.
  open: { args: [FFIType.cstring, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i64], returns: FFIType.i32 },
  write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  pipe2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  tcgetattr: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  tcsetattr: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  cfmakeraw: { args: [FFIType.ptr], returns: FFIType.void },
  getpid: { args: [], returns: FFIType.i32 },
  getppid: { args: [], returns: FFIType.i32 },
  unshare: { args: [FFIType.i32], returns: FFIType.i32 },
  setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  clock_settime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  dup2: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  mount: {
    args: [FFIType.cstring, FFIType.cstring, FFIType.cstring, FFIType.u64, FFIType.ptr],
    returns: FFIType.i32,
  },
  statx: {
    args: [FFIType.i32, FFIType.cstring, FFIType.i32, FFIType.u32, FFIType.ptr],
    returns: FFIType.i32,
  },
  umount2: { args: [FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
  lgetxattr: { args: [FFIType.cstring, FFIType.cstring, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  sethostname: { args: [FFIType.cstring, FFIType.u64], returns: FFIType.i32 },
  reboot: { args: [FFIType.i32], returns: FFIType.i32 },
  sync: { args: [], returns: FFIType.void },
  __errno_location: { args: [], returns: FFIType.ptr },
} as const;

type Libc = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let lib: Libc | undefined;

export function libc(): Libc {
  if (!lib) lib = dlopen("libc.so.6", symbols).symbols;
  return lib;
}

/** errno of the last failed call on this thread. */
export function errno(): number {
  const p = libc().__errno_location();
  if (!p) return 0;
  // Not toArrayBuffer(p, 4): its second argument is a byte OFFSET, not a length.
  return read.i32(p, 0);
}

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, n]) => [n as number, name] as [number, string]),
);

/** A failed libc call, shaped like Node's system errors (code "ENOENT", errno 2, syscall). */
export class SysError extends Error {
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
    context?: string,
  ) {
    const code = errnoNames.get(errno) ?? `errno ${errno}`;
    const text = String(libc().strerror(errno) ?? "");
    super(`${context ? `${context}: ` : ""}${syscall}: ${text} (${code})`);
    this.name = "SysError";
    this.code = code;
  }
}

/**
 * The error of the libc call that just failed. Call it right after the call: errno is
 * per thread and any later libc call (even one made by the runtime) may overwrite it.
 */
export function sysError(syscall: string, context?: string): SysError {
  return new SysError(syscall, errno(), context);
}

/** NUL-terminated C string in a buffer that stays alive as long as the caller holds it. */
export function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

export { ptr };

export const LOCK_EX = 2;
export const LOCK_UN = 8;
export const WNOHANG = 1;
export const SIGKILL = 9;

// open(2) flags and fcntl(2) commands (x86_64 / generic Linux values).
export const O_RDWR = 0o2;
export const O_NOCTTY = 0o400;
export const O_NONBLOCK = 0o4000;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
/** socket(2) type flags: the same bits as O_NONBLOCK and O_CLOEXEC. */
export const SOCK_NONBLOCK = O_NONBLOCK;
export const SOCK_CLOEXEC = O_CLOEXEC;
export const O_PATH = 0o10000000;
export const F_GETFL = 3;
export const F_SETFL = 4;

// errno values this code tests for.
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const EAGAIN = 11;

/** Sets or clears O_NONBLOCK on an open file description (shared by every dup of it). */
export function setNonBlocking(fd: number, on: boolean): void {
  const c = libc();
  const flags = c.fcntl(fd, F_GETFL, 0);
  if (flags < 0) throw sysError("fcntl(F_GETFL)", `fd ${fd}`);
  const want = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (want !== flags && c.fcntl(fd, F_SETFL, want) < 0) throw sysError("fcntl(F_SETFL)", `fd ${fd}`);
}
