/**
 * Passing a file descriptor over a unix socket (SCM_RIGHTS), as runc and crun do for
 * `--console-socket`: the runtime connects to the caller's socket and sends ONE message
 * whose data is the pty's name and whose ancillary data is the pty master.
 *
 * Struct layouts (x86_64, glibc):
 *   struct sockaddr_un { u16 sun_family; char sun_path[108]; }              110 bytes
 *   struct iovec       { void *iov_base; size_t iov_len; }                   16 bytes
 *   struct msghdr      { void *name; u32 namelen; (pad) struct iovec *iov;  56 bytes
 *                        size_t iovlen; void *control; size_t controllen; i32 flags; (pad) }
 *   struct cmsghdr     { size_t cmsg_len; i32 level; i32 type; data... }    16-byte header
 *   CMSG_LEN(4) = 20, CMSG_SPACE(4) = 24.
 * Each message is built in ONE buffer (header, iovec, control, data) that is the argument
 * of the call, so that every pointer stored inside it points into memory kept alive by
 * the call itself.
 */
import { ptr } from "bun:ffi";
import { lstatSync, unlinkSync } from "node:fs";
import { EAGAIN, EINTR, libc, SOCK_CLOEXEC, SOCK_NONBLOCK, sysError } from "./libc.ts";
import { AF_UNIX, listenUnix, SOCK_STREAM, SOCKADDR_UN_SIZE, sockaddr } from "./unix-socket.ts";

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_NOSIGNAL = 0x4000;
const MSG_CTRUNC = 0x8;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSGHDR_SIZE = 56;
const IOVEC_SIZE = 16;
const CMSG_HDR = 16;
/** Room for up to 16 fds in one receive: more than one is a protocol error, but must not leak. */
const CONTROL_SIZE = CMSG_HDR + 16 * 4;
const MAX_MESSAGE = 4096;

const align8 = (n: number) => (n + 7) & ~7;

/** One buffer laid out as msghdr | iovec | control | data, with the pointers filled in. */
function messageBuffer(dataLen: number, controlLen: number) {
  const offIov = MSGHDR_SIZE;
  const offControl = offIov + IOVEC_SIZE;
  const offData = offControl + align8(controlLen);
  const buf = Buffer.alloc(offData + Math.max(dataLen, 1));
  const base = ptr(buf);
  if (base % 8 !== 0) throw new Error("fdpass: message buffer is not 8-byte aligned");
  buf.writeBigUInt64LE(BigInt(base + offIov), 16); // msg_iov
  buf.writeBigUInt64LE(1n, 24); // msg_iovlen
  buf.writeBigUInt64LE(BigInt(controlLen ? base + offControl : 0), 32); // msg_control
  buf.writeBigUInt64LE(BigInt(controlLen), 40); // msg_controllen
  buf.writeBigUInt64LE(BigInt(base + offData), offIov); // iov_base
  buf.writeBigUInt64LE(BigInt(dataLen), offIov + 8); // iov_len
  return { buf, offControl, offData };
}

/**
 * Connects to the unix socket at socketPath and sends message (UTF-8, not empty: a stream
 * socket carries ancillary data only with at least one byte of data) with fd attached as
 * SCM_RIGHTS, then closes the connection. fd stays open in the caller. Synchronous.
 */
export function sendFd(socketPath: string, fd: number, message: string): void {
  const data = Buffer.from(message, "utf8");
  if (data.length === 0) throw new RangeError(`send fd to ${socketPath}: empty message`);
  const c = libc();
  const s = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw sysError("socket", `send fd to ${socketPath}`);
  try {
    const { addr, cleanup } = sockaddr(socketPath);
    try {
      while (c.connect(s, addr, SOCKADDR_UN_SIZE) !== 0) {
        const e = sysError("connect", `send fd to ${socketPath}`);
        if (e.errno !== EINTR) throw e;
      }
    } finally {
      cleanup();
    }
    const cmsgLen = CMSG_HDR + 4;
    const { buf, offControl, offData } = messageBuffer(data.length, align8(cmsgLen));
    buf.writeBigUInt64LE(BigInt(cmsgLen), offControl); // cmsg_len = CMSG_LEN(4)
    buf.writeInt32LE(SOL_SOCKET, offControl + 8);
    buf.writeInt32LE(SCM_RIGHTS, offControl + 12);
    buf.writeInt32LE(fd, offControl + CMSG_HDR);
    data.copy(buf, offData);
    let sent: number;
    for (;;) {
      sent = Number(c.sendmsg(s, buf, MSG_NOSIGNAL));
      if (sent >= 0) break;
      const e = sysError("sendmsg", `send fd to ${socketPath}`);
      if (e.errno !== EINTR) throw e;
    }
    // A unix stream socket takes a small message whole; finish a partial send without fd.
    while (sent < data.length) {
      const rest = data.subarray(sent);
      const n = Number(c.write(s, rest, rest.length));
      if (n < 0) {
        const e = sysError("write", `send fd to ${socketPath}`);
        if (e.errno !== EINTR) throw e;
      } else sent += n;
    }
  } finally {
    c.close(s);
  }
}

export interface ReceivedFd {
  /** The received descriptor, close-on-exec, owned by the caller. */
  fd: number;
  /** The data sent with it (UTF-8), e.g. the pty name. */
  message: string;
}

export interface FdServer {
  /** Waits for the next connection and the one fd it sends; rejects after timeoutMs. */
  accept(timeoutMs: number): Promise<ReceivedFd>;
  /** Closes the listening socket and removes its file. Idempotent. */
  close(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Listens on a unix socket at socketPath (a stale file there is removed first). All
 * sockets are non-blocking and waiting is done with short timers that back off from 1 ms
 * to 20 ms, so the event loop is never blocked and other work runs while accept() waits.
 */
export function receiveFdServer(socketPath: string): FdServer {
  const c = libc();
  const lfd = listenUnix(socketPath, { nonBlocking: true });
  let ino: number;
  try {
    ino = lstatSync(socketPath).ino;
  } catch (err) {
    c.close(lfd);
    throw err;
  }
  let closed = false;

  /** Runs step until it returns a value, sleeping between EAGAINs; rejects at the deadline. */
  async function retry<T>(deadline: number, what: string, step: () => T | undefined): Promise<T> {
    for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
      if (closed) throw new Error(`${socketPath}: server closed while waiting for ${what}`);
      const v = step();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${socketPath}: timed out waiting for ${what}`);
      await sleep(Math.min(wait, left));
    }
  }

  async function accept(timeoutMs: number): Promise<ReceivedFd> {
    const deadline = Date.now() + timeoutMs;
    const conn = await retry(deadline, "a connection", () => {
      const s = c.accept4(lfd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (s >= 0) return s;
      const e = sysError("accept4", `accept on ${socketPath}`);
      if (e.errno === EAGAIN || e.errno === EINTR) return undefined;
      throw e;
    });
    try {
      return await receive(conn, deadline);
    } finally {
      c.close(conn);
    }
  }

  /** Reads until EOF, or until the fd has come and nothing more is waiting. */
  async function receive(conn: number, deadline: number): Promise<ReceivedFd> {
    const chunks: Buffer[] = [];
    let fd = -1;
    try {
      await retry(deadline, "a file descriptor", () => {
        for (;;) {
          const { buf, offControl, offData } = messageBuffer(MAX_MESSAGE, CONTROL_SIZE);
          const n = Number(c.recvmsg(conn, buf, MSG_CMSG_CLOEXEC));
          if (n < 0) {
            const e = sysError("recvmsg", `receive on ${socketPath}`);
            if (e.errno === EINTR) continue;
            if (e.errno === EAGAIN) return fd >= 0 ? true : undefined;
            throw e;
          }
          for (const got of controlFds(buf, offControl)) {
            if (fd < 0) fd = got;
            else c.close(got); // only one is expected: do not leak the others
          }
          if (buf.readInt32LE(48) & MSG_CTRUNC) {
            throw new Error(`${socketPath}: ancillary data truncated (too many fds sent)`);
          }
          if (n === 0) return true; // EOF
          chunks.push(Buffer.from(buf.subarray(offData, offData + n)));
        }
      });
    } catch (err) {
      if (fd >= 0) c.close(fd);
      throw err;
    }
    if (fd < 0) throw new Error(`${socketPath}: connection closed without passing a file descriptor`);
    return { fd, message: Buffer.concat(chunks).toString("utf8") };
  }

  function close(): void {
    if (closed) return;
    closed = true;
    c.close(lfd);
    try {
      // Only remove the file if it is still ours (not replaced by a newer server).
      if (lstatSync(socketPath).ino === ino) unlinkSync(socketPath);
    } catch {}
  }

  return { accept, close };
}

/** The fds of every SCM_RIGHTS message in the control area that recvmsg filled. */
function controlFds(buf: Buffer, offControl: number): number[] {
  const fds: number[] = [];
  const len = Number(buf.readBigUInt64LE(40)); // msg_controllen, as updated by recvmsg
  let off = 0;
  while (off + CMSG_HDR <= len) {
    const cmsgLen = Number(buf.readBigUInt64LE(offControl + off));
    if (cmsgLen < CMSG_HDR || off + cmsgLen > len) break;
    const level = buf.readInt32LE(offControl + off + 8);
    const type = buf.readInt32LE(offControl + off + 12);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let p = CMSG_HDR; p + 4 <= cmsgLen; p += 4) fds.push(buf.readInt32LE(offControl + off + p));
    }
    off += align8(cmsgLen);
  }
  return fds;
}
