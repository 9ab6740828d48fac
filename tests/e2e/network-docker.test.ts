/**
 * Docker 20.10 networking (issue 12) with `--runtime cor`: containerd and dockerd run in the
 * file's own network namespace (lib/netns.ts) with docker's networking on: the default
 * bridge (docker0), iptables and docker-proxy, all there. The containers' traffic, and every
 * client on the "host side", stays in that namespace.
 * - default bridge: the container has docker's address, reaches another container by IP,
 *   serves a port published with `-p 8080:80`, and moves 100 MiB each way through one TCP
 *   connection unchanged;
 * - a user-defined bridge: two containers by name (docker's embedded DNS);
 * - a dual-stack user network: the container's IPv6 address, reached by another by v6;
 * - `docker network connect` on a running container: the new interface takes the VM's spare
 *   network card, and the container is reached on its new address;
 * - `--network host`: works with runc; cc-oci-runtime refuses it with an error (a VM cannot
 *   share the host's network stack).
 * Requires root; installs the managers when missing; boots up to 7 VMs, 3 at once.
 */
import { describe } from "bun:test";
import type { DockerLikeCli } from "./lib/cli.ts";
import { dockerSuite, IMAGE } from "./lib/docker.ts";
import type { Dockerd } from "./lib/managers.ts";
import { must } from "./lib/proc.ts";
import type { Scenario } from "./lib/scenario.ts";
import { BOOT_MS } from "./lib/suite.ts";
import {
  checkPeer,
  checkPublished,
  checkTransfers,
  literal,
  reachSteps,
  transfers,
  waitPage,
  webScript,
} from "./lib/traffic.ts";
import { BIN } from "./lib/workspace.ts";

/** cc-oci-runtime (a VM per container) rather than runc or another namespace runtime. */
const OURS = BIN.endsWith("cc-oci-runtime");
/** `docker run` with the runtime under test and docker's default network. */
const RUN = ["run", "--runtime", "cor"];
const V6_SUBNET = "fd00:cc:e2e::/64";

/** `docker run -d --name NAME FLAGS` of a web container (lib/traffic.ts), needed by the rest. */
function runWeb(docker: Dockerd, s: Scenario, name: string, flags: string[]) {
  return s.need(
    "run",
    docker.docker([...RUN, "-d", "--name", name, ...flags, IMAGE, "sh", "-c", webScript(`${name}-page`)], {
      timeout: BOOT_MS,
    }),
  );
}

const e2e = dockerSuite(
  "network-docker",
  async (docker, go, ws, netns) => {
    if (!netns) throw new Error("no network namespace");
    const ns = netns;
    const cli: DockerLikeCli = { cli: (args, opts) => docker.docker(args, opts), run: RUN, image: IMAGE };
    // The user-defined networks, before any scenario needs them.
    for (const net of [["n1"], ["--ipv6", "--subnet", V6_SUBNET, "n6"]]) {
      await must(docker.argv(["network", "create", ...net]), { env: docker.clientEnv(), timeout: 60_000 });
    }

    go("bridge", "docker default bridge", async (s) => {
      const name = "e2e-web";
      await runWeb(docker, s, name, ["-p", "8080:80"]);
      const ip = await docker.inspect(name, "{{.NetworkSettings.IPAddress}}");
      const len = await docker.inspect(name, "{{.NetworkSettings.IPPrefixLen}}");
      const gw = await docker.inspect(name, "{{.NetworkSettings.Gateway}}");
      Object.assign(s.facts, { ip, len, gw });
      await waitPage(ns, s, "ready", `http://${ip}/`, `${name}-page`);
      await s.step("addr", docker.docker(["exec", name, "ip", "-o", "-4", "addr", "show", "eth0"]));
      await s.step("route", docker.docker(["exec", name, "ip", "-4", "route"]));
      await reachSteps(cli, ns, s, ip, gw);
      await transfers(ns, s, ip, ws.path("big.bin"), () =>
        docker.docker(["exec", name, "cat", "/tmp/down.sha256"]),
      );
      // Last: an interface added to the running container.
      await s.step("connect", docker.docker(["network", "connect", "n1", name], { timeout: 60_000 }));
      s.facts.n1ip = await docker.inspect(
        name,
        '{{with index .NetworkSettings.Networks "n1"}}{{.IPAddress}}{{end}}',
      );
      // The VM takes the new interface on a spare card once it is in the namespace.
      const n1ip = s.facts.n1ip as string;
      for (let i = 0; i < 40; i++) {
        const addr = await s.step("connectedAddr", docker.docker(["exec", name, "ip", "-o", "-4", "addr"]));
        if (n1ip && addr.stdout.includes(`inet ${n1ip}/`)) break;
        await Bun.sleep(500);
      }
      if (n1ip) await waitPage(ns, s, "connectedPage", `http://${n1ip}/`, `${name}-page`);
    });

    go("named", "docker user-defined bridge", async (s) => {
      const name = "n1-srv";
      await runWeb(docker, s, name, ["--network", "n1"]);
      const ip = await docker.inspect(name, '{{(index .NetworkSettings.Networks "n1").IPAddress}}');
      s.facts.ip = ip;
      await waitPage(ns, s, "ready", `http://${ip}/`, `${name}-page`);
      await s.step(
        "client",
        docker.docker(
          [
            ...RUN,
            "--rm",
            "--network",
            "n1",
            "--name",
            "n1-cli",
            IMAGE,
            "sh",
            "-c",
            `nslookup ${name} 127.0.0.11; timeout 20 wget -q -O - http://${name}/`,
          ],
          { timeout: BOOT_MS },
        ),
      );
    });

    go("v6", "docker dual-stack user network", async (s) => {
      const name = "v6-srv";
      await runWeb(docker, s, name, ["--network", "n6"]);
      const net = (f: string) => docker.inspect(name, `{{(index .NetworkSettings.Networks "n6").${f}}}`);
      const ip = await net("IPAddress");
      const ip6 = await net("GlobalIPv6Address");
      Object.assign(s.facts, { ip, ip6 });
      await waitPage(ns, s, "ready", `http://${ip}/`, `${name}-page`);
      await s.step("addr6", docker.docker(["exec", name, "ip", "-o", "-6", "addr", "show", "eth0"]));
      // A fresh v6 address may still be tentative (DAD) for a second or two: a few tries.
      const ping = `i=0; until ping -6 -c 1 -W 3 ${ip6}; do i=$((i+1)); [ $i -ge 10 ] && exit 1; sleep 1; done`;
      await s.step(
        "client6",
        docker.docker(
          [
            ...RUN,
            "--rm",
            "--network",
            "n6",
            IMAGE,
            "sh",
            "-c",
            `${ping} && timeout 20 wget -q -O - "http://[${ip6}]/"`,
          ],
          { timeout: BOOT_MS },
        ),
      );
    });

    go("host", "docker --network host", async (s) => {
      await s.step(
        "run",
        docker.docker([...RUN, "--rm", "--network", "host", IMAGE, "ip", "-o", "link"], { timeout: BOOT_MS }),
      );
    });
  },
  { network: true },
);

/** Each of `lines` (regexps) matches a line of step `key`'s stdout. */
function hasLines(s: Scenario, key: string, lines: RegExp[]): void {
  const out = s.check(key, { code: 0 }).stdout;
  for (const re of lines) {
    if (!out.split("\n").some((l) => re.test(l))) throw new Error(s.explain(key, `no line matches ${re}`));
  }
}

describe("docker --runtime cor: networking", () => {
  e2e.test("default bridge: the container has docker's address and route", "bridge", (s) => {
    s.check("run", { code: 0 });
    s.fact<string>("ip", (v) => /^\d+\.\d+\.\d+\.\d+$/.test(v), "an IPv4 address in docker inspect", "run");
    hasLines(s, "addr", [new RegExp(`\\binet ${literal(s.facts.ip)}/${s.facts.len}\\b`)]);
    hasLines(s, "route", [new RegExp(`^default via ${literal(s.facts.gw)} dev eth0\\b`)]);
  });

  e2e.test(
    "default bridge: the namespace's host side reaches the container by its address",
    "bridge",
    (s) => {
      s.check("ready", { code: 0, stdout: "e2e-web-page\n" });
    },
  );

  e2e.test("default bridge: another container reaches it by IP (ping, wget)", "bridge", (s) => {
    checkPeer(s, "e2e-web-page");
  });

  e2e.test("-p 8080:80 answers on the host side (127.0.0.1 and the bridge's address)", "bridge", (s) => {
    checkPublished(s, "e2e-web-page");
  });

  e2e.test("100 MiB each way through one TCP connection, sha256 unchanged", "bridge", checkTransfers);

  e2e.test(
    "network connect on a running container: it gets the new network's address, reached on it",
    "bridge",
    (s) => {
      s.check("connect", { code: 0 });
      s.fact<string>("n1ip", (v) => /^\d+\.\d+\.\d+\.\d+$/.test(v), "an address on n1", "connect");
      hasLines(s, "connectedAddr", [new RegExp(`\\binet ${literal(s.facts.n1ip)}/`)]);
      s.check("connectedPage", { code: 0, stdout: "e2e-web-page\n" });
    },
  );

  e2e.test("user-defined bridge: a container reaches another by name (embedded DNS)", "named", (s) => {
    s.check("ready", { code: 0, stdout: "n1-srv-page\n" });
    s.check("client", { code: 0, stdout: /^n1-srv-page$/m });
  });

  e2e.test("dual-stack network: the container has its IPv6 address, another reaches it by v6", "v6", (s) => {
    s.check("ready", { code: 0, stdout: "v6-srv-page\n" });
    const ip6 = s.fact<string>(
      "ip6",
      (v) => v.startsWith("fd00:cc:e2e:"),
      `an address in ${V6_SUBNET}`,
      "run",
    );
    hasLines(s, "addr6", [new RegExp(`\\binet6 ${literal(ip6)}/64\\b`)]);
    s.check("client6", { code: 0, stdout: /^v6-srv-page$/m });
  });

  e2e.test(
    OURS
      ? "--network host: refused with an error"
      : "--network host: the managers' namespace (docker0, no eth0)",
    "host",
    (s) => {
      const r = s.steps.run;
      if (!r) throw new Error(s.explain("run", "the step never ran"));
      if (OURS) {
        if (r.code === 0) throw new Error(s.explain("run", "docker run --network host succeeded"));
        return;
      }
      hasLines(s, "run", [/: docker0: /]);
      if (/: eth0[:@]/.test(r.stdout))
        throw new Error(s.explain("run", "the machine's eth0 is in the container"));
    },
  );
});
