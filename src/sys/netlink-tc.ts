/**
 * Traffic control over rtnetlink (src/sys/netlink.ts): the redirect that joins a
 * container's veth to its VM's tap (Kata's "tcfilter" model). Each link gets an ingress
 * qdisc and on it one filter that matches every frame and sends it out of the other link:
 *
 *   tc qdisc add dev A ingress
 *   tc filter add dev A parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev B
 *
 * and the same from B to A. Deleting a link's ingress qdisc removes its filters.
 *
 *   struct tcmsg     { u8 family; u8 pad1; u16 pad2; i32 ifindex; u32 handle; u32 parent; u32 info }  20 bytes
 *   struct tc_u32_sel { u8 flags, offshift, nkeys, pad; be16 offmask; u16 off; i16 offoff, hoff;
 *                       be32 hmask; tc_u32_key keys[] }                    16 bytes + 16 a key
 *   struct tc_u32_key { be32 mask, val; i32 off, offmask }
 *   struct tc_mirred  { u32 index, capab; i32 action, refcnt, bindcnt; i32 eaction; u32 ifindex }  28 bytes
 */
import {
  attr,
  type Netlink,
  NetlinkError,
  NLM_F_CREATE,
  NLM_F_EXCL,
  nestAttr,
  strAttr,
  withNetlink,
} from "./netlink.ts";
import { getLink } from "./netlink-link.ts";

const RTM_NEWQDISC = 36;
const RTM_DELQDISC = 37;
const RTM_NEWTFILTER = 44;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_U32_SEL = 5;
const TCA_U32_ACT = 7;
const TCA_ACT_KIND = 1;
const TCA_ACT_OPTIONS = 2;
const TCA_MIRRED_PARMS = 2;
/** The ingress qdisc's parent, and its handle ffff:. */
const TC_H_INGRESS = 0xfffffff1;
const INGRESS_HANDLE = 0xffff0000;
/** ETH_P_ALL in network byte order, as the low half of tcm_info (the filter's protocol). */
const PROTOCOL_ALL = 0x0300;
const TC_U32_TERMINAL = 1;
const TC_ACT_STOLEN = 4;
const TCA_EGRESS_REDIR = 1;
const TCMSG_SIZE = 20;
const U32_SEL_SIZE = 16;
const U32_KEY_SIZE = 16;
const MIRRED_SIZE = 28;

function tcmsg(index: number, handle: number, parent: number, info = 0): Buffer {
  const b = Buffer.alloc(TCMSG_SIZE);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(handle >>> 0, 8);
  b.writeUInt32LE(parent >>> 0, 12);
  b.writeUInt32LE(info >>> 0, 16);
  return b;
}

/** `tc qdisc add dev NAME ingress` (an error if it has one already). */
export function addIngressQdisc(name: string, nl?: Netlink): void {
  withNetlink((s) => {
    const { index } = getLink(name, s);
    s.request({ op: "add ingress qdisc", context: name }, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, [
      tcmsg(index, INGRESS_HANDLE, TC_H_INGRESS),
      strAttr(TCA_KIND, "ingress"),
    ]);
  }, nl);
}

/** `tc qdisc del dev NAME ingress`, which takes its filters with it. */
export function deleteIngressQdisc(name: string, nl?: Netlink): void {
  withNetlink((s) => {
    const { index } = getLink(name, s);
    // Handle 0 rather than ffff:. Once deleted, the link's ingress slot holds a qdisc of
    // handle 0, and naming ffff: would make a second delete EINVAL ("Invalid handle"), not ENOENT.
    s.request({ op: "delete ingress qdisc", context: name }, RTM_DELQDISC, 0, [
      tcmsg(index, 0, TC_H_INGRESS),
    ]);
  }, nl);
}

/**
 * Every frame that arrives on `from` leaves through `to`, untouched (the u32 filter with
 * one key that masks nothing, and a mirred egress redirect). `from` needs its ingress qdisc.
 */
export function redirectIngress(from: string, to: string, nl?: Netlink): void {
  withNetlink((s) => {
    const src = getLink(from, s).index;
    const dst = getLink(to, s).index;
    const sel = Buffer.alloc(U32_SEL_SIZE + U32_KEY_SIZE); // the key all zeros: mask 0, value 0, at 0
    sel.writeUInt8(TC_U32_TERMINAL, 0);
    sel.writeUInt8(1, 2); // nkeys
    const mirred = Buffer.alloc(MIRRED_SIZE);
    mirred.writeInt32LE(TC_ACT_STOLEN, 8);
    mirred.writeInt32LE(TCA_EGRESS_REDIR, 20);
    mirred.writeUInt32LE(dst, 24);
    const action = nestAttr(1, [
      strAttr(TCA_ACT_KIND, "mirred"),
      nestAttr(TCA_ACT_OPTIONS, [attr(TCA_MIRRED_PARMS, mirred)]),
    ]);
    // Priority 0: the kernel picks one (49152, as tc does).
    s.request(
      { op: `add redirect filter to ${to}`, context: from },
      RTM_NEWTFILTER,
      NLM_F_CREATE | NLM_F_EXCL,
      [
        tcmsg(src, 0, INGRESS_HANDLE, PROTOCOL_ALL),
        strAttr(TCA_KIND, "u32"),
        nestAttr(TCA_OPTIONS, [attr(TCA_U32_SEL, sel), nestAttr(TCA_U32_ACT, [action])]),
      ],
    );
  }, nl);
}

/**
 * Joins links a and b both ways (their ingress qdiscs, a redirect each way). On a failure
 * what was added is taken off again, and the error is the one that stopped it.
 */
export function connectLinks(a: string, b: string, nl?: Netlink): void {
  withNetlink((s) => {
    const added: string[] = [];
    try {
      for (const name of [a, b]) {
        addIngressQdisc(name, s);
        added.push(name);
      }
      redirectIngress(a, b, s);
      redirectIngress(b, a, s);
    } catch (err) {
      for (const name of added) {
        try {
          deleteIngressQdisc(name, s);
        } catch {
          // The error that stopped the connection is the one to report.
        }
      }
      throw err;
    }
  }, nl);
}

/**
 * Undoes connectLinks. A link that is gone (the tap of a VM that died) or has no ingress
 * qdisc any more is not an error: there is nothing left to undo on it. Both links are
 * tried; the first other error is thrown after.
 */
export function disconnectLinks(a: string, b: string, nl?: Netlink): void {
  withNetlink((s) => {
    const errors = [a, b].flatMap((name) => {
      try {
        ignoreGone(() => deleteIngressQdisc(name, s));
        return [];
      } catch (err) {
        return [err];
      }
    });
    if (errors.length) throw errors[0];
  }, nl);
}

/** Runs fn; ENODEV (no such link) and ENOENT (no such qdisc) count as done. */
function ignoreGone(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof NetlinkError && (err.code === "ENODEV" || err.code === "ENOENT"))) throw err;
  }
}
