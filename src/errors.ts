/**
 * One error convention for the whole runtime (crun's error_handling.md, in spirit):
 * every failure that reaches the user is a RuntimeError whose message is ONE line that
 * names the thing at fault (file, field, container id, state) and whose exitCode is what
 * the process exits with. Anything else that escapes is a bug and is reported as such.
 */
export class RuntimeError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "RuntimeError";
  }
}

/** Bad command line: runc (urfave/cli) exits 1 for these too, after printing usage hints. */
export class UsageError extends RuntimeError {
  constructor(message: string) {
    super(message, 1);
    this.name = "UsageError";
  }
}

/** A subcommand whose machinery does not exist yet says so; it never pretends to succeed. */
export class NotImplementedError extends RuntimeError {
  constructor(what: string) {
    super(`${what}: not implemented yet`, 1);
    this.name = "NotImplementedError";
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message.split("\n")[0] ?? String(err);
  return String(err);
}

/** exec's exit status for its own failures (runc's 255), apart from the process's status. */
export const EXEC_FAILED = 255;
