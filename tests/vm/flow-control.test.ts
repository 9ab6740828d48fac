/**
 * Stdio never blocks the control path (safety issue, item 4): 50 MiB of stdin waiting
 * before `start` (a regular file as stdin) arrives whole once the process reads it, a
 * container whose stdin is stalled still answers ps, start, exec and kill, and an exec's
 * output, relayed by the stand-in's hub frame by frame, reaches a slow reader whole.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const work = tempDir();
const input = join(work, "50mb.bin");
const data = new Uint8Array(50 * 1024 * 1024).map((_, i) => (i * 31 + (i >> 13)) & 0xff);
writeFileSync(input, data);
const sha = createHash("sha256").update(data).digest("hex");

/** `create` with the regular file as its (and so the container's) stdin. */
async function createWithFileStdin(id: string, args: string[]): Promise<string> {
  const out = join(work, `${id}.out`);
  const err = join(work, `${id}.err`);
  // Files, not pipes: the stand-in keeps the container's stdio open after create returns.
  const child = Bun.spawn(rt.argv(["create", "--bundle", makeBundle({ args }), id]), {
    stdin: Bun.file(input),
    stdout: Bun.file(out),
    stderr: Bun.file(err),
  });
  const code = await child.exited;
  expect(readFileSync(err, "utf8")).toBe("");
  expect(code).toBe(0);
  return out;
}

async function waitStopped(id: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const r = await rt.run(["state", id]);
    if (r.code === 0 && JSON.parse(r.stdout).status === "stopped") return;
    await Bun.sleep(100);
  }
  throw new Error(`${id} did not stop`);
}

/**
 * Runs the runtime with its stdout into a reader that reads nothing for a while: a shell
 * pipe, since Bun drains a child's stdout pipe whether or not the test reads it.
 */
async function runToSlowReader(args: string[], name: string): Promise<{ code: string; out: Buffer }> {
  const out = join(work, `${name}.out`);
  const code = join(work, `${name}.code`);
  const script = `{ "$@"; echo $? > "${code}"; } | { sleep 5; cat; } > "${out}"`;
  const child = Bun.spawn(["sh", "-c", script, "sh", ...rt.argv(args)], { stderr: "pipe" });
  expect(await new Response(child.stderr).text()).toBe("");
  expect(await child.exited).toBe(0);
  return { code: readFileSync(code, "utf8").trim(), out: readFileSync(out) };
}

afterAll(async () => {
  await rt.dispose();
});

describe("stdio and control on one connection", () => {
  test("50 MiB of stdin before start: ps and start answer, the process gets every byte", async () => {
    const out = await createWithFileStdin("sum", ["sha256sum"]);
    // The stand-in has filled the stream's window by now; the control path must be free.
    await Bun.sleep(1500);
    const ps = await rt.run(["ps", "-f", "json", "sum"]);
    expect(ps.stderr).toBe("");
    expect(ps.code).toBe(0);
    const start = await rt.run(["start", "sum"]);
    expect(start.stderr).toBe("");
    expect(start.code).toBe(0);
    await waitStopped("sum");
    expect(readFileSync(out, "utf8")).toBe(`${sha}  -\n`);
    expect((await rt.run(["delete", "sum"])).code).toBe(0);
  }, 300_000);

  test("a process that never reads its stdin: exec (its output to a slow reader too) and kill still answer", async () => {
    await createWithFileStdin("stall", ["sleep", "1000"]);
    expect((await rt.run(["start", "stall"])).code).toBe(0);
    await Bun.sleep(1000);
    const exec = await rt.run(["exec", "stall", "echo", "exec-answered"]);
    expect(exec).toMatchObject({ code: 0, stdout: "exec-answered\n" });
    // Several windows (STREAM_WINDOW, 256 KiB) of output, backed up from the reader through
    // the exec's stand-in and the hub to the guest: every byte arrives, in order.
    const lines = 300_000;
    const { code, out } = await runToSlowReader(["exec", "stall", "seq", "1", String(lines)], "seq");
    const want = Buffer.from(`${Array.from({ length: lines }, (_, i) => i + 1).join("\n")}\n`);
    expect(want.length).toBeGreaterThan(1024 * 1024);
    expect(code).toBe("0");
    expect(out.length).toBe(want.length);
    expect(out.equals(want)).toBe(true);
    // KILL: the container's PID 1 (sleep) has no default action for TERM.
    expect((await rt.run(["kill", "stall", "KILL"])).code).toBe(0);
    await waitStopped("stall");
    expect((await rt.run(["delete", "stall"])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
  }, 180_000);
});
