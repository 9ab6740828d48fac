/**
 * Network: a container in a network namespace the bench makes (a veth with 10.78.0.2/24, as
 * CNI leaves one; its peer, 10.78.0.1, in a second namespace: the "host side"), per contender
 * and round (order rotated):
 *  - `create` of that container, and of the same container in an empty namespace: what the
 *    network adds to create (for cc-oci-runtime: the scan, the tc redirects, the guest NIC);
 *  - throughput: the peer reads 64 MiB the container sends through one TCP connection (busybox
 *    nc on both ends; the container's side `head -c` of /dev/zero);
 *  - round trip: the median of 20 sequential HTTP GETs of a small file from the container's
 *    busybox httpd by the peer's busybox wget (each includes starting wget on the host).
 * No manager here, so no published port: the peer reaches the container's address directly
 * (with Docker a published port adds docker-proxy or a DNAT on the host side, the same for
 * every runtime). Every namespace is the bench's own, removed at the end.
 */
import { makeBundle } from "../../tests/lib/bundle.ts";
import { now } from "./clock.ts";
import type { Contender } from "./contenders.ts";
import { type Ctx, rotate } from "./context.ts";
import { median } from "./stats.ts";

const S = "network";
const TAG = `${process.pid}`;
const WITH_VETH = `ccbench-c-${TAG}`;
const EMPTY = `ccbench-e-${TAG}`;
const PEER = `ccbench-p-${TAG}`;
const IP = "10.78.0.2";
const BYTES = 64 << 20;
const GETS = 20;

function sh(argv: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

function must(argv: string[]): string {
  const r = sh(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.out.trim()}`);
  return r.out;
}

function makeNamespaces(): void {
  for (const ns of [WITH_VETH, EMPTY, PEER]) must(["ip", "netns", "add", ns]);
  must([
    "ip",
    "-n",
    WITH_VETH,
    "link",
    "add",
    "eth0",
    "type",
    "veth",
    "peer",
    "name",
    "peer0",
    "netns",
    PEER,
  ]);
  must(["ip", "-n", WITH_VETH, "addr", "add", `${IP}/24`, "dev", "eth0"]);
  must(["ip", "-n", WITH_VETH, "link", "set", "eth0", "up"]);
  must(["ip", "-n", PEER, "addr", "add", "10.78.0.1/24", "dev", "peer0"]);
  must(["ip", "-n", PEER, "link", "set", "peer0", "up"]);
}

function removeNamespaces(): void {
  for (const ns of [WITH_VETH, EMPTY, PEER]) sh(["ip", "netns", "delete", ns]);
}

function bundleIn(ns: string, args: string[]): string {
  return makeBundle({
    args,
    edit: (s) => {
      const linux = s.linux as { namespaces: { type: string; path?: string }[] };
      linux.namespaces = linux.namespaces.map((n) =>
        n.type === "network" ? { type: "network", path: `/run/netns/${ns}` } : n,
      );
    },
  });
}

const SERVER = ["sh", "-c", `nc -l -p 9001 -e head -c ${BYTES} /dev/zero & exec httpd -f -p 8080 -h /etc`];

/** Runs argv in the peer's namespace; its time in ms. */
async function timedInPeer(argv: string[]): Promise<{ ms: number; out: string; code: number }> {
  const t0 = now();
  const p = Bun.spawn(["ip", "netns", "exec", PEER, ...argv], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  const code = await p.exited;
  return { ms: now() - t0, out, code };
}

/** Waits until the container's httpd answers (a VM's guest takes a moment to listen). */
async function waitServing(): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const r = await timedInPeer([
      "timeout",
      "5",
      "busybox",
      "wget",
      "-q",
      "-O",
      "-",
      `http://${IP}:8080/hostname`,
    ]);
    if (r.code === 0) return;
    await Bun.sleep(100);
  }
  throw new Error(`the container's httpd at ${IP}:8080 never answered`);
}

export async function networkSection(ctx: Ctx, contenders: Contender[]): Promise<void> {
  const res = ctx.results;
  makeNamespaces();
  try {
    const server = bundleIn(WITH_VETH, SERVER);
    const idle = bundleIn(EMPTY, ["sleep", "100000"]);
    for (let round = 1; round <= ctx.runs && !ctx.stopped(); round++) {
      ctx.log(`network: round ${round}/${ctx.runs}`);
      for (const c of rotate(contenders, round)) {
        const empty = await c.createIdle(`net-e-${round}`, idle);
        await c.deleteForce(`net-e-${round}`);
        const id = `net-${round}`;
        const full = await c.createIdle(id, server);
        try {
          res.add(S, `net.create.${c.key}`, `create, with a veth: ${c.name}`, "ms", round, full.createMs);
          res.add(
            S,
            `net.createEmpty.${c.key}`,
            `create, empty namespace: ${c.name}`,
            "ms",
            round,
            empty.createMs,
          );
          res.add(
            S,
            `net.adds.${c.key}`,
            `what the network adds to create: ${c.name}`,
            "ms",
            round,
            full.createMs - empty.createMs,
          );
          await waitServing();
          const t = await timedInPeer(["sh", "-c", `busybox nc ${IP} 9001 </dev/null | wc -c`]);
          if (t.code !== 0 || Number(t.out.trim()) !== BYTES)
            throw new Error(`${c.name}: the transfer got ${t.out.trim()} bytes, not ${BYTES}`);
          res.add(
            S,
            `net.tput.${c.key}`,
            `TCP throughput, container to host side: ${c.name}`,
            "MiB/s",
            round,
            BYTES / 1048576 / (t.ms / 1000),
          );
          const rtts: number[] = [];
          for (let k = 0; k < GETS; k++) {
            const g = await timedInPeer(["busybox", "wget", "-q", "-O", "-", `http://${IP}:8080/hostname`]);
            if (g.code !== 0) throw new Error(`${c.name}: GET ${k} failed: ${g.out}`);
            rtts.push(g.ms);
          }
          res.add(
            S,
            `net.rtt.${c.key}`,
            `HTTP GET round trip (with wget's start): ${c.name}`,
            "ms",
            round,
            median(rtts),
          );
        } finally {
          await c.deleteForce(id);
        }
      }
    }
  } finally {
    for (const c of contenders) await c.deleteAll();
    removeNamespaces();
  }
  const has = (k: string) => contenders.some((c) => c.key === k);
  const name = (k: string) => contenders.find((c) => c.key === k)?.name ?? k;
  for (const fig of ["tput", "rtt", "create"]) {
    for (const [a, b] of [
      ["cc", "runc"],
      ["cc-template", "runc"],
    ] as const) {
      if (has(a) && has(b))
        res.ratio(S, `net.${fig}.${a}`, `net.${fig}.${b}`, `${fig}: ${name(a)} / ${name(b)}`);
    }
  }
}
