import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { Channel } from "../../src/protocol/channel.ts";
import {
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
    expect(Envelope.safeParse({ ...log, level: "debug" }).success).toBe(false);
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

  test("a stalled stream holds only itself: calls and other streams go on, within one window", async () => {
    const [a, b, close] = await pair();
    b.onRequest = async () => ({ processes: [] });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let got5 = 0;
    const all5 = new Promise<void>((resolve) => {
      b.onStream(
        5,
        (chunk) => {
          got5 += chunk.length;
          return gate; // a reader that does not read yet (stdin before start)
        },
        resolve,
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
    await Bun.sleep(200);
    // The sender stopped at the window: the receiver holds at most STREAM_WINDOW bytes.
    expect(sent).toBe(false);
    expect(got5).toBe(STREAM_WINDOW);
    expect(await a.call("ps", { id: "x" }, 2_000)).toEqual({ processes: [] });
    await a.sendData(6, new Uint8Array(1000));
    await Bun.sleep(50);
    expect(six).toEqual([1000]);
    release();
    await sending;
    await a.sendEof(5);
    await all5;
    expect(got5).toBe(big.length);
    a.close();
    b.close();
    close();
  }, 30_000);

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
