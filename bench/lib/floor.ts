/**
 * The floor for any VM runtime on this host: QEMU booting the runtime's guest kernel with
 * the runtime's machine options (machine type, accelerator, CPU model, memory, the kernel
 * command line with tsc_early_khz under TCG: all from the runtime's own planVm on a real
 * bundle), but no devices, and a tiny initramfs (busybox-static) whose /init mounts
 * devtmpfs, prints a marker on the console and powers off. Timed from spawning QEMU to the
 * marker on its stdout (the serial console), and to QEMU's exit.
 */
import { chmodSync, copyFileSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resolveBundle } from "../../src/config/resolver.ts";
import { planVm } from "../../src/hypervisor/launcher.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { tempDir } from "../../tests/lib/cli.ts";
import { ROOT_PREFIX } from "./cc.ts";
import { now, withTimeout } from "./clock.ts";
import { processesUnder } from "./proc.ts";

const MARKER = "BENCH-FLOOR-READY";
const BOOT_TIMEOUT_MS = 60_000;
/** QEMU options that describe the machine (kept); every device, socket and file is dropped. */
const MACHINE_OPTIONS = new Set([
  "-machine",
  "-M",
  "-accel",
  "-cpu",
  "-m",
  "-smp",
  "-nodefaults",
  "-no-user-config",
  "-nographic",
  "-no-reboot",
  "-global",
]);

const INIT = `#!/bin/sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo ${MARKER}
/bin/busybox poweroff -f
`;

/** Splits an argv into options, each with the values that follow it. */
function options(args: string[]): { opt: string; values: string[] }[] {
  const out: { opt: string; values: string[] }[] = [];
  for (const a of args) {
    const last = out[out.length - 1];
    if (a.startsWith("-") || !last) out.push({ opt: a, values: [] });
    else last.values.push(a);
  }
  return out;
}

export class Floor {
  readonly dir = tempDir(`${ROOT_PREFIX}floor-`);
  readonly initrd = join(this.dir, "initrd.cpio");
  readonly qemu: string;
  readonly argv: string[];
  readonly accelerator: string;
  private running = new Set<ReturnType<typeof Bun.spawn>>();

  /** `bundle`: any bundle of this build (its vm.json and hypervisor.args are the runtime's). */
  constructor(bundle: string) {
    this.buildInitramfs();
    const plan = planVm(resolveBundle(bundle, silentLogger), this.dir, "floor");
    const opts = options(plan.args);
    const append = opts.find((o) => o.opt === "-append")?.values[0];
    if (append === undefined) throw new Error("floor: the runtime's hypervisor arguments have no -append");
    this.qemu = plan.path;
    this.accelerator = plan.accel.accel;
    this.argv = [
      plan.path,
      ...opts.filter((o) => MACHINE_OPTIONS.has(o.opt)).flatMap((o) => [o.opt, ...o.values]),
      "-kernel",
      plan.kernel,
      "-initrd",
      this.initrd,
      "-append",
      append,
      "-serial",
      "stdio",
    ];
  }

  private buildInitramfs(): void {
    const stage = join(this.dir, "stage");
    for (const d of ["bin", "dev", "proc"]) mkdirSync(join(stage, d), { recursive: true });
    copyFileSync("/bin/busybox", join(stage, "bin/busybox"));
    symlinkSync("busybox", join(stage, "bin/sh"));
    writeFileSync(join(stage, "init"), INIT);
    chmodSync(join(stage, "init"), 0o755);
    const r = Bun.spawnSync(
      ["sh", "-c", `cd "${stage}" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0`],
      { stdout: Bun.file(this.initrd), stderr: "pipe" },
    );
    if (r.exitCode !== 0) throw new Error(`floor: cpio: ${r.stderr.toString()}`);
  }

  /** One boot: ms from spawning QEMU to the marker, and to QEMU's exit. */
  async boot(): Promise<{ markerMs: number; exitMs: number }> {
    const t0 = now();
    const child = Bun.spawn(this.argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: this.dir });
    this.running.add(child);
    try {
      let out = "";
      let marker: number | undefined;
      const reading = (async () => {
        const dec = new TextDecoder();
        for await (const chunk of child.stdout) {
          out += dec.decode(chunk, { stream: true });
          if (marker === undefined && out.includes(MARKER)) marker = now();
        }
      })();
      const stderr = new Response(child.stderr).text();
      const code = await withTimeout(child.exited, BOOT_TIMEOUT_MS, "floor: QEMU boot");
      const exitMs = now() - t0;
      await withTimeout(reading, 5_000, "floor: QEMU stdout");
      if (marker === undefined)
        throw new Error(`floor: no marker (QEMU exit ${code}): ${out.slice(-400)} ${await stderr}`);
      return { markerMs: marker - t0, exitMs };
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await child.exited;
      this.running.delete(child);
    }
  }

  async cleanup(): Promise<void> {
    for (const c of this.running) c.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }

  leftovers(): { pid: number; cmd: string }[] {
    return processesUnder(this.dir);
  }
}
