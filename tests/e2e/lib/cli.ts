/**
 * What docker and podman have in common: the same verbs and flags for run, exec, stop, logs,
 * inspect and ps. The steps and checks both managers' files record and assert the same way.
 */
import { expect } from "bun:test";
import type { Cmd, CmdOptions } from "./proc.ts";
import type { Scenario } from "./scenario.ts";
import { BOOT_MS } from "./suite.ts";

/** Appends the next number to /count every 0.3 s, from the file's last line; TERM ends it with 7. */
export const COUNTER = [
  "sh",
  "-c",
  'trap "exit 7" TERM; i=$(tail -n1 /count 2>/dev/null || echo 0); while :; do i=$((i+1)); echo $i >> /count; sleep 0.3; done',
];

export interface DockerLikeCli {
  /** The client: `docker ARGS` or `podman ARGS`. */
  cli(args: string[], opts?: CmdOptions): Promise<Cmd>;
  /** `run` and the flags every container of the file starts with. */
  run: string[];
  image: string;
}

/** `run -d --name NAME IMAGE sh -c SCRIPT`, recorded as step "run", needed by the rest. */
export function runDetached(c: DockerLikeCli, s: Scenario, name: string, script: string): Promise<Cmd> {
  return s.need(
    "run",
    c.cli([...c.run, "-d", "--name", name, c.image, "sh", "-c", script], { timeout: BOOT_MS }),
  );
}

/** `ps -a -q` of the container named exactly `name` (empty once it is removed). */
export function psByName(c: DockerLikeCli, name: string): Promise<Cmd> {
  return c.cli(["ps", "-a", "-q", "--filter", `name=^${name}$`]);
}

/** `inspect -f {{.State.ExitCode}} NAME`. */
export function inspectExitCode(c: DockerLikeCli, name: string): Promise<Cmd> {
  return c.cli(["inspect", "-f", "{{.State.ExitCode}}", name]);
}

/** Steps "run" (`run --rm --name NAME IMAGE echo hi`) and "ps" (the container listed after). */
export async function runRmEchoHi(c: DockerLikeCli, s: Scenario, name: string): Promise<void> {
  await s.step("run", c.cli([...c.run, "--rm", "--name", name, c.image, "echo", "hi"], { timeout: BOOT_MS }));
  s.steps.ps = await psByName(c, name);
}

export function checkRunRmEchoHi(s: Scenario): void {
  s.check("run", { code: 0, stdout: "hi\n" });
  s.check("ps", { code: 0, stdout: "" });
}

/** Steps "exec" (a computed answer) and "execStatus" (`exit STATUS`) in a running container. */
export async function execSteps(c: DockerLikeCli, s: Scenario, name: string, status: number): Promise<void> {
  await s.step("exec", c.cli(["exec", name, "sh", "-c", 'echo "exec-says-$((40+2))"'], { timeout: 60_000 }));
  await s.step("execStatus", c.cli(["exec", name, "sh", "-c", `exit ${status}`], { timeout: 60_000 }));
}

/** What `execSteps` (or ctr's `task exec` as the same steps) must have recorded. */
export function checkExecSteps(s: Scenario, status: number): void {
  s.check("exec", { code: 0, stdout: "exec-says-42\n" });
  s.check("execStatus", { code: status, stdout: "" });
}

/** Steps "stop" (`stop -t 30`), "logs" and "inspect" (the exit code) of a container trapping TERM. */
export async function stopSteps(c: DockerLikeCli, s: Scenario, name: string): Promise<void> {
  await s.step("stop", c.cli(["stop", "-t", "30", name], { timeout: 90_000 }));
  s.steps.logs = await c.cli(["logs", name]);
  s.steps.inspect = await inspectExitCode(c, name);
}

/** The TERM trap ran (got-term), exit code 0, well before the SIGKILL fallback (30 s). */
export function checkGracefulStop(s: Scenario, name: string): void {
  s.check("stop", { code: 0, stdout: `${name}\n` });
  expect(s.steps.stop?.ms ?? 0).toBeLessThan(25_000);
  s.check("logs", { code: 0, stdout: /^got-term$/m });
  s.check("inspect", { code: 0, stdout: "0\n" });
}
