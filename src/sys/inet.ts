/**
 * IP and MAC addresses between their text form and the bytes netlink carries. Text goes
 * through glibc's inet_pton/inet_ntop, so an address reads exactly as `ip` prints it
 * (RFC 5952 for IPv6), on the host and in the guest alike.
 */
import { cstr, libc, ptr } from "./libc.ts";

export type Family = 4 | 6;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const afOf = (family: Family) => (family === 4 ? AF_INET : AF_INET6);
export const familyOfAf = (af: number): Family | undefined =>
  af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;

/** The text form of a 4- or 16-byte address. */
export function formatIp(bytes: Uint8Array): string {
  const af = bytes.length === 4 ? AF_INET : AF_INET6;
  const out = Buffer.alloc(64);
  if (!libc().inet_ntop(af, ptr(bytes), out, out.length)) throw new Error(`not an IP address: ${bytes}`);
  return out.toString("latin1", 0, out.indexOf(0));
}

/** An address in text form as family and bytes; undefined when it is none. */
export function tryParseIp(text: string): { family: Family; bytes: Buffer } | undefined {
  for (const family of [4, 6] as const) {
    const bytes = Buffer.alloc(family === 4 ? 4 : 16);
    if (libc().inet_pton(afOf(family), cstr(text), bytes) === 1) return { family, bytes };
  }
  return undefined;
}

/** context names what the address is for, in the error. */
export function parseIp(text: string, context: string): { family: Family; bytes: Buffer } {
  const ip = tryParseIp(text);
  if (!ip) throw new Error(`${context}: ${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
  return ip;
}

/** "10.0.0.0/24" or "fd00::/64" as address and prefix length; a bare address is a host (/32, /128). */
export function parseCidr(
  text: string,
  context: string,
): { family: Family; bytes: Buffer; prefixLength: number } {
  const [address = "", length, extra] = text.split("/");
  const ip = parseIp(address, context);
  const max = ip.family === 4 ? 32 : 128;
  const prefixLength = length === undefined ? max : Number(length);
  if (extra !== undefined || !Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > max) {
    throw new Error(
      `${context}: ${JSON.stringify(text)} is not an address with a prefix length (0 to ${max})`,
    );
  }
  return { ...ip, prefixLength };
}

/** "aa:bb:cc:dd:ee:ff", lower case, as `ip link` prints it. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

export function parseMac(text: string, context: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)) {
    throw new Error(`${context}: MAC address ${JSON.stringify(text)} is not six hex bytes separated by ':'`);
  }
  return Buffer.from(text.replaceAll(":", ""), "hex");
}
