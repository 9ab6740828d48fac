import { readlinkSync } from "node:fs";
import { isatty } from "node:tty";

/**
 * For a terminal process started in the foreground without --console-socket (a person
 * typing `run` or `exec -t`), the terminal is the caller's own: the tty on its stdin.
 */
export function callerTerminal(): string | undefined {
  if (!isatty(0)) return undefined;
  try {
    return readlinkSync("/proc/self/fd/0");
  } catch {
    return undefined;
  }
}
