/** The host side's transport: a unix stream socket (to QEMU's chardev, or to a stand-in's hub). */
import { createConnection, type Socket } from "node:net";
import type { Transport } from "./channel.ts";

export function socketTransport(sock: Socket): Transport {
  return {
    write: (chunk) =>
      new Promise<void>((resolve, reject) => {
        sock.write(chunk, (err) => (err ? reject(err) : resolve()));
      }),
    start(onChunk, onEnd) {
      sock.on("data", (b: Buffer) => onChunk(new Uint8Array(b.buffer, b.byteOffset, b.length)));
      sock.on("close", () => onEnd());
      sock.on("error", (err) => onEnd(err));
    },
    close: () => sock.destroy(),
  };
}

/** Connects once; rejects with the errno (ENOENT, ECONNREFUSED) if nobody listens. */
export function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    sock.once("connect", () => {
      sock.removeAllListeners("error");
      resolve(sock);
    });
    sock.once("error", reject);
  });
}

/** Retries until something listens at `path`, `give` says to stop, or the deadline passes. */
export async function connectUnixRetry(
  path: string,
  deadline: number,
  stillWorthIt: () => boolean = () => true,
): Promise<Socket> {
  for (;;) {
    try {
      return await connectUnix(path);
    } catch (err) {
      if (Date.now() > deadline || !stillWorthIt()) throw err;
      await Bun.sleep(20);
    }
  }
}
