/**
 * The host end of the DNS relay (protocol `dns`). Docker's embedded DNS server for
 * user-defined networks listens in the container's network namespace on 127.0.0.11 (iptables
 * there send port 53 to it), and resolv.conf names 127.0.0.11: the guest cannot reach a
 * loopback address of the host side. So the agent answers on that address in the guest and
 * hands each query here; the stand-in, which lives in the container's namespace, asks the
 * server there, as the container would have. UDP only (what resolvers use first; an answer
 * too big for it comes back truncated and a TCP retry fails).
 */
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { GUEST_SHARE } from "../protocol/guest-layout.ts";

const DNS_PORT = 53;
const ANSWER_MS = 5_000;

/** One query to `server` (an address in this namespace), its answer. */
export function askDns(server: string, query: Buffer): Promise<Buffer> {
  const family = isIP(server);
  if (family === 0) return Promise.reject(new Error(`dns relay: ${server} is not an address`));
  const sock = createSocket(family === 6 ? "udp6" : "udp4");
  return new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`dns relay: no answer from ${server} within ${ANSWER_MS} ms`)),
      ANSWER_MS,
    );
    sock.once("message", (msg) => {
      clearTimeout(timer);
      resolve(msg);
    });
    sock.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.send(query, DNS_PORT, server);
  }).finally(() => sock.close());
}

/**
 * The loopback name servers of the container's resolv.conf: the file bound over
 * /etc/resolv.conf (Docker's, podman's), else the rootfs's own. `shared` is the host
 * directory the guest sees as GUEST_SHARE.
 */
export function loopbackNameServers(shared: string, guestConfig: Record<string, unknown>): string[] {
  const mounts = (guestConfig.mounts ?? []) as { destination?: string; source?: string }[];
  const bound = mounts.find((m) => m.destination === "/etc/resolv.conf")?.source;
  const file = bound?.startsWith(`${GUEST_SHARE}/`)
    ? join(shared, bound.slice(GUEST_SHARE.length + 1))
    : join(shared, "rootfs", "etc", "resolv.conf");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)]
    .map((m) => m[1] as string)
    .filter((a) => /^127\./.test(a) || a === "::1");
}
