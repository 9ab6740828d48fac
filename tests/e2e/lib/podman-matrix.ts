/**
 * podman's part of the matrix, for root's podman (podman.test.ts) and a user's rootless
 * podman (podman-rootless.test.ts): `run --rm`, `run -d` + `exec`, `stop` (the TERM trap),
 * `rm` (the runtime's state gone). podman 4.3 (Debian's, conmon 2.1.6) drives the runtime as
 * `--runtime BIN`, with no daemon, all storage in the workspace, a private containers.conf
 * and the busybox image from an OCI layout tarball (`podman load`). conmon calls the
 * runtime with no global flags: its state goes to the runtime's default root.
 */
import { describe } from "bun:test";
import { existsSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import type { TestUser } from "../../lib/user.ts";
import {
  COUNTER,
  checkExecSteps,
  checkGracefulStop,
  checkRunRmEchoHi,
  type DockerLikeCli,
  execSteps,
  psByName,
  runDetached,
  runRmEchoHi,
  stopSteps,
} from "./cli.ts";
import { buildImage, IMAGE } from "./image.ts";
import { Podman } from "./managers.ts";
import { type Cmd, waitFor } from "./proc.ts";
import { BOOT_MS, suite } from "./suite.ts";
import { BIN } from "./workspace.ts";

const RUN = ["run", "--pull", "never", "--network", "none"];

export function podmanMatrix(name: string, title: string, user?: () => TestUser): void {
  let runtimeRoot = Podman.RUNTIME_ROOT;
  const e2e = suite(
    name,
    () => [join(runtimeRoot, "cc-oci-runtime.log")],
    async (ws, go) => {
      const podman = new Podman(ws, undefined, user?.());
      runtimeRoot = podman.runtimeRoot;
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
        s.facts.stateDirGone = !existsSync(join(runtimeRoot, id));
      });

      go("rm", "podman run --rm", async (s) => {
        await runRmEchoHi(cli, s, "e2e-rm");
      });

      // Checkpoints need root's podman; it checkpoints only with a runtime named runc or
      // crun (its check is by name): the runtime under a link named runc.
      if (user) return;
      const link = ws.path("runc");
      symlinkSync(BIN, link);
      const ckPodman = new Podman(ws, undefined, undefined, link);
      go("checkpoint", "podman container checkpoint / restore", async (s) => {
        const name = "e2e-ck";
        const p = (args: string[], timeout = 120_000) => ckPodman.podman(args, { timeout });
        const run = await s.need("run", p([...RUN, "-d", "--name", name, IMAGE, ...COUNTER]));
        podman.remember(run.stdout.trim());
        const last = async () => {
          const r = await p(["exec", name, "tail", "-n1", "/count"], 60_000);
          return r.code === 0 ? Number(r.stdout.trim()) : 0;
        };
        await waitFor("3 lines", async () => ((await last()) >= 3 ? true : undefined), BOOT_MS, 500);
        await s.need("checkpoint", p(["container", "checkpoint", name], 300_000));
        s.steps.stateAfterCheckpoint = await p(["inspect", "--format", "{{.State.Status}}", name]);
        // The rootfs stays podman's: its lines as they were when the tree was dumped.
        const mounted = await s.need("mount", p(["mount", name]));
        const dumped = readFileSync(join(mounted.stdout.trim(), "count"), "utf8").trim().split("\n");
        await p(["umount", name]);
        await s.need("restore", p(["container", "restore", name], 300_000));
        await waitFor(
          "more lines",
          async () => ((await last()) > dumped.length + 2 ? true : undefined),
          BOOT_MS,
          500,
        );
        const all = await s.step("cat", p(["exec", name, "cat", "/count"]));
        const lines = all.stdout.trim().split("\n");
        s.facts.continued =
          lines.slice(0, dumped.length).join(",") === dumped.join(",") &&
          Number(lines[dumped.length]) === Number(dumped.at(-1)) + 1;
        await s.step("stop", p(["stop", "-t", "30", name]));
        s.steps.exitCode = await p(["inspect", "--format", "{{.State.ExitCode}}", name]);
        await s.step("rm", p(["rm", name]));
      });
    },
  );

  describe(title, () => {
    if (!user) {
      e2e.test(
        "container checkpoint, restore: the counter goes on from where it was, exec works, stop gives its status",
        "checkpoint",
        (s) => {
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
        },
      );
    }
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
}
