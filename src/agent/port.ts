/**
 * The agent's end of the channel: the virtio-serial port named "agent". One read-write
 * fd is kept open for the whole boot (reopening it would lose what the host sent in
 * between). Without udev there is no /dev/virtio-ports/ symlink, so the port is found
 * by its name in sysfs.
 */
import { openSync, read, readdirSync, readFileSync, write } from "node:fs";
import type { Transport } from "../protocol/channel.ts";

export const PORT_NAME = "agent";
const PORT_WAIT_MS = 30_000;
/** A read of 0 bytes means no host is connected yet: poll again after this long. */
const HOST_POLL_MS = 20;

export async function findPort(name = PORT_NAME): Promise<string> {
  const deadline = Date.now() + PORT_WAIT_MS;
  for (;;) {
    try {
      for (const dev of readdirSync("/sys/class/virtio-ports")) {
        if (readFileSync(`/sys/class/virtio-ports/${dev}/name`, "utf8").trim() === name) return `/dev/${dev}`;
      }
    } catch {
      // sysfs entry not there yet: the virtio console driver is still probing.
    }
    if (Date.now() > deadline) throw new Error(`agent: no virtio-serial port named "${name}"`);
    await Bun.sleep(10);
  }
}

function readOnce(fd: number, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function writeAll(fd: number, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number) =>
      write(fd, chunk, off, chunk.length - off, null, (err, n) => {
        if (err) reject(err);
        else if (off + n < chunk.length) step(off + n);
        else resolve();
      });
    step(0);
  });
}

/** A Transport over the port; `onReconnect` is told when a new host connection may have begun. */
export function portTransport(path: string, onReconnect: () => void): Transport {
  const fd = openSync(path, "r+");
  let paused = false;
  let wake: (() => void) | undefined;
  return {
    write: (chunk) => writeAll(fd, chunk),
    start(onChunk, onEnd) {
      const loop = async () => {
        const buf = Buffer.allocUnsafe(256 * 1024);
        let idle = false;
        for (;;) {
          if (paused) await new Promise<void>((r) => (wake = r));
          let n: number;
          try {
            n = await readOnce(fd, buf);
          } catch (err) {
            onEnd(err as Error);
            return;
          }
          if (n === 0) {
            if (!idle) onReconnect();
            idle = true;
            await Bun.sleep(HOST_POLL_MS);
            continue;
          }
          idle = false;
          onChunk(new Uint8Array(buf.subarray(0, n)));
        }
      };
      void loop();
    },
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
      wake?.();
      wake = undefined;
    },
    close: () => {},
  };
}
