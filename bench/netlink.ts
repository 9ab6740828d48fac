/**
 * What a create pays to read the container's network and join its veth to the tap:
 * spawning iproute2 against src/sys/netlink.ts (issue 12: use netlink unless the commands
 * cost under 20 ms a create). As root:
 *
 *   node_modules/.bin/bun run bench/netlink.ts [--runs N]      (default N=30)
 *
 * Everything happens in a network namespace of its own (ccnet-bench-PID, with a veth pair,
 * addresses, a default route, and a tap), removed at the end; the machine's own namespace
 * is never touched. The bench runs itself again inside it (`ip netns exec`), as the
 * stand-in runs in the container's namespace. Each run, alternately:
 *  - spawn: `ip -json addr`, `ip -json route`, one `tc -batch` of 2 ingress qdiscs and
 *    2 redirect filters (spawned from Bun, waited for, as the stand-in would);
 *  - netlink: scanInterfaces() and connectLinks(), the same work in-process;
 * each followed, untimed, by deleting the qdiscs.
 */
import { closeSync } from "node:fs";
import { parseArgs } from "node:util";
import { scanInterfaces } from "../src/sys/net-scan.ts";
import { setLink } from "../src/sys/netlink-link.ts";
import { connectLinks, disconnectLinks } from "../src/sys/netlink-tc.ts";
import { openTap } from "../src/sys/tap.ts";
import { aligned, summary } from "./lib/stats.ts";

const { values: opts } = parseArgs({
  options: { runs: { type: "string", default: "30" }, inside: { type: "boolean", default: false } },
});
const RUNS = Number(opts.runs);
const VETH = "ccb0";
const TAP = "ccbtap0";

function sh(argv: string[], stdin?: string): string {
  const r = Bun.spawnSync(argv, { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin) });
  if (r.exitCode !== 0)
    throw new Error(`${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

function timed(fn: () => void): number {
  const t = Bun.nanoseconds();
  fn();
  return (Bun.nanoseconds() - t) / 1e6;
}

function inside(): void {
  const tap = openTap(TAP);
  setLink(TAP, { up: true });
  const redirect = (a: string, b: string) =>
    `filter add dev ${a} parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev ${b}`;
  const spawnWay = () => {
    JSON.parse(sh(["ip", "-json", "addr"]));
    JSON.parse(sh(["ip", "-json", "route"]));
    sh(
      ["tc", "-batch", "-"],
      [
        `qdisc add dev ${VETH} ingress`,
        `qdisc add dev ${TAP} ingress`,
        redirect(VETH, TAP),
        redirect(TAP, VETH),
      ]
        .map((l) => `${l}\n`)
        .join(""),
    );
  };
  const netlinkWay = () => {
    if (scanInterfaces().length !== 1) throw new Error("scan: expected one interface");
    connectLinks(VETH, TAP);
  };
  const times = { spawn: [] as number[], netlink: [] as number[] };
  for (let i = -3; i < RUNS; i++) {
    for (const [key, fn] of [
      ["spawn", spawnWay],
      ["netlink", netlinkWay],
    ] as const) {
      const ms = timed(fn);
      disconnectLinks(VETH, TAP);
      if (i >= 0) times[key].push(ms);
    }
  }
  const rows = Object.entries(times).map(([k, v]) => {
    const s = summary(v);
    return [k, ...[s.min, s.median, s.max].map((x) => x.toFixed(2))];
  });
  console.log(aligned(["ms per create", "min", "median", "max"], rows).join("\n"));
  console.log(`(${RUNS} runs each, after 3 untimed)`);
  closeSync(tap);
}

function outside(): void {
  const ns = `ccnet-bench-${process.pid}`;
  sh(["ip", "netns", "add", ns]);
  try {
    const ip = (...args: string[]) => sh(["ip", "-n", ns, ...args]);
    ip("link", "add", VETH, "type", "veth", "peer", "name", "ccb1");
    ip("addr", "add", "10.98.0.2/24", "dev", VETH);
    ip("addr", "add", "fd00:98::2/64", "dev", VETH, "nodad");
    ip("link", "set", VETH, "up");
    ip("link", "set", "ccb1", "up");
    ip("route", "add", "default", "via", "10.98.0.1");
    const r = Bun.spawnSync(
      ["ip", "netns", "exec", ns, process.execPath, import.meta.path, "--inside", "--runs", String(RUNS)],
      {
        stdio: ["ignore", "inherit", "inherit"],
      },
    );
    if (r.exitCode !== 0) process.exitCode = 1;
  } finally {
    sh(["ip", "netns", "delete", ns]);
  }
}

if (opts.inside) inside();
else outside();
