/**
 * podman 4.3 networking (issue 12) with `--runtime BIN`: every podman command (and so conmon
 * and netavark, Debian 12's podman network backend) runs in the file's own network
 * namespace (lib/netns.ts), so its default network ("podman", bridge podman0, 10.88.0.0/16)
 * and its iptables rules are made there. A container has podman's address, serves a port
 * published with `-p 8080:80` on the namespace's host side, and another container reaches it
 * by IP. Requires root; installs the managers when missing; boots 2 VMs.
 */
import { describe } from "bun:test";
import { join } from "node:path";
import type { DockerLikeCli } from "./lib/cli.ts";
import { buildImage, IMAGE } from "./lib/image.ts";
import { Podman } from "./lib/managers.ts";
import { BOOT_MS, suite } from "./lib/suite.ts";
import { checkPeer, checkPublished, literal, reachSteps, waitPage, webScript } from "./lib/traffic.ts";

const RUN = ["run", "--pull", "never"];
const runtimeLogs = () => [join(Podman.RUNTIME_ROOT, "cc-oci-runtime.log")];

const e2e = suite(
  "network-podman",
  runtimeLogs,
  async (ws, go, netns) => {
    if (!netns) throw new Error("no network namespace");
    const ns = netns;
    const podman = new Podman(ws, ns);
    const cli: DockerLikeCli = { cli: (args, opts) => podman.podman(args, opts), run: RUN, image: IMAGE };
    const { ociTar } = await buildImage(ws.path("image"));
    await podman.importImage(ociTar);

    go("web", "podman default network", async (s) => {
      const name = "p-web";
      s.steps.backend = await podman.podman(["info", "--format", "{{.Host.NetworkBackend}}"], {
        timeout: 60_000,
      });
      const run = await s.need(
        "run",
        podman.podman(
          [...RUN, "-d", "--name", name, "-p", "8080:80", IMAGE, "sh", "-c", webScript(`${name}-page`)],
          {
            timeout: BOOT_MS,
          },
        ),
      );
      podman.remember(run.stdout.trim());
      const inspect = async (f: string) =>
        (await podman.podman(["inspect", "-f", f, name], { timeout: 30_000 })).stdout.trim();
      const ip = await inspect("{{.NetworkSettings.IPAddress}}");
      const len = await inspect("{{.NetworkSettings.IPPrefixLen}}");
      const gw = await inspect("{{.NetworkSettings.Gateway}}");
      Object.assign(s.facts, { ip, len, gw });
      await waitPage(ns, s, "ready", `http://${ip}/`, `${name}-page`);
      await s.step(
        "addr",
        podman.podman(["exec", name, "ip", "-o", "-4", "addr", "show", "eth0"], { timeout: 60_000 }),
      );
      await reachSteps(cli, ns, s, ip, gw);
    });
  },
  { network: true },
);

describe("podman --runtime cc-oci-runtime: networking", () => {
  e2e.test("default network (netavark): the container has podman's address", "web", (s) => {
    s.check("backend", { code: 0, stdout: "netavark\n" });
    s.check("run", { code: 0, stdout: /^[0-9a-f]{64}\n$/ });
    s.fact<string>(
      "ip",
      (v) => /^10\.88\.\d+\.\d+$/.test(v),
      "an address of podman's default network",
      "run",
    );
    s.check("addr", { code: 0, stdout: new RegExp(`\\binet ${literal(s.facts.ip)}/${s.facts.len}\\b`) });
    s.check("ready", { code: 0, stdout: "p-web-page\n" });
  });

  e2e.test("-p 8080:80 answers on the host side (127.0.0.1 and the bridge's address)", "web", (s) => {
    checkPublished(s, "p-web-page");
  });

  e2e.test("another container reaches it by IP (ping, wget)", "web", (s) => {
    checkPeer(s, "p-web-page");
  });
});
