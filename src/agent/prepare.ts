/**
 * What a template's agent runs before its snapshot is taken (protocol `prepare`), so that
 * a clone's first container does not pay for it: the network path (netlink sockets, the
 * dump parsers, the schema of the `network` request) and loopback up. Measured under TCG:
 * the guest's part of a templated container's network went from ~320 ms to ~100 ms (what
 * is left is the NIC's first open and the netlink calls themselves; running those on loopback
 * too saved nothing measurable).
 */
import { Calls } from "../protocol/messages.ts";
import { withNetlink } from "../sys/netlink.ts";
import { dumpAddresses } from "../sys/netlink-addr.ts";
import { dumpLinks, setLink } from "../sys/netlink-link.ts";
import { dumpRoutes } from "../sys/netlink-route.ts";

const SAMPLE = {
  cards: [
    {
      card: 0,
      iface: {
        name: "eth0",
        mac: "02:00:00:00:00:01",
        mtu: 1500,
        addresses: [{ family: 4, address: "10.0.0.2", prefixLength: 24 }],
        routes: [{ family: 4, dst: "default", gateway: "10.0.0.1", scope: "global", protocol: 4 }],
      },
    },
  ],
  dnsRelay: [],
};

export function prepareNetwork(): void {
  withNetlink((nl) => {
    setLink("lo", { up: true }, nl);
    dumpLinks(nl);
    dumpAddresses(nl);
    dumpRoutes(nl);
  });
  Calls.network.request.parse(SAMPLE);
}
