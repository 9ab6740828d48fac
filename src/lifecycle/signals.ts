import { constants } from "node:os";
import { RuntimeError } from "../errors.ts";

const SIGNALS = constants.signals as Record<string, number>;

/** `kill`'s SIGNAL: a number, a name (TERM) or a SIG-name (SIGTERM), any case. */
export function parseSignal(text: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n >= 1 && n <= 64) return n;
  } else {
    const upper = text.toUpperCase();
    const n = SIGNALS[upper.startsWith("SIG") ? upper : `SIG${upper}`];
    if (n !== undefined) return n;
  }
  throw new RuntimeError(`invalid signal ${JSON.stringify(text)}`);
}

export function signalNumber(name: string): number {
  return SIGNALS[name] ?? 0;
}
