/**
 * Docker 20.10 (Debian's docker.io) drives cc-oci-runtime as `--runtime cor` (lib/docker.ts):
 * signals and restarts: `docker stop` (a TERM trap), `docker kill -s USR1` / `-s KILL`,
 * `docker restart` (a new VM) and plain `docker kill`. Requires root; installs the managers
 * when missing; boots 4 VMs, a few at a time (CC_E2E_JOBS, default 3).
 */
import { describe } from "bun:test";
import { checkGracefulStop, inspectExitCode, runDetached, stopSteps } from "./lib/cli.ts";
import { dockerCli, dockerSuite, logsMatch } from "./lib/docker.ts";
import { countLines } from "./lib/proc.ts";
import { BOOT_MS } from "./lib/suite.ts";

const e2e = dockerSuite("docker-signals", (docker, go) => {
  const cli = dockerCli(docker);

  go("restart", "docker restart", async (s) => {
    const name = "e2e-restart";
    await runDetached(cli, s, name, 'trap "exit 0" TERM; echo boot; while :; do sleep 1; done');
    await logsMatch(docker, s, "logs1", name, /^boot$/m);
    s.facts.pid1 = Number(await docker.inspect(name, "{{.State.Pid}}"));
    await s.step("restart", docker.docker(["restart", "-t", "30", name], { timeout: BOOT_MS + 30_000 }));
    s.facts.running = await docker.inspect(name, "{{.State.Running}}");
    s.facts.pid2 = Number(await docker.inspect(name, "{{.State.Pid}}"));
    const logs = await logsMatch(docker, s, "logs2", name, /^boot$[\s\S]*^boot$/m);
    s.facts.boots = countLines(logs.stdout, /^boot$/);
    // Plain `docker kill`: SIGKILL.
    await s.step("kill", docker.docker(["kill", name], { timeout: 60_000 }));
    await s.step("wait", docker.docker(["wait", name], { timeout: 60_000 }));
  });

  go("stop", "docker stop", async (s) => {
    const name = "e2e-stop";
    await runDetached(
      cli,
      s,
      name,
      'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 1; done',
    );
    await logsMatch(docker, s, "ready", name, /^ready$/m);
    await stopSteps(cli, s, name);
  });

  go("kill", "docker kill", async (s) => {
    const name = "e2e-kill";
    await runDetached(cli, s, name, 'trap "echo got-usr1" USR1; echo ready; while :; do sleep 1; done');
    await logsMatch(docker, s, "ready", name, /^ready$/m);
    await s.step("usr1", docker.docker(["kill", "-s", "USR1", name], { timeout: 60_000 }));
    await logsMatch(docker, s, "logs", name, /^got-usr1$/m, 30_000);
    s.facts.runningAfterUsr1 = await docker.inspect(name, "{{.State.Running}}");
    await s.step("sigkill", docker.docker(["kill", "-s", "KILL", name], { timeout: 60_000 }));
    await s.step("wait", docker.docker(["wait", name], { timeout: 60_000 }));
    s.steps.inspect = await inspectExitCode(cli, name);
  });
});

describe("docker --runtime cor: signals and restarts", () => {
  e2e.test("stop: the TERM trap runs, exit code 0, no SIGKILL fallback", "stop", (s) => {
    checkGracefulStop(s, "e2e-stop");
  });

  e2e.test("kill -s USR1: the signal reaches the workload, which keeps running", "kill", (s) => {
    s.check("usr1", { code: 0 });
    s.check("logs", { code: 0, stdout: /^got-usr1$/m });
    s.fact<string>("runningAfterUsr1", (v) => v === "true", "still running", "logs");
  });

  e2e.test("kill -s KILL -> exit code 137", "kill", (s) => {
    s.check("sigkill", { code: 0 });
    s.check("wait", { code: 0, stdout: "137\n" });
    s.check("inspect", { code: 0, stdout: "137\n" });
  });

  e2e.test("restart: a new VM, the workload runs again", "restart", (s) => {
    s.check("restart", { code: 0, stdout: "e2e-restart\n" });
    s.fact<string>("running", (v) => v === "true", "running after restart", "restart");
    s.fact<number>("pid2", (v) => v > 0 && v !== s.facts.pid1, "a new stand-in pid", "restart");
    s.fact<number>("boots", (v) => v === 2, "two 'boot' lines in the logs", "restart");
  });

  e2e.test("kill (default signal) -> exit code 137", "restart", (s) => {
    s.check("kill", { code: 0 });
    s.check("wait", { code: 0, stdout: "137\n" });
  });
});
