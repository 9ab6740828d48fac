/**
 * The layers import one way (README "How it works"): the CLI and its commands call the
 * lifecycle library; the library calls the stand-in, hypervisor, config, state and protocol
 * code; all of them sit on sys. A shim or a CRI-facing process can then use the library
 * without a command line.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT_DIR } from "../lib/cli.ts";

const SRC = join(ROOT_DIR, "src");
/** For each layer: the layers it must never import. */
const FORBIDDEN: Record<string, string[]> = {
  lifecycle: ["cli", "commands"],
  standin: ["cli", "commands", "lifecycle"],
  hypervisor: ["cli", "commands", "lifecycle", "standin"],
  state: ["cli", "commands", "lifecycle", "standin", "hypervisor"],
  config: ["cli", "commands", "lifecycle", "standin", "hypervisor"],
  protocol: ["cli", "commands", "lifecycle", "standin", "hypervisor", "agent"],
  agent: ["cli", "commands", "lifecycle", "standin", "hypervisor"],
  sys: ["cli", "commands", "lifecycle", "standin", "hypervisor", "state", "config", "protocol", "agent"],
};

test("imports go one way: cli -> lifecycle -> standin/hypervisor/config/state/protocol -> sys", () => {
  const wrong: string[] = [];
  for (const [layer, banned] of Object.entries(FORBIDDEN)) {
    for (const file of readdirSync(join(SRC, layer))) {
      const text = readFileSync(join(SRC, layer, file), "utf8");
      for (const m of text.matchAll(/from "\.\.\/([a-z]+)\//g)) {
        if (banned.includes(m[1] as string)) wrong.push(`src/${layer}/${file} imports src/${m[1]}`);
      }
    }
  }
  expect(wrong).toEqual([]);
});
