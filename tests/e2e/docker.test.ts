/**
 * Docker 20.10 (Debian's docker.io) drives cc-oci-runtime as `--runtime cor`: dockerd and
 * its containerd started by hand in a private directory, a busybox image from `docker
 * import`. Requires root; installs the managers when missing; boots 8 VMs, a few at a time
 * (CC_E2E_JOBS, default 3). Every container uses `--network none` (no bridge here), which
 * makes docker add its libnetwork-setkey prestart hook and bind-mount /etc/resolv.conf,
 * /etc/hosts and /etc/hostname.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildImage } from "./lib/image.ts";
import { Containerd, Dockerd } from "./lib/managers.ts";
import { ensurePackages } from "./lib/packages.ts";
import { type Cmd, cmd, jobs, Slots, sleep, waitFor } from "./lib/proc.ts";
import { PtySession } from "./lib/pty.ts";
import { type Scenario, start } from "./lib/scenario.ts";
import { alive, checkPrerequisites, installRuntimeConfig, Workspace } from "./lib/workspace.ts";

const IMAGE = "cc-e2e-busybox:latest";
const SETUP_MS = 600_000;
const TEST_MS = 600_000;
/** How long a VM container may take to come up here (TCG, concurrent boots). */
const BOOT_MS = 120_000;

let ws: Workspace | undefined;
let docker: Dockerd;
const runs: Record<string, Promise<Scenario>> = {};

/** `docker run` with this runtime and no network: what every container here starts with. */
const RUN = ["run", "--runtime", "cor", "--network", "none"];

function runtimeLogs(): string[] {
  return docker ? [join(docker.runtimeRoot, "cc-oci-runtime.log")] : [];
}

/** Polls `docker logs NAME` until it matches; the last poll is recorded as step `key`. */
async function logsMatch(
  s: Scenario,
  key: string,
  name: string,
  re: RegExp,
  timeoutMs = BOOT_MS,
): Promise<Cmd> {
  let last: Cmd | undefined;
  try {
    return await waitFor(
      `docker logs ${name} to match ${re}`,
      async () => {
        last = await docker.docker(["logs", name], { timeout: 30_000 });
        s.steps[key] = last;
        return re.test(last.stdout + last.stderr) ? last : undefined;
      },
      timeoutMs,
      500,
    );
  } catch (err) {
    if (!last) throw err;
    return last;
  }
}

function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, "gm"))?.length ?? 0;
}

async function findmntType(path: string): Promise<string> {
  return (await cmd(["findmnt", "-n", "-o", "FSTYPE", "--mountpoint", path])).stdout.trim();
}

/** Interactive shell through a pty: prompt, a computed answer, the terminal size, exit N. */
async function interactive(
  s: Scenario,
  prefix: string,
  argv: string[],
  exitWith: number,
  promptMs = BOOT_MS,
): Promise<void> {
  const pty = new PtySession(docker.argv(argv), docker.clientEnv());
  try {
    await pty.expect(/# $/m, promptMs);
    const mark = pty.output.length;
    pty.send('[ -t 0 ] && [ -t 1 ] && echo "tty-$((6*7))"; stty size\r');
    await pty.expect(/tty-42/, 30_000, mark);
    // The first reading may come before the client's resize has crossed into the VM.
    let size = await pty.expect(/^(\d+ \d+)$/m, 2_000, mark).catch(() => undefined);
    s.facts[`${prefix}FirstSize`] = size?.[1] ?? null;
    for (let i = 0; !size && i < 5; i++) {
      const from = pty.output.length;
      pty.send("stty size\r");
      size = await pty.expect(/^(\d+ \d+)$/m, 2_000, from).catch(() => undefined);
    }
    s.facts[`${prefix}Size`] = size?.[1] ?? null;
    pty.send(`exit ${exitWith}\r`);
    const code = await pty.exit(60_000);
    s.steps[prefix] = { argv, code, stdout: pty.output, stderr: "", ms: pty.ms, timedOut: code === -1 };
  } catch (err) {
    pty.kill();
    const code = await pty.exit(5_000);
    s.steps[prefix] = {
      argv,
      code,
      stdout: pty.output,
      stderr: (err as Error).message,
      ms: pty.ms,
      timedOut: false,
    };
  }
}

beforeAll(async () => {
  checkPrerequisites();
  await ensurePackages();
  ws = new Workspace("docker");
  ws.onTeardown("runtime config", installRuntimeConfig());
  const containerd = await Containerd.start(ws);
  docker = await Dockerd.start(ws, containerd);
  const image = await buildImage(ws.path("image"));
  await docker.importImage(image.rootfsTar, IMAGE);
  const vol = ws.path("vol");
  mkdirSync(vol);
  chmodSync(vol, 0o777);
  writeFileSync(join(vol, "in.txt"), "from-the-host\n");

  const slots = new Slots(jobs());
  const go = (name: string, body: (s: Scenario) => Promise<void>) => start(slots, name, runtimeLogs, body);

  // Longest first: one container that is exec'ed into, listed, paused and force-removed.
  runs.long = go("docker long-running container", async (s) => {
    const name = "e2e-long";
    await s.need(
      "run",
      docker.docker(
        [
          ...RUN,
          "-d",
          "--name",
          name,
          IMAGE,
          "sh",
          "-c",
          'echo started; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done',
        ],
        { timeout: BOOT_MS },
      ),
    );
    await logsMatch(s, "logs", name, /^started\ntick 1$/m);
    const pid = Number(await docker.inspect(name, "{{.State.Pid}}"));
    s.facts.pid = pid;
    const key = await docker.inspect(name, "{{.NetworkSettings.SandboxKey}}");
    s.facts.sandboxKey = key;
    // libnetwork-setkey (the prestart hook) makes this netns mount; nothing else does.
    s.facts.sandboxMount = key ? await findmntType(key) : "";

    await s.step(
      "exec",
      docker.docker(["exec", name, "sh", "-c", 'echo "exec-says-$((40+2))"'], { timeout: 60_000 }),
    );
    await s.step("execStatus", docker.docker(["exec", name, "sh", "-c", "exit 6"], { timeout: 60_000 }));
    await s.step("top", docker.docker(["top", name], { timeout: 60_000 }));

    const ticks = async () =>
      count((await docker.docker(["logs", name], { timeout: 30_000 })).stdout, /^tick /);
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
    await interactive(s, "execTty", ["exec", "-ti", name, "sh"], 4, 60_000);
    await s.step("rmf", docker.docker(["rm", "-f", name], { timeout: 60_000 }));
    s.steps.psAfterRm = await docker.docker(["ps", "-a", "-q", "--filter", `name=^${name}$`]);
    s.facts.pidGone = await waitFor(
      "the stand-in to exit",
      () => (alive(pid) ? undefined : true),
      30_000,
    ).catch(() => false);
  });

  runs.restart = go("docker restart", async (s) => {
    const name = "e2e-restart";
    await s.need(
      "run",
      docker.docker(
        [
          ...RUN,
          "-d",
          "--name",
          name,
          IMAGE,
          "sh",
          "-c",
          'trap "exit 0" TERM; echo boot; while :; do sleep 1; done',
        ],
        {
          timeout: BOOT_MS,
        },
      ),
    );
    await logsMatch(s, "logs1", name, /^boot$/m);
    s.facts.pid1 = Number(await docker.inspect(name, "{{.State.Pid}}"));
    await s.step("restart", docker.docker(["restart", "-t", "30", name], { timeout: BOOT_MS + 30_000 }));
    s.facts.running = await docker.inspect(name, "{{.State.Running}}");
    s.facts.pid2 = Number(await docker.inspect(name, "{{.State.Pid}}"));
    const logs = await logsMatch(s, "logs2", name, /^boot$[\s\S]*^boot$/m);
    s.facts.boots = count(logs.stdout, /^boot$/);
    // Plain `docker kill`: SIGKILL.
    await s.step("kill", docker.docker(["kill", name], { timeout: 60_000 }));
    await s.step("wait", docker.docker(["wait", name], { timeout: 60_000 }));
  });

  runs.tty = go("docker run -ti", async (s) => {
    await interactive(s, "runTty", [...RUN, "-ti", "--rm", "--name", "e2e-tty", IMAGE, "sh"], 5);
  });

  runs.rm = go("docker run --rm", async (s) => {
    await s.step(
      "run",
      docker.docker([...RUN, "--rm", "--name", "e2e-rm", IMAGE, "echo", "hi"], { timeout: BOOT_MS }),
    );
    s.steps.ps = await docker.docker(["ps", "-a", "-q", "--filter", "name=^e2e-rm$"]);
  });

  runs.settings = go("docker run settings, exit 3", async (s) => {
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
    s.steps.inspect = await docker.docker(["inspect", "-f", "{{.State.ExitCode}}", name]);
    const out = join(vol, "out.txt");
    s.facts.hostFile = existsSync(out) ? readFileSync(out, "utf8") : null;
    s.facts.hostFileUid = existsSync(out) ? statSync(out).uid : null;
  });

  runs.stop = go("docker stop", async (s) => {
    const name = "e2e-stop";
    await s.need(
      "run",
      docker.docker(
        [
          ...RUN,
          "-d",
          "--name",
          name,
          IMAGE,
          "sh",
          "-c",
          'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 1; done',
        ],
        { timeout: BOOT_MS },
      ),
    );
    await logsMatch(s, "ready", name, /^ready$/m);
    await s.step("stop", docker.docker(["stop", "-t", "30", name], { timeout: 90_000 }));
    s.steps.logs = await docker.docker(["logs", name]);
    s.steps.inspect = await docker.docker(["inspect", "-f", "{{.State.ExitCode}}", name]);
  });

  runs.kill = go("docker kill", async (s) => {
    const name = "e2e-kill";
    await s.need(
      "run",
      docker.docker(
        [
          ...RUN,
          "-d",
          "--name",
          name,
          IMAGE,
          "sh",
          "-c",
          'trap "echo got-usr1" USR1; echo ready; while :; do sleep 1; done',
        ],
        { timeout: BOOT_MS },
      ),
    );
    await logsMatch(s, "ready", name, /^ready$/m);
    await s.step("usr1", docker.docker(["kill", "-s", "USR1", name], { timeout: 60_000 }));
    await logsMatch(s, "logs", name, /^got-usr1$/m, 30_000);
    s.facts.runningAfterUsr1 = await docker.inspect(name, "{{.State.Running}}");
    await s.step("sigkill", docker.docker(["kill", "-s", "KILL", name], { timeout: 60_000 }));
    await s.step("wait", docker.docker(["wait", name], { timeout: 60_000 }));
    s.steps.inspect = await docker.docker(["inspect", "-f", "{{.State.ExitCode}}", name]);
  });
}, SETUP_MS);

afterAll(async () => {
  // Scenarios end by themselves (every command has a time limit); wait, but not for ever.
  await Promise.race([Promise.all(Object.values(runs)), sleep(180_000)]);
  await ws?.teardown();
}, SETUP_MS);

const get = (k: string) => {
  const p = runs[k];
  if (!p) throw new Error(`scenario ${k} never started: the set-up failed`);
  return p;
};

describe("docker --runtime cor", () => {
  test(
    "run --rm IMAGE echo hi",
    async () => {
      const s = await get("rm");
      s.check("run", { code: 0, stdout: "hi\n" });
      s.check("ps", { code: 0, stdout: "" });
    },
    TEST_MS,
  );

  test(
    "run -d, then logs (no -t)",
    async () => {
      const s = await get("long");
      s.check("run", { code: 0, stdout: /^[0-9a-f]{64}\n$/ });
      s.check("logs", { code: 0, stdout: /^started\ntick 1\n/ });
      s.fact<number>("pid", (v) => v > 0, "a host pid in State.Pid");
    },
    TEST_MS,
  );

  test(
    "run -ti: an interactive shell through a pty",
    async () => {
      const s = await get("tty");
      s.check("runTty", { code: 5, stdout: /tty-42/ });
    },
    TEST_MS,
  );

  test(
    "run -ti: the client's terminal size reaches the container",
    async () => {
      const s = await get("tty");
      s.fact<string>("runTtySize", (v) => v === "40 120", '"40 120" from stty size', "runTty");
    },
    TEST_MS,
  );

  test(
    "exec",
    async () => {
      const s = await get("long");
      s.check("exec", { code: 0, stdout: "exec-says-42\n" });
      s.check("execStatus", { code: 6, stdout: "" });
    },
    TEST_MS,
  );

  test(
    "exec -ti: an interactive shell through a pty",
    async () => {
      const s = await get("long");
      s.check("execTty", { code: 4, stdout: /tty-42/ });
    },
    TEST_MS,
  );

  test(
    "stop: the TERM trap runs, exit code 0, no SIGKILL fallback",
    async () => {
      const s = await get("stop");
      s.check("stop", { code: 0, stdout: "e2e-stop\n" });
      expect(s.steps.stop?.ms ?? 0).toBeLessThan(25_000);
      s.check("logs", { code: 0, stdout: /^got-term$/m });
      s.check("inspect", { code: 0, stdout: "0\n" });
    },
    TEST_MS,
  );

  test(
    "kill -s USR1: the signal reaches the workload, which keeps running",
    async () => {
      const s = await get("kill");
      s.check("usr1", { code: 0 });
      s.check("logs", { code: 0, stdout: /^got-usr1$/m });
      s.fact<string>("runningAfterUsr1", (v) => v === "true", "still running", "logs");
    },
    TEST_MS,
  );

  test(
    "kill -s KILL -> exit code 137",
    async () => {
      const s = await get("kill");
      s.check("sigkill", { code: 0 });
      s.check("wait", { code: 0, stdout: "137\n" });
      s.check("inspect", { code: 0, stdout: "137\n" });
    },
    TEST_MS,
  );

  test(
    "run exiting 3 -> inspect ExitCode 3",
    async () => {
      const s = await get("settings");
      s.check("run", { code: 3 });
      s.check("inspect", { code: 0, stdout: "3\n" });
    },
    TEST_MS,
  );

  test(
    "-v volume, --hostname, --user, -e, -w",
    async () => {
      const s = await get("settings");
      const out = s.check("run", { code: 3 }).stdout;
      for (const line of [
        "hostname=e2e-host",
        "id=1000:1000",
        "FOO=bar",
        "SPACED=a b",
        "pwd=/tmp",
        "in=from-the-host",
        "write=ok",
      ]) {
        if (!out.split("\n").includes(line))
          throw new Error(s.explain("run", `no line ${JSON.stringify(line)}`));
      }
      s.fact<string>(
        "hostFile",
        (v) => v === "written-by-the-container\n",
        "the container's write on the host",
        "run",
      );
      s.fact<number>("hostFileUid", (v) => v === 1000, "owned on the host by the --user uid (1000)", "run");
    },
    TEST_MS,
  );

  test(
    "--network none: hostname, /etc/hostname, /etc/hosts and /etc/resolv.conf from docker",
    async () => {
      const s = await get("settings");
      const out = s.check("run", { code: 3 }).stdout;
      for (const line of ["etc-hostname=e2e-host", "hosts=ok", "resolv=ok"]) {
        if (!out.split("\n").includes(line))
          throw new Error(s.explain("run", `no line ${JSON.stringify(line)}`));
      }
    },
    TEST_MS,
  );

  test(
    "the libnetwork-setkey prestart hook ran (the sandbox's netns mount exists)",
    async () => {
      const s = await get("long");
      s.check("run", { code: 0 });
      s.fact<string>(
        "sandboxKey",
        (v) => typeof v === "string" && v.startsWith(docker.execRoot),
        "a path under the exec root",
      );
      s.fact<string>("sandboxMount", (v) => v === "nsfs", "an nsfs mount made by libnetwork-setkey");
    },
    TEST_MS,
  );

  test(
    "pause / unpause: the workload stops and goes on",
    async () => {
      const s = await get("long");
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
    },
    TEST_MS,
  );

  test(
    "top: lists the container's host process",
    async () => {
      const s = await get("long");
      const out = s.check("top", { code: 0, stdout: /PID/ }).stdout;
      const pid = String(s.facts.pid);
      const rows = out.trim().split("\n").slice(1);
      if (!rows.some((r) => r.split(/\s+/).includes(pid))) {
        throw new Error(s.explain("top", `no row with the container's pid ${pid}`));
      }
    },
    TEST_MS,
  );

  test(
    "restart: a new VM, the workload runs again",
    async () => {
      const s = await get("restart");
      s.check("restart", { code: 0, stdout: "e2e-restart\n" });
      s.fact<string>("running", (v) => v === "true", "running after restart", "restart");
      s.fact<number>("pid2", (v) => v > 0 && v !== s.facts.pid1, "a new stand-in pid", "restart");
      s.fact<number>("boots", (v) => v === 2, "two 'boot' lines in the logs", "restart");
    },
    TEST_MS,
  );

  test(
    "kill (default signal) -> exit code 137",
    async () => {
      const s = await get("restart");
      s.check("kill", { code: 0 });
      s.check("wait", { code: 0, stdout: "137\n" });
    },
    TEST_MS,
  );

  test(
    "rm -f: a running container is killed and removed, its stand-in gone",
    async () => {
      const s = await get("long");
      s.check("rmf", { code: 0, stdout: "e2e-long\n" });
      s.check("psAfterRm", { code: 0, stdout: "" });
      s.fact<boolean>(
        "pidGone",
        (v) => v === true,
        "the container's host process (the stand-in, and so QEMU) to have exited",
        "rmf",
      );
    },
    TEST_MS,
  );
});
