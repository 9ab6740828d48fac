/**
 * What the docker-*.test.ts files share: dockerd 20.10 on its own containerd in the file's
 * workspace, `--runtime cor`, a busybox image from `docker import`, every container with
 * `--network none` (no bridge here), which makes docker add its libnetwork-setkey prestart
 * hook and bind-mount /etc/resolv.conf, /etc/hosts and /etc/hostname.
 */
import { join } from "node:path";
import type { DockerLikeCli } from "./cli.ts";
import { buildImage } from "./image.ts";
import { Containerd, Dockerd } from "./managers.ts";
import type { Netns } from "./netns.ts";
import { type Cmd, waitFor } from "./proc.ts";
import { PtySession } from "./pty.ts";
import type { Scenario } from "./scenario.ts";
import { BOOT_MS, type Go, type Suite, suite } from "./suite.ts";
import type { Workspace } from "./workspace.ts";

export const IMAGE = "cc-e2e-busybox:latest";
/** `docker run` with this runtime and no network: what every container here starts with. */
export const RUN = ["run", "--runtime", "cor", "--network", "none"];

/**
 * An e2e file driving docker: containerd and dockerd started in the workspace `name`, the
 * image imported, then `scenarios` started. `{ network: true }`: both daemons run in the
 * file's network namespace with docker's networking on (lib/netns.ts).
 */
export function dockerSuite(
  name: string,
  scenarios: (docker: Dockerd, go: Go, ws: Workspace, netns: Netns | undefined) => Promise<void> | void,
  opts: { network?: boolean } = {},
): Suite {
  let docker: Dockerd | undefined;
  const runtimeLogs = () => (docker ? [join(docker.runtimeRoot, "cc-oci-runtime.log")] : []);
  return suite(
    name,
    runtimeLogs,
    async (ws, go, netns) => {
      const containerd = await Containerd.start(ws, netns);
      const d = await Dockerd.start(ws, containerd, netns);
      docker = d;
      const image = await buildImage(ws.path("image"));
      await d.importImage(image.rootfsTar, IMAGE);
      await scenarios(d, go, ws, netns);
    },
    opts,
  );
}

/** The docker client in the shape the steps shared with podman take. */
export function dockerCli(docker: Dockerd): DockerLikeCli {
  return { cli: (args, opts) => docker.docker(args, opts), run: RUN, image: IMAGE };
}

/** Polls `docker logs NAME` until it matches; the last poll is recorded as step `key`. */
export async function logsMatch(
  docker: Dockerd,
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

/**
 * Interactive shell through a pty (`docker ARGV`): prompt, a computed answer, the terminal
 * size, exit N. Recorded as step `prefix`, the sizes read as facts `${prefix}FirstSize` and
 * `${prefix}Size`.
 */
export async function interactive(
  docker: Dockerd,
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
