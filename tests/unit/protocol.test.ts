import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { Channel } from "../../src/protocol/channel.ts";
import {
  DATA_CHUNK,
  encodeFrame,
  FrameDecoder,
  FrameKind,
  HEADER_BYTES,
  STREAM_WINDOW,
} from "../../src/protocol/frame.ts";
import { Calls, Envelope } from "../../src/protocol/messages.ts";
import { connectUnix, socketTransport } from "../../src/protocol/socket.ts";
import { tempDir } from "../lib/cli.ts";

async function pair(): Promise<[Channel, Channel, () => void]> {
  const path = join(tempDir(), "s.sock");
  let serverSock: Socket | undefined;
  const server = createServer((s) => {
    serverSock = s;
  });
  await new Promise<void>((r) => server.listen(path, r));
  const client = await connectUnix(path);
  while (!serverSock) await Bun.sleep(1);
  return [
    new Channel(socketTransport(client)),
    new Channel(socketTransport(serverSock)),
    () => server.close(),
  ];
}

/** True if p settles in time: a hang fails the test instead of timing it out. */
async function within(ms: number, p: Promise<unknown>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

describe("frames", () => {
  test("round trip, split at every byte boundary", () => {
    const frames = [
      encodeFrame(FrameKind.Message, 0, new TextEncoder().encode('{"a":1}')),
      encodeFrame(FrameKind.Data, 7, new Uint8Array([1, 2, 3])),
      encodeFrame(FrameKind.Eof, 7),
    ];
    const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let off = 0;
    for (const f of frames) {
      all.set(f, off);
      off += f.length;
    }
    for (let cut = 0; cut <= all.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(all.slice(0, cut)), ...d.push(all.slice(cut))];
      expect(got.map((f) => [f.kind, f.stream, [...f.payload]])).toEqual([
        [FrameKind.Message, 0, [...new TextEncoder().encode('{"a":1}')]],
        [FrameKind.Data, 7, [1, 2, 3]],
        [FrameKind.Eof, 7, []],
      ]);
    }
  });
  test("a bad header is an error, not a hang", () => {
    const bad = new Uint8Array(HEADER_BYTES);
    bad[4] = 99;
    expect(() => new FrameDecoder().push(bad)).toThrow(/bad frame header/);
  });
});

describe("message schemas", () => {
  test("every call has a request and a result schema; envelopes validate", () => {
    for (const [op, c] of Object.entries(Calls)) {
      expect(c.request).toBeDefined();
      expect(c.result).toBeDefined();
      expect(Envelope.safeParse({ t: "req", req: 1, op, args: {} }).success).toBe(true);
    }
    expect(Envelope.safeParse({ t: "req", req: 1, op: "nope", args: {} }).success).toBe(false);
    expect(Envelope.safeParse({ t: "event", event: "exit", id: "c", status: 137 }).success).toBe(true);
    expect(Envelope.safeParse({ t: "event", event: "exit", id: "c" }).success).toBe(false);
    const log = { t: "event", event: "log", level: "warning", message: "m" };
    expect(Envelope.safeParse(log).success).toBe(true);
    expect(Envelope.safeParse({ ...log, level: "debug" }).success).toBe(true);
    expect(Envelope.safeParse({ ...log, level: "info" }).success).toBe(false);
  });
});

describe("channel", () => {
  test("calls, errors, invalid requests, events", async () => {
    const [a, b, close] = await pair();
    b.onRequest = async (op, args) => {
      if (op === "signal") throw new Error("no such process");
      return { version: 1, kernel: `k-${(args as { version: number }).version}`, agentPid: 1 };
    };
    expect(await a.call("hello", { version: 1 })).toEqual({ version: 1, kernel: "k-1", agentPid: 1 });
    await expect(a.call("signal", { id: "c", signal: 15 })).rejects.toThrow("no such process");
    await expect(a.call("signal", { id: "", signal: 15 } as never)).rejects.toThrow(/invalid request/);
    const ev = new Promise((r) => {
      a.onEvent = r;
    });
    await b.sendEvent({ t: "event", event: "exit", id: "c", status: 7 });
    expect(await ev).toEqual({ t: "event", event: "exit", id: "c", status: 7 });
    a.close();
    b.close();
    close();
  });

  test("20 MB over a stream intact, with a slow consumer (back-pressure)", async () => {
    const [a, b, close] = await pair();
    const data = new Uint8Array(20 * 1024 * 1024).map((_, i) => (i * 7 + (i >> 11)) & 0xff);
    const h = createHash("sha256");
    let n = 0;
    const done = new Promise<void>((resolve) => {
      b.onStream(
        5,
        (chunk) => {
          h.update(chunk);
          n += chunk.length;
          return n % (1024 * 1024) < 65536 ? Bun.sleep(1) : undefined;
        },
        resolve,
      );
    });
    await a.sendData(5, data);
    await a.sendEof(5);
    await done;
    expect(n).toBe(data.length);
    expect(h.digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
    a.close();
    b.close();
    close();
  }, 60_000);

  test("a stalled stream holds only itself: calls, events and other streams go on, within one window", async () => {
    const [a, b, close] = await pair();
    b.onRequest = async () => ({ processes: [] });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let got5 = 0;
    let ended = false;
    const all5 = new Promise<void>((resolve) => {
      b.onStream(
        5,
        (chunk) => {
          got5 += chunk.length;
          return gate; // a reader that does not read yet (stdin before start)
        },
        () => {
          ended = true;
          resolve();
        },
      );
    });
    const six: number[] = [];
    b.onStream(6, (chunk) => {
      six.push(chunk.length);
      return undefined;
    });
    const big = new Uint8Array(4 * 1024 * 1024).fill(7);
    let sent = false;
    const sending = a.sendData(5, big).then(() => {
      sent = true;
    });
    // Queued behind the data at the sender, and behind the handler at the receiver.
    const eofSent = a.sendEof(5);
    await Bun.sleep(200);
    // The sender stopped at the window; the handler has had the first frame only, the
    // rest of the window waits behind it in the receiver (bounded by the window).
    expect(sent).toBe(false);
    expect(got5).toBe(DATA_CHUNK);
    expect(await a.call("ps", { id: "x" }, 2_000)).toEqual({ processes: [] });
    const ev = new Promise((r) => {
      a.onEvent = r;
    });
    await b.sendEvent({ t: "event", event: "exit", id: "c", status: 0 });
    expect(await within(2_000, ev)).toBe(true);
    await a.sendData(6, new Uint8Array(1000));
    await Bun.sleep(50);
    expect(six).toEqual([1000]);
    expect(ended).toBe(false);
    release();
    await sending;
    await eofSent;
    await all5;
    expect(got5).toBe(big.length);
    a.close();
    b.close();
    close();
  }, 30_000);

  test("two concurrent sendData calls on one stream, past two windows: in order, both resolve", async () => {
    // The hub relaying an exec's output to a slow reader calls sendData per frame.
    const [a, b, close] = await pair();
    const first = new Uint8Array(3 * STREAM_WINDOW).fill(1);
    const second = new Uint8Array(2 * STREAM_WINDOW + 1000).fill(2);
    const got: Uint8Array[] = [];
    const ended = new Promise<void>((resolve) => {
      b.onStream(
        5,
        (chunk) => {
          got.push(chunk);
          return Bun.sleep(2);
        },
        resolve,
      );
    });
    const sends = Promise.all([a.sendData(5, first), a.sendData(5, second)]);
    const arrived = sends.then(() => a.sendEof(5)).then(() => ended);
    expect(await within(10_000, arrived)).toBe(true);
    const all = Buffer.concat(got);
    expect(all.length).toBe(first.length + second.length);
    expect(all.equals(Buffer.concat([first, second]))).toBe(true);
    a.close();
    b.close();
    close();
  }, 30_000);

  test("a slow async handler sees a stream's frames one at a time, in order, EOF after the last", async () => {
    const [a, b, close] = await pair();
    const frames = 6;
    const data = new Uint8Array(frames * DATA_CHUNK).map((_, i) => Math.floor(i / DATA_CHUNK));
    const seen: number[] = [];
    let busy = 0;
    let most = 0;
    const ended = new Promise<number>((resolve) => {
      b.onStream(
        5,
        async (chunk) => {
          busy++;
          most = Math.max(most, busy);
          // Earlier frames take longer: handlers run side by side would finish reversed.
          await Bun.sleep((frames - (chunk[0] ?? 0)) * 5);
          seen.push(chunk[0] ?? -1);
          busy--;
        },
        () => resolve(seen.length),
      );
    });
    await a.sendData(5, data);
    await a.sendEof(5);
    expect(await ended).toBe(frames);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
    expect(most).toBe(1);
    a.close();
    b.close();
    close();
  });

  test("closing rejects every send queued on a stream, not only the one waiting for credit", async () => {
    const [a, b, close] = await pair();
    b.onStream(5, () => new Promise(() => {}));
    const results: string[] = [];
    const note = (p: Promise<void>) =>
      p.then(
        () => "sent",
        (err: Error) => err.constructor.name,
      );
    const first = note(a.sendData(5, new Uint8Array(2 * STREAM_WINDOW)));
    const second = note(a.sendData(5, new Uint8Array(1000)));
    await Bun.sleep(100);
    a.close();
    const both = Promise.all([first, second]).then((r) => results.push(...r));
    expect(await within(2_000, both)).toBe(true);
    expect(results).toEqual(["ChannelClosedError", "ChannelClosedError"]);
    b.close();
    close();
  });

  test("a connection that ends while a handler is busy: the EOF comes after the frames queued", async () => {
    const [a, b, close] = await pair();
    let handled = 0;
    const atEof = new Promise<number>((resolve) => {
      b.onStream(
        5,
        async () => {
          await Bun.sleep(20);
          handled++;
        },
        () => resolve(handled),
      );
    });
    await a.sendData(5, new Uint8Array(3 * DATA_CHUNK));
    await Bun.sleep(5);
    a.close();
    expect(await atEof).toBe(3);
    close();
  });

  test("after resetInput, bytes of the old peer still being handled are not credited to the new", async () => {
    let receive: (chunk: Uint8Array) => void = () => {};
    const credits: number[] = [];
    const ch = new Channel({
      write: async (bytes) => {
        for (const f of new FrameDecoder().push(bytes)) {
          if (f.kind === FrameKind.Credit) credits.push(new DataView(f.payload.buffer).getUint32(0));
        }
      },
      start: (onChunk) => {
        receive = onChunk;
      },
      close: () => {},
    });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    ch.onStream(5, (data) => (data.length === 100 ? gate : undefined));
    receive(encodeFrame(FrameKind.Data, 5, new Uint8Array(100)));
    ch.resetInput();
    receive(encodeFrame(FrameKind.Data, 5, new Uint8Array(10)));
    release();
    await Bun.sleep(10);
    // The new peer's window started afresh: a credit for the old 100 bytes would overfill it.
    expect(credits).toEqual([10]);
    ch.close();
  });

  test("a peer that sends past a stream's window is cut off (bounded memory)", async () => {
    const [a, b, close] = await pair();
    let closedWith: Error | undefined;
    b.onClose = (err) => {
      closedWith = err;
    };
    b.onStream(9, () => new Promise(() => {}));
    // Raw frames, ignoring credit: what a broken or hostile peer would do.
    const raw = (a as unknown as { send(bytes: Uint8Array): Promise<void> }).send.bind(a);
    for (let i = 0; i <= STREAM_WINDOW / 65536; i++)
      await raw(encodeFrame(FrameKind.Data, 9, new Uint8Array(65536)));
    for (let i = 0; i < 50 && !closedWith; i++) await Bun.sleep(10);
    expect(closedWith?.message).toMatch(/stream 9 sent past its window/);
    a.close();
    close();
  });

  test("a closed connection rejects pending calls", async () => {
    const [a, b, close] = await pair();
    b.onRequest = () => new Promise(() => {});
    const p = a.call("ps", { id: "x" });
    b.close();
    await expect(p).rejects.toThrow();
    close();
  });
});
