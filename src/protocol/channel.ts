/**
 * One framed, multiplexed connection: requests with answers, events, and process
 * streams. Used on both ends (host stand-in <-> agent, CLI/exec clients <-> stand-in).
 *
 * Flow control is per stream, with credit windows (as SSH channels, HTTP/2 and yamux do):
 * a sender may have STREAM_WINDOW bytes of a stream outstanding; the receiver credits them
 * back once its data handler is done with them (a handler that returns a promise: when
 * the bytes are written out). Reading from the transport never stops, so a stalled stream
 * (stdin of a process that does not read yet) never holds up requests, answers, events or
 * the other streams, and each stream's buffer is bounded by its window.
 *
 * Each stream is strictly in order at both ends: sends on a stream go one after another
 * (the hub relays an exec's output with a sendData per frame, none awaited by the next),
 * and its handler gets a frame only once its promise for the one before has settled, the
 * EOF after the last: a handler writing to a slow destination never runs side by side
 * with itself, which would reorder the bytes or lose track of who waits for credit.
 */
import { errorMessage } from "../errors.ts";
import { DATA_CHUNK, encodeFrame, type Frame, FrameDecoder, FrameKind, STREAM_WINDOW } from "./frame.ts";
import {
  CALL_TIMEOUT_MS,
  Calls,
  Envelope,
  type EventEnvelope,
  type Op,
  type RequestOf,
  type ResultOf,
} from "./messages.ts";

/** A byte transport: a unix socket on the host, the virtio-serial port in the guest. */
export interface Transport {
  write(chunk: Uint8Array): Promise<void>;
  /** Starts delivering chunks; onEnd when the peer is gone. */
  start(onChunk: (chunk: Uint8Array) => void, onEnd: (err?: Error) => void): void;
  close(): void;
}

export type RequestHandler = (op: Op, args: unknown) => Promise<unknown>;
export type DataHandler = (data: Uint8Array) => undefined | Promise<void>;
/** One frame's turn at its stream's handler: a promise while the handler is busy with it. */
type Delivery = () => void | Promise<void>;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class ChannelClosedError extends Error {}

export class Channel {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly dataHandlers = new Map<number, { data: DataHandler; eof: () => void }>();
  private nextReq = 1;
  private closed = false;
  /** Per stream: the last send queued; the next one starts when it is done (FIFO). */
  private readonly sendQueue = new Map<number, Promise<void>>();
  /** Per stream: bytes this side may still send, and the send waiting for more (one at most). */
  private readonly sendCredit = new Map<number, number>();
  private readonly creditWaiters = new Map<number, () => void>();
  /** Per stream: bytes received and not yet credited back (never above the window). */
  private readonly unconsumed = new Map<number, number>();
  /** Per stream, while its handler is busy: the frames that arrived since, in order. */
  private readonly inbox = new Map<number, Delivery[]>();
  /** Counts resetInput calls: bytes of an old peer are never credited to the new one. */
  private peer = 0;
  private writeChain: Promise<void> = Promise.resolve();
  onRequest: RequestHandler = async (op) => {
    throw new Error(`unexpected request ${op}`);
  };
  onEvent: (ev: EventEnvelope) => void = () => {};
  onClose: (err?: Error) => void = () => {};
  /** Data for a stream nobody registered: the default drops it. */
  onUnknownStream: (frame: Frame) => void = () => {};

  constructor(private readonly transport: Transport) {
    transport.start(
      (chunk) => this.receive(chunk),
      (err) => this.shutdown(err ?? new ChannelClosedError("connection closed")),
    );
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async call<O extends Op>(op: O, args: RequestOf<O>, timeoutMs = CALL_TIMEOUT_MS[op]): Promise<ResultOf<O>> {
    if (this.closed) throw new ChannelClosedError(`${op}: connection closed`);
    const req = this.nextReq++;
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(req);
        reject(new Error(`${op}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(req, { resolve, reject, timer });
    });
    try {
      await this.sendMessage({ t: "req", req, op, args });
    } catch (err) {
      const p = this.pending.get(req);
      if (p) clearTimeout(p.timer);
      this.pending.delete(req);
      result.catch(() => {});
      throw err;
    }
    const raw = await result;
    return Calls[op].result.parse(raw) as ResultOf<O>;
  }

  sendEvent(ev: EventEnvelope): Promise<void> {
    return this.sendMessage(ev);
  }

  /**
   * Sends process bytes; resolves when the transport took them, which waits for the
   * receiver's credit when the stream's window is used up (await it for back-pressure).
   * Calls on one stream need not await each other: they go out whole, in call order.
   */
  sendData(stream: number, data: Uint8Array): Promise<void> {
    return this.inOrder(stream, () => this.sendChunks(stream, data));
  }

  /** Sent after whatever data of the stream was queued before it. */
  sendEof(stream: number): Promise<void> {
    return this.inOrder(stream, () => this.send(encodeFrame(FrameKind.Eof, stream)));
  }

  /** Runs a stream's sends one at a time, in call order; a failed one does not stop the next. */
  private inOrder(stream: number, job: () => Promise<void>): Promise<void> {
    const before = this.sendQueue.get(stream);
    // An idle stream starts at once: its first frame is queued for the transport before
    // the caller goes on, as when there was no queue.
    const run = before ? before.then(job) : job();
    const done = run.then(noop, noop);
    this.sendQueue.set(stream, done);
    void done.then(() => {
      if (this.sendQueue.get(stream) === done) this.sendQueue.delete(stream);
    });
    return run;
  }

  private async sendChunks(stream: number, data: Uint8Array): Promise<void> {
    for (let off = 0; off < data.length; off += DATA_CHUNK) {
      const chunk = data.subarray(off, off + DATA_CHUNK);
      while ((this.sendCredit.get(stream) ?? STREAM_WINDOW) < chunk.length) {
        if (this.closed) throw new ChannelClosedError("connection closed");
        await new Promise<void>((resolve) => this.creditWaiters.set(stream, resolve));
      }
      this.sendCredit.set(stream, (this.sendCredit.get(stream) ?? STREAM_WINDOW) - chunk.length);
      await this.send(encodeFrame(FrameKind.Data, stream, chunk));
    }
  }

  /** Routes a stream's data and EOF to handlers; data that came before is not kept. */
  onStream(stream: number, data: DataHandler, eof: () => void = () => {}): void {
    this.dataHandlers.set(stream, { data, eof });
  }

  dropStream(stream: number): void {
    this.dataHandlers.delete(stream);
  }

  /** A new peer (the agent's port reconnected): drops a partial frame, starts windows afresh. */
  resetInput(): void {
    this.decoder.reset();
    this.peer++;
    this.unconsumed.clear();
    this.sendCredit.clear();
    this.wakeCreditWaiters();
  }

  close(): void {
    this.shutdown(new ChannelClosedError("connection closed"));
    this.transport.close();
  }

  private sendMessage(msg: Envelope): Promise<void> {
    return this.send(encodeFrame(FrameKind.Message, 0, new TextEncoder().encode(JSON.stringify(msg))));
  }

  /** Writes are chained so frames never interleave, whatever the callers' timing. */
  private send(bytes: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new ChannelClosedError("connection closed"));
    const next = this.writeChain.then(() => this.transport.write(bytes));
    this.writeChain = next.catch(() => {});
    return next;
  }

  private receive(chunk: Uint8Array): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.shutdown(err as Error);
      this.transport.close();
      return;
    }
    for (const f of frames) this.dispatch(f);
  }

  private dispatch(f: Frame): void {
    if (f.kind === FrameKind.Message) {
      let env: Envelope;
      try {
        env = Envelope.parse(JSON.parse(new TextDecoder().decode(f.payload)));
      } catch (err) {
        // A message that does not fit the schema is dropped, never acted on.
        process.stderr.write(`protocol: invalid message dropped: ${errorMessage(err)}\n`);
        return;
      }
      this.handleMessage(env);
      return;
    }
    if (f.kind === FrameKind.Credit) {
      this.credited(f);
      return;
    }
    if (f.kind === FrameKind.Eof) {
      this.enqueue(f.stream, () => this.deliverEof(f));
      return;
    }
    // Counted on arrival, not on delivery: what waits in the inbox is within the window.
    const held = (this.unconsumed.get(f.stream) ?? 0) + f.payload.length;
    if (held > STREAM_WINDOW) {
      this.shutdown(new Error(`protocol: stream ${f.stream} sent past its window (${held} bytes)`));
      this.transport.close();
      return;
    }
    this.unconsumed.set(f.stream, held);
    const peer = this.peer;
    this.enqueue(f.stream, () => this.deliverData(f, peer));
  }

  /** A stream's next delivery: now if its handler is free, else after those before it. */
  private enqueue(stream: number, delivery: Delivery): void {
    const queue = this.inbox.get(stream);
    if (queue) queue.push(delivery);
    else this.drain(stream, [delivery]);
  }

  /** Delivers in order until a handler is busy; its promise settling takes up the rest. */
  private drain(stream: number, queue: Delivery[]): void {
    for (let next = queue.shift(); next; next = queue.shift()) {
      let pending: void | Promise<void>;
      try {
        pending = next();
      } catch (err) {
        // A handler's fault must not stall the stream behind it, nor stop the reading.
        process.stderr.write(`protocol: stream ${stream} handler failed: ${errorMessage(err)}\n`);
        continue;
      }
      if (pending) {
        this.inbox.set(stream, queue);
        const resume = () => this.drain(stream, queue);
        pending.then(resume, resume);
        return;
      }
    }
    this.inbox.delete(stream);
  }

  /** The handler is looked up at the frame's turn: one dropped meanwhile gets no more. */
  private deliverData(f: Frame, peer: number): undefined | Promise<void> {
    const consumed = () => {
      if (peer === this.peer) this.credit(f.stream, f.payload.length);
    };
    const h = this.dataHandlers.get(f.stream);
    let pending: undefined | Promise<void>;
    try {
      if (h) pending = h.data(f.payload);
      else this.onUnknownStream(f);
    } finally {
      if (!pending) consumed();
    }
    return pending?.then(consumed, consumed);
  }

  private deliverEof(f: Frame): void {
    // Everything sent before the EOF has been credited by now, unless a new peer's has come.
    if (this.unconsumed.get(f.stream) === 0) this.unconsumed.delete(f.stream);
    const h = this.dataHandlers.get(f.stream);
    if (h) h.eof();
    else this.onUnknownStream(f);
  }

  /** The receiver's side: `n` bytes of `stream` are done with; the sender may send more. */
  private credit(stream: number, n: number): void {
    if (this.closed) return;
    const held = this.unconsumed.get(stream);
    if (held !== undefined) this.unconsumed.set(stream, Math.max(0, held - n));
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, n);
    this.send(encodeFrame(FrameKind.Credit, stream, payload)).catch(() => {});
  }

  /** The sender's side: credit came back. */
  private credited(f: Frame): void {
    if (f.payload.length !== 4) return;
    const n = new DataView(f.payload.buffer, f.payload.byteOffset, 4).getUint32(0);
    const now = Math.min(STREAM_WINDOW, (this.sendCredit.get(f.stream) ?? STREAM_WINDOW) + n);
    this.sendCredit.set(f.stream, now);
    const wake = this.creditWaiters.get(f.stream);
    this.creditWaiters.delete(f.stream);
    wake?.();
  }

  private wakeCreditWaiters(): void {
    const waiters = [...this.creditWaiters.values()];
    this.creditWaiters.clear();
    for (const w of waiters) w();
  }

  private handleMessage(env: Envelope): void {
    if (env.t === "res") {
      const p = this.pending.get(env.re);
      if (!p) return;
      this.pending.delete(env.re);
      clearTimeout(p.timer);
      if (env.ok) p.resolve(env.result);
      else p.reject(new Error(env.error));
    } else if (env.t === "event") {
      this.onEvent(env);
    } else {
      const { req, op, args } = env;
      const parsed = Calls[op].request.safeParse(args);
      const answer = parsed.success
        ? this.onRequest(op, parsed.data)
        : Promise.reject(new Error(`${op}: invalid request: ${parsed.error.issues[0]?.message}`));
      answer.then(
        (result) => this.sendMessage({ t: "res", re: req, ok: true, result: result ?? {} }).catch(() => {}),
        (err) => this.sendMessage({ t: "res", re: req, ok: false, error: errorMessage(err) }).catch(() => {}),
      );
    }
  }

  private shutdown(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const [stream, h] of this.dataHandlers) {
      const queue = this.inbox.get(stream);
      // A stream still delivering what it received ends after it, as with an EOF frame.
      if (queue) {
        queue.push(() => {
          this.dataHandlers.get(stream)?.eof();
          this.dataHandlers.delete(stream);
        });
      } else {
        this.dataHandlers.delete(stream);
        h.eof();
      }
    }
    this.wakeCreditWaiters();
    this.onClose(err);
  }
}

function noop(): void {}
