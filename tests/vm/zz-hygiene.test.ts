/** Runs last (files run in name order): nothing the VM tests started may still be running. */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { disposeAllRoots, qemuProcesses } from "../lib/runtime.ts";

test("after the VM suite: no qemu-system and no stand-in from the tests remain", async () => {
  await Bun.sleep(500);
  expect(qemuProcesses()).toEqual([]);
  const standins = readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        const cmd = readFileSync(`/proc/${n}/cmdline`, "utf8");
        return cmd.includes("__standin") && cmd.includes("/cc-oci-root-");
      } catch {
        return false;
      }
    });
  expect(standins).toEqual([]);
});

test("after the VM suite: every test root, templates included, is removed", async () => {
  expect(await disposeAllRoots()).toEqual([]);
});
