/**
 * Networking without a manager (the networking issue): the container's configuration names
 * a network namespace holding a veth with IPv4 and IPv6 addresses, as CNI leaves one; its
 * peer is in a second namespace, the "host side". The guest NIC takes the veth's MAC and
 * addresses, traffic crosses both ways (TCP: the container reaches the peer, the peer reaches
 * an httpd in the container), and nothing is left in the namespace afterwards: no tap, no
 * qdisc, also when QEMU or the stand-in is killed. Every namespace here is made by the test.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeBundle } from "../lib/bundle.ts";
import { qemuProcesses, Runtime, standinProcesses } from "../lib/runtime.ts";

const rt = new Runtime();
const tag = `${process.pid}`;
const CONTAINER_NS = `ccnet-c-${tag}`;
const PEER_NS = `ccnet-p-${tag}`;
const VETH = "eth0";
const PEER = "peer0";

function sh(cmd: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

function must(cmd: string[]): string {
  const r = sh(cmd);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.out}`);
  return r.out;
}

const inNs = (ns: string, ...cmd: string[]) => ["ip", "netns", "exec", ns, ...cmd];

beforeAll(() => {
  must(["ip", "netns", "add", CONTAINER_NS]);
  must(["ip", "netns", "add", PEER_NS]);
  must([
    "ip",
    "-n",
    CONTAINER_NS,
    "link",
    "add",
    VETH,
    "type",
    "veth",
    "peer",
    "name",
    PEER,
    "netns",
    PEER_NS,
  ]);
  must(["ip", "-n", CONTAINER_NS, "addr", "add", "10.77.0.2/24", "dev", VETH]);
  must(["ip", "-n", CONTAINER_NS, "addr", "add", "fd77::2/64", "dev", VETH, "nodad"]);
  must(["ip", "-n", CONTAINER_NS, "link", "set", VETH, "mtu", "1400", "up"]);
  must(["ip", "-n", CONTAINER_NS, "route", "add", "default", "via", "10.77.0.1"]);
  must(["ip", "-n", PEER_NS, "addr", "add", "10.77.0.1/24", "dev", PEER]);
  must(["ip", "-n", PEER_NS, "addr", "add", "fd77::1/64", "dev", PEER, "nodad"]);
  must(["ip", "-n", PEER_NS, "link", "set", PEER, "mtu", "1400", "up"]);
  must(["ip", "-n", PEER_NS, "link", "set", "lo", "up"]);
});

afterAll(async () => {
  await rt.dispose();
  sh(["ip", "netns", "delete", CONTAINER_NS]);
  sh(["ip", "netns", "delete", PEER_NS]);
});

function bundle(args: string[]): string {
  return makeBundle({
    args,
    edit: (s) => {
      const linux = s.linux as { namespaces: { type: string; path?: string }[] };
      linux.namespaces = linux.namespaces.map((n) =>
        n.type === "network" ? { type: "network", path: `/run/netns/${CONTAINER_NS}` } : n,
      );
    },
  });
}

/** What the runtime may leave in the container's namespace: the veth, as it found it. */
function namespaceIsClean(): void {
  const links = must(["ip", "-n", CONTAINER_NS, "-o", "link", "show"]);
  expect(links).not.toContain("cc-tap");
  expect(must(["tc", "-n", CONTAINER_NS, "qdisc", "show", "dev", VETH])).not.toContain("ingress");
  expect(must(["ip", "-n", CONTAINER_NS, "-o", "addr", "show", "dev", VETH])).toContain("10.77.0.2/24");
}

const macOf = (ns: string, dev: string) =>
  /link\/ether ([0-9a-f:]{17})/.exec(must(["ip", "-n", ns, "link", "show", dev]))?.[1];

describe("a network namespace with a veth (as CNI leaves it)", () => {
  test("the guest NIC takes its MAC, MTU, addresses and routes; the container reaches the peer", async () => {
    // The peer listens once; the container connects and says who it is.
    const listener = Bun.spawn(inNs(PEER_NS, "busybox", "nc", "-l", "-p", "7777"), { stdout: "pipe" });
    await Bun.sleep(300);
    const r = await rt.run(
      [
        "run",
        "--bundle",
        bundle([
          "sh",
          "-c",
          "ip -o addr show dev eth0; ip -o link show dev eth0; ip route; echo hello-from-the-vm | nc 10.77.0.1 7777",
        ]),
        "n1",
      ],
      { env: { CC_OCI_TEMPLATE: "0" } },
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("inet 10.77.0.2/24");
    expect(r.stdout).toContain("inet6 fd77::2/64");
    expect(r.stdout).toContain("mtu 1400");
    expect(r.stdout).toContain(macOf(CONTAINER_NS, VETH) as string);
    expect(r.stdout).toMatch(/default via 10\.77\.0\.1 dev eth0/);
    expect(await new Response(listener.stdout).text()).toBe("hello-from-the-vm\n");
    namespaceIsClean();
    expect(rt.leftovers()).toEqual([]);
  }, 180_000);

  test("templated: the peer reaches an httpd in the container (v4 and v6); killing QEMU leaves nothing", async () => {
    const env = { CC_OCI_TEMPLATE: "1" };
    const r = await rt.run(
      ["run", "-d", "--bundle", bundle(["httpd", "-f", "-p", "8080", "-h", "/etc"]), "n2"],
      {
        env,
      },
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    let got = { code: -1, out: "" };
    for (let i = 0; i < 50 && got.code !== 0; i++) {
      got = sh(
        inNs(PEER_NS, "timeout", "10", "busybox", "wget", "-q", "-O", "-", "http://10.77.0.2:8080/hostname"),
      );
      if (got.code !== 0) await Bun.sleep(200);
    }
    expect(got).toEqual({ code: 0, out: "busybox\n" });
    const v6 = sh(
      inNs(PEER_NS, "timeout", "10", "busybox", "wget", "-q", "-O", "-", "http://[fd77::2]:8080/hostname"),
    );
    expect(v6).toEqual({ code: 0, out: "busybox\n" });
    // The redirect is in place while it runs.
    expect(must(["tc", "-n", CONTAINER_NS, "qdisc", "show", "dev", VETH])).toContain("ingress");
    const [qemu] = qemuProcesses(rt.root);
    expect(qemu).toBeDefined();
    process.kill(qemu as number, "SIGKILL");
    let status = "";
    for (let i = 0; i < 100 && status !== "stopped"; i++) {
      status =
        (JSON.parse((await rt.run(["state", "n2"])).stdout || "{}") as { status?: string }).status ?? "";
      if (status !== "stopped") await Bun.sleep(100);
    }
    expect(status).toBe("stopped");
    namespaceIsClean();
    expect((await rt.run(["delete", "n2"])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
  }, 240_000);

  test("a stand-in killed outright: delete takes its redirect off the namespace", async () => {
    const r = await rt.run(["run", "-d", "--bundle", bundle(["sleep", "1000"]), "n3"], {
      env: { CC_OCI_TEMPLATE: "1" },
    });
    expect(r.code).toBe(0);
    expect(must(["tc", "-n", CONTAINER_NS, "qdisc", "show", "dev", VETH])).toContain("ingress");
    const [standin] = standinProcesses(rt.root);
    expect(standin).toBeDefined();
    process.kill(standin as number, "SIGKILL");
    for (let i = 0; i < 100 && qemuProcesses(rt.root).length > 0; i++) await Bun.sleep(100);
    expect(qemuProcesses(rt.root)).toEqual([]);
    // Nobody took it off yet: the stand-in could not.
    expect(must(["tc", "-n", CONTAINER_NS, "qdisc", "show", "dev", VETH])).toContain("ingress");
    const del = await rt.run(["delete", "n3"]);
    expect(del.stderr).toBe("");
    expect(del.code).toBe(0);
    namespaceIsClean();
    expect(rt.leftovers()).toEqual([]);
  }, 180_000);
});
