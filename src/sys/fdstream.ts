/**
 * Non-blocking I/O on raw file descriptors (pty master or slave, pipe, socket, character
 * device such as a virtio serial port) without blocking Bun's event loop.
 *
 * What Bun 1.4.5 offers, measured (see the report in tests/unit/sys-fdstream.test.ts):
 *  - fs.read / fs.write / fs.createReadStream / tty.ReadStream do a BLOCKING read(2) or
 *    write(2) in Bun's small thread pool (as many threads as CPUs): two reads pending on
 *    quiet pipes on a 2-CPU host and every other async fs call (readFile...) stalls.
 *  - new net.Socket({ fd }) on a pipe or pty: never delivers any data.
 *  - Bun.file(fd).stream(): on a FIFO or socket it polls (epoll + preadv2 RWF_NOWAIT) on the
 *    main thread: good. On a character device it is only polled when the fd is O_NONBLOCK;
 *    otherwise it is treated as a file and fails with ESPIPE (pread on a pty).
 *  - Bun.file(fd).writer() and tty.WriteStream on a TTY: Bun CLEARS O_NONBLOCK on it and
 *    writes synchronously on the main thread: a full pty hangs the whole process.
 * Hence: reading uses Bun.file(fd).stream() (with O_NONBLOCK set first on anything that is
 * not a FIFO or socket); writing uses our own loop of non-blocking write(2) through libc,
 * which waits on EAGAIN with short timers (1 ms doubling to 8 ms) since Bun has no way to
 * wait for an arbitrary fd to become writable.
 *
 * O_NONBLOCK is a property of the open file description, shared with every dup of the fd,
 * including copies inherited by other processes: use these on fds this process owns.
 */
import { fstatSync } from "node:fs";
import { EAGAIN, EINTR, libc, setNonBlocking, sysError } from "./libc.ts";

/** An AsyncIterable over the data read from an fd, which can also be stopped from outside. */
export interface FdReader extends AsyncIterable<Uint8Array> {
  /** Stops reading: a pending next() resolves as done. The fd itself is not closed. */
  cancel(): void;
}

/** Makes fd pollable by Bun's reader: FIFOs and sockets already are; others need O_NONBLOCK. */
function preparePollable(fd: number): void {
  const st = fstatSync(fd);
  if (!st.isFIFO() && !st.isSocket() && !st.isFile()) setNonBlocking(fd, true);
}

/**
 * Reads fd until end of file. A pty returns EIO once the other side is closed (master
 * after the last slave fd closes, slave after the master closes): that ends the stream
 * as EOF does. Other errors are thrown by the iteration. Each chunk is a fresh buffer.
 * Data is only read as the consumer asks for it (back-pressure). The fd is not closed:
 * Bun reads from its own dup of it, which it closes at the end or on cancel().
 * Only one iteration per reader.
 */
export function fdReader(fd: number): FdReader {
  preparePollable(fd);
  const reader = Bun.file(fd).stream().getReader();
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    reader.cancel().catch(() => {});
  };
  const iterator: AsyncIterator<Uint8Array> = {
    async next(): Promise<IteratorResult<Uint8Array>> {
      if (done) return { done: true, value: undefined };
      try {
        const r = await reader.read();
        if (r.done || done) {
          done = true;
          return { done: true, value: undefined };
        }
        return { done: false, value: r.value };
      } catch (err) {
        done = true;
        if ((err as NodeJS.ErrnoException).code === "EIO") return { done: true, value: undefined };
        throw err;
      }
    },
    async return(): Promise<IteratorResult<Uint8Array>> {
      finish();
      return { done: true, value: undefined };
    },
  };
  return { [Symbol.asyncIterator]: () => iterator, cancel: finish };
}

export interface FdWriter {
  /**
   * Queues chunk; resolves when all of it has been written to the fd (accepted by the
   * kernel), rejects with the write error (EPIPE, EIO...). Writes complete in order.
   * The chunk must not be modified until the promise settles.
   */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * No more writes. Queued writes still complete; then the fd is closed (unless autoClose
   * was false). Idempotent. Wait for the last write's promise to know they are done.
   */
  close(): void;
}

interface Pending {
  chunk: Uint8Array;
  resolve: () => void;
  reject: (err: Error) => void;
}

const MAX_WAIT_MS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Writes to fd with non-blocking write(2) calls on the main thread; partial writes are
 * continued and EAGAIN waits. Sets O_NONBLOCK on fd. After an error every queued and
 * later write rejects with it. `autoClose: false` when the fd is also read (a pty master).
 */
export function fdWriter(fd: number, opts: { autoClose?: boolean } = {}): FdWriter {
  const autoClose = opts.autoClose ?? true;
  setNonBlocking(fd, true);
  const queue: Pending[] = [];
  let pumping = false;
  let closing = false;
  let closed = false;
  let failure: Error | undefined;

  const closeFd = () => {
    if (closed) return;
    closed = true;
    if (autoClose) libc().close(fd);
  };

  /** Writes as much of chunk as the fd accepts now: bytes written, or -1 on EAGAIN. */
  function writeSome(chunk: Uint8Array): number {
    for (;;) {
      const n = Number(libc().write(fd, chunk, chunk.length));
      if (n >= 0) return n;
      const e = sysError("write", `fd ${fd}`);
      if (e.errno === EAGAIN) return -1;
      if (e.errno !== EINTR) throw e;
    }
  }

  async function pump(): Promise<void> {
    pumping = true;
    let wait = 1;
    while (queue.length > 0) {
      const head = queue[0] as Pending;
      try {
        const n = head.chunk.length ? writeSome(head.chunk) : 0;
        if (n < 0) {
          await sleep(wait);
          wait = Math.min(wait * 2, MAX_WAIT_MS);
          continue;
        }
        wait = 1;
        head.chunk = head.chunk.subarray(n);
        if (head.chunk.length > 0) continue;
        queue.shift();
        head.resolve();
      } catch (err) {
        failure = err as Error;
        for (const p of queue.splice(0)) p.reject(failure);
      }
    }
    pumping = false;
    if (closing) closeFd();
  }

  return {
    write(chunk: Uint8Array): Promise<void> {
      if (failure) return Promise.reject(failure);
      if (closing) return Promise.reject(new Error(`write to fd ${fd} after close`));
      return new Promise<void>((resolve, reject) => {
        queue.push({ chunk, resolve, reject });
        if (!pumping) void pump();
      });
    },
    close(): void {
      if (closing) return;
      closing = true;
      if (!pumping) closeFd();
    },
  };
}
