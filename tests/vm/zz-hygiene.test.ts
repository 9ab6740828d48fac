/** Runs last (files run in name order): nothing the VM tests started may still be running. */
import { expect, test } from "bun:test";
import { disposeAllRoots, qemuProcesses, standinProcesses } from "../lib/runtime.ts";

test("after the VM suite: no qemu-system and no stand-in from the tests remain", async () => {
  await Bun.sleep(500);
  expect(qemuProcesses()).toEqual([]);
  expect(standinProcesses()).toEqual([]);
});

test("after the VM suite: every test root, templates included, is removed", async () => {
  expect(await disposeAllRoots()).toEqual([]);
});
