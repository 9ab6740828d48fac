/**
 * The template store's removal rules (hypervisor/template.ts) on a hand-made template: a
 * failed build is discarded only if it is still the one that failed, and its key follows
 * the hypervisor binary.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ResolvedBundle } from "../../src/config/resolver.ts";
import type { VmPlan } from "../../src/hypervisor/launcher.ts";
import { discardTemplate, TEMPLATES_DIR, templateKey } from "../../src/hypervisor/template.ts";
import { tempDir as newTempDir } from "../lib/cli.ts";

/** Directories of plain files (no mounts): removed when the file's tests are done. */
const made: string[] = [];
const tempDir = () => {
  const d = newTempDir();
  made.push(d);
  return d;
};
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function fakeTemplate(root: string): { dir: string; snapshot: string } {
  const dir = join(root, TEMPLATES_DIR, "0123456789abcdef");
  mkdirSync(dir, { recursive: true });
  const snapshot = join(dir, "snapshot");
  writeFileSync(snapshot, "saved guest");
  writeFileSync(join(dir, "template.json"), "{}");
  writeFileSync(join(dir, ".inuse"), "");
  return { dir, snapshot };
}

describe("discarding a template that failed to restore", () => {
  test("the build that failed goes", async () => {
    const root = tempDir();
    const { dir, snapshot } = fakeTemplate(root);
    await discardTemplate(root, {
      snapshot,
      memory: join(dir, "memory"),
      ino: statSync(snapshot).ino,
      release: () => {},
    });
    expect(existsSync(dir)).toBe(false);
  });

  test("a template rebuilt meanwhile (another snapshot) is kept", async () => {
    const root = tempDir();
    const { dir, snapshot } = fakeTemplate(root);
    const failed = statSync(snapshot).ino;
    writeFileSync(`${snapshot}.new`, "rebuilt guest");
    renameSync(`${snapshot}.new`, snapshot);
    await discardTemplate(root, { snapshot, memory: join(dir, "memory"), ino: failed, release: () => {} });
    expect(existsSync(snapshot)).toBe(true);
    expect(existsSync(dir)).toBe(true);
  });
});

describe("template keys", () => {
  test("another hypervisor binary at the same path is another key", () => {
    const dir = tempDir();
    const qemu = join(dir, "qemu");
    const args = join(dir, "hypervisor.args");
    writeFileSync(qemu, "#!/bin/sh\n");
    writeFileSync(args, "qemu\n");
    const r = { hypervisorArgsFile: args, vm: { vm: {} } } as unknown as ResolvedBundle;
    const plan = { path: qemu, accel: "tcg", memoryMiB: 256 } as unknown as VmPlan;
    const before = templateKey(r, plan);
    expect(templateKey(r, plan)).toBe(before);
    utimesSync(qemu, new Date(), new Date(Date.now() + 10_000));
    expect(templateKey(r, plan)).not.toBe(before);
  });
});
