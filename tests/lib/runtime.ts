/** Driving the built runtime (bin/cc-oci-runtime) in VM tests. */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, type RunResult, tempDir } from "./cli.ts";

export interface RtOptions {
  stdin?: string | Uint8Array;
  /** Keep stdout as bytes (large outputs). */
  binary?: boolean;
  env?: Record<string, string>;
}

export class Runtime {
  readonly root = tempDir("cc-oci-root-");
  readonly log = join(this.root, "log.json");

  argv(args: string[]): string[] {
    return [BIN, "--root", this.root, "--log", this.log, "--log-format", "json", ...args];
  }

  async run(args: string[], opts: RtOptions = {}): Promise<RunResult & { bytes: Uint8Array }> {
    const child = Bun.spawn(this.argv(args), {
      stdin:
        opts.stdin === undefined
          ? "ignore"
          : typeof opts.stdin === "string"
            ? new TextEncoder().encode(opts.stdin)
            : opts.stdin,
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...opts.env },
    });
    const [bytes, stderr, code] = await Promise.all([
      new Response(child.stdout).bytes(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
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
    return readdirSync(this.root).filter((n) => n !== "log.json" && n !== "cc-oci-runtime.log");
  }
}

/** qemu-system processes started by this test run (their cwd is under a test root). */
export function qemuProcesses(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (cmd.startsWith("/usr/bin/qemu-system") || cmd.includes("qemu-system-x86_64\0"))
        out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}
