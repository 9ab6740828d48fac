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
import { WRITABLE_LAYER_ANNOTATION } from "../../../src/config/writable-layer.ts";
import type { TestUser } from "../../lib/user.ts";
import {
  checkCheckpointSteps,
  checkExecSteps,
  checkGracefulStop,
  checkpointSteps,
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

      // Root's: a user's runtime refuses the guest layer.
      if (!user) {
        go("layer", "podman run --annotation io.cc-oci-runtime.writable-layer=guest", async (s) => {
          const name = "e2e-layer";
          const script = `echo in-the-layer > /made && awk '$2=="/"{print $3}' /proc/mounts`;
          const annotation = `${WRITABLE_LAYER_ANNOTATION}=guest`;
          await s.need(
            "run",
            podman.podman([...RUN, "--name", name, "--annotation", annotation, IMAGE, "sh", "-c", script], {
              timeout: BOOT_MS,
            }),
          );
          // The layer is in podman's rootfs once the container has exited: diff, mount see it.
          await s.step("diff", podman.podman(["diff", name], { timeout: 60_000 }));
          const mounted = await s.need("mount", podman.podman(["mount", name], { timeout: 60_000 }));
          s.facts.made = readFileSync(join(mounted.stdout.trim(), "made"), "utf8");
          await podman.podman(["umount", name], { timeout: 60_000 });
          await s.step("rm", podman.podman(["rm", name], { timeout: 60_000 }));
        });
      }

      // Checkpoints need root's podman; it checkpoints only with a runtime named runc or
      // crun (its check is by name): the runtime under a link named runc.
      if (user) return;
      const link = ws.path("runc");
      symlinkSync(BIN, link);
      const ckPodman = new Podman(ws, undefined, undefined, link);
      const ckCli: DockerLikeCli = { ...cli, cli: (args, opts) => ckPodman.podman(args, opts) };
      go("checkpoint", "podman container checkpoint / restore", async (s) => {
        const name = "e2e-ck";
        await checkpointSteps(ckCli, s, name, {
          checkpoint: (n) => ["container", "checkpoint", n],
          restore: (n) => ["container", "restore", n],
          started: (id) => podman.remember(id),
          // The rootfs stays podman's: its lines as they were when the tree was dumped.
          dumped: async () => {
            const mounted = await s.need("mount", ckPodman.podman(["mount", name], { timeout: 60_000 }));
            const lines = readFileSync(join(mounted.stdout.trim(), "count"), "utf8").trim().split("\n");
            await ckPodman.podman(["umount", name], { timeout: 60_000 });
            return lines;
          },
        });
      });
    },
  );

  describe(title, () => {
    if (!user) {
      e2e.test(
        "container checkpoint, restore: the counter goes on from where it was, exec works, stop gives its status",
        "checkpoint",
        checkCheckpointSteps,
      );
    }
    e2e.test("run --rm IMAGE echo hi", "rm", checkRunRmEchoHi);

    if (!user) {
      e2e.test(
        "a writable layer in the guest: the container's file in podman's rootfs after it exited",
        "layer",
        (s) => {
          s.check("run", { code: 0, stdout: "overlay\n" });
          s.check("diff", { code: 0, stdout: /^A \/made$/m });
          s.fact<string>(
            "made",
            (v) => v === "in-the-layer\n",
            "the file the container made, in its rootfs",
            "mount",
          );
          s.check("rm", { code: 0 });
        },
      );
    }

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
