/**
 * A tap device for one guest NIC (Kata's "tcfilter" networking): the stand-in opens it in
 * the container's network namespace and hands the fd to QEMU (`-netdev tap,fd=N,vnet_hdr=off`).
 *
 * The tap is NOT persistent: the kernel removes it when the last fd on it closes, i.e. when
 * both the stand-in and QEMU are gone, whatever killed them. That is the fault cleanup; a
 * tap never outlives its VM. IFF_TUN_EXCL makes the open fail (EBUSY) rather than attach to
 * a device of that name left by someone else, which might be persistent and would then stay.
 *
 * The fd is close-on-exec, as every fd this runtime opens: it reaches QEMU through Node's
 * spawn stdio array, which dup2()s it to the wanted number in the child (dup2 clears the
 * flag on the copy), as the template snapshot's fd does (src/standin/container.ts).
 */
import { cstr, libc, O_CLOEXEC, O_RDWR, sysError } from "./libc.ts";

/** <linux/if_tun.h>: _IOW('T', 202, int). */
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_TUN_EXCL = 0x8000;
/** struct ifreq: char ifr_name[IFNAMSIZ=16]; short ifr_flags at 16; 40 bytes in all. */
const IFREQ_SIZE = 40;
export const IFNAMSIZ = 16;

/**
 * Creates the tap `name` in this thread's network namespace (no packet-information header,
 * no virtio-net header) and returns its fd, close-on-exec. The device is down: bring it up
 * with setLink (src/sys/netlink-link.ts) once it is wired.
 */
export function openTap(name: string): number {
  const what = `tap ${name}`;
  if (!name || Buffer.byteLength(name) >= IFNAMSIZ || /[\s/:]/.test(name)) {
    throw new Error(`${what}: not a valid interface name (1 to ${IFNAMSIZ - 1} bytes, no space, / or :)`);
  }
  const c = libc();
  const fd = c.open(cstr("/dev/net/tun"), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw sysError("open /dev/net/tun", what);
  const ifr = Buffer.alloc(IFREQ_SIZE);
  ifr.write(name, 0, "utf8");
  ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL, IFNAMSIZ);
  if (c.ioctl(fd, TUNSETIFF, ifr) < 0) {
    const err = sysError("ioctl(TUNSETIFF)", what);
    c.close(fd);
    throw err;
  }
  return fd;
}
