/**
 * containerd 1.6 (Debian's containerd) drives cc-oci-runtime through its runc shim:
 * `ctr run --runc-binary BIN --runc-root DIR`, containerd started by hand in a private
 * directory, the busybox image from an OCI layout tarball (`ctr images import`). Requires
 * root; installs the managers when missing; boots 2 VMs at once.
 */
import { describe } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GUEST_RESERVE_MIB } from "../../src/lifecycle/guest-config.ts";
import { HOST_OVERHEAD_MIB } from "../../src/lifecycle/host-cgroup.ts";
import { MEMORY_STEP_MIB } from "../../src/lifecycle/vm-size.ts";
import { checkExecSteps } from "./lib/cli.ts";
import { buildImage, IMAGE } from "./lib/image.ts";
import { Containerd } from "./lib/managers.ts";
import { type Cmd, countLines, sleep, waitFor } from "./lib/proc.ts";
import type { Scenario } from "./lib/scenario.ts";
import { BOOT_MS, suite } from "./lib/suite.ts";
import { BIN } from "./lib/workspace.ts";

let containerd: Containerd | undefined;

function runtimeLogs(): string[] {
  return containerd ? [join(containerd.runcRoot, containerd.ns, "cc-oci-runtime.log")] : [];
}

/** `ctr run` with the runtime under test, its state under the workspace. */
function ctrRun(c: Containerd, flags: string[], id: string, args: string[], timeout = BOOT_MS): Promise<Cmd> {
  return c.ctr(["run", ...flags, "--runc-binary", BIN, "--runc-root", c.runcRoot, IMAGE, id, ...args], {
    timeout,
  });
}

const fileText = (f: string) => (existsSync(f) ? readFileSync(f, "utf8") : "");

/** The STATUS column of `ctr task ls` for `id`, recorded as step `key`. */
async function taskStatus(c: Containerd, s: Scenario, key: string, id: string): Promise<string | undefined> {
  const r = await c.ctr(["task", "ls"], { timeout: 30_000 });
  s.steps[key] = r;
  const row = r.stdout.split("\n").find((l) => l.split(/\s+/)[0] === id);
  return row?.trim().split(/\s+/)[2];
}

const e2e = suite("containerd", runtimeLogs, async (ws, go) => {
  const c = await Containerd.start(ws);
  containerd = c;
  ws.onTeardown("ctr containers", () => c.removeAll());
  const image = await buildImage(ws.path("image"));
  await c.importImage(image.ociTar);
  const log = ws.path("c-long.log");

  go("long", "ctr run -d", async (s) => {
    const id = "c-long";
    await s.need(
      "run",
      ctrRun(c, ["-d", "--log-uri", `file://${log}`, "--memory-limit", String(256 * MIB)], id, [
        "sh",
        "-c",
        'trap "echo got-term; exit 7" TERM; echo ready; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done',
      ]),
    );
    await waitFor(
      "ready in the task's log",
      () => (/^ready$/m.test(fileText(log)) ? true : undefined),
      BOOT_MS,
    );
    const ls = await c.ctr(["task", "ls"]);
    s.steps.ls = ls;
    s.facts.pid = Number(
      ls.stdout
        .split("\n")
        .find((l) => l.startsWith(`${id} `))
        ?.trim()
        .split(/\s+/)[1],
    );

    await s.step(
      "exec",
      c.ctr(["task", "exec", "--exec-id", "e1", id, "sh", "-c", 'echo "exec-says-$((40+2))"'], {
        timeout: 60_000,
      }),
    );
    await s.step(
      "execStatus",
      c.ctr(["task", "exec", "--exec-id", "e2", id, "sh", "-c", "exit 5"], { timeout: 60_000 }),
    );
    await s.step("ps", c.ctr(["task", "ps", id], { timeout: 60_000 }));
    // The shim reads the cgroup of the task's pid (the stand-in): the VM's.
    await s.step("metrics", c.ctr(["task", "metrics", id], { timeout: 60_000 }));

    const ticks = () => countLines(fileText(log), /^tick /);
    await s.step("pause", c.ctr(["task", "pause", id], { timeout: 60_000 }));
    s.facts.pausedStatus = await taskStatus(c, s, "lsPaused", id);
    const t1 = ticks();
    await sleep(2_500);
    s.facts.ticksWhilePaused = ticks() - t1;
    await s.step("resume", c.ctr(["task", "resume", id], { timeout: 60_000 }));
    s.facts.resumedStatus = await taskStatus(c, s, "lsResumed", id);
    const t2 = ticks();
    s.facts.ticksAfterResume = await waitFor(
      "ticks after resume",
      () => (ticks() > t2 + 2 ? ticks() - t2 : undefined),
      20_000,
    ).catch(() => 0);

    // ctr task kill: SIGTERM by default.
    await s.step("kill", c.ctr(["task", "kill", id], { timeout: 60_000 }));
    s.facts.killedStatus = await waitFor(
      "the task to stop",
      async () => {
        const st = await taskStatus(c, s, "lsStopped", id);
        return st === "STOPPED" ? st : undefined;
      },
      30_000,
    ).catch(() => "not STOPPED within 30 s");
    s.facts.log = fileText(log)
      .split("\n")
      .filter((l) => !l.startsWith("tick "))
      .join("\n");
    // ctr reports a non-zero exit status of the deleted task as a warning.
    await s.step("delete", c.ctr(["task", "delete", id], { timeout: 60_000 }));
    await s.step("containerDelete", c.ctr(["containers", "delete", id], { timeout: 60_000 }));
  });

  go("rm", "ctr run --rm", async (s) => {
    await s.step("run", ctrRun(c, ["--rm"], "c-rm", ["echo", "hi"]));
    s.steps.ls = await c.ctr(["containers", "ls", "-q"]);
  });
});

const MIB = 1024 * 1024;

/** A value of `ctr task metrics`' table (v1 names, or v2's). */
function metric(out: string, names: string[]): number {
  for (const line of out.split("\n")) {
    const [name, value] = line.trim().split(/\s+/);
    if (name && names.includes(name)) return Number(value);
  }
  return Number.NaN;
}

describe("ctr --runc-binary cc-oci-runtime", () => {
  e2e.test("ctr run --rm IMAGE echo hi", "rm", (s) => {
    s.check("run", { code: 0, stdout: "hi\n" });
    const ls = s.check("ls", { code: 0 });
    if (ls.stdout.split("\n").includes("c-rm"))
      throw new Error(s.explain("ls", "c-rm is still there after --rm"));
  });

  e2e.test("ctr run -d, then task exec", "long", (s) => {
    s.check("run", { code: 0, stdout: "" });
    checkExecSteps(s, 5);
  });

  e2e.test("task ps: lists the task's host pid", "long", (s) => {
    const pid = s.fact<number>("pid", (v) => v > 0, "the task's pid from ctr task ls", "ls");
    const out = s.check("ps", { code: 0, stdout: /^PID\s+INFO/ }).stdout;
    if (!out.split("\n").some((l) => l.split(/\s+/)[0] === String(pid))) {
      throw new Error(s.explain("ps", `no row for the task's pid ${pid}`));
    }
  });

  e2e.test("task pause / resume: the workload stops and goes on", "long", (s) => {
    s.check("pause", { code: 0 });
    s.fact<string>("pausedStatus", (v) => v === "PAUSED", "PAUSED in ctr task ls", "lsPaused");
    s.fact<number>(
      "ticksWhilePaused",
      (v) => v <= 1,
      "no output while paused (at most one in flight)",
      "pause",
    );
    s.check("resume", { code: 0 });
    s.fact<string>("resumedStatus", (v) => v === "RUNNING", "RUNNING in ctr task ls", "lsResumed");
    s.fact<number>("ticksAfterResume", (v) => v > 2, "output again after resume", "resume");
  });

  e2e.test("task kill: SIGTERM reaches the trap, the task stops with its status (7)", "long", (s) => {
    s.check("kill", { code: 0 });
    s.fact<string>("killedStatus", (v) => v === "STOPPED", "STOPPED in ctr task ls", "lsStopped");
    s.fact<string>("log", (v) => /^got-term$/m.test(v), "got-term in the task's log", "kill");
    s.check("delete", { code: 0, stderr: /exit code 7\b/ });
    s.check("containerDelete", { code: 0 });
  });

  e2e.test(
    "task metrics: the VM's memory and its bound (256 MiB limit: the VM + its overhead)",
    "long",
    (s) => {
      const out = s.check("metrics", { code: 0 }).stdout;
      const limit = metric(out, ["memory.limit_in_bytes", "memory.limit"]);
      const usage = metric(out, ["memory.usage_in_bytes", "memory.usage"]);
      const vm = Math.ceil((256 + GUEST_RESERVE_MIB) / MEMORY_STEP_MIB) * MEMORY_STEP_MIB;
      const bounds = [vm + HOST_OVERHEAD_MIB.kvm, vm + HOST_OVERHEAD_MIB.tcg].map((m) => m * MIB);
      if (!bounds.includes(limit))
        throw new Error(s.explain("metrics", `limit is not one of ${bounds.join(", ")}`));
      // A stand-in alone (a Bun program) is ~10 MiB of its own; with QEMU and its guest, far more.
      if (!(usage > 64 * MIB)) throw new Error(s.explain("metrics", "the usage is not a VM's"));
    },
  );
});
