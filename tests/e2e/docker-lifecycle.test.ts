/**
 * Docker 20.10 (Debian's docker.io) drives cc-oci-runtime as `--runtime cor` (lib/docker.ts):
 * one long-running container, logged, exec'ed into (also through a pty), listed, paused and
 * force-removed. Requires root; installs the managers when missing; boots 1 VM.
 */
import { describe } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  checkCheckpointSteps,
  checkExecSteps,
  checkpointSteps,
  execSteps,
  psByName,
  runDetached,
} from "./lib/cli.ts";
import { dockerCli, dockerSuite, interactive, logsMatch } from "./lib/docker.ts";
import { cmd, countLines, sleep, waitFor } from "./lib/proc.ts";
import { alive } from "./lib/workspace.ts";

let execRoot = "";

async function findmntType(path: string): Promise<string> {
  return (await cmd(["findmnt", "-n", "-o", "FSTYPE", "--mountpoint", path])).stdout.trim();
}

const e2e = dockerSuite("docker-lifecycle", (docker, go) => {
  execRoot = docker.execRoot;
  const cli = dockerCli(docker);

  go("checkpoint", "docker checkpoint create / start --checkpoint", async (s) => {
    const name = "e2e-ck";
    await checkpointSteps(cli, s, name, {
      checkpoint: (n) => ["checkpoint", "create", n, "cp1"],
      restore: (n) => ["start", "--checkpoint", "cp1", n],
      // The container's rw layer as the dump left it.
      dumped: async () => {
        const file = join(docker.dataRoot, "..", "count-at-dump");
        await s.need("cp", docker.docker(["cp", `${name}:/count`, file], { timeout: 60_000 }));
        return readFileSync(file, "utf8").trim().split("\n");
      },
    });
  });

  go("long", "docker long-running container", async (s) => {
    const name = "e2e-long";
    await runDetached(
      cli,
      s,
      name,
      'echo started; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done',
    );
    await logsMatch(docker, s, "logs", name, /^started\ntick 1$/m);
    const pid = Number(await docker.inspect(name, "{{.State.Pid}}"));
    s.facts.pid = pid;
    const key = await docker.inspect(name, "{{.NetworkSettings.SandboxKey}}");
    s.facts.sandboxKey = key;
    // libnetwork-setkey (the prestart hook) makes this netns mount; nothing else does.
    s.facts.sandboxMount = key ? await findmntType(key) : "";

    await execSteps(cli, s, name, 6);
    await s.step("top", docker.docker(["top", name], { timeout: 60_000 }));

    const ticks = async () =>
      countLines((await docker.docker(["logs", name], { timeout: 30_000 })).stdout, /^tick /);
    await s.step("pause", docker.docker(["pause", name], { timeout: 60_000 }));
    s.facts.pausedStatus = await docker.inspect(name, "{{.State.Status}}");
    const t1 = await ticks();
    await sleep(2_500);
    const t2 = await ticks();
    s.facts.ticksWhilePaused = t2 - t1;
    await s.step("unpause", docker.docker(["unpause", name], { timeout: 60_000 }));
    s.facts.unpausedStatus = await docker.inspect(name, "{{.State.Status}}");
    s.facts.ticksAfterUnpause = await waitFor(
      "ticks after unpause",
      async () => {
        const t = await ticks();
        return t > t2 + 2 ? t - t2 : undefined;
      },
      20_000,
    ).catch(() => 0);

    // Last before rm -f: a hung exec holds dockerd's lock on the container.
    await interactive(docker, s, "execTty", ["exec", "-ti", name, "sh"], 4, 60_000);
    await s.step("rmf", docker.docker(["rm", "-f", name], { timeout: 60_000 }));
    s.steps.psAfterRm = await psByName(cli, name);
    s.facts.pidGone = await waitFor(
      "the stand-in to exit",
      () => (alive(pid) ? undefined : true),
      30_000,
    ).catch(() => false);
  });
});

describe("docker --runtime cor: a long-running container", () => {
  e2e.test(
    "checkpoint create, start --checkpoint: the counter goes on from where it was, stop gives its status",
    "checkpoint",
    checkCheckpointSteps,
  );

  e2e.test("run -d, then logs (no -t)", "long", (s) => {
    s.check("run", { code: 0, stdout: /^[0-9a-f]{64}\n$/ });
    s.check("logs", { code: 0, stdout: /^started\ntick 1\n/ });
    s.fact<number>("pid", (v) => v > 0, "a host pid in State.Pid");
  });

  e2e.test("exec", "long", (s) => {
    checkExecSteps(s, 6);
  });

  e2e.test("exec -ti: an interactive shell through a pty", "long", (s) => {
    s.check("execTty", { code: 4, stdout: /tty-42/ });
  });

  e2e.test("the libnetwork-setkey prestart hook ran (the sandbox's netns mount exists)", "long", (s) => {
    s.check("run", { code: 0 });
    s.fact<string>(
      "sandboxKey",
      (v) => typeof v === "string" && execRoot !== "" && v.startsWith(execRoot),
      "a path under the exec root",
    );
    s.fact<string>("sandboxMount", (v) => v === "nsfs", "an nsfs mount made by libnetwork-setkey");
  });

  e2e.test("pause / unpause: the workload stops and goes on", "long", (s) => {
    s.check("pause", { code: 0, stdout: "e2e-long\n" });
    s.fact<string>("pausedStatus", (v) => v === "paused", "paused", "pause");
    s.fact<number>(
      "ticksWhilePaused",
      (v) => v <= 1,
      "no output while paused (at most one in flight)",
      "pause",
    );
    s.check("unpause", { code: 0, stdout: "e2e-long\n" });
    s.fact<string>("unpausedStatus", (v) => v === "running", "running", "unpause");
    s.fact<number>("ticksAfterUnpause", (v) => v > 2, "output again after unpause", "unpause");
  });

  e2e.test("top: lists the container's host process", "long", (s) => {
    const out = s.check("top", { code: 0, stdout: /PID/ }).stdout;
    const pid = String(s.facts.pid);
    const rows = out.trim().split("\n").slice(1);
    if (!rows.some((r) => r.split(/\s+/).includes(pid))) {
      throw new Error(s.explain("top", `no row with the container's pid ${pid}`));
    }
  });

  e2e.test("rm -f: a running container is killed and removed, its stand-in gone", "long", (s) => {
    s.check("rmf", { code: 0, stdout: "e2e-long\n" });
    s.check("psAfterRm", { code: 0, stdout: "" });
    s.fact<boolean>(
      "pidGone",
      (v) => v === true,
      "the container's host process (the stand-in, and so QEMU) to have exited",
      "rmf",
    );
  });
});
