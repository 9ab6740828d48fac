/**
 * Docker 20.10 (Debian's docker.io) drives cc-oci-runtime as `--runtime cor` (lib/docker.ts):
 * one long-running container, logged, exec'ed into (also through a pty), listed, paused and
 * force-removed. Requires root; installs the managers when missing; boots 1 VM.
 */
import { describe } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { COUNTER, checkExecSteps, execSteps, psByName, runDetached } from "./lib/cli.ts";
import { dockerCli, dockerSuite, IMAGE, interactive, logsMatch, RUN } from "./lib/docker.ts";
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
    const d = (args: string[], timeout = 120_000) => docker.docker(args, { timeout });
    await s.need("run", d([...RUN, "-d", "--name", name, IMAGE, ...COUNTER]));
    const last = async () => {
      const r = await d(["exec", name, "tail", "-n1", "/count"], 60_000);
      return r.code === 0 ? Number(r.stdout.trim()) : 0;
    };
    await waitFor("3 lines", async () => ((await last()) >= 3 ? true : undefined), 120_000, 500);
    await s.need("checkpoint", d(["checkpoint", "create", name, "cp1"], 300_000));
    s.facts.stateAfterCheckpoint = await docker.inspect(name, "{{.State.Status}}");
    // The container's rw layer as the dump left it.
    const dumpedFile = join(docker.dataRoot, "..", "count-at-dump");
    await s.need("cp", d(["cp", `${name}:/count`, dumpedFile]));
    const dumped = readFileSync(dumpedFile, "utf8").trim().split("\n");
    await s.need("restore", d(["start", "--checkpoint", "cp1", name], 300_000));
    await waitFor(
      "more lines",
      async () => ((await last()) > dumped.length + 2 ? true : undefined),
      120_000,
      500,
    );
    const all = await s.step("cat", d(["exec", name, "cat", "/count"]));
    const lines = all.stdout.trim().split("\n");
    s.facts.continued =
      lines.slice(0, dumped.length).join(",") === dumped.join(",") &&
      Number(lines[dumped.length]) === Number(dumped.at(-1)) + 1;
    await s.step("stop", d(["stop", "-t", "30", name]));
    s.facts.exitCode = await docker.inspect(name, "{{.State.ExitCode}}");
    await s.step("rm", d(["rm", name]));
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
    (s) => {
      s.check("checkpoint", { code: 0 });
      s.fact<string>("stateAfterCheckpoint", (v) => v === "exited", "exited", "checkpoint");
      s.check("restore", { code: 0 });
      s.check("cat", { code: 0 });
      s.fact<boolean>(
        "continued",
        (v) => v === true,
        "the restored counter's lines after the dumped ones, from the next number",
        "cat",
      );
      s.fact<string>("exitCode", (v) => v === "7", "7 (the TERM trap's status)", "stop");
      s.check("rm", { code: 0 });
    },
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
