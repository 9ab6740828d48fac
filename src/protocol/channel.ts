/**
 * One framed, multiplexed connection: requests with answers, events, and process
 * streams. Used on both ends (host stand-in <-> agent, CLI/exec clients <-> stand-in).
 *
 * Back-pressure is end to end: a data handler that returns a promise (the bytes are
 * still being written out) pauses reading from the transport until it settles, so a
 * slow consumer stops the producer in the guest instead of growing a buffer here.
 */
import { errorMessage } from "../errors.ts";
import { DATA_CHUNK, encodeFrame, type Frame, FrameDecoder, FrameKind } from "./frame.ts";
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
  pause(): void;
  resume(): void;
  close(): void;
}

export type RequestHandler = (op: Op, args: unknown) => Promise<unknown>;
export type DataHandler = (data: Uint8Array) => undefined | Promise<void>;

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
  private blocked = 0;
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

  /** Sends process bytes; resolves when the transport took them (await it for back-pressure). */
  async sendData(stream: number, data: Uint8Array): Promise<void> {
    for (let off = 0; off < data.length; off += DATA_CHUNK) {
      await this.send(encodeFrame(FrameKind.Data, stream, data.subarray(off, off + DATA_CHUNK)));
    }
  }

  sendEof(stream: number): Promise<void> {
    return this.send(encodeFrame(FrameKind.Eof, stream));
  }

  /** Routes a stream's data and EOF to handlers; data that came before is not kept. */
  onStream(stream: number, data: DataHandler, eof: () => void = () => {}): void {
    this.dataHandlers.set(stream, { data, eof });
  }

  dropStream(stream: number): void {
    this.dataHandlers.delete(stream);
  }

  /** Forwards a raw frame (the hub relays frames between connections). */
  sendFrame(frame: Frame): Promise<void> {
    return this.send(encodeFrame(frame.kind, frame.stream, frame.payload));
  }

  /** Drops a partially received frame: the peer reconnected (the agent's port). */
  resetInput(): void {
    this.decoder.reset();
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
    const h = this.dataHandlers.get(f.stream);
    if (!h) {
      this.onUnknownStream(f);
      return;
    }
    if (f.kind === FrameKind.Eof) {
      h.eof();
      return;
    }
    const pending = h.data(f.payload);
    if (pending) {
      if (this.blocked++ === 0) this.transport.pause();
      pending.finally(() => {
        if (--this.blocked === 0 && !this.closed) this.transport.resume();
      });
    }
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
    for (const h of this.dataHandlers.values()) h.eof();
    this.dataHandlers.clear();
    this.onClose(err);
  }
}
