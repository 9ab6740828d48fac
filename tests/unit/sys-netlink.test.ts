/**
 * src/sys/netlink*.ts and net-scan.ts against the kernel, with iproute2 as the oracle.
 * Needs root; everything runs in network namespaces of its own:
 *
 *   C (the container's)              B (the manager's side)
 *   ccv0 10.99.0.2/24 fd00:99::2/64 ─── ccv1 10.99.0.1/24 fd00:99::1/64
 *   cctap0 (the VM's tap)
 *   G (a guest stand-in): ccg0 ─── ccg1
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { EAGAIN, setNonBlocking } from "../../src/sys/libc.ts";
import { configureInterface, type GuestInterface, scanInterfaces } from "../../src/sys/net-scan.ts";
import { addAddress } from "../../src/sys/netlink-addr.ts";
import { dumpLinks, getLink, setLink } from "../../src/sys/netlink-link.ts";
import { addRoute } from "../../src/sys/netlink-route.ts";
import { addIngressQdisc, connectLinks, disconnectLinks } from "../../src/sys/netlink-tc.ts";
import { openTap } from "../../src/sys/tap.ts";
import { ROOT_DIR } from "../lib/cli.ts";
import { IS_ROOT, inNetns, ipIn, run, TestNamespaces } from "../lib/netns.ts";

const namespaces = new TestNamespaces("nl");
let C = "";
let B = "";
let G = "";

beforeAll(() => {
  if (!IS_ROOT) return;
  C = namespaces.add("c");
  B = namespaces.add("b");
  G = namespaces.add("g");
  ipIn(C, "link", "add", "ccv0", "mtu", "1400", "type", "veth", "peer", "name", "ccv1", "netns", B);
  ipIn(C, "addr", "add", "10.99.0.2/24", "dev", "ccv0");
  ipIn(C, "addr", "add", "fd00:99::2/64", "dev", "ccv0", "nodad");
  ipIn(C, "link", "set", "ccv0", "up");
  ipIn(C, "link", "set", "lo", "up"); // loopback with addresses: never carried
  ipIn(C, "route", "add", "default", "via", "10.99.0.1");
  ipIn(C, "route", "add", "10.100.0.0/16", "via", "10.99.0.1", "metric", "50");
  ipIn(C, "-6", "route", "add", "default", "via", "fd00:99::1");
  ipIn(B, "addr", "add", "10.99.0.1/24", "dev", "ccv1");
  ipIn(B, "addr", "add", "fd00:99::1/64", "dev", "ccv1", "nodad");
  ipIn(B, "link", "set", "ccv1", "up");
  ipIn(G, "link", "add", "ccg0", "type", "veth", "peer", "name", "ccg1");
  ipIn(G, "link", "set", "ccg1", "up");
});
afterAll(() => namespaces.removeAll());

const macOf = (ns: string, link: string) =>
  (JSON.parse(ipIn(ns, "-json", "link", "show", link)) as { address: string }[])[0]?.address ?? "";
const tc = (ns: string, ...args: string[]) => run(["ip", "netns", "exec", ns, "tc", ...args]);

/** What ccv0 in C must scan as. */
const expectedScan = (): GuestInterface => ({
  name: "ccv0",
  mac: macOf(C, "ccv0"),
  mtu: 1400,
  addresses: [
    { family: 4, address: "10.99.0.2", prefixLength: 24 },
    { family: 6, address: "fd00:99::2", prefixLength: 64 },
  ],
  routes: [
    { family: 4, dst: "10.99.0.0/24", prefsrc: "10.99.0.2", scope: "link", protocol: 2 },
    { family: 6, dst: "fd00:99::/64", metric: 256, scope: "global", protocol: 2 },
    { family: 4, dst: "default", gateway: "10.99.0.1", scope: "global", protocol: 3 },
    { family: 4, dst: "10.100.0.0/16", gateway: "10.99.0.1", metric: 50, scope: "global", protocol: 3 },
    { family: 6, dst: "default", gateway: "fd00:99::1", metric: 1024, scope: "global", protocol: 3 },
  ],
});

describe.skipIf(!IS_ROOT)("scanInterfaces (needs root)", () => {
  test("the veth with its MAC, MTU, v4 and v6 addresses and routes; not lo, not link-local", () => {
    expect(inNetns(C, () => scanInterfaces())).toEqual([expectedScan()]);
  });

  test("the same from a process that lives in the namespace, as the stand-in does", () => {
    const out = run([
      "ip",
      "netns",
      "exec",
      C,
      process.execPath,
      "run",
      join(ROOT_DIR, "tests/lib/net-scan-probe.ts"),
    ]);
    expect(JSON.parse(out)).toEqual([expectedScan()]);
  });

  test("a link without addresses (a tap) is not carried", () => {
    const fd = inNetns(C, () => openTap("cctap9"));
    try {
      expect(inNetns(C, () => scanInterfaces().map((i) => i.name))).toEqual(["ccv0"]);
    } finally {
      closeSync(fd);
    }
  });
});

describe.skipIf(!IS_ROOT)("the guest side (needs root)", () => {
  test("configureInterface gives a NIC the scanned interface: it then scans the same", () => {
    const scanned = expectedScan();
    inNetns(G, () => configureInterface("ccg0", scanned));
    expect(inNetns(G, () => scanInterfaces())).toEqual([{ ...scanned, name: "ccg0" }]);
    expect(inNetns(G, () => getLink("ccg0"))).toMatchObject({ mac: scanned.mac, mtu: 1400, up: true });
    // Again: the routes are replaced, not duplicated; the addresses exist already.
    inNetns(G, () => {
      for (const r of scanned.routes) addRoute("ccg0", r);
    });
    expect(inNetns(G, () => scanInterfaces())).toEqual([{ ...scanned, name: "ccg0" }]);
    expect(() => inNetns(G, () => addAddress("ccg0", { address: "10.99.0.2", prefixLength: 24 }))).toThrow(
      "ccg0: add address 10.99.0.2/24: File exists (EEXIST)",
    );
  });

  test("errors are one line naming the link and what was asked", () => {
    expect(() => inNetns(G, () => setLink("nosuch0", { up: true }))).toThrow(
      "nosuch0: get link: No such device (ENODEV)",
    );
    expect(() => inNetns(G, () => setLink("ccg0", { mtu: 1 }))).toThrow(
      /^ccg0: set MTU 1: Invalid argument \(EINVAL\)/,
    );
    expect(() => inNetns(G, () => setLink("ccg0", { mac: "zz" }))).toThrow(
      "ccg0: MAC address \"zz\" is not six hex bytes separated by ':'",
    );
    expect(() => inNetns(G, () => addAddress("ccg0", { address: "10.0.0.300", prefixLength: 8 }))).toThrow(
      'ccg0: add address 10.0.0.300/8: "10.0.0.300" is not an IPv4 or IPv6 address',
    );
    expect(() => inNetns(G, () => addRoute("ccg0", { dst: "default", gateway: "192.0.2.1" }))).toThrow(
      /^ccg0: add route default via 192.0.2.1: Network is unreachable \(ENETUNREACH\)/,
    );
    expect(() => inNetns(G, () => addRoute("ccg0", { dst: "default" }))).toThrow(
      "ccg0: add route default: a default route without a gateway needs its family (4 or 6)",
    );
    const fd = inNetns(G, () => openTap("ccgtap0"));
    try {
      inNetns(G, () => addIngressQdisc("ccgtap0"));
      expect(() => inNetns(G, () => addIngressQdisc("ccgtap0"))).toThrow(
        /^ccgtap0: add ingress qdisc: File exists \(EEXIST\)/,
      );
    } finally {
      closeSync(fd);
    }
  });
});

/** An ARP request from mac/ip for target (the frame a guest sends first). */
function arpRequest(mac: string, ip: string, target: string): Buffer {
  const b = Buffer.alloc(42);
  const macBytes = Buffer.from(mac.replaceAll(":", ""), "hex");
  const ip4 = (s: string) => Buffer.from(s.split(".").map(Number));
  b.fill(0xff, 0, 6);
  macBytes.copy(b, 6);
  b.writeUInt16BE(0x0806, 12); // ARP
  b.writeUInt16BE(1, 14); // Ethernet
  b.writeUInt16BE(0x0800, 16); // IPv4
  b.writeUInt8(6, 18);
  b.writeUInt8(4, 19);
  b.writeUInt16BE(1, 20); // request
  macBytes.copy(b, 22);
  ip4(ip).copy(b, 28);
  ip4(target).copy(b, 38);
  return b;
}

/** The next ARP reply read from the tap within two seconds (other frames, MLD..., are skipped). */
async function arpReply(fd: number): Promise<Buffer | undefined> {
  const b = Buffer.alloc(2048);
  for (let i = 0; i < 200; i++) {
    try {
      const n = readSync(fd, b, 0, b.length, null);
      if (n >= 42 && b.readUInt16BE(12) === 0x0806 && b.readUInt16BE(20) === 2)
        return Buffer.from(b.subarray(0, n));
    } catch (err) {
      if (
        (err as NodeJS.ErrnoException).errno !== -EAGAIN &&
        (err as NodeJS.ErrnoException).code !== "EAGAIN"
      ) {
        throw err;
      }
      await Bun.sleep(10);
    }
  }
  return undefined;
}

const ingress = (ns: string, link: string) => ({
  qdiscs: tc(ns, "qdisc", "show", "dev", link),
  filters: tc(ns, "filter", "show", "dev", link, "ingress"),
});

describe.skipIf(!IS_ROOT)("tc redirect between the veth and the tap (needs root)", () => {
  test("a frame written to the tap leaves by the veth, the answer comes back to the tap", async () => {
    const fd = inNetns(C, () => openTap("cctap0"));
    try {
      inNetns(C, () => {
        setLink("cctap0", { up: true });
        connectLinks("ccv0", "cctap0");
      });
      for (const [from, to] of [
        ["ccv0", "cctap0"],
        ["cctap0", "ccv0"],
      ] as const) {
        const { qdiscs, filters } = ingress(C, from);
        expect(qdiscs).toContain("qdisc ingress ffff: parent ffff:fff1");
        expect(filters).toContain("filter parent ffff: protocol all pref 49152 u32");
        expect(filters).toContain("match 00000000/00000000 at 0");
        expect(filters).toContain(`mirred (Egress Redirect to device ${to}) stolen`);
      }

      // The guest takes the veth's MAC and address, and asks for its gateway (B's end).
      const guestMac = macOf(C, "ccv0");
      setNonBlocking(fd, true);
      writeSync(fd, arpRequest(guestMac, "10.99.0.2", "10.99.0.1"));
      const reply = await arpReply(fd);
      expect(reply).toBeDefined();
      const r = reply as Buffer;
      const peerMac = Buffer.from(macOf(B, "ccv1").replaceAll(":", ""), "hex");
      expect(r.subarray(0, 6).toString("hex")).toBe(guestMac.replaceAll(":", "")); // to the guest
      expect(r.subarray(22, 28)).toEqual(peerMac); // sender: B's veth end
      expect([...r.subarray(28, 32)]).toEqual([10, 99, 0, 1]);
      expect([...r.subarray(38, 42)]).toEqual([10, 99, 0, 2]);
      // B learnt the guest's MAC from the request: the frame did reach it.
      expect(ipIn(B, "neigh", "show", "10.99.0.2")).toContain(guestMac);

      inNetns(C, () => disconnectLinks("ccv0", "cctap0"));
      for (const link of ["ccv0", "cctap0"]) {
        const { qdiscs, filters } = ingress(C, link);
        expect(qdiscs).not.toContain("ingress");
        expect(filters).toBe("");
      }
      // Nothing left to undo is no error.
      inNetns(C, () => disconnectLinks("ccv0", "cctap0"));
    } finally {
      inNetns(C, () => disconnectLinks("ccv0", "cctap0")); // after a failure, for the next test
      closeSync(fd);
    }
    // The tap is gone with its fd: disconnecting from it still succeeds.
    expect(inNetns(C, () => dumpLinks().map((l) => l.name))).not.toContain("cctap0");
    inNetns(C, () => disconnectLinks("ccv0", "cctap0"));
  });

  test("a connection that fails half-way takes off what it added", () => {
    expect(() => inNetns(C, () => connectLinks("ccv0", "nosuch0"))).toThrow(
      "nosuch0: get link: No such device (ENODEV)",
    );
    expect(ingress(C, "ccv0")).toEqual({ qdiscs: expect.not.stringContaining("ingress"), filters: "" });
  });
});
