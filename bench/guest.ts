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
import { dlopen, FFIType, ptr } from "bun:ffi";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { makeBundle } from "../tests/lib/bundle.ts";
import { BIN } from "../tests/lib/cli.ts";
import { Runtime } from "../tests/lib/runtime.ts";

const BENCH_DIR = import.meta.dir;
const RESULTS_DIR = join(BENCH_DIR, "results");
const POLL_MS = 5;
/** How long an idle container is left alone before its memory is read. */
const SETTLE_MS = 3_000;
/** Bound on any one runtime command (a TCG boot takes a few seconds). */
const COMMAND_TIMEOUT_MS = 120_000;
const GUEST_REPORT_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------- clock

const libc = dlopen("libc.so.6", {
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
});
const CLOCK_BOOTTIME = 7;
const timespec = new BigInt64Array(2);

/** Milliseconds since host boot (CLOCK_BOOTTIME): the clock of /proc/PID/stat start times. */
function now(): number {
  if (libc.symbols.clock_gettime(CLOCK_BOOTTIME, ptr(timespec)) !== 0) throw new Error("clock_gettime");
  return Number(timespec[0]) * 1000 + Number(timespec[1]) / 1e6;
}

const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

// ---------------------------------------------------------------- /proc helpers

interface Mem {
  rssKiB: number;
  pssKiB: number;
  /** Private_Clean + Private_Dirty: what this process alone costs (USS). */
  ussKiB: number;
  anonKiB: number;
}

function smapsRollup(pid: number): Mem {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    if (!m) throw new Error(`/proc/${pid}/smaps_rollup: no ${name}`);
    return Number(m[1]);
  };
  return {
    rssKiB: field("Rss"),
    pssKiB: field("Pss"),
    ussKiB: field("Private_Clean") + field("Private_Dirty"),
    anonKiB: field("Anonymous"),
  };
}

interface QemuRegions {
  guestRamKiB: number;
  tcgCodeKiB: number;
  kernelImageKiB: number;
  otherKiB: number;
  anonHugeKiB: number;
}

/**
 * QEMU's RSS by mapping (/proc/PID/smaps): the guest RAM (the anonymous mapping of exactly
 * the guest's memory size), the TCG translation buffer (the anonymous rwx mapping), the
 * guest kernel file QEMU keeps mapped for reset, and everything else.
 */
function qemuRegions(pid: number, memoryMiB: number, kernel: string): QemuRegions {
  const r: QemuRegions = { guestRamKiB: 0, tcgCodeKiB: 0, kernelImageKiB: 0, otherKiB: 0, anonHugeKiB: 0 };
  let kind: keyof QemuRegions = "otherKiB";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const size = Number.parseInt(head[2] ?? "0", 16) - Number.parseInt(head[1] ?? "0", 16);
      const perms = head[3] ?? "";
      const path = (head[5] ?? "").trim();
      if (path === "" && size === memoryMiB * 1024 * 1024) kind = "guestRamKiB";
      else if (path === "" && perms.includes("x")) kind = "tcgCodeKiB";
      else if (path === kernel) kind = "kernelImageKiB";
      else kind = "otherKiB";
      continue;
    }
    const m = /^(Rss|AnonHugePages):\s+(\d+) kB/.exec(line);
    if (m?.[1] === "Rss") r[kind] += Number(m[2]);
    else if (m?.[1] === "AnonHugePages") r.anonHugeKiB += Number(m[2]);
  }
  return r;
}

/** qemu-system processes that are not this bench's (other users of the machine). */
function foreignQemus(root: string): number {
  let n = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (/^\S*qemu-system/.test(cmd.split("\0")[0] ?? "") && !cmd.includes(root)) n++;
    } catch {
      // Gone.
    }
  }
  return n;
}

/** Host processes whose cwd or command line lies under `dir` (QEMU and stand-ins do). */
function processesUnder(dir: string): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      let cwd = "";
      try {
        cwd = readlinkSync(`/proc/${name}/cwd`);
      } catch {
        // Not ours to read, or gone.
      }
      if (cwd.startsWith(dir) || cmd.includes(dir)) out.push({ pid: Number(name), cmd });
    } catch {
      // Gone.
    }
  }
  return out;
}

function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${dir}/`));
}

// ---------------------------------------------------------------- statistics and output

interface Figure {
  key: string;
  label: string;
  unit: "ms" | "MiB" | "count";
  values: number[];
}

function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { min: s[0] ?? Number.NaN, median, max: s[s.length - 1] ?? Number.NaN };
}

function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return "-";
  return unit === "MiB" ? v.toFixed(1) : v.toFixed(0);
}

function table(figures: Figure[], runs: number): string {
  const rows = figures.map((f) => {
    const s = summary(f.values);
    return [
      f.label,
      fmt(s.min, f.unit),
      fmt(s.median, f.unit),
      fmt(s.max, f.unit),
      f.unit,
      `${f.values.length}/${runs}`,
    ];
  });
  const head = ["figure", "min", "median", "max", "unit", "n"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

const kib = (k: number) => k / 1024;

// ---------------------------------------------------------------- the bench

class Bench {
  readonly rt = new Runtime();
  readonly created = new Set<string>();
  readonly bundles: string[] = [];
  readonly figures = new Map<string, Figure>();
  readonly raw: Record<string, unknown>[] = [];
  readonly notes: string[] = [];
  accelerator = "?";
  /** Per run: qemu-system processes of other users of this machine running at its start. */
  readonly foreign: number[] = [];

  add(key: string, label: string, unit: Figure["unit"], value: number | undefined): void {
    let f = this.figures.get(key);
    if (!f) {
      f = { key, label, unit, values: [] };
      this.figures.set(key, f);
    }
    if (value !== undefined && Number.isFinite(value)) f.values.push(value);
  }

  bundle(opts: Parameters<typeof makeBundle>[0]): string {
    const b = makeBundle(opts);
    this.bundles.push(b);
    return b;
  }

  /** A runtime command whose stdout/stderr go to files (a stand-in may keep them open). */
  async cmd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = await withTimeout(this.rt.run(args), COMMAND_TIMEOUT_MS, args.join(" "));
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  async mustCmd(args: string[]): Promise<string> {
    const r = await this.cmd(args);
    if (r.code !== 0) throw new Error(`${args.join(" ")}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async deleteForce(id: string): Promise<void> {
    const r = await this.cmd(["delete", "--force", id]);
    if (r.code !== 0) this.notes.push(`delete --force ${id}: exit ${r.code}: ${r.stderr.trim()}`);
    else this.created.delete(id);
  }

  stateFile(id: string): {
    vm?: {
      accelerator?: string;
      kernel?: string;
      memoryMiB?: number;
      qemu?: { pid: number; startTime: number };
    };
  } {
    return JSON.parse(readFileSync(join(this.rt.root, id, "state.json"), "utf8"));
  }

  /** 1. `run` of echo (first line, exit) and of true (exit). */
  async runTimes(i: number, echoBundle: string, trueBundle: string): Promise<void> {
    const echoId = `bench-echo-${i}`;
    this.created.add(echoId);
    const t0 = now();
    const child = Bun.spawn(this.rt.argv(["run", "--bundle", echoBundle, echoId]), {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    let out = "";
    let firstLine: number | undefined;
    const reading = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stdout) {
        out += dec.decode(chunk, { stream: true });
        if (firstLine === undefined && out.includes("\n")) firstLine = now();
      }
    })();
    const stderr = new Response(child.stderr).text();
    const code = await withTimeout(child.exited, COMMAND_TIMEOUT_MS, "run echo");
    const tExit = now();
    await withTimeout(reading, 10_000, "run echo: stdout EOF");
    if (code !== 0 || out !== "bench-hello\n") {
      throw new Error(`run echo: exit ${code}, stdout ${JSON.stringify(out)}, stderr ${await stderr}`);
    }
    this.created.delete(echoId);
    this.add("run.echo.firstLine", "run echo: start -> first output line", "ms", (firstLine ?? tExit) - t0);
    this.add("run.echo.total", "run echo: total", "ms", tExit - t0);

    const trueId = `bench-true-${i}`;
    this.created.add(trueId);
    const t1 = now();
    const r = await this.cmd(["run", "--bundle", trueBundle, trueId]);
    const t2 = now();
    if (r.code !== 0) throw new Error(`run true: exit ${r.code}: ${r.stderr.trim()}`);
    this.created.delete(trueId);
    this.add("run.true.total", "run true: total", "ms", t2 - t1);
    this.raw.push({
      run: i,
      what: "run",
      echoFirstLineMs: (firstLine ?? tExit) - t0,
      echoTotalMs: tExit - t0,
    });
  }

  /**
   * `create` with the console polled every 5 ms; returns the stand-in and QEMU pids.
   * Console lines are time-stamped when first seen.
   */
  async createTimed(id: string, bundle: string, outFile: string) {
    const dir = join(this.rt.root, id);
    const pidFile = join(this.rt.root, `${id}.pid`);
    this.created.add(id);
    const t0 = now();
    const child = Bun.spawn(this.rt.argv(["create", "--bundle", bundle, "--pid-file", pidFile, id]), {
      stdin: "ignore",
      stdout: Bun.file(outFile),
      stderr: Bun.file(`${outFile}.err`),
    });
    let exited = false;
    void child.exited.then(() => {
      exited = true;
    });
    const lines: { t: number; text: string }[] = [];
    let qemu: { pid: number; startMs: number; seenMs: number } | undefined;
    const poll = () => {
      const t = now();
      if (!qemu) {
        try {
          const p = this.stateFile(id).vm?.qemu;
          if (p) qemu = { pid: p.pid, startMs: (p.startTime * 1000) / CLK_TCK, seenMs: t };
        } catch {
          // Not written yet, or being replaced.
        }
      }
      let text: string;
      try {
        text = readFileSync(join(dir, "console.log"), "latin1");
      } catch {
        return;
      }
      const all = text.split("\n");
      all.pop(); // the line being written
      for (let k = lines.length; k < all.length; k++)
        lines.push({ t, text: (all[k] ?? "").replace(/\r$/, "") });
    };
    const deadline = t0 + COMMAND_TIMEOUT_MS;
    while (!exited && now() < deadline) {
      poll();
      await Bun.sleep(POLL_MS);
    }
    const code = await withTimeout(child.exited, 1_000, "create");
    const tCreated = now();
    poll();
    if (code !== 0) throw new Error(`create ${id}: exit ${code}: ${readFileSync(`${outFile}.err`, "utf8")}`);
    const standinPid = Number(readFileSync(pidFile, "utf8"));
    const st = this.stateFile(id);
    this.accelerator = st.vm?.accelerator ?? "?";
    const q = st.vm?.qemu;
    if (!q) throw new Error(`${id}: no vm.qemu in state.json`);
    if (!qemu) qemu = { pid: q.pid, startMs: (q.startTime * 1000) / CLK_TCK, seenMs: tCreated };
    const at = (re: RegExp) => lines.find((l) => re.test(l.text))?.t;
    return {
      t0,
      tCreated,
      standinPid,
      qemu,
      lines,
      tInit: at(/cc-init: start/),
      tAgent: at(/cc-agent: ready on /),
    };
  }

  /** 2 and 3 (host side): boot breakdown of `create`, then start, idle, memory. */
  async idle(i: number, bundle: string): Promise<void> {
    const id = `bench-idle-${i}`;
    const c = await this.createTimed(id, bundle, join(this.rt.root, `${id}.out`));
    this.add("create.total", "create: total (VM boot + container created)", "ms", c.tCreated - c.t0);
    this.add("create.toQemu", "create: start -> QEMU process started", "ms", c.qemu.startMs - c.t0);
    if (c.tInit === undefined || c.tAgent === undefined) {
      this.notes.push(`run ${i}: console lacks cc-init/cc-agent lines: ${JSON.stringify(c.lines.slice(-5))}`);
    }
    if (c.tInit !== undefined)
      this.add("boot.qemuToInit", "QEMU start -> cc-init: start", "ms", c.tInit - c.qemu.startMs);
    if (c.tInit !== undefined && c.tAgent !== undefined)
      this.add("boot.initToAgent", "cc-init: start -> cc-agent: ready", "ms", c.tAgent - c.tInit);
    if (c.tAgent !== undefined)
      this.add("create.agentToCreated", "cc-agent: ready -> create returns", "ms", c.tCreated - c.tAgent);

    const t1 = now();
    await this.mustCmd(["start", id]);
    this.add("start.total", "start (sleep 1000)", "ms", now() - t1);
    const state = JSON.parse(await this.mustCmd(["state", id])) as { pid: number; status: string };
    if (state.pid !== c.standinPid)
      this.notes.push(`run ${i}: state pid ${state.pid} != pid file ${c.standinPid}`);
    if (state.status !== "running") this.notes.push(`run ${i}: state status ${state.status} after start`);
    await Bun.sleep(SETTLE_MS);
    const qm = smapsRollup(c.qemu.pid);
    const sm = smapsRollup(c.standinPid);
    const vm = this.stateFile(id).vm;
    const regions = qemuRegions(c.qemu.pid, vm?.memoryMiB ?? 256, vm?.kernel ?? "");
    this.add("mem.qemu.rss", "idle: QEMU RSS", "MiB", kib(qm.rssKiB));
    this.add("mem.qemu.pss", "idle: QEMU PSS", "MiB", kib(qm.pssKiB));
    this.add("mem.qemu.uss", "idle: QEMU USS (private)", "MiB", kib(qm.ussKiB));
    this.add("mem.qemu.anon", "idle: QEMU anonymous", "MiB", kib(qm.anonKiB));
    this.add("mem.qemu.ram", "  QEMU RSS: guest RAM mapping", "MiB", kib(regions.guestRamKiB));
    this.add("mem.qemu.tcg", "  QEMU RSS: TCG code buffer", "MiB", kib(regions.tcgCodeKiB));
    this.add("mem.qemu.kernel", "  QEMU RSS: vmlinux file mapping", "MiB", kib(regions.kernelImageKiB));
    this.add("mem.qemu.other", "  QEMU RSS: other", "MiB", kib(regions.otherKiB));
    this.add("mem.qemu.thp", "  QEMU AnonHugePages (THP)", "MiB", kib(regions.anonHugeKiB));
    this.add("mem.standin.rss", "idle: stand-in RSS", "MiB", kib(sm.rssKiB));
    this.add("mem.standin.pss", "idle: stand-in PSS", "MiB", kib(sm.pssKiB));
    this.add("mem.standin.uss", "idle: stand-in USS (private)", "MiB", kib(sm.ussKiB));
    this.add("mem.standin.anon", "idle: stand-in anonymous", "MiB", kib(sm.anonKiB));
    this.raw.push({
      run: i,
      what: "idle",
      createStartMs: c.t0,
      qemu: c.qemu,
      createdMs: c.tCreated,
      console: c.lines,
      qemuMemKiB: qm,
      qemuRegionsKiB: regions,
      standinMemKiB: sm,
    });
    await this.deleteForce(id);
  }

  /** 3 (guest side): a container without a pid namespace reports the guest's memory. */
  async guestMemory(i: number, bundle: string): Promise<void> {
    const id = `bench-guestmem-${i}`;
    const outFile = join(this.rt.root, `${id}.out`);
    const c = await this.createTimed(id, bundle, outFile);
    await this.mustCmd(["start", id]);
    const deadline = now() + GUEST_REPORT_TIMEOUT_MS;
    let text = "";
    while (now() < deadline) {
      text = readFileSync(outFile, "utf8");
      if (text.includes("== end")) break;
      await Bun.sleep(100);
    }
    if (!text.includes("== end")) throw new Error(`${id}: no report from the guest: ${text.slice(-500)}`);
    const g = parseGuestReport(text);
    const hostQemu = smapsRollup(c.qemu.pid);
    this.add("guest.agent.rss", "guest: agent (PID 1) VmRSS", "MiB", kib(g.agent.VmRSS ?? Number.NaN));
    this.add("guest.agent.anon", "guest: agent RssAnon", "MiB", kib(g.agent.RssAnon ?? Number.NaN));
    this.add("guest.agent.file", "guest: agent RssFile", "MiB", kib(g.agent.RssFile ?? Number.NaN));
    const mi = g.meminfo;
    const total = mi.MemTotal ?? Number.NaN;
    this.add("guest.memTotal", "guest: MemTotal", "MiB", kib(total));
    this.add(
      "guest.used",
      "guest: MemTotal - MemAvailable",
      "MiB",
      kib(total - (mi.MemAvailable ?? Number.NaN)),
    );
    this.add(
      "guest.usedNoCache",
      "guest: MemTotal - MemFree - Buffers - Cached",
      "MiB",
      kib(total - (mi.MemFree ?? 0) - (mi.Buffers ?? 0) - (mi.Cached ?? 0)),
    );
    this.add("guest.cached", "guest: Cached (incl. Shmem)", "MiB", kib(mi.Cached ?? Number.NaN));
    this.add("guest.shmem", "guest: Shmem (tmpfs)", "MiB", kib(mi.Shmem ?? Number.NaN));
    const user = g.processes.filter((p) => p.rssKiB > 0);
    this.add("guest.userProcesses", "guest: processes with memory (not kthreads)", "count", user.length);
    this.add(
      "guest.userRss",
      "guest: sum of their VmRSS",
      "MiB",
      kib(user.reduce((a, p) => a + p.rssKiB, 0)),
    );
    // The boot of this VM on the guest's own clock: a console line with a printk timestamp
    // (the kernel prints a few even with `quiet`) ties kernel time 0 to the host clock.
    const stamped = c.lines
      .map((l) => ({ t: l.t, ts: /^\[\s*(\d+\.\d+)\]/.exec(l.text)?.[1] }))
      .filter((l) => l.ts !== undefined)
      .map((l) => l.t - Number(l.ts) * 1000);
    const kernelZero = stamped.length ? Math.min(...stamped) : undefined;
    if (kernelZero !== undefined)
      this.add(
        "guest.qemuToKernel",
        "QEMU start -> guest kernel clock 0 (derived)",
        "ms",
        kernelZero - c.qemu.startMs,
      );
    if (g.kernelToInitMs !== undefined)
      this.add("guest.kernelToInit", "guest kernel clock 0 -> Run /init (dmesg)", "ms", g.kernelToInitMs);
    if (kernelZero !== undefined && g.kernelToInitMs !== undefined && c.tInit !== undefined)
      this.add(
        "guest.initToEcho",
        "Run /init -> cc-init: start (derived)",
        "ms",
        c.tInit - kernelZero - g.kernelToInitMs,
      );
    const switchRoot = c.lines.find((l) => /cc-init: switch_root/.test(l.text))?.t;
    if (c.tInit !== undefined && switchRoot !== undefined && c.tAgent !== undefined) {
      this.add("init.toSwitchRoot", "cc-init: start -> switch_root (cc.debug=1)", "ms", switchRoot - c.tInit);
      this.add(
        "init.switchToAgent",
        "switch_root -> cc-agent: ready (cc.debug=1)",
        "ms",
        c.tAgent - switchRoot,
      );
    }
    this.add("guest.hostQemuRss", "no-pidns container: QEMU RSS", "MiB", kib(hostQemu.rssKiB));
    this.raw.push({
      run: i,
      what: "guest-memory",
      agentCmdline: g.agentCmdline,
      agentStatus: g.agent,
      meminfo: mi,
      processes: g.processes,
      kernelToInitMs: g.kernelToInitMs,
      qemu: c.qemu,
      console: c.lines,
      dmesgInit: g.dmesgInit,
      hostQemuMemKiB: hostQemu,
    });
    await this.deleteForce(id);
  }

  async cleanup(): Promise<void> {
    for (const id of [...this.created]) await this.deleteForce(id).catch(() => {});
    const root = this.rt.root;
    const left = processesUnder(root);
    for (const p of left) {
      this.notes.push(`left behind after delete --force: pid ${p.pid} (${p.cmd.slice(0, 120)}); killed`);
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    if (left.length) await Bun.sleep(500);
    const mounts = mountsUnder(root);
    if (mounts.length) {
      // Never rm -rf through a bind mount of a rootfs.
      this.notes.push(`mounts left under ${root}, not removed: ${mounts.join(", ")}`);
    } else {
      rmSync(root, { recursive: true, force: true });
    }
    for (const b of this.bundles) rmSync(b, { recursive: true, force: true });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

type KiBFields = Record<string, number>;

function kibFields(lines: string[]): KiBFields {
  const out: KiBFields = {};
  for (const l of lines) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?: kB)?$/.exec(l.trim());
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Splits the guest report ("== section" headers) into its parts. */
function parseGuestReport(text: string) {
  const sections = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of text.split("\n")) {
    const h = /^== (.+)$/.exec(line);
    if (h?.[1]) {
      cur = [];
      sections.set(h[1], cur);
    } else cur?.push(line);
  }
  const agentLines = sections.get("proc 1") ?? [];
  const processes: { pid: number; name: string; rssKiB: number }[] = [];
  for (const [name, lines] of sections) {
    const m = /^proc (\d+)$/.exec(name);
    if (!m) continue;
    const comm = lines.find((l) => l.startsWith("Name:"))?.split(/\s+/)[1] ?? "?";
    processes.push({ pid: Number(m[1]), name: comm, rssKiB: kibFields(lines).VmRSS ?? 0 });
  }
  const dmesg = sections.get("dmesg") ?? [];
  const initLine = dmesg.find((l) => /Run \/init as init process/.test(l));
  const ts = initLine ? /^\[\s*(\d+\.\d+)\]/.exec(initLine)?.[1] : undefined;
  return {
    agent: kibFields(agentLines),
    agentCmdline: (sections.get("cmdline 1") ?? []).join(" ").trim(),
    meminfo: kibFields(sections.get("meminfo") ?? []),
    processes,
    kernelToInitMs: ts ? Number(ts) * 1000 : undefined,
    dmesgInit: initLine,
  };
}

const GUEST_REPORT = [
  "sleep 2",
  'echo "== cmdline 1"; tr "\\0" " " </proc/1/cmdline; echo',
  'echo "== meminfo"; cat /proc/meminfo',
  'cd /proc; for d in [0-9]*; do echo "== proc $d"; cat "$d/status" 2>/dev/null; done; cd /',
  'echo "== dmesg"; dmesg 2>&1',
  'echo "== end"',
  "exec sleep 1000",
].join("\n");

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
  const bench = new Bench();
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

  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = started.toISOString().slice(0, 19).replace(/:/g, "");
  const file = join(RESULTS_DIR, `guest-${stamp}.json`);
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
