/**
 * Links over rtnetlink (src/sys/netlink.ts): list them, find one by name, and set its MAC,
 * MTU and state, as `ip link` does.
 *
 *   struct ifinfomsg { u8 family; u8 pad; u16 type; i32 index; u32 flags; u32 change }  16 bytes
 */
import { formatMac, parseMac } from "./inet.ts";
import {
  attr,
  attrString,
  type Netlink,
  type NlMessage,
  parseAttrs,
  strAttr,
  u32Attr,
  withNetlink,
} from "./netlink.ts";

const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_SETLINK = 19;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;
const IFINFOMSG_SIZE = 16;

export interface Link {
  index: number;
  name: string;
  /** The driver's kind: "veth", "tun" (taps too), "bridge"...; undefined for a physical NIC and loopback. */
  kind?: string;
  /** Undefined for a link with no link-layer address. */
  mac?: string;
  mtu: number;
  /** Administratively up (IFF_UP), whether or not it has a carrier. */
  up: boolean;
  loopback: boolean;
}

export interface LinkSettings {
  mac?: string;
  mtu?: number;
  up?: boolean;
}

function ifinfomsg(index = 0, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(IFINFOMSG_SIZE);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

function toLink(m: NlMessage): Link | undefined {
  if (m.type !== RTM_NEWLINK) return undefined;
  const flags = m.body.readUInt32LE(8);
  const a = parseAttrs(m.body, IFINFOMSG_SIZE);
  const info = a.get(IFLA_LINKINFO);
  const mac = a.get(IFLA_ADDRESS);
  return {
    index: m.body.readInt32LE(4),
    name: attrString(a.get(IFLA_IFNAME)) ?? "",
    kind: info ? attrString(parseAttrs(info).get(IFLA_INFO_KIND)) : undefined,
    mac: mac?.length === 6 ? formatMac(mac) : undefined,
    mtu: a.get(IFLA_MTU)?.readUInt32LE(0) ?? 0,
    up: (flags & IFF_UP) !== 0,
    loopback: (flags & IFF_LOOPBACK) !== 0,
  };
}

/** Every link of this thread's network namespace. */
export function dumpLinks(nl?: Netlink): Link[] {
  return withNetlink(
    (s) =>
      s
        .dump({ op: "list links", context: "netlink" }, RTM_GETLINK, [ifinfomsg()])
        .flatMap((m) => toLink(m) ?? []),
    nl,
  );
}

/** The link called name; an error naming it (ENODEV) when there is none. */
export function getLink(name: string, nl?: Netlink): Link {
  return withNetlink((s) => {
    const what = { op: "get link", context: name };
    const link = toLink(s.get(what, RTM_GETLINK, [ifinfomsg(), strAttr(IFLA_IFNAME, name)]));
    if (!link) throw new Error(`${name}: get link: unexpected reply from the kernel`);
    return link;
  }, nl);
}

/**
 * Sets what is given, in this order: MAC (most drivers want the link down for it), MTU,
 * then up or down. One request each, so that an error names the setting that failed.
 */
export function setLink(name: string, settings: LinkSettings, nl?: Netlink): void {
  withNetlink((s) => {
    const { index } = getLink(name, s);
    const set = (op: string, parts: Buffer[]) => s.request({ op, context: name }, RTM_SETLINK, 0, parts);
    if (settings.mac !== undefined) {
      set(`set MAC ${settings.mac}`, [ifinfomsg(index), attr(IFLA_ADDRESS, parseMac(settings.mac, name))]);
    }
    if (settings.mtu !== undefined)
      set(`set MTU ${settings.mtu}`, [ifinfomsg(index), u32Attr(IFLA_MTU, settings.mtu)]);
    if (settings.up !== undefined) {
      set(settings.up ? "set up" : "set down", [ifinfomsg(index, settings.up ? IFF_UP : 0, IFF_UP)]);
    }
  }, nl);
}
