/**
 * The agent is the guest's PID 1: a fault in it must become a message in the runtime's
 * log, never a kernel panic that takes the container down.
 */
import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeBundle } from "../lib/bundle.ts";
import { Runtime } from "../lib/runtime.ts";

const rt = new Runtime();

afterAll(async () => {
  await rt.dispose();
});

test("cgroup controllers that cannot be enabled: a warning in the log, crun's own error, no panic", async () => {
  const b = makeBundle({ args: ["echo", "never-runs"] });
  // A read-only cgroup2 before the agent starts: its write to cgroup.subtree_control fails
  // (that failing write, unawaited, used to end PID 1: a panic, "connection closed").
  const init =
    "/bin/sh -c 'mount -t cgroup2 -o ro cgroup2 /sys/fs/cgroup && exec /usr/bin/cc-oci-runtime __agent'";
  const vmJson = join(b, "vm.json");
  const vm = JSON.parse(readFileSync(vmJson, "utf8"));
  vm.kernel.parameters = `${vm.kernel.parameters} cc.init="${init}"`;
  writeFileSync(vmJson, JSON.stringify(vm));
  const r = await rt.run(["run", "--bundle", b, "rocgroup"], { env: { CC_OCI_TEMPLATE: "0" } });
  // The guest lived on to answer: crun, which needs the same file, says why it cannot run.
  expect(r.stderr).toMatch(
    /\ncc-oci-runtime: crun create: .*cgroup\.subtree_control.*Read-only file system\n$/,
  );
  expect(r.code).toBe(1);
  const warnings = readFileSync(rt.log, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { level: string; msg: string })
    .filter((l) => l.level === "warning")
    .map((l) => l.msg);
  expect(warnings).toContainEqual(
    expect.stringMatching(/^rocgroup: guest agent: cannot enable cgroup controllers.*read-only/i),
  );
  expect(rt.leftovers()).toEqual([]);
}, 120_000);
