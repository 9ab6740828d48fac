import { describe, expect, test } from "bun:test";
import { closeSync, readlinkSync, readSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { cstr, libc, SysError, sysError } from "../../src/sys/libc.ts";
import { getWinsize, openPty, setRaw, setWinsize, termiosFlags } from "../../src/sys/pty.ts";
import { spawnWithParentDeath } from "../../src/sys/spawn.ts";
import { ROOT_DIR, tempDir } from "../lib/cli.ts";

const F_GETFD = 1;
const FD_CLOEXEC = 1;
// termios flag bits (<asm-generic/termbits.h>)
const ISIG = 0o1;
const ICANON = 0o2;
const ECHO = 0o10;
const OPOST = 0o1;
const ICRNL = 0o400;

function pipe(): [number, number] {
  const b = Buffer.alloc(8);
  if (libc().pipe2(b, 0o2000000) !== 0) throw sysError("pipe2");
  return [b.readInt32LE(0), b.readInt32LE(4)];
}

/** Writes bytes given as a latin1 string. */
function put(fd: number, s: string): void {
  writeSync(fd, Buffer.from(s, "latin1"));
}

/** Reads exactly n bytes (blocking fd: only call when they were written). */
function readN(fd: number, n: number): string {
  const b = Buffer.alloc(n);
  let got = 0;
  while (got < n) got += readSync(fd, b, got, n - got, null);
  return b.toString("latin1");
}

describe("libc errors", () => {
  test("sysError reports the errno of the failed call", () => {
    expect(libc().open(cstr("/nonexistent/x"), 0, 0)).toBe(-1);
    const e = sysError("open", "/nonexistent/x");
    expect(e).toBeInstanceOf(SysError);
    expect(e.code).toBe("ENOENT");
    expect(e.errno).toBe(2);
    expect(e.message).toBe("/nonexistent/x: open: No such file or directory (ENOENT)");
  });
});

describe("openPty", () => {
  test("opens a master/slave pair that carries data both ways", () => {
    const p = openPty();
    try {
      expect(p.slaveName).toMatch(/^\/dev\/pts\/\d+$/);
      expect(readlinkSync(`/proc/self/fd/${p.master}`)).toBe("/dev/ptmx");
      expect(readlinkSync(`/proc/self/fd/${p.slave}`)).toBe(p.slaveName);
      // The master is close-on-exec, the slave is not (it is meant to be handed down).
      expect(libc().fcntl(p.master, F_GETFD, 0) & FD_CLOEXEC).toBe(FD_CLOEXEC);
      expect(libc().fcntl(p.slave, F_GETFD, 0) & FD_CLOEXEC).toBe(0);
      put(p.master, "ping\n");
      expect(readN(p.slave, 5)).toBe("ping\n");
      expect(readN(p.master, 6)).toBe("ping\r\n"); // cooked mode: echo, with ONLCR
      put(p.slave, "pong\n");
      expect(readN(p.master, 6)).toBe("pong\r\n");
    } finally {
      closeSync(p.master);
      closeSync(p.slave);
    }
  });

  test("each call gives a new pty", () => {
    const a = openPty();
    const b = openPty();
    expect(a.slaveName).not.toBe(b.slaveName);
    for (const fd of [a.master, a.slave, b.master, b.slave]) closeSync(fd);
  });

  test("O_NOCTTY: a session leader without a terminal does not acquire the pty", async () => {
    const dir = tempDir();
    const script = join(dir, "noctty.ts");
    writeFileSync(
      script,
      `import { openPty } from ${JSON.stringify(join(ROOT_DIR, "src/sys/pty.ts"))};
       import { readFileSync } from "node:fs";
       const field = (n: number) => readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ")[n];
       const before = [field(3), field(4)]; // session, tty_nr
       const p = openPty();
       console.log(JSON.stringify({ pid: process.pid, session: before[0], ttyBefore: before[1], ttyAfter: field(4), name: p.slaveName }));`,
    );
    const out = join(dir, "out");
    const fd = (await import("node:fs")).openSync(out, "w");
    // spawnWithParentDeath makes the child a session leader with no controlling terminal.
    const child = spawnWithParentDeath([process.execPath, script], { stdio: ["ignore", fd, "inherit"] });
    closeSync(fd);
    expect(await child.exited).toBe(0);
    const r = JSON.parse(await Bun.file(out).text());
    expect(r.session).toBe(String(r.pid));
    expect(r.ttyBefore).toBe("0");
    expect(r.ttyAfter).toBe("0");
  });
});

describe("window size", () => {
  test("set on the master, read on both sides", () => {
    const p = openPty();
    try {
      expect(getWinsize(p.slave)).toEqual({ rows: 0, cols: 0 });
      setWinsize(p.master, 40, 132);
      expect(getWinsize(p.slave)).toEqual({ rows: 40, cols: 132 });
      expect(getWinsize(p.master)).toEqual({ rows: 40, cols: 132 });
      setWinsize(p.slave, 65535, 1);
      expect(getWinsize(p.master)).toEqual({ rows: 65535, cols: 1 });
    } finally {
      closeSync(p.master);
      closeSync(p.slave);
    }
  });

  test("not a terminal: undefined on get, ENOTTY on set; bad sizes refused", () => {
    const [r, w] = pipe();
    try {
      expect(getWinsize(r)).toBeUndefined();
      expect(getWinsize(9999)).toBeUndefined();
      expect(() => setWinsize(w, 24, 80)).toThrow(/ENOTTY/);
      expect(() => setWinsize(w, -1, 80)).toThrow(RangeError);
      expect(() => setWinsize(w, 24, 70000)).toThrow(RangeError);
      expect(() => setWinsize(w, 24.5, 80)).toThrow(RangeError);
    } finally {
      closeSync(r);
      closeSync(w);
    }
  });
});

describe("setRaw", () => {
  test("no echo, no line discipline, no output translation", () => {
    const p = openPty();
    try {
      const before = termiosFlags(p.slave);
      expect(before.lflag & (ECHO | ICANON | ISIG)).toBe(ECHO | ICANON | ISIG);
      setRaw(p.slave);
      const after = termiosFlags(p.slave);
      expect(after.lflag & (ECHO | ICANON | ISIG)).toBe(0);
      expect(after.oflag & OPOST).toBe(0);
      expect(after.iflag & ICRNL).toBe(0);
      // Output passes unchanged (no \n -> \r\n) ...
      put(p.slave, "a\nb\r\x00\xff");
      expect(readN(p.master, 6)).toBe("a\nb\r\x00\xff");
      // ... input is readable byte by byte, without a newline, and is not echoed back.
      put(p.master, "x\x03\ry");
      expect(readN(p.slave, 4)).toBe("x\x03\ry");
      put(p.slave, "!");
      expect(readN(p.master, 1)).toBe("!");
    } finally {
      closeSync(p.master);
      closeSync(p.slave);
    }
  });

  test("refuses a non-terminal", () => {
    const [r, w] = pipe();
    expect(() => setRaw(r)).toThrow(/tcgetattr.*ENOTTY/);
    closeSync(r);
    closeSync(w);
  });
});
