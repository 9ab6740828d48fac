/**
 * The floor for any VM runtime on this host: QEMU booting the runtime's guest kernel with
 * the runtime's machine options (machine type, accelerator, CPU model, memory, the kernel
 * command line with tsc_early_khz under TCG: all from the runtime's own planVm on a real
 * bundle), but no devices, and a tiny initramfs (busybox-static) whose /init mounts
 * devtmpfs, prints a marker on the console and powers off. Timed from spawning QEMU to the
 * marker on its stdout (the serial console), and to QEMU's exit.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { resolveBundle } from "../../src/config/resolver.ts";
import { planVm } from "../../src/hypervisor/launcher.ts";
import { Qmp } from "../../src/hypervisor/qmp.ts";
import { memoryArgs, migration } from "../../src/hypervisor/template-vm.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { tempDir } from "../../tests/lib/cli.ts";
import { ROOT_PREFIX } from "./cc.ts";
import { now, withTimeout } from "./clock.ts";
import { processesUnder } from "./proc.ts";

const MARKER = "BENCH-FLOOR-READY";
const ECHO_PREFIX = "BENCH-ECHO:";
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

/**
 * The restore floor's guest: after the marker it stays, echoing each line the host sends on
 * the console. A clone restored from its snapshot answers a line: the guest runs again.
 */
const ECHO_INIT = `#!/bin/sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo ${MARKER}
while read line; do echo "${ECHO_PREFIX}$line"; done
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

type Clone = { child: ReturnType<typeof Bun.spawn>; ms: number };

export class Floor {
  readonly dir = tempDir(`${ROOT_PREFIX}floor-`);
  readonly initrd = join(this.dir, "initrd.cpio");
  readonly echoInitrd = join(this.dir, "echo-initrd.cpio");
  private readonly memoryMiB: number;
  private readonly machine: string[];
  private readonly append: string;
  private clones = 0;
  readonly qemu: string;
  readonly argv: string[];
  readonly accelerator: string;
  private running = new Set<ReturnType<typeof Bun.spawn>>();

  /** `bundle`: any bundle of this build (its vm.json and hypervisor.args are the runtime's). */
  constructor(bundle: string) {
    this.buildInitramfs(INIT, this.initrd);
    this.buildInitramfs(ECHO_INIT, this.echoInitrd);
    const plan = planVm(resolveBundle(bundle, silentLogger), this.dir, "floor");
    const opts = options(plan.args);
    const append = opts.find((o) => o.opt === "-append")?.values[0];
    if (append === undefined) throw new Error("floor: the runtime's hypervisor arguments have no -append");
    this.qemu = plan.path;
    this.accelerator = plan.accel.accel;
    this.memoryMiB = plan.memoryMiB;
    this.append = append;
    this.machine = [
      plan.path,
      ...opts.filter((o) => MACHINE_OPTIONS.has(o.opt)).flatMap((o) => [o.opt, ...o.values]),
      "-kernel",
      plan.kernel,
    ];
    this.argv = this.guestArgv(this.initrd);
  }

  private guestArgv(initrd: string): string[] {
    return [...this.machine, "-initrd", initrd, "-append", this.append, "-serial", "stdio"];
  }

  private buildInitramfs(init: string, file: string): void {
    const stage = join(this.dir, `stage-${basename(file)}`);
    for (const d of ["bin", "dev", "proc"]) mkdirSync(join(stage, d), { recursive: true });
    copyFileSync("/bin/busybox", join(stage, "bin/busybox"));
    symlinkSync("busybox", join(stage, "bin/sh"));
    writeFileSync(join(stage, "init"), init);
    chmodSync(join(stage, "init"), 0o755);
    const r = Bun.spawnSync(
      ["sh", "-c", `cd "${stage}" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0`],
      { stdout: Bun.file(file), stderr: "pipe" },
    );
    if (r.exitCode !== 0) throw new Error(`floor: cpio: ${r.stderr.toString()}`);
  }

  /**
   * The restore floor's template, made once: the echo guest booted to its marker with its
   * RAM in a file it maps shared, then saved with `x-ignore-shared` (device state only), as
   * the runtime's templates are.
   */
  async prepareRestore(): Promise<void> {
    if (existsSync(this.snapshot)) return;
    const qmpPath = join(this.dir, "template-qmp.sock");
    const child = this.spawnGuest([
      ...this.guestArgv(this.echoInitrd),
      ...memoryArgs(this.memoryFile, this.memoryMiB, true),
      "-qmp",
      `unix:${qmpPath},server=on,wait=off`,
    ]);
    try {
      await withTimeout(waitFor(child, MARKER), BOOT_TIMEOUT_MS, "floor: template boot");
      const qmp = await connectQmp(qmpPath);
      try {
        await qmp.execute("stop");
        await migrate(qmp, "migrate", `exec:cat > ${this.snapshot}`);
        await qmp.execute("quit").catch(() => {});
      } finally {
        qmp.close();
      }
      await withTimeout(child.exited, 10_000, "floor: template exit");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await child.exited;
      this.running.delete(child);
    }
  }

  private get snapshot(): string {
    return join(this.dir, "restore.snapshot");
  }

  private get memoryFile(): string {
    return join(this.dir, "restore.memory");
  }

  /**
   * One clone: spawn, restore from the snapshot (the memory file mapped privately, as the
   * runtime's clones do), and send a line on the console: ms from spawn to its echo. The
   * clone is left running (the caller stops it: stopClone).
   */
  async restoreClone(): Promise<Clone> {
    const qmpPath = join(this.dir, `clone-${this.clones++}.sock`);
    const t0 = now();
    const child = this.spawnGuest([
      ...this.guestArgv(this.echoInitrd),
      ...memoryArgs(this.memoryFile, this.memoryMiB, false),
      "-qmp",
      `unix:${qmpPath},server=on,wait=off`,
      "-incoming",
      "defer",
    ]);
    try {
      const qmp = await connectQmp(qmpPath);
      try {
        await migrate(qmp, "migrate-incoming", `exec:cat ${this.snapshot}`);
        // The template was stopped when saved, and so its clone is when restored.
        await qmp.execute("cont");
      } finally {
        qmp.close();
      }
      const echoed = waitFor(child, `${ECHO_PREFIX}ping`);
      const stdin = child.stdin as import("bun").FileSink;
      stdin.write("ping\n");
      stdin.flush();
      await withTimeout(echoed, BOOT_TIMEOUT_MS, "floor: restored guest's echo");
      return { child, ms: now() - t0 };
    } catch (err) {
      await this.stopClone({ child, ms: 0 });
      throw err;
    }
  }

  async stopClone(c: Clone): Promise<void> {
    c.child.kill("SIGKILL");
    await c.child.exited;
    this.running.delete(c.child);
  }

  private spawnGuest(argv: string[]): ReturnType<typeof Bun.spawn> {
    const child = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "ignore", cwd: this.dir });
    this.running.add(child);
    return child;
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

/** Resolves when `text` has appeared on the child's stdout (read from then on). */
function waitFor(child: ReturnType<typeof Bun.spawn>, text: string): Promise<void> {
  const out = consoles.get(child) ?? watchConsole(child);
  return new Promise((resolve, reject) => {
    const check = () => {
      if (out.text.includes(text)) resolve();
      else if (out.ended)
        reject(new Error(`floor: QEMU's console ended without ${text}: ${out.text.slice(-300)}`));
      else out.waiters.push(check);
    };
    check();
  });
}

type Console = { text: string; ended: boolean; waiters: (() => void)[] };
const consoles = new WeakMap<object, Console>();

function watchConsole(child: ReturnType<typeof Bun.spawn>): Console {
  const out: Console = { text: "", ended: false, waiters: [] };
  consoles.set(child, out);
  const wake = () => {
    for (const w of out.waiters.splice(0)) w();
  };
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stdout as ReadableStream<Uint8Array>) {
      out.text += dec.decode(chunk, { stream: true });
      wake();
    }
    out.ended = true;
    wake();
  })();
  return out;
}

async function connectQmp(path: string): Promise<Qmp> {
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  for (;;) {
    try {
      return await Qmp.connect(path);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await Bun.sleep(5);
    }
  }
}

/** One migration with x-ignore-shared (the RAM stays in the memory file), as the runtime's. */
async function migrate(qmp: Qmp, command: string, uri: string): Promise<void> {
  const status = await migration(qmp, command, uri);
  if (status !== "completed") throw new Error(`floor: ${command} ${status}`);
}
