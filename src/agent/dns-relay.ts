/**
 * The guest end of the DNS relay (standin/dns-relay.ts): answers on a loopback name server
 * address of the container's resolv.conf by handing each query to the stand-in.
 */
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { errorMessage } from "../errors.ts";
import type { Channel } from "../protocol/channel.ts";

const DNS_PORT = 53;
const relays = new Map<string, Socket>();

export function relayDns(host: Channel, servers: string[], report: (problem: string) => void): void {
  for (const server of servers) {
    if (relays.has(server) || isIP(server) === 0) continue;
    const sock = createSocket(isIP(server) === 6 ? "udp6" : "udp4");
    sock.on("message", (query, from) => {
      host.call("dns", { server, query: query.toString("base64") }).then(
        (r) => sock.send(Buffer.from(r.answer, "base64"), from.port, from.address),
        (err) => report(`dns relay for ${server}: ${errorMessage(err)}`),
      );
    });
    sock.on("error", (err) => report(`dns relay on ${server}:${DNS_PORT}: ${errorMessage(err)}`));
    sock.bind(DNS_PORT, server);
    relays.set(server, sock);
  }
}
