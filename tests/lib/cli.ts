/** Helpers for tests that drive the CLI. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { goStyleArgv } from "../../src/cli/prepass.ts";
import { buildProgram } from "../../src/cli/program.ts";

export const ROOT_DIR = resolve(import.meta.dir, "../..");
export const MAIN_TS = join(ROOT_DIR, "src/main.ts");
export const BIN = join(ROOT_DIR, "bin/cc-oci-runtime");

export function tempDir(prefix = "cc-oci-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface Parsed {
  command: string;
  args: unknown[];
  opts: Record<string, unknown>;
  globals: Record<string, unknown>;
}

/** Parses argv exactly as the CLI does, capturing what the subcommand would be called with. */
export async function parse(argv: string[]): Promise<Parsed> {
  const { program } = buildProgram();
  let captured: Parsed | undefined;
  for (const cmd of program.commands) {
    cmd.action((...all: unknown[]) => {
      const self = all[all.length - 1] as typeof cmd;
      captured = {
        command: cmd.name(),
        args: all.slice(0, -2),
        opts: self.opts(),
        globals: program.opts(),
      };
    });
  }
  program.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  await program.parseAsync(goStyleArgv(program, argv), { from: "user" });
  if (!captured) throw new Error(`no subcommand ran for ${argv.join(" ")}`);
  return captured;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from source (no build needed). */
export async function runCli(
  argv: string[],
  opts: { cwd?: string; stdin?: string } = {},
): Promise<RunResult> {
  const child = Bun.spawn([process.execPath, MAIN_TS, ...argv], {
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, stdout, stderr };
}
