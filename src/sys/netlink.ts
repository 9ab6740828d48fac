/**
 * rtnetlink (a NETLINK_ROUTE socket) through libc: what the stand-in needs to carry the
 * container's veths into the VM (links, addresses, routes, tc) and what the guest agent
 * needs to configure its NIC; the guest has busybox only, no iproute2. This file is the
 * transport; netlink-link.ts, netlink-addr.ts, netlink-route.ts and netlink-tc.ts build
 * the messages, net-scan.ts gathers what the guest needs.
 *
 * Why not spawn `ip` and `tc` (issue 12: netlink unless the commands cost under 20 ms a
 * create)? Measured with bench/netlink.ts on 2026-12-02, this project's machine (2 vCPUs, Linux
 * 6.18, iproute2 6.1, Bun 1.4.5, load average 6 to 12 from other work), in a namespace
 * holding a veth and a tap, 4 runs of 30 to 50 rounds:
 *   spawned from Bun: `ip -json addr`, `ip -json route`, one `tc -batch` of 2 ingress
 *     qdiscs and 2 redirect filters: median 6.4 to 7.9 ms a create (min 4.8, max 25);
 *   this module: scanInterfaces() + connectLinks(), the same work and the IPv6 routes
 *     too (`ip -json route` lists IPv4 only): median 1.0 to 1.1 ms (min 0.5, max 6.2).
 * The commands would pass the bar; netlink is used anyway: six times cheaper, and the
 * guest agent, which configures its NIC with the same code, has busybox only.
 *
 * Layout (native byte order, every part 4-byte aligned):
 *   nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid }                   16 bytes
 *   rtattr   { u16 len; u16 type; payload } padded to 4
 *   nlmsgerr { i32 -errno; nlmsghdr of the request (header only: NETLINK_CAP_ACK);
 *              TLVs when NLM_F_ACK_TLVS, NLMSGERR_ATTR_MSG the kernel's own text (EXT_ACK) }
 *
 * The kernel answers rtnetlink requests while send() runs, and makes each next part of a
 * dump while recv() runs, so every recv here is non-blocking: nothing waits, and a reply
 * that is not there is an error instead of a hang.
 */
import { EAGAIN, EINTR, libc, SOCK_CLOEXEC, SOCK_NONBLOCK, SysError, sysError } from "./libc.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;

const NLMSG_NOOP = 1;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSG_OVERRUN = 4;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP_INTR = 0x10;
const NLM_F_DUMP = 0x300;
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

const NLMSG_HDRLEN = 16;
const NLA_HDRLEN = 4;
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;
/** The kernel's dump parts are at most 32 KiB; MSG_TRUNC tells if one ever is larger. */
const RECV_SIZE = 64 * 1024;
/** A dump the kernel marks inconsistent (the table changed under it) is taken again, this many times. */
const DUMP_TRIES = 5;

const align4 = (n: number) => (n + 3) & ~3;

/** One received message: its type, flags and what follows its header. */
export interface NlMessage {
  type: number;
  flags: number;
  body: Buffer;
}

/**
 * A request the kernel refused: one line naming the operation and the thing it was about,
 * errno text and code, and the kernel's own explanation when it gives one, e.g.
 * `veth0: add ingress qdisc: File exists (EEXIST): Exclusivity flag on, cannot modify`.
 */
export class NetlinkError extends SysError {
  constructor(
    op: string,
    errno: number,
    context: string,
    readonly kernelMessage?: string,
  ) {
    super(op, errno, context);
    this.name = "NetlinkError";
    if (kernelMessage) this.message += `: ${kernelMessage}`;
  }
}

/** An attribute: header, payload, padding. */
export function attr(type: number, payload: Uint8Array): Buffer {
  const len = NLA_HDRLEN + payload.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  b.set(payload, NLA_HDRLEN);
  return b;
}

export const strAttr = (type: number, s: string) => attr(type, Buffer.from(`${s}\0`, "utf8"));

export function u32Attr(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return attr(type, b);
}

export const nestAttr = (type: number, parts: Buffer[]) => attr(type | NLA_F_NESTED, Buffer.concat(parts));

/** The attributes in buf from offset on, by type (the last one wins when a type repeats). */
export function parseAttrs(buf: Buffer, offset = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let at = offset;
  while (at + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(at);
    if (len < NLA_HDRLEN || at + len > buf.length) break;
    out.set(buf.readUInt16LE(at + 2) & NLA_TYPE_MASK, buf.subarray(at + NLA_HDRLEN, at + len));
    at += align4(len);
  }
  return out;
}

/** A NUL-terminated string attribute's text. */
export function attrString(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const end = b.indexOf(0);
  return b.toString("utf8", 0, end < 0 ? b.length : end);
}

/** ifa_scope and rtm_scope, by the names `ip` prints (another value stays a number). */
const SCOPES = { global: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
export type Scope = keyof typeof SCOPES | number;

export function scopeName(n: number): Scope {
  return (Object.keys(SCOPES) as (keyof typeof SCOPES)[]).find((k) => SCOPES[k] === n) ?? n;
}

export const scopeNumber = (s: Scope): number => (typeof s === "number" ? s : SCOPES[s]);

/** Which operation on which thing a request is, for its error. */
export interface What {
  op: string;
  context: string;
}

/** One NETLINK_ROUTE socket, in the network namespace of the thread that opened it. */
export class Netlink {
  private seq = 0;
  private readonly buf = Buffer.alloc(RECV_SIZE);

  private constructor(private fd: number) {}

  static open(): Netlink {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw sysError("socket(AF_NETLINK)", "netlink");
    const one = Buffer.alloc(4);
    one.writeInt32LE(1, 0);
    // Both only shape error replies (shorter, with the kernel's text); a kernel without
    // them (before 4.12) still answers, so a failure here is not one.
    c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
    c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
    return new Netlink(fd);
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }

  /** A change (flags: NLM_F_CREATE...), done when the kernel acknowledges it. */
  request(what: What, type: number, flags: number, parts: Buffer[]): void {
    this.exchange(what, type, flags | NLM_F_ACK, parts, () => {});
  }

  /** Every object of a kind (RTM_GET*), taken again if the kernel says the dump was inconsistent. */
  dump(what: What, type: number, parts: Buffer[]): NlMessage[] {
    for (let i = 1; ; i++) {
      const out: NlMessage[] = [];
      let interrupted = false;
      this.exchange(what, type, NLM_F_DUMP, parts, (m) => {
        interrupted ||= (m.flags & NLM_F_DUMP_INTR) !== 0;
        out.push(m);
      });
      if (!interrupted || i === DUMP_TRIES) return out;
    }
  }

  /** One object (RTM_GET* naming it): the kernel's single reply. */
  get(what: What, type: number, parts: Buffer[]): NlMessage {
    let reply: NlMessage | undefined;
    this.exchange(what, type, 0, parts, (m) => {
      reply = m;
    });
    if (!reply) throw new Error(`${what.context}: ${what.op}: no reply from the kernel`);
    return reply;
  }

  /**
   * Sends one request and hands each reply message to onMessage until the end: the ACK
   * (NLM_F_ACK), NLMSG_DONE (a dump), or the one reply (a get).
   */
  private exchange(
    what: What,
    type: number,
    flags: number,
    parts: Buffer[],
    onMessage: (m: NlMessage) => void,
  ): void {
    const c = libc();
    const seq = ++this.seq;
    const msg = Buffer.concat([Buffer.alloc(NLMSG_HDRLEN), ...parts]);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(type, 4);
    msg.writeUInt16LE(flags | NLM_F_REQUEST, 6);
    msg.writeUInt32LE(seq, 8);
    if (Number(c.send(this.fd, msg, msg.length, 0)) !== msg.length)
      throw sysError("netlink send", what.context);
    const single = (flags & (NLM_F_ACK | NLM_F_DUMP)) === 0;
    for (;;) {
      const n = Number(c.recv(this.fd, this.buf, this.buf.length, MSG_DONTWAIT | MSG_TRUNC));
      if (n < 0) {
        const err = sysError("netlink recv", what.context);
        if (err.errno === EINTR) continue;
        if (err.errno === EAGAIN) throw new Error(`${what.context}: ${what.op}: no reply from the kernel`);
        throw err;
      }
      if (n > this.buf.length) throw new Error(`${what.context}: ${what.op}: reply of ${n} bytes truncated`);
      for (let at = 0; at + NLMSG_HDRLEN <= n; ) {
        const len = this.buf.readUInt32LE(at);
        if (len < NLMSG_HDRLEN || at + len > n) break;
        const m: NlMessage = {
          type: this.buf.readUInt16LE(at + 4),
          flags: this.buf.readUInt16LE(at + 6),
          body: Buffer.from(this.buf.subarray(at + NLMSG_HDRLEN, at + len)),
        };
        const ours = this.buf.readUInt32LE(at + 8) === seq;
        at += align4(len);
        if (!ours || m.type === NLMSG_NOOP) continue;
        if (m.type === NLMSG_ERROR) {
          const errno = -m.body.readInt32LE(0);
          if (errno !== 0) throw new NetlinkError(what.op, errno, what.context, extAckMessage(m));
          return;
        }
        if (m.type === NLMSG_DONE) {
          const errno = m.body.length >= 4 ? -m.body.readInt32LE(0) : 0;
          if (errno > 0) throw new NetlinkError(what.op, errno, what.context, extAckMessage(m, 4));
          return;
        }
        if (m.type === NLMSG_OVERRUN) throw new Error(`${what.context}: ${what.op}: netlink overrun`);
        onMessage(m);
        if (single) return;
      }
    }
  }
}

/** The kernel's text in an error (or DONE) reply, when it sent one. */
function extAckMessage(m: NlMessage, tlvAt?: number): string | undefined {
  if (!(m.flags & NLM_F_ACK_TLVS)) return undefined;
  // After the errno: the request's header, and its payload unless NETLINK_CAP_ACK took it off.
  const at = tlvAt ?? (m.flags & NLM_F_CAPPED ? 4 + NLMSG_HDRLEN : 4 + m.body.readUInt32LE(4));
  return attrString(parseAttrs(m.body, at).get(NLMSGERR_ATTR_MSG));
}

/** Runs fn on nl, or on a socket opened for it and closed after. */
export function withNetlink<T>(fn: (nl: Netlink) => T, nl?: Netlink): T {
  if (nl) return fn(nl);
  const own = Netlink.open();
  try {
    return fn(own);
  } finally {
    own.close();
  }
}

/** Multicast groups (RTMGRP_*) of changes to links and addresses. */
export const RTMGRP_LINK = 0x1;
export const RTMGRP_IPV4_IFADDR = 0x10;
export const RTMGRP_IPV6_IFADDR = 0x100;

/**
 * A NETLINK_ROUTE socket that receives the changes of `groups` (an RTMGRP_* mask) in this
 * thread's network namespace, non-blocking (for an event-loop reader, sys/fdstream.ts): its
 * fd. Only "something changed" is read from it; the state is dumped again.
 */
export function openEventSocket(groups: number): number {
  const c = libc();
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) throw sysError("socket(AF_NETLINK)", "netlink events");
  const addr = Buffer.alloc(12); // sockaddr_nl: family, pad, pid (0: the kernel picks), groups
  addr.writeUInt16LE(AF_NETLINK, 0);
  addr.writeUInt32LE(groups, 8);
  if (c.bind(fd, addr, addr.length) !== 0) {
    const err = sysError("bind(AF_NETLINK)", "netlink events");
    c.close(fd);
    throw err;
  }
  return fd;
}
