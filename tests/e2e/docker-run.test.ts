/**
 * Docker 20.10 (Debian's docker.io) drives cc-oci-runtime as `--runtime cor` (lib/docker.ts):
 * `docker run` in the foreground: `--rm`, `-ti` through a pty, and the container's settings
 * (a volume, hostname, user, environment, working directory, docker's /etc files, the exit
 * code). Requires root; installs the managers when missing; boots 3 VMs at once.
 */
import { describe } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostOverheadMiB } from "../../src/lifecycle/host-cgroup.ts";
import { BIN } from "../lib/cli.ts";
import { checkRunRmEchoHi, inspectExitCode, runRmEchoHi } from "./lib/cli.ts";
import { dockerCli, dockerSuite, IMAGE, interactive, RUN } from "./lib/docker.ts";
import { type Cmd, cmd } from "./lib/proc.ts";
import type { Scenario } from "./lib/scenario.ts";
import { BOOT_MS } from "./lib/suite.ts";

const e2e = dockerSuite("docker-run", (docker, go, ws) => {
  const cli = dockerCli(docker);
  const vol = ws.path("vol");
  mkdirSync(vol);
  chmodSync(vol, 0o777);
  writeFileSync(join(vol, "in.txt"), "from-the-host\n");

  go("tty", "docker run -ti", async (s) => {
    await interactive(docker, s, "runTty", [...RUN, "-ti", "--rm", "--name", "e2e-tty", IMAGE, "sh"], 5);
  });

  go("rm", "docker run --rm", async (s) => {
    await runRmEchoHi(cli, s, "e2e-rm");
  });

  go("settings", "docker run settings, exit 3", async (s) => {
    const name = "e2e-settings";
    const script = [
      'echo "hostname=$(hostname)"',
      'echo "etc-hostname=$(cat /etc/hostname)"',
      'echo "id=$(id -u):$(id -g)"',
      'echo "FOO=$FOO"',
      'echo "SPACED=$SPACED"',
      'echo "pwd=$(pwd)"',
      'echo "in=$(cat /data/in.txt)"',
      "echo written-by-the-container > /data/out.txt && echo write=ok",
      "[ -f /etc/hosts ] && grep -q localhost /etc/hosts && echo hosts=ok",
      "[ -f /etc/resolv.conf ] && echo resolv=ok",
      "exit 3",
    ].join("; ");
    await s.step(
      "run",
      docker.docker(
        [
          ...RUN,
          "--name",
          name,
          "--hostname",
          "e2e-host",
          "--user",
          "1000:1000",
          "-e",
          "FOO=bar",
          "-e",
          "SPACED=a b",
          "-w",
          "/tmp",
          "-v",
          `${vol}:/data`,
          IMAGE,
          "sh",
          "-c",
          script,
        ],
        { timeout: BOOT_MS },
      ),
    );
    s.steps.inspect = await inspectExitCode(cli, name);
    const out = join(vol, "out.txt");
    s.facts.hostFile = existsSync(out) ? readFileSync(out, "utf8") : null;
    s.facts.hostFileUid = existsSync(out) ? statSync(out).uid : null;
  });

  go("resources", "docker run -m 256m --cpus 1.5", async (s) => {
    const name = "e2e-resources";
    await s.need(
      "run",
      docker.docker(
        [
          ...RUN,
          "-d",
          "-m",
          "256m",
          "--cpus",
          "1.5",
          "--tmpfs",
          "/fill:size=200m",
          "--name",
          name,
          IMAGE,
          "sleep",
          "600",
        ],
        { timeout: BOOT_MS },
      ),
    );
    await s.step(
      "guest",
      docker.docker([
        "exec",
        name,
        "sh",
        "-c",
        // Docker on a cgroup v1 host gives no cgroup namespace: the container's own cgroup is
        // the one /proc/self/cgroup names, below the guest's whole tree.
        "nproc; grep MemTotal /proc/meminfo; p=$(cut -d: -f3 /proc/self/cgroup); cat /sys/fs/cgroup$p/memory.max /sys/fs/cgroup$p/cpu.max",
      ]),
    );
    // Memory the VM really uses: 150 MiB in a tmpfs of the guest.
    await s.step(
      "fill",
      docker.docker(["exec", name, "dd", "if=/dev/zero", "of=/fill/x", "bs=1M", "count=150"]),
    );
    const inspect = await s.need("inspect", docker.docker(["inspect", "-f", "{{.State.Pid}} {{.Id}}", name]));
    const [pid, id] = inspect.stdout.trim().split(" ") as [string, string];
    const state = await s.step("state", runtimeCli(["--root", docker.runtimeRoot, "state", id]));
    const stored = readState(docker.runtimeRoot, id);
    s.facts.vmMemoryMiB = Number(
      JSON.parse(state.stdout || "{}").annotations?.["io.cc-oci-runtime.vm.memory-mib"],
    );
    s.facts.accelerator = stored?.vm?.accelerator;
    const qemu = stored?.vm?.qemu?.pid as number | undefined;
    s.facts.qemuPid = qemu;
    s.facts.standinPid = Number(pid);
    s.facts.hostCgroup = stored?.hostCgroup?.dirs ?? null;
    const memDir = (stored?.hostCgroup?.dirs?.memory ?? stored?.hostCgroup?.dirs?.[""]) as string | undefined;
    s.facts.hostProcs = memDir
      ? readFileSync(join(memDir, "cgroup.procs"), "utf8").trim().split("\n").map(Number)
      : null;
    s.facts.hostMemoryLimit = memDir
      ? Number(
          readFileSync(
            join(memDir, existsSync(join(memDir, "memory.max")) ? "memory.max" : "memory.limit_in_bytes"),
            "utf8",
          ),
        )
      : null;
    s.facts.qemuRssKiB = qemu ? statusKiB(qemu, "VmRSS") : null;
    s.facts.qemuSharedKiB = qemu ? statusKiB(qemu, "RssFile") + statusKiB(qemu, "RssShmem") : null;
    const stats = await s.step(
      "stats",
      docker.docker(["stats", "--no-stream", "--format", "{{.MemUsage}}", name]),
    );
    s.facts.statsMiB = mibOf(stats.stdout.split("/")[0] ?? "");
    await s.step("rm", docker.docker(["rm", "-f", name]));
    s.facts.hostCgroupLeft = Object.values((stored?.hostCgroup?.dirs ?? {}) as Record<string, string>).filter(
      (d) => existsSync(d),
    );
  });
});

/** The runtime's own CLI, on a manager's runtime root. */
function runtimeCli(args: string[]): Promise<Cmd> {
  return cmd([BIN, ...args], { timeout: 30_000 });
}

/** The runtime's stored state of container `id` under `root`, if it is there. */
// biome-ignore lint/suspicious/noExplicitAny: the state file as read, checked field by field by the tests
function readState(root: string, id: string): Record<string, any> | undefined {
  try {
    return JSON.parse(readFileSync(join(root, id, "state.json"), "utf8"));
  } catch {
    return undefined;
  }
}

/** A field of /proc/PID/status in kB. */
function statusKiB(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** "221.3MiB" or "1.2GiB" as MiB. */
function mibOf(text: string): number {
  const m = /([\d.]+)\s*([KMG])i?B/.exec(text);
  if (!m) return Number.NaN;
  return (
    Number(m[1]) * (({ K: 1 / 1024, M: 1, G: 1024 } as Record<string, number>)[m[2] as string] ?? Number.NaN)
  );
}

/** The settings container's output has each of `lines` as a whole line (it exits 3). */
function checkOutputLines(s: Scenario, lines: string[]): void {
  const out = s.check("run", { code: 3 }).stdout;
  for (const line of lines) {
    if (!out.split("\n").includes(line)) throw new Error(s.explain("run", `no line ${JSON.stringify(line)}`));
  }
}

describe("docker --runtime cor: run", () => {
  e2e.test("run --rm IMAGE echo hi", "rm", checkRunRmEchoHi);

  e2e.test("run -ti: an interactive shell through a pty", "tty", (s) => {
    s.check("runTty", { code: 5, stdout: /tty-42/ });
  });

  e2e.test("run -ti: the client's terminal size reaches the container", "tty", (s) => {
    s.fact<string>("runTtySize", (v) => v === "40 120", '"40 120" from stty size', "runTty");
  });

  e2e.test("run exiting 3 -> inspect ExitCode 3", "settings", (s) => {
    s.check("run", { code: 3 });
    s.check("inspect", { code: 0, stdout: "3\n" });
  });

  e2e.test("-v volume, --hostname, --user, -e, -w", "settings", (s) => {
    checkOutputLines(s, [
      "hostname=e2e-host",
      "id=1000:1000",
      "FOO=bar",
      "SPACED=a b",
      "pwd=/tmp",
      "in=from-the-host",
      "write=ok",
    ]);
    s.fact<string>(
      "hostFile",
      (v) => v === "written-by-the-container\n",
      "the container's write on the host",
      "run",
    );
    s.fact<number>("hostFileUid", (v) => v === 1000, "owned on the host by the --user uid (1000)", "run");
  });

  e2e.test(
    "--network none: hostname, /etc/hostname, /etc/hosts and /etc/resolv.conf from docker",
    "settings",
    (s) => {
      checkOutputLines(s, ["etc-hostname=e2e-host", "hosts=ok", "resolv=ok"]);
    },
  );
});

describe("docker --runtime cor: resources", () => {
  const MIB = 1024 * 1024;
  e2e.test(
    "-m 256m --cpus 1.5: the guest has 2 vCPUs and about 256 MiB + its reserve; the guest cgroup the limits",
    "resources",
    (s) => {
      const [nproc, memTotal, memoryMax, cpuMax] = s.check("guest", { code: 0 }).stdout.trim().split("\n");
      const vm = s.facts.vmMemoryMiB as number;
      const totalMiB = Number(/(\d+) kB/.exec(memTotal ?? "")?.[1]) / 1024;
      if (nproc !== "2" || memoryMax !== String(256 * MIB) || cpuMax !== "150000 100000")
        throw new Error(s.explain("guest", "expected 2 CPUs, memory.max 268435456, cpu.max 150000 100000"));
      if (!(vm >= 256 + 160 && totalMiB > vm - 80 && totalMiB <= vm))
        throw new Error(s.explain("guest", `MemTotal ${totalMiB} MiB for a VM of ${vm} MiB`));
    },
  );

  e2e.test(
    "the host cgroup holds the stand-in and QEMU, bounded by the VM's memory + its overhead",
    "resources",
    (s) => {
      const procs = (s.facts.hostProcs as number[] | null) ?? [];
      if (!procs.includes(s.facts.qemuPid as number) || !procs.includes(s.facts.standinPid as number))
        throw new Error(s.explain("inspect", "QEMU and the stand-in are not both in the host cgroup"));
      const overhead = hostOverheadMiB(s.facts.accelerator as string);
      const want = ((s.facts.vmMemoryMiB as number) + overhead) * MIB;
      if (s.facts.hostMemoryLimit !== want)
        throw new Error(s.explain("state", `host memory limit is not ${want}`));
    },
  );

  e2e.test(
    "docker stats: the VM's memory (within 10 % of QEMU's RSS, less the template pages it shares)",
    "resources",
    (s) => {
      const stats = s.facts.statsMiB as number;
      const own = ((s.facts.qemuRssKiB as number) - (s.facts.qemuSharedKiB as number)) / 1024;
      if (!(Math.abs(stats - own) <= own * 0.1))
        throw new Error(
          s.explain("stats", `docker stats ${stats} MiB against QEMU's own ${own.toFixed(1)} MiB`),
        );
    },
  );

  e2e.test("docker rm -f: the host cgroup is gone", "resources", (s) => {
    s.check("rm", { code: 0 });
    s.fact<string[]>("hostCgroupLeft", (v) => v.length === 0, "no host cgroup directory left", "rm");
  });
});
