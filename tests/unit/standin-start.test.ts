/**
 * Starting a stand-in and hearing back from it (lifecycle/spawn-standin.ts): a stand-in that
 * fails early says why, naming what failed; one that dies without a word is told apart from
 * one that never answers.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startStandin } from "../../src/lifecycle/spawn-standin.ts";
import type { ContainerLaunch } from "../../src/standin/launch.ts";
import { tempDir } from "../lib/cli.ts";

function launchFile(stateDir: string): string {
  const spec: ContainerLaunch = {
    kind: "container",
    id: "s1",
    root: tempDir(),
    stateDir,
    hypervisor: { path: "/bin/false", args: [] },
    guestConfig: {},
    shares: [],
    bootTimeoutMs: 5_000,
    detached: true,
    network: { kind: "own" },
    nics: 0,
    taps: true,
    log: { logFormat: "text", globalLogs: [], debug: false },
  };
  const file = join(tempDir(), "launch.json");
  writeFileSync(file, JSON.stringify(spec));
  return file;
}

describe("a stand-in that cannot start", () => {
  test("a state directory that is gone: the error names it, at once (not a timeout)", async () => {
    const missing = join(tempDir(), "gone");
    const started = Date.now();
    await expect(startStandin(launchFile(missing), 60_000, false)).rejects.toThrow(missing);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  test("a stand-in killed before it reports: 'exited without reporting', with its status", async () => {
    const dir = tempDir();
    const start = startStandin(launchFile(dir), 60_000, false, (pid) => process.kill(pid, "SIGKILL"));
    await expect(start).rejects.toThrow(/stand-in exited \(status 137\) without reporting/);
  });
});
