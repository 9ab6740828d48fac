/**
 * The stand-in never crashes: a reader that closes early is a closed stream, a full disk
 * under --root is an error in the runtime's log (never in the container's streams), and
 * either way the workload's exit status is kept and nothing is left behind.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { qemuProcesses, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  for (const id of rt.leftovers()) await rt.run(["delete", "--force", id]);
});

/** Runs `argv | head -c 100` in bash: what head read, the runtime's status and its stderr. */
async function throughHead(argv: string[]) {
  const dir = tempDir();
  const out = join(dir, "out");
  const status = join(dir, "status");
  const err = join(dir, "err");
  const script = `"$@" 2>${err} | head -c 100 >${out}; echo "\${PIPESTATUS[0]}" >${status}`;
  const child = Bun.spawn(["bash", "-c", script, "bash", ...argv], { stdin: "ignore" });
  const t0 = Date.now();
  expect(await child.exited).toBe(0);
  return {
    ms: Date.now() - t0,
    head: readFileSync(out, "utf8"),
    code: Number(readFileSync(status, "utf8")),
    stderr: readFileSync(err, "utf8"),
  };
}

describe("a reader that closes early (| head -c 100)", () => {
  // `yes` never stops by itself: it ends only when it learns that its stdout is closed.
  const endless = ["sh", "-c", 'yes; echo "yes ended: $?" >&2; exit 7'];

  test("run: the workload's stdout is closed in the guest, its status is kept", async () => {
    const r = await throughHead(rt.argv(["run", "--bundle", makeBundle({ args: endless }), "headrun"]));
    expect(r.head).toBe(`${"y\n".repeat(50)}`);
    expect(r.stderr).not.toMatch(/EPIPE|Bun v/);
    expect(r.stderr).toMatch(/^yes ended: \d+\n$/);
    expect(r.code).toBe(7);
    expect(rt.leftovers()).toEqual([]);
  }, 120_000);

  test("exec: the same for an exec'd process", async () => {
    const b = makeBundle({ args: ["sleep", "1000"] });
    expect((await rt.run(["run", "-d", "--bundle", b, "headexec"])).code).toBe(0);
    const r = await throughHead(rt.argv(["exec", "headexec", ...endless]));
    expect(r.head).toBe(`${"y\n".repeat(50)}`);
    expect(r.stderr).not.toMatch(/EPIPE|Bun v/);
    expect(r.stderr).toMatch(/^yes ended: \d+\n$/);
    expect(r.code).toBe(7);
    expect((await rt.run(["delete", "--force", "headexec"])).code).toBe(0);
    expect(rt.leftovers()).toEqual([]);
    expect(qemuProcesses(rt.root)).toEqual([]);
  }, 120_000);
});
