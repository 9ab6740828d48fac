/**
 * The measurements of bench/guest.ts: `run` times, the boot phases of `create` (console
 * lines time-stamped on the host), an idle container's host memory, and the guest's own
 * view of its memory (a container without a pid namespace reports it).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CcSession, COMMAND_TIMEOUT_MS, removeRuntimeBinary } from "./cc.ts";
import { now, withTimeout } from "./clock.ts";
import { parseGuestReport } from "./guest-report.ts";
import { kib, qemuRegions, smapsRollup } from "./proc.ts";
import type { Figure } from "./stats.ts";

/** How long an idle container is left alone before its memory is read. */
export const SETTLE_MS = 3_000;
const GUEST_REPORT_TIMEOUT_MS = 60_000;

export class GuestBench extends CcSession {
  readonly figures = new Map<string, Figure>();
  readonly raw: Record<string, unknown>[] = [];
  /** Per run: qemu-system processes of other users of this machine running at its start. */
  readonly foreign: number[] = [];

  override async cleanup(): Promise<void> {
    await super.cleanup();
    removeRuntimeBinary();
  }

  add(key: string, label: string, unit: Figure["unit"], value: number | undefined): void {
    let f = this.figures.get(key);
    if (!f) {
      f = { key, label, unit, values: [] };
      this.figures.set(key, f);
    }
    if (value !== undefined && Number.isFinite(value)) f.values.push(value);
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
      env: this.rt.spawnEnv(),
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
}
