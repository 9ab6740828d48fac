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
 * microvm has no NIC hotplug: the VM boots with its cards (default 2, hypervisor/nics.ts),
 * so an interface added to a running container (`docker network connect`) takes a spare one.
 *
 * Teardown: a tap goes with its last fd (QEMU's), taking its qdisc; the veth's qdisc is
 * removed here. A stand-in killed outright leaves the veth's qdisc in the namespace, which
 * goes with the namespace or the veth (the manager removes both when the container goes).
 */
import { guestNicName, tapName } from "../hypervisor/nics.ts";
import type { Logger } from "../log/logger.ts";
import type { Channel } from "../protocol/channel.ts";
import type { RequestOf } from "../protocol/messages.ts";
import { type FdReader, fdReader } from "../sys/fdstream.ts";
import { errno, libc } from "../sys/libc.ts";
import { joinNamespace, NAMESPACE_TYPES } from "../sys/namespaces.ts";
import { type GuestInterface, scanInterfaces } from "../sys/net-scan.ts";
import {
  openEventSocket,
  RTMGRP_IPV4_IFADDR,
  RTMGRP_IPV6_IFADDR,
  RTMGRP_LINK,
  withNetlink,
} from "../sys/netlink.ts";
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

/** How long changes are let settle before the namespace is scanned again (a veth comes in steps). */
const SETTLE_MS = 100;

export class ContainerNetwork {
  /** Card i carries the interface joined[i] (undefined: a spare card). */
  private readonly joined: (string | undefined)[] = [];
  private connected?: Promise<string[]>;
  private events?: FdReader;
  private rescan?: ReturnType<typeof setTimeout>;
  private scanning: Promise<void> = Promise.resolve();

  constructor(
    private readonly log: Logger,
    private readonly id: string,
    private readonly cards: number,
    /** Keeps what is joined where `delete` finds it (network-record.ts), for a killed stand-in. */
    private readonly record: (interfaces: string[]) => void = () => {},
  ) {}

  private recordJoined(): void {
    try {
      this.record(this.joined.filter((n): n is string => n !== undefined));
    } catch (err) {
      this.log.error(`${this.id}: cannot record the joined interfaces: ${(err as Error).message}`);
    }
  }

  /** Whether the cards have taps: without, no interface can be joined. */
  private haveTaps = false;

  /** One tap per card, in this namespace: the fds QEMU inherits (close them once it has). */
  openTaps(): number[] {
    this.haveTaps = true;
    const fds: number[] = [];
    try {
      for (let i = 0; i < this.cards; i++) fds.push(openTap(tapName(i)));
    } catch (err) {
      for (const fd of fds) libc().close(fd);
      throw err;
    }
    return fds;
  }

  /**
   * Once, after create's hooks: the namespace's interfaces, each joined to a card; their
   * names. From then on the namespace is watched: an interface that comes later (`docker
   * network connect`) takes a spare card, one that goes (`disconnect`) frees its card.
   * `dnsRelay`: the loopback name servers the guest answers for (dns-relay.ts).
   */
  connect(agent: Channel, dnsRelay: string[]): Promise<string[]> {
    this.connected ??= (async () => {
      const found = scanInterfaces();
      if (found.length > 0 && !this.haveTaps) {
        throw new Error(
          `the network namespace has interfaces (${found.map((f) => f.name).join(", ")}) and the VM's cards no taps: this user cannot open /dev/net/tun`,
        );
      }
      const spare = this.cards - this.joined.filter(Boolean).length;
      if (found.length > spare) {
        throw new Error(
          `the network namespace has ${found.length} interfaces (${found.map((f) => f.name).join(", ")}) and the VM ${this.cards} network card${this.cards === 1 ? "" : "s"} (vm.json networkInterfaces)`,
        );
      }
      await this.apply(agent, found, dnsRelay);
      this.watch(agent);
      return found.map((f) => f.name);
    })();
    return this.connected;
  }

  /** Joins what is new in `found`, frees the cards of what went, and tells the guest. */
  private async apply(agent: Channel, found: GuestInterface[], dnsRelay: string[]): Promise<void> {
    const cards: RequestOf<"network">["cards"] = [];
    this.joined.forEach((name, card) => {
      if (name === undefined || found.some((f) => f.name === name)) return;
      this.unjoin(card);
      cards.push({ card, iface: null });
    });
    for (const iface of found) {
      if (this.joined.includes(iface.name)) continue;
      const card = this.freeCard();
      if (card === undefined) {
        this.log.error(
          `${this.id}: ${iface.name} came into the container's network namespace and the VM has no spare network card for it (vm.json networkInterfaces: ${this.cards}): it stays unconnected`,
        );
        continue;
      }
      this.join(iface, card);
      cards.push({ card, iface });
    }
    if (cards.length > 0) this.recordJoined();
    if (cards.length > 0 || dnsRelay.length > 0) await agent.call("network", { cards, dnsRelay });
  }

  private freeCard(): number | undefined {
    for (let card = 0; card < this.cards; card++) if (this.joined[card] === undefined) return card;
    return undefined;
  }

  private join(iface: GuestInterface, card: number): void {
    const tap = tapName(card);
    withNetlink((nl) => {
      setLink(tap, { mtu: iface.mtu, up: true }, nl);
      try {
        connectLinks(iface.name, tap, nl);
      } catch (err) {
        if ((err as { code?: string }).code !== "EEXIST") throw err;
        // Its ingress is taken: another container's VM carries this namespace already.
        throw new Error(
          `${iface.name} already carries another VM's traffic: a container cannot share another container's network namespace (--network container:...) from a VM of its own`,
        );
      }
    });
    this.joined[card] = iface.name;
    this.log.debug(`${this.id}: ${iface.name} joined to ${tap} (${guestNicName(card)} in the guest)`);
  }

  private unjoin(card: number): void {
    const name = this.joined[card];
    this.joined[card] = undefined;
    if (name === undefined) return;
    try {
      disconnectLinks(name, tapName(card));
    } catch (err) {
      this.log.error(`${this.id}: cannot take the redirect off ${name}: ${(err as Error).message}`);
    }
  }

  /** Link and address changes in the namespace: scanned again once they settle. */
  private watch(agent: Channel): void {
    if (this.cards === 0) return;
    let fd: number;
    try {
      fd = openEventSocket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
    } catch (err) {
      this.log.error(`${this.id}: interfaces added later will not be connected: ${(err as Error).message}`);
      return;
    }
    this.events = fdReader(fd);
    const events = this.events;
    void (async () => {
      try {
        for await (const _ of events) {
          clearTimeout(this.rescan);
          this.rescan = setTimeout(() => {
            // (inside the async step: a scan that throws must not break the chain)
            this.scanning = this.scanning.then(async () => {
              try {
                await this.apply(agent, scanInterfaces(), []);
              } catch (err) {
                this.log.error(`${this.id}: network change: ${(err as Error).message}`);
              }
            });
          }, SETTLE_MS);
        }
      } catch {
        // The socket went (teardown).
      }
      libc().close(fd);
    })();
  }

  /** Takes the redirects off (the taps go with QEMU). Never throws: it runs on every exit path. */
  teardown(): void {
    clearTimeout(this.rescan);
    void this.events?.cancel();
    if (this.joined.every((n) => n === undefined)) return;
    for (let card = 0; card < this.joined.length; card++) this.unjoin(card);
    this.recordJoined();
  }
}
