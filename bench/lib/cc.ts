/**
 * Driving bin/cc-oci-runtime from the bench: tests/lib's Runtime with a root of its own
 * (named cc-oci-bench-*, so the test suite's hygiene checks, which look for cc-oci-root-*,
 * never count the bench's VMs) and an environment (CC_OCI_TEMPLATE for the snapshot-based
 * variant). A CcSession remembers every container and bundle it made and removes them all.
 */
import { chmodSync, copyFileSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { makeBundle } from "../../tests/lib/bundle.ts";
import { BIN, tempDir } from "../../tests/lib/cli.ts";
import { type RtOptions, Runtime } from "../../tests/lib/runtime.ts";
import { CLK_TCK, now, withTimeout } from "./clock.ts";
import { mountsUnder, processesUnder } from "./proc.ts";

export const ROOT_PREFIX = "cc-oci-bench-";
/** Bound on any one runtime command (a TCG boot takes a few seconds). */
export const COMMAND_TIMEOUT_MS = 120_000;
export const POLL_MS = 5;

let binary: string | undefined;

/**
 * A private copy of bin/cc-oci-runtime, made on first use: the bench measures one build from
 * start to end even when the project is rebuilt while it runs (a rebuilt executable would
 * also invalidate CC_OCI_TEMPLATE's snapshots, whose key includes it). Its stand-ins run the
 * copy too (a compiled runtime re-executes itself).
 */
export function runtimeBinary(): string {
  if (!binary) {
    const copy = join(tempDir(`${ROOT_PREFIX}bin-`), "cc-oci-runtime");
    copyFileSync(BIN, copy);
    chmodSync(copy, 0o755);
    binary = copy;
  }
  return binary;
}

/** Removes the copy (once nothing runs it any more). */
export function removeRuntimeBinary(): void {
  if (binary) rmSync(dirname(binary), { recursive: true, force: true });
  binary = undefined;
}

export class BenchRuntime extends Runtime {
  /** `env`: added to the environment of every call (which is the bench's otherwise). */
  constructor(readonly env: Record<string, string> = {}) {
    // A root of the bench's own (cc-oci-bench-*), given as --root as it is.
    super({ root: tempDir(ROOT_PREFIX) });
  }

  override argv(args: string[]): string[] {
    const argv = super.argv(args);
    argv[0] = runtimeBinary();
    return argv;
  }

  override run(args: string[], opts: RtOptions = {}) {
    return super.run(args, { ...opts, env: { ...this.env, ...opts.env } });
  }

  /** The environment for calls the bench spawns itself. */
  spawnEnv(): Record<string, string | undefined> {
    return { ...process.env, ...this.env };
  }
}

export interface StateFile {
  vm?: {
    accelerator?: string;
    kernel?: string;
    memoryMiB?: number;
    qemu?: { pid: number; startTime: number };
  };
}

export class CcSession {
  readonly rt: BenchRuntime;
  readonly created = new Set<string>();
  readonly bundles: string[] = [];
  readonly notes: string[] = [];
  accelerator = "?";

  constructor(env: Record<string, string> = {}) {
    this.rt = new BenchRuntime(env);
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

  stateFile(id: string): StateFile {
    return JSON.parse(readFileSync(join(this.rt.root, id, "state.json"), "utf8"));
  }

  /** `create` then `start` of an idle workload; the stand-in's and QEMU's pids. */
  async createIdle(id: string, bundle: string): Promise<{ standin: number; qemu: number; createMs: number }> {
    this.created.add(id);
    const t0 = now();
    await this.mustCmd(["create", "--bundle", bundle, id]);
    const createMs = now() - t0;
    await this.mustCmd(["start", id]);
    const st = this.stateFile(id);
    this.accelerator = st.vm?.accelerator ?? this.accelerator;
    const qemu = st.vm?.qemu?.pid;
    const state = JSON.parse(await this.mustCmd(["state", id])) as { pid: number; status: string };
    if (!qemu) throw new Error(`${id}: no vm.qemu in state.json`);
    if (state.status !== "running") throw new Error(`${id}: ${state.status} after start`);
    return { standin: state.pid, qemu, createMs };
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
      env: this.rt.spawnEnv(),
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

  /**
   * delete --force of every container made, then SIGKILL to any process (QEMU, stand-in)
   * still under the root, and the root and bundles removed (never through a mount).
   */
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
