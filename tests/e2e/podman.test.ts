/**
 * podman 4.3 (Debian's podman, conmon 2.1.6) drives cc-oci-runtime as `--runtime BIN`: no
 * daemon, all storage in a private directory, a private containers.conf, the busybox image
 * from an OCI layout tarball (`podman load`). conmon calls the runtime with no global flags,
 * so its state goes to the runtime's default root. Requires root; installs the managers
 * when missing; boots 2 VMs at once.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { buildImage, IMAGE } from "./lib/image.ts";
import { Podman } from "./lib/managers.ts";
import { ensurePackages } from "./lib/packages.ts";
import { type Cmd, jobs, Slots, sleep, waitFor } from "./lib/proc.ts";
import { type Scenario, start } from "./lib/scenario.ts";
import { checkPrerequisites, installRuntimeConfig, Workspace } from "./lib/workspace.ts";

const SETUP_MS = 600_000;
const TEST_MS = 600_000;
const BOOT_MS = 120_000;

let ws: Workspace | undefined;
let podman: Podman;
const runs: Record<string, Promise<Scenario>> = {};

const RUN = ["run", "--pull", "never", "--network", "none"];
const runtimeLogs = () => [join(Podman.RUNTIME_ROOT, "cc-oci-runtime.log")];

beforeAll(async () => {
  checkPrerequisites();
  await ensurePackages();
  ws = new Workspace("podman");
  ws.onTeardown("runtime config", installRuntimeConfig());
  podman = new Podman(ws);
  const image = await buildImage(ws.path("image"));
  await podman.importImage(image.ociTar);

  const slots = new Slots(jobs());
  const go = (name: string, body: (s: Scenario) => Promise<void>) => start(slots, name, runtimeLogs, body);

  runs.long = go("podman run -d", async (s) => {
    const name = "e2e-long";
    const run = await s.need(
      "run",
      podman.podman(
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
    const id = run.stdout.trim();
    podman.remember(id);
    s.facts.id = id;
    let logs: Cmd | undefined;
    await waitFor(
      "ready in podman logs",
      async () => {
        logs = await podman.podman(["logs", name], { timeout: 30_000 });
        return /^ready$/m.test(logs.stdout) ? true : undefined;
      },
      BOOT_MS,
      500,
    ).catch(() => undefined);
    s.steps.ready = logs;
    await s.step(
      "exec",
      podman.podman(["exec", name, "sh", "-c", 'echo "exec-says-$((40+2))"'], { timeout: 60_000 }),
    );
    await s.step("execStatus", podman.podman(["exec", name, "sh", "-c", "exit 6"], { timeout: 60_000 }));
    await s.step("stop", podman.podman(["stop", "-t", "30", name], { timeout: 90_000 }));
    s.steps.logs = await podman.podman(["logs", name]);
    s.steps.inspect = await podman.podman(["inspect", "-f", "{{.State.ExitCode}}", name]);
    await s.step("rm", podman.podman(["rm", name], { timeout: 60_000 }));
    s.steps.ps = await podman.podman(["ps", "-a", "-q", "--filter", `name=^${name}$`]);
    s.facts.stateDirGone = !existsSync(join(Podman.RUNTIME_ROOT, id));
  });

  runs.rm = go("podman run --rm", async (s) => {
    await s.step(
      "run",
      podman.podman([...RUN, "--rm", "--name", "e2e-rm", IMAGE, "echo", "hi"], { timeout: BOOT_MS }),
    );
    s.steps.ps = await podman.podman(["ps", "-a", "-q", "--filter", "name=^e2e-rm$"]);
  });
}, SETUP_MS);

afterAll(async () => {
  await Promise.race([Promise.all(Object.values(runs)), sleep(180_000)]);
  await ws?.teardown();
}, SETUP_MS);

const get = (k: string) => {
  const p = runs[k];
  if (!p) throw new Error(`scenario ${k} never started: the set-up failed`);
  return p;
};

describe("podman --runtime cc-oci-runtime", () => {
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
    "run -d, then exec",
    async () => {
      const s = await get("long");
      s.check("run", { code: 0, stdout: /^[0-9a-f]{64}\n$/ });
      s.check("ready", { code: 0, stdout: /^ready$/m });
      s.check("exec", { code: 0, stdout: "exec-says-42\n" });
      s.check("execStatus", { code: 6, stdout: "" });
    },
    TEST_MS,
  );

  test(
    "stop: the TERM trap runs, exit code 0, no SIGKILL fallback",
    async () => {
      const s = await get("long");
      s.check("stop", { code: 0, stdout: "e2e-long\n" });
      expect(s.steps.stop?.ms ?? 0).toBeLessThan(25_000);
      s.check("logs", { code: 0, stdout: /^got-term$/m });
      s.check("inspect", { code: 0, stdout: "0\n" });
    },
    TEST_MS,
  );

  test(
    "rm: the container and the runtime's state are gone",
    async () => {
      const s = await get("long");
      s.check("rm", { code: 0, stdout: /^[0-9a-f]{64}\n$|^e2e-long\n$/ });
      s.check("ps", { code: 0, stdout: "" });
      s.fact<boolean>(
        "stateDirGone",
        (v) => v === true,
        "no state directory left under the runtime's root",
        "rm",
      );
    },
    TEST_MS,
  );
});
