/** The agent's fault reporter keeps its process alive and tells the host (src/agent/faults.ts). */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT_DIR } from "../lib/cli.ts";

test("an unhandled rejection and an uncaught error are reported, and the process lives on", async () => {
  const child = Bun.spawn(
    [
      process.execPath,
      "-e",
      `const { FaultReporter } = await import(${JSON.stringify(join(ROOT_DIR, "src/agent/faults.ts"))});
       const faults = new FaultReporter();
       faults.install();
       faults.send = async (ev) => { console.log(JSON.stringify(ev)); };
       Promise.reject(new Error("boom"));
       setTimeout(() => { throw new Error("bang"); }, 10);
       setTimeout(() => console.log("alive"), 100);`,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  expect(await child.exited).toBe(0);
  const lines = (await new Response(child.stdout).text()).trim().split("\n");
  expect(lines).toEqual([
    JSON.stringify({ t: "event", event: "log", level: "error", message: "unhandled rejection: boom" }),
    JSON.stringify({ t: "event", event: "log", level: "error", message: "uncaught error: bang" }),
    "alive",
  ]);
  // And on the guest console (the agent's stderr), where a boot error's console tail shows it.
  expect(await new Response(child.stderr).text()).toContain("cc-agent: error: uncaught error: bang");
});
