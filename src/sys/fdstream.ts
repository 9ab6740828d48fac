/**
 * Non-blocking I/O on raw file descriptors (pty master or slave, pipe, socket, character
 * device such as a virtio serial port) without blocking Bun's event loop.
 *
 * What Bun 1.4.5 offers, measured (tests/unit/sys-fdstream.test.ts checks the choices):
 *  - fs.read / fs.write / fs.createReadStream / tty.ReadStream do a BLOCKING read(2) or
 *    write(2) in Bun's small thread pool: on a 2-CPU host, two reads pending on quiet
 *    pipes and every other async fs call (readFile...) stalls until data comes.
 *  - new net.Socket({ fd }) on a pipe or a pty: never delivers any data.
 *  - Bun.file(fd).stream(): on a FIFO or socket it waits with epoll and reads with
 *    preadv2(RWF_NOWAIT) on the main thread: good. A character device (pty, /dev/kmsg)
 *    is polled the same way only when the fd is O_NONBLOCK; otherwise it is treated as a
 *    file and fails with ESPIPE (pread). It reads only as the consumer pulls, and reads
 *    from its own dup of the fd, closed a few milliseconds after the end or a cancel.
 *  - Bun.file(fd).writer() (FileSink) on a FIFO or socket: sets O_NONBLOCK, waits for
 *    writability with epoll: good (25x faster than polling). On a TTY it CLEARS O_NONBLOCK
 *    and writes synchronously on the main thread, as does tty.WriteStream: a full pty
 *    hangs the whole process, and a reader of the same fd then blocks too.
 * Hence: reading always uses Bun.file(fd).stream() (after setting O_NONBLOCK on anything
 * but a FIFO, socket or file). Writing uses FileSink on FIFOs and sockets, and on anything
 * else our own loop of non-blocking write(2) calls through libc, which waits on EAGAIN
 * with short timers, since Bun cannot wait for an arbitrary fd to become writable.
 *
 * O_NONBLOCK is a property of the open file description, shared with every dup of the fd,
 * including copies inherited by other processes: use these on fds this process owns.
 */
import { fstatSync } from "node:fs";
import { EAGAIN, EINTR, libc, setNonBlocking, sysError } from "./libc.ts";

/** An AsyncIterable over the data read from an fd, which can also be stopped from outside. */
export interface FdReader extends AsyncIterable<Uint8Array> {
  /**
   * Stops reading: a pending next() resolves as done. The fd itself is not closed; Bun's
   * dup of it may stay open for a few more event-loop turns (until the promise resolves).
   */
  cancel(): Promise<void>;
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
  let cancelled: Promise<void> = Promise.resolve();
  const finish = (): Promise<void> => {
    if (!done) {
      done = true;
      cancelled = reader.cancel().catch(() => {});
    }
    return cancelled;
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
      await finish();
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

/** Longest wait between retries of a write that got EAGAIN (after ~60 ms of waiting). */
const MAX_WAIT_MS = 32;
/** 0: yield to the event loop once (a reader in this process may drain the fd right away). */
const sleep = (ms: number) => new Promise((r) => (ms === 0 ? setImmediate(r) : setTimeout(r, ms)));

/**
 * Writes to fd; after an error every queued and later write rejects with it. Sets
 * O_NONBLOCK on fd. `autoClose: false` leaves the fd open at close(), e.g. a pty master
 * that is also being read. FIFOs and sockets use Bun's FileSink, which waits for
 * writability with epoll; anything else (ttys, character devices) a loop of non-blocking
 * write(2) calls that retries on EAGAIN after 0, 1, 2, 4... up to 32 ms.
 */
export function fdWriter(fd: number, opts: { autoClose?: boolean } = {}): FdWriter {
  const autoClose = opts.autoClose ?? true;
  const st = fstatSync(fd);
  return st.isFIFO() || st.isSocket() ? sinkWriter(fd, autoClose) : pollWriter(fd, autoClose);
}

/** FIFO or socket: Bun's FileSink (on its own dup of fd), one flush per write. */
function sinkWriter(fd: number, autoClose: boolean): FdWriter {
  const sink = Bun.file(fd).writer();
  let chain: Promise<void> = Promise.resolve();
  let failure: Error | undefined;
  let closing = false;
  return {
    write(chunk: Uint8Array): Promise<void> {
      if (closing) return Promise.reject(new Error(`write to fd ${fd} after close`));
      const p = chain.then(async () => {
        if (failure) throw failure;
        if (chunk.length === 0) return;
        try {
          // write() starts writing once its buffer is full and returns that write's promise:
          // left alone, its rejection (EPIPE from a closed reader) would end the process.
          const w = sink.write(chunk);
          if (typeof w !== "number") await w;
          const f = sink.flush();
          if (typeof f !== "number") await f;
        } catch (err) {
          // FileSink drops later writes silently after an error: remember it ourselves.
          failure = err as Error;
          throw failure;
        }
      });
      chain = p.catch(() => {});
      return p;
    },
    close(): void {
      if (closing) return;
      closing = true;
      void chain.then(async () => {
        try {
          await sink.end();
        } catch {}
        if (autoClose) libc().close(fd);
      });
    },
  };
}

/** Anything else: non-blocking write(2) on the main thread, polled on EAGAIN. */
function pollWriter(fd: number, autoClose: boolean): FdWriter {
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
    let wait = 0;
    while (queue.length > 0) {
      const head = queue[0] as Pending;
      try {
        const n = head.chunk.length ? writeSome(head.chunk) : 0;
        if (n < 0) {
          await sleep(wait);
          wait = Math.min(Math.max(wait * 2, 1), MAX_WAIT_MS);
          continue;
        }
        wait = 0;
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
