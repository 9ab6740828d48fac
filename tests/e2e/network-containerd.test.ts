/**
 * containerd 1.6 networking (issue 12): `ctr run --cni` with Debian's CNI bridge plugin
 * (containernetworking-plugins, /usr/lib/cni) and a conflist this file writes in its
 * workspace. containerd runs in the file's own network namespace (lib/netns.ts), and so does
 * every ctr command, which is what runs the CNI plugins: the bridge (cni-e2e0), the veths and
 * the address reservations are made there. ctr 1.6 reads its conflist from /etc/cni/net.d
 * and keeps its CNI cache in /var/lib/cni, with no flag to change either: each ctr command
 * runs in a mount namespace of its own (`ip netns exec`) where the workspace's directories
 * are bound over /etc/cni/net.d and /var/lib. A container gets an address from the plugin
 * (host-local IPAM) and is reachable from the namespace's host side. Requires root; installs
 * the managers when missing; boots 1 VM.
 */
import { describe } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildImage, IMAGE } from "./lib/image.ts";
import { Containerd } from "./lib/managers.ts";
import { CTR } from "./lib/packages.ts";
import { BOOT_MS, suite } from "./lib/suite.ts";
import { waitPage, webScript } from "./lib/traffic.ts";
import { BIN } from "./lib/workspace.ts";

const NETWORK = "e2e-bridge";
const SUBNET = "10.77.0.0/24";
let containerd: Containerd | undefined;

function runtimeLogs(): string[] {
  return containerd ? [join(containerd.runcRoot, containerd.ns, "cc-oci-runtime.log")] : [];
}

const e2e = suite(
  "network-containerd",
  runtimeLogs,
  async (ws, go, netns) => {
    if (!netns) throw new Error("no network namespace");
    const ns = netns;
    const confDir = ws.path("cni/net.d");
    const varLib = ws.path("cni/var-lib");
    const ipam = ws.path("cni/ipam");
    for (const d of [confDir, varLib, ipam]) mkdirSync(d, { recursive: true });
    writeFileSync(
      join(confDir, "10-e2e.conflist"),
      JSON.stringify(
        {
          cniVersion: "1.0.0",
          name: NETWORK,
          plugins: [
            {
              type: "bridge",
              bridge: "cni-e2e0",
              isGateway: true,
              ipMasq: false,
              hairpinMode: true,
              ipam: {
                type: "host-local",
                dataDir: ipam,
                ranges: [[{ subnet: SUBNET, gateway: "10.77.0.1" }]],
                routes: [{ dst: "0.0.0.0/0" }],
              },
            },
          ],
        },
        null,
        2,
      ),
    );
    const c = await Containerd.start(ws, ns);
    containerd = c;
    // Every ctr command (teardown's too) in the namespace, with the workspace's CNI directories.
    c.withCtr((argv) =>
      ns.exec([
        "sh",
        "-c",
        'mount --bind "$0" /etc/cni/net.d && mount --bind "$1" /var/lib && shift && exec "$@"',
        confDir,
        varLib,
        ...argv,
      ]),
    );
    ws.onTeardown("ctr containers", () => c.removeAll());
    const image = await buildImage(ws.path("image"));
    await c.importImage(image.ociTar);

    go("web", "ctr run --cni", async (s) => {
      const id = "c-web";
      await s.need(
        "run",
        c.ctr(
          [
            "run",
            "-d",
            "--cni",
            "--runc-binary",
            BIN,
            "--runc-root",
            c.runcRoot,
            IMAGE,
            id,
            "sh",
            "-c",
            webScript(`${id}-page`),
          ],
          { timeout: BOOT_MS },
        ),
      );
      const addr = await s.step(
        "addr",
        c.ctr(["task", "exec", "--exec-id", "addr", id, "ip", "-o", "-4", "addr", "show", "eth0"], {
          timeout: 60_000,
        }),
      );
      const ip = /\binet (\d+\.\d+\.\d+\.\d+)\//.exec(addr.stdout)?.[1] ?? "";
      s.facts.ip = ip;
      // host-local keeps one file per address it handed out, named by the address.
      const reserved = readdirSync(join(ipam, NETWORK)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
      s.facts.reserved = reserved;
      s.steps.route = await c.ctr(["task", "exec", "--exec-id", "route", id, "ip", "-4", "route"], {
        timeout: 60_000,
      });
      // By the address the plugin handed out, even when the container does not show it.
      const target = ip || reserved[0];
      if (target) await waitPage(ns, s, "ready", `http://${target}/`, `${id}-page`);
    });
  },
  { network: true },
);

describe(`ctr run --cni (${CTR}, the bridge plugin)`, () => {
  e2e.test("the container has an address from the plugin's IPAM", "web", (s) => {
    s.check("run", { code: 0 });
    const ip = s.fact<string>("ip", (v) => v.startsWith("10.77.0."), `an address in ${SUBNET}`, "addr");
    s.fact<string[]>(
      "reserved",
      (v) => v.length === 1 && v[0] === ip,
      `host-local's one reservation, ${ip}`,
      "addr",
    );
    s.check("route", { code: 0, stdout: /^default via 10\.77\.0\.1 dev eth0\b/m });
  });

  e2e.test("the namespace's host side reaches it by that address", "web", (s) => {
    s.check("ready", { code: 0, stdout: "c-web-page\n" });
  });
});
