import { describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, readlinkSync, readSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { receiveFdServer, sendFd } from "../../src/sys/fdpass.ts";
import { libc } from "../../src/sys/libc.ts";
import { openPty } from "../../src/sys/pty.ts";
import { ROOT_DIR, tempDir } from "../lib/cli.ts";

const F_GETFD = 1;
const FDPASS_TS = join(ROOT_DIR, "src/sys/fdpass.ts");

function readN(fd: number, n: number): string {
  const b = Buffer.alloc(n);
  let got = 0;
  while (got < n) got += readSync(fd, b, got, n - got, null);
  return b.toString("utf8");
}

describe("sendFd / receiveFdServer", () => {
  test("passes a pty master with its name, as --console-socket does", async () => {
    const sock = join(tempDir(), "console.sock");
    const server = receiveFdServer(sock);
    const p = openPty();
    try {
      const pending = server.accept(5000);
      sendFd(sock, p.master, p.slaveName);
      const got = await pending;
      expect(got.message).toBe(p.slaveName);
      expect(got.fd).not.toBe(p.master);
      expect(readlinkSync(`/proc/self/fd/${got.fd}`)).toBe("/dev/ptmx");
      expect(libc().fcntl(got.fd, F_GETFD, 0) & 1).toBe(1); // received close-on-exec
      // It is the same pty: what the slave writes comes out of the received fd.
      writeSync(p.slave, "hello");
      expect(readN(got.fd, 5)).toBe("hello");
      closeSync(got.fd);
    } finally {
      server.close();
      closeSync(p.master);
      closeSync(p.slave);
    }
    expect(existsSync(sock)).toBe(false); // close() removes the socket file
  });

  test("across processes, with the event loop free while waiting", async () => {
    const dir = tempDir();
    const sock = join(dir, "s.sock");
    const file = join(dir, "payload");
    writeFileSync(file, "from the child");
    const server = receiveFdServer(sock);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      const pending = server.accept(10_000);
      const child = Bun.spawn([
        process.execPath,
        "-e",
        `await Bun.sleep(300);
         const { sendFd } = await import(${JSON.stringify(FDPASS_TS)});
         const fd = require("node:fs").openSync(${JSON.stringify(file)}, "r");
         sendFd(${JSON.stringify(sock)}, fd, "payload ✓");`,
      ]);
      const got = await pending;
      expect(await child.exited).toBe(0);
      expect(ticks).toBeGreaterThan(10); // timers ran during the ~300 ms wait
      expect(got.message).toBe("payload ✓");
      expect(readlinkSync(`/proc/self/fd/${got.fd}`)).toBe(file);
      expect(readN(got.fd, 14)).toBe("from the child");
      closeSync(got.fd);
    } finally {
      clearInterval(timer);
      server.close();
    }
  });

  const python = Bun.which("python3");
  test.skipIf(!python)("interoperates with another implementation (Python's send_fds/recv_fds)", async () => {
    const dir = tempDir();
    const sock = join(dir, "py.sock");
    // Python sends, and keeps the connection open: accept must not wait for EOF.
    const server = receiveFdServer(sock);
    const pending = server.accept(10_000);
    const sender = Bun.spawn([
      python as string,
      "-c",
      `import socket, os, time
s = socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(sock)})
socket.send_fds(s, [b"/dev/pts/77"], [os.open("/etc/hostname", os.O_RDONLY)])
time.sleep(3)`,
    ]);
    try {
      const t0 = Date.now();
      const got = await pending;
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(got.message).toBe("/dev/pts/77");
      expect(readlinkSync(`/proc/self/fd/${got.fd}`)).toBe("/etc/hostname");
      closeSync(got.fd);
    } finally {
      sender.kill();
      server.close();
    }
    // Python receives what sendFd sends.
    const sock2 = join(dir, "py2.sock");
    const py = Bun.spawn(
      [
        python as string,
        "-c",
        `import socket, os
l = socket.socket(socket.AF_UNIX); l.bind(${JSON.stringify(sock2)}); l.listen(1); print("ready", flush=True)
c, _ = l.accept(); msg, fds, flags, addr = socket.recv_fds(c, 1024, 4)
print(msg.decode(), len(fds), os.readlink("/proc/self/fd/%d" % fds[0]))`,
      ],
      { stdout: "pipe" },
    );
    const p = openPty();
    try {
      const reader = py.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const r = await reader.read();
        if (r.done) break;
        text += new TextDecoder().decode(r.value);
      }
      expect(text).toBe("ready\n");
      sendFd(sock2, p.master, p.slaveName);
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        text += new TextDecoder().decode(r.value);
      }
      expect(text).toBe(`ready\n${p.slaveName} 1 /dev/ptmx\n`);
    } finally {
      py.kill();
      closeSync(p.master);
      closeSync(p.slave);
    }
  });

  test("socket paths longer than sun_path (108 bytes) work", async () => {
    const dir = join(tempDir(), "d".repeat(120));
    mkdirSync(dir);
    const sock = join(dir, "console.sock");
    const server = receiveFdServer(sock);
    try {
      const pending = server.accept(5000);
      sendFd(sock, 0, "stdin");
      const got = await pending;
      expect(got.message).toBe("stdin");
      closeSync(got.fd);
    } finally {
      server.close();
    }
  });

  test("a stale file at the path is replaced", async () => {
    const sock = join(tempDir(), "stale.sock");
    writeFileSync(sock, "old");
    const server = receiveFdServer(sock);
    const pending = server.accept(5000);
    sendFd(sock, 1, "x");
    closeSync((await pending).fd);
    server.close();
  });

  test("errors: no listener, empty message, timeout, close while waiting, no fd sent", async () => {
    const dir = tempDir();
    const sock = join(dir, "e.sock");
    expect(() => sendFd(sock, 0, "x")).toThrow(
      `send fd to ${sock}: connect: No such file or directory (ENOENT)`,
    );
    const server = receiveFdServer(sock);
    expect(() => sendFd(sock, 0, "")).toThrow(/empty message/);
    await expect(server.accept(50)).rejects.toThrow(`${sock}: timed out waiting for a connection`);

    // A client that sends data but no fd, then closes.
    const pending = server.accept(5000);
    const child = Bun.spawn([
      process.execPath,
      "-e",
      `const s = require("node:net").connect(${JSON.stringify(sock)}, () => s.end("no fd here"));`,
    ]);
    await expect(pending).rejects.toThrow(/connection closed without passing a file descriptor/);
    await child.exited;

    const waiting = server.accept(5000);
    setTimeout(() => server.close(), 20);
    await expect(waiting).rejects.toThrow(/server closed/);
    expect(existsSync(sock)).toBe(false);
    server.close(); // idempotent
  });
});
