/**
 * What the guest needs to take over a container's network: the stand-in scans its network
 * namespace (where the manager put a veth with addresses) and the agent applies each
 * interface to a guest NIC. Both ends are here so that they stay one format.
 */
import type { Family } from "./inet.ts";
import { type Netlink, withNetlink } from "./netlink.ts";
import { addAddress, dumpAddresses } from "./netlink-addr.ts";
import { dumpLinks, setLink } from "./netlink-link.ts";
import { addRoute, dumpRoutes, type Route } from "./netlink-route.ts";

export interface GuestInterface {
  /** The link's name in the container's namespace (the veth, which the tap is joined to). */
  name: string;
  mac: string;
  mtu: number;
  addresses: { family: Family; address: string; prefixLength: number }[];
  /** Routes through this link, those of scope link first (a gateway must be reachable when added). */
  routes: Omit<Route, "index">[];
}

/**
 * Every link that carries addresses, loopback excepted, with its routes. Left out, since
 * the guest's kernel makes its own from the same MAC: IPv6 link-local addresses and the
 * fe80::/10 routes. Links without a MAC (layer 3 devices: a tap redirect cannot carry
 * them) are left out too. The kernel's own prefix routes are kept, with their source and
 * metric: the guest adds them again as they are (addRoute replaces).
 */
export function scanInterfaces(nl?: Netlink): GuestInterface[] {
  return withNetlink((s) => {
    const addresses = dumpAddresses(s).filter((a) => !(a.family === 6 && a.scope === "link"));
    const routes = dumpRoutes(s).filter((r) => !(r.family === 6 && isLinkLocal6(r.dst)));
    return dumpLinks(s).flatMap((link) => {
      const own = addresses.filter((a) => a.index === link.index);
      if (link.loopback || !link.mac || own.length === 0) return [];
      const through = routes.filter((r) => r.index === link.index);
      return [
        {
          name: link.name,
          mac: link.mac,
          mtu: link.mtu,
          addresses: own.map(({ family, address, prefixLength }) => ({ family, address, prefixLength })),
          routes: [...through.filter((r) => !r.gateway), ...through.filter((r) => r.gateway)].map(
            ({ index: _, ...r }) => r,
          ),
        },
      ];
    });
  }, nl);
}

/**
 * The guest side: gives the link called name (the guest's virtio-net NIC, which QEMU backs
 * with the tap) the scanned interface, in the order the kernel needs: MAC and MTU while
 * down, up (an IPv4 route needs its link up), addresses, then routes.
 */
export function configureInterface(name: string, iface: GuestInterface, nl?: Netlink): void {
  withNetlink((s) => {
    setLink(name, { up: false }, s);
    setLink(name, { mac: iface.mac, mtu: iface.mtu, up: true }, s);
    for (const a of iface.addresses) addAddress(name, a, s);
    for (const r of iface.routes) addRoute(name, r, s);
  }, nl);
}

/** A destination inside fe80::/10. */
function isLinkLocal6(dst: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(dst);
}
