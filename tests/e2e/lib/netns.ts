/**
 * Networking for the e2e tests without touching the machine's own network namespace: each
 * network test file makes a namespace of its own (`ip netns add cc-e2e-NAME-XXXXXX`, only
 * its loopback up, no link out) and runs its managers in it, so their bridges (docker0,
 * podman0, the CNI bridge), veths and iptables/ip6tables rules are made there and nowhere
 * else. Every client that talks to a container from "the host side" runs there too. The
 * workspace records the namespace: teardown kills whatever still runs in it, then deletes
 * it, which takes its bridges, veths and rules with it.
 *
 * Two ways in: `exec` (`ip netns exec`: a private mount namespace with the namespace's own
 * /sys, for one-off clients and ctr, whose mounts nobody else needs) and `enter`
 * (`nsenter --net`: the machine's mount namespace, for the daemons and podman, whose mounts
 * (rootfs, netns files) the shims, the runtime and the next command must see).
 */
import { basename } from "node:path";
import { type Cmd, type CmdOptions, cmd, must } from "./proc.ts";
import { netnsPath, type Workspace } from "./workspace.ts";

export class Netns {
  private constructor(readonly name: string) {}

  get path(): string {
    return netnsPath(this.name);
  }

  /** `ip netns add` a namespace named after the workspace, loopback up. */
  static async create(ws: Workspace): Promise<Netns> {
    const ns = new Netns(basename(ws.dir));
    await must(["ip", "netns", "add", ns.name]);
    ws.addNetns(ns.name);
    await must(ns.exec(["ip", "link", "set", "lo", "up"]));
    return ns;
  }

  /** `argv` in the namespace, in a mount namespace of its own (`ip netns exec`). */
  exec(argv: string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...argv];
  }

  /** `argv` in the namespace, in the machine's mount namespace (`nsenter --net`). */
  enter(argv: string[]): string[] {
    return ["nsenter", `--net=${this.path}`, "--", ...argv];
  }

  run(argv: string[], opts: CmdOptions = {}): Promise<Cmd> {
    return cmd(this.exec(argv), opts);
  }

  /** A shell script run in the namespace (busybox sh, as in the containers). */
  sh(script: string, opts: CmdOptions = {}): Promise<Cmd> {
    return this.run(["busybox", "sh", "-c", script], opts);
  }
}

/**
 * What the machine's own network namespace looks like (this process lives there): links,
 * addresses, routes and the iptables/ip6tables rules, without counters, timers or
 * comments. A test compares it before and after its managers ran.
 */
export async function hostNetwork(): Promise<string> {
  const parts: string[] = [];
  for (const argv of [
    ["ip", "-br", "link"],
    ["ip", "-br", "addr"],
    ["ip", "route", "show", "table", "all"],
    ["ip", "-6", "route", "show", "table", "all"],
    ["iptables-save"],
    ["ip6tables-save"],
  ]) {
    const r = await cmd(argv, { timeout: 30_000 });
    const out = `${r.stdout}${r.stderr}`
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.replace(/\[\d+:\d+\]/g, "").replace(/\b(expires|used) \d+sec\b/g, ""))
      .join("\n");
    parts.push(`$ ${argv.join(" ")}\n${out}`);
  }
  return parts.join("\n");
}

/** The lines of `after` that are not in `before` and the other way round. */
export function diffLines(before: string, after: string): string {
  const b = new Set(before.split("\n"));
  const a = new Set(after.split("\n"));
  return [
    ...[...b].filter((l) => !a.has(l)).map((l) => `- ${l}`),
    ...[...a].filter((l) => !b.has(l)).map((l) => `+ ${l}`),
  ].join("\n");
}
