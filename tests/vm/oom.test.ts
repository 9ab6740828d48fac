/**
 * A container that fills its VM's memory does not wedge the VM (issue: OOM): its memory
 * cgroup in the guest is bounded below the VM's memory, so the OOM kill happens inside it;
 * the agent (oom_score_adj -1000) keeps answering. An init killed by it exits 137, `events`
 * emits `oom`, the runtime's log says so. Default VM size; templated starts.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { makeBundle } from "../lib/bundle.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const env = { CC_OCI_TEMPLATE: "1" };
/**
 * An exec must come back (whatever its status) within this: the agent is not starved, the
 * VM not wedged. Not a speed figure: an exec joins the container's cgroup, which is at its
 * bound while the hog grows, so under TCG on a loaded 2-core CI machine it waits for the
 * cgroup's reclaim and OOM kill (seen once at just over 5 s; ~1.5 s alone).
 */
const ANSWER_MS = 15_000;

afterAll(async () => {
  await rt.dispose();
});

// A test that failed half-way leaves its container: gone before the next, which checks its own.
afterEach(async () => {
  for (const id of rt.leftovers()) await rt.run(["delete", "--force", id]);
});

/** `exec ID ARGS`, or undefined if it did not come back within ANSWER_MS. */
async function execAnswers(
  id: string,
  args: string[],
): Promise<{ code: number; stdout: string } | undefined> {
  const child = Bun.spawn(rt.argv(["exec", id, ...args]), {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env },
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), ANSWER_MS);
  const [code, stdout] = await Promise.all([child.exited, new Response(child.stdout).text()]);
  clearTimeout(timer);
  return child.signalCode === "SIGKILL" ? undefined : { code, stdout };
}

describe("a container that uses up its memory", () => {
  test("a tmpfs filled past the VM's memory: ENOSPC or an OOM kill inside; exec, ps, kill, delete go on", async () => {
    const bundle = makeBundle({
      args: [
        "sh",
        "-c",
        "dd if=/dev/zero of=/fill/f bs=1M count=300 2>/fill/dd.err; echo dd-ended; sleep 1000",
      ],
      edit: (s) => {
        const mounts = s.mounts as { destination: string; type: string; source: string; options: string[] }[];
        mounts.push({ destination: "/fill", type: "tmpfs", source: "fill", options: ["size=400m"] });
      },
    });
    expect((await rt.run(["run", "-d", "--bundle", bundle, "shm1"], { env })).code).toBe(0);
    // Throughout the filling and after it, exec answers.
    for (let i = 0; i < 8; i++) {
      const r = await execAnswers("shm1", ["sh", "-c", "head -c 300 /proc/meminfo >/dev/null; echo alive"]);
      expect(r).toBeDefined();
      await Bun.sleep(500);
    }
    // The tmpfs pages stay charged to the cgroup: any process of it may be the OOM killer's
    // next choice, its init too (Linux decides). Running, ps lists it; stopped, ps says so.
    const ps = await rt.run(["ps", "shm1"]);
    const state = JSON.parse((await rt.run(["state", "shm1"])).stdout) as { status: string };
    expect(["running", "stopped"]).toContain(state.status);
    if (ps.code !== 0)
      expect({ status: state.status, ps: ps.stderr.trim() }).toMatchObject({ status: "stopped" });
    if (state.status === "running") expect((await rt.run(["kill", "shm1", "KILL"])).code).toBe(0);
    expect((await rt.run(["delete", "-f", "shm1"])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
  }, 240_000);

  test("an anonymous-memory hog as init: OOM-killed in its cgroup, exit 137, the log says so", async () => {
    // tail keeps everything after the last newline: /dev/zero has none.
    const r = await rt.run(["run", "--bundle", makeBundle({ args: ["tail", "/dev/zero"] }), "hog1"], { env });
    expect(r.code).toBe(137);
    expect(readLog()).toMatch(
      /hog1: out of memory: the OOM killer of the container's cgroup killed a process/,
    );
    expect(rt.leftovers()).toEqual([]);
  }, 240_000);

  test("events emits oom; exec answers while the hog grows", async () => {
    const bundle = makeBundle({ args: ["sh", "-c", "sleep 3; tail /dev/zero; sleep 1000"] });
    expect((await rt.run(["run", "-d", "--bundle", bundle, "hog2"], { env })).code).toBe(0);
    const events = Bun.spawn(rt.argv(["events", "--interval", "1s", "hog2"]), {
      stdout: "pipe",
      stderr: "pipe",
    });
    let sawOom = false;
    const reader = (async () => {
      const text = await new Response(events.stdout).text();
      sawOom = text.split("\n").some((l) => l.includes('"type":"oom"'));
    })();
    for (let i = 0; i < 10; i++) {
      expect(await execAnswers("hog2", ["true"])).toBeDefined();
      await Bun.sleep(500);
    }
    // The OOM kill of tail leaves sh to its sleep: the container runs on.
    const state = JSON.parse((await rt.run(["state", "hog2"])).stdout) as { status: string };
    expect(state.status).toBe("running");
    expect((await rt.run(["delete", "-f", "hog2"])).code).toBe(0);
    await reader;
    expect(sawOom).toBe(true);
    expect(rt.leftovers()).toEqual([]);
  }, 240_000);
});

function readLog(): string {
  return readFileSync(rt.log, "utf8");
}
