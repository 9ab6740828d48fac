/**
 * Docker 20.10 (Debian's docker.io) drives cc-oci-runtime as `--runtime cor` (lib/docker.ts):
 * `docker run` in the foreground: `--rm`, `-ti` through a pty, and the container's settings
 * (a volume, hostname, user, environment, working directory, docker's /etc files, the exit
 * code). Requires root; installs the managers when missing; boots 3 VMs at once.
 */
import { describe } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkRunRmEchoHi, inspectExitCode, runRmEchoHi } from "./lib/cli.ts";
import { dockerCli, dockerSuite, IMAGE, interactive, RUN } from "./lib/docker.ts";
import type { Scenario } from "./lib/scenario.ts";
import { BOOT_MS } from "./lib/suite.ts";

const e2e = dockerSuite("docker-run", (docker, go, ws) => {
  const cli = dockerCli(docker);
  const vol = ws.path("vol");
  mkdirSync(vol);
  chmodSync(vol, 0o777);
  writeFileSync(join(vol, "in.txt"), "from-the-host\n");

  go("tty", "docker run -ti", async (s) => {
    await interactive(docker, s, "runTty", [...RUN, "-ti", "--rm", "--name", "e2e-tty", IMAGE, "sh"], 5);
  });

  go("rm", "docker run --rm", async (s) => {
    await runRmEchoHi(cli, s, "e2e-rm");
  });

  go("settings", "docker run settings, exit 3", async (s) => {
    const name = "e2e-settings";
    const script = [
      'echo "hostname=$(hostname)"',
      'echo "etc-hostname=$(cat /etc/hostname)"',
      'echo "id=$(id -u):$(id -g)"',
      'echo "FOO=$FOO"',
      'echo "SPACED=$SPACED"',
      'echo "pwd=$(pwd)"',
      'echo "in=$(cat /data/in.txt)"',
      "echo written-by-the-container > /data/out.txt && echo write=ok",
      "[ -f /etc/hosts ] && grep -q localhost /etc/hosts && echo hosts=ok",
      "[ -f /etc/resolv.conf ] && echo resolv=ok",
      "exit 3",
    ].join("; ");
    await s.step(
      "run",
      docker.docker(
        [
          ...RUN,
          "--name",
          name,
          "--hostname",
          "e2e-host",
          "--user",
          "1000:1000",
          "-e",
          "FOO=bar",
          "-e",
          "SPACED=a b",
          "-w",
          "/tmp",
          "-v",
          `${vol}:/data`,
          IMAGE,
          "sh",
          "-c",
          script,
        ],
        { timeout: BOOT_MS },
      ),
    );
    s.steps.inspect = await inspectExitCode(cli, name);
    const out = join(vol, "out.txt");
    s.facts.hostFile = existsSync(out) ? readFileSync(out, "utf8") : null;
    s.facts.hostFileUid = existsSync(out) ? statSync(out).uid : null;
  });
});

/** The settings container's output has each of `lines` as a whole line (it exits 3). */
function checkOutputLines(s: Scenario, lines: string[]): void {
  const out = s.check("run", { code: 3 }).stdout;
  for (const line of lines) {
    if (!out.split("\n").includes(line)) throw new Error(s.explain("run", `no line ${JSON.stringify(line)}`));
  }
}

describe("docker --runtime cor: run", () => {
  e2e.test("run --rm IMAGE echo hi", "rm", checkRunRmEchoHi);

  e2e.test("run -ti: an interactive shell through a pty", "tty", (s) => {
    s.check("runTty", { code: 5, stdout: /tty-42/ });
  });

  e2e.test("run -ti: the client's terminal size reaches the container", "tty", (s) => {
    s.fact<string>("runTtySize", (v) => v === "40 120", '"40 120" from stty size', "runTty");
  });

  e2e.test("run exiting 3 -> inspect ExitCode 3", "settings", (s) => {
    s.check("run", { code: 3 });
    s.check("inspect", { code: 0, stdout: "3\n" });
  });

  e2e.test("-v volume, --hostname, --user, -e, -w", "settings", (s) => {
    checkOutputLines(s, [
      "hostname=e2e-host",
      "id=1000:1000",
      "FOO=bar",
      "SPACED=a b",
      "pwd=/tmp",
      "in=from-the-host",
      "write=ok",
    ]);
    s.fact<string>(
      "hostFile",
      (v) => v === "written-by-the-container\n",
      "the container's write on the host",
      "run",
    );
    s.fact<number>("hostFileUid", (v) => v === 1000, "owned on the host by the --user uid (1000)", "run");
  });

  e2e.test(
    "--network none: hostname, /etc/hostname, /etc/hosts and /etc/resolv.conf from docker",
    "settings",
    (s) => {
      checkOutputLines(s, ["etc-hostname=e2e-host", "hosts=ok", "resolv=ok"]);
    },
  );
});
