/**
 * Routes of the main table over rtnetlink (src/sys/netlink.ts): list them, add one, as
 * `ip route` does. Other tables (policy routing) and multipath routes are not handled.
 *
 *   struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags }  12 bytes
 */
import { afOf, type Family, familyOfAf, formatIp, parseCidr, parseIp } from "./inet.ts";
import {
  attr,
  type Netlink,
  NLM_F_CREATE,
  NLM_F_REPLACE,
  parseAttrs,
  type Scope,
  scopeName,
  scopeNumber,
  u32Attr,
  withNetlink,
} from "./netlink.ts";
import { getLink } from "./netlink-link.ts";

const RTM_NEWROUTE = 24;
const RTM_GETROUTE = 26;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_TABLE = 15;
const RT_TABLE_MAIN = 254;
const RTN_UNICAST = 1;
const RTMSG_SIZE = 12;
/** rtm_protocol: made by the kernel from an address; what `ip route add` gives by default. */
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;

export interface Route {
  family: Family;
  /** "default" or a prefix: "10.0.0.0/24", "10.0.0.5/32". */
  dst: string;
  gateway?: string;
  /** The output link's index; undefined when the route has none (multipath, blackhole). */
  index?: number;
  /** The source address the route prefers (the kernel's prefix routes have one). */
  prefsrc?: string;
  metric?: number;
  scope: Scope;
  /** rtm_protocol: RTPROT_KERNEL for the routes the kernel made itself. */
  protocol: number;
}

/** What addRoute takes: a Route without its link; family, scope and protocol can be left out. */
export type RouteSpec = Omit<Route, "index" | "family" | "scope" | "protocol"> & Partial<Route>;

function rtmsg(af: number, dstLength: number, protocol: number, scope: number): Buffer {
  const b = Buffer.alloc(RTMSG_SIZE);
  b.writeUInt8(af, 0);
  b.writeUInt8(dstLength, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(protocol, 5);
  b.writeUInt8(scope, 6);
  b.writeUInt8(RTN_UNICAST, 7);
  return b;
}

/** The unicast routes of the main table, IPv4 and IPv6. */
export function dumpRoutes(nl?: Netlink): Route[] {
  return withNetlink(
    (s) =>
      s.dump({ op: "list routes", context: "netlink" }, RTM_GETROUTE, [rtmsg(0, 0, 0, 0)]).flatMap((m) => {
        const b = m.body;
        const family = familyOfAf(b.readUInt8(0));
        const a = parseAttrs(b, RTMSG_SIZE);
        const table = a.get(RTA_TABLE)?.readUInt32LE(0) ?? b.readUInt8(4);
        if (m.type !== RTM_NEWROUTE || !family || table !== RT_TABLE_MAIN || b.readUInt8(7) !== RTN_UNICAST) {
          return [];
        }
        const ip = (t: number) => {
          const v = a.get(t);
          return v ? formatIp(v) : undefined;
        };
        const dstLength = b.readUInt8(1);
        const route: Route = {
          family,
          dst: dstLength === 0 ? "default" : `${ip(RTA_DST)}/${dstLength}`,
          gateway: ip(RTA_GATEWAY),
          index: a.get(RTA_OIF)?.readUInt32LE(0),
          prefsrc: ip(RTA_PREFSRC),
          metric: a.get(RTA_PRIORITY)?.readUInt32LE(0),
          scope: scopeName(b.readUInt8(6)),
          protocol: b.readUInt8(5),
        };
        for (const k of ["gateway", "index", "prefsrc", "metric"] as const) {
          if (route[k] === undefined) delete route[k];
        }
        return [route];
      }),
    nl,
  );
}

/**
 * Adds (or replaces) a route through the link called name, in the main table. Replace,
 * not exclusive: the kernel makes a prefix route itself for each address it is given,
 * and a scan carries those too (with their source and metric), so adding one again gives
 * the same route instead of an error. A gateway must be reachable: add the routes of
 * scope link first (scanInterfaces orders them so).
 */
export function addRoute(name: string, route: RouteSpec, nl?: Netlink): void {
  const op = `add route ${route.dst}${route.gateway ? ` via ${route.gateway}` : ""}`;
  const context = `${name}: ${op}`;
  const dst = route.dst === "default" ? undefined : parseCidr(route.dst, context);
  const gateway = route.gateway === undefined ? undefined : parseIp(route.gateway, context);
  const prefsrc = route.prefsrc === undefined ? undefined : parseIp(route.prefsrc, context);
  const family = route.family ?? dst?.family ?? gateway?.family;
  if (!family) throw new Error(`${context}: a default route without a gateway needs its family (4 or 6)`);
  if ([dst, gateway, prefsrc].some((x) => x && x.family !== family)) {
    throw new Error(`${context}: IPv4 and IPv6 addresses mixed`);
  }
  withNetlink((s) => {
    const { index } = getLink(name, s);
    const scope = route.scope === undefined ? (gateway ? "global" : "link") : route.scope;
    const parts = [
      rtmsg(afOf(family), dst?.prefixLength ?? 0, route.protocol ?? RTPROT_BOOT, scopeNumber(scope)),
    ];
    if (dst) parts.push(attr(RTA_DST, dst.bytes));
    if (gateway) parts.push(attr(RTA_GATEWAY, gateway.bytes));
    if (prefsrc) parts.push(attr(RTA_PREFSRC, prefsrc.bytes));
    if (route.metric !== undefined) parts.push(u32Attr(RTA_PRIORITY, route.metric));
    parts.push(u32Attr(RTA_OIF, index));
    s.request({ op, context: name }, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, parts);
  }, nl);
}
