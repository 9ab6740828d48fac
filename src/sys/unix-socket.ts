/**
 * Unix stream sockets made by hand (libc), where Node's net module cannot do the job: a
 * listening socket as a bare fd, to be handed to another program (QEMU's chardevs take
 * one as `fd=N`) or to be polled without Node's event loop (fdpass.ts).
 *   struct sockaddr_un { u16 sun_family; char sun_path[108]; }   110 bytes
 */
import { closeSync, openSync, unlinkSync } from "node:fs";
import { basename, dirname } from "node:path";
import { libc, O_CLOEXEC, O_DIRECTORY, O_PATH, SOCK_CLOEXEC, SOCK_NONBLOCK, sysError } from "./libc.ts";

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
const SUN_PATH_MAX = 108;
export const SOCKADDR_UN_SIZE = 110;

/**
 * A sockaddr_un for path. A path longer than sun_path allows is reached through its
 * directory, opened O_PATH: "/proc/self/fd/N/name" (the returned cleanup closes N).
 */
export function sockaddr(path: string): { addr: Buffer; cleanup: () => void } {
  let target = path;
  let dirFd = -1;
  if (Buffer.byteLength(path) >= SUN_PATH_MAX) {
    dirFd = openSync(dirname(path), O_PATH | O_DIRECTORY | O_CLOEXEC);
    target = `/proc/self/fd/${dirFd}/${basename(path)}`;
    if (Buffer.byteLength(target) >= SUN_PATH_MAX) {
      closeSync(dirFd);
      throw new Error(`${path}: socket file name too long`);
    }
  }
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, 0);
  addr.write(target, 2, "utf8");
  return { addr, cleanup: () => dirFd >= 0 && closeSync(dirFd) };
}

/**
 * A socket listening at `path` (an old socket file there is replaced), close-on-exec; its
 * fd. A client's connect succeeds from now on, whenever the fd's holder gets to accept.
 */
export function listenUnix(path: string, opts: { nonBlocking?: boolean; backlog?: number } = {}): number {
  const c = libc();
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (opts.nonBlocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) throw sysError("socket", `listen on ${path}`);
  try {
    const { addr, cleanup } = sockaddr(path);
    try {
      if (c.bind(fd, addr, SOCKADDR_UN_SIZE) !== 0) throw sysError("bind", `listen on ${path}`);
    } finally {
      cleanup();
    }
    if (c.listen(fd, opts.backlog ?? 4) !== 0) throw sysError("listen", `listen on ${path}`);
  } catch (err) {
    c.close(fd);
    throw err;
  }
  return fd;
}
