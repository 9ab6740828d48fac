/**
 * What docker and podman have in common: the same verbs and flags for run, exec, stop, logs,
 * inspect and ps. The steps and checks both managers' files record and assert the same way.
 */
import { expect } from "bun:test";
import { type Cmd, type CmdOptions, waitFor } from "./proc.ts";
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

/** How a manager checkpoints and restores the container `name`, and reads its dumped /count. */
export interface CheckpointCli {
  checkpoint: (name: string) => string[];
  restore: (name: string) => string[];
  /** The container's /count as the dump left it (read from its rootfs on the host). */
  dumped: () => Promise<string[]>;
  /** Told the container's id once it runs (for teardown). */
  started?: (id: string) => void;
}

/**
 * Steps of a checkpoint and a restore of COUNTER by a manager: "run", "checkpoint",
 * "stateAfterCheckpoint", "restore", "cat", "stop", "exitCode", "rm", and the fact
 * "continued" (the restored counter's lines after the dumped ones, from the next number).
 */
export async function checkpointSteps(
  c: DockerLikeCli,
  s: Scenario,
  name: string,
  ck: CheckpointCli,
): Promise<void> {
  const run = (args: string[], timeout = 120_000) => c.cli(args, { timeout });
  const started = await s.need("run", run([...c.run, "-d", "--name", name, c.image, ...COUNTER]));
  ck.started?.(started.stdout.trim());
  const last = async () => {
    const r = await run(["exec", name, "tail", "-n1", "/count"], 60_000);
    return r.code === 0 ? Number(r.stdout.trim()) : 0;
  };
  await waitFor("3 lines", async () => ((await last()) >= 3 ? true : undefined), BOOT_MS, 500);
  await s.need("checkpoint", run(ck.checkpoint(name), 300_000));
  // The manager records the exit from its daemon's event, after its checkpoint command
  // returned (with runc too): a short wait for it.
  const status = () => run(["inspect", "--format", "{{.State.Status}}", name]);
  let state = await status();
  for (let i = 0; i < 50 && state.code === 0 && state.stdout.trim() !== "exited"; i++) {
    await Bun.sleep(200);
    state = await status();
  }
  s.steps.stateAfterCheckpoint = state;
  const dumped = await ck.dumped();
  // dockerd's own occasional failure before it calls any runtime (moby#42900: its upload of
  // the checkpoint to containerd's content store finds the blob it is writing "already
  // exists"): the same call again, once; any other failure stands.
  let restored = await run(ck.restore(name), 300_000);
  if (
    restored.code !== 0 &&
    /failed to upload checkpoint to containerd: commit failed: .*already exists/.test(restored.stderr)
  )
    restored = await run(ck.restore(name), 300_000);
  await s.need("restore", Promise.resolve(restored));
  await waitFor(
    "more lines",
    async () => ((await last()) > dumped.length + 2 ? true : undefined),
    BOOT_MS,
    500,
  );
  const all = await s.step("cat", run(["exec", name, "cat", "/count"]));
  const lines = all.stdout.trim().split("\n");
  s.facts.continued =
    lines.slice(0, dumped.length).join(",") === dumped.join(",") &&
    Number(lines[dumped.length]) === Number(dumped.at(-1)) + 1;
  await s.step("stop", run(["stop", "-t", "30", name]));
  s.steps.exitCode = await run(["inspect", "--format", "{{.State.ExitCode}}", name]);
  await s.step("rm", run(["rm", name]));
}

/** What `checkpointSteps` must have recorded. */
export function checkCheckpointSteps(s: Scenario): void {
  s.check("checkpoint", { code: 0 });
  s.check("stateAfterCheckpoint", { code: 0, stdout: /^exited\n$/ });
  s.check("restore", { code: 0 });
  s.check("cat", { code: 0 });
  s.fact<boolean>(
    "continued",
    (v) => v === true,
    "the restored counter's lines after the dumped ones, from the next number",
    "cat",
  );
  s.check("exitCode", { code: 0, stdout: "7\n" });
  s.check("rm", { code: 0 });
}
