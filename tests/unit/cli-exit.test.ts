import { afterEach, describe, expect, test } from "bun:test";
import { App, runAction } from "../../src/cli/app.ts";
import { RuntimeError } from "../../src/errors.ts";
import { tempDir } from "../lib/cli.ts";

/** A command body's failure, as the exit code and stderr line it becomes. */
async function fail(err: unknown, failureExit?: number): Promise<unknown> {
  const app = new App({ root: tempDir(), logFormat: "text", debug: false });
  const write = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await runAction(
      app,
      "x",
      () => {
        throw err;
      },
      failureExit,
    );
  } finally {
    process.stderr.write = write;
  }
  return process.exitCode;
}

afterEach(() => {
  process.exitCode = 0;
});

describe("exit codes of failed commands", () => {
  test("a RuntimeError exits with its code; anything else with 1", async () => {
    expect(await fail(new RuntimeError("bad", 3))).toBe(3);
    expect(await fail(new Error("unexpected"))).toBe(1);
  });
  test("exec's 255 holds for every failure, the runtime's own errors and unexpected ones alike", async () => {
    expect(await fail(new RuntimeError("bad"), 255)).toBe(255);
    expect(await fail(new Error("unexpected"), 255)).toBe(255);
    expect(await fail(new TypeError("x is undefined"), 255)).toBe(255);
  });
});
