/**
 * The agent's end of the channel: the virtio-serial port named "agent". One read-write
 * fd is kept open for the whole boot (reopening it would lose what the host sent in
 * between). Without udev there is no /dev/virtio-ports/ symlink, so the port is found
 * by its name in sysfs.
 */
import { openSync, readdirSync, readFileSync } from "node:fs";
import type { Transport } from "../protocol/channel.ts";
import { fdReader, fdWriter } from "../sys/fdstream.ts";

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

/**
 * A Transport over the port. Reads and writes are non-blocking and polled by Bun on the
 * main thread (a blocking read would hold one of Bun's few pool threads for good). With no
 * host connected a read returns 0 (EOF): the agent polls until one connects, and tells
 * `onReconnect` so that a partly received frame of the old connection is dropped.
 */
export function portTransport(path: string, onReconnect: () => void): Transport {
  const fd = openSync(path, "r+");
  let writer = fdWriter(fd, { autoClose: false });
  return {
    write: (chunk) =>
      writer.write(chunk).catch((err: Error) => {
        // A write refused while no host was connected: the next one starts afresh.
        writer = fdWriter(fd, { autoClose: false });
        throw err;
      }),
    start(onChunk) {
      const loop = async () => {
        for (;;) {
          for await (const chunk of fdReader(fd)) onChunk(chunk);
          onReconnect();
          await Bun.sleep(HOST_POLL_MS);
        }
      };
      void loop();
    },
    close: () => {},
  };
}
