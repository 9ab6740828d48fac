/**
 * The VM's network cards. microvm has no NIC hotplug, so every VM boots with its cards
 * (vm.json `networkInterfaces`, default 2: one for the container's network and a spare one
 * for a network connected later), templates included: a template's cards have a
 * backend that goes nowhere (a hub port), a container's are taps in its network namespace,
 * opened by its stand-in and inherited by QEMU as fds TAP_FD_BASE.. (fd 3 is the template
 * snapshot's, or unused; 4-6 its sockets', launcher.ts VM_SOCKET_FDS). Neither has a virtio-net header (the tap is opened without
 * IFF_VNET_HDR, sys/tap.ts), so that the card a template saved and the card a clone
 * restores offer the guest the same features.
 *
 * Card i is eth<i> in the guest, and is joined to the tap cc-tap<i>; it takes the i-th
 * interface the namespace holds (by name, never by MAC: a clone carries its template's MAC
 * until the agent sets the interface's).
 */
export const DEFAULT_NICS = 2;
export const MAX_NICS = 8;
export const TAP_FD_BASE = 7;

/**
 * "tap": the stand-in's taps (fds TAP_FD_BASE..). "hub": a port of a hub of its own that goes
 * nowhere: a template's cards, and a user's container whose user cannot open /dev/net/tun
 * (its network namespace is new and empty: there is nothing to carry).
 */
export type NicBackend = "tap" | "hub";

export function tapName(i: number): string {
  return `cc-tap${i}`;
}

export { guestNicName } from "../protocol/guest-layout.ts";

export function nicArgs(count: number, backend: NicBackend): string[] {
  const args: string[] = [];
  for (let i = 0; i < count; i++) {
    const netdev =
      backend === "tap" ? `tap,id=net${i},fd=${TAP_FD_BASE + i}` : `hubport,id=net${i},hubid=${i}`;
    args.push("-netdev", netdev, "-device", `virtio-net-device,netdev=net${i}`);
  }
  return args;
}
