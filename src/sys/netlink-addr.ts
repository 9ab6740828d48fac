/**
 * IPv4 and IPv6 addresses over rtnetlink (src/sys/netlink.ts): list them, add one, as
 * `ip addr` does.
 *
 *   struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index }  8 bytes
 */
import { afOf, type Family, familyOfAf, formatIp, parseIp } from "./inet.ts";
import {
  attr,
  type Netlink,
  NLM_F_CREATE,
  NLM_F_EXCL,
  parseAttrs,
  type Scope,
  scopeName,
  withNetlink,
} from "./netlink.ts";
import { getLink } from "./netlink-link.ts";

const RTM_NEWADDR = 20;
const RTM_GETADDR = 22;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const IFA_F_NODAD = 0x02;
const IFADDRMSG_SIZE = 8;

export interface Address {
  /** The link's index. */
  index: number;
  family: Family;
  address: string;
  prefixLength: number;
  /** "global", "link" (fe80::/10), "host" (127.0.0.1)... */
  scope: Scope;
}

function ifaddrmsg(af: number, prefixLength: number, flags: number, index: number): Buffer {
  const b = Buffer.alloc(IFADDRMSG_SIZE);
  b.writeUInt8(af, 0);
  b.writeUInt8(prefixLength, 1);
  b.writeUInt8(flags, 2);
  b.writeUInt32LE(index, 4);
  return b;
}

/** Every IPv4 and IPv6 address of this thread's network namespace. */
export function dumpAddresses(nl?: Netlink): Address[] {
  return withNetlink(
    (s) =>
      s
        .dump({ op: "list addresses", context: "netlink" }, RTM_GETADDR, [ifaddrmsg(0, 0, 0, 0)])
        .flatMap((m) => {
          const family = familyOfAf(m.body.readUInt8(0));
          if (m.type !== RTM_NEWADDR || !family) return [];
          const a = parseAttrs(m.body, IFADDRMSG_SIZE);
          // IPv4: IFA_LOCAL is the interface's address (IFA_ADDRESS the peer's on a point-to-point link).
          const bytes = (family === 4 ? a.get(IFA_LOCAL) : undefined) ?? a.get(IFA_ADDRESS);
          if (!bytes) return [];
          return [
            {
              index: m.body.readUInt32LE(4),
              family,
              address: formatIp(bytes),
              prefixLength: m.body.readUInt8(1),
              scope: scopeName(m.body.readUInt8(3)),
            },
          ];
        }),
    nl,
  );
}

/**
 * Adds address/prefixLength to the link called name (an error if it is there already).
 * IPv4 gets the prefix's broadcast address, as `ip addr add ... brd +` and the managers
 * do. IPv6 skips duplicate address detection (`nodad`): the address was assigned by the
 * container's manager, and DAD would keep it tentative, unusable, for a second or more.
 */
export function addAddress(
  name: string,
  address: { address: string; prefixLength: number },
  nl?: Netlink,
): void {
  const cidr = `${address.address}/${address.prefixLength}`;
  const ip = parseIp(address.address, `${name}: add address ${cidr}`);
  withNetlink((s) => {
    const { index } = getLink(name, s);
    const v4 = ip.family === 4;
    const parts = [
      ifaddrmsg(afOf(ip.family), address.prefixLength, v4 ? 0 : IFA_F_NODAD, index),
      attr(IFA_ADDRESS, ip.bytes),
    ];
    if (v4) {
      parts.push(attr(IFA_LOCAL, ip.bytes));
      if (address.prefixLength <= 30)
        parts.push(attr(IFA_BROADCAST, broadcast(ip.bytes, address.prefixLength)));
    }
    s.request({ op: `add address ${cidr}`, context: name }, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, parts);
  }, nl);
}

/** The IPv4 prefix's all-ones host address. */
function broadcast(bytes: Buffer, prefixLength: number): Buffer {
  const host = prefixLength === 0 ? 0xffffffff : (1 << (32 - prefixLength)) - 1;
  const b = Buffer.alloc(4);
  b.writeUInt32BE((bytes.readUInt32BE(0) | host) >>> 0, 0);
  return b;
}
