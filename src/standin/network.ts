/**
 * The container's network, Kata's "tcfilter" way. Managers configure the network namespace
 * of the container's pid, which is this stand-in's: Docker's libnetwork-setkey prestart hook
 * moves a veth into it during create; CNI, netavark and CRI configure a namespace named by
 * path before create. The stand-in lives in that namespace, opens a tap per VM network card
 * there (QEMU's backend, hypervisor/nics.ts) and, once create's hooks have run, joins each
 * interface the manager put there to its tap with tc (ingress qdiscs, a mirred redirect each
 * way) and has the guest NIC take its MAC, MTU, addresses and routes. The veth keeps its
 * addresses on the host side (the manager's view of the container stays true); no packet
 * ever reaches the namespace's own stack.
 *
 * Teardown: a tap goes with its last fd (QEMU's), taking its qdisc; the veth's qdisc is
 * removed here. A stand-in killed outright leaves the veth's qdisc in the namespace, which
 * goes with the namespace or the veth (the manager removes both when the container goes).
 */
import { guestNicName, tapName } from "../hypervisor/nics.ts";
import type { Logger } from "../log/logger.ts";
import type { Channel } from "../protocol/channel.ts";
import { errno, libc } from "../sys/libc.ts";
import { joinNamespace, NAMESPACE_TYPES } from "../sys/namespaces.ts";
import { scanInterfaces } from "../sys/net-scan.ts";
import { withNetlink } from "../sys/netlink.ts";
import { setLink } from "../sys/netlink-link.ts";
import { connectLinks, disconnectLinks } from "../sys/netlink-tc.ts";
import { openTap } from "../sys/tap.ts";
import type { ContainerLaunch } from "./launch.ts";

/**
 * Managers configure the network namespace of the container's pid (`/proc/PID/ns/net`),
 * and that pid is this stand-in's. So the stand-in (its main thread, which is what
 * /proc/PID/ns/net shows, where QEMU is started from and where netlink sockets are made)
 * moves into a new, empty one when the configuration asks for a network namespace (never
 * leaving the host's to be configured), or joins the one it names by path.
 */
export function enterNetworkNamespace(log: Logger, spec: ContainerLaunch): void {
  if (spec.network.kind === "path") {
    joinNamespace(spec.network.path, "network");
    log.debug(`${spec.id}: stand-in in the network namespace ${spec.network.path}`);
  } else if (libc().unshare(NAMESPACE_TYPES.network) !== 0) {
    throw new Error(`cannot make a network namespace for the stand-in: errno ${errno()}`);
  }
}

export class ContainerNetwork {
  private readonly joined: { iface: string; tap: string }[] = [];
  private connected?: Promise<string[]>;

  constructor(
    private readonly log: Logger,
    private readonly id: string,
    private readonly cards: number,
  ) {}

  /** One tap per card, in this namespace: the fds QEMU inherits (close them once it has). */
  openTaps(): number[] {
    const fds: number[] = [];
    try {
      for (let i = 0; i < this.cards; i++) fds.push(openTap(tapName(i)));
    } catch (err) {
      for (const fd of fds) libc().close(fd);
      throw err;
    }
    return fds;
  }

  /** Once: the namespace's interfaces, each joined to its card; their names. */
  connect(agent: Channel): Promise<string[]> {
    this.connected ??= this.join(agent);
    return this.connected;
  }

  private async join(agent: Channel): Promise<string[]> {
    const found = scanInterfaces();
    const names = found.map((f) => f.name);
    if (found.length > this.cards) {
      throw new Error(
        `the network namespace has ${found.length} interfaces (${names.join(", ")}) and the VM ${this.cards} network card${this.cards === 1 ? "" : "s"} (vm.json networkInterfaces)`,
      );
    }
    withNetlink((nl) => {
      found.forEach((iface, i) => {
        const tap = tapName(i);
        setLink(tap, { mtu: iface.mtu, up: true }, nl);
        connectLinks(iface.name, tap, nl);
        this.joined.push({ iface: iface.name, tap });
        this.log.debug(`${this.id}: ${iface.name} joined to ${tap} (${guestNicName(i)} in the guest)`);
      });
    });
    if (found.length > 0) await agent.call("network", { interfaces: found });
    return names;
  }

  /** Takes the redirects off (the taps go with QEMU). Never throws: it runs on every exit path. */
  teardown(): void {
    for (const { iface, tap } of this.joined.splice(0)) {
      try {
        disconnectLinks(iface, tap);
      } catch (err) {
        this.log.error(`${this.id}: cannot take the redirect off ${iface}: ${(err as Error).message}`);
      }
    }
  }
}
