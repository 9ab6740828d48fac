/**
 * The stand-in never crashes: a reader that closes early is a closed stream, a full disk
 * under --root is an error in the runtime's log (never in the container's streams), and
 * either way the workload's exit status is kept and nothing is left behind.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { mountsBelow } from "../../src/sys/mounts.ts";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { qemuProcesses, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
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

/** Every file below dir whose name says it is a temporary one (an atomic write's leftover). */
function tempFilesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".tmp"));
}

describe("a full filesystem under --root", () => {
  test("when the workload exits: the error is in the log, the status is kept, nothing is left", async () => {
    const root = tempDir("cc-oci-root-");
    const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0711", "tmpfs", root]);
    expect(mounted.exitCode).toBe(0);
    // The log and the call's output are elsewhere: the root will be full.
    const elsewhere = tempDir();
    const full = new Runtime({ root, log: join(elsewhere, "log.json"), outputDir: elsewhere });
    try {
      const fill = join(root, ".fill");
      mkdirSync(fill);
      const b = makeBundle({
        args: ["sh", "-c", "cat /dev/zero >/fill/zeros 2>/dev/null; echo filled >&2; exit 7"],
        edit: (s) => {
          (s.mounts as unknown[]).push({
            destination: "/fill",
            type: "bind",
            source: fill,
            options: ["rbind"],
          });
        },
      });
      const r = await full.run(["run", "--bundle", b, "fulldisk"], { env: { CC_OCI_TEMPLATE: "0" } });
      expect(r.stderr).toBe("filled\n");
      expect(r.code).toBe(7);
      expect(full.lastLogError()).toMatch(/fulldisk: .*state\.json.*(ENOSPC|no space left)/i);
      expect(full.leftovers()).toEqual([]);
      expect(tempFilesBelow(root)).toEqual([]);
      expect(mountsBelow(root)).toEqual([root]);
      expect(qemuProcesses(root)).toEqual([]);
    } finally {
      await full.dispose(); // unmounts the tmpfs, then removes its mount point
    }
  }, 180_000);
});
