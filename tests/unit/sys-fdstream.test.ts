/**
 * fdReader / fdWriter on pipes, ptys, sockets and a character device. The cases that made
 * us avoid Bun's built-ins are checked here too (see the comment of src/sys/fdstream.ts):
 * nothing may hold a thread-pool thread while waiting, and nothing may block the loop.
 */

import { dlopen, FFIType } from "bun:ffi";
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { closeSync, promises as fsp, fstatSync, openSync, readSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fdReader, fdWriter } from "../../src/sys/fdstream.ts";
import { F_GETFL, libc, O_NONBLOCK, sysError } from "../../src/sys/libc.ts";
import { openPty, setRaw } from "../../src/sys/pty.ts";
import { ROOT_DIR, tempDir } from "../lib/cli.ts";

function pipe(): [number, number] {
  const b = Buffer.alloc(8);
  if (libc().pipe2(b, 0o2000000) !== 0) throw sysError("pipe2");
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

function socketPair(): [number, number] {
  const { symbols } = dlopen("libc.so.6", {
    socketpair: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  });
  const b = Buffer.alloc(8);
  if (symbols.socketpair(1, 1 | 0o2000000, 0, b) !== 0) throw sysError("socketpair");
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

/** Deterministic, non-repeating test data. */
function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + (i >>> 11)) & 0xff;
  return b;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function readAll(fd: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of fdReader(fd)) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Writes data in pieces (subarrays, so that pointer offsets are exercised), then closes. */
async function writeAll(fd: number, data: Buffer, piece: number, opts?: { autoClose?: boolean }) {
  const w = fdWriter(fd, opts);
  for (let off = 0; off < data.length; off += piece) await w.write(data.subarray(off, off + piece));
  w.close();
}

const settled = (p: Promise<unknown>) =>
  Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), 200))]);

describe("through a pipe", () => {
  test("10 MB arrive intact, in both directions of the relay code", async () => {
    const data = pattern(10 * 1024 * 1024);
    const [r, w] = pipe();
    const [got] = await Promise.all([readAll(r), writeAll(w, data, 100_003)]);
    closeSync(r);
    expect(got.length).toBe(data.length);
    expect(sha(got)).toBe(sha(data));
  });

  test("10 MB through another process (cat) intact", async () => {
    const data = pattern(10 * 1024 * 1024);
    const [inR, inW] = pipe();
    const [outR, outW] = pipe();
    const cat = Bun.spawn(["cat"], { stdin: inR, stdout: outW });
    closeSync(inR);
    closeSync(outW);
    const [got] = await Promise.all([readAll(outR), writeAll(inW, data, 1 << 20)]);
    closeSync(outR);
    expect(await cat.exited).toBe(0);
    expect(sha(got)).toBe(sha(data));
  });

  test("timers keep running while a read is pending; EOF ends the iteration", async () => {
    const [r, w] = pipe();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    setTimeout(() => writeSync(w, "late"), 300);
    setTimeout(() => closeSync(w), 350);
    const got = await readAll(r);
    clearInterval(timer);
    closeSync(r);
    expect(got.toString()).toBe("late");
    expect(ticks).toBeGreaterThanOrEqual(20);
  });

  test("pending reads do not hold Bun's thread pool (fs.promises still works)", async () => {
    const pipes = Array.from({ length: 8 }, pipe);
    const readers = pipes.map(([r]) => fdReader(r));
    const pending = readers.map((rd) => rd[Symbol.asyncIterator]().next());
    await Bun.sleep(50);
    const file = join(tempDir(), "f");
    writeFileSync(file, "still works");
    // With fs.read-based readers the pool threads would all be blocked: readFile would hang.
    const read = fsp.readFile(file, "utf8");
    expect(await Promise.race([read, Bun.sleep(2000).then(() => "stuck")])).toBe("still works");
    for (const rd of readers) rd.cancel();
    for (const p of pending) expect((await p).done).toBe(true);
    for (const [r, w] of pipes) {
      closeSync(r);
      closeSync(w);
    }
  });

  test("cancel() ends a pending read and leaves the fd open", async () => {
    const [r, w] = pipe();
    const rd = fdReader(r);
    setTimeout(() => rd.cancel(), 50);
    const chunks: Uint8Array[] = [];
    for await (const c of rd) chunks.push(c);
    expect(chunks.length).toBe(0);
    writeSync(w, "x");
    const b = Buffer.alloc(1);
    expect(readSync(r, b)).toBe(1);
    closeSync(r);
    closeSync(w);
  });

  test("reading applies back-pressure: a writer blocks while the consumer does not pull", async () => {
    const [r, w] = pipe();
    const head = Bun.spawn(["head", "-c", String(8 << 20), "/dev/zero"], { stdout: w });
    closeSync(w);
    const it = fdReader(r)[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    await Bun.sleep(300);
    expect(head.exitCode).toBeNull(); // 8 MB do not fit in the pipe: nobody read them ahead
    let total = 0;
    for (let x = await it.next(); !x.done; x = await it.next()) total += x.value.length;
    expect(await head.exited).toBe(0);
    expect(total).toBeGreaterThan((8 << 20) - 300_000);
    closeSync(r);
  });

  test("writing applies back-pressure; EPIPE rejects this and later writes", async () => {
    const [r, w] = pipe();
    const wr = fdWriter(w);
    const big = wr.write(pattern(1 << 20));
    expect(await settled(big)).toBe(false); // a 64 KiB pipe cannot take 1 MiB
    let n = 0;
    for await (const c of fdReader(r)) {
      n += c.length;
      if (n >= 1 << 20) break;
    }
    expect(await settled(big)).toBe(true);
    closeSync(r);
    // Bun closes its own dup of the read end a few milliseconds after the loop is left:
    // until then the pipe still has a reader and small writes succeed.
    let e: NodeJS.ErrnoException | undefined;
    for (const end = Date.now() + 2000; !e && Date.now() < end; ) {
      e = await wr.write(Buffer.from("x")).then(
        () => undefined,
        (err) => err,
      );
    }
    expect(e?.code).toBe("EPIPE");
    await expect(wr.write(Buffer.from("y"))).rejects.toMatchObject({ code: "EPIPE" });
    wr.close();
  }, 10_000);

  test("a reader that closes early: later writes reject, and the writer lives on", async () => {
    // FileSink's own write promise used to be left unhandled: its EPIPE ended the process.
    const child = Bun.spawn(
      [
        process.execPath,
        "-e",
        `const { fdWriter } = await import(${JSON.stringify(join(ROOT_DIR, "src/sys/fdstream.ts"))});
       const w = fdWriter(1);
       let failed = 0;
       for (let i = 0; i < 300; i++) {
         await w.write(Buffer.alloc(1 + ((i * 7919) % 65536), 65)).catch(() => failed++);
         if (i % 10 === 0) await Bun.sleep(1);
       }
       await Bun.sleep(100);
       process.stderr.write("rejected " + failed + "\\n");`,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await reader.cancel();
    const code = await child.exited;
    const stderr = await new Response(child.stderr).text();
    expect(stderr).toMatch(/^rejected \d+\n$/);
    expect(code).toBe(0);
    expect(Number(/rejected (\d+)/.exec(stderr)?.[1])).toBeGreaterThan(250);
  }, 20_000);
});

describe("through a pty", () => {
  test("1 MB round trip through cat on the slave, raw mode", async () => {
    const p = openPty();
    setRaw(p.slave);
    const cat = Bun.spawn(["cat"], { stdin: p.slave, stdout: p.slave, stderr: "ignore" });
    closeSync(p.slave);
    const data = pattern(1 << 20);
    const wr = fdWriter(p.master, { autoClose: false });
    expect(libc().fcntl(p.master, F_GETFL, 0) & O_NONBLOCK).toBe(O_NONBLOCK);
    const writing = (async () => {
      for (let off = 0; off < data.length; off += 4096) await wr.write(data.subarray(off, off + 4096));
    })();
    const chunks: Uint8Array[] = [];
    let n = 0;
    for await (const c of fdReader(p.master)) {
      chunks.push(c);
      n += c.length;
      if (n >= data.length) break;
    }
    await writing;
    expect(sha(Buffer.concat(chunks))).toBe(sha(data));
    cat.kill();
    await cat.exited;
    closeSync(p.master);
  });

  test("the master reads all output of a program, then ends (EIO) when it exits", async () => {
    const p = openPty();
    setRaw(p.slave);
    const dir = tempDir();
    const script = join(dir, "out.sh");
    writeFileSync(script, "head -c 200000 /dev/zero | tr '\\0' 'z'; printf END\n");
    const sh = Bun.spawn(["sh", script], { stdin: "ignore", stdout: p.slave, stderr: p.slave });
    closeSync(p.slave);
    const got = await readAll(p.master); // ends without throwing
    expect(await sh.exited).toBe(0);
    expect(got.length).toBe(200_003);
    expect(got.subarray(-3).toString()).toBe("END");
    closeSync(p.master);
  });

  test("writing to a full pty does not block the event loop; the slave reads it all", async () => {
    const p = openPty();
    setRaw(p.slave);
    const wr = fdWriter(p.master, { autoClose: false });
    const data = pattern(256 * 1024);
    const done = wr.write(data);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    expect(await settled(done)).toBe(false); // nobody reads the slave: EAGAIN, waiting
    expect(ticks).toBeGreaterThanOrEqual(10);
    const [got] = await Promise.all([
      (async () => {
        const chunks: Uint8Array[] = [];
        let n = 0;
        for await (const c of fdReader(p.slave)) {
          chunks.push(c);
          n += c.length;
          if (n >= data.length) break;
        }
        return Buffer.concat(chunks);
      })(),
      done,
    ]);
    clearInterval(timer);
    expect(sha(got)).toBe(sha(data));
    closeSync(p.slave);
    // With the slave closed, writing from the slave side would fail; the master side gets EIO on read.
    closeSync(p.master);
  });

  test("a write error (EIO on a slave whose master is closed) rejects", async () => {
    const p = openPty();
    closeSync(p.master);
    const wr = fdWriter(p.slave);
    await expect(wr.write(Buffer.from("x"))).rejects.toMatchObject({ code: "EIO" });
    wr.close();
    expect(() => fstatSync(p.slave)).toThrow(/EBADF/); // autoClose
  });
});

describe("other fd types", () => {
  test("socketpair, both ways", async () => {
    const [a, b] = socketPair();
    const data = pattern(3 << 20);
    const [got] = await Promise.all([readAll(b), writeAll(a, data, 65_536)]);
    expect(sha(got)).toBe(sha(data));
    closeSync(b);
  });

  test("a character device that is not a tty (/dev/kmsg) is read without blocking", async () => {
    let fd: number;
    try {
      fd = openSync("/dev/kmsg", "r");
    } catch {
      return; // not readable here
    }
    const rd = fdReader(fd);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    setTimeout(() => rd.cancel(), 300);
    let n = 0;
    for await (const c of rd) n += c.length;
    clearInterval(timer);
    expect(n).toBeGreaterThan(0); // the kernel log so far
    expect(ticks).toBeGreaterThanOrEqual(15); // and then waited for more without blocking
    closeSync(fd);
  });

  test("a process using them exits on its own when done (no handle left behind)", async () => {
    const child = Bun.spawn(
      [
        process.execPath,
        "-e",
        `const { fdReader, fdWriter } = await import(${JSON.stringify(join(ROOT_DIR, "src/sys/fdstream.ts"))});
       const { openPty } = await import(${JSON.stringify(join(ROOT_DIR, "src/sys/pty.ts"))});
       const p = openPty();
       const w = fdWriter(p.slave);
       await w.write(Buffer.from("bye"));
       w.close();
       let s = ""; for await (const c of fdReader(p.master)) s += Buffer.from(c); console.log(s);`,
      ],
      { stdout: "pipe" },
    );
    const t0 = Date.now();
    expect(await child.exited).toBe(0);
    expect(await new Response(child.stdout).text()).toBe("bye\n");
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
