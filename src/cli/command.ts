import { Command } from "commander";
import { type App, runAction } from "./app.ts";

export type CommandFactory = (app: () => App) => Command;

/** A subcommand with runc's argument-count rules and our error handling around its body. */
export function subcommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .allowExcessArguments(false)
    .showSuggestionAfterError(false);
}

/**
 * Wraps a command body so that errors become one stderr line, a log error line and the
 * error's exit code, or `failureExit` for every failure of a command that has one (exec's
 * 255, which tells the runtime's failure from the process's own status).
 */
export function act<A extends unknown[]>(
  app: () => App,
  name: string,
  body: (app: App, ...args: A) => Promise<number | undefined> | number | undefined,
  failureExit?: number,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let a: App;
    try {
      a = app();
    } catch (err) {
      process.stderr.write(`cc-oci-runtime: ${(err as Error).message}\n`);
      process.exitCode = failureExit ?? 1;
      return;
    }
    await runAction(a, name, () => body(a, ...args), failureExit);
  };
}

/** Collects a repeatable option (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function integer(name: string): (v: string) => number {
  return (v: string) => {
    if (!/^-?\d+$/.test(v)) throw new Error(`${name}: expected an integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
}
