/**
 * The skeleton every e2e file shares: beforeAll checks the prerequisites, installs the
 * managers when missing, makes the file's Workspace with the runtime's VM configuration in
 * place, and runs the file's own set-up, which starts its scenarios; afterAll waits for them
 * (not for ever) and tears the workspace down. Each test awaits one scenario and asserts its
 * recorded steps. A network file (`{ network: true }`) also gets a network namespace of its own
 * for its managers (lib/netns.ts), and checks that the machine's own namespace is the same
 * while they run (its last test) and after the teardown (afterAll fails otherwise).
 */
import { afterAll, beforeAll, test } from "bun:test";
import { existsSync } from "node:fs";
import { diffLines, hostNetwork, Netns } from "./netns.ts";
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
  setup: (ws: Workspace, go: Go, netns: Netns | undefined) => Promise<void>,
  opts: { network?: boolean } = {},
): Suite {
  let ws: Workspace | undefined;
  let netns: Netns | undefined;
  /** The machine's network namespace before the file's managers started. */
  let before = "";
  const runs: Record<string, Promise<Scenario>> = {};
  const allDone = () => Promise.race([Promise.all(Object.values(runs)), sleep(180_000)]);

  beforeAll(async () => {
    checkPrerequisites();
    await ensurePackages();
    ws = new Workspace(name);
    ws.onTeardown("runtime config", installRuntimeConfig());
    if (opts.network) {
      before = await hostNetwork();
      netns = await Netns.create(ws);
    }
    const slots = new Slots(jobs());
    await setup(
      ws,
      (key, title, body) => {
        runs[key] = start(slots, title, logs, body);
      },
      netns,
    );
  }, SETUP_MS);

  afterAll(async () => {
    // Scenarios end by themselves (every command has a time limit); wait, but not for ever.
    await allDone();
    await ws?.teardown();
    if (opts.network && before) {
      const left = diffLines(before, await hostNetwork());
      const ns = netns && existsSync(netns.path) ? `\n${netns.path} is still there` : "";
      if (left || ns)
        throw new Error(`after the teardown, the machine's network namespace changed:\n${left}${ns}`);
    }
  }, SETUP_MS);

  if (opts.network) {
    // First in the file's order, it waits for every scenario: the managers have done all
    // they do and still run.
    test(
      "the machine's own network namespace is untouched while the managers run",
      async () => {
        await allDone();
        if (!before) throw new Error("the set-up failed before the machine's namespace was read");
        const diff = diffLines(before, await hostNetwork());
        if (diff) throw new Error(`the machine's network namespace changed:\n${diff}`);
      },
      TEST_MS,
    );
  }

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
