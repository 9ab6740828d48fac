/**
 * The skeleton every e2e file shares: beforeAll checks the prerequisites, installs the
 * managers when missing, makes the file's Workspace with the runtime's VM configuration in
 * place, and runs the file's own set-up, which starts its scenarios; afterAll waits for them
 * (not for ever) and tears the workspace down. Each test awaits one scenario and asserts its
 * recorded steps.
 */
import { afterAll, beforeAll, test } from "bun:test";
import { ensurePackages } from "./packages.ts";
import { jobs, Slots, sleep } from "./proc.ts";
import { type Scenario, start } from "./scenario.ts";
import { checkPrerequisites, installRuntimeConfig, Workspace } from "./workspace.ts";

export const SETUP_MS = 600_000;
export const TEST_MS = 600_000;
/** How long a VM container may take to come up here (TCG, concurrent boots). */
export const BOOT_MS = 120_000;

/** Starts the scenario `key` of the file, titled `title`. */
export type Go = (key: string, title: string, body: (s: Scenario) => Promise<void>) => void;

export interface Suite {
  /** A test asserting the recorded steps of scenario `key`. */
  test(title: string, key: string, check: (s: Scenario) => void): void;
}

/**
 * Registers the file's beforeAll and afterAll. `setup` starts the managers in the workspace
 * and the scenarios (through `go`); `logs` names the runtime's global log(s), quoted when a
 * test fails.
 */
export function suite(
  name: string,
  logs: () => string[],
  setup: (ws: Workspace, go: Go) => Promise<void>,
): Suite {
  let ws: Workspace | undefined;
  const runs: Record<string, Promise<Scenario>> = {};

  beforeAll(async () => {
    checkPrerequisites();
    await ensurePackages();
    ws = new Workspace(name);
    ws.onTeardown("runtime config", installRuntimeConfig());
    const slots = new Slots(jobs());
    await setup(ws, (key, title, body) => {
      runs[key] = start(slots, title, logs, body);
    });
  }, SETUP_MS);

  afterAll(async () => {
    // Scenarios end by themselves (every command has a time limit); wait, but not for ever.
    await Promise.race([Promise.all(Object.values(runs)), sleep(180_000)]);
    await ws?.teardown();
  }, SETUP_MS);

  const get = (key: string) => {
    const p = runs[key];
    if (!p) throw new Error(`scenario ${key} never started: the set-up failed`);
    return p;
  };

  return {
    test(title, key, check) {
      test(title, async () => check(await get(key)), TEST_MS);
    },
  };
}
