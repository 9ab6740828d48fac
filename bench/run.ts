/**
 * The benchmark suite (`make bench`): cc-oci-runtime side by side with runc, crun and a bare
 * QEMU boot, on this machine. Usage: `bun run bench/run.ts --help`.
 *
 * Sections (bench/lib/<section>.ts says how each is measured):
 *  - start:   `run` of `true`, end to end; `create` to the workload's first output; the bare
 *             QEMU floors (same kernel, machine, accelerator; tiny initramfs): a boot, and a
 *             restore of a clone from a shared-memory snapshot;
 *  - cli:     `state`, `list`, `kill` latency;
 *  - network: TCP throughput, HTTP round trip, what networking adds to `create` (runc and
 *             cc-oci-runtime: crun runs in a mount namespace of its own here);
 *  - memory:  host PSS per idle container, 1 and 10 at once (and per bare clone: the floor);
 *  - density: idle containers before start latency doubles (bounded);
 *  - files:   sequential and small-file I/O on the rootfs and a tmpfs, inside the container.
 * Every figure is min / median / max over N rounds; every ratio is computed round by round
 * from figures measured in the same round (absolute times drift on these machines, ratios
 * hold). cc-oci-runtime is measured with CC_OCI_TEMPLATE=1 too (snapshot-based starts):
 * with --template auto, the other sections keep it only if it changed start latency.
 * Prints Markdown tables and writes bench/results/bench-<date>.json. Every container is
 * deleted with --force, every temporary directory removed, and the bench fails if any
 * process of its own (QEMU, stand-in) is left.
 */
import { existsSync, rmSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { chooseAccel } from "../src/hypervisor/accel.ts";
import { makeBundle } from "../tests/lib/bundle.ts";
import { BIN } from "../tests/lib/cli.ts";
import { removeRuntimeBinary, runtimeBinary } from "./lib/cc.ts";
import { cliSection } from "./lib/cli-latency.ts";
import { now } from "./lib/clock.ts";
import { CcContender, type Contender, ensureInstalled, OciContender } from "./lib/contenders.ts";
import { type Bundles, type Ctx, ECHO_TEXT, PARALLEL } from "./lib/context.ts";
import { densitySection } from "./lib/density.ts";
import { filesSection } from "./lib/files.ts";
import { Floor } from "./lib/floor.ts";
import { hostInfo } from "./lib/host.ts";
import { memorySection, VM_SETTLE_MS } from "./lib/memory.ts";
import { networkSection } from "./lib/network.ts";
import { type Options, parseOptions } from "./lib/options.ts";
import { foreignQemus } from "./lib/proc.ts";
import { Results, resultFile } from "./lib/report.ts";
import { startSection } from "./lib/start.ts";
import { summaryTables } from "./lib/summary.ts";

class Suite {
  readonly results = new Results();
  readonly contenders: Contender[] = [];
  readonly bundleDirs: string[] = [];
  floor: Floor | undefined;
  stopped = false;
  readonly sectionTimes: Record<string, { seconds: number; otherQemus: number }> = {};

  constructor(readonly opts: Options) {}

  mine(): string[] {
    return [...this.contenders.flatMap((c) => c.dirs()), ...(this.floor ? [this.floor.dir] : [])];
  }

  async setup(): Promise<Bundles> {
    const o = this.opts;
    const bundle = (args: string[]) => {
      const b = makeBundle({ args });
      this.bundleDirs.push(b);
      return b;
    };
    const bundles = {
      tru: bundle(["true"]),
      echo: bundle(["echo", ECHO_TEXT]),
      sleep: bundle(["sleep", "100000"]),
    };
    const oci = o.runtimes.filter((r): r is "runc" | "crun" => r === "runc" || r === "crun");
    if (oci.length && o.install) ensureInstalled(oci, this.results.notes);
    if (o.runtimes.includes("cc")) {
      this.contenders.push(new CcContender("cc"));
      const templateNeeded = o.template === "on" || (o.template === "auto" && o.only.includes("start"));
      if (templateNeeded) this.contenders.push(new CcContender("cc-template"));
      else if (o.template === "auto")
        this.results.notes.push("CC_OCI_TEMPLATE=1 not measured: --template auto needs the start section");
    }
    for (const k of oci) {
      const c = new OciContender(k);
      this.contenders.push(c);
      await c.setup();
      // It must really work here (crun: the private mount namespace without cgroup2).
      const r = await c.call(["run", "--bundle", bundles.tru, "verify"]);
      if (r.code !== 0) throw new Error(`${c.name} does not run a container here: ${r.stderr.trim()}`);
      const ov = await c.nsenterOverheadMs();
      if (ov !== undefined)
        this.results.notes.push(
          `crun figures include nsenter into its mount namespace: +${ov.toFixed(2)} ms a call`,
        );
    }
    if (o.runtimes.includes("floor") && (o.only.includes("start") || o.only.includes("memory")))
      this.floor = new Floor(bundles.tru);
    return bundles;
  }

  async section(name: string, f: () => Promise<void>): Promise<void> {
    if (this.stopped || !this.opts.only.includes(name as Options["only"][number])) return;
    const t0 = now();
    const otherQemus = foreignQemus(...this.mine());
    if (otherQemus) this.log(`${name}: ${otherQemus} QEMU process(es) of others running on this host`);
    await f();
    this.sectionTimes[name] = { seconds: (now() - t0) / 1000, otherQemus };
  }

  log(msg: string): void {
    console.error(`bench: ${msg}`);
  }

  async run(bundles: Bundles): Promise<void> {
    const o = this.opts;
    const ctx: Ctx = {
      results: this.results,
      runs: o.runs,
      bundles,
      log: (m) => this.log(m),
      stopped: () => this.stopped,
    };
    let all = this.contenders;
    await this.section("start", async () => {
      const r = await startSection(ctx, all, this.floor);
      if (r.templateSummary) this.results.notes.push(r.templateSummary);
      if (r.templateDiffers === false && o.template === "auto") {
        all = all.filter((c) => c.key !== "cc-template");
        this.results.notes.push("so the other sections measure cc-oci-runtime without CC_OCI_TEMPLATE only");
      }
      this.results.raw.templateDiffers = r.templateDiffers;
    });
    await this.section("cli", () => cliSection(ctx, all, o.cliCalls));
    await this.section("network", () =>
      networkSection(
        ctx,
        all.filter((c) => c.key !== "crun"),
      ),
    );
    await this.section("memory", () =>
      memorySection({ ...ctx, runs: o.memRuns }, all, o.memContainers, this.floor),
    );
    const vms = all.filter((c): c is CcContender => c instanceof CcContender);
    await this.section("density", () =>
      densitySection(ctx, vms, { max: o.maxDensity, budgetS: o.densityBudgetS }),
    );
    await this.section("files", () =>
      filesSection(
        ctx,
        all.filter((c) => c.key !== "cc-template"),
      ),
    );
  }

  /** Everything removed; returns the processes of ours still alive (must be none). */
  async cleanup(): Promise<{ pid: number; cmd: string }[]> {
    for (const c of this.contenders) {
      await c.cleanup().catch((e: Error) => this.results.notes.push(`${c.name} cleanup: ${e.message}`));
      this.results.notes.push(...c.notes);
    }
    removeRuntimeBinary();
    await this.floor?.cleanup();
    for (const b of this.bundleDirs) rmSync(b, { recursive: true, force: true });
    await Bun.sleep(300);
    return [...this.contenders.flatMap((c) => c.leftovers()), ...(this.floor?.leftovers() ?? [])];
  }
}

async function main(): Promise<number> {
  const opts = parseOptions(Bun.argv.slice(2));
  if (!existsSync(BIN)) throw new Error(`${BIN} missing: run make first`);
  const suite = new Suite(opts);
  // Measured: a copy of the binary as it is now (see runtimeBinary).
  const st = statSync(BIN);
  const binaryId = { size: st.size, mtime: st.mtime.toISOString(), copy: runtimeBinary() };
  if (process.env.CC_OCI_TEMPLATE !== undefined) {
    suite.results.notes.push(`CC_OCI_TEMPLATE=${process.env.CC_OCI_TEMPLATE} in the environment: ignored`);
    delete process.env.CC_OCI_TEMPLATE;
  }
  let cleaning: Promise<unknown> | undefined;
  const onSignal = () => {
    if (suite.stopped) return;
    suite.stopped = true;
    console.error("interrupted: cleaning up");
    cleaning = suite.cleanup().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const started = new Date();
  const loadBefore = loadavg();
  const t0 = now();
  let failure: unknown;
  let left: { pid: number; cmd: string }[] = [];
  try {
    const bundles = await suite.setup();
    await suite.run(bundles);
  } catch (err) {
    failure = err;
  } finally {
    if (cleaning) await cleaning;
    left = await suite.cleanup();
  }
  const wallS = (now() - t0) / 1000;
  const host = hostInfo(suite.floor?.qemu ?? "qemu-system-x86_64", BIN);
  const accel = suite.floor?.accelerator ?? chooseAccel().accel;
  const res = suite.results;
  const title =
    `${started.toISOString().slice(0, 10)}, ${host.cpus} vCPUs (${host.cpuModel}), ${host.memGiB} GiB, ` +
    `Linux ${host.kernel}, ${host.qemu.replace(/ Copyright.*/, "")}, accelerator ${accel ?? "?"}; ` +
    `${opts.runs} rounds (memory ${opts.memRuns}), ${wallS.toFixed(0)} s`;
  console.log(`\n## cc-oci-runtime bench: ${title}\n`);
  console.log(`### Summary\n\n${summaryTables(res, opts.memContainers)}\n`);
  console.log(
    res.markdown([
      { name: "start", title: "Start latency" },
      { name: "cli", title: `CLI latency (median of ${opts.cliCalls} calls a round)` },
      { name: "network", title: "Network (a veth in a namespace of the bench's, no manager)" },
      { name: "memory", title: `Host memory per idle container (PSS), ${opts.memRuns} rounds` },
      { name: "density", title: `Density (one ramp, bounded at ${opts.maxDensity})` },
      { name: "files", title: "File I/O inside the container (ms; /proc/uptime, 10 ms steps)" },
    ]),
  );
  for (const n of res.notes) console.log(`- ${n}`);
  console.log(
    left.length ? `LEFT BEHIND: ${JSON.stringify(left)}` : "- no QEMU, stand-in or container left behind",
  );

  const file = resultFile("bench", started);
  const json = {
    date: started.toISOString(),
    title,
    options: opts,
    host: { ...host, loadBefore },
    accelerator: accel,
    binary: { path: resolve(BIN), ...binaryId },
    contenders: suite.contenders.map((c) => ({ key: c.key, name: c.name })),
    floorArgv: suite.floor?.argv,
    method: {
      timing: "spawn to exit (or to first output byte) of each call, CLOCK_BOOTTIME",
      ratios: "per round: figure A of round i / figure B of round i; min / median / max over rounds",
      vmSettleMs: VM_SETTLE_MS,
      parallelCreates: PARALLEL,
    },
    sections: suite.sectionTimes,
    wallSeconds: wallS,
    figures: res.json(),
    notes: res.notes,
    leftBehind: left,
    error: failure ? String((failure as Error).stack ?? failure) : undefined,
    raw: res.raw,
  };
  await Bun.write(file, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nwritten: ${file}`);
  if (failure) {
    console.error(`bench failed: ${(failure as Error).message ?? failure}`);
    return 1;
  }
  return left.length ? 1 : 0;
}

process.exit(await main());
