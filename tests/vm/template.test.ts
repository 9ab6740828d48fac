/**
 * VM templating (CC_OCI_TEMPLATE=1): the first container builds a template snapshot, later
 * ones are restored from it, each with its own random pool and the right clock; a change of
 * configuration builds a new template and removes the old one.
 */
import { describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { HOST_BOOT_ID, Runtime } from "../lib/runtime.ts";

const rt = new Runtime();
const env = { CC_OCI_TEMPLATE: "1" };
const probe = [
  "sh",
  "-c",
  "cat /proc/sys/kernel/random/boot_id; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s",
];
const templates = () => readdirSync(join(rt.root, ".templates")).filter((n) => n !== ".lock");

describe("templating", () => {
  test("clones start from the snapshot, each with its own entropy and the host's time", async () => {
    const bundle = makeBundle({ args: probe });
    const first = await rt.run(["run", "--bundle", bundle, "t1"], { env });
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(templates().length).toBe(1);
    const snapshot = join(rt.root, ".templates", templates()[0] as string, "snapshot");
    expect(existsSync(snapshot)).toBe(true);
    const [a, b] = await Promise.all([
      rt.run(["run", "--bundle", bundle, "t2"], { env }),
      rt.run(["run", "--bundle", bundle, "t3"], { env }),
    ]);
    const lines = [first, a, b].map((r) => r.stdout.trim().split("\n"));
    for (const [bootId, random, time] of lines) {
      expect(bootId).toMatch(/^[0-9a-f-]{36}$/);
      expect(bootId).not.toBe(HOST_BOOT_ID);
      expect(random).toMatch(/^[0-9a-f]{32}$/);
      expect(Math.abs(Number(time) - Date.now() / 1000)).toBeLessThan(30);
    }
    expect(lines[1]?.[1]).not.toBe(lines[2]?.[1]);
    expect(rt.leftovers()).toEqual([]);
    // The clones used the same template (no rebuild).
    expect(templates().length).toBe(1);
  }, 240_000);

  test("changing hypervisor.args builds a new template and drops the old one", async () => {
    const before = templates();
    const bundle = makeBundle({ args: ["true"] });
    appendFileSync(join(bundle, "hypervisor.args"), "\n# a change\n");
    const r = await rt.run(["run", "--bundle", bundle, "t4"], { env });
    expect(r.code).toBe(0);
    const after = templates();
    expect(after.length).toBe(1);
    expect(after).not.toEqual(before);
  }, 240_000);
});
