/**
 * The agent: the guest's PID 1 once the initramfs has switched to the root image.
 * Start-up does the least it can before answering the host (under TCG every line of
 * JavaScript run at start costs): find the port, answer hello, then do the rest lazily.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { Channel } from "../protocol/channel.ts";
import { guestNicName } from "../protocol/guest-layout.ts";
import { type Op, PROTOCOL_VERSION, type RequestOf } from "../protocol/messages.ts";
import { configureInterface } from "../sys/net-scan.ts";
import { setLink } from "../sys/netlink-link.ts";
import { Containers } from "./containers.ts";
import { relayDns } from "./dns-relay.ts";
import { FaultReporter } from "./faults.ts";
import { adoptIdentity } from "./identity.ts";
import { powerOff, quietIdleGuest, Reaper, setupMounts, syncFilesystems } from "./init.ts";
import { findPort, portTransport } from "./port.ts";
import { prepareNetwork } from "./prepare.ts";

export async function runAgent(_argv: string[]): Promise<void> {
  process.env.PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
  const faults = new FaultReporter();
  faults.install();
  // Never the OOM killer's choice (inherited by crun; containers get 0, guest-config.ts):
  // the agent must answer when a container has used up the VM's memory.
  try {
    writeFileSync("/proc/self/oom_score_adj", "-1000");
  } catch (err) {
    faults.report("warning", `cannot protect the agent from the OOM killer: ${(err as Error).message}`);
  }
  for (const problem of quietIdleGuest()) faults.report("warning", problem);
  const reaper = new Reaper();
  reaper.start();
  const port = await findPort();
  let channel: Channel | undefined;
  channel = new Channel(portTransport(port, () => channel?.resetInput()));
  const host = channel;
  faults.send = (ev) => host.sendEvent(ev);
  console.log(`cc-agent: ready on ${port}`);
  let mounted = false;
  const containers = new Containers(channel, reaper);
  /** What the first container of this guest needs, made once (not in a template's snapshot). */
  const firstContainer = () => {
    if (mounted) return;
    for (const problem of setupMounts()) faults.report("warning", problem);
    // The container shares the guest's network namespace, whose loopback starts down.
    setLink("lo", { up: true });
    mounted = true;
  };
  const handlers: Record<Op, (args: never) => Promise<unknown>> = {
    hello: async (args: RequestOf<"hello">) => {
      const problem = adoptIdentity(args.seed, args.timeMs);
      if (problem) faults.report("warning", problem);
      return {
        version: PROTOCOL_VERSION,
        kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
        agentPid: process.pid,
      };
    },
    create: async (args) => {
      firstContainer();
      return containers.create(args);
    },
    restore: async (args) => {
      firstContainer();
      return containers.restore(args);
    },
    checkpoint: (args) => containers.checkpoint(args),
    start: (args) => containers.start(args),
    remove: (args) => containers.remove(args),
    freeze: (args) => containers.freeze(args),
    exec: (args) => containers.exec(args),
    signal: (args) => containers.signal(args),
    resize: (args) => containers.resize(args),
    ps: (args) => containers.ps(args),
    stats: (args) => containers.stats(args),
    update: (args) => containers.update(args),
    network: async (args: RequestOf<"network">) => {
      for (const { card, iface } of args.cards) {
        if (iface) configureInterface(guestNicName(card), iface);
        else setLink(guestNicName(card), { up: false });
      }
      relayDns(host, args.dnsRelay, (problem) => faults.report("warning", problem));
      return {};
    },
    prepare: async () => {
      prepareNetwork();
      return {};
    },
    sendLayer: (args) => containers.sendLayer(args),
    dns: async () => {
      throw new Error("dns is answered by the host (the stand-in), not the agent");
    },
    applyLayer: async () => {
      throw new Error("applyLayer is done by the host (the stand-in), not the agent");
    },
    // The VM's own state: the stand-in's hub answers these on the host.
    connectNetwork: async () => {
      throw new Error("connectNetwork is done by the host (its stand-in), not the agent");
    },
    pause: async () => {
      throw new Error("pause is done by the host (QMP), not the agent");
    },
    resume: async () => {
      throw new Error("resume is done by the host (QMP), not the agent");
    },
    shutdown: async () => {
      // Data is on disk when the host hears back: it may then stop the VM without waiting.
      syncFilesystems();
      setTimeout(() => powerOff(), 10);
      return {};
    },
  };
  channel.onRequest = (op, args) => handlers[op](args as never);
  // PID 1 must never exit: that would panic the guest kernel (see faults.ts).
  await new Promise(() => {});
}
