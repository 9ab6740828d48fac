/**
 * A full disk (a small tmpfs, mounted by the test: needs root) under what the runtime
 * writes: the error names the file and says there is no space, and nothing is left behind.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { qemuProcesses, Runtime, standinProcesses } from "../lib/runtime.ts";
import { removeTmpfsDirs, tmpfsDir } from "../lib/tmpfs.ts";

afterAll(removeTmpfsDirs);

/** A runtime whose --root is a new tmpfs and whose --log is elsewhere (it must be written). */
function runtimeOnTmpfs(mib: number, full: boolean): Runtime {
  return new Runtime({ root: tmpfsDir("cc-oci-root-", mib, full), log: join(tempDir(), "log.json") });
}

async function expectFailure(rt: Runtime, args: string[], message: RegExp, env: Record<string, string>) {
  const r = await rt.run(args, { env });
  expect(r.code).toBe(1);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(message);
  expect(rt.lastLogError()).toMatch(message);
  expect(rt.leftovers()).toEqual([]);
  expect(qemuProcesses(rt.root)).toEqual([]);
  expect(standinProcesses(rt.root)).toEqual([]);
}

describe("a full disk", () => {
  test("under the state directory: the error names state.json", async () => {
    const rt = runtimeOnTmpfs(1, true);
    await expectFailure(
      rt,
      ["create", "--bundle", makeBundle({ args: ["true"] }), "fullstate"],
      /cannot write .*\/fullstate\/state\.json: no space left on device \(ENOSPC\)/,
      { CC_OCI_TEMPLATE: "0" },
    );
    await rt.dispose();
  }, 60_000);

  test("under --pid-file: the error names the pid file; the VM and its stand-in are gone", async () => {
    const rt = new Runtime();
    const pidFile = join(tmpfsDir("cc-oci-full-", 1, true), "pid");
    await expectFailure(
      rt,
      ["create", "--bundle", makeBundle({ args: ["true"] }), "--pid-file", pidFile, "fullpid"],
      new RegExp(`cannot write ${pidFile}: no space left on device \\(ENOSPC\\)`),
      { CC_OCI_TEMPLATE: "0" },
    );
    await rt.dispose();
  }, 120_000);

  test("under a template build: the error names the guest memory file and says there is no space", async () => {
    const rt = runtimeOnTmpfs(2, false);
    await expectFailure(
      rt,
      ["create", "--bundle", makeBundle({ args: ["true"] }), "fulltemplate"],
      /building the VM template: no space left on device for the guest memory .*\/\.templates\/[0-9a-f]+\.build\/memory \(256 MiB needed, [01] MiB free\)/,
      { CC_OCI_TEMPLATE: "1" },
    );
    expect(readdirSync(join(rt.root, ".templates"))).toEqual([".lock"]);
    await rt.dispose();
  }, 180_000);
});
