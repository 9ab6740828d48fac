/**
 * podman 4.3 (Debian's podman, conmon 2.1.6) drives cc-oci-runtime as `--runtime BIN`: no
 * daemon, all storage in a private directory, a private containers.conf, the busybox image
 * from an OCI layout tarball (`podman load`). conmon calls the runtime with no global flags,
 * so its state goes to the runtime's default root. Requires root; installs the managers
 * when missing; boots 2 VMs at once.
 */
import { describe } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  checkExecSteps,
  checkGracefulStop,
  checkRunRmEchoHi,
  type DockerLikeCli,
  execSteps,
  psByName,
  runDetached,
  runRmEchoHi,
  stopSteps,
} from "./lib/cli.ts";
import { buildImage, IMAGE } from "./lib/image.ts";
import { Podman } from "./lib/managers.ts";
import { type Cmd, waitFor } from "./lib/proc.ts";
import { BOOT_MS, suite } from "./lib/suite.ts";

const RUN = ["run", "--pull", "never", "--network", "none"];
const runtimeLogs = () => [join(Podman.RUNTIME_ROOT, "cc-oci-runtime.log")];

const e2e = suite("podman", runtimeLogs, async (ws, go) => {
  const podman = new Podman(ws);
  const image = await buildImage(ws.path("image"));
  await podman.importImage(image.ociTar);
  const cli: DockerLikeCli = { cli: (args, opts) => podman.podman(args, opts), run: RUN, image: IMAGE };

  go("long", "podman run -d", async (s) => {
    const name = "e2e-long";
    const run = await runDetached(
      cli,
      s,
      name,
      'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 1; done',
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
    await execSteps(cli, s, name, 6);
    await stopSteps(cli, s, name);
    await s.step("rm", podman.podman(["rm", name], { timeout: 60_000 }));
    s.steps.ps = await psByName(cli, name);
    s.facts.stateDirGone = !existsSync(join(Podman.RUNTIME_ROOT, id));
  });

  go("rm", "podman run --rm", async (s) => {
    await runRmEchoHi(cli, s, "e2e-rm");
  });
});

describe("podman --runtime cc-oci-runtime", () => {
  e2e.test("run --rm IMAGE echo hi", "rm", checkRunRmEchoHi);

  e2e.test("run -d, then exec", "long", (s) => {
    s.check("run", { code: 0, stdout: /^[0-9a-f]{64}\n$/ });
    s.check("ready", { code: 0, stdout: /^ready$/m });
    checkExecSteps(s, 6);
  });

  e2e.test("stop: the TERM trap runs, exit code 0, no SIGKILL fallback", "long", (s) => {
    checkGracefulStop(s, "e2e-long");
  });

  e2e.test("rm: the container and the runtime's state are gone", "long", (s) => {
    s.check("rm", { code: 0, stdout: /^[0-9a-f]{64}\n$|^e2e-long\n$/ });
    s.check("ps", { code: 0, stdout: "" });
    s.fact<boolean>(
      "stateDirGone",
      (v) => v === true,
      "no state directory left under the runtime's root",
      "rm",
    );
  });
});
