/** Driving the built runtime (bin/cc-oci-runtime) in VM tests. */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { realPath, unmountAndRemove } from "../../src/sys/mounts.ts";
import { BIN, type RunResult, tempDir } from "./cli.ts";
import { asUser, chownTo, type TestUser } from "./user.ts";

/** This host's boot id: a guest kernel has its own, whatever its version (same 6.1 or not). */
export const HOST_BOOT_ID = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

/** Every test root made by this test process, so that the last test file can remove them. */
const allRoots: Runtime[] = [];
const OWNER_FILE = ".test-owner";

export interface RtOptions {
  stdin?: string | Uint8Array;
  /** Keep stdout as bytes (large outputs). */
  binary?: boolean;
  env?: Record<string, string>;
}

export interface RootOptions {
  /** The real root directory (default: a new temporary one). */
  root?: string;
  /** How `--root` is spelled on the command line (through a symlink, relative...). */
  rootArg?: string;
  /** The runtime's working directory (for a relative `rootArg`). */
  cwd?: string;
  /** The `--log` file (default: log.json in the root). */
  log?: string;
  /** Where run() keeps a call's stdout and stderr (default: the root). */
  outputDir?: string;
  /** Run the runtime as this user (a new root is made theirs). */
  user?: TestUser;
}

export class Runtime {
  readonly root: string;
  readonly log: string;
  private readonly rootArg: string;
  private readonly cwd?: string;
  private readonly outputDir: string;
  private readonly user?: TestUser;
  private calls = 0;

  constructor(opts: RootOptions = {}) {
    this.root = opts.root ?? tempDir("cc-oci-root-");
    // Marks a root this test process made, so the last test can find any left (ownedRoots).
    if (!opts.root) writeFileSync(join(this.root, OWNER_FILE), String(process.pid));
    this.log = opts.log ?? join(this.root, "log.json");
    this.outputDir = opts.outputDir ?? dirname(this.log);
    this.rootArg = opts.rootArg ?? this.root;
    this.cwd = opts.cwd;
    this.user = opts.user;
    if (opts.user && !opts.root) chownTo(opts.user, this.root);
    allRoots.push(this);
  }

  /**
   * Deletes what containers are left, then the root with its templates (~100 MB each): only
   * after checking that nothing is mounted below it, and without crossing filesystems.
   */
  async dispose(): Promise<void> {
    if (!existsSync(this.root)) return;
    for (const id of this.leftovers()) await this.run(["delete", "--force", id]);
    unmountAndRemove(this.root);
  }

  argv(args: string[]): string[] {
    const argv = [BIN, "--root", this.rootArg, "--log", this.log, "--log-format", "json", ...args];
    return this.user ? asUser(this.user, argv) : argv;
  }

  /**
   * Runs the runtime and waits for IT to exit. stdout and stderr go to files, not pipes:
   * a container's stand-in keeps them open after `create` returns (as with runc).
   */
  async run(args: string[], opts: RtOptions = {}): Promise<RunResult & { bytes: Uint8Array }> {
    const n = this.calls++;
    const outFile = join(this.outputDir, `.out.${n}`);
    const errFile = join(this.outputDir, `.err.${n}`);
    const child = Bun.spawn(this.argv(args), {
      stdin:
        opts.stdin === undefined
          ? "ignore"
          : typeof opts.stdin === "string"
            ? new TextEncoder().encode(opts.stdin)
            : opts.stdin,
      stdout: Bun.file(outFile),
      stderr: Bun.file(errFile),
      env: { ...process.env, ...(this.user && { HOME: this.user.home, USER: this.user.name }), ...opts.env },
      cwd: this.cwd,
    });
    const code = await child.exited;
    const bytes = new Uint8Array(readFileSync(outFile));
    const stderr = readFileSync(errFile, "utf8");
    rmSync(outFile, { force: true });
    rmSync(errFile, { force: true });
    return { code, stdout: opts.binary ? "" : new TextDecoder().decode(bytes), stderr, bytes };
  }

  lastLogError(): string | undefined {
    if (!existsSync(this.log)) return undefined;
    const lines = readFileSync(this.log, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { level: string; msg: string });
    return lines.filter((l) => l.level === "error").pop()?.msg;
  }

  /** Container state directories left under the root. */
  leftovers(): string[] {
    return readdirSync(this.root).filter(
      (n) => !n.startsWith(".") && n !== "log.json" && n !== "cc-oci-runtime.log",
    );
  }
}

/**
 * qemu-system processes started by the tests: the runtime runs QEMU with the container's
 * state directory as cwd, and test roots are temporary directories named cc-oci-root-*.
 * (Other VMs on the machine, a developer's or a benchmark's, are not counted.) `under`: only
 * those below it (one test root, or an e2e manager's runtime root; other test processes may
 * be running VMs meanwhile).
 */
export function qemuProcesses(under?: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (!cmd.split("\0")[0]?.includes("qemu-system")) continue;
      const cwd = readlinkSync(`/proc/${name}/cwd`);
      if (under ? cwd.startsWith(`${under}/`) : cwd.includes("/cc-oci-root-")) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Stand-ins of test roots (their launch file is in the root): all, or those below `under`. */
export function standinProcesses(under?: string): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        const cmd = readFileSync(`/proc/${n}/cmdline`, "utf8");
        return cmd.includes("__standin") && cmd.includes(under ? `${under}/` : "/cc-oci-root-");
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * Test roots this test process made that are still there. Each test file has its own module
 * instance (and so its own allRoots): the temporary directory is what they all share.
 */
export function ownedRoots(pid = process.pid): string[] {
  return readdirSync(tmpdir())
    .filter((n) => n.startsWith("cc-oci-root-"))
    .map((n) => join(tmpdir(), n))
    .filter((dir) => {
      try {
        return readFileSync(join(dir, OWNER_FILE), "utf8") === String(pid);
      } catch {
        return false;
      }
    });
}

/** Removes every root of this process's tests; returns those that could not be removed. */
export async function disposeAllRoots(): Promise<string[]> {
  const left: string[] = [];
  for (const rt of allRoots) {
    try {
      await rt.dispose();
    } catch (err) {
      left.push(`${rt.root}: ${(err as Error).message}`);
    }
    if (existsSync(rt.root)) left.push(realPath(rt.root));
  }
  return left;
}
