/**
 * Nothing the VM tests that ran before this file started may still be running. (bun runs
 * files in an order of its own, not by name: tests/run.ts checks for roots left at the end.)
 */
import { expect, test } from "bun:test";
import { disposeAllRoots, ownedRoots, qemuProcesses, standinProcesses } from "../lib/runtime.ts";

test("after the VM suite: no qemu-system and no stand-in from the tests remain", async () => {
  await Bun.sleep(500);
  expect(qemuProcesses()).toEqual([]);
  expect(standinProcesses()).toEqual([]);
});

test("after the VM suite: every test root, templates included, is removed", async () => {
  expect(await disposeAllRoots()).toEqual([]);
  expect(ownedRoots()).toEqual([]);
});
