/**
 * Guest benchmark: the figures the README states, measured on this machine with the built
 * runtime (bin/cc-oci-runtime) and guest (build/guest/, through build/local's vm.json).
 *
 *   node_modules/.bin/bun run bench/guest.ts [--runs N]      (default N=3)
 *
 * Each run boots four VMs, one after the other:
 *  1. `run` of `echo`: time from spawning `run` to the first output line on its stdout, and
 *     to its exit; `run` of `true`: time to its exit.
 *  2. `create --pid-file` of `sleep 1000`, polling `<root>/<id>/console.log` every 5 ms and
 *     time-stamping each console line on the host when it first appears (the kernel runs with
 *     `quiet` and /init's lines carry no timestamp). QEMU's start is its process start time
 *     (/proc/PID/stat field 22, clock ticks since boot, so 10 ms resolution) on the same clock
 *     (CLOCK_BOOTTIME). Then `start`, a few seconds of idling, and the RSS, PSS, USS of the
 *     QEMU process and of the stand-in (/proc/PID/smaps_rollup), QEMU's RSS split by mapping
 *     (/proc/PID/smaps: guest RAM, TCG code buffer, vmlinux, other).
 *  3. The same idle container, but without a pid namespace and with CAP_SYSLOG: its process
 *     sees the whole guest, so it prints /proc/1/status (the agent), /proc/meminfo, every
 *     guest process's status and dmesg, then execs `sleep 1000`. This VM boots with
 *     cc.debug=1 (added to the bundle's vm.json), so /init's steps appear on the console;
 *     the kernel's own boot time comes from dmesg, and a printk-stamped console line ties the
 *     guest's clock to the host's.
 * Every container is deleted with `delete --force`; the bench then checks that no process
 * (QEMU, stand-in) is left with its working directory or command line under its root.
 * Figures: min / median / max over the runs, printed as a table and written as JSON to
 * bench/results/guest-<date>.json.
 */

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { BIN } from "../tests/lib/cli.ts";
import { POLL_MS } from "./lib/cc.ts";
import { CLK_TCK, now } from "./lib/clock.ts";
import { GuestBench, SETTLE_MS } from "./lib/guest-phases.ts";
import { GUEST_REPORT } from "./lib/guest-report.ts";
import { foreignQemus, processesUnder } from "./lib/proc.ts";
import { resultFile } from "./lib/report.ts";
import { summary, table } from "./lib/stats.ts";

function parseArgs(argv: string[]): { runs: number } {
  let runs = 3;
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k] ?? "";
    if (a === "--runs" || a.startsWith("--runs=")) {
      const v = a === "--runs" ? argv[++k] : a.slice("--runs=".length);
      runs = Number(v);
      if (!Number.isInteger(runs) || runs < 1)
        throw new Error(`--runs: expected a positive integer, got ${v}`);
    } else if (a === "-h" || a === "--help") {
      console.log("usage: bun run bench/guest.ts [--runs N]   (default 3)");
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  return { runs };
}

async function main(): Promise<number> {
  const { runs } = parseArgs(Bun.argv.slice(2));
  if (!existsSync(BIN)) throw new Error(`${BIN} missing: run make first`);
  const bench = new GuestBench();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error("interrupted: cleaning up");
    void bench.cleanup().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const started = new Date();
  const loadBefore = loadavg();
  const t0 = now();
  let failure: unknown;
  try {
    const echo = bench.bundle({ args: ["echo", "bench-hello"] });
    const tru = bench.bundle({ args: ["true"] });
    const sleeper = bench.bundle({ args: ["sleep", "1000"] });
    const reporter = bench.bundle({
      args: ["sh", "-c", GUEST_REPORT],
      edit: (spec) => {
        const linux = spec.linux as { namespaces: { type: string }[] };
        linux.namespaces = linux.namespaces.filter((n) => n.type !== "pid");
        const caps = spec.process.capabilities as Record<string, string[]>;
        for (const set of Object.values(caps)) set.push("CAP_SYSLOG");
      },
    });
    // This VM also prints /init's steps (cc.debug=1), after its "cc-init: start" line.
    const vmJson = join(reporter, "vm.json");
    const vm = JSON.parse(readFileSync(vmJson, "utf8")) as { kernel: { parameters: string } };
    vm.kernel.parameters += " cc.debug=1";
    writeFileSync(vmJson, JSON.stringify(vm, null, 2));
    for (let i = 1; i <= runs && !interrupted; i++) {
      const others = foreignQemus(bench.rt.root);
      bench.foreign.push(others);
      console.error(
        `run ${i}/${runs}${others ? ` (${others} other QEMU process(es) running on this host)` : ""}`,
      );
      await bench.runTimes(i, echo, tru);
      await bench.idle(i, sleeper);
      await bench.guestMemory(i, reporter);
    }
  } catch (err) {
    failure = err;
  } finally {
    await bench.cleanup();
  }
  const wallS = (now() - t0) / 1000;
  const figures = [...bench.figures.values()];
  const leftQemu = processesUnder(bench.rt.root);
  console.log(
    `cc-oci-runtime guest bench: ${runs} run(s), accelerator ${bench.accelerator}, ${cpus().length} CPUs, ` +
      `load ${loadBefore.map((l) => l.toFixed(2)).join(" ")}, ${wallS.toFixed(0)} s, ` +
      `other QEMUs at each run's start: ${bench.foreign.join(",")}`,
  );
  console.log(table(figures, runs));
  for (const n of bench.notes) console.log(`note: ${n}`);
  console.log(
    leftQemu.length ? `LEFT BEHIND: ${JSON.stringify(leftQemu)}` : "no QEMU or stand-in left behind",
  );

  const file = resultFile("guest", started);
  const json = {
    date: started.toISOString(),
    runs,
    host: {
      kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      loadBefore,
      loadAfter: loadavg(),
      otherQemusPerRun: bench.foreign,
    },
    accelerator: bench.accelerator,
    binary: resolve(BIN),
    method: {
      pollMs: POLL_MS,
      settleMs: SETTLE_MS,
      clock: "CLOCK_BOOTTIME; QEMU start from /proc/PID/stat starttime (1/CLK_TCK s resolution)",
      clkTck: CLK_TCK,
    },
    wallSeconds: wallS,
    figures: Object.fromEntries(
      figures.map((f) => [f.key, { label: f.label, unit: f.unit, ...summary(f.values), values: f.values }]),
    ),
    notes: bench.notes,
    error: failure ? String((failure as Error).stack ?? failure) : undefined,
    raw: bench.raw,
  };
  await Bun.write(file, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`written: ${file}`);
  if (failure) {
    console.error(`bench failed: ${(failure as Error).message ?? failure}`);
    return 1;
  }
  return leftQemu.length ? 1 : 0;
}

process.exit(await main());
