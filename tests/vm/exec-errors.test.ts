/**
 * exec's own errors: exit 255 with one line naming the file at fault, checked before the
 * process runs; and `exec -d`, which returns once the process is started.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { tempDir } from "../lib/cli.ts";
import { Runtime, standinProcesses } from "../lib/runtime.ts";
import { removeTmpfsDirs, tmpfsDir } from "../lib/tmpfs.ts";

const rt = new Runtime();
const ID = "execerr";
let rootfs = "";

beforeAll(async () => {
  const bundle = makeBundle({ args: ["sleep", "1000"], writable: true });
  rootfs = join(bundle, "rootfs");
  expect((await rt.run(["run", "-d", "--bundle", bundle, ID])).code).toBe(0);
}, 180_000);

afterAll(async () => {
  await rt.dispose();
  removeTmpfsDirs();
});

async function expectExecError(args: string[], message: RegExp): Promise<void> {
  const r = await rt.run(["exec", ...args]);
  expect(r.code).toBe(255);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(message);
  expect(rt.lastLogError()).toMatch(message);
}

describe("exec errors", () => {
  test("-p naming a missing file: exit 255, one line naming it", async () => {
    const missing = join(tempDir(), "no-such-process.json");
    await expectExecError(
      ["-p", missing, ID],
      new RegExp(`${missing}: cannot read the process file: .*ENOENT`),
    );
  }, 60_000);

  test("--pid-file in a missing directory: exit 255, one line naming it, and the process never runs", async () => {
    const pidFile = join(tempDir(), "no-such-dir", "exec.pid");
    const marker = join(rootfs, "ran");
    await expectExecError(
      ["--pid-file", pidFile, ID, "sh", "-c", "echo yes > /ran"],
      new RegExp(`--pid-file ${pidFile}: directory .*no-such-dir does not exist`),
    );
    await Bun.sleep(2000);
    expect(existsSync(marker)).toBe(false);
    // The same process with a usable pid file does leave the marker: the check above can fail.
    const ok = await rt.run([
      "exec",
      "--pid-file",
      join(tempDir(), "exec.pid"),
      ID,
      "sh",
      "-c",
      "echo yes > /ran",
    ]);
    expect(ok.code).toBe(0);
    expect(readFileSync(marker, "utf8")).toBe("yes\n");
    rmSync(marker);
  }, 60_000);

  test("--pid-file on a full disk: exit 255 naming it, and the process does not stay running", async () => {
    const pidFile = join(tmpfsDir("cc-oci-full-", 1, true), "exec.pid");
    await expectExecError(
      ["--pid-file", pidFile, ID, "sleep", "777"],
      new RegExp(`cannot write ${pidFile}: no space left on device \\(ENOSPC\\)`),
    );
    let ps = "";
    for (let i = 0; i < 50; i++) {
      ps = (await rt.run(["ps", ID])).stdout;
      if (!ps.includes("sleep 777")) break;
      await Bun.sleep(200);
    }
    expect(ps).toContain("sleep 1000");
    expect(ps).not.toContain("sleep 777");
    expect(standinProcesses(rt.root)).toHaveLength(1);
    expect(readdirSync(join(rt.root, ID, "execs"))).toEqual([]);
  }, 60_000);
});

describe("exec -d", () => {
  test("returns once the process is started; its stand-in, the pid in --pid-file, keeps running", async () => {
    const pidFile = join(tempDir(), "exec.pid");
    const t0 = Date.now();
    const r = await rt.run(["exec", "-d", "--pid-file", pidFile, ID, "sleep", "60"]);
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(20_000);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("__standin");
    expect((await rt.run(["ps", ID])).stdout).toContain("sleep 60");
    // The stand-in forwards TERM to the process; both end.
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await Bun.sleep(100);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  }, 90_000);
});
